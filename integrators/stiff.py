"""A stiff test problem and the study of Newton against fixed-point stages on it.

**Van der Pol on its slow manifold** (Hairer–Wanner, *Solving ODEs II*, IV.1 and the test set's
VDPOL), in the singular-perturbation scaling with ``ε = 1/μ²``:

    y₁' = y₂,        ε y₂' = (1 − y₁²) y₂ − y₁,        y(0) = (2, −2/3 + 10/81 ε − 292/2187 ε²),

the initial value lying on the slow manifold to O(ε³), so the solution has no initial layer. On
``[0, 0.5]`` it follows the slow manifold (the first relaxation jump is near ``t ≈ 0.8``);
``∂F/∂y`` has the eigenvalue ``≈ (1 − y₁²)/ε ≈ −3/ε``, so fixed-point stage iteration needs
``h ≲ ε`` while Newton's stage solve is limited only by the method's accuracy.

:func:`stiff_study` measures (1) the largest step for which one fixed-point stage solve from
``y(0)`` converges (bisection in ``log h``), (2) the step counts at which Newton's stages
converge over the whole interval, and (3) the error at ``t_end`` against scipy's Radau IIA
(``solve_ivp(method="Radau")``, ``rtol = atol = 1e-12``, its own adaptive steps, with the exact
Jacobian), an independent reference.
"""
import time
from dataclasses import dataclass

import numpy as np

from integrators.errors import IntegratorError


@dataclass
class StiffProblem:
    name: str
    rhs: object          # rhs(t, y)
    jacobian: object     # jacobian(t, y) -> (2, 2)
    y0: np.ndarray
    t_end: float
    description: str


def van_der_pol(eps=1e-6, t_end=0.5):
    """Van der Pol in the ε-scaling (see the module docstring); ``eps = 1/μ²`` (1e-6: μ = 1000)."""
    eps = float(eps)

    def rhs(t, y):
        return np.array([y[1], ((1.0 - y[0] ** 2) * y[1] - y[0]) / eps])

    def jacobian(t, y):
        return np.array([[0.0, 1.0], [(-2.0 * y[0] * y[1] - 1.0) / eps, (1.0 - y[0] ** 2) / eps]])

    y0 = np.array([2.0, -2.0 / 3.0 + 10.0 / 81.0 * eps - 292.0 / 2187.0 * eps ** 2])
    return StiffProblem("van-der-pol", rhs, jacobian, y0, float(t_end),
                        f"Van der Pol, eps = {eps:g} (mu = {eps ** -0.5:g}), slow manifold, t in [0, {t_end:g}]")


def radau_reference(problem, rtol=1e-12, atol=1e-12):
    """``y(t_end)`` by scipy's Radau IIA (adaptive, exact Jacobian)."""
    from scipy.integrate import solve_ivp
    sol = solve_ivp(problem.rhs, (0.0, problem.t_end), problem.y0, method="Radau", rtol=rtol, atol=atol,
                    jac=problem.jacobian)
    if not sol.success:
        raise IntegratorError(f"scipy Radau failed on {problem.name}: {sol.message}")
    return sol.y[:, -1]


def _one_step_converges(method, problem, h, stage_solver):
    import integrators
    try:
        integrators.solve(method, problem.rhs, problem.y0, 0.0, h, 1, stage_solver=stage_solver)
        return True
    except IntegratorError:
        return False


def largest_fixed_point_step(method, problem, lo=1e-12, hi=1.0, iterations=40):
    """The largest ``h`` (to a factor ``(hi/lo)^(2^-iterations)``) for which one fixed-point stage
    solve from ``y(0)`` converges; bisection in ``log h`` (convergence is monotone in ``h`` here:
    the contraction factor grows like ``h ‖J‖``)."""
    if not _one_step_converges(method, problem, lo, "fixed-point"):
        raise IntegratorError(f"fixed-point stages of {method} fail even at h = {lo:g}")
    if _one_step_converges(method, problem, hi, "fixed-point"):
        return hi
    for _ in range(iterations):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if _one_step_converges(method, problem, mid, "fixed-point") else (lo, mid)
    return lo


def stiff_study(method="gauss2", problem=None, steps=(25, 50, 100, 200, 400), simplified=True):
    """Newton stages against fixed point on a stiff problem; returns a JSON-ready dict.

    ``runs``: per step count, the step ``h``, ``h / h_fixed_point``, whether Newton converged over
    the whole interval, the max-norm error at ``t_end`` against Radau, and the time.
    """
    import integrators
    problem = problem or van_der_pol()
    ref = radau_reference(problem)
    h_fp = largest_fixed_point_step(method, problem)
    runs = []
    for n in steps:
        h = problem.t_end / n
        t0 = time.perf_counter()
        try:
            Y = integrators.solve(method, problem.rhs, problem.y0, 0.0, problem.t_end, n, stage_solver="newton",
                                  jacobian=problem.jacobian, simplified=simplified)
            ok, err = True, float(np.max(np.abs(Y[-1] - ref)))
        except IntegratorError as exc:
            ok, err = False, str(exc)
        runs.append({"steps": int(n), "h": h, "h_over_fixed_point": h / h_fp, "converged": ok,
                     "error_vs_radau": err if ok else None, "message": None if ok else err,
                     "time_s": time.perf_counter() - t0})
    return {"method": method, "problem": problem.description, "simplified": simplified,
            "fixed_point_max_step": h_fp, "radau_reference": ref.tolist(), "runs": runs}
