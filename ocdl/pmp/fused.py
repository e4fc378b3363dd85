"""Fused, vectorised forward and costate sweeps for explicit Runge–Kutta layers (numpy, float64).

Same mathematics as :mod:`ocdl.pmp.costate` (the discrete costate with the adjoint-partner
tableau, giving the exact gradient of the discrete cost), organised for speed:

* **Feature-major layout.** States and costates are held as ``(N+1, d, n)`` arrays (one sample
  per column) and handed back as ``(N+1, n, d)`` transposed views: bias terms broadcast along
  the long sample axis and sums over samples are contiguous reductions.
* **Bias in the matmul.** Each field is written as ``σ`` and an affine map ``M [a; 1]`` with
  ``M = [K | b]`` acting on an input augmented by a row of ones, so ``K a + b`` is one BLAS call
  and the θ-gradient of a stage is one contraction ``U [a; 1]ᵀ = [Σ U aᵀ | Σ U]``.
* **Two fused forms, declared by the field object** (``model.F``, :mod:`ocdl.models.fields`;
  the sweeps read ``F.form``, ``F.embed``, ``F.out_sign``, ``F.theta_grads``, ``F.act`` and
  never a field's name): form ``outer``  f = M [σ(x); 1] (``σ`` on the state, then affine);
  form ``inner``  f = D ⊙ σ(M [x; 1]) with fixed output signs D (None = ones). The
  ``hamiltonian`` field is ``inner`` with ``M = [[0, K, b], [Kᵀ, 0, b]]`` and ``D = [1; −1]``, so
  ``q̇ = σ(K p + b)``, ``ṗ = −σ(Kᵀ q + b)`` for any σ; its gradient is read off the full one:
  ``∂J/∂K = G̃[:m, m:] + G̃[m:, :m]ᵀ``, ``∂J/∂b = g̃[:m] + g̃[m:]`` with ``G̃ = D ⊙ h Σ U [a; 1]ᵀ``.
  With D diagonal, ``(∂f/∂x)ᵀ p = M_xᵀ D (σ' ⊙ p)``: D is folded into the x-contraction matrix.
* **The activation is an object too** (``F.act``, :mod:`ocdl.models.activations`): the sweeps
  call ``act.apply`` (σ into a buffer), ``act.mul_deriv`` (σ' ⊙ v from the stored σ) and
  ``act.deriv_inplace`` (σ → σ' for all layers at once); for tanh these are exactly the
  historical kernels (``v − σ² v`` and ``1 − σ²``), so tanh numbers are unchanged.
* **Memory.** The sweeps keep their caches in a per-model *workspace* reused from call to
  call (:mod:`ocdl.pmp.workspace`: fresh memory costs page faults; ``O(N d n)`` floats, freed
  with the model or by :func:`release`); states and
  costates handed back by ``sweep`` / ``costate`` are always fresh arrays. The other explicit
  Runge–Kutta methods keep their cached stages in the same workspace (:func:`forward` holds it
  until :func:`costate_sweep` has run); the splittings too. With numba installed the Euler
  sweeps run as compiled whole-sweep kernels (:mod:`ocdl.pmp.kernels`, same mathematics), and
  so do the other explicit Runge–Kutta sweeps on the outer/inner forms (:mod:`ocdl.pmp.kernels_rk`,
  dispatched from :func:`forward` and :func:`costate_sweep`) and the splittings
  (:mod:`ocdl.pmp.kernels_split`). The conv fields' sweeps are in :mod:`ocdl.pmp.fused_conv`.
* **What the forward sweep computes is kept and reused.** Per layer and stage the forward
  stores ``σ(Y_i)`` (outer) or ``σ(M [Y_i; 1])`` (inner); the backward sweep forms
  σ' from it (tanh ``1 − σ²``) — σ is never re-evaluated in the backward sweep. Per stage one
  shared intermediate ``U_i`` (outer: ``U_i = P_i``; inner: ``U_i = σ'_i ⊙ P_i``) gives both the
  x-contraction ``(∂f/∂x)ᵀ P_i`` (outer ``σ'_i ⊙ (Kᵀ P_i)``, inner ``K̃ᵀ D U_i``) and, after the
  loop, the θ-contraction (one small matmul per stage, against the stored ``[a; 1]``):

      ∂J/∂[K_k | b_k] = h Σ_i b_i U_{k,i} [a_{k,i}; 1]ᵀ  (+ regulariser),

  with ``a = σ(Y)`` (outer) or ``a = Y`` (inner).
* Costate recursion (backwards, ``P_i`` the stage costates, ``C_ij = â_ij − b_j = −b_j a_ji / b_i``,
  strictly upper for explicit methods):

      P_i = p_{k+1} − h Σ_{j>i} C_ij (∂f/∂x(Y_j))ᵀ P_j,   p_k = p_{k+1} + h Σ_i b_i (∂f/∂x(Y_i))ᵀ P_i.

  ``h`` is folded into the matrices used there; preallocated arrays and ``out=`` everywhere;
  no Python loop over samples.
"""
import functools
import importlib.util
import os

import numpy as np

from integrators.tableaux import costate_coefficients, tableau
from ocdl.pmp.forms import (embed as _embed, hKT as _hKT, outer_parts, outer_theta_grads, split_theta_grads,
                             theta_grads as _theta_grads)
from ocdl.pmp.workspace import _WORKSPACES, _borrow, _Lease, release  # noqa: F401  (release: public)

#: run the Euler and explicit RK sweeps through the compiled kernels of :mod:`ocdl.pmp.kernels`
#: and :mod:`ocdl.pmp.kernels_rk` when numba is
#: installed (extra ``fast``); ``OCDL_NUMBA=0`` in the environment, or setting this to False,
#: forces the numpy sweeps. numba is imported on the first compiled sweep, not with ocdl.
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



def _combine(base, terms, weights, out, tmp):
    """``out = base + Σ_i weights_i terms_i`` in place (one stage: weight 1, a single add);
    the stage sums of every explicit RK sweep here (dense and conv)."""
    if len(terms) == 1:
        np.add(base, terms[0], out=out)
        return
    np.copyto(out, base)
    for term, w in zip(terms, weights):
        np.multiply(term, w, out=tmp)
        np.add(out, tmp, out=out)

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


def _form(model):
    """The model's field object and its fused form (``"outer"`` / ``"inner"``); a field without
    one cannot run these sweeps."""
    F = model.F
    if F.form not in ("outer", "inner"):
        from ocdl.errors import InputError
        raise InputError(f"field '{F.name}' has no fused form; use pmp.module_value_and_grad "
                         f"or the autograd solvers for it")
    return F, F.form


def forward(model, params, X, store=True, states=False, increments=None):
    """Fused forward sweep, feature-major. Returns a dict with ``xN`` (d, n), ``M`` (None from
    the compiled cost-only Euler forward, which does not form it), and

    * ``cache`` (``store=True``): per layer, per stage ``(a_aug, sig)`` — outer: ``a_aug = [σ(Y_i); 1]``,
      ``sig = σ(Y_i)``; inner: ``a_aug = [Y_i; 1]``, ``sig = σ(M [Y_i; 1])``;
    * ``X`` (``states=True``): the states ``(N+1, d+1, n)`` (last row ones).

    ``store=False, states=False`` keeps nothing but rotating buffers (the cost-only forward).
    ``increments`` ((N, n, d) or None): additive state-independent increments ``ξ_k``, so
    ``x_{k+1} = Ψ_h(x_k; θ_k) + ξ_k`` (Euler–Maruyama with additive noise when Ψ is Euler).
    With the compiled kernels (s > 1 stages, :func:`_rk_forward_compiled`) ``cache`` is None
    and ``rk`` holds the stored stages instead; ``X`` is then ``(N+1, d, n)``.
    """
    A, bw, _ = tableau(model.integrator)
    s = len(bw)
    h = model.h
    N, d = model.layers, model.d
    F, kind = _form(model)
    act = F.act
    if s > 1:
        code = _rk_code(act)
        if code is not None:
            return _rk_forward_compiled(model, params, A, bw, X, store, states, increments, code)
    if s == 1 and not store and not states:
        code = _compiled_code(act)
        if code is not None:      # compiled cost-only Euler forward: M is not formed (None)
            xN = _euler_forward_compiled(model, params, X, increments, code)
            return {"xN": xN, "M": None, "D": None, "cache": None, "X": None, "n": X.shape[0]}
    M, D = _embed(model, params)
    hD = h if D is None else h * D
    x0 = np.asarray(model.lift(X), dtype=float)
    n = x0.shape[0]
    hM = h * M if kind == "outer" else None

    def aug():
        a = np.empty((d + 1, n))
        a[d] = 1.0
        return a

    keep_state = store and kind == "inner"      # inner: [x_k; 1] is stage 0's cached input
    lease = _Lease(model) if store else None   # stored stages live in the model's workspace
    if store:
        ws = lease.ws
        # outer: [σ(Y_i); 1] of every stage; inner: [Y_i; 1] of the stages i ≥ 1 (stage 0's is x_k)
        Acache = ws.get("rkA", (N, s if kind == "outer" else max(s - 1, 1), d + 1, n), ones_row=True)
        Scache = ws.get("rkS", (N, s, d, n)) if kind == "inner" else None
    Xs = None
    if states:
        Xs = np.empty((N + 1, d + 1, n))
        Xs[:, d, :] = 1.0
        xa = Xs[0]
    elif keep_state:
        Xk = ws.get("rkX", (N + 1, d + 1, n), ones_row=True)
        xa = Xk[0]
    else:
        rot = (aug(), aug())
        xa = rot[0]
    xa[:d] = x0.T
    cache = [] if store else None
    scratch = None if store else [(aug(), np.empty((d, n))) for _ in range(s)]
    hF = np.empty((s, d, n))            # h f(Y_i) of the current layer
    Y = np.empty((d, n))
    tmp = np.empty((d, n))
    for k in range(N):
        if Xs is not None:
            nxt = Xs[k + 1]
        elif keep_state:
            nxt = Xk[k + 1]
        else:
            nxt = rot[(k + 1) % 2]
        x = xa[:d]
        layer = []
        for i in range(s):
            if kind == "outer":
                if i == 0:
                    Yi = x
                else:
                    Yi = Y
                    np.copyto(Yi, x)
                a = Acache[k, i] if store else scratch[i][0]
            else:
                a = xa if i == 0 else (Acache[k, i - 1] if store else scratch[i][0])
                Yi = a[:d]
                if i > 0:
                    np.copyto(Yi, x)
            for j in range(i):
                if A[i, j] != 0.0:
                    np.multiply(hF[j], A[i, j], out=tmp)
                    np.add(Yi, tmp, out=Yi)
            if kind == "outer":
                sig = a[:d]
                act.apply(Yi, sig)
                np.matmul(hM[k], a, out=hF[i])          # h (K σ(Y) + b)
            else:
                sig = Scache[k, i] if store else scratch[i][1]
                np.matmul(M[k], a, out=sig)
                act.apply(sig, sig)                     # σ(K Y + b)
                np.multiply(sig, hD, out=hF[i])         # h D σ
            layer.append((a, sig))
        xn = nxt[:d]
        _combine(x, hF, bw, xn, tmp)
        if increments is not None:
            np.add(xn, increments[k].T, out=xn)
        if store:
            cache.append(layer)
        xa = nxt
    return {"xN": xa[:d], "M": M, "D": D, "cache": cache, "X": Xs, "n": n, "lease": lease}


def costate_sweep(model, params, fw, lamN, costates=False):
    """Backward sweep from ``p_N = lamN`` ((n, d)) over the cached forward ``fw``; returns
    ``(P, gK, gb)``: ``P`` the costates ``(N+1, d, n)`` if ``costates`` else ``None``; ``gK, gb``
    without the regulariser."""
    if fw.get("rk") is not None:
        return _rk_backward_compiled(model, fw, lamN, costates)
    A, bw, _ = tableau(model.integrator)
    C = costate_coefficients(A, bw)
    s = len(bw)
    h = model.h
    N, d = model.layers, model.d
    F, kind = _form(model)
    act = F.act
    M, D, cache, n = fw["M"], fw["D"], fw["cache"], fw["n"]
    hKT = _hKT(model, M, D)
    if costates:
        P = np.empty((N + 1, d, n))
        lam = P[N]
    else:
        P = None
        rot = (np.empty((d, n)), np.empty((d, n)))
        lam = rot[N % 2]
    lam[...] = lamN.T
    gM = np.empty((N, d, d + 1))
    hG = np.empty((s, d, n))            # h (∂f/∂x(Y_i))ᵀ P_i of the current layer
    Pbuf = np.empty((s, d, n))
    U = np.empty((s, d, n))
    sq = np.empty((d, n))
    tmp = np.empty((d, n))
    contr = np.empty((d, d + 1))
    for k in range(N - 1, -1, -1):
        out = P[k] if P is not None else rot[k % 2]
        layer = cache[k]
        for i in range(s - 1, -1, -1):
            if i == s - 1:
                Pi = lam
            else:
                Pi = Pbuf[i]
                np.copyto(Pi, lam)
                for j in range(i + 1, s):
                    if C[i, j] != 0.0:
                        np.multiply(hG[j], -C[i, j], out=tmp)
                        np.add(Pi, tmp, out=Pi)
            a, sig = layer[i]
            if kind == "outer":
                # h σ'(Y) ⊙ (Kᵀ P);  U = P
                g = hG[i]
                np.matmul(hKT[k], Pi, out=g)
                act.mul_deriv(sig, g, g, sq)
                Ui = Pi
            else:
                Ui = U[i]
                act.mul_deriv(sig, Pi, Ui, sq)           # U = σ' ⊙ P
                np.matmul(hKT[k], Ui, out=hG[i])         # h K̃ᵀ D U
            # θ-contraction of this stage, Σ_samples U [a; 1]ᵀ (times h b_i below)
            if s == 1:
                np.matmul(Ui, a.T, out=gM[k])
            else:
                np.matmul(Ui, a.T, out=contr)
                if i == s - 1:
                    np.multiply(contr, bw[i], out=gM[k])
                else:
                    contr *= bw[i]
                    gM[k] += contr
        _combine(lam, hG, bw, out, tmp)
        lam = out
    gM *= h
    gK, gb = _theta_grads(model, gM, D)
    if fw.get("lease") is not None:
        fw["lease"].release()                   # the cached stages are no longer needed
    return P, gK, gb


# ------------------------------------------------------------------------------------------
# other explicit Runge–Kutta methods through the compiled kernels of ocdl.pmp.kernels_rk

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
    G *= h
    gK, gb = _theta_grads(model, G, D)
    gK, gb = np.array(gK), np.array(gb)
    fw["lease"].release()
    return (P if costates else None), gK, gb


# ------------------------------------------------------------------------------------------
# Euler, the common case: tight loops over the model's workspace

def euler_value_and_grad(model, params, X, lam_of_xN, trajectories=False, increments=None):
    """Euler layers: forward keeping σ, costate sweep reusing it, batched θ-contraction.

    ``lam_of_xN(xN) -> (J_data, lamN, extra)`` gives the terminal costate from ``x_N`` ((n, d)).
    Returns ``(J_data, gK, gb, xN, extra, states, costates)``; ``states``/``costates`` are fresh
    ``(N+1, n, d)`` arrays (transposed views of feature-major arrays) if ``trajectories`` else None.
    ``increments`` ((N, n, d) or None): additive increments, ``x_{k+1} = x_k + h f(x_k, θ_k) + ξ_k``;
    being state- and θ-independent they leave the backward sweep and the gradient formula unchanged.

        forward   outer: S_k = σ(x_k),  x_{k+1} = x_k + h (K_k S_k + b_k)
                  inner: Σ_k = σ(M_k [x_k; 1]),  x_{k+1} = x_k + h Σ_k
        backward  outer: p_k = p_{k+1} + h (1 − S_k²) ⊙ K_kᵀ p_{k+1}
                  inner: U_k = (1 − Σ_k²) ⊙ p_{k+1},  p_k = p_{k+1} + h M̃_kᵀ U_k
        gradient  ∂J/∂M_k = h U_k [a_k; 1]ᵀ  (outer U = p_{k+1}, a = S;  inner a = x)
    """
    h = model.h
    N, d = model.layers, model.d
    F, kind = _form(model)
    act = F.act
    code = _compiled_code(act)
    if code is not None:
        with _borrow(model) as ws:
            return _euler_compiled(model, params, X, lam_of_xN, trajectories, increments, code, ws)
    M, D = _embed(model, params)
    hD = h if D is None else h * D
    n = X.shape[0]
    matmul, add, multiply = np.matmul, np.add, np.multiply
    with _borrow(model) as ws:
        if kind == "outer":
            S = ws.get("S", (N, d + 1, n), ones_row=True)         # [σ(x_k); 1]
            if trajectories:
                Xs = np.empty((N + 1, d, n))
            else:
                Xs = ws.get("rot", (2, d, n))
            hM = h * M
            x = model.lift_into(X, Xs[0])
            for k in range(N):
                a = S[k]
                act.apply(x, a[:d])
                nxt = Xs[k + 1] if trajectories else Xs[(k + 1) % 2]
                matmul(hM[k], a, out=nxt)                      # h (K σ + b)
                add(nxt, x, out=nxt)
                if increments is not None:
                    add(nxt, increments[k].T, out=nxt)         # + ξ_k
                x = nxt
            states = Xs if trajectories else None
        else:
            if trajectories:
                Xa = np.empty((N + 1, d + 1, n))
                Xa[:, d, :] = 1.0
            else:
                Xa = ws.get("Xa", (N + 1, d + 1, n), ones_row=True)   # [x_k; 1]
            Sg = ws.get("Sg", (N, d, n))                               # σ(M [x_k; 1])
            model.lift_into(X, Xa[0, :d])
            for k in range(N):
                sig = Sg[k]
                matmul(M[k], Xa[k], out=sig)
                act.apply(sig, sig)
                x = Xa[k + 1, :d]
                multiply(sig, hD, out=x)
                add(x, Xa[k, :d], out=x)
                if increments is not None:
                    add(x, increments[k].T, out=x)             # + ξ_k
            x = Xa[N, :d]
            states = Xa[:, :d] if trajectories else None
        xN = x.T
        Jd, lamN, extra = lam_of_xN(xN)
        hKT = _hKT(model, M, D)
        if trajectories:
            P = np.empty((N + 1, d, n))
        else:
            P = ws.get("P", (N + 1, d, n)) if kind == "outer" else ws.get("rotP", (2, d, n))
        top = N if (trajectories or kind == "outer") else N % 2
        lam = P[top]
        lam[...] = lamN.T
        sq = ws.get("sq", (d, n))
        g = ws.get("g", (d, n))
        if kind == "outer":
            for k in range(N - 1, -1, -1):
                matmul(hKT[k], lam, out=g)                     # h Kᵀ p
                act.mul_deriv(S[k, :d], g, g, sq)              # h σ'(x) ⊙ Kᵀ p
                out = P[k]
                add(lam, g, out=out)
                lam = out
            # all layers at once: ∂J/∂M_k = h p_{k+1} [σ(x_k); 1]ᵀ
            gM = matmul(P[1:], np.swapaxes(S, 1, 2))
        else:
            U = ws.get("U", (N, d, n))
            act.deriv_inplace(Sg)                              # σ → σ', all layers at once
            for k in range(N - 1, -1, -1):
                u = U[k]
                multiply(Sg[k], lam, out=u)                    # U = σ' ⊙ p
                matmul(hKT[k], u, out=g)                       # h M̃ᵀ D U
                out = P[k] if trajectories else P[k % 2]
                add(lam, g, out=out)
                lam = out
            gM = matmul(U, np.swapaxes(Xa[:N], 1, 2))
        gM *= h
        gK, gb = _theta_grads(model, gM, D)
        gK, gb = np.array(gK), np.array(gb)
        if trajectories:
            return Jd, gK, gb, np.array(xN), extra, states.transpose(0, 2, 1), P.transpose(0, 2, 1)
        return Jd, gK, gb, np.array(xN), extra, None, None


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
    else:
        G = ws.get("G", (N, d, d + 1))
        M, D = _embed(model, params)
        inc = _increments_fm(increments, N, d, n)
        hKT = _hKT(model, M, D)
        Xa = np.empty((N + 1, d + 1, n)) if trajectories else ws.get("Xa", (N + 1, d + 1, n), ones_row=True)
        if trajectories:
            Xa[:, d, :] = 1.0
        Sg = ws.get("Sg", (N, d, n))
        model.lift_into(X, Xa[0, :d])
        hD = np.full(d, h) if D is None else np.ascontiguousarray(h * D[:, 0])
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
    h, N, d = model.h, model.layers, model.d
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
        hD = np.full(d, h) if D is None else np.ascontiguousarray(h * D[:, 0])
        last = kernels.inner_forward(M, hD, Xs, ws.get("Sg1", (1, d, n)), inc, code)
        return Xs[last, :d].copy()


# ------------------------------------------------------------------------------------------
# splittings on the hamiltonian field (symplectic_euler[_b], verlet, yoshida4)

def _split_setup(model, params, subs):
    """Per sub-step j of a splitting: the full-width matrix ``A_j`` on ``[q; p; 1]`` (N, L, m, d+1)
    and the signed step ``ch_j = c_j h s_j`` from the field's :meth:`halves`."""
    halves = model.F.halves(params["K"], params["b"])
    A = np.stack([halves[kind][0] for kind, _ in subs], axis=1)
    ch = np.array([c * model.h * halves[kind][1] for kind, c in subs])
    return A, ch


def _split_code(model):
    """The compiled splitting kernels' activation code (:mod:`ocdl.pmp.kernels_split`), or None
    when the numpy sweeps must run (no numba, ``COMPILED`` off, or an activation without one)."""
    global kernels_split
    code = _compiled_code(model.F.act) if model.F.separable else None
    if code is not None and kernels_split is None:
        from ocdl.pmp import kernels_split as ks
        kernels_split = ks
    return code


kernels_split = None


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


def split_value_and_grad(model, params, X, lam_of_xN, subs, trajectories=False):
    """Drift/kick splittings on a separable field, feature-major, σ kept from the forward pass.

    State ``[q; p; 1]`` (rows). With the field's full-width matrices and signs (hamiltonian:
    ``A_q = [0, K, b]``, s = +1 and ``A_p = [Kᵀ, 0, b]``, s = −1) and ``ch = c h s``:

        drift (c):  q ← q + ch σ(A_q [q; p; 1]),   kick (c):  p ← p + ch σ(A_p [q; p; 1]).

    Backwards, per sub-step in reverse order, ``U = σ' ⊙ λ_q`` (drift) or ``σ' ⊙ λ_p`` (kick):

        drift:  λ_p ← λ_p + ch A_q[:, p-cols]ᵀ U = λ_p + ch Kᵀ U,
        kick:   λ_q ← λ_q + ch A_p[:, q-cols]ᵀ U = λ_q + ch K U,

    and ``∂J/∂A_{k,j} = ch_j U [q; p; 1]ᵀ`` (batched over layers per sub-step), mapped to
    ``(∂J/∂K, ∂J/∂b)`` by the field's ``half_theta_grads``.
    ``subs`` is the list of ``(kind, c)``. Returns like :func:`euler_value_and_grad`; the
    costates of the returned trajectory are those at the layer boundaries.
    With numba the compiled kernels of :mod:`ocdl.pmp.kernels_split` run instead (same mathematics).
    """
    code = _split_code(model)
    if code is not None:
        with _borrow(model) as ws:
            return _split_compiled(model, params, X, lam_of_xN, subs, trajectories, code, ws)
    N, d, m = model.layers, model.d, model.m
    act = model.F.act
    L = len(subs)
    A, ch = _split_setup(model, params, subs)
    drift = [kind == "drift" for kind, _ in subs]
    x0 = np.asarray(model.lift(X), dtype=float)
    n = x0.shape[0]
    matmul, add, multiply = np.matmul, np.add, np.multiply
    with _borrow(model) as ws:
        Z = ws.get("Zs", (N, L, d + 1, n), ones_row=True)      # [q; p; 1] entering sub-step j
        Sg = ws.get("Ss", (N, L, m, n))                         # σ(A [q; p; 1])
        if trajectories:
            Xs = np.empty((N + 1, d, n))
        cur = ws.get("cur", (d + 1, n), ones_row=True)
        t = ws.get("t", (m, n))
        cur[:d] = x0.T
        if trajectories:
            Xs[0] = x0.T
        for k in range(N):
            for j in range(L):
                z = Z[k, j]
                z[:d] = cur[:d]
                sig = Sg[k, j]
                matmul(A[k, j], z, out=sig)
                act.apply(sig, sig)
                part = cur[:m] if drift[j] else cur[m:d]
                multiply(sig, ch[j], out=t)
                add(part, t, out=part)
            if trajectories:
                Xs[k + 1] = cur[:d]
        xN = np.array(cur[:d].T)
        Jd, lamN, extra = lam_of_xN(xN)
        U = ws.get("Us", (N, L, m, n))
        lam = ws.get("lam", (d, n))
        lam[...] = lamN.T
        if trajectories:
            P = np.empty((N + 1, d, n))
            P[N] = lam
        # ch_j (∂ sub-step input)ᵀ: drift reads p (columns m:d), kick reads q (columns :m)
        chAT = np.empty((N, L, m, m))
        for j in range(L):
            cols = slice(m, d) if drift[j] else slice(0, m)
            chAT[:, j] = ch[j] * np.swapaxes(A[:, j, :, cols], 1, 2)
        sq = ws.get("sqs", (m, n))
        for k in range(N - 1, -1, -1):
            for j in range(L - 1, -1, -1):
                u = U[k, j]
                if drift[j]:
                    act.mul_deriv(Sg[k, j], lam[:m], u, sq)     # U = σ' ⊙ λ_q
                    matmul(chAT[k, j], u, out=t)                # ch Kᵀ U
                    add(lam[m:], t, out=lam[m:])
                else:
                    act.mul_deriv(Sg[k, j], lam[m:], u, sq)     # U = σ' ⊙ λ_p
                    matmul(chAT[k, j], u, out=t)                # ch K U
                    add(lam[:m], t, out=lam[:m])
            if trajectories:
                P[k] = lam
        G = matmul(U, np.swapaxes(Z, 2, 3))                     # (N, L, m, d+1)
        G *= ch[None, :, None, None]
        gK, gb = split_theta_grads(model, params, G, subs)
        if trajectories:
            return Jd, gK, gb, xN, extra, Xs.transpose(0, 2, 1), P.transpose(0, 2, 1)
        return Jd, gK, gb, xN, extra, None, None


def split_forward(model, params, X, subs):
    """``x_N`` ((n, d)) of a splitting network by the sub-steps of :func:`split_value_and_grad`,
    nothing stored (the cost-only forward)."""
    N, d, m = model.layers, model.d, model.m
    code = _split_code(model)
    if code is not None:
        K, bias, ch, kinds = _split_blocks(model, params, subs)
        src, prev, dst, _, _ = _split_slots(kinds, N, False)
        with _borrow(model) as ws:
            H = ws.get("Hr", (2, m + 1, X.shape[0]))
            _split_start(model, X, H, ws)
            kernels_split.split_forward(K, bias, ch, src, prev, dst, H,
                                        np.empty((0, m, X.shape[0])), code)
            return np.concatenate([H[0, :m], H[1, :m]]).T
    act = model.F.act
    A, ch = _split_setup(model, params, subs)
    x0 = np.asarray(model.lift(X), dtype=float)
    n = x0.shape[0]
    cur = np.empty((d + 1, n))
    cur[d] = 1.0
    cur[:d] = x0.T
    sig = np.empty((m, n))
    for k in range(N):
        for j, (kind, _) in enumerate(subs):
            np.matmul(A[k, j], cur, out=sig)
            act.apply(sig, sig)
            sig *= ch[j]
            part = cur[:m] if kind == "drift" else cur[m:d]
            np.add(part, sig, out=part)
    return np.array(cur[:d].T)
