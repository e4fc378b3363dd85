"""Levenberg–Marquardt / Gauss–Newton for least squares ``J(x) = |r(x)|²``.

    (JᵀJ + μ diag(JᵀJ)) δ = −Jᵀ r,   accept if the cost does not rise (μ ← μ/3), else μ ← 4μ.

Use ``rule.objective`` as the driver's objective (it caches ``r`` and the Jacobian for the step).
It stops when the gradient ``Jᵀr`` is negligible (``gtol`` relative to ``|r| · max √diag(JᵀJ)``),
when no damped step lowers the cost in 40 tries, or when the relative decrease stays below
``ftol`` for 3 accepted steps. Certificate (``certify``, at the returned x): the gradient test, or
the relative decrease below ``ftol`` for the 3 steps that led to x, or an accepted last step
that changed J by < 1e-15 relative and x by < 1e-10 relative (both: the minimum to round-off).
40 rejected steps alone are not convergence (a poorly scaled Jacobian gives them too).
"""
import math

import numpy as np

from ocdl.optim.driver import Step, Stop
from ocdl.optim.result import CONVERGED, STALLED


class LevenbergMarquardt:
    name = "Levenberg–Marquardt"

    def __init__(self, residual, jacobian, gtol=1e-13, ftol=1e-10, mu0=1e-4):
        self.residual, self.jacobian = residual, jacobian
        self.gtol, self.ftol, self.mu0 = float(gtol), float(ftol), float(mu0)
        self._r = None      # (x, r)
        self._J = None      # (x, J)

    def _res(self, x):
        if self._r is None or not np.array_equal(self._r[0], x):
            self._r = (np.array(x, dtype=float), np.asarray(self.residual(x), dtype=float))
        return self._r[1]

    def _jac(self, x):
        if self._J is None or not np.array_equal(self._J[0], x):
            self._J = (np.array(x, dtype=float), np.asarray(self.jacobian(x), dtype=float))
        return self._J[1]

    def objective(self, x, batch=None):
        """``(|r|², 2 Jᵀ r)``."""
        r = self._res(x)
        return float(r @ r), 2.0 * (self._jac(x).T @ r)

    def init(self, x, saved, run):
        """State: the damping ``mu``, the count ``stalled`` of accepted steps with a relative decrease
        below ``ftol``, ``_roundoff`` (the last step was at round-off; not checkpointed)."""
        return {"mu": np.array(float(saved["mu"]) if saved else self.mu0),
                "stalled": np.array(float(int(saved["stalled"]) if saved else 0)), "_roundoff": False}

    def _gradient_test(self, x, f):
        r, J = self._res(x), self._jac(x)
        gv = J.T @ r
        H = J.T @ J
        bound = self.gtol * max(f, 1e-300) ** 0.5 * max(np.sqrt(np.diag(H)).max(), 1.0)
        gm = float(np.abs(gv).max())
        return gm <= bound, (f"max |Jᵀr| {gm:.2e} {'≤' if gm <= bound else '>'} {bound:.2e} "
                             f"(gtol {self.gtol:g} × |r| × max √diag JᵀJ)")

    def certify(self, state, p, run):
        ok, text = self._gradient_test(p.x, p.f)
        if not ok and state["stalled"] >= 3:
            return True, f"relative cost decrease below {self.ftol:g} for 3 steps; {text}"
        if not ok and state["_roundoff"]:
            return True, f"the last accepted step and cost decrease are at round-off; {text}"
        return ok, text

    def update(self, state, p, run):
        x, f = p.x, p.f
        mu, stalled = float(state["mu"]), int(state["stalled"])
        r, J = self._res(x), self._jac(x)
        gv = J.T @ r
        H = J.T @ J
        dH = np.maximum(np.diag(H), 1e-12 * max(np.diag(H).max(), 1e-300))
        if self._gradient_test(x, f)[0]:
            return Step(None, state, stop=Stop("converged: gradient below tolerance (Gauss–Newton)", CONVERGED))
        for _ in range(40):
            try:
                delta = np.linalg.solve(H + mu * np.diag(dH), -gv)
            except np.linalg.LinAlgError:
                mu *= 4
                continue
            x_new = x + delta
            r_new = np.asarray(self.residual(x_new), dtype=float)
            c_new = float(r_new @ r_new)
            if math.isfinite(c_new) and c_new <= f:
                break
            mu *= 4
        else:
            return Step(None, dict(state, mu=np.array(mu)),
                        stop=Stop("no damped Gauss–Newton step lowers the cost (40 tries)", STALLED))
        self._r = (x_new, r_new)
        rel = (f - c_new) / max(f, 1e-300)
        stalled = stalled + 1 if rel < self.ftol else 0
        state = {"mu": np.array(max(mu / 3, 1e-12)), "stalled": np.array(float(stalled)), "_roundoff": False}
        if stalled >= 3:
            return Step(x_new, state, stop=Stop(f"relative cost decrease below {self.ftol:g} for 3 steps", STALLED))
        if rel < 1e-15 and np.abs(delta).max() <= 1e-10 * (1 + np.abs(x_new).max()):
            state["_roundoff"] = True      # an accepted step that changes neither J nor x beyond round-off
            return Step(x_new, state, stop=Stop("step and cost decrease at round-off", STALLED))
        return Step(x_new, state)
