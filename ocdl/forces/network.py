"""The EOM network: the equation of motion discretised by a one-step method, one layer per step.

State ``y`` has shape ``(n, d)`` (``n`` samples, vectorised); ``N`` steps of size ``h = T/N``.
Fields (``θ`` = the force table, or ``(γ, ω0)``):

* :class:`DragField`        ``d = 1``: ``v̇ = g − F(v)``
* :class:`PositionField`    ``d = 2``: ``ẋ = v``, ``v̇ = F(x)``  (Hamiltonian with ``F = −V'``)
* :class:`OscillatorField`  ``d = 2``: ``ẋ = v``, ``v̇ = −2γ v − ω0² x``

Each field gives ``f(y, θ)`` and the two vector–Jacobian products the costate needs,
``(∂f/∂y)ᵀ λ`` and ``Σ_samples (∂f/∂θ)ᵀ λ``.

Integrators: ``euler``, ``heun``, ``rk4`` (explicit tableaux from ``integrators.tableaux``),
``verlet`` (Störmer–Verlet, kick–drift–kick; needs ``ẋ = v, v̇ = a(x)``) and ``gauss2``
(2-stage Gauss–Legendre, implicit, symplectic; for ``ẋ = v, v̇ = a(x)``).

:func:`propagate` runs the network in torch (differentiable: autograd is the ``adam`` baseline);
:func:`costate_gradient` is the discrete adjoint (backward costate sweep)

    λ_N = ∂Φ/∂y_N,   λ_k = (∂y_{k+1}/∂y_k)ᵀ λ_{k+1},   ∂J/∂θ = Σ_k (∂y_{k+1}/∂θ)ᵀ λ_{k+1}

written stage by stage for each method, so it is the exact gradient of the discrete cost
(the time-invariant control's gradient is the sum over all layers).
"""
import contextlib

import numpy as np
import torch

from integrators.tableaux import EXPLICIT, GAUSS
from ocdl.errors import InputError, SolverError

EXPLICIT_METHODS = ("euler", "heun", "rk4")
SEPARABLE_METHODS = ("verlet", "gauss2")


class DragField:
    """``v̇ = g − F(v)`` with ``F`` a :class:`~ocdl.forces.table.ForceGrid` table."""
    dim = 1
    separable = False

    def __init__(self, grid, g):
        self.grid, self.g = grid, float(g)

    def f(self, y, theta):
        return self.g - self.grid.value(theta, y)

    def vjp_state(self, y, theta, lam):
        return -self.grid.slope(theta, y) * lam

    def vjp_param(self, y, theta, lam, out):
        return self.grid.scatter(y, -lam, out)


class PositionField:
    """``ẋ = v``, ``v̇ = a(x) = F(x)``; the state is ``(x, v)``."""
    dim = 2
    separable = True

    def __init__(self, grid):
        self.grid = grid

    def accel(self, x, theta):
        return self.grid.value(theta, x)

    def accel_slope(self, x, theta):
        return self.grid.slope(theta, x)

    def accel_vjp_param(self, x, theta, lam, out):
        return self.grid.scatter(x, lam, out)

    def f(self, y, theta):
        return torch.stack([y[:, 1], self.accel(y[:, 0], theta)], dim=1)

    def vjp_state(self, y, theta, lam):
        return torch.stack([self.accel_slope(y[:, 0], theta) * lam[:, 1], lam[:, 0]], dim=1)

    def vjp_param(self, y, theta, lam, out):
        return self.accel_vjp_param(y[:, 0], theta, lam[:, 1], out)


class OscillatorField:
    """``ẋ = v``, ``v̇ = −2γ v − ω0² x``; ``θ = (γ, ω0)``."""
    dim = 2
    separable = False

    def f(self, y, theta):
        gamma, omega0 = theta[0], theta[1]
        return torch.stack([y[:, 1], -2 * gamma * y[:, 1] - omega0 ** 2 * y[:, 0]], dim=1)

    def vjp_state(self, y, theta, lam):
        gamma, omega0 = theta[0], theta[1]
        return torch.stack([-omega0 ** 2 * lam[:, 1], lam[:, 0] - 2 * gamma * lam[:, 1]], dim=1)

    def vjp_param(self, y, theta, lam, out):
        out[0] += (-2 * y[:, 1] * lam[:, 1]).sum()
        out[1] += (-2 * theta[1] * y[:, 0] * lam[:, 1]).sum()
        return out


def check_method(field, method):
    valid = EXPLICIT_METHODS + (SEPARABLE_METHODS if field.separable else ())
    if method not in valid:
        raise InputError(f"integrator '{method}' is not available for this problem "
                         f"(valid: {', '.join(valid)})")
    return method


# ----------------------------------------------------------------------------------------------
# one step of each method (torch, differentiable)
def rk_step(f, y, h, method):
    """One explicit Runge–Kutta step ``y + h Σ_i b_i f(Y_i)``, ``Y_i = y + h Σ_j a_ij f(Y_j)``.

    Pure arithmetic on ``y``: serves torch tensors (differentiable) and CasADi expressions alike.
    """
    A, b, _ = EXPLICIT[method]
    K = []
    for i in range(len(b)):
        Y = y
        for j in range(i):
            if A[i, j] != 0:
                Y = Y + (h * A[i, j]) * K[j]
        K.append(f(Y))
    out = y
    for i in range(len(b)):
        out = out + (h * b[i]) * K[i]
    return out


def _verlet_step(field, theta, y, h):
    x, v = y[:, 0], y[:, 1]
    v_half = v + 0.5 * h * field.accel(x, theta)
    x_new = x + h * v_half
    v_new = v_half + 0.5 * h * field.accel(x_new, theta)
    return torch.stack([x_new, v_new], dim=1)


_A2, _B2, _C2 = (np.asarray(a) for a in GAUSS["gauss2"])
_A2SQ = _A2 @ _A2
_BTA = _B2 @ _A2


def _gauss2_stages(field, theta, x, v, h, tol=1e-14, maxiter=60):
    """Solve ``K_i = a(x + h c_i v + h² (A² K)_i)`` (i = 1, 2) by Newton, vectorised; returns K, X."""
    with torch.no_grad():
        th = theta.detach()
        K = torch.stack([field.accel(x + h * _C2[i] * v, th) for i in range(2)], dim=1)
        for _ in range(maxiter):
            K, G = _gauss2_newton(field, th, x, v, h, K)
            if float(G.abs().max()) <= tol * (1 + float(K.abs().max())):
                break
        else:
            if not torch.isfinite(G).all() or float(G.abs().max()) > 1e-8 * (1 + float(K.abs().max())):
                raise SolverError("gauss2 stage equations did not converge (Newton); "
                                  "use more --steps or the verlet integrator")
    return K


def _gauss2_newton(field, theta, x, v, h, K, jacobian_grad=True):
    """One Newton step on the gauss2 stage equations ``G(K) = K − a(x + c_i h v + h² Σ_j (A²)_ij K_j) = 0``
    (the 2×2 Jacobian per sample solved in closed form); returns ``(K_new, G(K))``.
    ``jacobian_grad=False`` keeps the Jacobian out of autograd (the differentiable polish step)."""
    X = torch.stack([x + h * _C2[i] * v + h * h * (_A2SQ[i, 0] * K[:, 0] + _A2SQ[i, 1] * K[:, 1])
                     for i in range(2)], dim=1)
    G = K - torch.stack([field.accel(X[:, i], theta) for i in range(2)], dim=1)
    with contextlib.nullcontext() if jacobian_grad else torch.no_grad():
        s = torch.stack([field.accel_slope(X[:, i], theta) for i in range(2)], dim=1)
        M00 = 1 - h * h * s[:, 0] * _A2SQ[0, 0]
        M01 = -h * h * s[:, 0] * _A2SQ[0, 1]
        M10 = -h * h * s[:, 1] * _A2SQ[1, 0]
        M11 = 1 - h * h * s[:, 1] * _A2SQ[1, 1]
        det = M00 * M11 - M01 * M10
    d0 = (M11 * G[:, 0] - M01 * G[:, 1]) / det
    d1 = (-M10 * G[:, 0] + M00 * G[:, 1]) / det
    return K - torch.stack([d0, d1], dim=1), G


def _gauss2_step(field, theta, y, h):
    x, v = y[:, 0], y[:, 1]
    K = _gauss2_stages(field, theta, x, v, h)
    if theta.requires_grad or x.requires_grad:
        # one Newton step from the converged stages, differentiable: at the solution its
        # derivative is exactly the implicit-function derivative of the stages.
        K, _ = _gauss2_newton(field, theta, x, v, h, K, jacobian_grad=False)
    x_new = x + h * v + h * h * (_BTA[0] * K[:, 0] + _BTA[1] * K[:, 1])
    v_new = v + h * (_B2[0] * K[:, 0] + _B2[1] * K[:, 1])
    return torch.stack([x_new, v_new], dim=1)


def step(field, theta, y, h, method):
    """One layer ``y_{k+1} = Ψ_h(y_k; θ)``."""
    if method in EXPLICIT_METHODS:
        return rk_step(lambda Y: field.f(Y, theta), y, h, method)
    if method == "verlet":
        return _verlet_step(field, theta, y, h)
    if method == "gauss2":
        return _gauss2_step(field, theta, y, h)
    raise InputError(f"unknown integrator '{method}'")


def propagate(field, theta, y0, T, steps, method, keep=False):
    """Run the network: ``N = steps`` layers of size ``h = T/N`` from ``y0``; return ``y_N``
    (and the list of all states when ``keep``)."""
    h = T / steps
    y = y0
    states = [y0] if keep else None
    for _ in range(steps):
        y = step(field, theta, y, h, method)
        if keep:
            states.append(y)
    return (y, states) if keep else y


# ----------------------------------------------------------------------------------------------
# the discrete costate sweep
def _rk_adjoint(field, theta, y, lam, h, method, grad):
    A, b, _ = EXPLICIT[method]
    s = len(b)
    Ys, K = [], []
    for i in range(s):
        Y = y
        for j in range(i):
            if A[i, j] != 0:
                Y = Y + (h * A[i, j]) * K[j]
        Ys.append(Y)
        K.append(field.f(Y, theta))
    Ybar = [None] * s
    lam_prev = lam.clone()
    for i in reversed(range(s)):
        Kbar = (h * b[i]) * lam
        for l in range(i + 1, s):
            if A[l, i] != 0:
                Kbar = Kbar + (h * A[l, i]) * Ybar[l]
        Ybar[i] = field.vjp_state(Ys[i], theta, Kbar)
        field.vjp_param(Ys[i], theta, Kbar, grad)
        lam_prev = lam_prev + Ybar[i]
    return lam_prev


def _verlet_adjoint(field, theta, y, lam, h, grad):
    x, v = y[:, 0], y[:, 1]
    v_half = v + 0.5 * h * field.accel(x, theta)
    x_new = x + h * v_half
    lx, lv = lam[:, 0], lam[:, 1]
    # v_new = v_half + h/2 a(x_new)
    lvh = lv.clone()
    lxn = lx + 0.5 * h * field.accel_slope(x_new, theta) * lv
    field.accel_vjp_param(x_new, theta, 0.5 * h * lv, grad)
    # x_new = x + h v_half
    lvh = lvh + h * lxn
    # v_half = v + h/2 a(x)
    lx0 = lxn + 0.5 * h * field.accel_slope(x, theta) * lvh
    field.accel_vjp_param(x, theta, 0.5 * h * lvh, grad)
    return torch.stack([lx0, lvh], dim=1)


def _gauss2_adjoint(field, theta, y, lam, h, grad):
    x, v = y[:, 0], y[:, 1]
    K = _gauss2_stages(field, theta, x, v, h)
    X = [x + h * _C2[i] * v + h * h * (_A2SQ[i, 0] * K[:, 0] + _A2SQ[i, 1] * K[:, 1]) for i in range(2)]
    s = [field.accel_slope(X[i], theta) for i in range(2)]
    lx, lv = lam[:, 0], lam[:, 1]
    Kbar = [h * h * _BTA[i] * lx + h * _B2[i] * lv for i in range(2)]
    # M = I − h² diag(s) A²;  solve Mᵀ μ = K̄
    M00 = 1 - h * h * s[0] * _A2SQ[0, 0]
    M01 = -h * h * s[0] * _A2SQ[0, 1]
    M10 = -h * h * s[1] * _A2SQ[1, 0]
    M11 = 1 - h * h * s[1] * _A2SQ[1, 1]
    det = M00 * M11 - M01 * M10
    mu0 = (M11 * Kbar[0] - M10 * Kbar[1]) / det
    mu1 = (-M01 * Kbar[0] + M00 * Kbar[1]) / det
    mu = (mu0, mu1)
    lx0 = lx + mu[0] * s[0] + mu[1] * s[1]
    lv0 = lv + h * lx + h * (_C2[0] * mu[0] * s[0] + _C2[1] * mu[1] * s[1])
    for i in range(2):
        field.accel_vjp_param(X[i], theta, mu[i], grad)
    return torch.stack([lx0, lv0], dim=1)


def costate_gradient(field, theta, y0, T, steps, method, terminal):
    """Cost ``Φ(y_N)`` and its exact gradient in ``θ`` by the backward costate sweep.

    ``terminal(yN) → (Φ, ∂Φ/∂y_N)`` (plain tensors). Returns ``(Φ, ∂Φ/∂θ, y_N)``; no autograd
    tape is built.
    """
    h = T / steps
    with torch.no_grad():
        theta = theta.detach()
        y, states = propagate(field, theta, y0, T, steps, method, keep=True)
        phi, lam = terminal(y)
        grad = torch.zeros_like(theta)
        for k in reversed(range(steps)):
            yk = states[k]
            if method in EXPLICIT_METHODS:
                lam = _rk_adjoint(field, theta, yk, lam, h, method, grad)
            elif method == "verlet":
                lam = _verlet_adjoint(field, theta, yk, lam, h, grad)
            else:
                lam = _gauss2_adjoint(field, theta, yk, lam, h, grad)
    return phi, grad, y
