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
  (:mod:`ocdl.pmp.kernels_split`); :mod:`ocdl.pmp.compiled` prepares and dispatches them. The
  conv fields' sweeps are in :mod:`ocdl.pmp.fused_conv`.
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

import numpy as np

from integrators.tableaux import costate_coefficients, tableau
from ocdl.pmp.forms import (embed as _embed, hKT as _hKT, split_theta_grads,
                             theta_grads as _theta_grads)
from ocdl.pmp import compiled
from ocdl.pmp.workspace import _WORKSPACES, _borrow, _Lease, release  # noqa: F401  (release: public)


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
    With the compiled kernels (s > 1 stages, :func:`ocdl.pmp.compiled._rk_forward_compiled`) ``cache`` is None
    and ``rk`` holds the stored stages instead; ``X`` is then ``(N+1, d, n)``.
    """
    A, bw, _ = tableau(model.integrator)
    s = len(bw)
    h = model.h
    N, d = model.layers, model.d
    F, kind = _form(model)
    act = F.act
    if s > 1:
        code = compiled._rk_code(act)
        if code is not None:
            return compiled._rk_forward_compiled(model, params, A, bw, X, store, states, increments, code)
    if s == 1 and not store and not states:
        code = compiled._compiled_code(act)
        if code is not None:      # compiled cost-only Euler forward: M is not formed (None)
            xN = compiled._euler_forward_compiled(model, params, X, increments, code)
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
        return compiled._rk_backward_compiled(model, fw, lamN, costates)
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
    code = compiled._compiled_code(act)
    if code is not None:
        with _borrow(model) as ws:
            return compiled._euler_compiled(model, params, X, lam_of_xN, trajectories, increments, code, ws)
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
        if trajectories:
            return Jd, gK, gb, np.array(xN), extra, states.transpose(0, 2, 1), P.transpose(0, 2, 1)
        return Jd, gK, gb, np.array(xN), extra, None, None


# ------------------------------------------------------------------------------------------
# splittings on the hamiltonian field (symplectic_euler[_b], verlet, yoshida4)

def _split_setup(model, params, subs):
    """Per sub-step j of a splitting: the full-width matrix ``A_j`` on ``[q; p; 1]`` (N, L, m, d+1)
    and the signed step ``ch_j = c_j h s_j`` from the field's :meth:`halves`."""
    halves = model.F.halves(params["K"], params["b"])
    A = np.stack([halves[kind][0] for kind, _ in subs], axis=1)
    ch = np.array([c * model.h * halves[kind][1] for kind, c in subs])
    return A, ch


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
    code = compiled._split_code(model)
    if code is not None:
        with _borrow(model) as ws:
            return compiled._split_compiled(model, params, X, lam_of_xN, subs, trajectories, code, ws)
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
    code = compiled._split_code(model)
    if code is not None:
        K, bias, ch, kinds = compiled._split_blocks(model, params, subs)
        src, prev, dst, _, _ = compiled._split_slots(kinds, N, False)
        with _borrow(model) as ws:
            H = ws.get("Hr", (2, m + 1, X.shape[0]))
            compiled._split_start(model, X, H, ws)
            compiled.kernels_split.split_forward(K, bias, ch, src, prev, dst, H,
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
