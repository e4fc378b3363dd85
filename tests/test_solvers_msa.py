"""E-MSA: the closed-form layer step is the minimiser of the augmented Hamiltonian; monotone loss."""
import numpy as np
import pytest
from scipy.optimize import minimize

from ocdl import pmp
from ocdl.data import make_dataset
from ocdl.errors import SolverError
from ocdl.solvers import make_model, train
from ocdl.solvers.msa import layer_step


def test_closed_form_layer_step_minimises_augmented_hamiltonian():
    X, y = make_dataset("spirals", seed=2, points_per_class=15)
    model = make_model(X, y, layers=6, T=2.0, width=3, alpha=1e-2)
    params = model.init(seed=0)
    states, costates = pmp.costate(model, params, X, y)
    _, grads = pmp.value_and_grad(model, params, X, y)
    rho, h, n, k = 3.0, model.h, X.shape[0], 2
    K_new, b_new = layer_step(model, params, states, costates, grads, rho)
    x, xn, p, pn = states[k], states[k + 1], costates[k], costates[k + 1]

    def H_aug(v):  # written from the definition (module docstring), independent of the closed form
        K, b = v[:9].reshape(3, 3), v[9:]
        f = np.tanh(x) @ K.T + b
        dHx = pn + h * (1 - np.tanh(x) ** 2) * (pn @ K)
        return (np.sum(pn * (x + h * f)) + h * model.alpha / 2 * (np.sum(K ** 2) + np.sum(b ** 2))
                + rho / 2 / n * np.sum((xn - x - h * f) ** 2) + rho / 2 * n * np.sum((p - dHx) ** 2))

    v0 = np.concatenate([params["K"][k].ravel(), params["b"][k]])
    ref = minimize(H_aug, v0, method="BFGS", options={"gtol": 1e-13}).x
    got = np.concatenate([K_new[k].ravel(), b_new[k]])
    # BFGS on a strictly convex quadratic: agreement to ~1e-6 relative
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_msa_decreases_loss_monotonically_on_spirals():
    X, y = make_dataset("spirals", seed=0, points_per_class=50)
    model = make_model(X, y, layers=10, T=5.0, alpha=1e-3)
    res = train(X, y, solver="msa", model=model, seed=0, iterations=150)
    loss = np.array([row["loss"] for row in res.history])
    assert len(loss) == 151
    assert np.all(np.diff(loss) < 0)
    assert loss[-1] < 0.5 * loss[0]
    # the reported KKT residual is the stationarity max(‖∂J/∂θ_k‖∞/h, ‖∂J/∂(W, μ)‖∞) at the returned
    # point, here from an independent torch autograd gradient (round-off apart: 1e-13)
    _, g = pmp.autograd_value_and_grad(model, res.x, X, y)
    kkt = max(np.abs(g["K"]).max() / model.h, np.abs(g["b"]).max() / model.h, np.abs(g["W"]).max(),
              np.abs(g["mu"]).max())
    assert res.history[-1]["kkt"] == pytest.approx(kkt, rel=1e-13)


def test_msa_rejects_fields_without_closed_form():
    X, y = make_dataset("moons", seed=0, points_per_class=10)
    with pytest.raises(SolverError, match="closed-form"):
        train(X, y, solver="msa", field="inner", iterations=2)
