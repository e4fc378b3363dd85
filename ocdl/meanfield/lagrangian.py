r"""Lagrangian density method: class densities as Gaussian blobs carried by the flow (characteristics).

Why (docs/meanfield.md, "density method"): a trained ResNet flow stretches and folds the class
densities into filaments far thinner than any affordable Eulerian cell, and a grid's numerical
diffusion erases them. Carried along the characteristics ``ẋ = f(x, θ)`` a density needs no grid:
mass stays with the moving point and the log-density follows ``d log ρ/dt = −div f``. Diffusion
is added by operator splitting *in law*: each point carries a Gaussian blob ``N(m_j, S_j)``, the
heat step of duration ``dt`` convolves it with ``N(0, ν² dt I)`` — exactly ``S ← S + ν² dt I``
— and the transport step moves the blob with the flow linearised at its centre.

Density: ``ρ_c(x, t) = Σ_{j ∈ c} a_j N(x; m_j(t), S_j(t))``, one blob per training point
(``m_j(0) = x_j``, ``S_j(0) = σ₀² I``: the data smoothed by ``σ₀``, default 0 = the empirical
measure), weights ``a_j = 1/n`` (so ``Σ_c w_c E_{ρ_c}`` with ``w_c = n_c/n``, as the particle method).

Scheme, per Euler step ``n`` of layer ``k`` (``dt = h/s``, ``f = K σ(x) + b``; σ any activation
object of :mod:`ocdl.models.activations`, default tanh), with the Gaussian expectations
``T_b = E σ(X_b)``, ``D_b = E σ'(X_b)`` under ``X ~ N(m, S)`` (8-point Gauss–Hermite on each
marginal ``N(m_b, S_bb)``; σ and its first three derivatives from the activation's ``derivatives``):

    m^{n+1} = m^n + dt (K_k T^n + b_k)                     (= E[X + dt f(X)], exact mean),
    A^n     = I + dt K_k diag(D^n)                         (= E[∂(x + dt f)/∂x]),
    S^{n+1} = A^n S^n (A^n)ᵀ + ν² dt I.

By Stein's lemma ``Cov(X, f(X)) = S E[∂f/∂x]ᵀ``, so this is the exact mean and the exact
``O(dt)`` covariance of one Euler–Maruyama step from a Gaussian (the Gaussian closure, or
statistical linearisation); the diffusion enters exactly, as the convolution of the blob with the
heat kernel ``N(0, ν² dt I)``. What is approximated is the blob's non-Gaussianity (and the
``O(dt²)`` covariance of the nonlinear part); the grid method's error is ``O(h |f|)`` however thin
the density is. With ``ν = σ₀ = 0`` the blobs are points and the method is deterministic PMP
exactly. For ``ν = 0`` and narrow blobs ``log det S`` grows by ``2 log det A = 2 dt div f + O(dt²)``:
the peak density of a blob falls as ``d log ρ/dt = −div f``.

Cost (head ``s = W x + μ``, ``Φ(s, c) = log(1 + e^{−(2c−1)s})``): under a blob ``s`` is
``N(s̄_j, v_j)``, ``s̄_j = W m_j + μ``, ``v_j = W S_j Wᵀ``, and ``E Φ`` is Gauss–Hermite with
``Q`` nodes ``ζ_q``, weights ``ω_q`` (``Σ ω_q = 1``):

    J = Σ_j a_j Σ_q ω_q Φ(s̄_j + √v_j ζ_q, c_j) + h Σ_k (α/2)(‖K_k‖² + |b_k|²) + (α_head/2)‖W‖².

Exact discrete adjoint (reverse sweep of the scheme; ``λ = ∂J/∂m``, ``Λ = ∂J/∂S``, symmetric;
``T_m, T_S, D_m, D_S`` the derivatives of the quadratures in ``m_b`` and ``S_bb``):

    λ^N = g_s W,   Λ^N = g_v WᵀW,   g_s = a Σ ω Φ',   g_v = a Σ ω Φ' ζ / (2√v),
    G^n = 2 Λ^{n+1} A^n S^n  (∂J/∂A^n),   g_T = dt K_kᵀ λ^{n+1},   g_D,b = dt Σ_a G^n_{ab} K_{k,ab},
    λ^n = λ^{n+1} + g_T ⊙ T_m + g_D ⊙ D_m,
    Λ^n = (A^n)ᵀ Λ^{n+1} A^n + diag(g_T ⊙ T_S + g_D ⊙ D_S),
    ∂J/∂K_k += dt Σ_j [λ^{n+1} (T^n)ᵀ + G^n ⊙ (1 (D^n)ᵀ)],   ∂J/∂b_k += dt Σ_j λ^{n+1},
    ∂J/∂W = Σ_j g_s m_j^N + 2 g_v S_j^N Wᵀ,   ∂J/∂μ = Σ_j g_s.
"""
import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import expit, log_expit

from ocdl.meanfield.grid import make_grid
from ocdl.models.activations import get_activation


def _nodes(Q):
    z, w = hermegauss(Q)
    return z, w / w.sum()


CLOSURE_NODES = 8


def _closure(m, S, act, with_derivatives=False):
    """Gaussian expectations ``T_b = E σ(X_b)``, ``D_b = E σ'(X_b)`` under ``X ~ N(m, S)``
    (``CLOSURE_NODES``-point Gauss–Hermite on each marginal ``N(m_b, S_bb)``) and, if asked, their
    derivatives in ``m_b`` and ``S_bb`` (of the quadrature itself; at ``S_bb = 0`` its limit ½g'')."""
    z, w = _nodes(CLOSURE_NODES)
    v = np.maximum(np.einsum("jbb->jb", S), 0.0)
    sd = np.sqrt(v)
    x = m[..., None] + sd[..., None] * z
    th, s2, d1, d2 = act.derivatives(x)                        # σ and its derivatives 1-3 at the nodes
    Tm, D = th @ w, s2 @ w
    if not with_derivatives:
        return Tm, D
    tiny = sd < 1e-150
    safe = np.where(tiny, 1.0, sd)

    def dS(g1, g2):                                            # ∂/∂S_bb of Σ ω g(m + √S ζ)
        return np.where(tiny, 0.5 * (g2 @ (w * z * z)), (g1 @ (w * z)) / (2.0 * safe))
    return Tm, D, s2 @ w, dS(s2, d1), d1 @ w, dS(d1, d2)


def blob_forward(params, X, nu, T, substeps=1, sigma0=0.0, activation="tanh"):
    """Blob centres ``m`` and covariances ``S`` at every step: lists of ``(n, d)`` and ``(n, d, d)``."""
    act = get_activation(activation)
    K, b = np.asarray(params["K"], dtype=float), np.asarray(params["b"], dtype=float)
    layers, d = b.shape
    dt = T / layers / substeps
    m = np.array(X, dtype=float)
    S = np.broadcast_to(sigma0 ** 2 * np.eye(d), (m.shape[0], d, d)).copy()
    ms, Ss = [m], [S]
    eye = np.eye(d)
    for n in range(layers * substeps):
        k = n // substeps
        Tm, D = _closure(m, S, act)
        A = eye + dt * K[k][None, :, :] * D[:, None, :]
        m = m + dt * (Tm @ K[k].T + b[k])
        S = A @ S @ A.transpose(0, 2, 1) + (nu ** 2 * dt) * eye
        ms.append(m)
        Ss.append(S)
    return ms, Ss


def blob_value_and_grad(params, X, y, nu, T, alpha=0.0, alpha_head=0.0, substeps=1, sigma0=0.0, quad=24,
                        activation="tanh"):
    """The Lagrangian density cost ``J`` and its exact discrete gradient (module docstring):
    ``(J, grads dict)`` with the keys of :func:`ocdl.meanfield.training.init_params`; ``activation``
    a name or an activation object (σ of ``f = K σ(x) + b``)."""
    act = get_activation(activation)
    K, b = np.asarray(params["K"], dtype=float), np.asarray(params["b"], dtype=float)
    W, mu = np.ravel(params["W"]).astype(float), float(np.ravel(params["mu"])[0])
    layers, d = b.shape
    h = T / layers
    dt = h / substeps
    X = np.asarray(X, dtype=float)
    a = 1.0 / X.shape[0]
    sg = (2.0 * np.asarray(y, dtype=float) - 1.0)[:, None]
    ms, Ss = blob_forward(params, X, nu, T, substeps, sigma0, act)
    m, S = ms[-1], Ss[-1]
    z, w = _nodes(quad)
    sbar = m @ W + mu
    v = np.einsum("a,jab,b->j", W, S, W)
    sd = np.sqrt(np.maximum(v, 0.0))
    s = sbar[:, None] + sd[:, None] * z[None, :]
    J = a * np.sum(-log_expit(sg * s) @ w)
    dphi = -sg * expit(-sg * s)                                # ∂Φ/∂s at every node
    gs = a * (dphi @ w)
    tiny = sd < 1e-150                                         # point blob: ∂E Φ/∂v = Φ''(s̄)/2
    gv = np.where(tiny, 0.5 * a * expit(sbar) * expit(-sbar),
                  a * (dphi @ (w * z)) / (2.0 * np.where(tiny, 1.0, sd)))
    gW = gs @ m + 2.0 * np.einsum("j,jab,b->a", gv, S, W) + alpha_head * W
    gmu = np.sum(gs)
    lam = gs[:, None] * W[None, :]
    Lam = gv[:, None, None] * np.outer(W, W)[None]
    gK, gb = np.zeros_like(K), np.zeros_like(b)
    eye = np.eye(d)
    for n in range(layers * substeps - 1, -1, -1):
        k = n // substeps
        m, S = ms[n], Ss[n]
        Tm, D, Tm_m, Tm_S, D_m, D_S = _closure(m, S, act, with_derivatives=True)
        A = eye + dt * K[k][None, :, :] * D[:, None, :]
        G = 2.0 * Lam @ A @ S
        gK[k] += dt * (lam.T @ Tm + np.einsum("jab,jb->ab", G, D))
        gb[k] += dt * lam.sum(0)
        gT = dt * (lam @ K[k])                                 # ∂J/∂T_b
        gD = dt * np.einsum("jab,ab->jb", G, K[k])             # ∂J/∂D_b
        lam = lam + gT * Tm_m + gD * D_m
        Lam = A.transpose(0, 2, 1) @ Lam @ A
        Lam[:, np.arange(d), np.arange(d)] += gT * Tm_S + gD * D_S
    J += h * 0.5 * alpha * (np.sum(K ** 2) + np.sum(b ** 2)) + 0.5 * alpha_head * np.sum(W ** 2)
    gK += h * alpha * K
    gb += h * alpha * b
    return float(J), {"K": gK, "b": gb, "W": gW[None, :], "mu": np.array([gmu])}


def blob_density_path(params, X, y, nu, T, substeps=1, sigma0=0.0, cells=160, pad=0.1, activation="tanh"):
    """Class densities of the blobs on a ``cells²`` picture grid at every layer boundary:
    ``(grid, [ (ncells, 2) per layer ])`` (the frame holds 99 % of the centres of all layers)."""
    ms, Ss = blob_forward(params, X, nu, T, substeps, sigma0, activation)
    ms, Ss = ms[::substeps], Ss[::substeps]
    allm = np.concatenate(ms)
    lo, hi = np.percentile(allm, 0.5, axis=0), np.percentile(allm, 99.5, axis=0)
    p = pad * (hi - lo).max()
    grid = make_grid(lo - p, hi + p, [cells, cells])
    floor = (0.5 * grid.h.max()) ** 2 * np.eye(2)             # draw sub-cell blobs one cell wide
    y = np.asarray(y)
    path = []
    for m, S in zip(ms, Ss):
        S = S + floor
        det = S[:, 0, 0] * S[:, 1, 1] - S[:, 0, 1] ** 2
        inv = np.stack([S[:, 1, 1], -S[:, 0, 1], S[:, 0, 0]], 1) / det[:, None]
        rho = np.zeros((grid.ncells, 2))
        for c in (0, 1):
            sel = y == c
            dx = grid.centres[None, :, :] - m[sel][:, None, :]
            q = inv[sel, 0, None] * dx[..., 0] ** 2 + 2 * inv[sel, 1, None] * dx[..., 0] * dx[..., 1] \
                + inv[sel, 2, None] * dx[..., 1] ** 2
            rho[:, c] = (np.exp(-0.5 * q) / (2 * np.pi * np.sqrt(det[sel]))[:, None]).sum(0) / len(y)
        path.append(rho)
    return grid, path
