"""The fused sweeps on the convolutional fields (form ``"conv"``, :mod:`ocdl.models.conv`):
feature-major ``(C_tot, L, n)`` arrays, the same discrete costate equations as
:mod:`ocdl.pmp.costate` — explicit Runge–Kutta layers with the adjoint-partner tableau and the
drift/kick splittings of the hamiltonian conv field — with the field's correlations in place of
the matrix products.
"""
import numpy as np

from ocdl.models.resnet import SPLITTINGS
from ocdl.pmp.forms import rk_coefficients


def _fm(model, a):
    """Rows ``a`` (n, d) in the conv fields' feature-major layout (C_tot, L, n)."""
    from ocdl.models.conv import to_fm
    return to_fm(a, model.F.channels_total, model.F.shape)


def _conv_rk_forward(model, params, X, store, trajectories):
    """The forward of :func:`conv_rk_sweep`: ``(x_N (n, d), caches, states)`` — the stage caches
    per layer with ``store`` (else None), every feature-major state with ``trajectories``."""
    from ocdl.models.conv import from_fm
    A, bw, _, _ = rk_coefficients(model.integrator)
    s = len(bw)
    h, N = model.h, model.layers
    F, x = model.F, _fm(model, model.lift(np.asarray(X, dtype=float)))
    K, b = params["K"], params["b"]
    caches = [] if store else None
    Xs = [x] if trajectories else None
    for k in range(N):
        hF, layer = [], []
        for i in range(s):
            Y = x
            for j in range(i):
                if A[i, j] != 0.0:
                    Y = Y + A[i, j] * hF[j]                 # hF_j = h f(Y_j)
            f, cache = F.fm_stage(K[k], b[k], Y)
            hF.append(h * f)                            # f may be the cached σ: not in place
            layer.append(cache if store else None)
        x = x + sum(b * f for b, f in zip(bw, hF))     # x + Σ_i b_i h f(Y_i)
        if store:
            caches.append(layer)
        if trajectories:
            Xs.append(x)
    return from_fm(x), caches, Xs


def conv_rk_sweep(model, params, X, trajectories=False, increments=None, initial_costate=False, store=True):
    """Explicit Runge–Kutta layers on a conv field, the sweep of :func:`costate_sweep` with the
    field's feature-major kernels (``F.fm_stage``, ``F.fm_vjp``: convolution forward, transposed
    convolution and kernel correlation backward — k BLAS matmuls each, no loop over samples):

        Y_i = x_k + h Σ_j a_ij f(Y_j),   x_{k+1} = x_k + h Σ_i b_i f(Y_i)
        P_i = p_{k+1} − h Σ_{j>i} C_ij (∂f/∂x(Y_j))ᵀ P_j,   p_k = p_{k+1} + h Σ_i b_i (∂f/∂x(Y_i))ᵀ P_i
        ∂J/∂θ_k = h Σ_i b_i (∂f/∂θ(Y_i))ᵀ P_i        (C_ij = â_ij − b_j of the adjoint partner)

    A two-phase generator (the protocol of :mod:`ocdl.pmp.dispatch`): the forward keeps every
    stage's cache, yields ``x_N`` (n, d), is sent ``p_N`` and returns
    ``(gK, gb, states, costates, p0)`` (trajectories (N+1, n, d) or None, p_0 (n, d) or None)."""
    A, bw, C, _ = rk_coefficients(model.integrator)
    s = len(bw)
    h, N = model.h, model.layers
    F = model.F
    K, b = params["K"], params["b"]
    xN, caches, Xs = _conv_rk_forward(model, params, X, store, trajectories)
    lamN = yield xN
    lam = _fm(model, lamN)
    Ps = [lam] if trajectories else None
    gK = np.zeros_like(K)
    gb = np.zeros_like(b)
    for k in range(N - 1, -1, -1):
        hG = [None] * s
        for i in range(s - 1, -1, -1):
            Pi = lam
            for j in range(i + 1, s):
                if C[i, j] != 0.0:
                    Pi = Pi - C[i, j] * hG[j]
            g, tK, tb = F.fm_vjp(K[k], caches[k][i], Pi)
            g *= h
            hG[i] = g
            gK[k] += (h * bw[i]) * tK
            gb[k] += (h * bw[i]) * tb
        caches[k] = None
        lam = lam + sum(b * g for b, g in zip(bw, hG))  # p + Σ_i b_i h (∂f/∂x)ᵀ P_i
        if trajectories:
            Ps.append(lam)
    return _out(gK, gb, Xs, Ps, lam, initial_costate)


def _out(gK, gb, Xs, Ps, lam, initial_costate):
    """The sweeps' return from feature-major states ``Xs`` and costates ``Ps`` (backwards) or None."""
    from ocdl.models.conv import from_fm
    p0 = from_fm(lam) if initial_costate else None
    if Xs is None:
        return gK, gb, None, None, p0
    return gK, gb, np.stack([from_fm(a) for a in Xs]), np.stack([from_fm(a) for a in Ps[::-1]]), p0


def conv_split_sweep(model, params, X, trajectories=False, increments=None, initial_costate=False, store=True):
    """Splittings (drift/kick) on the separable ``hamiltonian-conv`` field with **reversible,
    constant-memory** gradients: the forward keeps only the current (q, p); the backward sweep
    runs the sub-steps in reverse, reconstructing the state exactly up to round-off
    (a sub-step reads only the half it does not change, so σ is recomputed from the very same
    input), alongside the transposed shears of the costate:

        drift (c):  S = σ(K ∗ p + b),   q ← q − c h S,          U = σ' ⊙ λ_q,
                    λ_p ← λ_p + c h Kᵀ ∗ U,                     ∂J/∂K += c h corr(U, p), ∂J/∂b += c h Σ U
        kick  (c):  S = σ(Kᵀ ∗ q + b),  p ← p + c h S,          U = −σ' ⊙ λ_p,
                    λ_q ← λ_q + c h K ∗ U,                      ∂J/∂Kᵀ += c h corr(U, q)  (→ K by flip-swap)

    Working memory O(C L n), independent of the depth N (the gradient itself is O(N C² k)).
    A two-phase generator like :func:`conv_rk_sweep` (sub-steps ``SPLITTINGS[integrator]``; it
    stores nothing either way);
    ``trajectories=True`` also keeps all states (for :func:`ocdl.pmp.costate`)."""
    from ocdl.models.conv import corr, corr_T, corr_grad, flip_swap, from_fm
    subs = SPLITTINGS[model.integrator]
    h, N = model.h, model.layers
    F, x = model.F, _fm(model, model.lift(np.asarray(X, dtype=float)))
    act = F.act
    Cc = F.C
    K, b = params["K"], params["b"]
    KT = flip_swap(K, F.D)
    q, p = x[:Cc].copy(), x[Cc:].copy()
    S = np.empty_like(q)
    Xs = [np.concatenate([q, p])] if trajectories else None

    def sub(kind, k):
        """σ(pre-activation) of a sub-step into S (drift reads p, kick reads q)."""
        corr(K[k] if kind == "drift" else KT[k], p if kind == "drift" else q, out=S)
        np.add(S, F._bias(b[k]), out=S)
        act.apply(S, S)

    for k in range(N):
        for kind, c in subs:
            sub(kind, k)
            if kind == "drift":
                q += (c * h) * S
            else:
                p -= (c * h) * S
        if trajectories:
            Xs.append(np.concatenate([q, p]))
    lamN = yield from_fm(np.concatenate([q, p]))
    lam = _fm(model, lamN)
    lq, lp = lam[:Cc], lam[Cc:]
    Ps = [lam.copy()] if trajectories else None
    gK = np.zeros_like(K)
    gKT = np.zeros_like(K)
    gb = np.zeros_like(b)
    U = np.empty_like(q)
    tmp = np.empty_like(q)
    for k in range(N - 1, -1, -1):
        for kind, c in reversed(subs):
            ch = c * h
            sub(kind, k)
            if kind == "drift":
                q -= ch * S                                  # reconstruct q before the drift
                act.mul_deriv(S, lq, U, tmp)                 # U = σ' ⊙ λ_q
                lp += ch * corr_T(K[k], U)
                gK[k] += ch * corr_grad(U, p, F.k)
            else:
                p += ch * S                                  # reconstruct p before the kick
                act.mul_deriv(S, lp, U, tmp)
                U *= -1.0                                    # U = −σ' ⊙ λ_p
                lq += ch * corr_T(KT[k], U)
                gKT[k] += ch * corr_grad(U, q, F.k)
            gb[k] += ch * F._sum(U)
        if trajectories:
            Ps.append(lam.copy())
    gK += flip_swap(gKT, F.D)
    return _out(gK, gb, Xs, Ps, lam, initial_costate)
