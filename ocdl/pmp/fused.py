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
* **What the forward sweep computes is kept and reused.** Per layer and stage the forward
  stores ``σ(Y_i)`` (outer) or ``σ(M [Y_i; 1])`` (inner); the backward sweep forms
  ``σ' = 1 − σ²`` from it — no ``tanh`` is evaluated in the backward sweep. Per stage one
  shared intermediate ``U_i`` (outer: ``U_i = P_i``; inner: ``U_i = σ'_i ⊙ P_i``) gives both the
  x-contraction ``(∂f/∂x)ᵀ P_i`` (outer ``σ'_i ⊙ (Kᵀ P_i)``, inner ``K̃ᵀ U_i``) and, after the
  loop, the θ-contraction of *all* layers at once (one batched matmul per stage):

      ∂J/∂[K_k | b_k] = h Σ_i b_i U_{k,i} [a_{k,i}; 1]ᵀ  (+ regulariser),

  with ``a = σ(Y)`` (outer) or ``a = Y`` (inner).
* Costate recursion (backwards, ``P_i`` the stage costates, ``C_ij = â_ij − b_j = −b_j a_ji / b_i``,
  strictly upper for explicit methods):

      P_i = p_{k+1} − h Σ_{j>i} C_ij (∂f/∂x(Y_j))ᵀ P_j,   p_k = p_{k+1} + h Σ_i b_i (∂f/∂x(Y_i))ᵀ P_i.

  ``h`` is folded into the matrices used there; preallocated arrays and ``out=`` everywhere;
  no Python loop over samples.
"""
import numpy as np

from integrators.tableaux import adjoint_partner, tableau


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


def forward(model, params, X, store=True):
    """Fused forward sweep. ``store=False``: only ``x_N`` (two rotating buffers, for the cost).
    ``store=True``: returns a dict of everything the costate sweep reuses."""
    A, bw, _ = tableau(model.integrator)
    s = len(bw)
    h = model.h
    N, d = model.layers, model.d
    kind = _kind(model.field)
    M = _affine(model, params)
    x0 = np.asarray(model.lift(X), dtype=float)
    n = x0.shape[0]
    hM = h * M if kind == "outer" else None
    if store:
        # states augmented by a row of ones: [x_k; 1] is stage 0's input (inner) for free
        Xa = np.empty((N + 1, d + 1, n))
        Xa[:, d, :] = 1.0
        X_ = Xa[:, :d, :]
        # per layer/stage: a_aug = [σ(Y); 1] (outer) or σ(M [Y; 1]) (inner)
        if kind == "outer":
            Sa = np.empty((N, s, d + 1, n))
            Sa[:, :, d, :] = 1.0
        else:
            Sa = np.empty((N, s, d, n))
        Ya = None
        if kind == "inner" and s > 1:          # stage inputs beyond stage 0 (= x_k)
            Ya = np.empty((N, s - 1, d + 1, n))
            Ya[:, :, d, :] = 1.0
    else:
        X_ = np.empty((2, d, n))
        Sa = np.empty((1, s, d + 1, n)) if kind == "outer" else np.empty((1, s, d, n))
        if kind == "outer":
            Sa[:, :, d, :] = 1.0
        Ya = np.empty((1, max(s - 1, 1), d + 1, n))
        Ya[:, :, d, :] = 1.0
        xa0 = np.empty((d + 1, n))
        xa0[d, :] = 1.0
    X_[0] = x0.T
    hF = np.empty((s, d, n))            # h f(Y_i) of the current layer
    Y = np.empty((d, n))
    tmp = np.empty((d, n))
    for k in range(N):
        kk = k if store else 0
        x = X_[k] if store else X_[k % 2]
        nxt = X_[k + 1] if store else X_[(k + 1) % 2]
        for i in range(s):
            if i == 0:
                Yi = x
            else:
                Yi = Ya[kk, i - 1, :d] if (kind == "inner") else Y
                np.copyto(Yi, x)
                for j in range(i):
                    if A[i, j] != 0.0:
                        np.multiply(hF[j], A[i, j], out=tmp)
                        np.add(Yi, tmp, out=Yi)
            if kind == "outer":
                np.tanh(Yi, out=Sa[kk, i, :d])
                np.matmul(hM[k], Sa[kk, i], out=hF[i])
            else:
                if i == 0:
                    if store:
                        ya = Xa[k]
                    else:
                        np.copyto(xa0[:d], x)
                        ya = xa0
                else:
                    ya = Ya[kk, i - 1]
                sig = Sa[kk, i]
                np.matmul(M[k], ya, out=sig)
                np.tanh(sig, out=sig)
                np.multiply(sig, h, out=hF[i])
        if s == 1:
            np.add(x, hF[0], out=nxt)
        else:
            np.copyto(nxt, x)
            for i in range(s):
                np.multiply(hF[i], bw[i], out=tmp)
                np.add(nxt, tmp, out=nxt)
    if not store:
        return X_[N % 2].T
    return {"M": M, "Xa": Xa, "S": Sa, "Ya": Ya, "kind": kind, "s": s}


def costate_sweep(model, params, fw, lamN):
    """Backward sweep from ``p_N = lamN`` ((n, d)); returns ``(costates (N+1, d, n), gK, gb)``
    (gK, gb without the regulariser)."""
    A, bw, _ = tableau(model.integrator)
    A_hat, b_hat = adjoint_partner(A, bw)
    C = A_hat - b_hat[None, :]
    s = len(bw)
    h = model.h
    N, d = model.layers, model.d
    kind = fw["kind"]
    M, Xa, Sa, Ya = fw["M"], fw["Xa"], fw["S"], fw["Ya"]
    n = Xa.shape[2]
    hKT = h * np.ascontiguousarray(np.swapaxes(M[:, :, :d], 1, 2))   # h (∂(affine)/∂a)ᵀ, (N, d, d)
    P = np.empty((N + 1, d, n))
    P[N] = lamN.T
    # the shared intermediate U_{k,i} (outer Euler: U = p_{k+1} itself, nothing to store)
    U = None if (kind == "outer" and s == 1) else np.empty((N, s, d, n))
    hG = np.empty((s, d, n))            # h (∂f/∂x(Y_i))ᵀ P_i of the current layer
    Pi_buf = np.empty((s, d, n))
    sq = np.empty((d, n))
    tmp = np.empty((d, n))
    for k in range(N - 1, -1, -1):
        lam = P[k + 1]
        for i in range(s - 1, -1, -1):
            if i == s - 1:
                Pi = lam
            else:
                Pi = Pi_buf[i]
                np.copyto(Pi, lam)
                for j in range(i + 1, s):
                    if C[i, j] != 0.0:
                        np.multiply(hG[j], -C[i, j], out=tmp)
                        np.add(Pi, tmp, out=Pi)
            sig = Sa[k, i, :d]
            np.multiply(sig, sig, out=sq)                # σ² → σ' = 1 − σ²
            if kind == "outer":
                # h σ'(Y) ⊙ (Kᵀ P) = T − σ² ⊙ T with T = h Kᵀ P
                g = hG[i]
                np.matmul(hKT[k], Pi, out=g)
                np.multiply(sq, g, out=sq)
                np.subtract(g, sq, out=g)
                if U is not None:
                    np.copyto(U[k, i], Pi)
            else:
                u = U[k, i]
                np.multiply(sq, Pi, out=sq)
                np.subtract(Pi, sq, out=u)               # U = σ' ⊙ P
                np.matmul(hKT[k], u, out=hG[i])          # h K̃ᵀ U
        out = P[k]
        if s == 1:
            np.add(lam, hG[0], out=out)
        else:
            np.copyto(out, lam)
            for i in range(s):
                np.multiply(hG[i], bw[i], out=tmp)
                np.add(out, tmp, out=out)
    # θ-contraction of all layers at once: gM_k = h Σ_i b_i U_{k,i} [a_{k,i}; 1]ᵀ
    gM = np.zeros((N, d, d + 1))
    for i in range(s):
        Ui = P[1:] if U is None else U[:, i]
        if kind == "outer":
            Ai = Sa[:, i]
        else:
            Ai = Xa[:N] if i == 0 else Ya[:, i - 1]
        gM += (h * bw[i]) * np.matmul(Ui, np.swapaxes(Ai, 1, 2))
    gK, gb = _theta_grads(model, gM)
    return P, gK, gb
