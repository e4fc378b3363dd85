"""The generic discrete adjoint ``integrators.costate_sweep`` that the force network uses.

References are independent of the sweep: torch autograd through the torch forward
(``integrators.solve`` on tensors) and central finite differences of the numpy forward.
"""
import numpy as np
import pytest
import torch

import integrators
from integrators.adjoint import shears


class Pendulum:
    """Separable ``q̇ = p/m``, ``ṗ = −k sin(q) − c q³``; ``θ = (1/m, k, c)``; numpy or torch."""

    def _sin(self, q):
        return torch.sin(q) if isinstance(q, torch.Tensor) else np.sin(q)

    def _cos(self, q):
        return torch.cos(q) if isinstance(q, torch.Tensor) else np.cos(q)

    def _cat(self, a, b):
        return torch.cat([a, b], -1) if isinstance(a, torch.Tensor) else np.concatenate([a, b], -1)

    def f(self, y, th):
        q, p = y[..., :2], y[..., 2:]
        return self._cat(th[0] * p, -th[1] * self._sin(q) - th[2] * q ** 3)

    def vjp_y(self, y, th, lam):
        q = y[..., :2]
        lq, lp = lam[..., :2], lam[..., 2:]
        return self._cat((-th[1] * self._cos(q) - 3 * th[2] * q ** 2) * lp, th[0] * lq)

    def vjp_theta(self, y, th, lam):
        q, p = y[..., :2], y[..., 2:]
        lq, lp = lam[..., :2], lam[..., 2:]
        parts = [(p * lq).sum(), (-self._sin(q) * lp).sum(), (-q ** 3 * lp).sum()]
        return torch.stack(parts) if isinstance(y, torch.Tensor) else np.array(parts)


class Linear:
    """Non-separable ``ẏ = M(θ) y`` with ``M = [[θ0, 1], [−θ1, −θ0 θ2]]`` (numpy)."""

    def _M(self, th):
        return np.array([[th[0], 1.0], [-th[1], -th[0] * th[2]]])

    def f(self, y, th):
        return y @ self._M(th).T

    def vjp_y(self, y, th, lam):
        return lam @ self._M(th)

    def vjp_theta(self, y, th, lam):
        # ẏ0 = θ0 y0 + y1,  ẏ1 = −θ1 y0 − θ0 θ2 y1
        return np.array([(lam[..., 0] * y[..., 0] - th[2] * lam[..., 1] * y[..., 1]).sum(),
                         (-lam[..., 1] * y[..., 0]).sum(), (-th[0] * lam[..., 1] * y[..., 1]).sum()])


def _terminal(target):
    def terminal(yN):
        r = yN - target
        return float((r * r).sum()), 2 * r
    return terminal


RK = ["euler", "heun", "rk4", "implicit_midpoint", "gauss2", "gauss3"]
SPLIT = ["verlet", "symplectic_euler", "symplectic_euler_b", "yoshida4"]


@pytest.mark.parametrize("method", RK + SPLIT)
def test_costate_sweep_equals_finite_differences(method):
    rng = np.random.default_rng(1)
    field, sep = (Pendulum(), True) if method in SPLIT or method in ("rk4", "gauss2") else (Linear(), False)
    d = 4 if isinstance(field, Pendulum) else 2
    th = np.array([0.9, 1.3, 0.2])
    y0 = rng.normal(size=(3, d))
    target = rng.normal(size=(3, d))
    opts = {"separable": True} if sep else {}
    phi, g, lam0, _ = integrators.costate_sweep(method, field, th, y0, 0.0, 1.5, 12, _terminal(target), **opts)

    def J(th_, y0_):
        Y = integrators.solve(method, lambda t, y: field.f(y, th_), y0_, 0.0, 1.5, 12, **opts)
        return float(((Y[-1] - target) ** 2).sum())

    assert abs(phi - J(th, y0)) <= 1e-14 * phi
    eps = 1e-6
    fd = np.array([(J(th + eps * e, y0) - J(th - eps * e, y0)) / (2 * eps) for e in np.eye(3)])
    E = np.zeros_like(y0)
    E[1, 0] = eps
    fd_y = (J(th, y0 + E) - J(th, y0 - E)) / (2 * eps)
    # central differences: truncation ~ eps² |J'''| and round-off ~ 1e-16 |J| / eps ≈ 1e-9 relative
    assert np.abs(g - fd).max() <= 1e-7 * max(1.0, np.abs(fd).max()), (g, fd)
    assert abs(lam0[1, 0] - fd_y) <= 1e-7 * max(1.0, abs(fd_y))


@pytest.mark.parametrize("method", ["rk4", "gauss2", "verlet", "yoshida4"])
def test_costate_sweep_equals_autograd_through_the_torch_forward(method):
    torch.manual_seed(0)
    field = Pendulum()
    th = torch.tensor([0.8, 2.0, 0.1], dtype=torch.float64)
    y0 = torch.randn(50, 4, dtype=torch.float64)
    target = torch.randn(50, 4, dtype=torch.float64)
    with torch.no_grad():
        phi, g, lam0, _ = integrators.costate_sweep(
            method, field, th, y0, 0.0, 2.0, 30, lambda y: (((y - target) ** 2).sum(), 2 * (y - target)),
            separable=True)
    t_, y_ = th.clone().requires_grad_(True), y0.clone().requires_grad_(True)
    Y = integrators.solve(method, lambda t, y: field.f(y, t_), y_, 0.0, 2.0, 30, separable=True)
    loss = ((Y[-1] - target) ** 2).sum()
    ref_t, ref_y = torch.autograd.grad(loss, (t_, y_))
    # both are the exact derivative of the same discrete map: round-off only
    assert abs(float(phi) - float(loss.detach())) <= 1e-13 * float(loss.detach())
    assert float((g - ref_t).norm() / ref_t.norm()) <= 1e-11
    assert float((lam0 - ref_y).norm() / ref_y.norm()) <= 1e-11


def test_verlet_is_drift_kick_drift():
    # the shear sequence the adjoint transposes is the integrators' Verlet: half drift, kick, half drift
    assert shears("verlet") == (("q", 0.5), ("p", 1.0), ("q", 0.5))
    # and so is one step on q̇ = p, ṗ = −q: q1 = q + h p − h²q/2, p1 = p − h(q + h p/2)
    h, q, p = 0.3, 0.7, -0.4
    Y = integrators.solve("verlet", lambda t, y: np.array([y[1], -y[0]]), np.array([q, p]), 0.0, h, 1)
    qm = q + 0.5 * h * p
    assert np.allclose(Y[-1], [qm + 0.5 * h * (p - h * qm), p - h * qm], rtol=0, atol=1e-15)


def test_costate_sweep_refuses_what_it_cannot_do():
    f = Pendulum()
    th, y0 = np.ones(3), np.zeros((1, 4))
    with pytest.raises(ValueError, match="separable"):
        integrators.costate_sweep("verlet", f, th, y0, 0, 1, 2, _terminal(0 * y0))
    with pytest.raises(ValueError, match="no discrete adjoint"):
        integrators.costate_sweep("lobatto3ab", f, th, y0, 0, 1, 2, _terminal(0 * y0))
