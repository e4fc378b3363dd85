"""Compiled whole-sweep kernels for explicit Runge–Kutta layers on the fused forms (numba).

Any explicit tableau ``(A, b)`` with all weights ``b_i ≠ 0`` — Euler (the one-stage tableau),
heun, rk4, …: the loops over layers and stages run inside compiled code (what they share is in
:mod:`ocdl.pmp.kernels`), samples in blocks (:func:`ocdl.pmp.kernels.block_width`; d = 64,
n = 4000, rk4: forward −20 %, gradient −12 % against one block). Same mathematics as
:func:`ocdl.pmp.torch_sweeps.forward` and :func:`ocdl.pmp.torch_sweeps.costate_sweep` (tested
against torch autograd).

**Outer form in row form** (one sample per row, the layout the model lifts the data in): the
products are BLAS updates in place — the last stage's ``b_s S_s hKᵀ`` and the bias go straight
into x, the θ-contraction accumulates ``h Wᵀ S`` and ``h Wᵀ 1`` straight into the gradient —
and the elementwise work of a stage is one flat pass (stage input and σ together; σ', the stage
costate, its weighted form and the running ``p_k`` together), so the one-stage tableau runs
exactly the former Euler kernels' three products and one pass a layer each way. Why rows: the
same products in the feature-major layout took 2.03 ms a layer at d = 64 (the contraction over
the samples in OpenBLAS's slow orientation here, alone 0.85 ms) against 1.75 ms in row form.
**Inner form feature-major** (one sample per column): ``[x_k; 1]`` and ``[Y_i; 1]`` carry a
row of ones, so one accumulating product gives ``∂J/∂[K̃ | b̃]``; stage 0's ``h K̃ᵀ D W_0`` is
accumulated into p by BLAS.

Forward, layer k, stages i = 1..s (``K̃, b̃`` the field's embedded matrix and bias):

    outer  Y_i = x_k + Σ_{j<i} a_ij T_j + c_i h b̃,   S_i = σ(Y_i),   T_i = h K̃ S_i  (rows: S_i hK̃ᵀ),
           x_{k+1} = x_k + Σ_i b_i T_i + (Σ_i b_i) h b̃  (+ ξ_k)          [h f(Y_i) = T_i + h b̃]
    inner  Y_i = x_k + hD ⊙ Σ_{j<i} a_ij Σ_j,      Σ_i = σ(K̃ Y_i + b̃),
           x_{k+1} = x_k + hD ⊙ Σ_i b_i Σ_i  (+ ξ_k)                      [h f(Y_i) = hD ⊙ Σ_i]

with ``c_i = Σ_j a_ij``; stored per layer and stage: outer ``S_i``, inner ``Σ_i`` (and x_k: the
backward recomputes the inner stage inputs ``Y_i`` from them by the forward's formula, which
halves the memory traffic of the inner sweeps).

Backward, layer k, from ``λ = p_{k+1}``, stages i = s..1, with the weighted stage quantities
``W_i = b_i U_i`` (outer ``U_i = P_i``, inner ``U_i = σ'_i ⊙ P_i``) and ``R_i = b_i h (∂f/∂x(Y_i))ᵀ P_i``:

    W_i = [σ'_i ⊙] (b_i λ + Σ_{j>i} Ĉ_ij R_j),    Ĉ_ij = −b_i C_ij / b_j  (= a_ji),
    R_i = outer σ'_i ⊙ (h K̃ᵀ W_i),  inner h K̃ᵀ D W_i,
    p_k = λ + Σ_i R_i,      G_k = Σ_i W_i [a_i; 1]ᵀ   (a = S outer, Y inner; ∂J/∂M_k = h D ⊙ G_k)

— the recursion of :func:`ocdl.pmp.torch_sweeps.costate_sweep` (``P_i = λ − h Σ_{j>i} C_ij
(∂f/∂x(Y_j))ᵀ P_j``, ``C = integrators.tableaux.costate_coefficients(A, b)``) with ``b_i``
folded into the stage quantities, so that the θ-contraction needs no extra scaling pass.
Sums are in another order than torch's: they agree to round-off (tested ≤ 1e-12
relative, and both against torch autograd). Fast-math flags as in :mod:`ocdl.pmp.kernels`.
"""
import functools
from types import SimpleNamespace

import numba
import numpy as np

from ocdl.pmp.kernels import (_FM, _apply, _costate_pass, _flat, _gemm, _jit, _load_block,
                              _load_rows, _store_block, _store_rows, forms, mul_deriv, value)

# Row helpers: ``r`` one row of a (d, n) block; ``act`` the activation's name (a compile-time
# constant: each loop body is branch-free, vectorisable).

@numba.njit(inline="always", fastmath=_FM)
def _comb_row(out, r, base, bscale, add, T, coef, lo, hi, rs):
    """``out[r] = bscale base[r] + add + rs Σ_{lo ≤ j < hi} coef_j T_j[r]`` (zero coefficients
    skipped, the first nonzero term in the pass of ``bscale base``; ``out`` may be ``base``)."""
    j0 = _first(coef, lo, hi)
    t, a = T[j0 if j0 < hi else 0], rs * coef[j0] if j0 < hi else 0.0
    for c in range(out.shape[1]):
        out[r, c] = bscale * base[r, c] + add + a * t[r, c]
    for j in range(j0 + 1, hi):
        w = coef[j] * rs
        if w != 0.0:
            Tj = T[j]
            for c in range(out.shape[1]):
                out[r, c] += w * Tj[r, c]

@numba.njit(inline="always", fastmath=_FM)
def _dmul_lin_row(s, W, lam, bi, Rn, cn, r, act):
    """One pass: ``W[r] = σ' ⊙ (bi λ[r] + cn Rn[r])`` (σ' from the stored ``s``)."""
    for c in range(s.shape[1]):
        W[r, c] = mul_deriv(act, s[r, c], bi * lam[r, c] + cn * Rn[r, c])


@numba.njit(inline="always", fastmath=_FM)
def _add_inc(inc, k, c0, w, y):
    """``y[:, :w] += ξ_k[c0:c0+w]ᵀ`` (``y`` (d, nb): a feature-major block, or a row-form one
    transposed; ``inc`` (N, n, d) in row form; none: (0, 0, 0))."""
    if inc.shape[0] > 0:
        for r in range(y.shape[0]):
            for c in range(w):
                y[r, c] += inc[k, c0 + c, r]

@numba.njit(inline="always")
def _first(coef, lo, hi):
    """The first j in [lo, hi) with ``coef_j ≠ 0`` (hi: none)."""
    while lo < hi and coef[lo] == 0.0:
        lo += 1
    return lo


@numba.njit(inline="always", fastmath=_FM)
def _lin(out, a, x, b, y, T, coef, lo, hi):
    """``out = a x + b y + Σ_{lo ≤ j < hi} coef_j T_j`` (C-contiguous 2-D blocks, ``T`` stacked)
    in flat passes: the first nonzero term in the pass of ``a x + b y``, the others one by one.
    ``out`` must not be an input (an aliased output does not vectorise): in place is :func:`_acc`."""
    j0 = _first(coef, lo, hi)
    of, xf, yf, tf = _flat(out), _flat(x), _flat(y), _flat(T[j0 if j0 < hi else 0])
    c = coef[j0] if j0 < hi else 0.0
    for e in range(of.shape[1]):
        of[0, e] = a * xf[0, e] + b * yf[0, e] + c * tf[0, e]
    _acc(out, 0.0, out, T, coef, j0 + 1, hi)


@numba.njit(inline="always", fastmath=_FM)
def _acc(y, b, z, T, coef, lo, hi):
    """``y += b z + Σ_{lo ≤ j < hi} coef_j T_j`` in place, passes as in :func:`_lin`."""
    j0 = _first(coef, lo, hi)
    yf, zf, tf = _flat(y), _flat(z), _flat(T[j0 if j0 < hi else 0])
    c = coef[j0] if j0 < hi else 0.0
    if c != 0.0 or b != 0.0:
        for e in range(yf.shape[1]):
            yf[0, e] += b * zf[0, e] + c * tf[0, e]
    for j in range(j0 + 1, hi):
        if coef[j] != 0.0:
            tf, c = _flat(T[j]), coef[j]
            for e in range(yf.shape[1]):
                yf[0, e] += c * tf[0, e]


@numba.njit(inline="always", fastmath=_FM)
def _act_lin(out, x, b, y, c, z, act):
    """``out = σ(x + b y + c z)`` in one flat pass (``out`` not an input)."""
    of, xf, yf, zf = _flat(out), _flat(x), _flat(y), _flat(z)
    for e in range(of.shape[1]):
        of[0, e] = value(act, xf[0, e] + b * yf[0, e] + c * zf[0, e])


@numba.njit(inline="always", fastmath=_FM)
def _stage_costate(s, g, lam, pk, first, R, W, b, c, act):
    """One pass of the outer backward: ``R = σ' ⊙ g`` (σ' from the stored ``s``), ``pk = λ + R``
    (``first``) or ``pk += R``, and ``W = b λ + c R``."""
    sf, gf, lf, pf, rf, wf = _flat(s), _flat(g), _flat(lam), _flat(pk), _flat(R), _flat(W)
    if first:
        for e in range(sf.shape[1]):
            v = mul_deriv(act, sf[0, e], gf[0, e])
            rf[0, e] = v
            pf[0, e] = lf[0, e] + v
            wf[0, e] = b * lf[0, e] + c * v
    else:
        for e in range(sf.shape[1]):
            v = mul_deriv(act, sf[0, e], gf[0, e])
            rf[0, e] = v
            pf[0, e] += v
            wf[0, e] = b * lf[0, e] + c * v


# The samples run in blocks of nb columns (kernels.block_width), each block through all
# layers while its (d, nb) arrays stay in cache; padding columns start from x = 0 and get
# p = 0, so they add nothing to the θ-contraction.

@numba.njit(inline="always", fastmath=_FM)
def _inner_stage_input(Yi, x, Sk, A, i, hD):
    """``Y_i = x + hD ⊙ Σ_{j<i} a_ij Σ_j`` — the one formula of the forward and of the
    backward's recomputation (same inputs, same operations)."""
    for r in range(x.shape[0]):
        _comb_row(Yi, r, x, 1.0, 0.0, Sk, A[i], 0, i, hD[r])


@functools.cache
def rk(act):
    """The explicit Runge–Kutta kernels for the activation object ``act`` (compiled on first use,
    cached on disk per activation): ``outer_forward``, ``outer_backward``, ``inner_forward``,
    ``inner_backward``."""
    act = forms(act)

    @_jit(fastmath=_FM)
    def outer_forward(A, bw, hKT, hb, X0, XN, S, inc, Xall):
        """Outer-form RK forward in row form (one sample per row), sample-blocked: ``x_0`` from
        ``X0`` (n, d), ``x_N`` into ``XN`` (n, d); ``hKT`` (N, d, d) = h K̃ᵀ, ``hb`` (N, d) = h b̃.
        ``S`` (B, N, s, nb, d) receives σ(Y_i) per block (B nb ≥ n; padding rows hold the sweep
        of x = 0), or is (0, N, s, nb, d): cost only; ``inc`` (N, n, d) additive increments or
        (0, 0, 0); ``Xall`` (N+1, n, d) receives every state, or is (0, 0, 0). Per layer and
        block, ``T_i = S_i hKᵀ`` (BLAS) for the stages but the last, whose product goes straight
        into x (``x += b_s S_s hKᵀ``, then ``x += (Σ b) 1 hbᵀ``): Euler is one σ pass and two
        BLAS updates of x in place."""
        N, s, d = hKT.shape[0], bw.shape[0], hKT.shape[1]
        n, nb = X0.shape[0], S.shape[3]
        store, keep = S.shape[0] > 0, Xall.shape[0] > 0
        sb = 0.0
        for i in range(s):
            sb += bw[i]
        mb = nb if s > 1 else 0                          # (Euler needs none of the stage blocks)
        x, Y, Bk = np.empty((nb, d)), np.empty((mb, d)), np.empty((mb, d))
        T = np.empty((s - 1, nb, d))
        scratch = np.empty((0 if store else s, nb, d))
        ones = np.ones((nb, 1))
        ab = np.empty(2)
        for c0 in range(0, n, nb):
            w = min(nb, n - c0)
            _load_rows(X0, c0, w, x)
            for k in range(N):
                Sk = S[c0 // nb, k] if store else scratch
                if s > 1:
                    _gemm(False, False, ones, hb[k:k + 1], Bk, 1.0, 0.0, ab)         # 1 hbᵀ
                for i in range(s):
                    Si = Sk[i]
                    if i == 0:
                        _apply(_flat(x), _flat(Si), act)
                    else:                                # σ(x + Σ_j a_ij T_j + c_i 1 hbᵀ)
                        ci = 0.0
                        for j in range(i):
                            ci += A[i, j]
                        j0 = _first(A[i], 0, i)
                        if _first(A[i], j0 + 1, i) == i:   # one term (heun, rk4): one pass
                            _act_lin(Si, x, ci, Bk, A[i, j0] if j0 < i else 0.0, T[min(j0, i - 1)], act)
                        else:                            # (σ from a scratch block: in place would
                            _lin(Y, 1.0, x, ci, Bk, T, A[i], 0, i)          # not vectorise)
                            _apply(_flat(Y), _flat(Si), act)
                    if i < s - 1:
                        _gemm(False, False, Si, hKT[k], T[i], 1.0, 0.0, ab)         # T_i = S_i hKᵀ
                if s > 1:                                # x += (Σ b) 1 hbᵀ + Σ_{i<s} b_i T_i
                    _acc(x, sb, Bk, T, bw, 0, s - 1)
                else:
                    _gemm(False, False, ones, hb[k:k + 1], x, sb, 1.0, ab)
                _gemm(False, False, Sk[s - 1], hKT[k], x, bw[s - 1], 1.0, ab)      # + b_s S_s hKᵀ
                _add_inc(inc, k, c0, w, x.T)
                if keep:
                    _store_rows(x, w, Xall[k + 1], c0)
            _store_rows(x, w, XN, c0)
        if keep:
            Xall[0] = X0

    @_jit(fastmath=_FM)
    def outer_backward(Ch, bw, hK, S, PN, h, GK, Gb, Pall):
        """Outer-form RK backward in row form, sample-blocked, from ``p_N`` in ``PN`` (n, d) over
        the blocks ``S`` of :func:`outer_forward` (padding rows get p = 0: they add nothing);
        ``Ch`` (s, s) the weighted costate coefficients ``Ĉ``, ``hK`` (N, d, d) = h K̃. Stages
        i = s..1: ``W_i = b_i λ + Σ_{j>i} Ĉ_ij R_j``, ``R_i = σ'(Y_i) ⊙ (W_i hK)``; then
        ``p_k = λ + Σ_i R_i``. ``GK`` (N, d, d) and ``Gb`` (N, d) get ``h Σ_i W_iᵀ S_i`` and
        ``h Σ_i W_iᵀ 1`` (∂J/∂K̃_k, ∂J/∂b̃_k of the data term; BLAS accumulates them block by
        block); ``Pall`` (N+1, n, d) receives every costate, (1, n, d) p_0 only, or is (0, 0, 0).
        The last stage reads λ itself (``W_s = b_s λ``: b_s goes into the products) and the first
        stage's R is formed in the update of p: Euler is three products and one pass a layer."""
        N, s = hK.shape[0], bw.shape[0]
        n, d = PN.shape
        nb = S.shape[3]
        keep, full = Pall.shape[0] > 0, Pall.shape[0] > 1
        mb = nb if s > 1 else 0                          # (Euler needs none of the stage blocks)
        lam, g, W, pk = np.empty((nb, d)), np.empty((nb, d)), np.empty((mb, d)), np.empty((mb, d))
        R = np.empty((s, mb, d))
        ones = np.ones((nb, 1))
        ab = np.empty(2)
        GK[:] = 0.0
        Gb[:] = 0.0
        for c0 in range(0, n, nb):
            w = min(nb, n - c0)
            _load_rows(PN, c0, w, lam)
            for k in range(N - 1, -1, -1):
                Sk = S[c0 // nb, k]
                for i in range(s - 1, -1, -1):
                    Wi, wi = (lam, bw[i]) if i == s - 1 else (W, 1.0)
                    _gemm(True, False, Wi, Sk[i], GK[k], h * wi, 1.0, ab)                   # += h Wᵀ S
                    _gemm(True, False, Wi, ones, Gb[k].reshape((d, 1)), h * wi, 1.0, ab)    # += h Wᵀ 1
                    _gemm(False, False, Wi, hK[k], g, wi, 0.0, ab)                        # g = W hK
                    if i > 0:                # R_i = σ' ⊙ g, p_k (in pk) += R_i, W_{i-1} in one pass
                        _stage_costate(Sk[i], g, lam, pk, i == s - 1, R[i], W, bw[i - 1], Ch[i - 1, i], act)
                        _acc(W, 0.0, W, R, Ch[i - 1], i + 1, s)  # + Σ_{j>i} Ĉ_{i-1,j} R_j
                if s == 1:
                    _costate_pass(_flat(Sk[0]), _flat(g), _flat(lam), act)             # λ + σ' ⊙ g
                else:
                    _costate_pass(_flat(Sk[0]), _flat(g), _flat(pk), act)
                    lam, pk = pk, lam
                if full:
                    _store_rows(lam, w, Pall[k], c0)
            if keep and not full:
                _store_rows(lam, w, Pall[0], c0)
        if full:
            Pall[N] = PN

    @_jit(fastmath=_FM)
    def inner_forward(A, bw, M, hD, X0, XN, Xk, Sg, inc, Xall):
        """Inner-form RK forward, sample-blocked. ``M`` (N, d, d+1) = [K̃ | b̃],
        ``hD`` (d,) the signed steps; ``Xk`` (B, N, d+1, nb) receives ``[x_k; 1]`` (its last row
        is ones, set by the caller) and
        ``Sg`` (B, N, s, d, nb) σ(K̃ Y_i + b̃) per block, or they are (0, N, d, nb) and
        (0, N, s, d, nb): cost only (the stage inputs Y_i, i > 1, are not stored: the backward
        recomputes them from x_k and Σ_j); ``inc`` as in :func:`outer_forward`, ``X0``, ``XN``
        (d, n) and ``Xall`` (N+1, d, n) as there, feature-major."""
        N, s = M.shape[0], bw.shape[0]
        d, n = X0.shape
        nb = Sg.shape[4]
        store = Sg.shape[0] > 0
        keep = Xall.shape[0] > 0
        xr = np.empty((2, d + 1, nb))                    # x_k when not stored, in turn
        ab = np.empty(2)
        Yi = np.empty((d, nb if s > 1 else 0))
        scrS = np.empty((0 if store else s, d, nb))
        for c0 in range(0, n, nb):
            w = min(nb, n - c0)
            x = Xk[c0 // nb, 0, :d] if store else xr[0, :d]
            _load_block(X0, c0, w, x)
            for k in range(N):
                Sk = Sg[c0 // nb, k] if store else scrS
                for i in range(s):
                    Si = Sk[i]
                    if i == 0:
                        _gemm(False, False, M[k, :, :d], x, Si, 1.0, 0.0, ab)
                    else:
                        _inner_stage_input(Yi, x, Sk, A, i, hD)
                        _gemm(False, False, M[k, :, :d], Yi, Si, 1.0, 0.0, ab)
                    for r in range(d):                   # σ(K Y + b)
                        for c in range(nb):
                            Si[r, c] = value(act, Si[r, c] + M[k, r, d])
                y = Xk[c0 // nb, k + 1, :d] if store and k < N - 1 else xr[(k + 1) % 2, :d]
                for r in range(d):                       # x_{k+1} = x + hD Σ b_i Σ_i
                    _comb_row(y, r, x, 1.0, 0.0, Sk, bw, 0, s, hD[r])
                _add_inc(inc, k, c0, w, y)
                x = y
                if keep:
                    _store_block(x, w, Xall[k + 1], c0)
            _store_block(x, w, XN, c0)
        if keep:
            Xall[0] = X0

    @_jit(fastmath=_FM)
    def inner_backward(A, Ch, bw, hKT, hD, Xk, Sg, PN, G, Pall):
        """Inner-form RK backward over the blocks ``Xk``, ``Sg`` of :func:`inner_forward` (stage
        inputs recomputed); ``hKT`` (N, d, d) = h K̃ᵀ D; ``PN``, ``G``, ``Pall`` as in
        :func:`outer_backward`, with ``G_k = Σ_samples Σ_i W_i [Y_i; 1]ᵀ``,
        ``W_i = σ'_i ⊙ (b_i λ + Σ_{j>i} Ĉ_ij R_j)``."""
        N, s = hKT.shape[0], bw.shape[0]
        d, n = PN.shape
        nb = Sg.shape[4]
        keep = Pall.shape[0] > 0
        full = Pall.shape[0] > 1
        lam = np.empty((d, nb))
        W = np.empty((s, d, nb))
        R = np.empty((s, d, nb if s > 1 else 0))          # (R_0 is never formed: BLAS adds it)
        Y = np.empty((s, d + 1, nb if s > 1 else 0))    # [Y_i; 1]
        Y[:, d] = 1.0
        ab = np.empty(2)
        G[:] = 0.0
        for c0 in range(0, n, nb):
            w = min(nb, n - c0)
            _load_block(PN, c0, w, lam)
            for k in range(N - 1, -1, -1):
                x = Xk[c0 // nb, k]
                Sk = Sg[c0 // nb, k]
                Gk = G[k]
                for i in range(1, s):
                    _inner_stage_input(Y[i], x[:d], Sk, A, i, hD)
                for i in range(s - 1, -1, -1):
                    Wi = W[i]
                    single = True                        # at most the term j = i + 1 (rk4, heun)
                    for j in range(i + 2, s):
                        if Ch[i, j] != 0.0:
                            single = False
                    for r in range(d):
                        if single:
                            if i < s - 1:
                                _dmul_lin_row(Sk[i], Wi, lam, bw[i], R[i + 1], Ch[i, i + 1], r, act)
                            else:                        # (R is not yet set: 0 · λ)
                                _dmul_lin_row(Sk[i], Wi, lam, bw[i], lam, 0.0, r, act)
                        else:
                            _comb_row(Wi, r, lam, bw[i], 0.0, R, Ch[i], i + 1, s, 1.0)
                            for c in range(nb):          # W_i *= σ'_i
                                Wi[r, c] = mul_deriv(act, Sk[i, r, c], Wi[r, c])
                    _gemm(False, True, Wi, x if i == 0 else Y[i], Gk, 1.0, 1.0, ab)     # += W [Y; 1]ᵀ
                    if i > 0:
                        np.dot(hKT[k], Wi, R[i])
                for r in range(d):                       # p_k = λ + Σ R_i, in place (R_0 by BLAS)
                    for i in range(1, s):
                        Ri = R[i]
                        for c in range(nb):
                            lam[r, c] += Ri[r, c]
                _gemm(False, False, hKT[k], W[0], lam, 1.0, 1.0, ab)
                if full:
                    _store_block(lam, w, Pall[k], c0)
            if keep and not full:
                _store_block(lam, w, Pall[0], c0)
        if full:
            Pall[N] = PN

    return SimpleNamespace(outer_forward=outer_forward, outer_backward=outer_backward,
                           inner_forward=inner_forward, inner_backward=inner_backward)
