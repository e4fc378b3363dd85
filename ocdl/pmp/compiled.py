"""The compiled backend of the sweeps: numpy arrays on the CPU, whole sweeps in numba kernels.

Explicit Runge–Kutta layers (:mod:`ocdl.pmp.kernels` for Euler, :mod:`ocdl.pmp.kernels_rk` for
the other tableaux) and the drift/kick splittings of a separable field
(:mod:`ocdl.pmp.kernels_split`) on the fused forms of :mod:`ocdl.pmp.forms` — the equations are
in :mod:`ocdl.pmp.costate` and in each kernel module. This module prepares the kernels' operands
(from the field's fused form, in the model's :mod:`workspace <ocdl.pmp.workspace>`), calls them
and hands back what they compute. Each sweep is a two-phase generator (the protocol of
:mod:`ocdl.pmp.dispatch`): it runs the forward keeping what the backward reads, yields ``x_N``
(n, d), is sent ``p_N`` (n, d) and runs the costate sweep from the stored stages, returning
``(gK, gb, states, costates, p0)``: ``gK, gb`` the θ-gradient without the regulariser, ``states``
and ``costates`` fresh ``(N+1, n, d)`` arrays (``trajectories``) or None, ``p0`` the initial
costate (n, d) with ``initial_costate`` (or None). Between the two phases the sweep holds the
model's workspace, where its stored stages are.

numba is a required dependency (it installs from wheels); it is imported on the first sweep,
not with ocdl (a process that runs one pays ~1 s to import numba and load the cached machine
code; the very first run compiles the kernels, cached in ``__pycache__``). An activation
without a compiled form runs the torch sweeps on the CPU instead (:func:`supports`).
"""
import functools

import numpy as np

from ocdl.pmp.forms import embed, hKT as _hKT, outer_parts, outer_theta_grads, split_theta_grads, theta_grads
from ocdl.pmp.workspace import borrow

_NONE = np.empty((0, 0, 0))      # "no array" for the kernels' optional (K, d, n) outputs


@functools.cache
def _modules():
    """``(kernels, kernels_rk, kernels_split)``, imported (with numba) on first use."""
    from ocdl.pmp import kernels, kernels_rk, kernels_split
    return kernels, kernels_rk, kernels_split


def supports(act):
    """Whether the activation object ``act`` has a compiled scalar form (``act.compiled()``)."""
    form = getattr(act, "compiled", None)
    return form is not None and form() is not None


def logistic_terminal(W, mu, y):
    """The compiled two-class terminal (:func:`ocdl.pmp.kernels.logistic_terminal`): ``xN``
    ((n, d): rows, or the transposed view of a feature-major array) ``→ (mean loss, p_N (n, d)
    in the layout of xN, ∇_s (n, 1))`` — or None where it does not apply (more than one logit,
    torch parameters)."""
    if not (isinstance(W, np.ndarray) and W.shape[0] == 1):
        return None
    kernels = _modules()[0]
    w, m, y = W[0], float(mu[0]), np.ascontiguousarray(y)     # W, mu: float64 arrays

    def terminal(xN):
        n, d = xN.shape
        lam, g = (np.empty((n, d)) if xN.flags.c_contiguous else np.empty((d, n)).T), np.empty(n)
        data = kernels.logistic_terminal(xN, w, m, y, lam, g)
        return data, lam, g[:, None]
    return terminal


def _hD(model, D):
    """The inner form's signed steps ``h D`` as a (d,) array."""
    return np.full(model.d, model.h) if D is None else np.ascontiguousarray(model.h * D[:, 0])


def _increments_fm(increments, N, d, n):
    """Additive increments ``(N, n, d)`` feature-major for the kernels (``(0, d, n)``: none)."""
    if increments is None:
        return np.empty((0, d, n))
    return np.ascontiguousarray(np.swapaxes(np.asarray(increments, dtype=float), 1, 2))


def _increments_rows(increments):
    """Additive increments (N, n, d) C-contiguous for the row-form kernels (``_NONE``: none)."""
    return _NONE if increments is None else np.ascontiguousarray(increments, dtype=float)


def _rows(model, X, ws):
    """``x_0 = lift(X)`` in row form, (n, d) C-contiguous, in the workspace (written through the
    feature-major view that :meth:`lift_into` fills; the padding columns are zeroed once, when
    the buffer is made, and nothing else writes them)."""
    return model.lift_into(X, ws.get("x0r", (X.shape[0], model.d), zeros=True).T, zero_padding=False).T


def _fm_out(gK, gb, Xs, P, trajectories, p0=None):
    """The common return; ``Xs``, ``P`` feature-major ``(N+1, d, n)``, handed back as views;
    ``p0`` feature-major (d, n) or None."""
    p0 = None if p0 is None else p0.T
    if trajectories:
        return gK, gb, Xs.transpose(0, 2, 1), P.transpose(0, 2, 1), p0
    return gK, gb, None, None, p0


def _p0_buffer(trajectories, initial_costate, shape):
    """The kernels' costate output: every costate (N+1, …), p_0 only (1, …), or none."""
    if trajectories:
        return np.empty(shape)
    return np.empty((1,) + shape[1:]) if initial_costate else _NONE


# ------------------------------------------------------------------------------------------
# Euler (ocdl.pmp.kernels): outer form in row form, inner form feature-major

def euler_sweep(model, params, X, trajectories=False, increments=None, initial_costate=False):
    """Euler layers: forward keeping σ, costate sweep reusing it (:mod:`ocdl.pmp.kernels`); a
    two-phase generator (module docstring). ``increments`` ((N, n, d) or None):
    ``x_{k+1} = x_k + h f(x_k, θ_k) + ξ_k``; being state- and θ-independent they leave the
    backward sweep and the gradient formula unchanged."""
    kernels = _modules()[0]
    ek = kernels.euler(model.F.act)
    h, N, d = model.h, model.layers, model.d
    n = X.shape[0]
    with borrow(model) as ws:
        if model.F.form == "outer":         # row form: one sample per row, as the model lifts it
            K, hb, hKT = outer_parts(model, params, scaled=False)
            nb = kernels.block_width(d, n)
            S = ws.get("SB", (-(-n // nb), N, nb, d))      # σ(x_k) per block of rows
            xN = np.empty((n, d))
            Xs = np.empty((N + 1, n, d)) if trajectories else _NONE
            ek.outer_forward(hKT, hb, _rows(model, X, ws), xN, S, _increments_rows(increments), Xs)
            del hKT, hb                     # (not held while the stored stages wait for p_N)
            lamN = yield xN
            P = _p0_buffer(trajectories, initial_costate, (N + 1, n, d))
            gK, gb = np.empty((N, d, d)), np.empty((N, d))
            hK = np.multiply(K, h)          # formed only now: not held while σ waits for p_N
            ek.outer_backward(hK, S, np.ascontiguousarray(lamN), h, gK, gb, P)
            gK, gb = outer_theta_grads(model, gK, gb)
            p0 = P[0] if (trajectories or initial_costate) else None
            return (gK, gb) + ((Xs, P) if trajectories else (None, None)) + (p0,)
        G = ws.get("G", (N, d, d + 1))
        M, D = embed(model, params)
        Xa = np.empty((N + 1, d + 1, n)) if trajectories else ws.get("Xa", (N + 1, d + 1, n), ones_row=True)
        if trajectories:
            Xa[:, d, :] = 1.0
        Sg = ws.get("Sg", (N, d, n))
        model.lift_into(X, Xa[0, :d])
        ek.inner_forward(M, _hD(model, D), Xa, Sg, _increments_fm(increments, N, d, n))
        xN = Xa[N, :d].copy().T
        lamN = yield xN
        P = np.empty((N + 1, d, n)) if trajectories else ws.get("rotP", (2, d, n))
        P[N if trajectories else N % 2] = lamN.T
        first = ek.inner_backward(_hKT(model, M, D), Xa, Sg, P, G)
        G *= h                              # in place: theta_grads hands back fresh arrays
        gK, gb = theta_grads(model, G, D)
        p0 = P[first].copy() if initial_costate else None
        return _fm_out(gK, gb, Xa[:, :d], P, trajectories, p0)


def _euler_forward(model, params, X, increments, Xs):
    """x_N ((n, d), fresh) of an Euler network; every state into ``Xs`` ((N+1, n, d)) unless it
    is ``_NONE``; nothing stored, the rotating buffers in the model's workspace."""
    kernels = _modules()[0]
    ek = kernels.euler(model.F.act)
    N, d = model.layers, model.d
    n = X.shape[0]
    with borrow(model) as ws:
        if model.F.form == "outer":
            XN = np.empty((n, d))
            _, hb, hKT = outer_parts(model, params, scaled=False)
            ek.outer_forward(hKT, hb, _rows(model, X, ws), XN, np.empty((0, N, kernels.block_width(d, n), d)),
                             _increments_rows(increments), Xs)
            return XN
        M, D = embed(model, params)
        full = Xs is not _NONE
        Xa = np.empty((N + 1, d + 1, n)) if full else ws.get("rotA", (2, d + 1, n), ones_row=True)
        Xa[:, d] = 1.0
        model.lift_into(X, Xa[0, :d])
        last = ek.inner_forward(M, _hD(model, D), Xa, ws.get("Sg1", (1, d, n)), _increments_fm(increments, N, d, n))
        if full:
            Xs[...] = Xa[:, :d].transpose(0, 2, 1)
        return Xa[last, :d].T.copy()


# ------------------------------------------------------------------------------------------
# explicit Runge–Kutta methods with s > 1 stages (ocdl.pmp.kernels_rk)

def _rk_forward(model, params, X, ws, store, Xs, increments):
    """The forward kernels, samples in blocks: x_N (d, n); with ``store`` the stored stages and
    the backward's operands (in ``ws``); every state into ``Xs`` (N+1, d, n) unless ``_NONE``."""
    from ocdl.pmp.forms import rk_coefficients
    kernels, kernels_rk, _ = _modules()
    rk = kernels_rk.rk(model.F.act)
    A, bw, _, _ = rk_coefficients(model.integrator)
    N, d = model.layers, model.d
    n, s = X.shape[0], len(bw)
    nb = kernels.block_width(d, n)
    B = -(-n // nb) if store else 0
    inc = _increments_fm(increments, N, d, n)
    X0 = model.lift_into(X, np.empty((d, n)))
    XN = np.empty((d, n))
    if model.F.form == "outer":
        hK, hb, hKT = outer_parts(model, params)
        S = ws.get("crkS", (B, N, s, d, nb)) if store else np.empty((0, N, s, d, nb))   # σ(Y_i)
        rk.outer_forward(A, bw, hK, hb, X0, XN, S, inc, Xs)
        return XN, {"S": S, "hKT": hKT, "D": None}
    M, D = embed(model, params)
    # layer inputs x_k and σ(K Y_i + b) (the stage inputs Y_i are recomputed backwards)
    Xk = ws.get("crkX", (B, N, d, nb)) if store else np.empty((0, N, d, nb))
    Sg = ws.get("crkSg", (B, N, s, d, nb)) if store else np.empty((0, N, s, d, nb))
    rk.inner_forward(A, bw, np.ascontiguousarray(M[:, :, :d]), np.ascontiguousarray(M[:, :, d]),
                     _hD(model, D), X0, XN, Xk, Sg, inc, Xs)
    return XN, {"Xk": Xk, "Sg": Sg, "hKT": _hKT(model, M, D) if store else None, "D": D}


def rk_sweep(model, params, X, trajectories=False, increments=None, initial_costate=False):
    """Explicit Runge–Kutta layers (s > 1 stages, all ``b_i ≠ 0``) by :mod:`ocdl.pmp.kernels_rk`;
    a two-phase generator (module docstring)."""
    from ocdl.pmp.forms import rk_coefficients
    rk = _modules()[1].rk(model.F.act)
    A, bw, _, Ch = rk_coefficients(model.integrator)
    h, N, d = model.h, model.layers, model.d
    n = X.shape[0]
    Xs = np.empty((N + 1, d, n)) if trajectories else _NONE
    with borrow(model) as ws:
        XN, st = _rk_forward(model, params, X, ws, True, Xs, increments)
        xN = XN.T
        lamN = yield xN
        G = ws.get("crkG", (N, d, d + 1))
        P = _p0_buffer(trajectories, initial_costate, (N + 1, d, n))
        PN = np.ascontiguousarray(lamN.T)
        if model.F.form == "outer":
            rk.outer_backward(Ch, bw, st["hKT"], st["S"], PN, G, P)
        else:
            rk.inner_backward(A, Ch, bw, st["hKT"], _hD(model, st["D"]), st["Xk"], st["Sg"], PN, G, P)
        G *= h                              # in place: theta_grads hands back fresh arrays
        gK, gb = theta_grads(model, G, st["D"])
    p0 = P[0] if (trajectories or initial_costate) else None
    return _fm_out(gK, gb, Xs, P, trajectories, p0)


# ------------------------------------------------------------------------------------------
# splittings on a separable field (ocdl.pmp.kernels_split)

@functools.lru_cache(maxsize=64)
def _split_slots(kinds, N, store):
    return _modules()[2].slots(kinds, N, store)


def _split_blocks(model, params, subs):
    """Per layer and sub-step the ``(m × m)`` block of ``A_j`` on the half it reads (drift: the
    p columns, kick: the q columns), its bias, ``ch = c h s`` and the kinds (True = drift)."""
    N, d, m = model.layers, model.d, model.m
    halves = model.F.halves(params["K"], params["b"])
    L = len(subs)
    K, bias, ch = np.empty((N, L, m, m)), np.empty((N, L, m)), np.empty(L)
    for j, (kind, c) in enumerate(subs):
        A, sign = halves[kind]
        K[:, j] = A[:, :, m:d] if kind == "drift" else A[:, :, :m]
        bias[:, j] = A[:, :, d]
        ch[j] = c * model.h * sign
    return K, bias, ch, tuple(kind == "drift" for kind, _ in subs)


def _split_start(model, X, H, ws):
    """q_0 into slot 0 and p_0 into slot 1 of ``H`` (rows :m)."""
    m = model.m
    x0 = model.lift_into(X, ws.get("x0", (model.d, X.shape[0])))
    H[0, :m] = x0[:m]
    H[1, :m] = x0[m:]


def split_sweep(model, params, X, subs, trajectories=False, initial_costate=False):
    """Drift/kick splittings ``subs`` = [(kind, c)] on a separable field (:mod:`ocdl.pmp.kernels_split`),
    a two-phase generator (module docstring); the costates of the returned trajectory are those
    at the layer boundaries."""
    ks = _modules()[2].split(model.F.act)
    N, d, m = model.layers, model.d, model.m
    n = X.shape[0]
    L = len(subs)
    K, bias, ch, kinds = _split_blocks(model, params, subs)
    src, prev, dst, qend, pend = _split_slots(kinds, N, True)
    with borrow(model) as ws:
        H = ws.get("Hk", (N * L + 2, m + 1, n), ones_row=True)    # [half-state; 1] per slot
        Sg = ws.get("Sk", (N * L, m, n))
        _split_start(model, X, H, ws)
        ks.split_forward(K, bias, ch, src, prev, dst, H, Sg)
        xNf = np.empty((d, n))
        xNf[:m] = H[qend[N], :m]
        xNf[m:] = H[pend[N], :m]
        xN = xNf.T
        lamN = yield xN
        chKT = np.ascontiguousarray(np.swapaxes(K, 2, 3) * ch[None, :, None, None])
        lam = ws.get("lam", (d, n))
        lam[...] = lamN.T
        P = np.empty((N + 1, d, n)) if trajectories else _NONE
        if trajectories:
            P[N] = lam
        Gs = ws.get("Gk", (N, L, m, m + 1))
        ks.split_backward(chKT, np.array(kinds), src, H, Sg, lam, Gs, P)
        Gs *= ch[None, :, None, None]
        G = np.zeros((N, L, m, d + 1))
        for j, drift in enumerate(kinds):
            G[:, j, :, slice(m, d) if drift else slice(0, m)] = Gs[:, j, :, :m]
        G[..., d] = Gs[..., m]
        gK, gb = split_theta_grads(model, params, G, subs)
        Xs = None
        if trajectories:
            Xs = np.empty((N + 1, d, n))
            Xs[:, :m] = H[qend, :m]
            Xs[:, m:] = H[pend, :m]
        p0 = lam.copy() if initial_costate else None        # split_backward leaves p_0 in lam
    return _fm_out(gK, gb, Xs, P, trajectories, p0)


def _split_forward(model, params, X, subs):
    """x_N ((n, d)) of a splitting network, two slots updated in place, nothing stored."""
    ks = _modules()[2].split(model.F.act)
    m, n = model.m, X.shape[0]
    K, bias, ch, kinds = _split_blocks(model, params, subs)
    src, prev, dst, _, _ = _split_slots(kinds, model.layers, False)
    with borrow(model) as ws:
        H = ws.get("Hr", (2, m + 1, n))
        _split_start(model, X, H, ws)
        ks.split_forward(K, bias, ch, src, prev, dst, H, np.empty((0, m, n)))
        return np.concatenate([H[0, :m], H[1, :m]]).T


# ------------------------------------------------------------------------------------------
# forward only

def final_state(model, params, X, increments=None, subs=None):
    """``x_N`` ((n, d)) by the cost-only forward (nothing stored); ``subs`` for a splitting."""
    if subs is not None:
        return _split_forward(model, params, X, subs)
    if model.integrator == "euler":
        return _euler_forward(model, params, X, increments, _NONE)
    with borrow(model) as ws:
        return _rk_forward(model, params, X, ws, False, _NONE, increments)[0].T


def states(model, params, X, increments=None):
    """Every state ``(N+1, n, d)`` of an explicit Runge–Kutta network (nothing else stored)."""
    N, d, n = model.layers, model.d, X.shape[0]
    if model.integrator == "euler":
        Xs = np.empty((N + 1, n, d))
        _euler_forward(model, params, X, increments, Xs)
        return Xs
    Xs = np.empty((N + 1, d, n))
    with borrow(model) as ws:
        _rk_forward(model, params, X, ws, False, Xs, increments)
    return Xs.transpose(0, 2, 1)
