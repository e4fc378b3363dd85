"""One-step methods for ``y' = F(t, y)`` and partitioned systems ``q' = Fq(t, q, p)``, ``p' = Fp(t, q, p)``.

A table of methods (:func:`available`): explicit Runge–Kutta (``euler``, ``heun``, ``rk4``),
symplectic splitting methods (``symplectic_euler``, ``symplectic_euler_b``, ``verlet``,
``yoshida4``), Gauss–Legendre collocation (``implicit_midpoint``, ``gauss2``, ``gauss3``) and the
Lobatto IIIA–IIIB pair (``lobatto3ab``). One stepping loop drives them all, on numpy arrays or
torch tensors (any leading batch shape; torch keeps autograd through every step)::

    Y = integrators.solve("rk4", rhs, y0, t0, t1, steps)                  # (steps+1, *y0.shape)
    Q, P = integrators.solve_partitioned("verlet", fq, fp, q0, p0, t0, t1, steps)

Also :func:`order` (classical order), :func:`adjoint_partner` (the costate tableau that makes
a Runge–Kutta method's discrete adjoint exact), :func:`adjoint_pair` (that pair as a method) and
:func:`costate_sweep` (the exact discrete adjoint of ``y' = f(y, θ)``: ∂Φ(y_N)/∂θ and ∂Φ/∂y_0).
"""
from integrators.errors import IntegratorError, UnknownMethodError  # noqa: F401
from integrators.implicit import Options  # noqa: F401
from integrators.methods import (  # noqa: F401
    METHODS, Composition, ExplicitRK, ImplicitRK, Method, PartitionedRK, StormerVerlet,
    SymplecticEuler, SymplecticEulerB,
)
from integrators.solve import adjoint_pair, available, get_method, order, solve, solve_partitioned  # noqa: F401
from integrators.tableaux import EXPLICIT, GAUSS, SPLITTINGS, adjoint_partner, tableau  # noqa: F401
from integrators.layers import rk_layer, splitting_layer  # noqa: F401
from integrators.adjoint import costate_sweep  # noqa: F401

__all__ = ["available", "solve", "solve_partitioned", "order", "adjoint_partner", "adjoint_pair", "tableau",
           "get_method", "costate_sweep", "IntegratorError", "UnknownMethodError", "PartitionedRK", "Method"]
