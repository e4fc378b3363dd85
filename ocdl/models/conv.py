"""Convolutional fields on 1-D signals (Ruthotto–Haber's parabolic and hyperbolic CNNs).

The state of one sample is C channels × L positions, flattened channel-major (index ``c L + l``,
the layout of ``torch`` ``(n, C, L)``), so the model's ``(n, d)`` rows hold ``d = C L``
(``conv``) or ``d = 2 C L`` (``hamiltonian-conv``: q then p, C channels each).

**Convolution.** ``K`` (C_out, C_in, k) with k odd, r = (k − 1)/2, same-size output, zero
padding (positions outside 0..L−1 read as 0), cross-correlation as in ``torch.conv1d``:

    (K ∗ x)[o, l] = Σ_c Σ_j K[o, c, j] x[c, l + j − r].

Its adjoint (the transposed convolution) is the same operation with the kernel flipped and its
channels swapped, ``Kᵀ[c, o, j] = K[o, c, k−1−j]`` (exact because k is odd):

    (Kᵀ ∗ u)[c, l] = Σ_o Σ_j K[o, c, j] u[o, l − j + r],

and the kernel gradient of ``Σ ⟨u, K ∗ x⟩`` is the correlation of u with x summed over samples
and positions: ``∂/∂K[o, c, j] = Σ_i Σ_l u_i[o, l] x_i[c, l + j − r]``.

**Fields** (b one bias per channel, broadcast along positions):

* ``conv``              f(x) = σ(K ∗ x + b)                              (K: C × C × k, b: C)
* ``hamiltonian-conv``  x = (q, p):  q̇ = σ(K ∗ p + b),  ṗ = −σ(Kᵀ ∗ q + b)   (same K, b),
  the convolutional form of the ``hamiltonian`` field (``K p`` → ``K ∗ p``, ``Kᵀ q`` → ``Kᵀ ∗ q``),
  separable, so the splitting methods (Verlet) apply and the network is reversible.

**Lift, padding and head.** The input row (one channel of length d_in = L) goes into channel 0
(of q for ``hamiltonian-conv``), the other channels start at 0 — the zero-padding lift every
field uses. The head is the model's linear head ``W x_N + μ`` on the whole final state (all
channels and positions; no pooling).

The numpy kernels work feature-major, on ``(C, L, n)`` arrays (samples last, as in
:mod:`ocdl.pmp.fused_conv`): the zero-padded windows are copied once (``im2col``, (C k, L n)) and
a convolution, its transpose and the kernel gradient are one BLAS matmul each; no Python loop
runs over samples or positions. (Measured at n = 4000, L = 40, k = 5, one thread: k shifted
matmuls without a copy and im2col + one matmul are within 10 % of each other, both faster than
``sliding_window_view`` + ``einsum``; under a loaded machine with 2 BLAS threads, im2col's one
large matmul per convolution is several times faster — see docs/conv.md.)
"""
import itertools

import numpy as np

from ocdl.errors import InputError


def check_kernel(kernel, channels):
    kernel, channels = int(kernel), int(channels)
    if channels < 1:
        raise InputError(f"--channels must be ≥ 1 (got {channels})")
    if kernel < 1 or kernel % 2 == 0:
        raise InputError(f"--kernel must be an odd integer ≥ 1 (same-size zero padding needs it; got {kernel})")
    return kernel, channels


def flip_swap(K, D=1):
    """``Kᵀ[c, o, j] = K[o, c, k−1−j]`` (every one of the D spatial kernel axes flipped) for K
    (..., Co, C, k, …): the transposed convolution's kernel."""
    flip = (Ellipsis,) + (slice(None, None, -1),) * D
    return np.ascontiguousarray(np.swapaxes(K, -D - 2, -D - 1)[flip])


def _taps(k, L):
    """Per tap j: (offset s = j − r, output slice, input slice) along one spatial axis."""
    r = (k - 1) // 2
    out = []
    for j in range(k):
        s = j - r
        lo, hi = max(0, -s), L - max(0, s)
        out.append((j, slice(lo, max(lo, hi)), slice(lo + s, max(lo, hi) + s)))
    return out


def im2col(x, k, out=None):
    """The zero-padded windows of x (C, *S, n) (S the D spatial sizes):
    ``cols[c, j_1..j_D, l_1..l_D, i] = x[c, l_1 + j_1 − r, …, i]`` (0 outside), shape
    (C, k, …, k, *S, n) — one copy, so a convolution is one BLAS matmul on ``(C k^D, |S| n)``."""
    C, *S, n = x.shape
    D = len(S)
    if out is None:
        out = np.empty((C,) + (k,) * D + tuple(S) + (n,))
    for taps in itertools.product(*(_taps(k, L) for L in S)):
        js = tuple(t[0] for t in taps)
        dst = out[(slice(None),) + js]                          # (*S, n) view of this tap
        dst[(slice(None),) + tuple(t[1] for t in taps)] = x[(slice(None),) + tuple(t[2] for t in taps)]
        for a, (_, so, _) in enumerate(taps):                   # zero padding outside, axis by axis
            pre = (slice(None),) * (a + 1)
            dst[pre + (slice(0, so.start),)] = 0.0
            dst[pre + (slice(so.stop, None),)] = 0.0
    return out


def corr(K, x, out=None, cols=None):
    """``K ∗ x`` for x (C_in, *S, n) feature-major, K (C_out, C_in, k, …) → (C_out, *S, n):
    ``K.reshape(C_out, C_in k^D) @ im2col(x)`` (``cols``: optional precomputed windows of x)."""
    Co, k = K.shape[0], K.shape[-1]
    if cols is None:
        cols = im2col(x, k)
    m = x[0].size
    if out is None:
        out = np.empty((Co,) + x.shape[1:])
    np.matmul(K.reshape(Co, -1), cols.reshape(-1, m), out=out.reshape(Co, m))
    return out


def corr_T(K, u, out=None):
    """``Kᵀ ∗ u`` (the adjoint of :func:`corr`): u (C_out, *S, n) → (C_in, *S, n), the correlation
    with the flipped, channel-swapped kernel (exact for odd k)."""
    return corr(flip_swap(K, u.ndim - 2), u, out=out)


def corr_grad(u, x, k, cols=None):
    """``∂/∂K Σ ⟨u, K ∗ x⟩`` = Σ over samples and positions of u[o, l] x[c, l + j − r]:
    u (C_out, *S, n), x (C_in, *S, n) → (C_out, C_in, k, …), one matmul ``u @ im2col(x)ᵀ``."""
    Co, C, D = u.shape[0], x.shape[0], u.ndim - 2
    if cols is None:
        cols = im2col(x, k)
    m = u[0].size
    return (u.reshape(Co, m) @ cols.reshape(-1, m).T).reshape((Co, C) + (k,) * D)


# ------------------------------------------------------------------------------------------
# batch-major conversions (the model's (n, d) rows ↔ feature-major (C, *S, n))

def to_fm(x, C, shape):
    x = np.asarray(x, dtype=float).reshape((-1, C) + tuple(shape))
    return np.ascontiguousarray(np.moveaxis(x, 0, -1))


def from_fm(a):
    n = a.shape[-1]
    return np.ascontiguousarray(np.moveaxis(a, -1, 0)).reshape(n, -1)


def _tconv(x, transpose=False):
    import torch.nn.functional as tf
    D = x.dim() - 2
    if transpose:
        return {1: tf.conv_transpose1d, 2: tf.conv_transpose2d}[D]
    return {1: tf.conv1d, 2: tf.conv2d}[D]


def torch_corr(x, K, b):
    """``K ∗ x + b`` for torch x (n, C, *S) (``conv1d``/``conv2d``, same-size zero padding)."""
    return _tconv(x)(x, K, b, padding=(K.shape[-1] - 1) // 2)


def torch_corr_T(x, K, b):
    """``Kᵀ ∗ x + b`` (transposed convolution, same size) for torch x (n, C, *S)."""
    return _tconv(x, transpose=True)(x, K, b, padding=(K.shape[-1] - 1) // 2)


# ------------------------------------------------------------------------------------------
# the field objects

from ocdl.models.fields import Field  # noqa: E402


class ConvField(Field):
    """``f(x) = σ(K ∗ x + b)`` on C channels × L positions (see the module docstring).

    Fused form ``"conv"``: the sweeps of :mod:`ocdl.pmp.fused_conv` call, feature-major
    ((C_tot, L, n) arrays), ``fm_stage(K, b, Y) -> (f, cache)`` and
    ``fm_vjp(K, cache, P) -> ((∂f/∂x)ᵀ P, Σ (∂f/∂K)ᵀ P, Σ (∂f/∂b)ᵀ P)``:

        U = σ'(K ∗ Y + b) ⊙ P,   (∂f/∂x)ᵀ P = Kᵀ ∗ U,   ∂/∂K = corr_grad(U, Y),   ∂/∂b = Σ_{l, i} U.
    """
    name = "conv"
    form = "conv"
    conv = True
    halves_per_state = 1

    def __init__(self, activation="tanh", channels=8, kernel=5, length=1, shape=None):
        super().__init__(activation)
        self.k, self.C = check_kernel(kernel, channels)
        self.shape = (int(length),) if shape is None else tuple(int(v) for v in shape)
        if len(self.shape) not in (1, 2) or min(self.shape) < 1:
            raise InputError(f"--shape must be one or two positive sizes (got {self.shape})")
        self.D = len(self.shape)                    # spatial dimensions: 1 (signals) or 2 (images)
        self.L = int(np.prod(self.shape))           # positions

    def __repr__(self):
        return f"<field {self.name} C={self.C} k={self.k} shape={self.shape} σ={self.act.name}>"

    @property
    def channels_total(self):
        return self.C * self.halves_per_state

    def state_width(self, m=None):
        return self.channels_total * self.L

    @classmethod
    def default_width(cls, d_in):
        """None: the state width is channels × positions, set by the model from ``channels``."""
        return None

    @classmethod
    def defaults(cls, d_in):
        """:func:`conv_defaults` of the signal length (channels, kernel, layers, T)."""
        return conv_defaults(d_in)

    def param_width(self, d):
        return self.C

    def param_shapes(self, N, m):
        return {"K": (N, self.C, self.C) + (self.k,) * self.D, "b": (N, self.C)}

    def init_theta(self, rng, N, m, scale):
        """K ~ N(0, scale²/(C k^D)) (fan-in), b ~ N(0, 0.1²)."""
        return (rng.standard_normal((N, self.C, self.C) + (self.k,) * self.D)
                * (scale / np.sqrt(self.C * self.k ** self.D)),
                0.1 * rng.standard_normal((N, self.C)))

    # --- feature-major kernels (the fused sweeps) -------------------------------------------
    def _bias(self, b):
        """b (C,) broadcast over positions and samples of a (C, *S, n) array."""
        return b.reshape((-1,) + (1,) * (self.D + 1))

    def _sum(self, U):
        """Σ over positions and samples: (C, *S, n) → (C,)."""
        return U.reshape(U.shape[0], -1).sum(axis=1)

    def _preactivation(self, K, b, Y, cols=None):
        """``K ∗ Y + b`` (feature-major; ``cols``: the windows of Y if already cut)."""
        S = corr(K, Y, cols=cols)
        S += self._bias(b)
        return S

    def fm_stage(self, K, b, Y):
        S = self._preactivation(K, b, Y)
        self.act.apply(S, S)
        return S, (Y, S)

    def fm_vjp(self, K, cache, P):
        Y, S = cache
        U = np.empty_like(P)
        self.act.mul_deriv(S, P, U, np.empty_like(P))
        return corr_T(K, U), corr_grad(U, Y, self.k), self._sum(U)

    # --- row layout (forward, continuous adjoint) -------------------------------------------
    def f(self, x, K, b):
        from ocdl.models.backend import is_torch
        n = x.shape[0]
        if is_torch(x):
            return self.act(torch_corr(x.reshape((n, self.C) + self.shape), K, b)).reshape(n, -1)
        return from_fm(self.fm_stage(K, b, to_fm(x, self.C, self.shape))[0])

    def vjp_x(self, x, K, b, p):
        g, _, _ = self.fm_vjp(K, self.fm_stage(K, b, to_fm(x, self.C, self.shape))[1], to_fm(p, self.C, self.shape))
        return from_fm(g)

    def layer_io(self, x, K, b, q):
        """``(U, A)`` with ``Σ_j U[:, j] A[:, j]ᵀ = ∂⟨q, f(x)⟩/∂[K | b]`` (K flattened to (C, C k^D)) summed
        over one sample's positions: columns j = (position, sample), ``U = σ'(K ∗ x + b) ⊙ q``
        (C, |S| n), ``A = [im2col(x); 1]`` (C k^D + 1, |S| n) — the sides of the Kronecker-factored
        curvature (:mod:`ocdl.solvers.kronecker`; K-FAC's convolution factors, Grosse & Martens 2016)."""
        xf = to_fm(x, self.C, self.shape)
        cols = im2col(xf, self.k)
        pre = self._preactivation(K, b, xf, cols)
        m = xf[0].size
        U = (self.act.deriv(pre) * to_fm(q, self.C, self.shape)).reshape(self.C, m)
        return U, np.concatenate([cols.reshape(-1, m), np.ones((1, m))], axis=0)

    def vjp_theta(self, x, K, b, p):
        _, gK, gb = self.fm_vjp(K, self.fm_stage(K, b, to_fm(x, self.C, self.shape))[1], to_fm(p, self.C, self.shape))
        return gK, gb

    def jvp(self, x, K, b, dx, dK, db):
        """The tangent ``(∂f/∂x) δx + (∂f/∂K) δK + (∂f/∂b) δb = σ'(K ∗ x + b) ⊙ (K ∗ δx + δK ∗ x + δb)``
        (rows of x, δx; numpy; the windows of x are cut once for ``K ∗ x`` and ``δK ∗ x``)."""
        xf = to_fm(x, self.C, self.shape)
        cols = im2col(xf, self.k)
        pre = self._preactivation(K, b, xf, cols)
        t = corr(K, to_fm(dx, self.C, self.shape))
        t += corr(dK, xf, cols=cols)
        t += self._bias(db)
        return from_fm(self.act.deriv(pre) * t)

    def casadi(self, x, K, b):
        raise InputError(f"field '{self.name}' has no CasADi form; train it with adam, lbfgs or the pmp-* solvers")


class HamiltonianConvField(ConvField):
    """``q̇ = F_q(p) = σ(K ∗ p + b)``, ``ṗ = F_p(q) = −σ(Kᵀ ∗ q + b)`` on x = (q, p), C channels each.

    ``Kᵀ ∗`` is the transposed convolution (:func:`corr` with :func:`flip_swap` (K)), so this is
    the ``hamiltonian`` field with ``K p`` → ``K ∗ p`` and ``Kᵀ q`` → ``Kᵀ ∗ q``. Separable: the
    splitting sweeps use ``half_stage(kind, K, b, z)`` (drift reads p, kick reads q) with
    ``half_vjp`` and the kernel map of :meth:`half_kernel`; the ∂/∂K of a kick sub-step (taken
    w.r.t. its kernel Kᵀ) maps back by ``flip_swap`` again.
    """
    name = "hamiltonian-conv"
    separable = True
    halves_per_state = 2
    #: its layer is not one convolution of the state (K acts on p and, transposed, on q): neither the
    #: Kronecker sides nor the one-convolution tangent of ``conv`` apply
    layer_io = None
    jvp = None

    def _split(self, x):
        C = self.C
        return x[:C], x[C:]

    def half_kernel(self, kind, K):
        return K if kind == "drift" else flip_swap(K, self.D)

    def fm_stage(self, K, b, Y):
        q, p = self._split(Y)
        Sq = self._preactivation(K, b, p)
        self.act.apply(Sq, Sq)
        Sp = self._preactivation(flip_swap(K, self.D), b, q)
        self.act.apply(Sp, Sp)
        return np.concatenate([Sq, -Sp]), (Y, Sq, Sp)

    def fm_vjp(self, K, cache, P):
        Y, Sq, Sp = cache
        q, p = self._split(Y)
        Pq, Pp = self._split(P)
        Uq = np.empty_like(Pq)
        self.act.mul_deriv(Sq, Pq, Uq, np.empty_like(Pq))
        Up = np.empty_like(Pp)
        self.act.mul_deriv(Sp, Pp, Up, np.empty_like(Pp))
        Up *= -1.0
        KT = flip_swap(K, self.D)
        g = np.concatenate([corr_T(KT, Up), corr_T(K, Uq)])
        gK = corr_grad(Uq, p, self.k) + flip_swap(corr_grad(Up, q, self.k), self.D)
        return g, gK, self._sum(Uq) + self._sum(Up)

    # --- the two halves, row layout (ResNetODE.step's splittings) ---------------------------
    def fq(self, pp, K, b):
        from ocdl.models.backend import is_torch
        n = pp.shape[0]
        if is_torch(pp):
            return self.act(torch_corr(pp.reshape((n, self.C) + self.shape), K, b)).reshape(n, -1)
        return from_fm(self.act(self._preactivation(K, b, to_fm(pp, self.C, self.shape))))

    def fp(self, q, K, b):
        from ocdl.models.backend import is_torch
        n = q.shape[0]
        if is_torch(q):
            return -self.act(torch_corr_T(q.reshape((n, self.C) + self.shape), K, b)).reshape(n, -1)
        return -from_fm(self.act(self._preactivation(flip_swap(K, self.D), b, to_fm(q, self.C, self.shape))))

    def f(self, x, K, b):
        from ocdl.models.backend import concat
        h = x.shape[-1] // 2
        return concat([self.fq(x[..., h:], K, b), self.fp(x[..., :h], K, b)])

    def vjp_x(self, x, K, b, p):
        Y = to_fm(x, 2 * self.C, self.shape)
        g, _, _ = self.fm_vjp(K, self.fm_stage(K, b, Y)[1], to_fm(p, 2 * self.C, self.shape))
        return from_fm(g)

    def vjp_theta(self, x, K, b, p):
        Y = to_fm(x, 2 * self.C, self.shape)
        _, gK, gb = self.fm_vjp(K, self.fm_stage(K, b, Y)[1], to_fm(p, 2 * self.C, self.shape))
        return gK, gb


CONV_FIELDS = ("conv", "hamiltonian-conv")


def conv_defaults(length):
    """Defaults of the conv fields for signals of ``length`` positions (``make_model`` and the
    CLI use these; measured on MNIST-1D, see docs/conv.md): channels C, kernel k, layers N, T."""
    return {"channels": 16, "kernel": 5, "layers": 8, "T": 4.0}
