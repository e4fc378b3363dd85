"""The torch backend of the sweeps: tensors on any device (CPU, CUDA), float64.

The torch twin of the compiled sweeps (:mod:`ocdl.pmp.compiled`): the same mathematics and
field/activation objects, tested against torch autograd (tests/test_pmp_device.py). It runs
for torch inputs or a ``device=``, and on the CPU for an activation without a compiled form.

* **Feature-major layout.** States and costates are ``(N+1, d, n)`` tensors (one sample per
  column); ``[a; 1]`` carries a row of ones so ``K a + b = M [a; 1]`` with ``M = [K̃ | b̃]``
  (``F.embed``) is one matmul.
* **Forms** (read from the field object, never its name): ``outer``  f = M [σ(x); 1];
  ``inner``  f = D ⊙ σ(M [x; 1]) (``D = F.out_sign``, None = ones; hamiltonian: D = [1; −1]).
  The θ-gradient is read back by ``F.theta_grads`` from ``∂J/∂M = D ⊙ h Σ U [a; 1]ᵀ``.
* **Activation kernels** ``F.act.apply_torch`` / ``deriv_inplace_torch``
  (:mod:`ocdl.models.activations`): σ is evaluated once, in the forward sweep; σ' is read off
  the stored σ for all layers in one batched pass before the backward loop (fewer, larger
  kernels: per layer the backward sweep is then a matmul and one fused elementwise op).
* **Buffers.** Every layer writes into preallocated blocks with ``out=`` (``torch.addmm``
  fuses ``x + h M a`` and ``λ + h M̃ᵀ U`` into one call); the blocks live in a per-(model,
  device) workspace (:mod:`ocdl.pmp.workspace`) reused from call to call. The only Python
  loops are over layers and stages, never over samples.

Equations (``h`` the step, ``C_ij = â_ij − b_j`` of the adjoint-partner tableau):

    Euler     forward   outer: S_k = σ(x_k),  x_{k+1} = x_k + h (K_k S_k + b_k)
                        inner: Σ_k = σ(M_k [x_k; 1]),  x_{k+1} = x_k + h D ⊙ Σ_k
              backward  outer: p_k = p_{k+1} + h σ'(x_k) ⊙ (K_kᵀ p_{k+1}),        U_k = p_{k+1}
                        inner: U_k = σ'_k ⊙ p_{k+1},  p_k = p_{k+1} + h M̃_kᵀ D U_k
              gradient  ∂J/∂M_k = h D ⊙ U_k [a_k; 1]ᵀ   (outer a = S, inner a = x)
    explicit RK (A, b): Y_i = x_k + h Σ_{j<i} a_ij f(Y_j),  x_{k+1} = x_k + h Σ_i b_i f(Y_i)
                        P_i = p_{k+1} − h Σ_{j>i} C_ij (∂f/∂x(Y_j))ᵀ P_j,
                        p_k = p_{k+1} + h Σ_i b_i (∂f/∂x(Y_i))ᵀ P_i,
                        ∂J/∂M_k = h Σ_i b_i D ⊙ U_{k,i} [a_{k,i}; 1]ᵀ
    splittings (hamiltonian, ``F.halves``: A_q = [0, K, b], s = +1; A_p = [Kᵀ, 0, b], s = −1;
              ch = c h s):  drift q ← q + ch σ(A_q [q; p; 1]),  kick p ← p + ch σ(A_p [q; p; 1]);
              backwards per sub-step in reverse: drift U = σ' ⊙ λ_q, λ_p ← λ_p + ch Kᵀ U;
              kick U = σ' ⊙ λ_p, λ_q ← λ_q + ch K U;  ∂J/∂A_{k,j} = ch_j U [q; p; 1]ᵀ.

The helpers ``embed``, ``hKT``, ``theta_grads`` and the coefficients ``rk_coefficients`` come
from :mod:`ocdl.pmp.forms`, shared with the compiled sweeps; the workspace is
:mod:`ocdl.pmp.workspace`'s, keyed by device. The conv fields and the implicit methods have no
torch sweep (InputError).
"""
import numpy as np

from integrators.tableaux import EXPLICIT
from ocdl.errors import InputError
from ocdl.models.backend import is_torch
from ocdl.pmp.forms import embed, hKT, rk_coefficients, split_theta_grads, theta_grads
from ocdl.pmp.workspace import Workspace, borrow


def _torch():
    import torch
    return torch


# ------------------------------------------------------------------------------------------
# inputs

def as_tensors(model, params, X, y=None, device=None, increments=None):
    """``(params, x0, y, increments, device)`` as float64 tensors on ``device`` (None: the device of
    a tensor among params / X, else the CPU); ``x0 = lift(X)`` (n, d); y int64, or None."""
    torch = _torch()
    if device is None:
        for v in list(params.values()) + [X]:
            if is_torch(v):
                device = v.device
                break
        else:
            device = "cpu"
    device = torch.device(device)

    def t(v, dtype=torch.float64):
        if is_torch(v):
            return v.detach().to(device=device, dtype=dtype)
        return torch.as_tensor(np.asarray(v, dtype=float if dtype == torch.float64 else np.int64),
                               dtype=dtype, device=device)
    params = {k: t(v) for k, v in params.items()}
    model.check_params(params)
    x0 = model.lift(t(X))
    if y is not None:
        y = t(y, torch.int64)
    if increments is not None:
        increments = t(increments)
    return params, x0, y, increments, device


def _ones_aug(shape, device):
    torch = _torch()
    a = torch.empty(shape, dtype=torch.float64, device=device)
    a[..., -1, :] = 1.0
    return a


# ------------------------------------------------------------------------------------------
# Euler

def euler_sweep(model, params, x0, trajectories=False, increments=None, initial_costate=False):
    """Euler layers on tensors (see the module docstring): forward keeping σ, costate sweep
    reusing it, θ-contraction of all layers in one batched matmul. ``x0`` = lift(X) (n, d);
    ``increments`` (N, n, d) or None adds ξ_k to each step. A two-phase generator like
    :func:`ocdl.pmp.compiled.euler_sweep`: yields ``x_N`` (n, d), is sent ``p_N`` (n, d), returns
    ``(gK, gb, states, costates, p0)`` (states/costates (N+1, n, d) if ``trajectories``, p_0
    (n, d) if ``initial_costate``)."""
    torch = _torch()
    h = model.h
    N, d = model.layers, model.d
    act = model.F.act
    M, D = embed(model, params)
    kind = model.F.form
    n = x0.shape[0]
    dev = x0.device
    mm, addmm = torch.mm, torch.addmm
    inc = None if increments is None else increments.transpose(1, 2).unbind(0)   # ξ_k as (d, n) views
    with borrow(model, dev) as ws:
        # per-layer views are made once by unbind (indexing a tensor in the loop costs ~2 µs a view)
        if kind == "outer":
            S = ws.get("S", (N, d + 1, n), ones_row=True)           # [σ(x_k); 1]
            Xs = torch.empty((N + 1, d, n), dtype=torch.float64, device=dev) if trajectories \
                else ws.get("rot", (2, d, n))
            xs = Xs.unbind(0) if trajectories else Xs.unbind(0) * ((N + 2) // 2)
            Sl, Sdl, hMl = S.unbind(0), S[:, :d].unbind(0), (M * h).unbind(0)
            x = xs[0]
            x.copy_(x0.T)
            for k in range(N):
                act.apply_torch(x, Sdl[k])
                nxt = xs[k + 1]
                addmm(x, hMl[k], Sl[k], out=nxt)                     # x + h (K σ + b)
                if inc is not None:
                    nxt.add_(inc[k])                                 # + ξ_k
                x = nxt
            states = Xs if trajectories else None
        else:
            Xa = _ones_aug((N + 1, d + 1, n), dev) if trajectories else ws.get("Xa", (N + 1, d + 1, n), True)
            Sg = ws.get("Sg", (N, d, n))                             # σ(M [x_k; 1])
            Xal, Xd, Sgl, Ml = Xa.unbind(0), Xa[:, :d].unbind(0), Sg.unbind(0), M.unbind(0)
            Xd[0].copy_(x0.T)
            hD = None if D is None else D * h
            for k in range(N):
                sig = Sgl[k]
                mm(Ml[k], Xal[k], out=sig)
                act.apply_torch(sig, sig)
                x = Xd[k + 1]
                if hD is None:
                    torch.add(Xd[k], sig, alpha=h, out=x)            # x + h σ
                else:
                    torch.addcmul(Xd[k], sig, hD, out=x)             # x + h D ⊙ σ
                if inc is not None:
                    x.add_(inc[k])
            x = Xd[N]
            states = Xa[:, :d] if trajectories else None
        lamN = yield x.T.clone()
        hKl = hKT(model, M, D).unbind(0)
        if trajectories:
            P = torch.empty((N + 1, d, n), dtype=torch.float64, device=dev)
        else:
            P = ws.get("P", (N + 1, d, n)) if kind == "outer" else ws.get("rotP", (2, d, n))
        Pl = P.unbind(0) if (trajectories or kind == "outer") else P.unbind(0) * ((N + 2) // 2)
        lam = Pl[N]
        lam.copy_(lamN.T)
        g = ws.get("g", (d, n))
        if kind == "outer":
            P[:N].copy_(S[:, :d])                                    # σ'(x_k), all layers at once, in
            act.deriv_inplace_torch(P[:N])                           # the rows p_k will overwrite
            for k in range(N - 1, -1, -1):
                mm(hKl[k], lam, out=g)                               # h Kᵀ p
                lam = torch.addcmul(lam, g, Pl[k], out=Pl[k])        # p + h σ'(x) ⊙ Kᵀ p
            gM = torch.matmul(P[1:], S.transpose(1, 2))              # Σ p_{k+1} [σ(x_k); 1]ᵀ
        else:
            U = ws.get("U", (N, d, n))
            Ul = U.unbind(0)
            act.deriv_inplace_torch(Sg)                              # σ → σ', all layers at once
            for k in range(N - 1, -1, -1):
                u = Ul[k]
                torch.mul(Sgl[k], lam, out=u)                        # U = σ' ⊙ p
                lam = addmm(lam, hKl[k], u, out=Pl[k])               # p + h M̃ᵀ D U
            gM = torch.matmul(U, Xa[:N].transpose(1, 2))
        gM *= h
        gK, gb = theta_grads(model, gM, D)
        p0 = lam.T.clone() if initial_costate else None
        if trajectories:
            return gK, gb, states.permute(0, 2, 1), P.permute(0, 2, 1), p0
        return gK, gb, None, None, p0


# ------------------------------------------------------------------------------------------
# explicit Runge–Kutta (heun, rk4, ...): forward with stage blocks, costate sweep

def forward(model, params, x0, store=True, states=False, increments=None, ws=None):
    """Explicit Runge–Kutta forward on tensors. Returns a dict with ``xN`` (d, n) and, with
    ``store``, the stage blocks the costate sweep reads: ``Aaug`` (N, s, d+1, n) = ``[a_{k,i}; 1]``
    (outer a = σ(Y_i), inner a = Y_i) and ``Sig`` (N, s, d, n) = σ(M [Y_i; 1]) (inner);
    ``X`` (N+1, d, n) the states if ``states``. ``store=False`` keeps rotating buffers only.
    ``ws``: a workspace for the blocks (else fresh tensors)."""
    torch = _torch()
    A, bw, _, _ = rk_coefficients(model.integrator)
    s = len(bw)
    h = model.h
    N, d = model.layers, model.d
    act = model.F.act
    kind = model.F.form
    M, D = embed(model, params)
    n, dev = x0.shape[0], x0.device
    ws = ws or Workspace(dev)
    hD = None if (kind == "outer" or D is None) else D * h
    Xs = torch.empty((N + 1, d, n), dtype=torch.float64, device=dev) if states else ws.get("rk_rot", (2, d, n))
    nb = N if store else 1
    Aaug = ws.get("rk_A", (nb, s, d + 1, n), ones_row=True)
    Sig = ws.get("rk_S", (nb, s, d, n)) if kind == "inner" else None
    hF = ws.get("rk_hF", (s, d, n))                                  # h f(Y_i) of the current layer
    Y = ws.get("rk_Y", (d, n))
    # per-(layer, stage) views, made once (index k s + i; one block reused without store)
    Al, Ad = Aaug.flatten(0, 1).unbind(0), Aaug[:, :, :d].flatten(0, 1).unbind(0)
    Sl = None if Sig is None else Sig.flatten(0, 1).unbind(0)
    hFl = hF.unbind(0)
    xs = Xs.unbind(0) if states else Xs.unbind(0) * ((N + 2) // 2)
    Ml = (M * h if kind == "outer" else M).unbind(0)                 # outer: h M
    inc = None if increments is None else increments.transpose(1, 2).unbind(0)
    x = xs[0]
    x.copy_(x0.T)
    for k in range(N):
        base = (k if store else 0) * s
        for i in range(s):
            a = Al[base + i]
            Yi = (x if i == 0 else Y) if kind == "outer" else Ad[base + i]
            if Yi is not x:
                Yi.copy_(x)
            for j in range(i):
                if A[i, j] != 0.0:
                    Yi.add_(hFl[j], alpha=float(A[i, j]))
            if kind == "outer":
                act.apply_torch(Yi, Ad[base + i])
                torch.mm(Ml[k], a, out=hFl[i])                       # h (K σ(Y) + b)
            else:
                sig = Sl[base + i]
                torch.mm(Ml[k], a, out=sig)
                act.apply_torch(sig, sig)                            # σ(K Y + b)
                if hD is None:
                    torch.mul(sig, h, out=hFl[i])
                else:
                    torch.mul(sig, hD, out=hFl[i])                   # h D σ
        nxt = xs[k + 1]
        torch.add(x, hFl[0], alpha=float(bw[0]), out=nxt)
        for i in range(1, s):
            if bw[i] != 0.0:
                nxt.add_(hFl[i], alpha=float(bw[i]))
        if inc is not None:
            nxt.add_(inc[k])
        x = nxt
    return {"xN": x, "M": M, "D": D, "Aaug": Aaug if store else None, "Sig": Sig if store else None,
            "X": Xs if states else None, "n": n}


def costate_sweep(model, params, fw, lamN, costates=False, ws=None):
    """Backward sweep from ``p_N = lamN`` ((n, d) tensor) over the forward ``fw`` of
    :func:`forward` (whose σ blocks it turns into σ' in place); returns ``(P, gK, gb, p0)`` —
    ``P`` the costates (N+1, d, n) if ``costates`` else None; ``gK, gb`` without the
    regulariser; ``p0`` the initial costate (d, n), in a buffer the next sweep reuses."""
    torch = _torch()
    A, bw, C, _ = rk_coefficients(model.integrator)
    s = len(bw)
    h = model.h
    N, d = model.layers, model.d
    act = model.F.act
    kind = model.F.form
    M, D, Aaug, Sig, n = fw["M"], fw["D"], fw["Aaug"], fw["Sig"], fw["n"]
    dev = Aaug.device
    ws = ws or Workspace(dev)
    hKl = hKT(model, M, D).unbind(0)
    P = torch.empty((N + 1, d, n), dtype=torch.float64, device=dev) if costates else ws.get("rk_P", (2, d, n))
    Pl = P.unbind(0) if costates else P.unbind(0) * ((N + 2) // 2)
    lam = Pl[N]
    lam.copy_(lamN.T)
    U = ws.get("rk_U", (N, s, d, n))                                 # U_{k,i}
    hG = ws.get("rk_hG", (s, d, n))                                  # h (∂f/∂x(Y_i))ᵀ P_i
    Pbuf = ws.get("rk_Pb", (s, d, n))
    if kind == "outer":                                              # σ'(Y) of all stages at once
        Sd = ws.get("rk_Sd", (N, s, d, n))
        Sd.copy_(Aaug[:, :, :d])
    else:
        Sd = Sig                                                     # (σ is not needed any more)
    act.deriv_inplace_torch(Sd)
    Ul, Sdl, hGl, Pbl = U.flatten(0, 1).unbind(0), Sd.flatten(0, 1).unbind(0), hG.unbind(0), Pbuf.unbind(0)
    for k in range(N - 1, -1, -1):
        for i in range(s - 1, -1, -1):
            ki = k * s + i
            Pi = Pbl[i] if kind == "inner" else Ul[ki]
            Pi.copy_(lam)
            for j in range(i + 1, s):
                if C[i, j] != 0.0:
                    Pi.add_(hGl[j], alpha=float(-C[i, j]))
            if kind == "outer":                                      # U = P;  h σ'(Y) ⊙ (Kᵀ P)
                g = hGl[i]
                torch.mm(hKl[k], Pi, out=g)
                g.mul_(Sdl[ki])
            else:                                                    # U = σ' ⊙ P;  h K̃ᵀ D U
                torch.mul(Sdl[ki], Pi, out=Ul[ki])
                torch.mm(hKl[k], Ul[ki], out=hGl[i])
        out = Pl[k]
        torch.add(lam, hGl[0], alpha=float(bw[0]), out=out)
        for i in range(1, s):
            if bw[i] != 0.0:
                out.add_(hGl[i], alpha=float(bw[i]))
        lam = out
    # ∂J/∂M_k = h Σ_i b_i U_{k,i} [a_{k,i}; 1]ᵀ, all layers and stages in one batched matmul
    G = torch.matmul(U, Aaug.transpose(2, 3))                        # (N, s, d, d+1)
    w = torch.as_tensor(h * np.asarray(bw, dtype=float), dtype=G.dtype, device=dev)
    gM = torch.einsum("ksij,s->kij", G, w)
    gK, gb = theta_grads(model, gM, D)
    return P if costates else None, gK, gb, lam


def rk_sweep(model, params, x0, trajectories=False, increments=None, initial_costate=False):
    """Explicit Runge–Kutta sweeps (:func:`forward` then :func:`costate_sweep`, blocks in the
    model's workspace); a two-phase generator like :func:`euler_sweep`."""
    with borrow(model, x0.device) as ws:
        fw = forward(model, params, x0, store=True, states=trajectories, increments=increments, ws=ws)
        lamN = yield fw["xN"].T.clone()
        P, gK, gb, lam = costate_sweep(model, params, fw, lamN, costates=trajectories, ws=ws)
        p0 = lam.T.clone() if initial_costate else None
    if trajectories:
        return gK, gb, fw["X"].permute(0, 2, 1), P.permute(0, 2, 1), p0
    return gK, gb, None, None, p0


# ------------------------------------------------------------------------------------------
# splittings on the hamiltonian field

def _split_setup(model, params, subs):
    """``A`` (N, L, m, d+1): per layer and sub-step the full-width matrix on ``[q; p; 1]`` (from
    the field's :meth:`halves`), and ``ch`` (L,) the signed steps ``c_j h s_j``."""
    torch = _torch()
    halves = model.F.halves(params["K"], params["b"])
    A = torch.stack([halves[kind][0] for kind, _ in subs], dim=1)
    ch = [float(c * model.h * halves[kind][1]) for kind, c in subs]
    return A, ch


def split_sweep(model, params, x0, subs, trajectories=False, initial_costate=False):
    """Drift/kick splittings (``subs`` = [(kind, c)]) on a separable field, σ kept from the
    forward (equations in the module docstring); a two-phase generator like :func:`euler_sweep`
    (costates at the layer boundaries)."""
    torch = _torch()
    N, d, m = model.layers, model.d, model.m
    act = model.F.act
    L = len(subs)
    A, ch = _split_setup(model, params, subs)
    drift = [kind == "drift" for kind, _ in subs]
    n, dev = x0.shape[0], x0.device
    mm = torch.mm
    with borrow(model, dev) as ws:
        Z = ws.get("Zs", (N, L, d + 1, n), ones_row=True)          # [q; p; 1] entering sub-step j
        Sg = ws.get("Ss", (N, L, m, n))                             # σ(A [q; p; 1])
        cur = ws.get("cur", (d + 1, n), ones_row=True)
        if trajectories:
            Xs = torch.empty((N + 1, d, n), dtype=torch.float64, device=dev)
        cur[:d] = x0.T
        if trajectories:
            Xs[0] = cur[:d]
        Zl, Zd = Z.flatten(0, 1).unbind(0), Z[:, :, :d].flatten(0, 1).unbind(0)
        Sl, Al = Sg.flatten(0, 1).unbind(0), A.flatten(0, 1).unbind(0)
        state, parts = cur[:d], [cur[:m] if dr else cur[m:d] for dr in drift]
        for k in range(N):
            for j in range(L):
                kj = k * L + j
                Zd[kj].copy_(state)
                sig = Sl[kj]
                mm(Al[kj], Zl[kj], out=sig)
                act.apply_torch(sig, sig)
                parts[j].add_(sig, alpha=ch[j])
            if trajectories:
                Xs[k + 1] = cur[:d]
        lamN = yield cur[:d].T.clone()
        U = ws.get("Us", (N, L, m, n))
        lam = ws.get("lam", (d, n))
        lam.copy_(lamN.T)
        if trajectories:
            P = torch.empty((N + 1, d, n), dtype=torch.float64, device=dev)
            P[N] = lam
        # ch_j (∂ sub-step input)ᵀ: drift reads p (columns m:d), kick reads q (columns :m)
        chAT = torch.empty((N, L, m, m), dtype=torch.float64, device=dev)
        for j in range(L):
            cols = slice(m, d) if drift[j] else slice(0, m)
            torch.mul(A[:, j, :, cols].transpose(1, 2), ch[j], out=chAT[:, j])
        act.deriv_inplace_torch(Sg)                                  # σ → σ', all sub-steps at once
        lq, lp = lam[:m], lam[m:]
        Ul, Cl = U.flatten(0, 1).unbind(0), chAT.flatten(0, 1).unbind(0)
        for k in range(N - 1, -1, -1):
            for j in range(L - 1, -1, -1):
                kj = k * L + j
                u = Ul[kj]
                if drift[j]:
                    torch.mul(Sl[kj], lq, out=u)                     # U = σ' ⊙ λ_q
                    torch.addmm(lp, Cl[kj], u, out=lp)               # λ_p + ch Kᵀ U
                else:
                    torch.mul(Sl[kj], lp, out=u)                     # U = σ' ⊙ λ_p
                    torch.addmm(lq, Cl[kj], u, out=lq)               # λ_q + ch K U
            if trajectories:
                P[k] = lam
        G = torch.matmul(U, Z.transpose(2, 3))                       # (N, L, m, d+1)
        G *= torch.as_tensor(ch, dtype=G.dtype, device=dev)[None, :, None, None]
        gK, gb = split_theta_grads(model, params, G, subs)
        p0 = lam.T.clone() if initial_costate else None
        if trajectories:
            return gK, gb, Xs.permute(0, 2, 1), P.permute(0, 2, 1), p0
        return gK, gb, None, None, p0


def split_forward(model, params, x0, subs):
    """``x_N`` ((n, d)) of a splitting network by the sub-steps above, nothing stored."""
    torch = _torch()
    N, d, m = model.layers, model.d, model.m
    act = model.F.act
    A, ch = _split_setup(model, params, subs)
    n, dev = x0.shape[0], x0.device
    cur = _ones_aug((d + 1, n), dev)
    cur[:d] = x0.T
    sig = torch.empty((m, n), dtype=torch.float64, device=dev)
    for k in range(N):
        for j, (kind, _) in enumerate(subs):
            torch.mm(A[k, j], cur, out=sig)
            act.apply_torch(sig, sig)
            part = cur[:m] if kind == "drift" else cur[m:d]
            part.add_(sig, alpha=ch[j])
    return cur[:d].T.clone()


# ------------------------------------------------------------------------------------------
# dispatch by integrator (used by ocdl.pmp.costate)

def check(model):
    """InputError unless the device sweeps cover ``model`` (explicit RK on outer/inner/
    hamiltonian fields, splittings on hamiltonian)."""
    from ocdl.models.resnet import SPLITTINGS
    if model.F.form not in ("outer", "inner"):
        raise InputError(f"no device sweep for the {model.field} field (the torch sweeps cover the outer, "
                         f"inner and hamiltonian fields); leave out --device to use the numpy sweep")
    if model.integrator not in EXPLICIT and not (model.integrator in SPLITTINGS and model.F.separable):
        raise InputError(f"no device sweep for integrator '{model.integrator}' (the torch sweeps cover "
                         f"{', '.join(EXPLICIT)} and, on the hamiltonian field, {', '.join(SPLITTINGS)}); "
                         f"leave out --device to use the numpy sweep")


def final_state(model, params, x0, increments=None):
    """``x_N`` ((n, d) tensor) by the cost-only forward (nothing stored)."""
    from ocdl.models.resnet import SPLITTINGS
    check(model)
    if model.integrator in SPLITTINGS:
        return split_forward(model, params, x0, SPLITTINGS[model.integrator])
    with borrow(model, x0.device) as ws:
        return forward(model, params, x0, store=False, increments=increments, ws=ws)["xN"].T.clone()
