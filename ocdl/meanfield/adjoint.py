r"""Mean-field optimal control of a parametric field shared by a whole density.

Problem (training a stochastic ResNet on densities). Classes ``c = 1..C`` with initial densities
``ρ_c(0)`` and terminal costs ``Φ_c``; all are transported by the same field ``f(x, θ(t))``:

    minimise  J(θ) = Σ_c ∫ Φ_c ρ_c(·, T) dx + ∫_0^T r(θ) dt,      r(θ) = (α/2)|θ|²,
    subject to ∂ρ_c/∂t = −∇·(f(x, θ) ρ_c) + (ν²/2) Δρ_c.

Continuous optimality system (docs/theory.md §7): the adjoint is the backward Kolmogorov equation
``−∂u_c/∂t = f·∇u_c + (ν²/2)Δu_c``, ``u_c(T) = Φ_c``, and the stationarity is
``Σ_c ∫ ρ_c (∂f/∂θ)ᵀ ∇u_c dx + ∇r(θ) = 0``.

Discretisation (Achdou's rule: discretise, then optimise). θ is piecewise constant over
``layers`` layers of length ``h = T/layers``, each taking ``steps_per_layer`` θ-steps
``A_k ρ^{n+1} = B_k ρ^n`` with ``A_k = I − ϑ dt L(θ_k)``, ``B_k = I + (1−ϑ) dt L(θ_k)`` and the
finite-volume generator ``L`` of :mod:`ocdl.meanfield.fokker_planck`. The discrete adjoint is the
exact transpose,

    u^N = Φ,     w^{n} = A_k^{-T} u^{n+1},     u^n = B_kᵀ w^n,

a consistent discretisation of the backward Kolmogorov equation, and the gradient of the discrete
cost ``J = |cell| Σ_c Φ_cᵀ ρ_c^N + h Σ_k r(θ_k)`` is exact:

    ∂J/∂θ_k = |cell| dt Σ_{n ∈ layer k} Σ_c (w_c^n)ᵀ (∂L/∂θ_k) ρ̄_c^n + h ∇r(θ_k),
    ρ̄^n = (1−ϑ) ρ^n + ϑ ρ^{n+1},
    wᵀ (∂L/∂θ) ρ̄ = Σ_faces (∂F/∂f_n)(ρ̄) (∂f_n/∂θ) (w_R − w_L)/h_face,

the discrete form of ``∫ ρ (∂f/∂θ)ᵀ ∇u``.

This is the exact transpose of a finite-volume Fokker–Planck scheme on a grid (a PDE adjoint),
not the per-sample costate recursion of :mod:`ocdl.pmp`, which it shares nothing with but the
field's ``vjp_theta``.
"""
import numpy as np

from ocdl.errors import InputError, SolverError
from ocdl.meanfield.fokker_planck import (SCHEMES, flux_coefficient_derivatives, flux_coefficients,
                                          make_stepper)
from ocdl.meanfield.grid import Grid
from ocdl.models import ResNetODE


class MeanFieldControl:
    """The discrete mean-field control problem above; ``rho0``, ``terminal``: ``(ncells, C)``.

    ``field``: ``"outer"`` (``f = K tanh(x) + b``) or ``"inner"`` (``f = tanh(Kx + b)``), the
    fields of :mod:`ocdl.models` on width ``d = grid.dim``; ``θ_k = (K_k (d×d) row-major, b_k (d))``
    flattened, ``p = d² + d`` per layer. ``∂f/∂θ`` enters only through the field's ``vjp_theta``."""

    def __init__(self, grid: Grid, field, nu, T, layers, rho0, terminal, alpha=0.0,
                 steps_per_layer=1, scheme="euler"):
        if scheme not in SCHEMES:
            raise InputError(f"unknown scheme '{scheme}' (valid: {', '.join(SCHEMES)})")
        if field not in ("outer", "inner"):
            raise InputError(f"unknown field '{field}' for the mean-field problem (valid: outer, inner)")
        d = grid.dim
        self.field = ResNetODE(field=field, d_in=d, width=d, layers=1).F
        self.d, self.size = d, d * d + d
        self.grid, self.nu, self.T = grid, float(nu), float(T)
        self.layers, self.spl = int(layers), int(steps_per_layer)
        self.theta_s = SCHEMES[scheme]
        self.rho0 = np.asarray(rho0, dtype=float).reshape(grid.ncells, -1)
        self.terminal = np.asarray(terminal, dtype=float).reshape(grid.ncells, -1)
        if self.rho0.shape != self.terminal.shape:
            raise InputError("need one terminal cost per initial density")
        self.alpha = float(alpha)
        self.h = self.T / self.layers
        self.dt = self.h / self.spl
        self.D = 0.5 * self.nu ** 2
        self.normal = np.zeros((grid.left.size, grid.dim))
        self.normal[np.arange(grid.left.size), grid.axis] = 1.0

    # -- pieces -------------------------------------------------------------------------------
    def _split(self, theta_k):
        d = self.d
        return theta_k[:d * d].reshape(d, d), theta_k[d * d:]

    def _face_drift(self, theta_k):
        """Normal drift ``f(x_face, θ_k)·n`` at every face."""
        return np.sum(self.field.f(self.grid.face_points, *self._split(theta_k)) * self.normal, axis=1)

    def _stepper(self, theta_k):
        cL, cR = flux_coefficients(self._face_drift(theta_k), self.D, self.grid.spacing)
        return make_stepper(self.grid, cL, cR, self.dt, self.theta_s)

    def _reshape(self, theta):
        theta = np.asarray(theta, dtype=float).reshape(self.layers, self.size)
        if not np.all(np.isfinite(theta)):
            raise SolverError("parameters became non-finite")
        return theta

    def forward(self, theta):
        """All densities ``ρ^n``, ``n = 0..layers·steps_per_layer`` (list of ``(ncells, C)``)."""
        theta = self._reshape(theta)
        rho = [self.rho0]
        steppers = []
        for k in range(self.layers):
            st = self._stepper(theta[k])
            steppers.append(st)
            for _ in range(self.spl):
                rho.append(st.forward(rho[-1]))
        return rho, steppers

    def cost(self, theta, rho=None):
        theta = self._reshape(theta)
        if rho is None:
            rho, _ = self.forward(theta)
        return (self.grid.volume * np.sum(self.terminal * rho[-1])
                + self.h * 0.5 * self.alpha * np.sum(theta ** 2))

    def value_and_gradient(self, theta):
        """``(J, ∂J/∂θ (layers, p), costates u^n)`` by the transpose (backward Kolmogorov) sweep."""
        theta = self._reshape(theta)
        rho, steppers = self.forward(theta)
        self.last_rho = rho
        g = self.grid
        J = self.cost(theta, rho)
        grad = self.h * self.alpha * theta.copy()
        u = self.terminal.copy()
        costates = [u]
        for n in range(self.layers * self.spl - 1, -1, -1):
            k = n // self.spl
            st = steppers[k]
            w = st.solve_T(u)
            rbar = (1 - self.theta_s) * rho[n] + self.theta_s * rho[n + 1]
            dcL, dcR = flux_coefficient_derivatives(self._face_drift(theta[k]), self.D, g.spacing)
            dF = dcL[:, None] * rbar[g.left] - dcR[:, None] * rbar[g.right]          # (faces, C)
            dw = (w[g.right] - w[g.left]) / g.spacing[:, None]
            # Σ_faces w_f ∂(f·n_f)/∂θ = Σ_faces (∂f/∂θ)ᵀ (w_f n_f): the field's vjp in θ
            gK, gb = self.field.vjp_theta(g.face_points, *self._split(theta[k]),
                                          np.sum(dF * dw, axis=1)[:, None] * self.normal)
            grad[k] += g.volume * self.dt * np.concatenate([np.ravel(gK), gb])
            u = st.BT(w)
            costates.append(u)
        return J, grad, costates[::-1]

    def stationarity(self, theta):
        """Max-norm of ``∂J/∂θ`` (zero at a mean-field optimum)."""
        return float(np.max(np.abs(self.value_and_gradient(theta)[1])))

    def solve(self, theta0, maxiter=200, tol=1e-8, quiet=True):
        """Minimise ``J`` with scipy's L-BFGS-B (``gtol = tol``) on the exact discrete gradient through
        :func:`ocdl.optim.minimize`; an :class:`ocdl.optim.OptimizeResult` with ``x`` of shape
        ``(layers, p)`` and ``grad_norm`` = max |∂J/∂θ| in the history."""
        from ocdl.optim import LBFGS, ProgressBar, minimize

        def objective(th, batch):
            J, G, _ = self.value_and_gradient(th)
            return J, G.ravel(), {"grad_norm": float(np.max(np.abs(G)))}
        res = minimize(objective, np.asarray(theta0, dtype=float).ravel(),
                       LBFGS(gtol=tol, ftol=2.220446049250313e-09, maxcor=10), maxiter,
                       name="mean-field control (L-BFGS)", progress=ProgressBar(quiet))
        res.x = res.x.reshape(self.layers, -1)
        return res
