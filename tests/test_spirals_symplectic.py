"""The hamiltonian field's energy, and the spiral study with every symplectic integrator
(ocdl.bench.symplectic): conservation along the exact flow (scipy), reversibility, drift orders."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from ocdl.bench import symplectic as S
from ocdl.models.fields import get_field
from ocdl.solvers import make_model


def _layer(m=3, seed=1):
    rng = np.random.default_rng(seed)
    K = rng.standard_normal((m, m)) / np.sqrt(m)
    b = 0.1 * rng.standard_normal(m)
    return K, b, rng.standard_normal((8, 2 * m))


@pytest.mark.parametrize("activation, sigma", [("tanh", np.tanh), ("relu", lambda z: np.maximum(z, 0.0)),
                                               ("softplus", lambda z: np.log1p(np.exp(z)))])
def test_energy_antiderivative_is_the_activation(activation, sigma):
    """A' = σ by central differences (error O(ε²) ≈ 1e-10 with ε = 1e-5) and A(0) = 0, on the
    energy of a 1×1 layer with K = 1, b = 0: H(q, p) = A(p) + A(q)."""
    F = get_field("hamiltonian", activation)
    z = np.linspace(-3.0, 3.0, 13) + 0.05          # avoid relu's kink at 0
    eps = 1e-5
    one, zero = np.ones((1, 1)), np.zeros(1)
    x = lambda u: np.stack([u, np.zeros_like(u)], axis=1)      # noqa: E731  (q = u, p = 0)
    dA = (F.energy(x(z + eps), one, zero) - F.energy(x(z - eps), one, zero)) / (2 * eps)
    np.testing.assert_allclose(dA, sigma(z), rtol=0, atol=1e-8)
    assert F.energy(np.zeros((1, 2)), one, zero)[0] == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_energy_conserved_along_exact_flow(activation):
    """H_k is constant along the exact flow of one layer (θ constant, K neither symmetric nor
    diagonal) computed by scipy's DOP853 at rtol = atol = 1e-12: |H(t) − H(0)| ≤ 1e-10 for t ≤ 5,
    while H itself changes by O(1) under the opposite sign convention."""
    F = get_field("hamiltonian", activation)
    K, b, x = _layer()
    x0 = x[:2]

    def rhs(t, z):
        return F.f(z.reshape(2, -1), K, b).ravel()
    sol = solve_ivp(rhs, (0.0, 5.0), x0.ravel(), method="DOP853", rtol=1e-12, atol=1e-12, dense_output=True)
    ts = np.linspace(0.0, 5.0, 51)
    xs = sol.sol(ts).T.reshape(len(ts), 2, -1)
    H = np.stack([F.energy(z, K, b) for z in xs])
    assert np.abs(H - H[0]).max() <= 1e-10
    m = K.shape[0]
    A = lambda z: F.energy(np.concatenate([z, 0 * z], 1), np.eye(m), np.zeros(m))  # noqa: E731  1ᵀA(z)
    wrong = np.stack([A(z[:, m:] @ K.T + b) - A(z[:, :m] @ K + b) for z in xs])
    assert np.abs(wrong - wrong[0]).max() > 1e-2              # the minus sign is not conserved


@pytest.mark.parametrize("method", S.METHODS)
def test_energy_error_order(method):
    """max_n |H(x_n) − H(x_0)| over 4 time units of one layer with θ constant: the least-squares
    slope over h = 4/16, 4/32, 4/64 is the method's order (2, 4, 2, 4, 6) within 0.25 (observed
    within 0.035; at coarser h the pre-asymptotic slopes were 2.3–7.0)."""
    F = get_field("hamiltonian")
    K, b, x = _layer()
    steps = np.array([16, 32, 64])
    errs = []
    for n in steps:
        xs = S.flow(F, method, x, K, b, 4.0 / n, n)
        H = np.stack([F.energy(z, K, b) for z in xs])
        errs.append(np.abs(H - H[0]).max())
    slope = np.polyfit(np.log(4.0 / steps), np.log(errs), 1)[0]
    assert abs(slope - S.ORDERS[method]) <= 0.25, (method, errs, slope)


def _model(method, layers=20, T=5.0, seed=3):
    (X, y), _ = S.spiral_data(30, seed=seed)
    model = make_model(X, y, field="hamiltonian", integrator=method, layers=layers, T=T, width=6, normalize="range")
    return model, model.init(seed=seed, scale=2.0), X


def test_verlet_reversible_to_roundoff():
    """20 Verlet layers forward then with −h back: relative error ≤ 50 ε (round-off; observed ~1e-15)."""
    model, params, X = _model("verlet")
    assert S.reversibility_error(model, params, X) <= 50 * np.finfo(float).eps


@pytest.mark.parametrize("method", S.METHODS)
def test_layer_step_is_the_networks_forward(method):
    """The study's states (Newton stages for the implicit methods) equal the model's forward pass
    (the ``integrators`` package's step for the implicit ones, fixed-point stage solve) to 1e-12,
    and every method (all symmetric) is reversible to 1e-12 with stage solves at 1e-14."""
    model, params, X = _model(method, layers=10)
    xs = S.states(model, params, X)
    np.testing.assert_allclose(xs, model.forward(params, X), rtol=0, atol=1e-12)
    assert S.reversibility_error(model, params, X) <= 1e-12


def test_energy_drift_measures_per_layer_change():
    """drift_sum / drift_max are the sum over layers / max of |H_k(x_{k+1}) − H_k(x_k)|, here
    recomputed by hand from the model's own forward pass for gauss2."""
    model, params, X = _model("gauss2", layers=5)
    d = S.energy_drift(model, params, X)
    xs = model.forward(params, X)
    F, K, b = model.F, params["K"], params["b"]
    dH = np.abs([F.energy(xs[k + 1], K[k], b[k]) - F.energy(xs[k], K[k], b[k]) for k in range(5)])
    assert d["drift_sum"] == pytest.approx(dH.sum(axis=0).max(), rel=1e-9)
    assert d["drift_max"] == pytest.approx(dH.max(), rel=1e-9)


def test_study_small():
    """A short study of two methods returns every measure; the 4th-order splitting has a smaller
    drift than Verlet at the same h."""
    rows = S.spiral_study(methods=("verlet", "yoshida4"), points=20, layers=6, iterations=5)
    assert [r["method"] for r in rows] == ["verlet", "yoshida4"]
    for r in rows:
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["time_per_iteration_s"] > 0
        assert r["reversibility"] <= 1e-13
    assert rows[1]["drift_sum"] < rows[0]["drift_sum"]


@pytest.mark.slow
def test_study_every_method_trains():
    """The example's study: every method reaches ≥ 95 % held-out accuracy, is reversible to 1e-12,
    and the drifts of the 2nd-order methods exceed those of the 6th-order Gauss method."""
    rows = {r["method"]: r for r in S.spiral_study()}
    for r in rows.values():
        assert r["test_accuracy"] >= 0.95, r
        assert r["reversibility"] <= 1e-12
    assert rows["gauss3"]["drift_sum"] < min(rows["verlet"]["drift_sum"], rows["implicit_midpoint"]["drift_sum"])
