"""Compiled whole-sweep kernels for the fused Euler sweeps (numba; optional accelerator).

The loops over layers run inside compiled code, so a layer costs no Python or numpy call
overhead, and each layer's block ``(d, n)`` is touched in as few passes as possible. Same
mathematics and the same feature-major layout as :func:`ocdl.pmp.fused.euler_value_and_grad`
(whose numpy code is the fallback and the tested reference):

    outer  forward   S_k = σ(x_k),                x_{k+1} = x_k + h K_k S_k + h b_k (+ ξ_k)
           backward  g = h K_kᵀ p_{k+1},          p_k = p_{k+1} + σ'(x_k) ⊙ g,
                     G_k = p_{k+1} [S_k; 1]ᵀ      (∂J/∂M_k = h G_k)
    inner  forward   Σ_k = σ(M_k [x_k; 1]),       x_{k+1} = x_k + h D ⊙ Σ_k (+ ξ_k)
           backward  U = σ'_k ⊙ p_{k+1},           p_k = p_{k+1} + h M̃_kᵀ D U,
                     G_k = U [x_k; 1]ᵀ

σ' is read off the stored σ (tanh ``1 − σ²``, relu ``[σ > 0]``, softplus ``−expm1(−σ)``).

**Sample blocks (outer form).** Samples are independent until the θ-contraction, so the outer
sweeps run the samples in blocks of ``nb`` columns (:func:`block_width`: ~12 288 floats, 96 KiB,
per (d, nb) block) and take each block through *all* layers before the next: the block's
state, σ and product stay in the core's L2 cache instead of streaming (d, n) arrays through
L3 once per pass (measured at d = 64, n = 4000: 8 % off the forward, 12 % off the backward;
one block — no change — at d = 8, n = 512). The stored ``[σ(x_k); 1]`` are kept per block,
(B, N, d+1, nb); the last block is padded with zero states and zero costates, which add nothing
to ``G``. Per layer and block the forward is one BLAS product ``h K σ(x_k)`` (K alone: the
bias ``h b`` is added in the elementwise pass, which also forms the next layer's σ — one pass
instead of three); the backward adds each block's ``p_{k+1} [σ; 1]ᵀ`` into ``G_k``.

**Terminal.** :func:`logistic_terminal` is the compiled twin of the two-class head and loss of
:mod:`ocdl.models.losses` (logit, logistic loss, ∇_s and ``p_N = w ∇_s`` in one pass): at
n = 512 it replaces ~20 µs of numpy calls.

**tanh.** numpy's ``tanh`` costs ~1.7 ns per element here, half the forward sweep; libm's
scalar ``tanh`` in compiled code is slower still. :func:`_tanh` is branch-free so the
compiler vectorises it (AVX-512 / AVX2):

    tanh x = sign(x) · (−e / (2 + e)),   e = expm1(−2 min(|x|, 20)),
    expm1(y) = 2ᵏ expm1(r) + (2ᵏ − 1),   y = k ln2 + r,  |r| ≤ ln2/2,  k = round(y / ln2),

with ``ln2`` split in a high and a low part (Cody–Waite), ``expm1(r)`` its Taylor polynomial to
degree 14 (truncation ≤ 1.2e-17 relative on |r| ≤ ln2/2, Horner), and ``2ᵏ`` assembled from its
exponent bits. Measured against numpy's tanh on 2.2 million points in [−30, 30] and on
±10^[−300, 1.5]: ≤ 4.4e-16 relative (4 ulp) everywhere; tanh(±0) = ±0, tanh(±x) = ±1 beyond 20
(tanh 20 = 1 − 8.5e-18 rounds to 1). ~1.0 ns per element (numpy 1.7, XLA ~0.9 on this machine).

The matrix products are BLAS calls (``np.dot`` inside the compiled loop: ~2.3 µs for the
(8 × 9)·(9 × 512) block, against ~4 µs for the best hand-written loop tried); the elementwise
work around them is fused into as few passes as possible (backward: ``p + σ' ⊙ (h Kᵀ p)`` in
one). Sums are in another order than numpy's, so results agree with the numpy path to
round-off (tested ≤ 1e-12 relative, and both against torch autograd).

Cost: a process that runs a compiled sweep imports numba and loads the cached machine code
(~1–2 s; the very first run compiles, a few seconds, cached in ``__pycache__``).

Fast-math: only ``contract`` (FMA), ``nsz`` and ``arcp`` — no reassociation (the tanh
polynomial is evaluated as written), no ``nnan``/``ninf`` (NaN and ±inf propagate as in numpy).
"""
import numpy as np

try:
    import numba
    from numba.core import types as _nbt
    from numba.extending import intrinsic
except ImportError:     # optional: the numpy sweeps of ocdl.pmp.fused run instead
    numba = None

ACT_CODES = {"tanh": 0, "relu": 1, "softplus": 2}
#: floats per (d, nb) sample block of the blocked sweeps (12288 = 96 KiB: measured best of
#: 8k–32k at d = 64, n = 4000 on this machine's 2 MiB L2; see :func:`block_width`)
BLOCK_FLOATS = 12288

if numba is not None:
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

    @numba.njit(inline="always")
    def _tanh(v):
        y = -2.0 * min(abs(v), 20.0)
        kf = np.floor(y * _INVLN2 + 0.5)
        r = (y - kf * _LN2HI) - kf * _LN2LO
        p = 1.0 / 87178291200.0
        p = p * r + 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
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

    @numba.njit(inline="always", fastmath=_FM)
    def _deriv_mul_add(s, v, w, out, code):
        """``out = w + σ'(z) ⊙ v`` given ``s = σ(z)`` (``out`` may be ``v``), one pass."""
        d, n = s.shape
        if code == 0:
            for i in range(d):
                for c in range(n):
                    out[i, c] = w[i, c] + (1.0 - s[i, c] * s[i, c]) * v[i, c]
        elif code == 1:
            for i in range(d):
                for c in range(n):
                    out[i, c] = w[i, c] + (v[i, c] if s[i, c] > 0.0 else 0.0)
        else:
            for i in range(d):
                for c in range(n):
                    out[i, c] = w[i, c] - np.expm1(-s[i, c]) * v[i, c]

    @_jit(fastmath=_FM)
    def logistic_terminal(XN, w, mu, y, lam, g):
        """Two classes, one logit ``s = w·x_N + μ`` per sample (``XN`` (d, n) feature-major):
        the mean logistic loss and its gradients, as :func:`ocdl.models.losses.mean_loss_and_grad`
        (``z = −(2c − 1) s``, ``e = exp(−|z|)``, ``Φ = max(z, 0) + log1p(e)``,
        ``g = ∂(Σ Φ / n)/∂s = −(2c − 1) λ(z) / n`` with the logistic ``λ(z) = [1 or e]/(1 + e)``)
        in one compiled pass; ``g`` (n,) gets g, ``lam`` (d, n) the terminal costate
        ``p_N = w g`` (outer product). Returns the mean loss."""
        d, n = XN.shape
        for c in range(n):
            g[c] = mu
        for i in range(d):
            wi = w[i]
            for c in range(n):
                g[c] += wi * XN[i, c]                    # s (kept in g)
        total = 0.0
        inv = 1.0 / n
        for c in range(n):
            ns = 1.0 - 2.0 * y[c]
            z = ns * g[c]
            e = np.exp(-abs(z))
            total += max(z, 0.0) + np.log1p(e)
            num = 1.0 if z >= 0.0 else e
            g[c] = ns * inv * (num / (1.0 + e))
        for i in range(d):
            wi = w[i]
            for c in range(n):
                lam[i, c] = wi * g[c]
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
    def _step_apply(x, y, hb, s, code):
        """``x ← x + y + hb`` (hb per row), then ``s = σ(x)``, in one pass."""
        d, n = x.shape
        if code == 0:
            for i in range(d):
                bi = hb[i]
                for c in range(n):
                    v = x[i, c] + y[i, c] + bi
                    x[i, c] = v
                    s[i, c] = _tanh(v)
        elif code == 1:
            for i in range(d):
                bi = hb[i]
                for c in range(n):
                    v = x[i, c] + y[i, c] + bi
                    x[i, c] = v
                    s[i, c] = max(v, 0.0)
        else:
            for i in range(d):
                bi = hb[i]
                for c in range(n):
                    v = x[i, c] + y[i, c] + bi
                    x[i, c] = v
                    s[i, c] = _softplus(v)

    @numba.njit(inline="always", fastmath=_FM)
    def _step(x, y, hb):
        """``x ← x + y + hb`` (hb per row)."""
        d, n = x.shape
        for i in range(d):
            bi = hb[i]
            for c in range(n):
                x[i, c] += y[i, c] + bi

    @_jit(fastmath=_FM)
    def outer_forward(hK, hb, X0, XN, S, inc, Xall, code):
        """Outer-form Euler forward ``x_{k+1} = x_k + hK_k σ(x_k) + hb_k (+ ξ_k)``, sample-blocked:
        ``x_0`` from ``X0`` (d, n), ``x_N`` into ``XN`` (d, n). ``S`` (B, N, d+1, nb) receives
        ``[σ(x_k); 1]`` per block (last row ones; B·nb ≥ n, padding columns hold the sweep of
        x = 0), or is (0, N, d+1, nb): cost only. ``inc`` (N, d, n) additive increments or
        (0, d, n); ``Xall`` (N+1, d, n) receives every state, or is (0, d, n). Per layer and
        block: one BLAS product ``hK σ``, then one pass that adds it and forms the next σ."""
        N, d = hK.shape[0], hK.shape[1]
        n = X0.shape[1]
        nb = S.shape[3]
        store = S.shape[0] > 0
        keep = Xall.shape[0] > 0
        x = np.empty((d, nb))
        y = np.empty((d, nb))
        scratch = np.ones((d + 1, nb))
        for c0 in range(0, n, nb):
            w = min(nb, n - c0)
            blk = c0 // nb
            _load_block(X0, c0, w, x)
            a = S[blk, 0] if store else scratch
            _apply(x, a[:d], code)
            for k in range(N):
                np.dot(hK[k], a[:d], y)                   # h K σ(x_k)
                last = k == N - 1
                nxt = S[blk, k + 1] if (store and not last) else scratch
                if last or inc.shape[0] > 0:
                    _step(x, y, hb[k])
                    if inc.shape[0] > 0:
                        for i in range(d):
                            for c in range(w):
                                x[i, c] += inc[k, i, c0 + c]
                    if not last:
                        _apply(x, nxt[:d], code)
                else:
                    _step_apply(x, y, hb[k], nxt[:d], code)   # x_{k+1}, σ(x_{k+1})
                if keep:
                    _store_block(x, w, Xall[k + 1], c0)
                a = nxt
            _store_block(x, w, XN, c0)
        if keep:
            Xall[0] = X0

    @_jit(fastmath=_FM)
    def outer_backward(hKT, S, PN, G, Pall, code):
        """Outer-form Euler backward, sample-blocked, from ``p_N`` in ``PN`` (d, n) over the
        blocks ``S`` of :func:`outer_forward` (padding columns get p = 0, so they add nothing);
        ``G`` (N, d, d+1) gets ``Σ_samples p_{k+1} [S_k; 1]ᵀ``; ``Pall`` (N+1, d, n) receives
        every costate, or is (0, d, n)."""
        N = hKT.shape[0]
        d, n = PN.shape
        nb = S.shape[3]
        keep = Pall.shape[0] > 0
        lam = np.empty((d, nb))
        g = np.empty((d, nb))
        part = np.empty((d, d + 1))
        G[:] = 0.0
        for c0 in range(0, n, nb):
            w = min(nb, n - c0)
            _load_block(PN, c0, w, lam)
            for k in range(N - 1, -1, -1):
                a = S[c0 // nb, k]
                np.dot(lam, a.T, part)                   # p_{k+1} [σ; 1]ᵀ of this block
                _add_rows(part, G[k])
                np.dot(hKT[k], lam, g)                   # h Kᵀ p
                _deriv_mul_add(a[:d], g, lam, lam, code)  # p + h σ' ⊙ Kᵀ p
                if keep:
                    _store_block(lam, w, Pall[k], c0)
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
        """Inner-form Euler backward (``X`` all N+1 states ``[x_k; 1]``, ``Sg`` all σ); ``P``
        and the return value as in :func:`outer_backward`; ``G`` (N, d, d+1) gets
        ``U_k [x_k; 1]ᵀ``, ``U_k = σ'_k ⊙ p_{k+1}``."""
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


def available():
    """Whether the compiled kernels can run (numba importable)."""
    return numba is not None


def act_code(act):
    """The kernels' code of an activation object, or None if they do not implement it."""
    return ACT_CODES.get(getattr(act, "name", None))
