"""Compiled whole-sweep kernels for explicit Runge–Kutta layers on the fused forms (numba).

The counterpart of :mod:`ocdl.pmp.kernels` (Euler) for any explicit tableau ``(A, b)`` with all
weights ``b_i ≠ 0`` (heun, rk4, …): the loops over layers and stages run inside compiled code,
the matrix products are BLAS calls (``np.dot`` with ``out``) with the matrix ``K`` only — the
bias is added in the elementwise pass that follows, and its gradient is a row sum taken in an
elementwise pass — and the elementwise work of a stage is one pass over the rows of the block
(each row stays in L1 while all terms of the stage sum are added into it). Large sample sets
are cut into chunks of c columns (:func:`chunking`, blocks ``(d, c)`` of ~128 KB) and each chunk
runs through all layers on its own, so that a layer's blocks stay in cache (d = 64, n = 4000,
rk4: forward −20 %, gradient −12 %); at d n ≤ 16384 there is one chunk. Same mathematics and
feature-major layout as :func:`ocdl.pmp.fused.forward` and :func:`ocdl.pmp.fused.costate_sweep`
(whose numpy code is the fallback and the tested reference).

Forward, layer k, stages i = 1..s (``K̃, b̃`` the field's embedded matrix and bias):

    outer  Y_i = x_k + Σ_{j<i} a_ij T_j + c_i h b̃,   S_i = σ(Y_i),   T_i = h K̃ S_i,
           x_{k+1} = x_k + Σ_i b_i T_i + (Σ_i b_i) h b̃  (+ ξ_k)          [h f(Y_i) = T_i + h b̃]
    inner  Y_i = x_k + hD ⊙ Σ_{j<i} a_ij Σ_j,      Σ_i = σ(K̃ Y_i + b̃),
           x_{k+1} = x_k + hD ⊙ Σ_i b_i Σ_i  (+ ξ_k)                      [h f(Y_i) = hD ⊙ Σ_i]

with ``c_i = Σ_j a_ij``; stored per layer and stage: outer ``S_i``, inner ``Y_i`` and ``Σ_i``.

Backward, layer k, from ``λ = p_{k+1}``, stages i = s..1, with the weighted stage quantities
``W_i = b_i U_i`` (outer ``U_i = P_i``, inner ``U_i = σ'_i ⊙ P_i``) and ``R_i = b_i h (∂f/∂x(Y_i))ᵀ P_i``:

    W_i = [σ'_i ⊙] (b_i λ + Σ_{j>i} Ĉ_ij R_j),    Ĉ_ij = −b_i C_ij / b_j,
    R_i = outer σ'_i ⊙ (h K̃ᵀ W_i),  inner h K̃ᵀ D W_i,
    p_k = λ + Σ_i R_i,      G_k = Σ_i W_i [a_i; 1]ᵀ   (a = S outer, Y inner; ∂J/∂M_k = h D ⊙ G_k)

— the recursion of :func:`ocdl.pmp.fused.costate_sweep` (``P_i = λ − h Σ_{j>i} C_ij
(∂f/∂x(Y_j))ᵀ P_j``, ``C = integrators.tableaux.costate_coefficients(A, b)``) with ``b_i``
folded into the stage quantities, so that the θ-contraction needs no extra scaling pass.
Sums are in another order than numpy's: the two paths agree to round-off (tested ≤ 1e-12
relative, and both against torch autograd). Fast-math flags as in :mod:`ocdl.pmp.kernels`.
"""
import numpy as np

from ocdl.pmp.kernels import numba

if numba is not None:
    from ocdl.pmp.kernels import _FM, _jit, _softplus, _tanh

    # Row helpers: ``r`` one row of a (d, n) block; the activation code is tested outside the
    # loop over the row, so each loop body is branch-free (vectorisable).

    @numba.njit(inline="always", fastmath=_FM)
    def _act_row(z, out, r, shift, code):
        """``out[r] = σ(z[r] + shift)`` (``out`` may be ``z``)."""
        n = z.shape[1]
        if code == 0:
            for c in range(n):
                out[r, c] = _tanh(z[r, c] + shift)
        elif code == 1:
            for c in range(n):
                out[r, c] = max(z[r, c] + shift, 0.0)
        else:
            for c in range(n):
                out[r, c] = _softplus(z[r, c] + shift)

    @numba.njit(inline="always", fastmath=_FM)
    def _dmul_row(s, v, r, code):
        """``v[r] *= σ'`` given the stored ``s = σ`` (tanh ``1 − s²``, relu ``[s > 0]``,
        softplus ``−expm1(−s)``)."""
        n = s.shape[1]
        if code == 0:
            for c in range(n):
                v[r, c] = (1.0 - s[r, c] * s[r, c]) * v[r, c]
        elif code == 1:
            for c in range(n):
                v[r, c] = v[r, c] if s[r, c] > 0.0 else 0.0
        else:
            for c in range(n):
                v[r, c] = -np.expm1(-s[r, c]) * v[r, c]

    @numba.njit(inline="always", fastmath=_FM)
    def _comb_row(out, r, base, bscale, add, T, coef, lo, hi, rs):
        """``out[r] = bscale base[r] + add + rs Σ_{lo ≤ j < hi} coef_j T_j[r]`` (zero coefficients
        skipped; ``out`` may be ``base``)."""
        n = out.shape[1]
        if bscale == 1.0:
            for c in range(n):
                out[r, c] = base[r, c] + add
        else:
            for c in range(n):
                out[r, c] = bscale * base[r, c] + add
        for j in range(lo, hi):
            w = coef[j] * rs
            if w != 0.0:
                Tj = T[j]
                for c in range(n):
                    out[r, c] += w * Tj[r, c]

    @numba.njit(fastmath=_FM | {"reassoc"}, boundscheck=False, cache=True)
    def _row_sum(v, r):
        """``Σ_c v[r, c]``. Reassociation allowed here only (not inlined at the IR level, so
        the flag stays on this function): the sum vectorises into independent partial sums —
        a strict left-to-right sum is one serial chain of dependent adds, ~10× slower (12 µs
        against 1.2 µs for the 4 × 8 rows of 512 of an rk4 layer at d = 8)."""
        acc = 0.0
        for c in range(v.shape[1]):
            acc += v[r, c]
        return acc

    @numba.njit(inline="always", fastmath=_FM)
    def _add_contraction(W, a, tmp, Gk):
        """``Gk[:, :d] += W aᵀ`` (BLAS into ``tmp``, then added)."""
        np.dot(W, a.T, tmp)
        d = tmp.shape[0]
        for r in range(d):
            for q in range(d):
                Gk[r, q] += tmp[r, q]

    # One chunk of samples: ``(d, c)`` blocks. The entry points below loop over the chunks.

    @numba.njit(inline="always", fastmath=_FM)
    def _outer_forward_chunk(A, bw, hK, hb, X, S, T, inc, code):
        N, s = hK.shape[0], bw.shape[0]
        d = X.shape[1]
        full = X.shape[0] == N + 1
        store = S.shape[0] == N
        sb = 0.0
        for i in range(s):
            sb += bw[i]
        cur = 0
        for k in range(N):
            nx = k + 1 if full else (k + 1) % 2
            x = X[cur]
            Sk = S[k] if store else S[0]
            for i in range(s):
                ci = 0.0
                for j in range(i):
                    ci += A[i, j]
                Si = Sk[i]
                for r in range(d):                       # S_i = σ(x + Σ a_ij T_j + c_i h b)
                    _comb_row(Si, r, x, 1.0, ci * hb[k, r], T, A[i], 0, i, 1.0)
                    _act_row(Si, Si, r, 0.0, code)
                np.dot(hK[k], Si, T[i])                  # T_i = h K S_i
            y = X[nx]
            for r in range(d):                           # x + Σ b_i T_i + (Σ b) h b
                _comb_row(y, r, x, 1.0, sb * hb[k, r], T, bw, 0, s, 1.0)
            if inc.shape[0] > 0:
                y += inc[k]
            cur = nx
        return cur

    @numba.njit(inline="always", fastmath=_FM)
    def _outer_backward_chunk(Ch, bw, hKT, S, P, G, W, R, tmp, code):
        N, s = hKT.shape[0], bw.shape[0]
        d = P.shape[1]
        full = P.shape[0] == N + 1
        cur = N if full else N % 2
        for k in range(N - 1, -1, -1):
            nx = k if full else k % 2
            lam = P[cur]
            Sk = S[k]
            Gk = G[k]
            for i in range(s - 1, -1, -1):
                Wi = W[i]
                for r in range(d):
                    if i < s - 1:
                        _dmul_row(Sk[i + 1], R[i + 1], r, code)   # finish R_{i+1} = σ' ⊙ h Kᵀ W
                    _comb_row(Wi, r, lam, bw[i], 0.0, R, Ch[i], i + 1, s, 1.0)
                    Gk[r, d] += _row_sum(Wi, r)
                np.dot(hKT[k], Wi, R[i])
                _add_contraction(Wi, Sk[i], tmp, Gk)
            out = P[nx]
            for r in range(d):                           # p_k = λ + Σ R_i
                _dmul_row(Sk[0], R[0], r, code)
                for c in range(out.shape[1]):
                    out[r, c] = lam[r, c]
                for i in range(s):
                    Ri = R[i]
                    for c in range(out.shape[1]):
                        out[r, c] += Ri[r, c]
            cur = nx
        return cur

    @numba.njit(inline="always", fastmath=_FM)
    def _inner_forward_chunk(A, bw, Kt, bt, hD, Y, Sg, xN, inc, code):
        N, s = Kt.shape[0], bw.shape[0]
        d = xN.shape[0]
        store = Y.shape[0] == N
        for k in range(N):
            Yk = Y[k] if store else Y[0]
            Sk = Sg[k] if store else Sg[0]
            x = Yk[0]
            for i in range(s):
                Yi = Yk[i]
                if i > 0:
                    for r in range(d):                   # Y_i = x + hD Σ a_ij Σ_j
                        _comb_row(Yi, r, x, 1.0, 0.0, Sk, A[i], 0, i, hD[r])
                Si = Sk[i]
                np.dot(Kt[k], Yi, Si)
                for r in range(d):
                    _act_row(Si, Si, r, bt[k, r], code)  # σ(K Y + b)
            if k == N - 1:
                y = xN
            else:
                y = Y[k + 1, 0] if store else x          # in place: row by row, same index
            for r in range(d):
                _comb_row(y, r, x, 1.0, 0.0, Sk, bw, 0, s, hD[r])
            if inc.shape[0] > 0:
                y += inc[k]

    @numba.njit(inline="always", fastmath=_FM)
    def _inner_backward_chunk(Ch, bw, hKT, Y, Sg, P, G, W, R, tmp, code):
        N, s = hKT.shape[0], bw.shape[0]
        d, n = P.shape[1], P.shape[2]
        full = P.shape[0] == N + 1
        cur = N if full else N % 2
        for k in range(N - 1, -1, -1):
            nx = k if full else k % 2
            lam = P[cur]
            Gk = G[k]
            for i in range(s - 1, -1, -1):
                Wi = W[i]
                for r in range(d):
                    _comb_row(Wi, r, lam, bw[i], 0.0, R, Ch[i], i + 1, s, 1.0)
                    _dmul_row(Sg[k, i], Wi, r, code)
                    Gk[r, d] += _row_sum(Wi, r)
                np.dot(hKT[k], Wi, R[i])
                _add_contraction(Wi, Y[k, i], tmp, Gk)
            out = P[nx]
            for r in range(d):                           # p_k = λ + Σ R_i
                for c in range(n):
                    out[r, c] = lam[r, c]
                for i in range(s):
                    Ri = R[i]
                    for c in range(n):
                        out[r, c] += Ri[r, c]
            cur = nx
        return cur

    # Entry points. Samples come in chunks of c columns (leading axis of every per-sample array):
    # each chunk runs through all layers while its blocks stay in cache.

    @_jit(fastmath=_FM)
    def outer_forward(A, bw, hK, hb, X, S, T, inc, code):
        """Outer-form RK forward. ``hK`` (N, d, d) = h K̃, ``hb`` (N, d) = h b̃; ``X`` (m, N+1, d, c)
        all states or (m, 2, d, c) rotating, x_0 in ``X[:, 0]``; ``S`` (m, N, s, d, c) stored
        σ(Y_i) or (m, 1, s, d, c) scratch; ``T`` (s, d, c) scratch; ``inc`` (m, N, d, c)
        increments or (m, 0, d, c). Returns the index of x_N in ``X[ch]``."""
        last = 0
        for ch in range(X.shape[0]):
            last = _outer_forward_chunk(A, bw, hK, hb, X[ch], S[ch], T, inc[ch], code)
        return last

    @_jit(fastmath=_FM)
    def outer_backward(Ch, bw, hKT, S, P, G, W, R, tmp, code):
        """Outer-form RK backward from ``p_N`` in ``P[:, -1]`` (``P`` (m, N+1, d, c) all costates,
        or (m, 2, d, c) rotating with p_N in ``P[:, N % 2]``); ``Ch`` (s, s) the weighted costate
        coefficients ``Ĉ``; ``hKT`` (N, d, d) = h K̃ᵀ; ``S`` the stored σ(Y_i); ``G`` (N, d, d+1)
        gets ``Σ_i W_i [S_i; 1]ᵀ`` summed over the chunks; ``W``, ``R`` (s, d, c) and ``tmp``
        (d, d) scratch. Returns the index of p_0 in ``P[ch]``."""
        G[:] = 0.0
        last = 0
        for ch in range(P.shape[0]):
            last = _outer_backward_chunk(Ch, bw, hKT, S[ch], P[ch], G, W, R, tmp, code)
        return last

    @_jit(fastmath=_FM)
    def inner_forward(A, bw, Kt, bt, hD, Y, Sg, xN, inc, code):
        """Inner-form RK forward. ``Kt`` (N, d, d) = K̃, ``bt`` (N, d) = b̃, ``hD`` (d,) the
        signed steps; ``Y`` (m, N, s, d, c) stored stage inputs (``Y[:, k, 0] = x_k``, x_0 given
        there) or (m, 1, s, d, c) scratch; ``Sg`` stored σ(K̃ Y_i + b̃) likewise; ``xN`` (m, d, c)
        gets x_N; ``inc`` as in :func:`outer_forward`."""
        for ch in range(Y.shape[0]):
            _inner_forward_chunk(A, bw, Kt, bt, hD, Y[ch], Sg[ch], xN[ch], inc[ch], code)

    @_jit(fastmath=_FM)
    def inner_backward(Ch, bw, hKT, Y, Sg, P, G, W, R, tmp, code):
        """Inner-form RK backward (``Y``, ``Sg`` all stages stored); ``hKT`` (N, d, d) = h K̃ᵀ D;
        ``P``, ``G``, scratch and the return value as in :func:`outer_backward`, with
        ``G_k = Σ_i W_i [Y_i; 1]ᵀ``, ``W_i = σ'_i ⊙ (b_i λ + Σ_{j>i} Ĉ_ij R_j)``."""
        G[:] = 0.0
        last = 0
        for ch in range(P.shape[0]):
            last = _inner_backward_chunk(Ch, bw, hKT, Y[ch], Sg[ch], P[ch], G, W, R, tmp, code)
        return last


def weighted_coefficients(A, bw):
    """``Ĉ_ij = −b_i C_ij / b_j`` (C = ``costate_coefficients(A, b)``; explicit: ``= a_ji`` for
    j > i), the coefficients of the weighted stage costates of the backward kernels."""
    from integrators.tableaux import costate_coefficients
    C = costate_coefficients(A, bw)
    return np.ascontiguousarray(-bw[:, None] * C / bw[None, :])


def chunking(n, d, block=16384):
    """``(m, c)``: the samples are cut into m chunks of c columns (the last one zero-padded,
    m c ≥ n) so that a ``(d, c)`` block holds about ``block`` floats (128 KB) and the blocks of
    a layer stay in cache; one chunk for small ``d n`` (d = 8: up to 2048 samples), and no
    chunk narrower than 64 columns (the matrix products get inefficient)."""
    m = max(1, -(-(d * n) // block))
    c = max(-(-n // m), min(n, 64))
    return -(-n // c), c


def to_chunks(a, m, c, out):
    """``out[j] = a[j c:(j+1) c]ᵀ`` for sample-major ``a`` (n, d) into ``out`` (m, d, c), the
    padding columns zeroed; returns ``out``."""
    n = a.shape[0]
    pad = np.zeros((m * c, a.shape[1]))
    pad[:n] = a
    out[...] = pad.reshape(m, c, -1).transpose(0, 2, 1)
    return out


def from_chunks(b, n):
    """Feature-major ``(…, d, n)`` (a fresh array) from chunked ``b`` (m, …, d, c)."""
    t = np.moveaxis(b, 0, -2)                       # (…, d, m, c)
    out = t.reshape(t.shape[:-2] + (-1,))[..., :n]  # a copy unless m = 1
    return out.copy() if np.may_share_memory(out, b) else out
