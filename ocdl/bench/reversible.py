"""Constant-memory exact gradient of the reversible network: ``hamiltonian`` field + Verlet.

Forward (layer k, θ_k = (K_k, b_k), rows = samples, F_q(p) = σ(p Kᵀ + b), F_p(q) = −σ(q K + b)),
Störmer–Verlet in position form, as ``integrators``' ``verlet`` and ``ocdl.models``:

    a       = q_k + (h/2) F_q(p_k)          (half drift)
    p_{k+1} = p_k + h F_p(a)                (kick)
    q_{k+1} = a   + (h/2) F_q(p_{k+1})      (half drift)

Only the final state is kept. The backward sweep runs the same three sub-steps in reverse,
``a = q_{k+1} − (h/2) F_q(p_{k+1})``, ``p_k = p_{k+1} − h F_p(a)``, ``q_k = a − (h/2) F_q(p_k)``
(Verlet is exactly invertible, up to round-off), and alongside it the discrete costate of each
sub-step (reverse-mode by hand, no tape), with ``λ = ∂J/∂(q, p)``:

    λ_p ← λ_p + (h/2) (∂F_q/∂p(p_{k+1}))ᵀ λ_q ;   g_θ += (h/2) (∂F_q/∂θ(p_{k+1}))ᵀ λ_q ;  λ_a = λ_q
    λ_a ← λ_a + h (∂F_p/∂q(a))ᵀ λ_p           ;   g_θ += h (∂F_p/∂θ(a))ᵀ λ_p
    λ_p ← λ_p + (h/2) (∂F_q/∂p(p_k))ᵀ λ_a     ;   g_θ += (h/2) (∂F_q/∂θ(p_k))ᵀ λ_a ;  λ_q = λ_a

starting from ``λ_N = (1/n) ∇_x Φ``; then ``∂J/∂θ_k = g_θ + h α θ_k``. This is the exact
gradient of the discrete cost (it is the chain rule of the discrete map), computed in
O(n d) working memory independent of depth N (the gradient array itself is O(N m²)).
Round-off in the reconstructed states grows with N; :func:`value_and_grad` reports it as
``reconstruction_error = max|x_0(reconstructed) − x_0| / max|x_0|``.

Not a sweep of ``ocdl.pmp.dispatch``: it reconstructs the states backwards (Verlet inverted)
instead of storing them — a different recursion, kept as the ``costate-reversible`` benchmark
method (the stored-state Verlet sweep is ``ocdl.pmp``'s ``split`` family).
"""
import numpy as np


def _softplus(z):
    return np.logaddexp(0.0, z)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def forward(x0, K, b, h):
    """x_N of the Verlet network, keeping only the current state (O(1) memory in depth)."""
    m = K.shape[1]
    q, p = x0[:, :m].copy(), x0[:, m:].copy()
    for k in range(K.shape[0]):
        Kk, bk = K[k], b[k]
        q += 0.5 * h * np.tanh(p @ Kk.T + bk)
        p -= h * np.tanh(q @ Kk + bk)
        q += 0.5 * h * np.tanh(p @ Kk.T + bk)
    return np.concatenate([q, p], axis=1)


def cost(x0, y, params, h, alpha):
    """The discrete cost J (two classes, logistic loss, β = 0) by the reversible forward sweep."""
    K, b, W, mu = (params[k] for k in ("K", "b", "W", "mu"))
    s = (forward(x0, K, b, h) @ W.T + mu)[:, 0]
    sign = 2.0 * np.asarray(y, dtype=np.float64) - 1.0
    return (np.mean(_softplus(-sign * s)) + 0.5 * alpha * np.sum(W * W)
            + h * 0.5 * alpha * (np.sum(K * K) + np.sum(b * b)))


def value_and_grad(x0, y, params, h, alpha):
    """``(J, grads, info)``: cost, exact gradient (keys K, b, W, mu) and
    ``info = {"reconstruction_error": ...}``; memory independent of the depth."""
    K, b, W, mu = (params[k] for k in ("K", "b", "W", "mu"))
    n, m = x0.shape[0], K.shape[1]
    xN = forward(x0, K, b, h)
    s = (xN @ W.T + mu)[:, 0]
    sign = 2.0 * np.asarray(y, dtype=np.float64) - 1.0
    J = (np.mean(_softplus(-sign * s)) + 0.5 * alpha * np.sum(W * W)
         + h * 0.5 * alpha * (np.sum(K * K) + np.sum(b * b)))
    ds = -sign * _sigmoid(-sign * s) / n            # ∂J/∂s_i
    gW = ds[None, :] @ xN + alpha * W
    gmu = np.array([ds.sum()])
    lam = ds[:, None] * W                           # (1/n) ∇_x Φ, shape (n, d)
    lq, lp = lam[:, :m].copy(), lam[:, m:].copy()
    q, p = xN[:, :m].copy(), xN[:, m:].copy()
    gK, gb = np.empty_like(K), np.empty_like(b)
    hh = 0.5 * h
    for k in range(K.shape[0] - 1, -1, -1):
        Kk, bk = K[k], b[k]
        # last half drift: q' = a + (h/2) F_q(p'),  F_q(p) = tanh(p Kᵀ + b)
        s3 = np.tanh(p @ Kk.T + bk)
        a = q - hh * s3
        v = (1.0 - s3 * s3) * lq                    # (∂F_q/∂z)ᵀ λ_q
        gKk = hh * (v.T @ p)
        gbk = hh * v.sum(axis=0)
        lp += hh * (v @ Kk)
        la = lq
        # kick: p' = p + h F_p(a),  F_p(a) = −tanh(a K + b)
        s2 = np.tanh(a @ Kk + bk)
        p = p + h * s2
        u = -(1.0 - s2 * s2) * lp
        gKk += h * (a.T @ u)
        gbk += h * u.sum(axis=0)
        la = la + h * (u @ Kk.T)
        # first half drift: a = q + (h/2) F_q(p)
        s1 = np.tanh(p @ Kk.T + bk)
        q = a - hh * s1
        v = (1.0 - s1 * s1) * la
        gKk += hh * (v.T @ p)
        gbk += hh * v.sum(axis=0)
        lp += hh * (v @ Kk)
        lq = la
        gK[k] = gKk + h * alpha * Kk
        gb[k] = gbk + h * alpha * bk
    x0_rec = np.concatenate([q, p], axis=1)
    scale = max(np.max(np.abs(x0)), np.finfo(float).tiny)
    info = {"reconstruction_error": float(np.max(np.abs(x0_rec - x0)) / scale)}
    return float(J), {"K": gK, "b": gb, "W": gW, "mu": gmu}, info
