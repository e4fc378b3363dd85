"""Options for implicit stages, and the fixed-point iteration's convergence test.

Implicit stage equations ``Z = G(Z)`` (e.g. ``Z_i = h Σ_j a_ij F(t + c_j h, y + Z_j)``) are
solved by fixed-point iteration ``Z ← G(Z)``, vectorised over the whole batch. The iteration
meets its tolerance when, for every state component ``k``,

    max |Z_k^{new} − Z_k| ≤ rtol · max(|y_k|, |Z_k^{(0)}|, |Z_k^{(1)} − Z_k^{(0)}|) + atol
                                                                (max over batch and stages)

where ``Z^{(0)}`` is the first guess (the first stage values for the splitting methods) and the
first increment ``Z^{(1)} − Z^{(0)}`` measures the stages' own size (so a state near zero with
stages of size ``h F`` does not demand an unattainable absolute accuracy), with
``rtol = 1e-14`` by default (raised to ``8 ε`` for dtypes coarser than float64).

With ``polish`` (default) the iteration then continues while the increment still halves, at
most 4 more times, so the stages end at round-off level — what long-time conservation of
quadratic invariants needs (angular momentum of Kepler to ~1e-14 over 10⁴ steps instead of
~3e-13 when stopping at 1e-14).

Step-size guard: the map contracts with factor about ``|h| L ‖A‖`` (``L`` a Lipschitz constant
of ``F``), so the iteration converges for small enough steps. Divergence (the increment grows
three iterations running, or becomes non-finite) raises :class:`IntegratorError` at once, and
so does missing the tolerance after ``max_iter`` iterations; the message names the method,
``t`` and ``h`` and asks for a smaller step.

Autograd (torch inputs): the iteration runs on the autograd graph, so the derivative of the
computed stages is the derivative of the iteration. That derivative obeys the linearised
iteration and converges at the same rate as the values, lagging by a factor of about the
iteration count; ``grad_iter`` (default 2) further iterations after the values converge make
it converged too. The result is the derivative of the exact stage solution to round-off
(checked in the tests by ``MᵀJM = J`` to 1e-12 and against finite differences).
"""
from dataclasses import dataclass

from integrators import backend
from integrators.errors import IntegratorError


STAGE_SOLVERS = ("auto", "fixed-point", "newton")


@dataclass
class Options:
    """Implicit-stage and problem options shared by every method.

    rtol, atol  stopping rule of the fixed-point iteration (see the module docstring)
    max_iter    iterations before :class:`IntegratorError`
    grad_iter   extra iterations for torch states while autograd is enabled (parameters of the
                right-hand side may need gradients even when the state does not)
    polish      after the tolerance is met, keep iterating while the increment still halves
                (at most 4 more): the stages then reach round-off, so quadratic invariants
                (Gauss methods) and pᵀδq (adjoint pairs) hold to round-off over long runs
    separable   the caller promises ``fq`` depends only on ``(t, p)`` and ``fp`` only on
                ``(t, q)`` (``H = T(p) + V(q)``): the splitting methods (symplectic Euler,
                Störmer–Verlet, Yoshida) are then explicit and skip the (trivial) iteration.
                Without the promise they iterate, which for a separable system converges in
                one extra evaluation, so ``separable`` is only a speed-up.
    stage_solver  how the implicit Runge–Kutta methods (implicit_midpoint, gauss2, gauss3) solve
                their stages: ``"fixed-point"``, ``"newton"`` (:mod:`integrators.newton`) or
                ``"auto"`` (default): fixed point, and on its first failure (divergence or no
                convergence within ``max_iter``) that step is redone with Newton and Newton is
                kept for the rest of the solve; a step where simplified Newton fails too is
                redone with full Newton. The partitioned methods (symplectic Euler,
                Störmer–Verlet, Lobatto IIIA–IIIB) always iterate to a fixed point.
    jacobian    ``∂F/∂y`` for Newton: ``jacobian(t, y)`` (``solve``) or ``jacobian(t, q, p)``
                (``solve_partitioned``) returning the ``(n, n)`` matrix of the flattened state;
                None (default): torch autograd for torch states, forward differences for numpy.
    simplified  simplified Newton (default True: one Jacobian and LU per step) or full Newton
                (False: Jacobians at the current stages, refactorised every iteration).
    """

    rtol: float = 1e-14
    atol: float = 0.0
    max_iter: int = 100
    grad_iter: int = 2
    polish: bool = True
    separable: bool = False
    stage_solver: str = "auto"
    jacobian: object = None
    simplified: bool = True

    def validate(self):
        if self.stage_solver not in STAGE_SOLVERS:
            raise ValueError(f"stage_solver must be one of {', '.join(STAGE_SOLVERS)}, got {self.stage_solver!r}")
        if self.jacobian is not None and not callable(self.jacobian):
            raise ValueError(f"jacobian must be a callable (t, y) -> (n, n) array or None, got {self.jacobian!r}")
        for name in ("polish", "separable", "simplified"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("rtol", "atol"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v >= 0 and v == v and v != float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.rtol == 0 and self.atol == 0:
            raise ValueError("rtol and atol cannot both be 0 (the iteration could never stop)")
        for name in ("max_iter", "grad_iter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "max_iter" else 0):
                raise ValueError(f"{name} must be an integer >= {1 if name == 'max_iter' else 0}, got {v!r}")
        return self


def _max_abs(a):
    if isinstance(a, (list, tuple)):
        return max(backend.max_abs(x) for x in a)
    return backend.max_abs(a)


class FixedPoint:
    """Tracks one fixed-point solve: call :meth:`done` after every iteration.

    ``scale_arrays[k]``: arrays whose largest magnitude sets component ``k``'s scale (the state
    and the first guess of its stages). ``guard=False`` drops the growing-increment test (damped
    Newton, whose steps may grow while its residual falls, fails by its own test instead).
    """

    def __init__(self, opts, method, t, h, scale_arrays, grad=False, guard=True):
        self.opts, self.method, self.t, self.h, self.guard = opts, method, t, h, guard
        e = backend.eps(scale_arrays[0] if not isinstance(scale_arrays[0], (list, tuple)) else scale_arrays[0][0])
        self.rtol = max(opts.rtol, 8 * e) if e > 1e-15 else opts.rtol
        self.tol = [self.rtol * _max_abs(a) + opts.atol for a in scale_arrays]
        self.grad = grad
        self.it = 0
        self.converged_at = None
        self.history = []

    def done(self, increments):
        """``increments[k]``: the change of component ``k`` in this iteration (an array or a list
        of arrays). Returns True when the iteration should stop."""
        self.it += 1
        if self.it == 1:  # the first increment is the scale of the stages themselves
            self.tol = [max(tol, self.rtol * _max_abs(d)) for d, tol in zip(increments, self.tol)]
        err = 0.0
        for d, tol in zip(increments, self.tol):
            dk = _max_abs(d)
            if not dk == dk or dk == float("inf"):
                self._fail("the iteration produced non-finite values")
            err = max(err, dk / tol if tol > 0 else (0.0 if dk == 0 else float("inf")))
        self.history.append(err)
        if self.converged_at is None:
            if err > 1.0:
                hist = self.history
                if self.guard and len(hist) >= 4 and hist[-1] > hist[-2] > hist[-3] > hist[-4]:
                    self._fail(f"the iteration diverges (increment/tolerance grew to {err:.2e})")
                if self.it >= self.opts.max_iter:
                    self._fail(f"no convergence after {self.it} iterations (increment/tolerance {err:.2e})")
                return False
            self.converged_at = self.it
            return not ((self.opts.polish and err > 0) or (self.grad and self.opts.grad_iter > 0))
        extra = self.it - self.converged_at
        polishing = self.opts.polish and 0 < err < 0.5 * self.history[-2] and extra < 4
        gradding = self.grad and extra < self.opts.grad_iter
        return not (polishing or gradding)

    def _fail(self, why):
        raise IntegratorError(
            f"{self.method}: implicit stage equations not solved at t={self.t:.6g}, h={self.h:.3g}: {why}; "
            f"use a smaller step (more steps), or loosen rtol={self.opts.rtol:g} / raise max_iter={self.opts.max_iter}")


def iterate(fpt, G, X):
    """Fixed-point iteration ``X ← G(X)`` until ``fpt`` (a :class:`FixedPoint`) says stop; returns ``X``."""
    while True:
        Xn = G(X)
        d, X = Xn - X, Xn
        if fpt.done([d]):
            return X


def needs_grad(state):
    """Torch state with autograd on: the right-hand side may carry parameters that need
    gradients even when the state itself does not (yet) require grad."""
    return backend.is_torch(state[0]) and backend._torch().is_grad_enabled()
