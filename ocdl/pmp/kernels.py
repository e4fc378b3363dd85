"""Compiled whole-sweep kernels for the fused Euler sweeps (numba; optional accelerator).

The loops over layers run inside compiled code, so a layer costs no Python or numpy call
overhead, and each layer's block is touched in as few passes as possible. Same mathematics as
:func:`ocdl.pmp.fused.euler_value_and_grad` (whose numpy code is the fallback and the tested
reference). The outer form runs in **row form** (one sample per row, the layout the model
lifts the data in), the inner form feature-major (one sample per column, as the numpy sweep):

    outer  forward   S_k = σ(x_k),                 x_{k+1} = x_k + S_k h K_kᵀ + 1 h b_kᵀ (+ ξ_k)
           backward  g = p_{k+1} h K_k,            p_k = p_{k+1} + σ'(x_k) ⊙ g,
                     ∂J/∂K_k = h p_{k+1}ᵀ S_k,     ∂J/∂b_k = h p_{k+1}ᵀ 1      (rows: samples)
    inner  forward   Σ_k = σ(M_k [x_k; 1]),        x_{k+1} = x_k + h D ⊙ Σ_k (+ ξ_k)
           backward  U = σ'_k ⊙ p_{k+1},            p_k = p_{k+1} + h M̃_kᵀ D U,
                     G_k = U [x_k; 1]ᵀ                                      (columns: samples)

σ' is read off the stored σ (tanh ``1 − σ²``, relu ``[σ > 0]``, softplus ``−expm1(−σ)``).

**Sample blocks (outer form).** Samples are independent until the θ-contraction, so the outer
sweeps run the samples in blocks of ``nb`` rows (:func:`block_width`: ~12 288 floats, 96 KiB,
per (nb, d) block) and take each block through *all* layers before the next: the block's
state, σ and product stay in the core's L2 cache instead of streaming (n, d) arrays through
L3 once per pass (measured at d = 64, n = 4000: 8 % off the forward, 12 % off the backward;
one block — no change — at d = 8, n = 512). The stored ``σ(x_k)`` are kept per block,
(B, N, nb, d); the last block is padded with zero states and zero costates, which add nothing to
the gradient. The products go to BLAS dgemm through numba's own binding (``numba_xxgemm``, what
``np.dot`` calls — resolved by name, so the kernels stay cacheable), which unlike ``np.dot`` can
accumulate and transpose: per layer and block the forward updates x in place (``x += σ hKᵀ``,
``x += 1 hbᵀ``) and forms the next σ in one flat pass; the backward accumulates ``h pᵀσ`` and
``h pᵀ1`` straight into the gradient, forms ``g = p hK`` and updates p in one flat pass — no
elementwise loop breaks at row ends. **Why rows:** the same three products in the
feature-major layout took 2.03 ms a layer at d = 64 (the contraction over the samples,
``p [σ; 1]ᵀ``, in OpenBLAS's slow orientation here, alone 0.85 ms) against 1.75 ms in row form
(1.35 + 0.90 ms a layer for backward + forward now, against 1.5 + 0.95); at d = 8 the products
cost about the same, and the flat passes took 0.45 µs a layer off (6.1 + 4.4 → 5.9 + 4.1 µs).

**Terminal.** :func:`logistic_terminal` is the compiled twin of the two-class head and loss of
:mod:`ocdl.models.losses` (logit, logistic loss, ∇_s and ``p_N = ∇_s wᵀ`` in one pass): at
n = 512 it replaces ~20 µs of numpy calls.

**tanh.** numpy's ``tanh`` costs ~1.7 ns per element here, half the forward sweep; libm's
scalar ``tanh`` in compiled code is slower still. :func:`_tanh` is branch-free so the
compiler vectorises it (AVX-512 / AVX2):

    tanh x = sign(x) · (−e / (2 + e)),   e = expm1(−2 min(|x|, 20)),
    expm1(y) = 2ᵏ expm1(r) + (2ᵏ − 1),   y = k ln2 + r,  |r| ≤ ln2/2,  k = round(y / ln2),

with ``ln2`` split in a high and a low part (Cody–Waite), ``expm1(r) = r + r² p(r)`` with
``p`` a degree-9 near-minimax polynomial (:data:`_EXPM1_P`: truncation ≤ 4.1e-17 relative on
|r| ≤ ln2/2, Horner), and ``2ᵏ`` assembled from its exponent bits. Measured against numpy's tanh
on 2.6 million points in [−30, 30] and on ±10^[−300, 1.5]: ≤ 4.4e-16 relative (4 ulp)
everywhere, ≤ 3.6e-16 against 40-digit mpmath (numpy's own: 2.2e-16); tanh(±0) = ±0,
tanh(±x) = ±1 beyond 20 (tanh 20 = 1 − 8.5e-18 rounds to 1). ~0.95 ns per element (numpy 1.7,
XLA ~0.9 on this machine; the degree-14 Taylor form it replaced took 10 % longer).

The matrix products are BLAS calls from the compiled loop (hand-written product loops measured
2–3× slower than OpenBLAS at d = 8…64); the elementwise work around them is fused into as few
passes as possible. Sums are in another order than numpy's, so results agree with the numpy
path to round-off (tested ≤ 1e-12 relative, and both against torch autograd).

Cost: a process that runs a compiled sweep imports numba and loads the cached machine code
(~1–2 s; the very first run compiles, a few seconds, cached in ``__pycache__``).

Fast-math: only ``contract`` (FMA), ``nsz`` and ``arcp`` — no reassociation (the tanh
polynomial is evaluated as written), no ``nnan``/``ninf`` (NaN and ±inf propagate as in numpy).
"""
import numpy as np

import numba
from numba.core import types as _nbt
from numba.extending import intrinsic
from numba.np.linalg import ensure_blas

ACT_CODES = {"tanh": 0, "relu": 1, "softplus": 2}
#: ``p(r) ≈ (expm1(r) − r)/r²`` on ``|r| ≤ ln2/2``, degree 9, highest power first: the Chebyshev
#: interpolant at 10 nodes computed in 50-digit arithmetic (mpmath), coefficients rounded to
#: double; ``r + r² p(r)`` is within 4.1e-17 relative of expm1(r) there (measured in mpmath;
#: tests/test_fused_kernels.py checks it).
_EXPM1_P = (2.5100375832561234e-08, 2.7620075879983367e-07, 2.7557268480310024e-06,
            2.4801521322368692e-05, 0.00019841269863040545, 0.0013888888917196719,
            0.008333333333330065, 0.041666666666624164, 0.16666666666666669, 0.5000000000000001)
#: floats per (nb, d) sample block of the blocked sweeps (12288 = 96 KiB: measured best of
#: 8k–32k at d = 64, n = 4000 on this machine's 2 MiB L2; see :func:`block_width`)
BLOCK_FLOATS = 12288

_FM = {"contract", "nsz", "arcp"}
_LN2HI = 6.93147180369123816490e-01
_LN2LO = 1.90821492927058770002e-10
_INVLN2 = 1.44269504088896338700e+00

def _jit(**kw):
    return numba.njit(cache=True, boundscheck=False, error_model="numpy", **kw)

@intrinsic
def _bits_to_f64(typingctx, bits):
    """Reinterpret an int64 as the float64 with those bits (LLVM bitcast)."""
    sig = _nbt.float64(_nbt.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(_nbt.float64))
    return sig, codegen

ensure_blas()
# numba's own binding of BLAS dgemm (the one np.dot calls), resolved by name at link time so
# the kernels stay cacheable; unlike np.dot it can accumulate (beta = 1) and transpose.
_xxgemm = _nbt.ExternalFunction("numba_xxgemm", _nbt.intc(
    _nbt.char, _nbt.char, _nbt.char, _nbt.intp, _nbt.intp, _nbt.intp, _nbt.CPointer(_nbt.float64),
    _nbt.CPointer(_nbt.float64), _nbt.intp, _nbt.CPointer(_nbt.float64), _nbt.intp,
    _nbt.CPointer(_nbt.float64), _nbt.CPointer(_nbt.float64), _nbt.intp))
_KIND, _NOTR, _TR = np.int8(ord("d")), np.int8(ord("n")), np.int8(ord("t"))

@intrinsic
def _data(typingctx, arr):
    """The data pointer of a float64 array."""
    sig = _nbt.CPointer(_nbt.float64)(arr)

    def codegen(context, builder, signature, args):
        return context.make_array(signature.args[0])(context, builder, args[0]).data
    return sig, codegen

@numba.njit(inline="always")
def _gemm(ta, tb, A, B, C, alpha, beta, ab):
    """``C ← alpha op(A) op(B) + beta C`` for C-contiguous row-major float64 arrays
    (``op`` transposes when ``ta``/``tb``); ``ab`` a 2-float scratch. Column-major BLAS sees
    each array transposed, so it computes ``Cᵀ = op(B)ᵀ op(A)ᵀ``."""
    m, n = C.shape
    k = A.shape[0] if ta else A.shape[1]
    ab[0] = alpha
    ab[1] = beta
    _xxgemm(_KIND, _TR if tb else _NOTR, _TR if ta else _NOTR, n, m, k, _data(ab[0:1]), _data(B), B.shape[1],
            _data(A), A.shape[1], _data(ab[1:2]), _data(C), n)

@numba.njit(inline="always")
def _tanh(v):
    y = -2.0 * min(abs(v), 20.0)
    kf = np.floor(y * _INVLN2 + 0.5)
    r = (y - kf * _LN2HI) - kf * _LN2LO
    p = _EXPM1_P[0]
    p = p * r + _EXPM1_P[1]
    p = p * r + _EXPM1_P[2]
    p = p * r + _EXPM1_P[3]
    p = p * r + _EXPM1_P[4]
    p = p * r + _EXPM1_P[5]
    p = p * r + _EXPM1_P[6]
    p = p * r + _EXPM1_P[7]
    p = p * r + _EXPM1_P[8]
    p = p * r + _EXPM1_P[9]
    em = r + r * r * p                              # expm1(r)
    s = _bits_to_f64((np.int64(kf) + 1023) << 52)   # 2^k, k in [-58, 0]
    e = s * em + (s - 1.0)                          # expm1(y)
    t = np.copysign(-e / (2.0 + e), v)
    return t if v == v else v                       # NaN stays NaN

@numba.njit(inline="always")
def _softplus(z):
    return max(z, 0.0) + np.log1p(np.exp(-abs(z)))  # logaddexp(z, 0)

# The activation code is tested outside the loops so that every loop body is branch-free
# (vectorisable): one copy of each loop per activation.

@numba.njit(inline="always", fastmath=_FM)
def _apply(z, out, code):
    """``out = σ(z)`` (2-D; ``out`` may be ``z``)."""
    d, n = z.shape
    if code == 0:
        for i in range(d):
            for c in range(n):
                out[i, c] = _tanh(z[i, c])
    elif code == 1:
        for i in range(d):
            for c in range(n):
                out[i, c] = max(z[i, c], 0.0)
    else:
        for i in range(d):
            for c in range(n):
                out[i, c] = _softplus(z[i, c])

@numba.njit(inline="always", fastmath=_FM)
def _deriv_mul(s, v, out, code):
    """``out = σ'(z) ⊙ v`` given ``s = σ(z)`` (``out`` may be ``v``)."""
    d, n = s.shape
    if code == 0:
        for i in range(d):
            for c in range(n):
                out[i, c] = (1.0 - s[i, c] * s[i, c]) * v[i, c]
    elif code == 1:
        for i in range(d):
            for c in range(n):
                out[i, c] = v[i, c] if s[i, c] > 0.0 else 0.0
    else:
        for i in range(d):
            for c in range(n):
                out[i, c] = -np.expm1(-s[i, c]) * v[i, c]

@_jit(fastmath=_FM)
def logistic_terminal(XN, w, mu, y, lam, g):
    """Two classes, one logit ``s = x_N w + μ`` per sample (``XN`` (n, d), rows or a
    transposed feature-major view): the mean logistic loss and its gradients, as
    :func:`ocdl.models.losses.mean_loss_and_grad` (``z = −(2c − 1) s``, ``e = exp(−|z|)``,
    ``Φ = max(z, 0) + log1p(e)``, ``g = ∂(Σ Φ / n)/∂s = −(2c − 1) λ(z) / n`` with the logistic
    ``λ(z) = [1 or e]/(1 + e)``); ``g`` (n,) gets g, ``lam`` (n, d, the layout of XN) the
    terminal costate ``p_N = g wᵀ`` (outer product). Returns the mean loss."""
    n, d = XN.shape
    np.dot(XN, w, g)                                 # x_N w (kept in g)
    total = 0.0
    inv = 1.0 / n
    for c in range(n):
        ns = 1.0 - 2.0 * y[c]
        z = ns * (g[c] + mu)
        e = np.exp(-abs(z))
        total += max(z, 0.0) + np.log1p(e)
        num = 1.0 if z >= 0.0 else e
        g[c] = ns * inv * (num / (1.0 + e))
    if lam.strides[1] <= lam.strides[0]:             # rows contiguous
        for c in range(n):
            gc = g[c]
            for i in range(d):
                lam[c, i] = gc * w[i]
    else:
        for i in range(d):
            wi = w[i]
            for c in range(n):
                lam[c, i] = g[c] * wi
    return total * inv

@_jit(fastmath=_FM)
def act_apply(z, out, code):
    """``out = σ(z)`` for 2-D arrays (the kernels' activation on its own)."""
    _apply(z, out, code)
    return out

@numba.njit(inline="always", fastmath=_FM)
def _add_rows(x, y):
    """``y += x`` (2-D)."""
    for i in range(y.shape[0]):
        for c in range(y.shape[1]):
            y[i, c] += x[i, c]

@numba.njit(inline="always", fastmath=_FM)
def _load_block(src, c0, w, dst):
    """``dst[:, :w] = src[:, c0:c0+w]``, the padding columns ``dst[:, w:]`` zeroed."""
    d, nb = dst.shape
    for i in range(d):
        for c in range(w):
            dst[i, c] = src[i, c0 + c]
        for c in range(w, nb):
            dst[i, c] = 0.0

@numba.njit(inline="always", fastmath=_FM)
def _store_block(src, w, dst, c0):
    """``dst[:, c0:c0+w] = src[:, :w]``."""
    for i in range(src.shape[0]):
        for c in range(w):
            dst[i, c0 + c] = src[i, c]

@numba.njit(inline="always", fastmath=_FM)
def _load_rows(src, c0, w, dst):
    """``dst[:w, :d] = src[c0:c0+w]``, the padding rows ``dst[w:, :d]`` zeroed (d = src's width)."""
    d = src.shape[1]
    for c in range(w):
        for i in range(d):
            dst[c, i] = src[c0 + c, i]
    for c in range(w, dst.shape[0]):
        for i in range(d):
            dst[c, i] = 0.0

@numba.njit(inline="always", fastmath=_FM)
def _store_rows(src, w, dst, c0):
    """``dst[c0:c0+w] = src[:w, :d]`` (d = dst's width)."""
    d = dst.shape[1]
    for c in range(w):
        for i in range(d):
            dst[c0 + c, i] = src[c, i]

@numba.njit(inline="always", fastmath=_FM)
def _costate_pass(s, g, lam, code):
    """``p ← p + σ'(x) ⊙ g`` with σ' from the stored ``s = σ(x)`` (2-D, same shapes)."""
    nb, d = lam.shape
    if code == 0:
        for c in range(nb):
            for i in range(d):
                lam[c, i] += (1.0 - s[c, i] * s[c, i]) * g[c, i]
    elif code == 1:
        for c in range(nb):
            for i in range(d):
                if s[c, i] > 0.0:
                    lam[c, i] += g[c, i]
    else:
        for c in range(nb):
            for i in range(d):
                lam[c, i] -= np.expm1(-s[c, i]) * g[c, i]

@numba.njit(inline="always")
def _flat(a):
    """A C-contiguous 2-D block as one long row, so elementwise loops run without row breaks."""
    return a.reshape((1, a.size))

@_jit(fastmath=_FM)
def outer_forward(hKT, hb, X0, XN, S, inc, Xall, code):
    """Outer-form Euler forward ``x_{k+1} = x_k + σ(x_k) h K_kᵀ + h b_kᵀ (+ ξ_k)`` in row form
    (one sample per row), sample-blocked: ``x_0`` from ``X0`` (n, d), ``x_N`` into ``XN``
    (n, d); ``hKT`` (N, d, d) is ``h K_kᵀ``, ``hb`` (N, d). ``S`` (B, N, nb, d) receives
    ``σ(x_k)`` per block (B·nb ≥ n, padding rows hold the sweep of x = 0), or is
    (0, N, nb, d): cost only. ``inc`` (N, n, d) additive increments or (0, 0, 0); ``Xall``
    (N+1, n, d) receives every state, or is (0, 0, 0). Per layer and block: two BLAS updates
    of x in place (``+= σ hKᵀ``, ``+= 1 hbᵀ``) and one flat pass forming the next σ."""
    N, d = hKT.shape[0], hKT.shape[1]
    n = X0.shape[0]
    nb = S.shape[2]
    store = S.shape[0] > 0
    keep = Xall.shape[0] > 0
    incs = inc.shape[0] > 0
    x = np.empty((nb, d))
    ones = np.ones((nb, 1))
    scratch = np.empty((nb, d))
    ab = np.empty(2)
    for c0 in range(0, n, nb):
        w = min(nb, n - c0)
        blk = c0 // nb
        _load_rows(X0, c0, w, x)
        a = S[blk, 0] if store else scratch
        _apply(_flat(x), _flat(a), code)
        for k in range(N):
            _gemm(False, False, a, hKT[k], x, 1.0, 1.0, ab)          # x += σ(x_k) hKᵀ
            _gemm(False, False, ones, hb[k:k + 1], x, 1.0, 1.0, ab)  # x += 1 hbᵀ
            if incs:
                for c in range(w):
                    for i in range(d):
                        x[c, i] += inc[k, c0 + c, i]
            if k < N - 1:
                a = S[blk, k + 1] if store else scratch
                _apply(_flat(x), _flat(a), code)                     # σ(x_{k+1})
            if keep:
                _store_rows(x, w, Xall[k + 1], c0)
        _store_rows(x, w, XN, c0)
    if keep:
        Xall[0] = X0

@_jit(fastmath=_FM)
def outer_backward(hK, S, PN, h, GK, Gb, Pall, code):
    """Outer-form Euler backward in row form, sample-blocked, from ``p_N`` in ``PN`` (n, d)
    over the blocks ``S`` of :func:`outer_forward` (padding rows get p = 0, so they add
    nothing): ``p_k = p_{k+1} + σ'(x_k) ⊙ (p_{k+1} h K_k)``; ``GK`` (N, d, d) and ``Gb``
    (N, d) get ``h Σ_samples p_{k+1}ᵀ σ(x_k)`` and ``h Σ_samples p_{k+1}`` (∂J/∂K_k, ∂J/∂b_k
    of the data term; BLAS accumulates them block by block); ``Pall`` (N+1, n, d) receives
    every costate, or is (0, 0, 0)."""
    N = hK.shape[0]
    n, d = PN.shape
    nb = S.shape[2]
    keep = Pall.shape[0] > 0
    lam = np.empty((nb, d))
    g = np.empty((nb, d))
    ones = np.ones((nb, 1))
    ab = np.empty(2)
    GK[:] = 0.0
    Gb[:] = 0.0
    for c0 in range(0, n, nb):
        w = min(nb, n - c0)
        _load_rows(PN, c0, w, lam)
        for k in range(N - 1, -1, -1):
            a = S[c0 // nb, k]
            _gemm(True, False, lam, a, GK[k], h, 1.0, ab)                    # += h pᵀ σ
            _gemm(True, False, lam, ones, Gb[k].reshape((d, 1)), h, 1.0, ab)  # += h pᵀ 1
            _gemm(False, False, lam, hK[k], g, 1.0, 0.0, ab)                 # g = p h K
            _costate_pass(_flat(a), _flat(g), _flat(lam), code)              # p + σ' ⊙ g
            if keep:
                _store_rows(lam, w, Pall[k], c0)
    if keep:
        Pall[N] = PN

@_jit(fastmath=_FM)
def inner_forward(M, hD, X, Sg, inc, code):
    """Inner-form Euler forward. ``X`` (N+1, d+1, n) all ``[x_k; 1]`` or (2, d+1, n)
    rotating (last row ones, x_0 in ``X[0]``); ``Sg`` (N, d, n) stored σ or (1, d, n);
    ``hD`` (d,) the signed steps h D. Returns the index of x_N in ``X``."""
    N = M.shape[0]
    d, n = Sg.shape[1], Sg.shape[2]
    full = X.shape[0] == N + 1
    store = Sg.shape[0] == N
    cur = 0
    for k in range(N):
        nx = k + 1 if full else (k + 1) % 2
        x = X[cur]
        s = Sg[k] if store else Sg[0]
        np.dot(M[k], x, s)
        _apply(s, s, code)                           # σ(M [x; 1])
        y = X[nx]
        for i in range(d):
            w = hD[i]
            for c in range(n):
                y[i, c] = x[i, c] + w * s[i, c]
        if inc.shape[0] > 0:
            _add_rows(inc[k], y[:d])
        cur = nx
    return cur

@_jit(fastmath=_FM)
def inner_backward(hKT, X, Sg, P, G, code):
    """Inner-form Euler backward from ``p_N`` (``X`` all N+1 states ``[x_k; 1]``, ``Sg`` all
    σ): ``P`` (N+1, d, n) all costates with p_N in ``P[N]``, or (2, d, n) rotating with p_N in
    ``P[N % 2]``; ``G`` (N, d, d+1) gets ``U_k [x_k; 1]ᵀ``, ``U_k = σ'_k ⊙ p_{k+1}``. Returns
    the index of p_0 in ``P``."""
    N = hKT.shape[0]
    d, n = P.shape[1], P.shape[2]
    full = P.shape[0] == N + 1
    U = np.empty((d, n))
    cur = N if full else N % 2
    for k in range(N - 1, -1, -1):
        nx = k if full else k % 2
        lam = P[cur]
        _deriv_mul(Sg[k], lam, U, code)              # U = σ' ⊙ p
        np.dot(U, X[k].T, G[k])
        out = P[nx]
        np.dot(hKT[k], U, out)                       # h M̃ᵀ D U
        _add_rows(lam, out)
        cur = nx
    return cur


def block_width(d, n):
    """Columns per sample block: about :data:`BLOCK_FLOATS` floats per (d, nb) block (so a
    block's working set stays in the core's L2 cache through all layers), a multiple of 8, with
    as little padding of n as possible."""
    target = BLOCK_FLOATS
    nblk = max(1, -(-n * d // target))
    nb = -(-n // nblk)
    return max(8, -(-nb // 8) * 8)


def act_code(act):
    """The kernels' code of an activation object, or None if they do not implement it."""
    return ACT_CODES.get(getattr(act, "name", None))
