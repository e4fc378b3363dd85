"""The shared stepping loop and the public entry points ``solve`` / ``solve_partitioned``.

Fixed steps ``h = (t1 − t0) / steps`` (negative when ``t1 < t0``), times ``t_n = t0 + n h``.
numpy states give numpy trajectories; torch states give torch trajectories built with
``torch.stack`` so gradients flow from any output back to ``y0`` and to parameters used by the
right-hand side.
"""
import math
import numbers

import numpy as np

from integrators import backend
from integrators.errors import IntegratorError, unknown_method
from integrators.implicit import Options
from integrators.methods import METHODS, Method
from integrators.systems import PartitionedSystem, PlainSystem, SplitSystem


def available():
    """Names of the built-in methods, in table order."""
    return list(METHODS)


def get_method(method):
    """A :class:`~integrators.methods.Method` from a name (or a Method object, returned as is)."""
    if isinstance(method, Method):
        return method
    if isinstance(method, str) and method in METHODS:
        return METHODS[method]
    raise unknown_method(method, available())


def adjoint_pair(method):
    """The partitioned method ``(A, b)`` for q and ``adjoint_partner(A, b)`` for p, for a Runge–Kutta
    method given by name (``euler``, ``heun``, ``rk4``, ``implicit_midpoint``, ``gauss2``, ``gauss3``).

    Integrating ``x' = f(x)`` (and tangents ``δx' = f'(x) δx``) as q and the costate
    ``λ' = −f'(x)ᵀ λ`` as p with this pair keeps ``λᵀ δx`` constant to round-off, so the costate
    is the exact gradient of the discretised problem (see docs/integrators.md).
    """
    from integrators.methods import PartitionedRK
    from integrators.tableaux import adjoint_partner, tableau
    m = get_method(method)
    A, b, c = tableau(m.name)
    A_hat, b_hat = adjoint_partner(A, b)
    return PartitionedRK(A, b, A_hat, b_hat, c=c, c_hat=c, order=m.order, name=f"{m.name}+adjoint",
                         symplectic=True, description=f"{m.name} for q, its adjoint partner for p")


def order(method):
    """The classical order of a method (by name or object)."""
    return get_method(method).order


def _check_times(t0, t1, steps):
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    try:
        t0, t1 = float(t0), float(t1)
    except (TypeError, ValueError):
        raise ValueError(f"t0 and t1 must be real numbers, got {t0!r}, {t1!r}") from None
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise ValueError(f"t0 and t1 must be finite, got {t0}, {t1}")
    return t0, t1, int(steps)


def _options(kwargs):
    unknown = set(kwargs) - set(Options.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}; valid: {sorted(Options.__dataclass_fields__)}")
    return Options(**kwargs).validate()


def _loop(method, system, state, t0, t1, steps, opts):
    """Advance ``state`` (a tuple of arrays) ``steps`` times; return a tuple of trajectories."""
    h = (t1 - t0) / steps
    system.memo = {}  # per-solve scratch space of the methods (e.g. starting guesses)
    torch_path = backend.is_torch(state[0])
    if torch_path:
        out = [[a] for a in state]
    else:
        out = [np.empty((steps + 1,) + a.shape, dtype=a.dtype) for a in state]
        for o, a in zip(out, state):
            o[0] = a
    for n in range(steps):
        t = t0 + n * h
        state = method.step(system, t, state, h, opts)
        for k, a in enumerate(state):
            if not backend.all_finite(a):
                raise IntegratorError(f"{method.name}: the solution became non-finite in the step from t={t:.6g} "
                                      f"(h={h:.3g}); the problem blows up or the step is too large — use more steps")
            if torch_path:
                out[k].append(a)
            else:
                out[k][n + 1] = a
    if torch_path:
        return tuple(backend.stack(o) for o in out)
    return tuple(out)


def solve(method, rhs, y0, t0, t1, steps, **options):
    """Integrate ``y' = rhs(t, y)`` from ``y(t0) = y0`` to ``t1`` in ``steps`` equal steps.

    Returns the trajectory, shape ``(steps + 1, *y0.shape)`` (numpy array or torch tensor, like
    ``y0``; row ``n`` is ``y`` at ``t0 + n h``). ``rhs`` must accept and return arrays of
    ``y0``'s shape (any leading batch axes are the caller's business).

    A partitioned method (``symplectic_euler``, ``symplectic_euler_b``, ``verlet``, ``yoshida4``,
    ``lobatto3ab``) reads ``y`` as ``(q, p)``: the first and second halves of its *last* axis,
    which must therefore have even length (otherwise ``ValueError``); ``rhs`` then returns
    ``(q', p')`` in the same layout.

    Options (keywords): ``rtol=1e-14``, ``atol=0``, ``max_iter=100``, ``grad_iter=2``,
    ``polish=True``, ``separable=False`` — see :class:`integrators.implicit.Options`.
    Raises :class:`UnknownMethodError` for an unknown name and :class:`IntegratorError` when
    implicit stages do not converge or the solution becomes non-finite.
    """
    m = get_method(method)
    opts = _options(options)
    t0, t1, steps = _check_times(t0, t1, steps)
    y0 = backend.as_state_array(y0, "y0")
    if m.partitioned:
        n = y0.shape[-1] if y0.ndim else 0
        if y0.ndim == 0 or n % 2:
            raise ValueError(f"method '{m.name}' is partitioned: solve() splits y into (q, p) halves along the "
                             f"last axis, which must have even length (got shape {tuple(y0.shape)}); "
                             f"or call solve_partitioned(method, fq, fp, q0, p0, ...)")
        half = n // 2
        Q, P = _loop(m, SplitSystem(rhs, half), (y0[..., :half], y0[..., half:]), t0, t1, steps, opts)
        return backend.concat_last(Q, P)
    (Y,) = _loop(m, PlainSystem(rhs), (y0,), t0, t1, steps, opts)
    return Y


def solve_partitioned(method, fq, fp, q0, p0, t0, t1, steps, **options):
    """Integrate ``q' = fq(t, q, p)``, ``p' = fp(t, q, p)`` from ``(q0, p0)`` at ``t0`` to ``t1``.

    Returns ``(Q, P)``, each of shape ``(steps + 1, *q0.shape)``. Every method accepts this call:
    Runge–Kutta methods treat ``(q, p)`` as one state (same tableau for both), partitioned
    methods use their own rule for each. For a Hamiltonian ``H(q, p)``: ``fq = ∂H/∂p``,
    ``fp = −∂H/∂q``. Options as for :func:`solve`; ``separable=True`` promises ``fq = fq(t, p)``
    and ``fp = fp(t, q)`` and makes the splitting methods explicit.
    """
    m = get_method(method)
    opts = _options(options)
    t0, t1, steps = _check_times(t0, t1, steps)
    q0 = backend.as_state_array(q0, "q0")
    p0 = backend.as_state_array(p0, "p0")
    if backend.is_torch(q0) != backend.is_torch(p0):
        raise ValueError("q0 and p0 must both be numpy arrays or both torch tensors")
    return _loop(m, PartitionedSystem(fq, fp), (q0, p0), t0, t1, steps, opts)
