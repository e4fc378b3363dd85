"""Measurements behind ``ocdl integrators`` and the examples: order of convergence and energy error.

* :func:`measured_order` — integrate one period with ``n, 2n, 4n, …`` steps, compare with the
  problem's exact solution, and fit the log–log slope of the error against the step size over
  the four finest step sizes whose error is still above ``floor`` (so round-off does not flatten
  the slope).
* :func:`energy_run` — one long run; ``|H(q_n, p_n) − H(q_0, p_0)|`` at every step.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from integrators.errors import IntegratorError
from integrators.solve import get_method, solve_partitioned


@dataclass
class OrderStudy:
    method: str
    order: float                      # fitted slope (nan if fewer than 2 usable points)
    steps: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    used: int = 0                     # how many (finest) points the slope was fitted on


def measured_order(method, problem, start=8, max_steps=8192, floor=1e-11, points=4, fraction=0.7,
                   **options):
    """Fitted order of ``method`` on ``problem`` (see the module docstring).

    The error is measured at ``t = fraction · period`` — not at a full or half period, where
    the symmetry of a periodic orbit can cancel the leading error term (symplectic Euler then
    looks second order). Step counts double from ``start`` until the last ``points`` errors
    above ``floor`` have local slopes within 0.15 of each other and the error is below 1e-2
    (the asymptotic regime), an
    error falls below ``floor``, or ``max_steps`` is passed.
    """
    m = get_method(method)
    T = fraction * problem.period
    qe, pe = problem.exact(T)
    steps, errors = [], []
    n = start
    while n <= max_steps:
        try:
            Q, P = solve_partitioned(m, problem.fq, problem.fp, problem.q0, problem.p0, 0.0, T, n, **options)
            err = float(max(np.abs(Q[-1] - qe).max(), np.abs(P[-1] - pe).max()))
        except IntegratorError:
            err = float("nan")
        if np.isfinite(err) and err < 1.0:
            steps.append(n)
            errors.append(err)
            if err < floor:
                break
            if len(errors) >= points:
                local = -np.diff(np.log(errors[-points:])) / np.log(2.0)
                if local.max() - local.min() < 0.15 and err < 1e-2:
                    break
        n *= 2
    use = [(s, e) for s, e in zip(steps, errors) if e >= floor][-points:]
    if len(use) < 2:
        return OrderStudy(m.name, float("nan"), steps, errors, len(use))
    h = np.log([T / s for s, _ in use])
    slope = float(np.polyfit(h, np.log([e for _, e in use]), 1)[0])
    return OrderStudy(m.name, slope, steps, errors, len(use))


@dataclass
class EnergyRun:
    method: str
    t: np.ndarray
    energy_error: np.ndarray          # |H_n − H_0|
    invariant_error: np.ndarray       # |I_n − I_0| for the problem's quadratic invariant (or None)
    time_s: float
    message: str = ""


def energy_run(method, problem, steps, periods, **options):
    """Integrate ``periods`` periods in ``steps`` steps; energy error at every step and wall time."""
    m = get_method(method)
    T = periods * problem.period
    t0 = time.perf_counter()
    Q, P = solve_partitioned(m, problem.fq, problem.fp, problem.q0, problem.p0, 0.0, T, steps, **options)
    elapsed = time.perf_counter() - t0
    H0 = problem.energy(problem.q0, problem.p0)
    dH = np.abs(problem.energy(Q, P) - H0)
    dI = None
    if problem.invariant is not None:
        dI = np.abs(problem.invariant(Q, P) - problem.invariant(problem.q0, problem.p0))
    return EnergyRun(m.name, np.linspace(0.0, T, steps + 1), dH, dI, elapsed)
