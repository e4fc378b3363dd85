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

Equations (``h`` the step, ``C_ij = â_ij − b_j`` of the adjoint-partner tableau; Euler is the
one-stage tableau A = 0, b = 1: ``p_k = p_{k+1} + h (∂f/∂x(x_k))ᵀ p_{k+1}``):

    explicit RK (A, b): Y_i = x_k + h Σ_{j<i} a_ij f(Y_j),  x_{k+1} = x_k + h Σ_i b_i f(Y_i)
                        P_i = p_{k+1} − h Σ_{j>i} C_ij (∂f/∂x(Y_j))ᵀ P_j,
                        p_k = p_{k+1} + h Σ_i b_i (∂f/∂x(Y_i))ᵀ P_i,
                        ∂J/∂M_k = h Σ_i b_i D ⊙ U_{k,i} [a_{k,i}; 1]ᵀ
              outer: (∂f/∂x(Y))ᵀ P = σ'(Y) ⊙ (K̃ᵀ P),  U = P,          a = σ(Y)
              inner: (∂f/∂x(Y))ᵀ P = M̃ᵀ D U,  U = σ'(M [Y; 1]) ⊙ P,   a = Y
    splittings (hamiltonian, ``F.halves``: A_q = [0, K, b], s = +1; A_p = [Kᵀ, 0, b], s = −1;
              ch = c h s):  drift q ← q + ch σ(A_q [q; p; 1]),  kick p ← p + ch σ(A_p [q; p; 1]);
              backwards per sub-step in reverse: drift U = σ' ⊙ λ_q, λ_p ← λ_p + ch Kᵀ U;
              kick U = σ' ⊙ λ_p, λ_q ← λ_q + ch K U;  ∂J/∂A_{k,j} = ch_j U [q; p; 1]ᵀ.

The helpers ``embed``, ``hKT``, ``theta_grads`` and the coefficients ``rk_coefficients`` come
from :mod:`ocdl.pmp.forms`, shared with the compiled sweeps; the workspace is
:mod:`ocdl.pmp.workspace`'s, keyed by device. The conv fields and the implicit methods have no
torch sweep (InputError, from :func:`ocdl.pmp.dispatch.lookup`).
"""
import functools

import numpy as np

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
        device = next((v.device for v in [*params.values(), X] if is_torch(v)), "cpu")
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


# ------------------------------------------------------------------------------------------
# explicit Runge–Kutta (Euler is the one-stage tableau): forward with stage blocks, costate sweep

@functools.cache
def _tableau_lists(method, forward):
    """The loops' view of a tableau, as Python floats (no numpy scalars per layer): ``sums`` =
    [(i, [(j, coefficient)])] in stage order (forward: ``a_ij``, j < i; backward: ``−C_ij``,
    j > i, stages reversed), ``steps`` = [(i, b_i)] of the stages summed one by one (b_i ≠ 0;
    not the fused stage: s−1 forward, 0 backward), and the fused stage's weight."""
    A, b, C, _ = rk_coefficients(method)
    A = A if forward else C
    s = len(b)
    order = range(s) if forward else range(s - 1, -1, -1)
    sums = [(i, [(j, float(A[i, j] if forward else -A[i, j])) for j in (range(i) if forward else range(i + 1, s))
                 if A[i, j] != 0.0]) for i in order]
    fused = s - 1 if forward else 0
    steps = [(i, float(b[i])) for i in range(s) if i != fused and b[i] != 0.0]
    return sums, steps, float(b[fused])


def _sizes(model):
    """``(b, s, h, N, d, σ, inner)``: what both explicit-RK sweeps read off the model."""
    bw = rk_coefficients(model.integrator)[1]
    return bw, len(bw), model.h, model.layers, model.d, model.F.act, model.F.form == "inner"


def forward(model, params, x0, store=True, states=False, increments=None, ws=None):
    """Explicit Runge–Kutta forward on tensors. Returns a dict with ``xN`` (d, n) and, with
    ``store``, the stage blocks the costate sweep reads: ``Aaug`` (N, s, d+1, n) = ``[a_{k,i}; 1]``
    (outer a = σ(Y_i), inner a = Y_i) and ``Sig`` (N, s, d, n) = σ(M [Y_i; 1]) (inner; ``Sl`` its
    per-(layer, stage) views); ``X`` (N+1, d, n) the states if ``states`` (fresh tensors).
    ``store=False`` keeps two layer blocks, used in turn. ``ws``: a workspace for the blocks
    (else fresh tensors).

    The inner form keeps x_k in its layer block as the stage-0 input ``Y_0 = x_k`` (block N
    holds x_N); the last stage's ``h b_s f(Y_s)`` is fused into the step's sum (``addmm`` /
    ``addcmul``), so Euler is one product and one elementwise pass a layer."""
    torch = _torch()
    bw, s, h, N, d, act, inner = _sizes(model)
    M, D = embed(model, params)
    n, dev = x0.shape[0], x0.device
    ws = ws or Workspace(dev)
    keep = Workspace(dev) if states else ws                          # blocks handed back: fresh
    store = store or (states and inner)
    nb = N + 1 if store else 2                                       # layer k in block k (or k mod 2)
    tag = "" if store else "c"                                       # cost-only blocks apart
    wa = keep if inner else ws
    Aaug = wa.get("rk_A" + tag, (nb, s, d + 1, n), ones_row=True)
    Sig = ws.get("rk_S" + tag, (nb, s, d, n)) if inner else None
    hF = ws.get("rk_hF", (s, d, n))                                  # h f(Y_i) of the current layer
    Y = ws.get("rk_Y", (d, n))
    # per-(layer block, stage) views (index o + i, o = block · s), kept with the blocks
    Al, Ad = wa.views("rk_A" + tag, Aaug, lambda: (Aaug.flatten(0, 1).unbind(0),
                                                    Aaug[:, :, :d].flatten(0, 1).unbind(0)))
    Sl = None if Sig is None else ws.views("rk_S" + tag, Sig, lambda: Sig.flatten(0, 1).unbind(0))
    hFl = ws.views("rk_hF", hF, lambda: hF.unbind(0))
    wx = wa if inner else keep if states else ws
    Xs = Aaug[:, 0, :d] if inner else wx.get("rk_X", (N + 1, d, n)) if states else ws.get("rk_rot", (2, d, n))
    xs = wx.views("rk_X" + tag, Aaug if inner else Xs,
                  lambda: Xs.unbind(0) if len(Xs) == N + 1 else Xs.unbind(0) * ((N + 2) // 2))
    Ml = (M if inner else M * h).unbind(0)                           # outer: h M
    hD = None if (not inner or D is None) else D * h
    hDb = hD if (hD is None or bw[-1] == 1.0) else hD * float(bw[-1])
    inc = None if increments is None else increments.transpose(1, 2).unbind(0)
    sums, steps, bf = _tableau_lists(model.integrator, True)
    fuse = torch.addmm if bf == 1.0 else functools.partial(torch.addmm, alpha=bf)   # (1: a faster call)
    x = xs[0]
    x.copy_(x0.T)
    for k in range(N):
        o = (k if store else k % 2) * s
        for i, terms in sums:                                        # Y_i = x + Σ_j a_ij h f(Y_j)
            Yi = Ad[o + i] if inner else (x if i == 0 else Y)       # (inner Ad[o] is x_k itself)
            if i > 0:
                Yi.copy_(x)
                for j, a in terms:
                    Yi.add_(hFl[j], alpha=a)
            if inner:
                f = Sl[o + i]
                torch.mm(Ml[k], Al[o + i], out=f)
                act.apply_torch(f, f)                                # σ(K Y + b)
                if i < s - 1:
                    torch.mul(f, h if hD is None else hD, out=hFl[i])   # h D σ
            else:
                act.apply_torch(Yi, Ad[o + i])
                if i < s - 1:
                    torch.mm(Ml[k], Al[o + i], out=hFl[i])           # h (K σ(Y) + b)
        nxt, y = xs[k + 1], x                                        # x + Σ_i b_i h f(Y_i)
        for i, b in steps:
            y = torch.add(y, hFl[i], alpha=b, out=nxt)
        if not inner:
            fuse(y, Ml[k], Al[o + s - 1], out=nxt)
        elif hDb is None:
            torch.add(y, f, alpha=h * float(bw[-1]), out=nxt)
        else:
            torch.addcmul(y, f, hDb, out=nxt)
        if inc is not None:
            nxt.add_(inc[k])                                         # + ξ_k
        x = nxt
    return {"xN": x, "M": M, "D": D, "Aaug": Aaug[:N] if store else None, "Sig": Sig[:N] if (store and inner)
            else None, "Sl": Sl, "X": Xs if states else None, "n": n}


def costate_sweep(model, params, fw, lamN, costates=False, ws=None):
    """Backward sweep from ``p_N = lamN`` ((n, d) tensor) over the forward ``fw`` of
    :func:`forward` (whose σ blocks it overwrites); returns ``(P, gK, gb, p0)`` — ``P`` the
    costates (N+1, d, n) if ``costates`` else None; ``gK, gb`` without the regulariser; ``p0`` the
    initial costate (d, n), in a buffer the next sweep reuses.

    σ' of all layers and stages is made in one batched pass before the loop; stage s−1 has
    ``P_{s−1} = p_{k+1}`` (no copy) and stage 0's term is fused into the sum for ``p_k``. Outer
    form: block ``B`` (N+1, s, d, n) holds σ'(Y_{k,i}) in ``B[k, i]`` until layer k is swept, then
    the stage costates of layer k−1 (so ``U = B[1:]``, ``p_k = B[k, s−1]``). Inner form: ``U =
    σ' ⊙ P_i`` is written over σ' (``Sig``)."""
    torch = _torch()
    bw, s, h, N, d, act, inner = _sizes(model)
    M, D, Aaug, n = fw["M"], fw["D"], fw["Aaug"], fw["n"]
    dev = Aaug.device
    ws = ws or Workspace(dev)
    keep = Workspace(dev) if costates else ws
    hKl = hKT(model, M, D).unbind(0)
    hG = ws.get("rk_hG", (s, d, n))                                  # h (∂f/∂x(Y_i))ᵀ P_i
    hGl = ws.views("rk_hG", hG, lambda: hG.unbind(0))
    if inner:
        U = fw["Sig"]
        act.deriv_inplace_torch(U)                                   # σ → σ'; then U = σ' ⊙ P_i
        Pbuf = ws.get("rk_Pb", (s, d, n))                            # P_i, i < s−1
        Pb = ws.views("rk_Pb", Pbuf, lambda: Pbuf.unbind(0))
        P = keep.get("rk_P", (N + 1, d, n)) if costates else ws.get("rk_P", (2, d, n))
        Pl = keep.views("rk_P", P, lambda: P.unbind(0) if costates else P.unbind(0) * ((N + 2) // 2))
        Ul = fw["Sl"]                                                # (the forward's views of σ)
    else:
        B = keep.get("rk_B", (N + 1, s, d, n))
        B[:N].copy_(Aaug[:, :, :d])
        act.deriv_inplace_torch(B[:N])                               # σ'(Y), all stages at once
        U, P = B[1:], (B[:, s - 1] if costates else None)
        Sd = keep.views("rk_B", B, lambda: B.flatten(0, 1).unbind(0))
        Pb, Pl, Ul = None, Sd[s - 1::s], Sd[s:]
    lam = Pl[N]
    lam.copy_(lamN.T)
    sums, steps, bf = _tableau_lists(model.integrator, False)
    fuse = torch.addmm if inner else torch.addcmul                   # the fused stage-0 term
    fuse = fuse if bf == 1.0 else functools.partial(fuse, **{"alpha" if inner else "value": bf})
    for k in range(N - 1, -1, -1):
        o = k * s
        for i, terms in sums:                                        # P_i = p − Σ_j C_ij h G_j
            Pi = lam if i == s - 1 else (Pb[i] if inner else Ul[o + i])
            if i < s - 1:
                Pi.copy_(lam)
                for j, c in terms:
                    Pi.add_(hGl[j], alpha=c)
            if inner:                                                # U = σ' ⊙ P;  h K̃ᵀ D U
                Ul[o + i].mul_(Pi)
                if i > 0:
                    torch.mm(hKl[k], Ul[o + i], out=hGl[i])
            else:                                                    # U = P;  h σ'(Y) ⊙ (Kᵀ P)
                torch.mm(hKl[k], Pi, out=hGl[i])
                if i > 0:
                    hGl[i].mul_(Sd[o + i])
        out, y = Pl[k], lam                                          # p + Σ_i b_i h G_i
        for i, b in steps:
            y = torch.add(y, hGl[i], alpha=b, out=out)
        if inner:
            lam = fuse(y, hKl[k], Ul[o], out=out)
        else:
            lam = fuse(y, hGl[0], Sd[o], out=out)
    # ∂J/∂M_k = h Σ_i b_i U_{k,i} [a_{k,i}; 1]ᵀ, all layers and stages in one batched matmul
    G = torch.matmul(U, Aaug.transpose(2, 3))                        # (N, s, d, d+1)
    gM = G[:, 0].mul_(h * float(bw[0]))
    for i in range(1, s):
        gM.add_(G[:, i], alpha=h * float(bw[i]))
    gK, gb = theta_grads(model, gM, D)
    return P if costates else None, gK, gb, lam


def rk_sweep(model, params, x0, trajectories=False, increments=None, initial_costate=False, store=True):
    """Explicit Runge–Kutta sweeps (:func:`forward` then :func:`costate_sweep`, blocks in the
    model's workspace); ``x0`` = lift(X) (n, d); ``increments`` (N, n, d) or None adds ξ_k to each
    step. A two-phase generator like :func:`ocdl.pmp.compiled.rk_sweep`: yields ``x_N`` (n, d),
    is sent ``p_N`` (n, d), returns ``(gK, gb, states, costates, p0)`` (states/costates
    (N+1, n, d) if ``trajectories``, p_0 (n, d) if ``initial_costate``)."""
    with borrow(model, x0.device) as ws:
        fw = forward(model, params, x0, store=store, states=trajectories, increments=increments, ws=ws)
        lamN = yield fw["xN"].T.clone()
        P, gK, gb, lam = costate_sweep(model, params, fw, lamN, costates=trajectories, ws=ws)
        p0 = lam.T.clone() if initial_costate else None
    if trajectories:
        return gK, gb, fw["X"].permute(0, 2, 1), P.permute(0, 2, 1), p0
    return gK, gb, None, None, p0


# ------------------------------------------------------------------------------------------
# splittings on the hamiltonian field

def split_forward(model, params, x0, subs, ws, store=True, states=False):
    """The drift/kick sub-steps (module docstring) from ``x0`` (n, d). Returns ``(cur, Z, Sg, X,
    A, ch)``: ``cur`` (d+1, n) = ``[x_N; 1]``; with ``store`` ``Z`` (N, L, d+1, n) the
    ``[q; p; 1]`` entering each sub-step and ``Sg`` (N, L, m, n) its σ (else one reused block,
    returned as None); ``X`` (N+1, d, n) the states if ``states``, else None."""
    torch = _torch()
    N, d, m = model.layers, model.d, model.m
    act = model.F.act
    L = len(subs)
    halves = model.F.halves(params["K"], params["b"])                # A_j (N, m, d+1), sign s_j
    A = torch.stack([halves[kind][0] for kind, _ in subs], dim=1)    # (N, L, m, d+1) on [q; p; 1]
    ch = [float(c * model.h * halves[kind][1]) for kind, c in subs]  # c_j h s_j
    n, dev = x0.shape[0], x0.device
    nb, tag = (N, "") if store else (1, "c")                         # cost-only blocks apart
    Z = ws.get("Zs" + tag, (nb, L, d + 1, n), ones_row=True)
    Sg = ws.get("Ss" + tag, (nb, L, m, n))
    cur = ws.get("cur", (d + 1, n), ones_row=True)
    Xs = torch.empty((N + 1, d, n), dtype=torch.float64, device=dev) if states else None
    cur[:d] = x0.T
    if states:
        Xs[0] = cur[:d]
    Zl, Zd, Sl = ws.views("Zs" + tag, (Z, Sg), lambda: (Z.flatten(0, 1).unbind(0), Z[:, :, :d].flatten(0, 1).unbind(0),
                                                   Sg.flatten(0, 1).unbind(0)))
    Al = A.flatten(0, 1).unbind(0)
    state, parts = cur[:d], [cur[:m] if kind == "drift" else cur[m:d] for kind, _ in subs]
    for k in range(N):
        o = k * L if store else 0
        for j in range(L):
            z, sig = (Zl[o + j], Sl[o + j]) if store else (cur, Sl[j])
            if store:
                Zd[o + j].copy_(state)
            torch.mm(Al[k * L + j], z, out=sig)
            act.apply_torch(sig, sig)
            parts[j].add_(sig, alpha=ch[j])
        if states:
            Xs[k + 1] = cur[:d]
    return cur, (Z if store else None), (Sg if store else None), Xs, A, ch


def split_sweep(model, params, x0, trajectories=False, increments=None, initial_costate=False, store=True):
    """Drift/kick splittings (``SPLITTINGS[integrator]`` = [(kind, c)]) on a separable field, σ kept from the
    forward (equations in the module docstring); a two-phase generator like :func:`rk_sweep`
    (costates at the layer boundaries)."""
    from ocdl.models.resnet import SPLITTINGS
    torch = _torch()
    N, d, m = model.layers, model.d, model.m
    act, subs = model.F.act, SPLITTINGS[model.integrator]
    L = len(subs)
    drift = [kind == "drift" for kind, _ in subs]
    n, dev = x0.shape[0], x0.device
    with borrow(model, dev) as ws:
        cur, Z, Sg, Xs, A, ch = split_forward(model, params, x0, subs, ws, store=store, states=trajectories)
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
        Sl, Ul = ws.views("Us", (Sg, U), lambda: (Sg.flatten(0, 1).unbind(0), U.flatten(0, 1).unbind(0)))
        Cl = chAT.flatten(0, 1).unbind(0)
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
