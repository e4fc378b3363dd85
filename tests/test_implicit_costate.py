"""Exact costate sweeps of implicit Runge–Kutta networks (ocdl.pmp.implicit), checked against
torch autograd through the forward of ``integrators.solve``, an independent dense solve of the
Gauss method run on the adjoint system, and the conservation of ``pᵀ δx``."""
import numpy as np
import pytest
import torch

from integrators.tableaux import tableau
from ocdl import pmp
from ocdl.models import ResNetODE, to_torch
from ocdl.models.losses import mean_loss_grad
from ocdl.models.regularisers import regulariser_grad
from ocdl.pmp import implicit

METHODS = ("implicit_midpoint", "gauss2", "gauss3")
FIELD_METHOD = [(f, m) for f in ("inner", "outer", "hamiltonian") for m in METHODS] + [("hamiltonian", "lobatto3ab")]


def _data(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)), rng.integers(0, 2, n)


def _autograd(model, params, X, y):
    pt = to_torch(params, requires_grad=True)
    J = model.cost(pt, torch.tensor(X), torch.tensor(y))
    J.backward()
    return J.item(), {k: v.grad.numpy() for k, v in pt.items()}


@pytest.mark.parametrize("field,method", FIELD_METHOD)
def test_costate_gradient_equals_autograd(field, method):
    """≤ 1e-12 relative per parameter block (measured ~1e-15): the autograd forward is
    integrators.solve's fixed-point stages polished to round-off, the sweep's Newton stages are
    at round-off too, so both differentiate the same discrete map."""
    X, y = _data()
    model = ResNetODE(field=field, d_in=2, width=4, layers=5, T=2.0, integrator=method, beta=1e-2)
    params = model.init(seed=1)
    J, g = pmp.value_and_grad(model, params, X, y)
    Jt, gt = _autograd(model, params, X, y)
    assert abs(J - Jt) <= 1e-13 * abs(Jt)
    for k in g:
        assert np.abs(g[k] - gt[k]).max() <= 1e-12 * np.abs(gt[k]).max(), k
    assert pmp.kkt_residual(model, params, X, y, grads=g) == pytest.approx(
        pmp.kkt_residual(model, params, X, y, grads=gt), rel=1e-10)


def test_gradient_error_scales_with_stage_tolerance():
    """The sweep differentiates the map whose stages solve R(Y) = 0. Stages stopped early
    (fixed-point iteration at tolerance τ) give a gradient off by O(τ): the error falls
    with τ, roughly in proportion, and is at round-off with Newton's converged stages."""
    X, y = _data()
    model = ResNetODE(field="inner", d_in=2, width=3, layers=4, T=2.0, integrator="gauss2")
    params = model.init(seed=2)
    _, gt = _autograd(model, params, X, y)

    def grad_err(**kw):
        states, stages = implicit.forward(model, params, X, **kw)
        g = mean_loss_grad(model.head(params, states[-1]), y)
        _, gK, _ = implicit.costate_sweep(model, params, stages, g @ params["W"])
        gK = gK + regulariser_grad(params, model.h, model.alpha, model.beta, model.alpha_head)["K"]
        return np.abs(gK - gt["K"]).max() / np.abs(gt["K"]).max()

    taus = (1e-4, 1e-6, 1e-8)
    errs = [grad_err(stage_solver="fixed-point", stage_tol=t) for t in taus]   # measured 2e-5, 6e-8, 1.5e-9
    assert errs[0] > 1e-6, errs               # visibly inexact at a loose tolerance
    assert all(e <= t for e, t in zip(errs, taus)), errs
    assert errs[0] > 10 * errs[1] and errs[1] > 10 * errs[2], errs      # τ ÷ 100 → error ÷ ≥ 10
    assert grad_err() < 1e-13


@pytest.mark.parametrize("method", ["implicit_midpoint", "gauss2", "gauss3"])
def test_gauss_costate_step_is_gauss_applied_backwards_to_the_adjoint_system(method):
    """One backward layer equals the Gauss method itself (same A, b) applied to the linearised
    adjoint system λ̇ = −J(t)ᵀ λ with J frozen at the forward stages: Λ_i = λ_k − h Σ_j a_ij J_jᵀ Λ_j,
    λ_{k+1} = λ_k − h Σ_i b_i J_iᵀ Λ_i, solved for λ_k given λ_{k+1} by one dense linear solve
    (independent of the sweep's transposed-stage formulation)."""
    A, bw, _ = tableau(method)
    s, d, h = len(bw), 4, 0.3
    A3, b3 = implicit.coefficients(method, d)
    model = ResNetODE(field="hamiltonian", d_in=2, width=d, layers=3, T=0.9, integrator=method)
    params = model.init(seed=3)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, d))
    K, b = params["K"][0], params["b"][0]
    Y = implicit.layer_forward(model.F, A3, h, x, K, b)
    lam1 = rng.standard_normal((5, d))
    lam0, _, _ = implicit.layer_backward(model.F, A3, b3, h, Y, K, b, lam1)
    for n in range(5):
        Js = [implicit.jacobians(model.F, Y[n:n + 1, j], K, b)[0] for j in range(s)]
        # unknowns z = (Λ_1..Λ_s, λ_k); rows: Λ_i + h Σ a_ij J_jᵀ Λ_j − λ_k = 0, λ_k − h Σ b_i J_iᵀ Λ_i = λ_{k+1}
        M = np.zeros(((s + 1) * d, (s + 1) * d))
        rhs = np.zeros((s + 1) * d)
        for i in range(s):
            M[i * d:(i + 1) * d, i * d:(i + 1) * d] += np.eye(d)
            for j in range(s):
                M[i * d:(i + 1) * d, j * d:(j + 1) * d] += h * A[i, j] * Js[j].T
            M[i * d:(i + 1) * d, s * d:] = -np.eye(d)
            M[s * d:, i * d:(i + 1) * d] = -h * bw[i] * Js[i].T
        M[s * d:, s * d:] = np.eye(d)
        rhs[s * d:] = lam1[n]
        z = np.linalg.solve(M, rhs)
        np.testing.assert_allclose(lam0[n], z[s * d:], rtol=0, atol=1e-13 * np.abs(z).max())


@pytest.mark.parametrize("method", METHODS + ("lobatto3ab",))
def test_bilinear_form_conserved_through_gauss_network(method):
    """p_kᵀ δx_k (summed over samples) is the same at every layer to round-off: δx_k the tangent
    of the forward (torch forward-mode through integrators.solve), p_k the sweep's costates."""
    X, y = _data(5)
    model = ResNetODE(field="hamiltonian", d_in=2, width=4, layers=8, T=4.0, integrator=method)
    params = model.init(seed=5)
    _, P = pmp.costate(model, params, X, y)
    pt = to_torch(params)
    x0 = torch.tensor(model.lift(X))
    v = torch.tensor(np.random.default_rng(6).standard_normal(x0.shape))

    def flow(z):
        states = [z]
        for k in range(model.layers):
            z = model.step(z, pt["K"][k], pt["b"][k])
            states.append(z)
        return torch.stack(states)

    _, dX = torch.autograd.functional.jvp(flow, x0, v)
    form = np.einsum("knd,knd->k", P, dX.numpy())
    assert np.abs(form - form[0]).max() <= 1e-12 * np.abs(form[0]), form


def test_stage_solvers_agree_to_round_off():
    """Full Newton, simplified Newton and (tight) fixed-point iteration solve the same stage
    equations: the stages agree to round-off."""
    A, _ = implicit.coefficients("gauss3", 3)
    model = ResNetODE(field="outer", d_in=2, width=3, layers=2, T=1.0, integrator="gauss3")
    params = model.init(seed=7)
    x = np.random.default_rng(8).standard_normal((6, 3))
    K, b = params["K"][0], params["b"][0]
    Ys = [implicit.layer_forward(model.F, A, model.h, x, K, b, stage_solver=s, stage_tol=1e-14)
          for s in ("newton", "simplified-newton", "fixed-point")]
    for Y in Ys[1:]:
        np.testing.assert_allclose(Y, Ys[0], rtol=0, atol=1e-14)


def test_a_layer_where_simplified_newton_fails_is_solved_by_full_newton():
    """Large weights and a large step (hamiltonian field, gauss2, K ~ 3·N(0, 1), h = 1): the Jacobian frozen at
    x_k does not converge, full Newton does; the sweep falls back per layer and its gradient still
    equals autograd through integrators.solve (whose default stages now fall back to Newton too)."""
    from ocdl.errors import SolverError
    X, y = _data(n=12, seed=3)
    model = ResNetODE(field="hamiltonian", d_in=2, width=4, layers=2, T=2.0, integrator="gauss2")
    params = model.init(seed=2)
    params["K"] = 3.0 * np.random.default_rng(4).standard_normal(params["K"].shape)
    A, _ = implicit.coefficients("gauss2", model.d)
    x = model.lift(X)
    with pytest.raises(SolverError, match="not solved"):
        implicit.layer_forward(model.F, A, model.h, x, params["K"][0], params["b"][0], "simplified-newton")
    J, g = pmp.value_and_grad(model, params, X, y)
    Jt, gt = _autograd(model, params, X, y)
    assert abs(J - Jt) <= 1e-12 * abs(Jt)
    for k in g:
        assert np.abs(g[k] - gt[k]).max() <= 1e-10 * np.abs(gt[k]).max(), k
