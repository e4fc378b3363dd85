"""Exact costate gradients against torch autograd; continuous-adjoint error order; KKT residual."""
import numpy as np
import pytest

from ocdl import pmp
from ocdl.models import ResNetODE, exact_integrators

COMBOS = [(f, m) for f in ("inner", "outer", "hamiltonian") for m in exact_integrators(f)]


def _data(n=25, C=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2))
    y = np.arange(n) % C
    return X, y


@pytest.mark.parametrize("field,method", COMBOS)
@pytest.mark.parametrize("C", [2, 3])
def test_costate_equals_autograd(field, method, C):
    # float64 throughout: both are the gradient of the same discrete cost, evaluated in a
    # different order of operations, so they agree to round-off, as the README claims. Measured
    # over all combos: J identical, whole gradient ≤ 1.1e-16, worst single block 3.1e-15
    # relative; bar 1e-13.
    X, y = _data(C=C)
    model = ResNetODE(field=field, integrator=method, layers=5, T=2.0, width=4, n_classes=C,
                      alpha=1e-2, beta=0.3, alpha_head=5e-3)
    params = model.init(seed=3)
    J, g = pmp.value_and_grad(model, params, X, y)
    Ja, ga = pmp.autograd_value_and_grad(model, params, X, y)
    assert abs(J - Ja) <= 1e-13 * abs(Ja)
    for k in ga:
        assert g[k].shape == ga[k].shape
    assert pmp.rel_error(g, ga) <= 1e-13
    # every block separately too, so a small block cannot hide behind a big one
    for k in ga:
        assert np.linalg.norm(g[k] - ga[k]) <= 1e-13 * max(np.linalg.norm(ga[k]), 1e-300)


def test_autograd_matches_finite_differences():
    # central differences have O(eps²) truncation + O(1e-16/eps) round-off ≈ 1e-10 at eps = 1e-5
    X, y = _data()
    model = ResNetODE(field="outer", integrator="rk4", layers=6, T=3.0, width=3)
    params = model.init(seed=1)
    _, g = pmp.value_and_grad(model, params, X, y)
    rng = np.random.default_rng(5)
    for _ in range(3):
        v = model.unflatten(rng.standard_normal(model.n_params()))
        fd = pmp.finite_difference_directional(model, params, X, y, v, eps=1e-5)
        an = float(model.flatten(g) @ model.flatten(v))
        assert abs(fd - an) <= 1e-7 * max(abs(an), 1e-3)


def test_costates_are_state_derivatives():
    # costates[k] = ∂J/∂x_k: perturbing x_0 (through the input, d = d_in) by δ changes J by p_0·δ
    X, y = _data()
    model = ResNetODE(field="inner", integrator="heun", layers=4, T=1.0)
    params = model.init(seed=2)
    states, costates = pmp.costate(model, params, X, y)
    assert states.shape == costates.shape == (5, 25, 2)
    d = np.random.default_rng(0).standard_normal(X.shape)
    eps = 1e-6
    fd = (pmp.cost(model, params, X + eps * d, y) - pmp.cost(model, params, X - eps * d, y)) / (2 * eps)
    assert abs(fd - np.sum(costates[0] * d)) <= 1e-7 * abs(fd)


def _smooth_params(model, seed=0):
    """θ_k = θ(t_k + h/2) from a fixed smooth θ(t), so that refining N approximates one control."""
    rng = np.random.default_rng(seed)
    m = model.m
    A0, A1 = rng.standard_normal((m, m)), rng.standard_normal((m, m))
    c0, c1 = rng.standard_normal(m), rng.standard_normal(m)
    t = (np.arange(model.layers) + 0.5) * model.h
    K = 0.6 * (A0[None] * np.cos(t)[:, None, None] + A1[None] * np.sin(2 * t)[:, None, None])
    b = 0.3 * (c0[None] * np.cos(t)[:, None] + c1[None] * np.sin(t)[:, None])
    W = rng.standard_normal((1, model.d))
    return {"K": K, "b": b, "W": W, "mu": np.array([0.1])}


@pytest.mark.parametrize("field,method,order", [
    ("outer", "euler", 1), ("inner", "heun", 2), ("outer", "rk4", 4), ("hamiltonian", "verlet", 2)])
def test_continuous_adjoint_error_shrinks_at_method_order(field, method, order):
    # The optimise-then-discretise gradient is the gradient of the continuous cost; it differs
    # from the exact discrete gradient by O(h^q). Doubling N must divide the error by ≈ 2^q:
    # we accept an observed order within 0.35 of q (asymptotic regime, small N).
    X, y = _data(n=20)
    errs = []
    for N in (8, 16, 32):
        model = ResNetODE(field=field, integrator=method, layers=N, T=2.0, width=4 if field == "hamiltonian" else 2)
        params = _smooth_params(model)
        _, ga = pmp.autograd_value_and_grad(model, params, X, y)
        _, gc = pmp.continuous_value_and_grad(model, params, X, y, substeps=8 if order < 4 else 16)
        errs.append(pmp.rel_error(gc, ga))
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(rates - order) < 0.35), (errs, rates)


def test_kkt_residual_definition():
    X, y = _data()
    model = ResNetODE(layers=4, T=2.0)
    params = model.init(seed=0)
    # the stationarity max(‖∂J/∂θ_k‖∞/h, ‖∂J/∂(W, μ)‖∞) from an independent (torch autograd) gradient
    _, g = pmp.autograd_value_and_grad(model, params, X, y)
    expect = max(np.abs(g["K"]).max() / model.h, np.abs(g["b"]).max() / model.h,
                 np.abs(g["W"]).max(), np.abs(g["mu"]).max())
    assert pmp.kkt_residual(model, params, X, y) == pytest.approx(expect, rel=1e-13)


def test_implicit_integrator_costate_matches_finite_differences():
    # gauss2 stages are implicit (Newton in ocdl.pmp.implicit); the exact costate gradient of
    # that network agrees with central differences of the cost (O(eps²) ≈ 1e-10 + the implicit
    # solver's rtol 1e-14 amplified by 1/eps). Autograd comparisons: tests/test_implicit_costate.py.
    X, y = _data(n=10)
    model = ResNetODE(field="outer", integrator="gauss2", layers=3, T=1.0)
    params = model.init(seed=0)
    _, ga = pmp.value_and_grad(model, params, X, y)
    v = model.unflatten(np.random.default_rng(1).standard_normal(model.n_params()))
    fd = pmp.finite_difference_directional(model, params, X, y, v, eps=1e-5)
    an = float(model.flatten(ga) @ model.flatten(v))
    assert abs(fd - an) <= 1e-6 * abs(an)
