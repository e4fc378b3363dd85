"""Compiled whole-sweep kernels for the drift/kick splittings on a separable field (numba).

Same mathematics as :func:`ocdl.pmp.torch_sweeps.split_sweep` (tested against torch
autograd), with the loops over layers and sub-steps inside compiled code. A sub-step
``t = k L + j`` (layer k, sub-step j of the splitting's list ``subs``) changes one half of the
state and reads the other, through the ``(m × m)`` block ``K_t`` of its full-width matrix
``A_t`` on the columns of the half it reads, and its bias ``b_t``; ``ch_j = c_j h s_j``
(hamiltonian: drift ``q ← q + c h σ(K p + b)``, kick ``p ← p − c h σ(Kᵀ q + b)``):

    forward   S_t = σ(K_t r_t + b_t),        w ← w + ch_j S_t         (r read, w written)
    backward  U_t = σ'(S_t) ⊙ λ_w,           λ_r ← λ_r + ch_j K_tᵀ U_t,
              ∂J/∂[K_t | b_t] = ch_j U_t [r_t; 1]ᵀ                     (summed over samples)

(drift: w = q, r = p; kick: w = p, r = q). σ' is read off the stored σ as in
:mod:`ocdl.pmp.kernels`.

**Storage without copies.** Every half-state a sub-step writes is a fresh slot of ``H``
((slots, m+1, n), last row ones): slot 0 holds q_0, slot 1 p_0, slot t+2 the output of
sub-step t. The input ``r_t`` of sub-step t is then the slot last written for the other half
(``src[t]``), and its update reads the slot last written for its own half (``prev[t]``) —
so the forward stores every sub-step input without copying anything, and the backward
contracts ``U_t`` with ``[r_t; 1]`` straight from ``H`` (one BLAS call gives the K and the bias
gradient). The cost-only forward uses two slots updated in place (q in 0, p in 1).

**Products** are BLAS calls (``np.dot`` from the compiled loop) with inner dimension m: the
bias is added in the elementwise pass (``z ← σ(z + b)`` and the half-state update in one loop),
not as a column of ones, which would make it m + 1. At m = 4 a hand-written loop for
``λ_r += ch Kᵀ U`` was no faster than the BLAS call and an add (0.68 vs 0.70 µs at n = 512),
and for ``K r`` slower (0.82 vs 0.46 µs).
"""
import functools
from types import SimpleNamespace

import numba
import numpy as np

from ocdl.pmp.kernels import _FM, _add_rows, _deriv_mul, _jit, forms, mul_deriv, value


@numba.njit(inline="always", fastmath=_FM)
def _act_update(z, b, ch, prev, out, act):
    """``z ← σ(z + b)`` (b per row) and ``out = prev + ch z``, one pass (``out`` must not be
    ``prev``: see :func:`_act_add`)."""
    for i in range(z.shape[0]):
        bi = b[i]
        for c in range(z.shape[1]):
            s = value(act, z[i, c] + bi)
            z[i, c] = s
            out[i, c] = prev[i, c] + ch * s


@numba.njit(inline="always", fastmath=_FM)
def _act_add(z, b, ch, out, act):
    """``out += ch σ(z + b)`` (b per row), one pass; the in-place update of the cost-only
    forward (a separate loop: with ``out`` also passed as ``prev`` to :func:`_act_update`
    the compiler's overlap check sends every element down the scalar path, 7× slower)."""
    for i in range(z.shape[0]):
        bi = b[i]
        for c in range(z.shape[1]):
            out[i, c] += ch * value(act, z[i, c] + bi)


@numba.njit(inline="always", fastmath=_FM)
def _add_deriv_mul(g, lam, s, U, act):
    """``lam += g`` and ``U = σ'(z) ⊙ lam`` given ``s = σ(z)``, one pass (the costate update
    of a sub-step fused with the next sub-step's ``U``, when that one reads ``lam``)."""
    for i in range(lam.shape[0]):
        for c in range(lam.shape[1]):
            v = lam[i, c] + g[i, c]
            lam[i, c] = v
            U[i, c] = mul_deriv(act, s[i, c], v)


@functools.cache
def split(act):
    """The splitting kernels for the activation object ``act`` (compiled on first use, cached on
    disk per activation): ``split_forward``, ``split_backward``."""
    act = forms(act)

    @_jit(fastmath=_FM)
    def split_forward(K, bias, ch, src, prev, dst, H, Sg):
        """Forward sweep over all sub-steps t = k L + j: ``S = σ(K[k, j] H[src[t]] + bias[k, j])``,
        ``H[dst[t]] = H[prev[t]] + ch[j] S`` (rows :m of the slots). ``K`` (N, L, m, m),
        ``bias`` (N, L, m); ``Sg`` (N L, m, n) receives every S, or is (0, m, n): cost only."""
        N, L, m = K.shape[0], K.shape[1], K.shape[2]
        n = H.shape[2]
        store = Sg.shape[0] > 0
        z = np.empty((m, n))
        for k in range(N):
            for j in range(L):
                t = k * L + j
                if store:
                    s = Sg[t]
                    np.dot(K[k, j], H[src[t], :m], s)
                    _act_update(s, bias[k, j], ch[j], H[prev[t], :m], H[dst[t], :m], act)
                else:
                    np.dot(K[k, j], H[src[t], :m], z)
                    _act_add(z, bias[k, j], ch[j], H[dst[t], :m], act)

    @_jit(fastmath=_FM)
    def split_backward(chKT, drift, src, H, Sg, lam, G, Pall):
        """Backward sweep from ``lam`` ((d, n), ``[λ_q; λ_p]`` = p_N, updated in place to p_0)
        over the stored ``H``, ``Sg`` of :func:`split_forward`: per sub-step in reverse
        ``U = σ'(S) ⊙ λ_w``, ``λ_r += chKT[k, j] U`` (``chKT = ch K_tᵀ``) and
        ``G[k, j] = U [r; 1]ᵀ`` (N, L, m, m+1; times ch_j by the caller). When the sub-step
        before reads the λ_r just updated (drift and kick alternate), its ``U`` is formed in
        the same pass. ``Pall`` (N+1, d, n) receives p_k at every layer boundary k < N, or is
        (0, d, n)."""
        N, L, m = chKT.shape[0], chKT.shape[1], chKT.shape[2]
        n = H.shape[2]
        keep = Pall.shape[0] > 0
        U = np.empty((m, n))
        g = np.empty((m, n))
        ready = False                            # U of sub-step t already formed
        for t in range(N * L - 1, -1, -1):
            k, j = t // L, t % L
            lw = lam[:m] if drift[j] else lam[m:]
            lr = lam[m:] if drift[j] else lam[:m]
            if not ready:
                _deriv_mul(Sg[t], lw, U, act)
            np.dot(U, H[src[t]].T, G[k, j])
            np.dot(chKT[k, j], U, g)
            ready = t > 0 and drift[(t - 1) % L] != drift[j]
            if ready:
                _add_deriv_mul(g, lr, Sg[t - 1], U, act)
            else:
                _add_rows(g, lr)
            if keep and j == 0:
                Pall[k] = lam

    return SimpleNamespace(split_forward=split_forward, split_backward=split_backward)


def slots(kinds, N, store=True):
    """Slot indices ``(src, prev, dst)`` (int64, N L each) of the sub-steps of :func:`split_forward`
    for the drift/kick pattern ``kinds`` (True = drift) repeated over N layers, and the slots
    ``(qend, pend)`` (N+1 each) holding q_k and p_k at the layer boundaries. ``store=False``:
    two slots updated in place (q in 0, p in 1)."""
    drift = np.tile(np.asarray(kinds, dtype=bool), N)
    T = drift.size
    if not store:
        src = np.where(drift, 1, 0).astype(np.int64)
        dst = np.where(drift, 0, 1).astype(np.int64)
        return src, dst, dst, None, None
    out = np.arange(2, T + 2, dtype=np.int64)
    lastq = np.maximum.accumulate(np.where(drift, out, 0))      # slot of q after sub-step t
    lastp = np.maximum.accumulate(np.where(drift, 1, out))      # slot of p after sub-step t
    qbefore = np.concatenate([[0], lastq[:-1]])
    pbefore = np.concatenate([[1], lastp[:-1]])
    src = np.where(drift, pbefore, qbefore)
    prev = np.where(drift, qbefore, pbefore)
    L = len(kinds)
    qend = np.concatenate([[0], lastq[L - 1::L]])
    pend = np.concatenate([[1], lastp[L - 1::L]])
    return src, prev, out, qend, pend
