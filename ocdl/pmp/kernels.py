"""Compiled whole-sweep kernels for the Euler sweeps (numba), and what all compiled kernels share.

The loops over layers run inside compiled code, so a layer costs no Python or numpy call
overhead, and each layer's block is touched in as few passes as possible. Same mathematics as
:func:`ocdl.pmp.torch_sweeps.rk_sweep` with the one-stage tableau (tested against torch
autograd). The outer form runs in **row form** (one sample per row, the layout the model lifts
the data in), the inner form feature-major (one sample per column):

    outer  forward   S_k = σ(x_k),                 x_{k+1} = x_k + S_k h K_kᵀ + 1 h b_kᵀ (+ ξ_k)
           backward  g = p_{k+1} h K_k,            p_k = p_{k+1} + σ'(x_k) ⊙ g,
                     ∂J/∂K_k = h p_{k+1}ᵀ S_k,     ∂J/∂b_k = h p_{k+1}ᵀ 1      (rows: samples)
    inner  forward   Σ_k = σ(M_k [x_k; 1]),        x_{k+1} = x_k + h D ⊙ Σ_k (+ ξ_k)
           backward  U = σ'_k ⊙ p_{k+1},            p_k = p_{k+1} + h M̃_kᵀ D U,
                     G_k = U [x_k; 1]ᵀ                                      (columns: samples)

σ' is read off the stored σ (tanh ``1 − σ²``, relu ``[σ > 0]``, softplus ``−expm1(−σ)``).

**Why a second compiled form of the explicit-RK family.** :mod:`ocdl.pmp.kernels_rk` runs the
one-stage tableau too (same gradient to round-off), but these Euler kernels are faster: the RK
kernels with the Euler tableau took 1.08× / 1.12× / 1.17× their gradient time (outer
8 · 512 · 16, hamiltonian 8 · 512 · 16, outer 64 · 4000 · 10; one process, 2026-12-06, load ≈ 16).

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

**Activations.** The kernels take σ and σ' from the activation object (``act.compiled()``:
scalar ``value(z)`` and ``mul_deriv(s, v) = σ'(z) v`` given ``s = σ(z)``, e.g. tanh ``(1 − s²) v``,
the branch-free tanh of :mod:`ocdl.models.fastmath`) through the overloads :func:`value` and
:func:`mul_deriv`, resolved at compile time: each activation gets its own machine code, built by
:func:`euler` (and ``kernels_rk.rk``, ``kernels_split.split``) as closures over the activation's
name and cached on disk per activation — so every loop body stays branch-free (vectorisable).
(numba's cache does not notice a change of ``compiled()``'s code: clear ``__pycache__`` then.)

The matrix products are BLAS calls from the compiled loop (hand-written product loops measured
2–3× slower than OpenBLAS at d = 8…64); the elementwise work around them is fused into as few
passes as possible. Sums are in another order than numpy's, so results agree with torch
autograd to round-off (tested ≤ 1e-12 relative).

Cost: a process that runs a compiled sweep imports numba and loads the cached machine code
(~1 s; the very first run compiles, tens of seconds, cached in ``__pycache__``).

Fast-math: only ``contract`` (FMA), ``nsz`` and ``arcp`` — no reassociation (the tanh
polynomial is evaluated as written), no ``nnan``/``ninf`` (NaN and ±inf propagate as in numpy).
"""
import functools
import warnings
from types import SimpleNamespace

import numba
import numpy as np
from numba.core import types as _nbt
from numba.core.errors import NumbaIRAssumptionWarning, RequireLiteralValue
from numba.extending import intrinsic, overload
from numba.np.linalg import ensure_blas

#: floats per (nb, d) sample block of the blocked sweeps (12288 = 96 KiB: measured best of
#: 8k–32k at d = 64, n = 4000 on this machine's 2 MiB L2; see :func:`block_width`)
BLOCK_FLOATS = 12288

_FM = {"contract", "nsz", "arcp"}
# numba's own "pedantic" SSA check fires on the inlined relu σ' (a conditional expression): an
# internal consistency note printed while compiling, not a fault of the compiled code (its
# results are tested against torch autograd); not shown to users
warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)
#: activation name → its ``(value, mul_deriv)`` njit scalar functions, filled by :func:`forms`
_FORMS = {}


def _jit(**kw):
    return numba.njit(cache=True, boundscheck=False, error_model="numpy", **kw)


def forms(act):
    """Register the compiled scalar form of the activation object ``act`` under its name (for
    :func:`value`, :func:`mul_deriv`) and return the name, the closures' constant."""
    if act.name not in _FORMS:
        _FORMS[act.name] = tuple(f if isinstance(f, numba.core.dispatcher.Dispatcher)
                                 else numba.njit(inline="always")(f) for f in act.compiled())
    return act.name


def value(act, z):
    """``σ(z)`` of the activation named ``act`` (a compile-time string), in compiled code."""


def mul_deriv(act, s, v):
    """``σ'(z) v`` given ``s = σ(z)``, of the activation named ``act``, in compiled code."""


def _form(act, i):
    if not isinstance(act, _nbt.StringLiteral):
        raise RequireLiteralValue(act)
    return _FORMS[act.literal_value][i]


@overload(value, inline="always")
def _value(act, z):
    f = _form(act, 0)
    return lambda act, z: f(z)


@overload(mul_deriv, inline="always")
def _mul_deriv(act, s, v):
    f = _form(act, 1)
    return lambda act, s, v: f(s, v)

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

@numba.njit(inline="always", fastmath=_FM)
def _apply(z, out, act):
    """``out = σ(z)`` (2-D; ``out`` may be ``z``)."""
    for i in range(z.shape[0]):
        for c in range(z.shape[1]):
            out[i, c] = value(act, z[i, c])


@numba.njit(inline="always", fastmath=_FM)
def _deriv_mul(s, v, out, act):
    """``out = σ'(z) ⊙ v`` given ``s = σ(z)`` (``out`` may be ``v``)."""
    for i in range(s.shape[0]):
        for c in range(s.shape[1]):
            out[i, c] = mul_deriv(act, s[i, c], v[i, c])


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
def _costate_pass(s, g, lam, act):
    """``p ← p + σ'(x) ⊙ g`` with σ' from the stored ``s = σ(x)`` (2-D, same shapes)."""
    for c in range(lam.shape[0]):
        for i in range(lam.shape[1]):
            lam[c, i] += mul_deriv(act, s[c, i], g[c, i])

@numba.njit(inline="always")
def _flat(a):
    """A C-contiguous 2-D block as one long row, so elementwise loops run without row breaks."""
    return a.reshape((1, a.size))

@functools.cache
def euler(act):
    """The Euler kernels for the activation object ``act`` (compiled on first use, cached on
    disk): ``outer_forward``, ``outer_backward``, ``inner_forward``, ``inner_backward``, ``apply``."""
    act = forms(act)

    @_jit(fastmath=_FM)
    def apply(z, out):
        """``out = σ(z)`` for 2-D arrays (the kernels' activation on its own)."""
        _apply(z, out, act)
        return out

    @_jit(fastmath=_FM)
    def outer_forward(hKT, hb, X0, XN, S, inc, Xall):
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
            _apply(_flat(x), _flat(a), act)
            for k in range(N):
                _gemm(False, False, a, hKT[k], x, 1.0, 1.0, ab)          # x += σ(x_k) hKᵀ
                _gemm(False, False, ones, hb[k:k + 1], x, 1.0, 1.0, ab)  # x += 1 hbᵀ
                if incs:
                    for c in range(w):
                        for i in range(d):
                            x[c, i] += inc[k, c0 + c, i]
                if k < N - 1:
                    a = S[blk, k + 1] if store else scratch
                    _apply(_flat(x), _flat(a), act)                     # σ(x_{k+1})
                if keep:
                    _store_rows(x, w, Xall[k + 1], c0)
            _store_rows(x, w, XN, c0)
        if keep:
            Xall[0] = X0

    @_jit(fastmath=_FM)
    def outer_backward(hK, S, PN, h, GK, Gb, Pall):
        """Outer-form Euler backward in row form, sample-blocked, from ``p_N`` in ``PN`` (n, d)
        over the blocks ``S`` of :func:`outer_forward` (padding rows get p = 0, so they add
        nothing): ``p_k = p_{k+1} + σ'(x_k) ⊙ (p_{k+1} h K_k)``; ``GK`` (N, d, d) and ``Gb``
        (N, d) get ``h Σ_samples p_{k+1}ᵀ σ(x_k)`` and ``h Σ_samples p_{k+1}`` (∂J/∂K_k, ∂J/∂b_k
        of the data term; BLAS accumulates them block by block); ``Pall`` (N+1, n, d) receives
        every costate, (1, n, d) p_0 only, or is (0, 0, 0)."""
        N = hK.shape[0]
        n, d = PN.shape
        nb = S.shape[2]
        keep = Pall.shape[0] > 0
        full = Pall.shape[0] > 1
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
                _costate_pass(_flat(a), _flat(g), _flat(lam), act)              # p + σ' ⊙ g
                if full:
                    _store_rows(lam, w, Pall[k], c0)
            if keep and not full:
                _store_rows(lam, w, Pall[0], c0)
        if full:
            Pall[N] = PN

    @_jit(fastmath=_FM)
    def inner_forward(M, hD, X, Sg, inc):
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
            _apply(s, s, act)                           # σ(M [x; 1])
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
    def inner_backward(hKT, X, Sg, P, G):
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
            _deriv_mul(Sg[k], lam, U, act)              # U = σ' ⊙ p
            np.dot(U, X[k].T, G[k])
            out = P[nx]
            np.dot(hKT[k], U, out)                       # h M̃ᵀ D U
            _add_rows(lam, out)
            cur = nx
        return cur

    return SimpleNamespace(outer_forward=outer_forward, outer_backward=outer_backward,
                           inner_forward=inner_forward, inner_backward=inner_backward, apply=apply)


def block_width(d, n):
    """Columns per sample block: about :data:`BLOCK_FLOATS` floats per (d, nb) block (so a
    block's working set stays in the core's L2 cache through all layers), a multiple of 8, with
    as little padding of n as possible."""
    target = BLOCK_FLOATS
    nblk = max(1, -(-n * d // target))
    nb = -(-n // nblk)
    return max(8, -(-nb // 8) * 8)
