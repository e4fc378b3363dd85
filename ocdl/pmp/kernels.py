"""What the compiled kernels (numba) share: activations, BLAS products, elementwise passes,
sample blocks, and the compiled two-class terminal.

The kernels (:mod:`ocdl.pmp.kernels_rk`: explicit Runge–Kutta, Euler included;
:mod:`ocdl.pmp.kernels_split`: splittings) run the loops over layers inside compiled code, so a
layer costs no Python or numpy call overhead, and each layer's block is touched in as few passes
as possible. σ' is read off the stored σ (tanh ``1 − σ²``, relu ``[σ > 0]``, softplus
``−expm1(−σ)``).

**Sample blocks.** Samples are independent until the θ-contraction, so the sweeps run the
samples in blocks (:func:`block_width`: ~12 288 floats, 96 KiB, per block) and take each block
through *all* layers before the next: the block's state, σ and products stay in the core's L2
cache instead of streaming (n, d) arrays through L3 once per pass (measured at d = 64, n = 4000:
8 % off the Euler forward, 12 % off its backward; one block — no change — at d = 8, n = 512).
The last block is padded with zero states and zero costates, which add nothing to the gradient.

**Products.** BLAS dgemm through numba's own binding (:func:`_gemm`: ``numba_xxgemm``, what
``np.dot`` calls — resolved by name, so the kernels stay cacheable), which unlike ``np.dot`` can
accumulate and transpose, so products go straight into the state, the costate or the gradient
(hand-written product loops measured 2–3× slower than OpenBLAS at d = 8…64). The elementwise
passes run over a C-contiguous block as one flat row (:func:`_flat`), so no loop breaks at
row ends.

**Terminal.** :func:`logistic_terminal` is the compiled twin of the two-class head and loss of
:mod:`ocdl.models.losses` (logit, logistic loss, ∇_s and ``p_N = ∇_s wᵀ`` in one pass): at
n = 512 it replaces ~20 µs of numpy calls.

**Activations.** The kernels take σ and σ' from the activation object (``act.compiled()``:
scalar ``value(z)`` and ``mul_deriv(s, v) = σ'(z) v`` given ``s = σ(z)``, e.g. tanh ``(1 − s²) v``,
the branch-free tanh of :mod:`ocdl.models.fastmath`) through the overloads :func:`value` and
:func:`mul_deriv`, resolved at compile time: each activation gets its own machine code, built by
``kernels_rk.rk`` and ``kernels_split.split`` as closures over the activation's
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
    """``C ← alpha op(A) op(B) + beta C`` for row-major float64 arrays with unit column stride
    (rows may be strided: a column block of a wider array) (``op`` transposes when ``ta``/``tb``);
    ``ab`` a 2-float scratch. Column-major BLAS sees each array transposed, so it computes
    ``Cᵀ = op(B)ᵀ op(A)ᵀ``."""
    m, n = C.shape
    k = A.shape[0] if ta else A.shape[1]
    ab[0] = alpha
    ab[1] = beta
    _xxgemm(_KIND, _TR if tb else _NOTR, _TR if ta else _NOTR, n, m, k, _data(ab[0:1]), _data(B), B.strides[0] // 8,
            _data(A), A.strides[0] // 8, _data(ab[1:2]), _data(C), C.strides[0] // 8)

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
def apply(act):
    """σ of the activation object ``act`` over a 2-D array, as the kernels evaluate it (the same
    inlined scalar form and fast-math flags): ``apply(act)(z, out) → out``."""
    name = forms(act)

    @_jit(fastmath=_FM)
    def f(z, out):
        _apply(z, out, name)
        return out
    return f


def block_width(d, n):
    """Columns per sample block: about :data:`BLOCK_FLOATS` floats per (d, nb) block (so a
    block's working set stays in the core's L2 cache through all layers), a multiple of 8, with
    as little padding of n as possible."""
    target = BLOCK_FLOATS
    nblk = max(1, -(-n * d // target))
    nb = -(-n // nblk)
    return max(8, -(-nb // 8) * 8)
