"""The EOM network: the equation of motion discretised by a one-step method, one layer per step.

State ``y`` has shape ``(n, d)`` (``n`` samples, vectorised); ``N`` steps of size ``h = T/N``.
Fields (``θ`` = the force table):

* :class:`DragField`      ``d = 1``: ``v̇ = g − F(v)``
* :class:`PositionField`  ``d = 2``: ``ẋ = v``, ``v̇ = F(x)``  (Hamiltonian with ``F = −V'``;
  separable: ``ẋ`` depends on ``v`` only, ``v̇`` on ``x`` only)

Each field is a parametrised field of :mod:`integrators.adjoint`: ``f(y, θ)`` and the two
vector–Jacobian products the costate needs, ``(∂f/∂y)ᵀ λ`` and ``Σ_samples (∂f/∂θ)ᵀ λ``.

The layers are the methods of :mod:`integrators` (one definition of every method): ``euler``,
``heun``, ``rk4`` (explicit tableaux), ``verlet`` (Störmer–Verlet, **drift–kick–drift**:
``x ← x + (h/2) v``, ``v ← v + h F(x)``, ``x ← x + (h/2) v``; needs the separable position
field) and ``gauss2`` (2-stage Gauss–Legendre, implicit, symplectic).

:func:`propagate` runs the network (:func:`integrators.solve`; torch, differentiable: autograd is
the ``adam`` baseline); :func:`costate_gradient` is the exact discrete adjoint
(:func:`integrators.costate_sweep`: the adjoint-partner tableau for Runge–Kutta, the transposed
shears for Verlet), so the time-invariant control's gradient is the sum over all layers.
:func:`casadi_step` builds one layer on CasADi symbols from the same method definitions.
"""
import torch

import integrators
from integrators import IntegratorError
from ocdl.errors import InputError, SolverError

EXPLICIT_METHODS = ("euler", "heun", "rk4")
SEPARABLE_METHODS = ("verlet", "gauss2")


class DragField:
    """``v̇ = g − F(v)`` with ``F`` a :class:`~ocdl.forces.table.ForceGrid` table; state ``(n, 1)``."""
    dim = 1
    separable = False

    def __init__(self, grid, g):
        self.grid, self.g = grid, float(g)

    def f(self, y, theta):
        return self.g - self.grid.value(theta, y)

    def vjp_y(self, y, theta, lam):
        return -self.grid.slope(theta, y) * lam

    def vjp_theta(self, y, theta, lam):
        return self.grid.scatter(y, -lam)


class PositionField:
    """``ẋ = v``, ``v̇ = F(x)``; the state is ``(x, v)``, shape ``(n, 2)``."""
    dim = 2
    separable = True

    def __init__(self, grid):
        self.grid = grid

    def f(self, y, theta):
        return torch.stack([y[:, 1], self.grid.value(theta, y[:, 0])], dim=1)

    def vjp_y(self, y, theta, lam):
        return torch.stack([self.grid.slope(theta, y[:, 0]) * lam[:, 1], lam[:, 0]], dim=1)

    def vjp_theta(self, y, theta, lam):
        return self.grid.scatter(y[:, 0], lam[:, 1])


def check_method(field, method):
    valid = EXPLICIT_METHODS + (SEPARABLE_METHODS if field.separable else ())
    if method not in valid:
        raise InputError(f"integrator '{method}' is not available for this problem "
                         f"(valid: {', '.join(valid)})")
    return method


def _options(field):
    return {"separable": True} if field.separable else {}


def _solver_error(err):
    return SolverError(f"the EOM network failed: {err}")


def propagate(field, theta, y0, T, steps, method, keep=False):
    """Run the network: ``N = steps`` layers of size ``h = T/N`` from ``y0``; return ``y_N``
    (and the trajectory, shape ``(N + 1, n, d)``, when ``keep``). A blow-up or unsolved implicit
    stages raise :class:`~ocdl.errors.SolverError`."""
    try:
        Y = integrators.solve(method, lambda t, y: field.f(y, theta), y0, 0.0, T, steps, **_options(field))
    except IntegratorError as err:
        raise _solver_error(err) from None
    return (Y[-1], Y) if keep else Y[-1]


def costate_gradient(field, theta, y0, T, steps, method, terminal):
    """Cost ``Φ(y_N)`` and its exact gradient in ``θ`` by the backward costate sweep.

    ``terminal(yN) → (Φ, ∂Φ/∂y_N)`` (plain tensors). Returns ``(Φ, ∂Φ/∂θ, y_N)``; no autograd
    tape is built.
    """
    with torch.no_grad():
        try:
            phi, grad, _, Y = integrators.costate_sweep(method, field, theta.detach(), y0, 0.0, T, steps,
                                                        terminal, **_options(field))
        except IntegratorError as err:
            raise _solver_error(err) from None
    return phi, grad, Y[-1]


class _CasadiSystem:
    """A right-hand side on CasADi symbols, as the :mod:`integrators` methods call it."""

    def __init__(self, f, half=None):
        self._f, self.half = f, half

    def f(self, t, state):
        return (self._f(state[0]),)

    def fq(self, t, q, p):
        return p

    def fp(self, t, q, p):
        return self.half(q)


def casadi_step(ca, f, y, h, method, accel=None):
    """One layer on a CasADi column ``y`` from the :mod:`integrators` definition of ``method``.

    Explicit Runge–Kutta: the method's own ``step`` on symbols. ``verlet``: its own ``step`` on
    ``(x, v)`` with ``ẋ = v``, ``v̇ = accel(x)`` (drift–kick–drift, explicit for this separable
    field). Gauss: the stage equations ``Z_i = h Σ_j a_ij f(y + Z_j)`` of the method's tableau,
    solved by 5 unrolled Newton steps from ``Z_i = c_i h f(y)`` (quadratic convergence: the
    stages, and so the exact Jacobian of the layer, are correct to round-off for ``h L ≲ 1``).
    """
    m = integrators.get_method(method)
    opts = integrators.Options(separable=True)
    if method == "verlet":
        x, v = m.step(_CasadiSystem(None, accel), 0.0, (y[0], y[1]), h, opts)
        return ca.vertcat(x, v)
    if isinstance(m, integrators.methods.ExplicitRK):
        return m.step(_CasadiSystem(f), 0.0, (y,), h, opts)[0]
    A, b, c = integrators.tableau(method)
    d, s = y.shape[0], len(b)
    zs = ca.SX.sym("z", d * s)
    F = [f(y + zs[j * d:(j + 1) * d]) for j in range(s)]
    G = ca.vertcat(*[zs[i * d:(i + 1) * d] - h * sum(A[i, j] * F[j] for j in range(s)) for i in range(s)])
    newton = zs - ca.solve(ca.jacobian(G, zs), G)
    f0 = f(y)
    Z = ca.vertcat(*[c[i] * h * f0 for i in range(s)])
    for _ in range(5):
        Z = ca.substitute(newton, zs, Z)
    return y + h * sum(b[i] * f(y + Z[i * d:(i + 1) * d]) for i in range(s))
