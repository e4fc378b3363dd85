"""The force-learning problems as least-squares optimal-control problems.

The force table ``θ = (F_0 .. F_{m−1})`` is a time-invariant control of the EOM network
(:mod:`ocdl.forces.network`). Every cost is a sum of squares ``J(θ) = |r(θ)|²`` so the same
problem serves Adam (autograd), the costate gradient (PMP) and Gauss–Newton (CasADi):

* ``drag``:      ``J = (1/n) Σ_i (v̄_T,i − v_T,i)² + c0 F(0)² + λ Σ_j (F_{j+1} − F_j)²``
* ``position``:  ``J = (c1/n) Σ_i (k̄_i − k_i)² + (c2/n₊) Σ_{i∈+} (v̄_T,i − v_T,i)² + λ Σ_j (F_{j+1} − F_j)²``
  with the smooth "kind" map (the analytic post-processing of the output layer)
  ``k̄ = σ((ε² − (x̄_T − x*)²)/s)``, ``σ(z) = 1/(1 + e^{−z})``, ``s = kind_scale·ε²``
  (default ``kind_scale = 0.2``: ``k̄ = 0.993`` at ``x̄_T = x*``, ``0.5`` at ``|x̄_T − x*| = ε``,
  ``3·10⁻⁷`` at ``2ε``).

Bars denote network outputs.
"""
import math

import numpy as np
import torch

from ocdl.forces import checks
from ocdl.forces.network import DragField, PositionField, casadi_step, check_method, costate_gradient, propagate
from ocdl.forces.table import ForceGrid

DTYPE = torch.float64


class _TableProblem:
    """Shared machinery: regulariser residuals, loss / costate gradient, CasADi residual."""

    c0 = 0.0

    def reg_torch(self, theta, lam):
        d = theta[1:] - theta[:-1]
        r = lam * (d * d).sum()
        if self.c0 > 0:
            r = r + self.c0 * theta[self.zero_index] ** 2
        return r

    def reg_grad(self, theta, lam):
        g = torch.zeros_like(theta)
        d = theta[1:] - theta[:-1]
        g[1:] += 2 * lam * d
        g[:-1] -= 2 * lam * d
        if self.c0 > 0:
            g[self.zero_index] += 2 * self.c0 * theta[self.zero_index]
        return g

    def final_state(self, theta, subset=None):
        y0 = self.y0 if subset is None else self.y0[subset]
        return propagate(self.field, theta, y0, self.T, self.steps, self.method)

    def loss_torch(self, theta, lam, subset=None):
        """``(J, data part)`` through the network, differentiable by autograd."""
        data = self.data_loss(self.final_state(theta, subset), subset)
        return data + self.reg_torch(theta, lam), data

    def loss_costate(self, theta, lam, subset=None):
        """``(J, data part, ∂J/∂θ)`` with the data gradient from the backward costate sweep."""
        y0 = self.y0 if subset is None else self.y0[subset]
        data, grad, _ = costate_gradient(self.field, theta, y0, self.T, self.steps, self.method,
                                         lambda yN: self.data_terminal(yN, subset))
        return data + self.reg_torch(theta, lam), data, grad + self.reg_grad(theta, lam)

    def data_terminal(self, yN, subset=None):
        """``(Φ(y_N), ∂Φ/∂y_N)`` for the costate's terminal condition."""
        y = yN.clone().requires_grad_(True)
        with torch.enable_grad():
            phi = self.data_loss(y, subset)
            (g,) = torch.autograd.grad(phi, y)
        return phi.detach(), g

    def zero_theta(self):
        return np.zeros(self.grid.size)

    def initial_table(self, init="zero", seed=0):
        """The starting table: ``zero``, or ``random`` — uniform random values, as in the paper's
        Fig. 5 (drawn with ``seed``) over :meth:`random_range`."""
        if init == "zero":
            return self.zero_theta()
        if init == "random":
            lo, hi = self.random_range()
            return np.random.default_rng(seed).uniform(lo, hi, self.grid.size)
        from ocdl.errors import unknown_name
        raise unknown_name("init", init, ("zero", "random"))

    def profile(self, theta):
        """Grid nodes inside the data-covered range and the table values there."""
        lo, hi = self.covered
        nodes = self.grid.nodes
        keep = (nodes >= lo - 1e-9 * self.grid.step) & (nodes <= hi + 1e-9 * self.grid.step)
        return nodes[keep], np.asarray(theta)[keep]


class DragProblem(_TableProblem):
    """Falling body with unknown drag: ``v̇ = g − F(v)``, data ``(v0, vT)`` after time ``T``."""
    name = "drag"
    variable = "v"

    def __init__(self, v0, vT, T, g, vmax=None, grid_step=1.0, steps=50, method="rk4", c0=1.0):
        self.covered, vmax = checks.drag_data(v0, vT, T, g, vmax, grid_step)
        v0, vT = np.asarray(v0, float), np.asarray(vT, float)
        self.grid = ForceGrid.covering(0.0, vmax, grid_step)
        self.zero_index = 0
        self.field = DragField(self.grid, g)
        self.method = check_method(self.field, method)
        self.T, self.g, self.steps, self.c0 = float(T), float(g), int(steps), float(c0)
        self.v0, self.vT = v0, vT
        self.y0 = torch.as_tensor(v0, dtype=DTYPE)[:, None]
        self.target = torch.as_tensor(vT, dtype=DTYPE)
        self.n = len(v0)

    def random_range(self):
        """``[0, 2g]``: drag forces between none and twice the terminal value ``F = g``."""
        return 0.0, 2 * abs(self.g)

    def data_residual(self, yN, subset=None):
        target = self.target if subset is None else self.target[subset]
        return (yN[:, 0] - target) / math.sqrt(len(target))

    def data_loss(self, yN, subset=None):
        r = self.data_residual(yN, subset)
        return (r * r).sum()

    def outputs(self, theta):
        with torch.no_grad():
            return {"vT": self.final_state(torch.as_tensor(theta, dtype=DTYPE))[:, 0].numpy()}

    # CasADi: one sample's step, then the residual of a batch
    def casadi_step(self, ca, y, theta, h):
        return casadi_step(ca, lambda u: self.g - self.grid.value_casadi(theta, u), y, h, self.method)

    def casadi_sample_data(self, subset):
        """Per-sample constants for :meth:`casadi_sample_residual`: rows ``vT``, weight."""
        idx = np.arange(self.n) if subset is None else np.asarray(subset)
        return np.stack([self.vT[idx], np.full(len(idx), 1 / math.sqrt(len(idx)))])

    def casadi_sample_residual(self, ca, yN, data):
        return (yN[0] - data[0]) * data[1]


class PositionProblem(_TableProblem):
    """``ẋ = v``, ``v̇ = F(x)``; data ``(x0, v0, kind, vT)``; ``kind = 1`` when ``|x(T) − x*| < ε``."""
    name = "position"
    variable = "x"

    def __init__(self, x0, v0, kind, vT, T, target, eps, xmin=None, xmax=None, grid_step=1.0,
                 steps=50, method="verlet", kind_scale=0.2, c1=1.0, c2=1.0):
        (lo_d, hi_d), (xmin, xmax) = checks.position_data(x0, v0, kind, vT, T, target, eps, xmin, xmax,
                                                          grid_step)
        x0, v0, kind, vT = (np.asarray(a, float) for a in (x0, v0, kind, vT))
        pos = kind == 1
        self.grid = ForceGrid.covering(xmin, xmax, grid_step)
        self.field = PositionField(self.grid)
        self.method = check_method(self.field, method)
        self.T, self.steps, self.xstar, self.eps = float(T), int(steps), float(target), float(eps)
        self.scale = kind_scale * eps * eps
        self.c1, self.c2 = float(c1), float(c2)
        self.x0, self.v0, self.kind, self.vT = x0, v0, kind, vT
        self.pos = pos
        self.y0 = torch.as_tensor(np.stack([x0, v0], 1), dtype=DTYPE)
        self.kind_t = torch.as_tensor(kind, dtype=DTYPE)
        self.vT_t = torch.as_tensor(np.where(pos, vT, 0.0), dtype=DTYPE)
        self.pos_t = torch.as_tensor(pos)
        self.n = len(x0)
        self.covered = (lo_d, hi_d)  # refined by the learner from the fitted trajectories

    def random_range(self):
        """``[−a, a]`` with ``a`` the largest mean acceleration ``|vT − v0|/T`` of the positives."""
        a = float(np.max(np.abs(self.vT[self.pos] - self.v0[self.pos]))) / self.T
        return -a, a

    def kind_accuracy(self, theta):
        """Share of samples whose model kind (``k̄ > 1/2``) equals the data's."""
        return float(np.mean((self.outputs(theta)["kind"] > 0.5) == (self.kind == 1)))

    def kind_map(self, xT):
        return torch.sigmoid((self.eps ** 2 - (xT - self.xstar) ** 2) / self.scale)

    def data_residual(self, yN, subset=None):
        kind = self.kind_t if subset is None else self.kind_t[subset]
        pos = self.pos_t if subset is None else self.pos_t[subset]
        vT = self.vT_t if subset is None else self.vT_t[subset]
        n, npos = len(kind), max(int(pos.sum()), 1)
        rk = (self.kind_map(yN[:, 0]) - kind) * math.sqrt(self.c1 / n)
        rv = (yN[pos, 1] - vT[pos]) * math.sqrt(self.c2 / npos)
        return torch.cat([rk, rv])

    def data_loss(self, yN, subset=None):
        r = self.data_residual(yN, subset)
        return (r * r).sum()

    def outputs(self, theta):
        with torch.no_grad():
            y = self.final_state(torch.as_tensor(theta, dtype=DTYPE))
            return {"xT": y[:, 0].numpy(), "vT": y[:, 1].numpy(), "kind": self.kind_map(y[:, 0]).numpy()}

    def visited_range(self, theta, which=None):
        """Positions visited by the network trajectories of the positive samples."""
        with torch.no_grad():
            y0 = self.y0[self.pos_t] if which is None else self.y0[which]
            _, Y = propagate(self.field, torch.as_tensor(theta, dtype=DTYPE), y0, self.T,
                             self.steps, self.method, keep=True)
            xs = Y[:, :, 0]
        return float(xs.min()), float(xs.max())

    def casadi_step(self, ca, y, theta, h):
        acc = lambda u: self.grid.value_casadi(theta, u)  # noqa: E731
        return casadi_step(ca, lambda yy: ca.vertcat(yy[1], acc(yy[0])), y, h, self.method, accel=acc)

    def casadi_sample_data(self, subset):
        """Per-sample constants: rows ``kind``, ``vT`` (0 for negatives), kind weight, vT weight
        (``√(c2/n₊)`` for positives, 0 for negatives: their vT residual is identically zero)."""
        idx = np.arange(self.n) if subset is None else np.asarray(subset)
        pos = self.pos[idx]
        npos = max(int(pos.sum()), 1)
        return np.stack([self.kind[idx], np.where(pos, self.vT[idx], 0.0),
                         np.full(len(idx), math.sqrt(self.c1 / len(idx))),
                         np.where(pos, math.sqrt(self.c2 / npos), 0.0)])

    def casadi_sample_residual(self, ca, yN, data):
        kbar = 0.5 * (1 + ca.tanh(0.5 * (self.eps ** 2 - (yN[0] - self.xstar) ** 2) / self.scale))  # σ, overflow-free
        return ca.vertcat((kbar - data[0]) * data[2], (yN[1] - data[1]) * data[3])
