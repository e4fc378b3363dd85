"""Exact costate sweep for implicit Runge–Kutta networks (``implicit_midpoint``, ``gauss2``, ``gauss3``).

Layer ``k`` of the network is one step of an s-stage implicit RK method ``(A, b)`` for
``ẋ = f(x, θ_k)``:

    Y_i = x_k + h Σ_j a_ij f(Y_j),        x_{k+1} = x_k + h Σ_i b_i f(Y_i).

**Forward.** The stage equations ``R(Y) = Y − 1⊗x_k − h (A⊗I) F(Y) = 0`` are solved by Newton's
method, batched over samples: per sample the (s·d)×(s·d) matrix
``M = I − h (A⊗I) diag(J_1..J_s)`` with ``J_j = ∂f/∂x(Y_j)`` is assembled on a stacked
``(n, s·d, s·d)`` array and solved with one ``np.linalg.solve`` (no loop over samples). The
default is simplified Newton (``J_j = ∂f/∂x(x_k)`` for all stages, the matrix inverted once per
layer, batched); full Newton (``stage_solver="newton"``) and ``"fixed-point"``
(``Y ← 1⊗x_k + h (A⊗I) F(Y)``, used for the residual-error test below) are options. The
iteration stops once ``max |ΔY| ≤ stage_tol · max(1, max|x_k|)`` (default 1e-12) and the Newton
variants then polish while the increment still halves, so the stages end at round-off. The
converged stages are stored.

**Backward.** Differentiating the step, ``δY = M⁻¹ (1⊗δx_k + h (A⊗I) F_θ δθ)``, so with
``λ = ∂J/∂x_{k+1}`` and ``w_i = h b_i J_iᵀ λ`` the adjoint stages ``μ`` solve the transposed
stage system (one batched ``np.linalg.solve`` per layer)

    Mᵀ μ = w,           i.e.   μ_i = h b_i J_iᵀ λ + h J_iᵀ Σ_j a_ji μ_j,

and

    λ_k = λ + Σ_i μ_i,      ∂J/∂θ_k = Σ_j (∂f/∂θ(Y_j))ᵀ (h b_j λ + h Σ_i a_ij μ_i).

With ``P_j = λ + Σ_i (a_ij / b_j) μ_i`` and ``μ_i = h b_i J_iᵀ P_i`` this is
``P_j = λ + h Σ_i (b_i a_ij / b_j) J_iᵀ P_i``, ``λ_k = λ + h Σ_i b_i J_iᵀ P_i`` — the adjoint-partner
method ``â_ji = b_i − b_i a_ij / b_j`` run backwards (docs/theory.md §4); for Gauss ``b_i a_ij + b_j a_ji =
b_i b_j`` gives ``â = A``: the costate sweep is the Gauss method itself applied backwards to
``λ̇ = −Jᵀ λ`` (``tests/test_implicit_costate.py`` checks this).

**Residual error.** The sweep differentiates the exact discrete map (stages solving ``R = 0``).
Stages stopped at ``‖R‖ ~ τ`` give a gradient off by O(τ) (the adjoint is the derivative at
the converged stages, evaluated at perturbed ones): tested with the fixed-point solver at
τ = 1e-4 … 1e-8, error ∝ τ. With Newton's default the stages and the gradient are at round-off.

**The one implicit sweep** (family ``implicit`` of :mod:`ocdl.pmp.dispatch`): the adjoint
stages solve the transposed stage system of each layer by one batched direct solve, not the
explicit stage-by-stage recursion of the other families (``integrators.costate_sweep`` iterates
the same equations to a fixed point, for one θ shared by all steps); ``lobatto3ab`` component-wise.
"""
import numpy as np

from integrators.tableaux import GAUSS, LOBATTO_IIIA3, LOBATTO_IIIB3, tableau
from ocdl.errors import SolverError

#: integrators this sweep handles (any field; lobatto3ab only on the hamiltonian (q, p) layout)
IMPLICIT_RK = tuple(GAUSS) + ("lobatto3ab",)


def coefficients(method, d):
    """Component-wise tableau ``(A (s, s, d), b (s, d))``: the Gauss ``(A, b)`` for every state
    component; ``lobatto3ab`` uses Lobatto IIIA on the first half (q) and IIIB on the second (p)."""
    if method == "lobatto3ab":
        m = d // 2
        (Aq, bq), (Ap, bp) = LOBATTO_IIIA3[:2], LOBATTO_IIIB3[:2]
        A = np.concatenate([np.repeat(Aq[:, :, None], m, 2), np.repeat(Ap[:, :, None], d - m, 2)], axis=2)
        b = np.concatenate([np.repeat(bq[:, None], m, 1), np.repeat(bp[:, None], d - m, 1)], axis=1)
        return A, b
    A, b, _ = tableau(method)
    return np.repeat(A[:, :, None], d, 2), np.repeat(b[:, None], d, 1)


def jacobians(F, Y, K, b):
    """``∂f/∂x`` at the rows of ``Y`` (n, d) → (n, d, d), from ``d`` vector–Jacobian products
    (row r of ∂f/∂x is ``(∂f/∂x)ᵀ e_r``)."""
    n, d = Y.shape
    J = np.empty((n, d, d))
    e = np.zeros((n, d))
    for r in range(d):
        e[:, r] = 1.0
        J[:, r, :] = F.vjp_x(Y, K, b, e)
        e[:, r] = 0.0
    return J


def _stage_matrix(A, h, Js):
    """``M = I − h (A⊗I) diag(J_1..J_s)``, (n, s·d, s·d), from ``Js`` (n, s, d, d) and the
    component-wise ``A`` (s, s, d) (row r of block (i, j) scaled by ``a_ij^r``)."""
    n, s, d, _ = Js.shape
    M = -h * A[None, :, :, :, None] * Js[:, None, :, :, :]     # (n, i, j, d, d)
    M = M.transpose(0, 1, 3, 2, 4).reshape(n, s * d, s * d)
    M += np.eye(s * d)
    return M


def layer_forward(F, A, h, x, K, b, stage_solver="simplified-newton", stage_tol=1e-12, max_iter=50):
    """Stages ``Y`` (n, s, d) solving ``Y_i = x + h Σ_j a_ij f(Y_j)`` (see the module docstring).

    ``stage_solver``: ``"newton"`` (Jacobians at the current stages every iteration),
    ``"simplified-newton"`` (the matrix with ``J = ∂f/∂x(x_k)`` for every stage, inverted once per
    layer; linear convergence with rate O(h), cheapest here) or ``"fixed-point"``. After
    ``max|ΔY| ≤ stage_tol · max(1, max|x|)`` the Newton variants continue while the increment
    still halves (at most 3 more) so the stages end at round-off."""
    n, d = x.shape
    s = A.shape[0]
    Y = np.repeat(x[:, None, :], s, axis=1)
    tol = stage_tol * max(1.0, float(np.abs(x).max()))
    if stage_solver == "simplified-newton":
        J0 = jacobians(F, x, K, b)
        Minv = np.linalg.inv(_stage_matrix(A, h, np.repeat(J0[:, None], s, axis=1)))
    converged, last = None, np.inf
    for it in range(max_iter):
        FY = np.stack([F.f(Y[:, j], K, b) for j in range(s)], axis=1)
        R = Y - x[:, None, :] - h * np.einsum("ijd,njd->nid", A, FY)
        if stage_solver == "newton":
            Js = np.stack([jacobians(F, Y[:, j], K, b) for j in range(s)], axis=1)
            dY = -np.linalg.solve(_stage_matrix(A, h, Js), R.reshape(n, s * d, 1)).reshape(n, s, d)
        elif stage_solver == "simplified-newton":
            dY = -np.matmul(Minv, R.reshape(n, s * d, 1)).reshape(n, s, d)
        else:
            dY = -R
        err = float(np.abs(dY).max())
        if not np.isfinite(err):
            break
        if converged is not None and not (err < 0.5 * last and it - converged < 3):
            break                              # polishing no longer pays: keep Y
        Y = Y + dY
        if converged is None and err <= tol:
            if stage_solver == "fixed-point" or err == 0.0:
                return Y
            converged = it
        last = err
    else:
        if converged is None:
            raise SolverError(f"implicit stages not solved to {stage_tol:g} in {max_iter} {stage_solver} "
                              f"iterations (h={h:.3g}); try more --layers")
    if not np.all(np.isfinite(Y)):
        raise SolverError(f"implicit stage solve diverged (h={h:.3g}); try more --layers")
    return Y


def forward(model, params, X, stage_solver="simplified-newton", stage_tol=1e-12):
    """``(states (N+1, n, d), stages [(n, s, d)] * N)`` of an implicit RK network (numpy).

    A layer whose simplified-Newton stages do not converge (the Jacobian frozen at ``x_k`` is
    too far from the stages' own: large trained weights, large h) is solved again by full Newton;
    only if that fails too does the sweep raise."""
    A, bw = coefficients(model.integrator, model.d)
    F, h = model.F, model.h
    x = model.lift(np.asarray(X, dtype=float))
    states, stages = [x], []
    for k in range(model.layers):
        K, b = params["K"][k], params["b"][k]
        try:
            Y = layer_forward(F, A, h, x, K, b, stage_solver, stage_tol)
        except SolverError:
            if stage_solver != "simplified-newton":
                raise
            Y = layer_forward(F, A, h, x, K, b, "newton", stage_tol)
        FY = np.stack([F.f(Y[:, j], K, b) for j in range(len(bw))], axis=1)
        x = x + h * np.einsum("id,nid->nd", bw, FY)
        states.append(x)
        stages.append(Y)
    return np.stack(states), stages


def layer_backward(F, A, bw, h, Y, K, b, lam):
    """One backward layer: ``(λ_k, ∂J/∂K_k, ∂J/∂b_k)`` from ``λ = ∂J/∂x_{k+1}`` and the stages ``Y``."""
    n, s, d = Y.shape
    Js = np.stack([jacobians(F, Y[:, j], K, b) for j in range(s)], axis=1)     # (n, s, d, d)
    w = np.einsum("njrc,njr->njc", Js, h * bw[None] * lam[:, None])          # J_iᵀ (h b_i ⊙ λ)
    MT = np.swapaxes(_stage_matrix(A, h, Js), 1, 2)
    mu = np.linalg.solve(MT, w.reshape(n, s * d, 1)).reshape(n, s, d)
    lam_k = lam + mu.sum(axis=1)
    gK, gb = 0.0, 0.0
    for j in range(s):
        Pj = h * bw[j] * lam + h * np.einsum("id,nid->nd", A[:, j], mu)
        dK, db = F.vjp_theta(Y[:, j], K, b, Pj)
        gK, gb = gK + dK, gb + db
    return lam_k, gK, gb


def costate_sweep(model, params, stages, lamN):
    """Backward sweep: ``(costates (N+1, n, d), ∂J/∂K (N, m, m), ∂J/∂b (N, m))`` (data term only)."""
    A, bw = coefficients(model.integrator, model.d)
    N = model.layers
    gK = np.zeros(params["K"].shape)
    gb = np.zeros(params["b"].shape)
    lam, P = lamN, [lamN]
    for k in reversed(range(N)):
        lam, gK[k], gb[k] = layer_backward(model.F, A, bw, model.h, stages[k],
                                           params["K"][k], params["b"][k], lam)
        P.append(lam)
    return np.stack(P[::-1]), gK, gb


def sweep(model, params, X, trajectories=False, increments=None, initial_costate=False, store=True):
    """:func:`forward`, then — sent ``p_N`` — :func:`costate_sweep`: a two-phase generator (the
    protocol of :mod:`ocdl.pmp.dispatch`) yielding ``x_N`` and returning
    ``(gK, gb, states, costates, p0)`` (trajectories (N+1, n, d) or None, p_0 (n, d) or None).
    ``store=False``: the model's own forward, nothing kept (the cost-only forward)."""
    if not store:
        yield model.forward(params, X)[-1]
        return
    states, stages = forward(model, params, X)
    lamN = yield states[-1]
    costates, gK, gb = costate_sweep(model, params, stages, lamN)
    return (gK, gb, (states if trajectories else None), (costates if trajectories else None),
            costates[0] if initial_costate else None)
