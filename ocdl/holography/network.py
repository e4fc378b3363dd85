"""The AdS/DL network: the radial equation of motion of a bulk scalar, one layer per step.

Hashimoto, Sugishita, Tanaka, Tomiya, *Deep learning and the AdS/CFT correspondence*, PRD 98,
046019 (2018), arXiv:1802.08313. A scalar with potential ``V(φ) = m²φ²/2 + λφ⁴/4`` in the metric
``ds² = −f(η)dt² + dη² + g(η)dx²_{d−1}`` obeys, with ``π = ∂_η φ``,

    ∂_η φ = π,      ∂_η π = −h(η) π + m² φ + λ φ³,      h(η) = ∂_η log √(f g^{d−1}).

It is integrated from the boundary ``η_ini`` to the horizon cut-off ``η_fin < η_ini`` in ``N``
steps ``Δη = (η_fin − η_ini)/N < 0``; the layer nodes are ``η_k = η_ini + k Δη`` (``k = 0..N−1``)
and the trainable weights are the layer values ``h_k = h(η_k)`` (optionally ``m²`` and ``λ``).
Explicit Euler is the paper's network::

    φ_{k+1} = φ_k + Δη π_k,     π_{k+1} = π_k − Δη (h_k π_k − m² φ_k − λ φ_k³).

The state is augmented by ``η`` itself (``y = (φ, π, η)``, ``∂_η η = 1``), so the field is
autonomous and every explicit Runge–Kutta method of :mod:`integrators` (``euler``, ``heun``,
``rk4``) applies unchanged; between nodes ``h(η)`` is linear in ``η`` (a
:class:`~ocdl.forces.table.ForceGrid` table over the nodes, held constant beyond them), so a
Runge–Kutta stage between two layers sees the interpolated metric and Euler sees exactly ``h_k``.

**Horizon condition** (the output layer). Near a non-extremal horizon ``f ≈ η², g ≈ const`` so
``h ≈ 1/η``; a solution regular there has ``φ = φ_h + c η² + …`` and the equation of motion at
``O(η⁰)`` gives ``4c = V'(φ_h)``, i.e. ``π = V'(φ) η / 2``. The network therefore ends with

    F = 2 π_N / η_fin − m² φ_N − λ φ_N³       (F = 0: regular at the horizon),

and a boundary pair is *positive* (label 1) when ``|F| < ε``. The paper's output layer maps ``F``
to a smoothed indicator of ``|F| ≥ ε`` (0 on positives, 1 on negatives)::

    t(F) = [tanh((F − ε)/σ) − tanh((F + ε)/σ) + 2] / 2,       ε = 0.1, σ = 0.01.

Gradients: :func:`loss_and_gradient` is the exact discrete costate sweep of
:func:`integrators.costate_sweep` (no autograd tape) plus the explicit ``∂F/∂(m², λ)`` of the
output layer; :func:`residual_jacobian` is the same sweep with one costate per sample, whose
θ-gradients are kept per sample — the rows of the Jacobian ``∂r_i/∂θ`` that Gauss–Newton needs,
from one vectorised backward pass.
"""
import math

import numpy as np
import torch

from ocdl.errors import InputError
from ocdl.forces.network import EXPLICIT_METHODS, costate_gradient, propagate
from ocdl.forces.table import ForceGrid

DTYPE = torch.float64
METHODS = EXPLICIT_METHODS        # euler (the paper's), heun, rk4


class Layers:
    """The radial grid: ``N`` layers from ``η_ini`` to ``η_fin``; nodes ``η_k = η_ini + k Δη``."""

    def __init__(self, eta_ini=1.0, eta_fin=0.1, layers=10):
        eta_ini, eta_fin, layers = float(eta_ini), float(eta_fin), int(layers)
        if not (math.isfinite(eta_ini) and math.isfinite(eta_fin)) or not eta_fin > 0 or not eta_ini > eta_fin:
            raise InputError(f"need 0 < --eta-fin < --eta-ini (got eta_ini={eta_ini:g}, eta_fin={eta_fin:g})")
        if layers < 2:
            raise InputError(f"the network needs at least 2 layers (got {layers})")
        self.eta_ini, self.eta_fin, self.N = eta_ini, eta_fin, layers
        self.d_eta = (eta_fin - eta_ini) / layers
        self.eta = eta_ini + self.d_eta * np.arange(layers)
        # ascending table for the interpolation: node j of the grid is layer N−1−j
        self.grid = ForceGrid(float(self.eta[-1]), -self.d_eta, layers)

    @property
    def span(self):
        """``η_fin − η_ini`` (negative: the network runs inward)."""
        return self.eta_fin - self.eta_ini


class MetricField:
    """``ẏ = (π, −h(η)π + m²φ + λφ³, 1)`` on ``y = (φ, π, η)``, a parametrised field of
    :mod:`integrators.adjoint`. ``θ = (h_0 .. h_{N−1}, m², λ)`` (layer order). ``m2`` / ``lam``
    per-sample arrays (data taken at several masses / couplings) replace ``θ_N`` / ``θ_{N+1}``.
    ``rows=True``: :meth:`vjp_theta` keeps one row per sample (the Jacobian rows) instead of the
    sum over samples."""

    dim = 3
    separable = False

    def __init__(self, layers, m2=None, lam=None, rows=False):
        self.layers, self.grid, self.N = layers, layers.grid, layers.N
        self.m2_data, self.lam_data, self.rows = m2, lam, rows

    def table(self, theta):
        """The ascending-η table of the grid from the layer-ordered ``θ``."""
        return torch.flip(theta[:self.N], (0,))

    def couplings(self, theta):
        m2 = theta[self.N] if self.m2_data is None else self.m2_data
        lam = theta[self.N + 1] if self.lam_data is None else self.lam_data
        return m2, lam

    def f(self, y, theta):
        phi, pi, eta = y[:, 0], y[:, 1], y[:, 2]
        m2, lam = self.couplings(theta)
        h = self.grid.value(self.table(theta), eta)
        return torch.stack([pi, -h * pi + m2 * phi + lam * phi ** 3, torch.ones_like(eta)], dim=1)

    def vjp_y(self, y, theta, lam_):
        phi, pi, eta = y[:, 0], y[:, 1], y[:, 2]
        m2, lam = self.couplings(theta)
        table = self.table(theta)
        h, dh = self.grid.value(table, eta), self.grid.slope(table, eta)
        lp = lam_[:, 1]
        return torch.stack([(m2 + 3 * lam * phi ** 2) * lp, lam_[:, 0] - h * lp, -dh * pi * lp], dim=1)

    def vjp_theta(self, y, theta, lam_):
        phi, pi, eta = y[:, 0], y[:, 1], y[:, 2]
        cot = -pi * lam_[:, 1]                      # ∂f_π/∂h(η) · λ_π
        j, w, _ = self.grid.locate(eta)
        n, N = y.shape[0], self.N
        rows = torch.zeros((n, N + 2), dtype=y.dtype)
        idx = torch.arange(n)
        # grid node j is layer N−1−j
        rows[idx, N - 1 - j] += (1 - w) * cot
        rows[idx, N - 2 - j] += w * cot
        if self.m2_data is None:
            rows[:, N] = phi * lam_[:, 1]
        if self.lam_data is None:
            rows[:, N + 1] = phi ** 3 * lam_[:, 1]
        return rows if self.rows else rows.sum(0)


class OutputLayer:
    """``F(y_N)`` (the horizon condition) and the paper's indicator ``t(F)``."""

    def __init__(self, eta_fin, eps=0.1, sigma=0.01):
        if not (eps > 0 and sigma > 0):
            raise InputError(f"need eps > 0 and sigma > 0 (got {eps:g}, {sigma:g})")
        self.eta_fin, self.eps, self.sigma = float(eta_fin), float(eps), float(sigma)

    def horizon(self, yN, m2, lam):
        """``F = 2π/η_fin − m²φ − λφ³`` and its partials ``∂F/∂φ, ∂F/∂π, ∂F/∂m², ∂F/∂λ``."""
        phi, pi = yN[:, 0], yN[:, 1]
        F = 2 * pi / self.eta_fin - m2 * phi - lam * phi ** 3
        return F, (-m2 - 3 * lam * phi ** 2, torch.full_like(pi, 2 / self.eta_fin), -phi, -phi ** 3)

    def indicator(self, F, sigma=None):
        """``t(F)`` and ``dt/dF``."""
        s = self.sigma if sigma is None else sigma
        a, b = torch.tanh((F - self.eps) / s), torch.tanh((F + self.eps) / s)
        return (a - b + 2) / 2, ((1 - a * a) - (1 - b * b)) / (2 * s)


class Network:
    """Layers + field + output layer: ``(φ, π)`` at ``η_ini`` → ``y_N`` → ``F`` → ``t(F)``."""

    def __init__(self, layers, method="euler", eps=0.1, sigma=0.01):
        if method not in METHODS:
            raise InputError(f"integrator '{method}' is not available for the radial equation "
                             f"(valid: {', '.join(METHODS)})")
        self.layers, self.method = layers, method
        self.output = OutputLayer(layers.eta_fin, eps, sigma)

    def y0(self, X):
        X = torch.as_tensor(np.asarray(X, dtype=float), dtype=DTYPE)
        return torch.cat([X, torch.full((X.shape[0], 1), self.layers.eta_ini, dtype=DTYPE)], dim=1)

    def field(self, m2=None, lam=None, rows=False):
        return MetricField(self.layers, m2, lam, rows)

    def final_state(self, theta, X, m2=None, lam=None, keep=False):
        """``y_N`` (and the trajectory with ``keep``) for boundary data ``X = (φ, π)``; torch,
        differentiable in ``θ`` (autograd is the ``adam`` baseline)."""
        return propagate(self.field(m2, lam), theta, self.y0(X), self.layers.span, self.layers.N, self.method,
                         keep=keep)

    def horizon_value(self, theta, X, m2=None, lam=None):
        """``F`` of every sample (torch)."""
        field = self.field(m2, lam)
        m2v, lamv = field.couplings(theta)
        return self.output.horizon(self.final_state(theta, X, m2, lam), m2v, lamv)[0]

    def classify(self, theta, X, m2=None, lam=None):
        """Label 1 (regular at the horizon, ``|F| < ε``) or 0."""
        with torch.no_grad():
            F = self.horizon_value(torch.as_tensor(theta, dtype=DTYPE), X, m2, lam)
        return (F.abs() < self.output.eps).numpy().astype(int)

    def loss_and_gradient(self, theta, X, dloss, m2=None, lam=None):
        """Data cost ``Φ = Σ_i ℓ_i(t(F_i))`` and ``∂Φ/∂θ`` by the costate sweep.

        ``dloss(t) → (ℓ, ∂ℓ/∂t)`` per sample (``ℓ`` summed here). The costate starts from
        ``λ_N = (∂ℓ/∂t)(dt/dF) ∇_y F``; the explicit ``∂F/∂(m², λ)`` of the output layer is added.
        """
        field = self.field(m2, lam)
        m2v, lamv = field.couplings(theta)
        extra = {}

        def terminal(yN):
            F, (dphi, dpi, dm2, dlam) = self.output.horizon(yN, m2v, lamv)
            t, dt = self.output.indicator(F)
            ell, dl = dloss(t)
            c = dl * dt
            extra.update(c=c, dm2=dm2, dlam=dlam)
            return ell.sum(), torch.stack([c * dphi, c * dpi, torch.zeros_like(c)], dim=1)

        phi, grad, _ = costate_gradient(field, theta, self.y0(X), self.layers.span, self.layers.N, self.method,
                                        terminal)
        grad = grad.clone()
        if m2 is None:
            grad[self.layers.N] += (extra["c"] * extra["dm2"]).sum()
        if lam is None:
            grad[self.layers.N + 1] += (extra["c"] * extra["dlam"]).sum()
        return phi, grad

    def residual_jacobian(self, theta, X, target, scale, m2=None, lam=None, sigma=None):
        """Residuals ``r_i = scale (t(F_i) − target_i)`` and the Jacobian ``∂r/∂θ`` (``n × (N+2)``),
        one costate per sample in one vectorised sweep (the field keeps per-sample θ-rows)."""
        field = self.field(m2, lam, rows=True)
        m2v, lamv = field.couplings(theta)
        extra = {}

        def terminal(yN):
            F, (dphi, dpi, dm2, dlam) = self.output.horizon(yN, m2v, lamv)
            t, dt = self.output.indicator(F, sigma)
            c = scale * dt
            extra.update(r=scale * (t - target), c=c, dm2=dm2, dlam=dlam)
            return torch.zeros(()), torch.stack([c * dphi, c * dpi, torch.zeros_like(c)], dim=1)

        _, J, _ = costate_gradient(field, theta, self.y0(X), self.layers.span, self.layers.N, self.method, terminal)
        J = J.clone()
        if m2 is None:
            J[:, self.layers.N] += extra["c"] * extra["dm2"]
        if lam is None:
            J[:, self.layers.N + 1] += extra["c"] * extra["dlam"]
        return extra["r"], J
