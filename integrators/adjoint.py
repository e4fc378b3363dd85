"""The discrete adjoint (costate sweep) of a one-step method for a field with parameters θ.

A *parametrised field* is an object with three methods (numpy arrays or torch tensors; any
leading batch axes, the state on the last axis):

    f(y, θ)             ẏ = f(y, θ)                       (autonomous)
    vjp_y(y, θ, λ)      (∂f/∂y)ᵀ λ                        (the shape of y)
    vjp_theta(y, θ, λ)  Σ_batch (∂f/∂θ)ᵀ λ                  (the shape of θ)

:func:`costate_sweep` integrates ``ẏ = f(y, θ)`` with :func:`integrators.solve` (``N`` steps
``y_{k+1} = Ψ_h(y_k; θ)``) and returns, for a terminal cost ``Φ(y_N)``, the exact gradient of
the *discrete* cost by the backward sweep

    λ_N = ∂Φ/∂y_N,   λ_k = (∂y_{k+1}/∂y_k)ᵀ λ_{k+1},   ∂Φ/∂θ = Σ_k (∂y_{k+1}/∂θ)ᵀ λ_{k+1}.

**Runge–Kutta methods** ``(A, b)`` (explicit, and implicit such as Gauss): the costate is the
adjoint-partner tableau ``(Â, b̂) = adjoint_partner(A, b)`` run backwards (the pair is a
symplectic partitioned RK method, so ``λᵀ δy`` is conserved and the costate is exact). With
stage values ``Y_i`` of the forward step, ``J_i = ∂f/∂y(Y_i)`` and ``G_i = −J_iᵀ P_i``:

    P_i = λ_{k+1} + h Σ_j (â_ij − b_j) G_j,     λ_k = λ_{k+1} − h Σ_i b_i G_i,
    ∂Φ/∂θ += h Σ_i b_i (∂f/∂θ(Y_i))ᵀ P_i.

Explicit: ``â_ij − b_j = −b_j a_ji / b_i`` vanishes for ``j ≤ i``, so the stages are solved
``i = s..1`` in turn. Implicit: the linear stage equations are solved by fixed-point iteration
(the tolerance rule of :mod:`integrators.implicit`); for Gauss methods ``Â = A`` (a Gauss
method is its own partner). The forward pass runs the method's own ``step`` and records its
stage values, so the sweep is the adjoint of exactly the map :func:`integrators.solve` uses
(implicit stages: up to the stage tolerance, i.e. round-off).

**Splitting methods** on a separable field (``q`` = first half of the last axis, ``p`` = the
second; ``f_q`` depends on ``p`` only and ``f_p`` on ``q`` only): ``symplectic_euler``,
``symplectic_euler_b``, ``verlet`` (drift–kick–drift: ``q += (h/2) f_q``, ``p += h f_p``,
``q += (h/2) f_q``), and compositions of them (``yoshida4``). Each sub-step is a shear
``y ← y + c h E f(y)`` (``E`` keeps the q- or the p-half); its transpose, applied in reverse
order at the sub-step's starting point ``y``, is

    λ ← λ + c h (∂f/∂y(y))ᵀ E λ,      ∂Φ/∂θ += c h (∂f/∂θ(y))ᵀ E λ.

No autograd is involved: the sweep is plain array arithmetic (call it under ``torch.no_grad()``
for torch tensors).

**Where it stands among the sweeps.** This is the generic form of the discrete costate
recursion (any field with ``vjp_y``/``vjp_theta``, one θ for all steps), used by ocdl's force
and holography networks. The ResNet sweeps of :mod:`ocdl.pmp` are the same recursion
specialised to a θ_k per layer and the fused field forms (``integrators`` imports nothing from
ocdl, so the dependency can only run that way).
"""
import numpy as np

from integrators import backend
from integrators.errors import IntegratorError
from integrators.implicit import FixedPoint
from integrators.methods import Composition, ExplicitRK, ImplicitRK, StormerVerlet, SymplecticEuler, SymplecticEulerB
from integrators.solve import _check_times, _options, get_method, solve
from integrators.tableaux import adjoint_partner

# sub-steps of the splitting methods on a separable field: (half, coefficient of h)
_SHEARS = {
    StormerVerlet: (("q", 0.5), ("p", 1.0), ("q", 0.5)),
    SymplecticEuler: (("p", 1.0), ("q", 1.0)),
    SymplecticEulerB: (("q", 1.0), ("p", 1.0)),
}


def shears(method):
    """The shear sequence ``[(half, c), ...]`` of a splitting method (``None`` for other methods)."""
    m = get_method(method)
    if isinstance(m, Composition):
        base = shears(m.base)
        return None if base is None else tuple((half, g * c) for g in m.gammas for half, c in base)
    for cls, seq in _SHEARS.items():
        if type(m) is cls:
            return seq
    return None


class _Recorder:
    """``y' = f(y, θ)`` as a method sees it, recording every evaluation point."""

    ncomp = 1

    def __init__(self, field, theta):
        self.field, self.theta, self.points = field, theta, []

    def f(self, t, state):
        self.points.append(state[0])
        return (self.field.f(state[0], self.theta),)


def _rk_forward(method, field, theta, y0, t0, h, steps, opts):
    """The forward pass of a Runge–Kutta method by its own ``step``: the trajectory and, per step,
    the stage values ``Y_1..Y_s`` (the last ``s`` evaluation points of the step)."""
    y, Y, stages = y0, [y0], []
    for k in range(steps):
        rec = _Recorder(field, theta)
        (y,) = method.step(rec, t0 + k * h, (y,), h, opts)
        if not backend.all_finite(y):
            raise IntegratorError(f"{method.name}: the solution became non-finite in the step from "
                                  f"t={t0 + k * h:.6g} (h={h:.3g}); use more steps")
        stages.append(rec.points[-len(method.b):])
        Y.append(y)
    return backend.stack(Y), stages


def _mask(lam, half, which):
    """``E λ``: λ with the other half of the last axis set to zero."""
    lo, hi = lam[..., :half], lam[..., half:]
    return backend.concat_last(lo, 0 * hi) if which == "q" else backend.concat_last(0 * lo, hi)


def _rk_costate(method, D, field, theta, Y, lam, h, opts, grad):
    """One backward step; ``D = b_j − â_ij`` (``P_i = λ + h Σ_j D_ij J_jᵀ P_j``), ``Y`` the stages."""
    b, s = method.b, len(method.b)
    if isinstance(method, ExplicitRK):
        P, JP = [None] * s, [None] * s
        for i in reversed(range(s)):
            acc = lam
            for j in range(i + 1, s):
                if D[i, j] != 0:
                    acc = acc + (h * D[i, j]) * JP[j]
            P[i] = acc
            JP[i] = field.vjp_y(Y[i], theta, acc)
    else:   # implicit stages, by fixed-point iteration
        P = [lam] * s
        fpt = FixedPoint(opts, f"{method.name} (costate)", 0.0, h, [[lam]])
        while True:
            JP = [field.vjp_y(Y[j], theta, P[j]) for j in range(s)]
            new = [lam + sum((h * D[i, j]) * JP[j] for j in range(s) if D[i, j] != 0) for i in range(s)]
            incr = [n - p for n, p in zip(new, P)]
            P = new
            if fpt.done([incr]):
                break
        JP = [field.vjp_y(Y[j], theta, P[j]) for j in range(s)]
    out = lam
    for i in range(s):
        out = out + (h * b[i]) * JP[i]
        grad = grad + (h * b[i]) * field.vjp_theta(Y[i], theta, P[i])
    return out, grad


def _split_costate(seq, field, theta, y, lam, h, grad):
    half = y.shape[-1] // 2
    points = []
    for which, c in seq:           # the sub-steps' starting points (forward)
        points.append(y)
        fy = field.f(y, theta)
        y = y + (c * h) * _mask(fy, half, which)
    for (which, c), yy in zip(reversed(seq), reversed(points)):
        e = _mask(lam, half, which)
        lam = lam + (c * h) * field.vjp_y(yy, theta, e)
        grad = grad + (c * h) * field.vjp_theta(yy, theta, e)
    return lam, grad


def costate_sweep(method, field, theta, y0, t0, t1, steps, terminal, **options):
    """Cost ``Φ(y_N)`` of ``N = steps`` steps of ``method`` and its exact gradients.

    ``terminal(y_N) → (Φ, ∂Φ/∂y_N)``. Returns ``(Φ, ∂Φ/∂θ, ∂Φ/∂y_0, Y)`` with ``Y`` the
    trajectory of :func:`integrators.solve` (shape ``(steps + 1, *y0.shape)``). ``options`` as
    for :func:`integrators.solve`; the splitting methods need ``separable=True`` (the promise
    that ``f_q`` depends on ``p`` only and ``f_p`` on ``q`` only — their forward map is then the
    explicit shear sequence transposed here). Raises ``ValueError`` for a method without a
    discrete adjoint here (Lobatto IIIA–IIIB, a splitting on a non-separable field, an RK
    tableau with a zero weight).
    """
    m = get_method(method)
    opts = _options(options)
    t0, t1, steps = _check_times(t0, t1, steps)
    seq = shears(m)
    if seq is None and not isinstance(m, (ExplicitRK, ImplicitRK)):
        raise ValueError(f"no discrete adjoint for method '{m.name}' (Runge–Kutta and splitting methods only)")
    if seq is not None and not opts.separable:
        raise ValueError(f"the costate of the splitting method '{m.name}' needs a separable field "
                         "(pass separable=True: f_q depends on p only, f_p on q only)")
    if seq is None and np.any(m.b == 0):
        raise ValueError(f"'{m.name}' has a zero weight b_i: no adjoint-partner tableau")
    h = (t1 - t0) / steps
    y0 = backend.as_state_array(y0, "y0")
    if seq is None:
        Y, stages = _rk_forward(m, field, theta, y0, t0, h, steps, opts)
        D = m.b[None, :] - adjoint_partner(m.A, m.b)[0]
    else:
        Y = solve(m, lambda t, y: field.f(y, theta), y0, t0, t1, steps, **options)
    phi, lam = terminal(Y[-1])
    grad = 0 * theta
    for k in reversed(range(steps)):
        if seq is None:
            lam, grad = _rk_costate(m, D, field, theta, stages[k], lam, h, opts, grad)
        else:
            lam, grad = _split_costate(seq, field, theta, Y[k], lam, h, grad)
    return phi, grad, lam, Y
