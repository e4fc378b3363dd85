"""The compiled backend of the sweeps: numpy arrays on the CPU, whole sweeps in numba kernels.

Explicit Runge–Kutta layers, Euler included (:mod:`ocdl.pmp.kernels_rk`), and the drift/kick
splittings of a separable field
(:mod:`ocdl.pmp.kernels_split`) on the fused forms of :mod:`ocdl.pmp.forms` — the equations are
in :mod:`ocdl.pmp.costate` and in each kernel module. This module prepares the kernels' operands
(from the field's fused form, in the model's :mod:`workspace <ocdl.pmp.workspace>`), calls them
and hands back what they compute. Each sweep is a two-phase generator (the protocol of
:mod:`ocdl.pmp.dispatch`): it runs the forward keeping what the backward reads, yields ``x_N``
(n, d), is sent ``p_N`` (n, d) and runs the costate sweep from the stored stages, returning
``(gK, gb, states, costates, p0)``: ``gK, gb`` the θ-gradient without the regulariser, ``states``
and ``costates`` fresh ``(N+1, n, d)`` arrays (``trajectories``) or None, ``p0`` the initial
costate (n, d) with ``initial_costate`` (or None). Between the two phases the sweep holds the
model's workspace, where its stored stages are. With ``store=False`` the forward keeps nothing
(the cost-only forward: the sweep is closed after ``x_N``).

numba is a required dependency (it installs from wheels); it is imported on the first sweep,
not with ocdl (a process that runs one pays ~1 s to import numba and load the cached machine
code; the very first run compiles the kernels, cached in ``__pycache__``). An activation
without a compiled form runs the torch sweeps on the CPU instead (:func:`supports`).
"""
import functools

import numpy as np

from ocdl.models.resnet import SPLITTINGS
from ocdl.pmp.forms import (embed, hKT as _hKT, outer_parts, outer_theta_grads, rk_coefficients, split_theta_grads,
                            theta_grads)
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


def _increments(increments):
    """Additive increments (N, n, d) C-contiguous for the kernels (``_NONE``: none)."""
    return _NONE if increments is None else np.ascontiguousarray(increments, dtype=float)


def _p0_buffer(trajectories, initial_costate, shape):
    """The kernels' costate output: every costate (N+1, …), p_0 only (1, …), or none."""
    if trajectories:
        return np.empty(shape)
    return np.empty((1,) + shape[1:]) if initial_costate else _NONE


# ------------------------------------------------------------------------------------------
# explicit Runge–Kutta methods, Euler included (ocdl.pmp.kernels_rk): the outer form in row
# form, the inner form feature-major

def _rk_forward(model, params, X, ws, store, states, increments):
    """The forward kernels, samples in blocks: ``(x_N (n, d), stored, Xs)`` — with ``store`` the
    stored stages and the backward's operands (in ``ws``), with ``states`` every state
    ``(N+1, n, d)`` (else None)."""
    kernels, kernels_rk, _ = _modules()
    rk = kernels_rk.rk(model.F.act)
    A, bw, _, _ = rk_coefficients(model.integrator)
    N, d = model.layers, model.d
    n, s = X.shape[0], len(bw)
    nb = kernels.block_width(d, n)
    B = -(-n // nb) if store else 0
    if model.F.form == "outer":                 # row form: one sample per row, as the model lifts it
        K, hb, hKT = outer_parts(model, params)
        S = ws.get("crkS", (B, N, s, nb, d)) if store else np.empty((0, N, s, nb, d))   # σ(Y_i)
        Xs = np.empty((N + 1, n, d)) if states else _NONE
        XN = np.empty((n, d))
        # x_0 = lift(X) in row form, written through the feature-major view lift_into fills (the
        # padding columns are zeroed once, when the buffer is made, and nothing else writes them)
        X0 = model.lift_into(X, ws.get("x0r", (n, d), zeros=True).T, zero_padding=False).T
        rk.outer_forward(A, bw, hKT, hb, X0, XN, S, _increments(increments), Xs)
        return XN, {"S": S, "K": K}, (Xs if states else None)
    M, D = embed(model, params)
    # layer inputs x_k and σ(K Y_i + b) (the stage inputs Y_i are recomputed backwards)
    Xk = ws.get("crkX", (B, N, d + 1, nb), ones_row=True) if store else np.empty((0, N, d + 1, nb))
    Sg = ws.get("crkSg", (B, N, s, d, nb)) if store else np.empty((0, N, s, d, nb))
    Xs = np.empty((N + 1, d, n)) if states else _NONE
    XN = np.empty((d, n))
    rk.inner_forward(A, bw, np.ascontiguousarray(M), _hD(model, D),
                     model.lift_into(X, ws.get("crkX0", (d, n))), XN, Xk, Sg, _increments(increments), Xs)
    stored = {"Xk": Xk, "Sg": Sg, "hKT": _hKT(model, M, D) if store else None, "D": D}
    return XN.T, stored, (Xs.transpose(0, 2, 1) if states else None)


def rk_sweep(model, params, X, trajectories=False, increments=None, initial_costate=False, store=True):
    """Explicit Runge–Kutta layers (Euler, or s > 1 stages with all ``b_i ≠ 0``) by
    :mod:`ocdl.pmp.kernels_rk`; a two-phase generator (module docstring). ``increments``
    ((N, n, d) or None): ``x_{k+1} = Ψ_h(x_k) + ξ_k``; being state- and θ-independent they leave
    the backward sweep and the gradient formula unchanged."""
    rk = _modules()[1].rk(model.F.act)
    A, bw, _, Ch = rk_coefficients(model.integrator)
    h, N, d = model.h, model.layers, model.d
    n = X.shape[0]
    with borrow(model) as ws:
        xN, st, Xs = _rk_forward(model, params, X, ws, store, trajectories, increments)
        lamN = yield xN
        if model.F.form == "outer":             # (∂J/∂K̃, ∂J/∂b̃ apart: no copy for the plain [K | b])
            P = _p0_buffer(trajectories, initial_costate, (N + 1, n, d))
            gK, gb = np.empty((N, d, d)), np.empty((N, d))
            hK = np.multiply(st["K"], h)        # formed only now: not held while σ waits for p_N
            rk.outer_backward(Ch, bw, hK, st["S"], np.ascontiguousarray(lamN), h, gK, gb, P)
            gK, gb = outer_theta_grads(model, gK, gb)
        else:
            G = ws.get("crkG", (N, d, d + 1))
            P = _p0_buffer(trajectories, initial_costate, (N + 1, d, n))
            rk.inner_backward(A, Ch, bw, st["hKT"], _hD(model, st["D"]), st["Xk"], st["Sg"],
                              np.ascontiguousarray(lamN.T), G, P)
            G *= h                              # in place: theta_grads hands back fresh arrays
            gK, gb = theta_grads(model, G, st["D"])
            P = P.transpose(0, 2, 1)
    p0 = P[0] if (trajectories or initial_costate) else None
    return gK, gb, Xs, (P if trajectories else None), p0


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


def split_sweep(model, params, X, trajectories=False, increments=None, initial_costate=False, store=True):
    """Drift/kick splittings ``SPLITTINGS[integrator]`` = [(kind, c)] on a separable field
    (:mod:`ocdl.pmp.kernels_split`), a two-phase generator (module docstring); the costates of
    the returned trajectory are those at the layer boundaries."""
    ks = _modules()[2].split(model.F.act)
    subs = SPLITTINGS[model.integrator]
    N, d, m = model.layers, model.d, model.m
    n = X.shape[0]
    L = len(subs)
    K, bias, ch, kinds = _split_blocks(model, params, subs)
    src, prev, dst, qend, pend = _split_slots(kinds, N, store)
    with borrow(model) as ws:             # [half-state; 1] per slot (cost only: two, in place)
        H = ws.get("Hk" if store else "Hr", (N * L + 2 if store else 2, m + 1, n), ones_row=True)
        Sg = ws.get("Sk", (N * L, m, n)) if store else np.empty((0, m, n))
        x0 = model.lift_into(X, ws.get("x0", (d, n)))               # q_0 into slot 0, p_0 into 1
        H[0, :m], H[1, :m] = x0[:m], x0[m:]
        ks.split_forward(K, bias, ch, src, prev, dst, H, Sg)
        xNf = np.empty((d, n))
        xNf[:m] = H[qend[N] if store else 0, :m]
        xNf[m:] = H[pend[N] if store else 1, :m]
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
        p0 = lam.T.copy() if initial_costate else None      # split_backward leaves p_0 in lam
    if trajectories:
        return gK, gb, Xs.transpose(0, 2, 1), P.transpose(0, 2, 1), p0
    return gK, gb, None, None, p0


def states(model, params, X, increments=None):
    """Every state ``(N+1, n, d)`` of an explicit Runge–Kutta network (nothing else stored)."""
    with borrow(model) as ws:
        return _rk_forward(model, params, X, ws, False, True, increments)[2]
