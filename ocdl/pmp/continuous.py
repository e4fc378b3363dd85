"""Optimise-then-discretise: the gradient from the *continuous* adjoint equations.

With θ(t) = θ_k on layer k (t ∈ [t_k, t_k + h]), the continuous cost has the gradient

    ∂J/∂θ_k = ∫_{t_k}^{t_k+h} Σ_i (∂f/∂θ(x_i(t)))ᵀ p_i(t) dt + ∇_θ_k [regulariser],
    ẋ = f(x, θ),  x(0) = lift(y);   ṗ = −(∂f/∂x)ᵀ p,  p(T) = (1/n) ∇_x Φ(W x(T) + μ).

It is computed here by an *independent* method, not by the network's integrator: classical RK4
on a fine grid (``substeps`` steps of size δ = h/substeps per layer; the state is integrated
with step δ/2 so the costate's RK4 stages find it at the half points), and composite Simpson
quadrature of the stationarity integrand on the δ grid. Its error is O(δ⁴), negligible, so the
difference to the exact discrete gradient shows the O(h^q) error of the network's integrator q.

Not a discrete sweep (nothing in :mod:`ocdl.pmp.dispatch`): a different recursion, the
continuous adjoint ODE integrated on a fine grid, kept as the reference for the O(h^q) gap.
"""
import numpy as np

from integrators.layers import rk_layer
from ocdl.models.losses import mean_loss, mean_loss_grad
from ocdl.models.regularisers import regulariser, regulariser_grad


def continuous_value_and_grad(model, params, X, y, substeps=16):
    """``(J_continuous, grads)``: the continuous-adjoint gradient (see module docstring)."""
    if substeps % 2:
        substeps += 1
    params = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    F, h = model.F, model.h
    M = substeps
    dt = h / M
    x = model.lift(np.asarray(X, dtype=float))
    traj = []                           # per layer: states at 2M+1 points spaced dt/2
    for k in range(model.layers):
        K, b = params["K"][k], params["b"][k]
        f = lambda z: F.f(z, K, b)          # noqa: E731
        pts = [x]
        for _ in range(2 * M):
            x = rk_layer("rk4", f, x, 0.5 * dt)
            pts.append(x)
        traj.append(pts)
    s = model.head(params, x)
    g = mean_loss_grad(s, y)
    lam = g @ params["W"]
    gK = np.zeros_like(params["K"])
    gb = np.zeros_like(params["b"])
    simpson = np.ones(M + 1)
    simpson[1:-1:2], simpson[2:-1:2] = 4.0, 2.0
    simpson *= dt / 3.0
    for k in reversed(range(model.layers)):
        K, b = params["K"][k], params["b"][k]
        pts = traj[k]
        lams = [None] * (M + 1)
        lams[M] = lam
        for j in range(M, 0, -1):        # backwards from t = (j) dt to (j−1) dt; ṗ = −Jᵀp
            xa, xm, xb = pts[2 * j], pts[2 * j - 1], pts[2 * j - 2]
            k1 = F.vjp_x(xa, K, b, lam)
            k2 = F.vjp_x(xm, K, b, lam + 0.5 * dt * k1)
            k3 = F.vjp_x(xm, K, b, lam + 0.5 * dt * k2)
            k4 = F.vjp_x(xb, K, b, lam + dt * k3)
            lam = lam + (dt / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
            lams[j - 1] = lam
        for j in range(M + 1):
            tK, tb = F.vjp_theta(pts[2 * j], K, b, lams[j])
            gK[k] += simpson[j] * tK
            gb[k] += simpson[j] * tb
    rg = regulariser_grad(params, h, model.alpha, model.beta, model.alpha_head)
    grads = {"K": gK + rg["K"], "b": gb + rg["b"], "W": g.T @ x + rg["W"], "mu": g.sum(axis=0)}
    J = mean_loss(s, y) + regulariser(params, h, model.alpha, model.beta, model.alpha_head)
    return float(J), grads
