"""Fused, vectorised forward and costate sweeps for explicit Runge–Kutta layers (numpy, float64).

Same mathematics as :mod:`ocdl.pmp.costate` (the discrete costate with the adjoint-partner
tableau, giving the exact gradient of the discrete cost), organised for speed:

* **Feature-major layout.** States and costates are held as ``(N+1, d, n)`` arrays (one sample
  per column) and handed back as ``(N+1, n, d)`` transposed views: bias terms broadcast along
  the long sample axis and sums over samples are contiguous reductions.
* **Bias in the matmul.** Each field is written as ``σ`` and an affine map ``M [a; 1]`` with
  ``M = [K | b]`` acting on an input augmented by a row of ones, so ``K a + b`` is one BLAS call
  and the θ-gradient of a stage is one contraction ``U [a; 1]ᵀ = [Σ U aᵀ | Σ U]``.
* **Two kinds of field.** ``outer``  f = M [σ(x); 1] (``σ`` on the state, then affine);
  ``inner``  f = σ(M [x; 1]). The ``hamiltonian`` field is ``inner`` with the structured matrix

      K̃ = [[0, K], [−Kᵀ, 0]],   b̃ = [b; −b]     (σ odd:  −σ(Kᵀq + b) = σ(−Kᵀq − b)),

  so ``q̇ = σ(K p + b)``, ``ṗ = −σ(Kᵀ q + b)`` exactly; its gradient is read off the full one:
  ``∂J/∂K = G̃[:m, m:] − G̃[m:, :m]ᵀ``, ``∂J/∂b = g̃[:m] − g̃[m:]``.
* **Memory.** Fresh memory costs page faults (on this machine a fresh ``(N, d+1, n)`` array
  costs more to touch than the tanh written into it, and glibc returns freed heap to the OS
  between calls). The Euler gradient (:func:`euler_value_and_grad`, behind
  ``pmp.value_and_grad``) therefore keeps its caches in a per-model *workspace* reused from
  call to call (``O(N d n)`` floats, freed with the model or by :func:`release`); states and
  costates handed back by ``sweep`` / ``costate`` are always fresh arrays. The other explicit
  methods keep per-layer blocks.
* **What the forward sweep computes is kept and reused.** Per layer and stage the forward
  stores ``σ(Y_i)`` (outer) or ``σ(M [Y_i; 1])`` (inner); the backward sweep forms
  ``σ' = 1 − σ²`` from it — no ``tanh`` is evaluated in the backward sweep. Per stage one
  shared intermediate ``U_i`` (outer: ``U_i = P_i``; inner: ``U_i = σ'_i ⊙ P_i``) gives both the
  x-contraction ``(∂f/∂x)ᵀ P_i`` (outer ``σ'_i ⊙ (Kᵀ P_i)``, inner ``K̃ᵀ U_i``) and, after the
  loop, the θ-contraction (one small matmul per stage, against the stored ``[a; 1]``):

      ∂J/∂[K_k | b_k] = h Σ_i b_i U_{k,i} [a_{k,i}; 1]ᵀ  (+ regulariser),

  with ``a = σ(Y)`` (outer) or ``a = Y`` (inner).
* Costate recursion (backwards, ``P_i`` the stage costates, ``C_ij = â_ij − b_j = −b_j a_ji / b_i``,
  strictly upper for explicit methods):

      P_i = p_{k+1} − h Σ_{j>i} C_ij (∂f/∂x(Y_j))ᵀ P_j,   p_k = p_{k+1} + h Σ_i b_i (∂f/∂x(Y_i))ᵀ P_i.

  ``h`` is folded into the matrices used there; preallocated arrays and ``out=`` everywhere;
  no Python loop over samples.
"""
import threading
import weakref

import numpy as np

from integrators.tableaux import adjoint_partner, tableau



def _combine(base, terms, weights, out, tmp):
    """``out = base + Σ_i weights_i terms_i`` in place (one stage: weight 1, a single add)."""
    if len(terms) == 1:
        np.add(base, terms[0], out=out)
        return
    np.copyto(out, base)
    for term, w in zip(terms, weights):
        np.multiply(term, w, out=tmp)
        np.add(out, tmp, out=out)

def _kind(field):
    return "outer" if field == "outer" else "inner"


def _affine(model, params):
    """``M`` (N, d, d+1): the per-layer affine map on ``[a; 1]`` (hamiltonian: the embedding K̃, b̃)."""
    K, b = params["K"], params["b"]
    N, d, m = model.layers, model.d, model.m
    M = np.zeros((N, d, d + 1))
    if model.field == "hamiltonian":
        M[:, :m, m:d] = K
        M[:, :m, d] = b
        M[:, m:, :m] = -np.swapaxes(K, 1, 2)
        M[:, m:, d] = -b
    else:
        M[:, :, :d] = K
        M[:, :, d] = b
    return M


def _theta_grads(model, gM):
    """Split the gradient of ``M = [K̃ | b̃]`` into ``(gK, gb)`` of the model's own parameters."""
    d, m = model.d, model.m
    if model.field == "hamiltonian":
        gK = gM[:, :m, m:d] - np.swapaxes(gM[:, m:, :m], 1, 2)
        gb = gM[:, :m, d] - gM[:, m:, d]
        return gK, gb
    return np.ascontiguousarray(gM[:, :, :d]), np.ascontiguousarray(gM[:, :, d])


def forward(model, params, X, store=True, states=False, increments=None):
    """Fused forward sweep, feature-major. Returns a dict with ``xN`` (d, n), ``M``, and

    * ``cache`` (``store=True``): per layer, per stage ``(a_aug, sig)`` — outer: ``a_aug = [σ(Y_i); 1]``,
      ``sig = σ(Y_i)``; inner: ``a_aug = [Y_i; 1]``, ``sig = σ(M [Y_i; 1])``;
    * ``X`` (``states=True``): the states ``(N+1, d+1, n)`` (last row ones).

    ``store=False, states=False`` keeps nothing but rotating buffers (the cost-only forward).
    ``increments`` ((N, n, d) or None): additive state-independent increments ``ξ_k``, so
    ``x_{k+1} = Ψ_h(x_k; θ_k) + ξ_k`` (Euler–Maruyama with additive noise when Ψ is Euler).
    """
    A, bw, _ = tableau(model.integrator)
    s = len(bw)
    h = model.h
    N, d = model.layers, model.d
    kind = _kind(model.field)
    M = _affine(model, params)
    x0 = np.asarray(model.lift(X), dtype=float)
    n = x0.shape[0]
    hM = h * M if kind == "outer" else None

    def aug():
        a = np.empty((d + 1, n))
        a[d] = 1.0
        return a

    keep_state = store and kind == "inner"      # inner: [x_k; 1] is stage 0's cached input
    Xs = None
    if states:
        Xs = np.empty((N + 1, d + 1, n))
        Xs[:, d, :] = 1.0
        xa = Xs[0]
    elif keep_state:
        xa = aug()
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
            nxt = aug()
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
                a = aug() if store else scratch[i][0]
            else:
                a = xa if i == 0 else (aug() if store else scratch[i][0])
                Yi = a[:d]
                if i > 0:
                    np.copyto(Yi, x)
            for j in range(i):
                if A[i, j] != 0.0:
                    np.multiply(hF[j], A[i, j], out=tmp)
                    np.add(Yi, tmp, out=Yi)
            if kind == "outer":
                sig = a[:d]
                np.tanh(Yi, out=sig)
                np.matmul(hM[k], a, out=hF[i])          # h (K σ(Y) + b)
            else:
                sig = np.empty((d, n)) if store else scratch[i][1]
                np.matmul(M[k], a, out=sig)
                np.tanh(sig, out=sig)                   # σ(K Y + b)
                np.multiply(sig, h, out=hF[i])
            layer.append((a, sig))
        xn = nxt[:d]
        _combine(x, hF, bw, xn, tmp)
        if increments is not None:
            np.add(xn, increments[k].T, out=xn)
        if store:
            cache.append(layer)
        xa = nxt
    return {"xN": xa[:d], "M": M, "cache": cache, "X": Xs, "n": n}


def costate_sweep(model, params, fw, lamN, costates=False):
    """Backward sweep from ``p_N = lamN`` ((n, d)) over the cached forward ``fw``; returns
    ``(P, gK, gb)``: ``P`` the costates ``(N+1, d, n)`` if ``costates`` else ``None``; ``gK, gb``
    without the regulariser."""
    A, bw, _ = tableau(model.integrator)
    A_hat, b_hat = adjoint_partner(A, bw)
    C = A_hat - b_hat[None, :]
    s = len(bw)
    h = model.h
    N, d = model.layers, model.d
    kind = _kind(model.field)
    M, cache, n = fw["M"], fw["cache"], fw["n"]
    hKT = h * np.ascontiguousarray(np.swapaxes(M[:, :, :d], 1, 2))   # h (∂(affine)/∂a)ᵀ, (N, d, d)
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
            np.multiply(sig, sig, out=sq)                # σ² → σ' = 1 − σ²
            if kind == "outer":
                # h σ'(Y) ⊙ (Kᵀ P) = T − σ² ⊙ T with T = h Kᵀ P;  U = P
                g = hG[i]
                np.matmul(hKT[k], Pi, out=g)
                np.multiply(sq, g, out=sq)
                np.subtract(g, sq, out=g)
                Ui = Pi
            else:
                Ui = U[i]
                np.multiply(sq, Pi, out=sq)
                np.subtract(Pi, sq, out=Ui)              # U = σ' ⊙ P
                np.matmul(hKT[k], Ui, out=hG[i])         # h K̃ᵀ U
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
    gK, gb = _theta_grads(model, gM)
    return P, gK, gb


# ------------------------------------------------------------------------------------------
# Euler, the common case: tight loops over a reusable workspace

_WORKSPACES = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class _Workspace:
    def __init__(self):
        self.arrays = {}

    def get(self, name, shape, ones_row=False):
        """An array of ``shape`` (contents undefined; ``ones_row``: last row of axis −2 is 1)."""
        a = self.arrays.get(name)
        if a is None or a.shape != shape:
            a = np.empty(shape)
            if ones_row:
                a[..., -1, :] = 1.0
            self.arrays[name] = a
        return a


def release(model):
    """Free the workspace the fused Euler sweep keeps for ``model`` (it is also freed with it)."""
    with _LOCK:
        _WORKSPACES.pop(model, None)


class _borrow:
    """The model's workspace, or a throw-away one if another thread is using it."""

    def __init__(self, model):
        self.model = model
        self.locked = False

    def __enter__(self):
        with _LOCK:
            ws = _WORKSPACES.get(self.model)
            if ws is None:
                ws = _WORKSPACES[self.model] = _Workspace()
                ws.busy = False
            if ws.busy:
                return _Workspace()
            ws.busy = self.locked = True
            self.ws = ws
            return ws

    def __exit__(self, *exc):
        if self.locked:
            with _LOCK:
                self.ws.busy = False
        return False


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
    kind = _kind(model.field)
    M = _affine(model, params)
    x0 = np.asarray(model.lift(X), dtype=float)
    n = x0.shape[0]
    matmul, tanh, add, multiply, subtract = np.matmul, np.tanh, np.add, np.multiply, np.subtract
    with _borrow(model) as ws:
        if kind == "outer":
            S = ws.get("S", (N, d + 1, n), ones_row=True)         # [σ(x_k); 1]
            if trajectories:
                Xs = np.empty((N + 1, d, n))
            else:
                Xs = ws.get("rot", (2, d, n))
            hM = h * M
            x = Xs[0]
            x[...] = x0.T
            for k in range(N):
                a = S[k]
                tanh(x, out=a[:d])
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
            Xa[0, :d] = x0.T
            for k in range(N):
                sig = Sg[k]
                matmul(M[k], Xa[k], out=sig)
                tanh(sig, out=sig)
                x = Xa[k + 1, :d]
                multiply(sig, h, out=x)
                add(x, Xa[k, :d], out=x)
                if increments is not None:
                    add(x, increments[k].T, out=x)             # + ξ_k
            x = Xa[N, :d]
            states = Xa[:, :d] if trajectories else None
        xN = x.T
        Jd, lamN, extra = lam_of_xN(xN)
        hKT = h * np.ascontiguousarray(np.swapaxes(M[:, :, :d], 1, 2))
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
                sig = S[k, :d]
                multiply(sig, sig, out=sq)
                matmul(hKT[k], lam, out=g)                     # h Kᵀ p
                multiply(sq, g, out=sq)
                subtract(g, sq, out=g)                         # h σ'(x) ⊙ Kᵀ p
                out = P[k]
                add(lam, g, out=out)
                lam = out
            # all layers at once: ∂J/∂M_k = h p_{k+1} [σ(x_k); 1]ᵀ
            gM = matmul(P[1:], np.swapaxes(S, 1, 2))
        else:
            U = ws.get("U", (N, d, n))
            multiply(Sg, Sg, out=Sg)                           # σ' = 1 − σ², all layers at once
            subtract(1.0, Sg, out=Sg)
            for k in range(N - 1, -1, -1):
                u = U[k]
                multiply(Sg[k], lam, out=u)                    # U = σ' ⊙ p
                matmul(hKT[k], u, out=g)                       # h M̃ᵀ U
                out = P[k] if trajectories else P[k % 2]
                add(lam, g, out=out)
                lam = out
            gM = matmul(U, np.swapaxes(Xa[:N], 1, 2))
        gM *= h
        gK, gb = _theta_grads(model, gM)
        gK, gb = np.array(gK), np.array(gb)
        if trajectories:
            return Jd, gK, gb, np.array(xN), extra, states.transpose(0, 2, 1), P.transpose(0, 2, 1)
        return Jd, gK, gb, np.array(xN), extra, None, None


# ------------------------------------------------------------------------------------------
# splittings on the hamiltonian field (symplectic_euler[_b], verlet, yoshida4)

def split_value_and_grad(model, params, X, lam_of_xN, subs, trajectories=False):
    """Drift/kick splittings, feature-major, σ kept from the forward pass.

    State ``[q; p; 1]`` (rows). With full-width matrices ``D = [0, K, b]`` and
    ``Q = [−Kᵀ, 0, −b]`` (σ odd: ``σ(Q [q; p; 1]) = −σ(Kᵀq + b) = F_p(q)``):

        drift (c):  q ← q + c h σ(D [q; p; 1]),   kick (c):  p ← p + c h σ(Q [q; p; 1]).

    Backwards, per sub-step in reverse order, ``U = (1 − σ²) ⊙ λ_q`` (drift) or ``⊙ λ_p`` (kick):

        drift:  λ_p ← λ_p + c h Kᵀ U,     kick:  λ_q ← λ_q − c h K U,

    and ``∂J/∂[D or Q]_k = c h U [q; p; 1]ᵀ`` (batched over layers per sub-step), from which
    ``∂J/∂K = G_D[:, m:2m] − G_Qᵀ[:m]``-style reads give the gradient of K and b.
    ``subs`` is the list of ``(kind, c)``. Returns like :func:`euler_value_and_grad`; the
    costates of the returned trajectory are those at the layer boundaries.
    """
    h = model.h
    N, d, m = model.layers, model.d, model.m
    K, b = params["K"], params["b"]
    L = len(subs)
    A = np.zeros((N, L, m, d + 1))              # the full-width matrix of each sub-step
    for j, (kind, c) in enumerate(subs):
        if kind == "drift":
            A[:, j, :, m:d] = K
            A[:, j, :, d] = b
        else:
            A[:, j, :, :m] = -np.swapaxes(K, 1, 2)
            A[:, j, :, d] = -b
    ch = np.array([c * h for _, c in subs])
    x0 = np.asarray(model.lift(X), dtype=float)
    n = x0.shape[0]
    matmul, tanh, add, multiply, subtract = np.matmul, np.tanh, np.add, np.multiply, np.subtract
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
                tanh(sig, out=sig)
                part = cur[:m] if subs[j][0] == "drift" else cur[m:d]
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
        chK = ch[None, :, None, None] * K[:, None]              # c h K  (N, L, m, m)
        chKT = np.ascontiguousarray(np.swapaxes(chK, 2, 3))
        sq = ws.get("sqs", (m, n))
        for k in range(N - 1, -1, -1):
            for j in range(L - 1, -1, -1):
                sig = Sg[k, j]
                u = U[k, j]
                multiply(sig, sig, out=sq)
                if subs[j][0] == "drift":
                    lq = lam[:m]
                    multiply(sq, lq, out=sq)
                    subtract(lq, sq, out=u)                     # U = σ' ⊙ λ_q
                    matmul(chKT[k, j], u, out=t)                # c h Kᵀ U
                    add(lam[m:], t, out=lam[m:])
                else:
                    lp = lam[m:]
                    multiply(sq, lp, out=sq)
                    subtract(lp, sq, out=u)                     # U = σ' ⊙ λ_p
                    matmul(chK[k, j], u, out=t)                 # c h K U
                    subtract(lam[:m], t, out=lam[:m])
            if trajectories:
                P[k] = lam
        G = matmul(U, np.swapaxes(Z, 2, 3))                     # (N, L, m, d+1)
        G *= ch[None, :, None, None]
        gK = np.zeros_like(K)
        gb = np.zeros_like(b)
        for j, (kind, _) in enumerate(subs):
            if kind == "drift":
                gK += G[:, j, :, m:d]
                gb += G[:, j, :, d]
            else:
                gK -= np.swapaxes(G[:, j, :, :m], 1, 2)
                gb -= G[:, j, :, d]
        if trajectories:
            return Jd, gK, gb, xN, extra, Xs.transpose(0, 2, 1), P.transpose(0, 2, 1)
        return Jd, gK, gb, xN, extra, None, None


def split_forward(model, params, X, subs):
    """``x_N`` ((n, d)) of a splitting network by the sub-steps of :func:`split_value_and_grad`,
    nothing stored (the cost-only forward)."""
    h = model.h
    N, d, m = model.layers, model.d, model.m
    K, b = params["K"], params["b"]
    KT = np.swapaxes(K, 1, 2)
    x0 = np.asarray(model.lift(X), dtype=float)
    n = x0.shape[0]
    cur = np.empty((d + 1, n))
    cur[d] = 1.0
    cur[:d] = x0.T
    Dm = np.concatenate([K, b[:, :, None]], axis=2)              # [K | b] on [p; 1]
    Qm = -np.concatenate([KT, b[:, :, None]], axis=2)            # [−Kᵀ | −b] on [q; 1]
    qa = np.empty((m + 1, n))
    qa[m] = 1.0
    sig = np.empty((m, n))
    for k in range(N):
        for kind, c in subs:
            if kind == "drift":
                np.matmul(Dm[k], cur[m:], out=sig)
                np.tanh(sig, out=sig)
                sig *= c * h
                np.add(cur[:m], sig, out=cur[:m])
            else:
                qa[:m] = cur[:m]
                np.matmul(Qm[k], qa, out=sig)
                np.tanh(sig, out=sig)
                sig *= c * h
                np.add(cur[m:d], sig, out=cur[m:d])
    return np.array(cur[:d].T)
