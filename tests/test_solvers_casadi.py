"""The CasADi construction against the independent numpy costate sweep of ocdl.pmp."""
import numpy as np
import pytest

from ocdl import pmp
from ocdl.solvers import make_model
from ocdl.solvers.casadi_kkt import GradientOnly, ReducedProblem, spec_from_model


def _problem(field, integrator, classes=2, width=None, n=12, layers=4, normalize=False):
    rng = np.random.default_rng(3)
    X = 3.0 * rng.normal(size=(n, 2)) + 5.0
    y = rng.integers(0, classes, size=n)
    y[:classes] = np.arange(classes)
    model = make_model(X, y, field=field, integrator=integrator, layers=layers, T=1.5, width=width,
                       alpha=1e-2, beta=0.05, normalize=normalize)
    return model, X, y


@pytest.mark.parametrize("field,integrator,classes,normalize", [
    ("outer", "euler", 2, True), ("outer", "rk4", 3, False), ("inner", "heun", 2, True),
    ("hamiltonian", "euler", 3, True)])
def test_reduced_cost_and_gradient_match_costate_sweep(field, integrator, classes, normalize):
    model, X, y = _problem(field, integrator, classes, normalize=normalize)
    params = model.init(seed=1)
    G = GradientOnly(spec_from_model(model), model.lift(X), y)
    J, g = G.evaluate(model.flatten(params))
    J_ref, g_ref = pmp.value_and_grad(model, params, X, y)
    # float64 round-off of two different evaluation orders (measured: J ≤ 2.2e-16 relative, every
    # gradient entry within 2.6e-16 of the largest one, stationarity ≤ 2.2e-16): bars 1e-13
    g_ref = model.flatten(g_ref)
    assert J == pytest.approx(J_ref, rel=1e-13)
    np.testing.assert_allclose(g, g_ref, rtol=1e-13, atol=1e-13 * np.abs(g_ref).max())
    # the KKT measure derived from the CasADi gradient is the shared one
    assert G.stationarity_residual(g) == pytest.approx(pmp.kkt_residual(model, params, X, y), rel=1e-13)


def test_hessian_and_hvp_match_finite_differences_of_costate_gradient():
    model, X, y = _problem("outer", "euler", 2, width=3)
    params = model.init(seed=2)
    z = model.flatten(params)
    spec = spec_from_model(model)
    P = ReducedProblem(spec, model.lift(X), y)
    G = GradientOnly(spec, model.lift(X), y)
    _, _, H = P.evaluate(z)
    v = np.random.default_rng(0).normal(size=z.size)
    eps = 1e-5

    def grad(zz):
        return model.flatten(pmp.value_and_grad(model, model.unflatten(zz), X, y)[1])

    fd = (grad(z + eps * v) - grad(z - eps * v)) / (2 * eps)
    # central differences: O(eps²) truncation ≈ 1e-10 relative, plus round-off 1e-16/eps ≈ 1e-11
    scale = np.abs(fd).max()
    assert np.abs(H @ v - fd).max() <= 1e-7 * scale
    assert np.abs(G.hvp(z, v) - fd).max() <= 1e-7 * scale
    np.testing.assert_allclose(H, H.T, atol=1e-13 * np.abs(H).max())   # measured exactly symmetric
