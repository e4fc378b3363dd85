"""Dispatch to the compiled whole-sweep kernels (numba; the optional extra ``fast``).

The numpy sweeps of :mod:`ocdl.pmp.fused` hand a sweep to the kernels of
:mod:`ocdl.pmp.kernels` (Euler), :mod:`ocdl.pmp.kernels_rk` (other explicit Runge–Kutta methods)
and :mod:`ocdl.pmp.kernels_split` (the splittings) when numba is installed and the activation
has a kernel code; this module prepares their operands (from the field's fused form, in the
model's workspace), calls them and returns what the numpy sweep would. The numpy sweeps stay
the fallback and the tested reference. numba is imported on the first compiled sweep, not with
ocdl.
"""
import functools
import importlib.util
import os

import numpy as np

from ocdl.pmp.forms import (embed as _embed, hKT as _hKT, outer_parts, outer_theta_grads, split_theta_grads,
                             theta_grads as _theta_grads)
from ocdl.pmp.workspace import _borrow, _Lease

#: run the sweeps through the compiled kernels when numba is installed (extra ``fast``);
#: ``OCDL_NUMBA=0`` in the environment, or setting this to False, forces the numpy sweeps.
COMPILED = importlib.util.find_spec("numba") is not None and os.environ.get("OCDL_NUMBA", "1") != "0"


kernels = None


def _kernels():
    """:mod:`ocdl.pmp.kernels` (imported on first use), or None when the numpy sweeps must run."""
    global kernels
    if not COMPILED:
        return None
    if kernels is None:
        from ocdl.pmp import kernels as k
        kernels = k
    return kernels


def _compiled_code(act):
    """The compiled kernels' activation code, or None when the numpy sweeps must run."""
    return None if _kernels() is None else kernels.act_code(act)


def compiled_logistic(W, mu, y):
    """The compiled twin of the two-class terminal (:func:`ocdl.pmp.kernels.logistic_terminal`):
    ``xN`` ((n, d): rows, or the transposed view of a feature-major array) ``→ (mean loss, p_N
    (n, d) in the layout of xN, ∇_s (n, 1))`` — or None where it does not apply (numba missing
    or switched off, more than one logit, torch parameters)."""
    if not (isinstance(W, np.ndarray) and W.shape[0] == 1) or _kernels() is None:
        return None
    w, m, y = W[0], float(mu[0]), np.ascontiguousarray(y)     # W, mu: float64 arrays (_as_numpy)

    def terminal(xN):
        n, d = xN.shape
        lam, g = (np.empty((n, d)) if xN.flags.c_contiguous else np.empty((d, n)).T), np.empty(n)
        data = kernels.logistic_terminal(xN, w, m, y, lam, g)
        return data, lam, g[:, None]
    return terminal


# ------------------------------------------------------------------------------------------
# explicit Runge–Kutta methods (ocdl.pmp.kernels_rk)

kernels_rk = None


def _rk_code(act):
    """The activation code of the compiled RK kernels, or None when the numpy sweeps must run."""
    global kernels_rk
    code = _compiled_code(act)
    if code is not None and kernels_rk is None:
        from ocdl.pmp import kernels_rk as k
        kernels_rk = k
    return code


def _rk_forward_compiled(model, params, A, bw, X, store, states, increments, code):
    """:func:`forward` by the compiled kernels (:mod:`ocdl.pmp.kernels_rk`, samples in blocks).
    Returns the same dict with ``cache`` None and ``rk`` the stored stages and the backward's
    operands (``store=True``; held in the model's workspace until :func:`costate_sweep`); ``X``
    the states (N+1, d, n) if ``states``; ``xN`` a fresh (d, n) array; ``M`` None for the
    outer form (not formed: :func:`ocdl.pmp.forms.outer_parts`)."""
    N, d = model.layers, model.d
    n, s = X.shape[0], len(bw)
    nb = kernels.block_width(d, n)
    B = -(-n // nb) if store else 0
    inc = _increments_fm(increments, N, d, n)
    lease = _Lease(model) if store else None
    ws = lease.ws if store else None
    X0 = model.lift_into(X, np.empty((d, n)))
    XN = np.empty((d, n))
    Xs = np.empty((N + 1, d, n)) if states else _NONE
    if model.F.form == "outer":
        M = D = None
        hK, hb, hKT = outer_parts(model, params)
        S = ws.get("crkS", (B, N, s, d, nb)) if store else np.empty((0, N, s, d, nb))   # σ(Y_i)
        kernels_rk.outer_forward(A, bw, hK, hb, X0, XN, S, inc, Xs, code)
        stored = {"S": S}
    else:
        M, D = _embed(model, params)
        hKT = _hKT(model, M, D) if store else None
        # layer inputs x_k and σ(K Y_i + b) (the stage inputs Y_i are recomputed backwards)
        Xk = ws.get("crkX", (B, N, d, nb)) if store else np.empty((0, N, d, nb))
        Sg = ws.get("crkSg", (B, N, s, d, nb)) if store else np.empty((0, N, s, d, nb))
        kernels_rk.inner_forward(A, bw, np.ascontiguousarray(M[:, :, :d]), np.ascontiguousarray(M[:, :, d]),
                                 _hD(model, D), X0, XN, Xk, Sg, inc, Xs, code)
        stored = {"Xk": Xk, "Sg": Sg}
    rk = dict(stored, code=code, A=A, bw=bw, hKT=hKT) if store else None
    return {"xN": XN, "M": M, "D": D, "cache": None, "X": Xs if states else None, "n": n,
            "lease": lease, "rk": rk}


def _hD(model, D):
    """The inner form's signed steps ``h D`` as a (d,) array."""
    return np.full(model.d, model.h) if D is None else np.ascontiguousarray(model.h * D[:, 0])


def _rk_backward_compiled(model, fw, lamN, costates):
    """:func:`costate_sweep` by the compiled kernels over a forward of :func:`_rk_forward_compiled`."""
    h, N, d = model.h, model.layers, model.d
    rk, D, n = fw["rk"], fw["D"], fw["n"]
    Ch = kernels_rk.weighted_coefficients(rk["A"], rk["bw"])
    hKT = rk["hKT"]
    G = fw["lease"].ws.get("crkG", (N, d, d + 1))
    P = np.empty((N + 1, d, n)) if costates else _NONE
    PN = np.ascontiguousarray(lamN.T)
    if model.F.form == "outer":
        kernels_rk.outer_backward(Ch, rk["bw"], hKT, rk["S"], PN, G, P, rk["code"])
    else:
        kernels_rk.inner_backward(rk["A"], Ch, rk["bw"], hKT, _hD(model, D), rk["Xk"], rk["Sg"], PN, G, P,
                                  rk["code"])
    G *= h                              # in place: theta_grads hands back fresh arrays
    gK, gb = _theta_grads(model, G, D)
    fw["lease"].release()
    return (P if costates else None), gK, gb


# ------------------------------------------------------------------------------------------
# Euler (ocdl.pmp.kernels): outer form in row form, inner form feature-major

_NONE = np.empty((0, 0, 0))      # "no array" for the kernels' optional (K, d, n) outputs


def _increments_fm(increments, N, d, n):
    """Additive increments ``(N, n, d)`` feature-major for the kernels (``(0, d, n)``: none)."""
    if increments is None:
        return np.empty((0, d, n))
    return np.ascontiguousarray(np.swapaxes(np.asarray(increments, dtype=float), 1, 2))


def _rows(model, X, ws):
    """``x_0 = lift(X)`` in row form, (n, d) C-contiguous, in the workspace (written through the
    feature-major view that :meth:`lift_into` fills; the padding columns are zeroed once, when
    the buffer is made, and nothing else writes them)."""
    return model.lift_into(X, ws.get("x0r", (X.shape[0], model.d), zeros=True).T, zero_padding=False).T


def _increments_rows(increments):
    """Additive increments (N, n, d) C-contiguous for the row-form kernels (``_NONE``: none)."""
    return _NONE if increments is None else np.ascontiguousarray(increments, dtype=float)


def _euler_compiled(model, params, X, lam_of_xN, trajectories, increments, code, ws):
    """:func:`euler_value_and_grad` through the compiled whole-sweep kernels
    (:mod:`ocdl.pmp.kernels`); same workspace, same returns."""
    h, N, d = model.h, model.layers, model.d
    n = X.shape[0]
    kind = model.F.form
    if kind == "outer":                 # row form: one sample per row, as the model lifts it
        hK, hb, hKT = outer_parts(model, params)
        nb = kernels.block_width(d, n)
        S = ws.get("SB", (-(-n // nb), N, nb, d))      # σ(x_k) per block of rows
        XN = np.empty((n, d))
        Xs = np.empty((N + 1, n, d)) if trajectories else _NONE
        kernels.outer_forward(hKT, hb, _rows(model, X, ws), XN, S, _increments_rows(increments), Xs, code)
        xN = XN
        Jd, lamN, extra = lam_of_xN(xN)
        P = np.empty((N + 1, n, d)) if trajectories else _NONE
        gK, gb = np.empty((N, d, d)), np.empty((N, d))
        kernels.outer_backward(hK, S, np.ascontiguousarray(lamN), h, gK, gb, P, code)
        gK, gb = outer_theta_grads(model, gK, gb)
        if trajectories:
            return Jd, gK, gb, xN, extra, Xs, P
        return Jd, gK, gb, xN, extra, None, None
    G = ws.get("G", (N, d, d + 1))
    M, D = _embed(model, params)
    inc = _increments_fm(increments, N, d, n)
    hKT = _hKT(model, M, D)
    Xa = np.empty((N + 1, d + 1, n)) if trajectories else ws.get("Xa", (N + 1, d + 1, n), ones_row=True)
    if trajectories:
        Xa[:, d, :] = 1.0
    Sg = ws.get("Sg", (N, d, n))
    model.lift_into(X, Xa[0, :d])
    hD = _hD(model, D)
    kernels.inner_forward(M, hD, Xa, Sg, inc, code)
    xN = Xa[N, :d].copy().T
    Jd, lamN, extra = lam_of_xN(xN)
    P = np.empty((N + 1, d, n)) if trajectories else ws.get("rotP", (2, d, n))
    P[N if trajectories else N % 2] = lamN.T
    kernels.inner_backward(hKT, Xa, Sg, P, G, code)
    states = Xa[:, :d]
    G *= h                              # in place: theta_grads hands back fresh arrays
    gK, gb = _theta_grads(model, G, D)
    if trajectories:
        return Jd, gK, gb, xN, extra, states.transpose(0, 2, 1), P.transpose(0, 2, 1)
    return Jd, gK, gb, xN, extra, None, None


def _euler_forward_compiled(model, params, X, increments, code):
    """x_N ((d, n), feature-major, a fresh array) of an Euler network by the compiled kernels;
    the rotating buffers live in the model's workspace, nothing is stored."""
    N, d = model.layers, model.d
    n = X.shape[0]
    with _borrow(model) as ws:
        if model.F.form == "outer":
            XN = np.empty((n, d))
            _, hb, hKT = outer_parts(model, params)
            kernels.outer_forward(hKT, hb, _rows(model, X, ws), XN, np.empty((0, N, kernels.block_width(d, n), d)),
                                  _increments_rows(increments), _NONE, code)
            return XN.T
        inc = _increments_fm(increments, N, d, n)
        M, D = _embed(model, params)
        Xs = ws.get("rotA", (2, d + 1, n), ones_row=True)
        model.lift_into(X, Xs[0, :d])
        hD = _hD(model, D)
        last = kernels.inner_forward(M, hD, Xs, ws.get("Sg1", (1, d, n)), inc, code)
        return Xs[last, :d].copy()


# ------------------------------------------------------------------------------------------
# splittings on the hamiltonian field (ocdl.pmp.kernels_split)

kernels_split = None


def _split_code(model):
    """The compiled splitting kernels' activation code (:mod:`ocdl.pmp.kernels_split`), or None
    when the numpy sweeps must run (no numba, ``COMPILED`` off, or an activation without one)."""
    global kernels_split
    code = _compiled_code(model.F.act) if model.F.separable else None
    if code is not None and kernels_split is None:
        from ocdl.pmp import kernels_split as ks
        kernels_split = ks
    return code


@functools.lru_cache(maxsize=64)
def _split_slots(kinds, N, store):
    return kernels_split.slots(kinds, N, store)


def _split_blocks(model, params, subs):
    """For the compiled sweeps: per layer and sub-step the ``(m × m)`` block of ``A_j`` on the
    half it reads (drift: the p columns, kick: the q columns), its bias, ``ch`` and the kinds."""
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


def _split_compiled(model, params, X, lam_of_xN, subs, trajectories, code, ws):
    """:func:`split_value_and_grad` through the compiled kernels of :mod:`ocdl.pmp.kernels_split`
    (same mathematics, same returns); stored arrays in the model's workspace."""
    N, d, m = model.layers, model.d, model.m
    n = X.shape[0]
    L = len(subs)
    K, bias, ch, kinds = _split_blocks(model, params, subs)
    src, prev, dst, qend, pend = _split_slots(kinds, N, True)
    H = ws.get("Hk", (N * L + 2, m + 1, n), ones_row=True)    # [half-state; 1] per slot
    Sg = ws.get("Sk", (N * L, m, n))
    _split_start(model, X, H, ws)
    kernels_split.split_forward(K, bias, ch, src, prev, dst, H, Sg, code)
    xNf = np.empty((d, n))
    xNf[:m] = H[qend[N], :m]
    xNf[m:] = H[pend[N], :m]
    xN = xNf.T
    Jd, lamN, extra = lam_of_xN(xN)
    chKT = np.ascontiguousarray(np.swapaxes(K, 2, 3) * ch[None, :, None, None])
    lam = ws.get("lam", (d, n))
    lam[...] = lamN.T
    P = np.empty((N + 1, d, n)) if trajectories else _NONE
    if trajectories:
        P[N] = lam
    Gs = ws.get("Gk", (N, L, m, m + 1))
    kernels_split.split_backward(chKT, np.array(kinds), src, H, Sg, lam, Gs, P, code)
    Gs *= ch[None, :, None, None]
    G = np.zeros((N, L, m, d + 1))
    for j, drift in enumerate(kinds):
        cols = slice(m, d) if drift else slice(0, m)
        G[:, j, :, cols] = Gs[:, j, :, :m]
    G[..., d] = Gs[..., m]
    gK, gb = split_theta_grads(model, params, G, subs)
    if trajectories:
        Xs = np.empty((N + 1, d, n))
        Xs[:, :m] = H[qend, :m]
        Xs[:, m:] = H[pend, :m]
        return Jd, gK, gb, xN, extra, Xs.transpose(0, 2, 1), P.transpose(0, 2, 1)
    return Jd, gK, gb, xN, extra, None, None
