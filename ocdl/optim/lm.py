"""The one damping rule of ocdl's Levenberg–Marquardt codes (:class:`Damping`), and
Levenberg–Marquardt / Gauss–Newton for least squares ``J(x) = |r(x)|²`` (:class:`LevenbergMarquardt`).

:class:`Damping` is the state machine every damped Gauss–Newton step in ocdl shares — propose a
step with the damping λ, test it, accept or reject it, update λ, give up after ``tries`` rejections
— with the linear solve and the test supplied by the caller, who keeps its own linear algebra:
:class:`LevenbergMarquardt` (dense, ``diag(JᵀJ)`` damping), :class:`ocdl.solvers.shooting.ShootingLM`
(bordered block solve, isotropic damping), the Gauss–Newton branch of
:class:`ocdl.solvers.trust_region.TrustRegionNewtonCG` (CG on ``G + λI``) and the ρ rule of
:class:`ocdl.solvers.msa.MSARule` (the augmented Hamiltonian's penalty is a damping too).

:class:`LevenbergMarquardt`::

    (JᵀJ + μ diag(JᵀJ)) δ = −Jᵀ r,   accept if the cost does not rise (μ ← max(μ/3, 1e-12)), else μ ← 4μ.

Use ``rule.objective`` as the driver's objective (it caches ``r`` and the Jacobian for the step).
It stops when the gradient ``Jᵀr`` is negligible (``gtol`` relative to ``|r| · max √diag(JᵀJ)``),
when no damped step lowers the cost in 40 tries, or when the relative decrease stays below
``ftol`` for 3 accepted steps. Certificate (``certify``, at the returned x): the gradient test, or
the relative decrease below ``ftol`` for the 3 steps that led to x, or an accepted last step
that changed J by < 1e-15 relative and x by < 1e-10 relative (both: the minimum to round-off).
40 rejected steps alone are not convergence (a poorly scaled Jacobian gives them too).
"""
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ocdl.optim.driver import Step, Stop
from ocdl.optim.result import CONVERGED, STALLED

TESTS = ("decrease", "ratio")


class Damped(NamedTuple):
    """The outcome of :meth:`Damping.search`: the caller's ``payload`` of the last trial (None when its
    solve failed), the damping ``lam`` that trial used, the damping ``next`` the following search
    starts from, whether the step was ``accepted``, and the number of ``tries``."""
    payload: Any
    lam: float
    next: float
    accepted: bool
    tries: int


@dataclass(frozen=True)
class Damping:
    """The damping rule of a Levenberg–Marquardt step (Levenberg 1944, Marquardt 1963): the caller's
    ``trial(λ) → (payload, verdict)`` solves its damped system (e.g. ``(JᵀJ + λD) δ = −Jᵀr``) and tests
    the step; this rule decides acceptance and the next λ. Two tests, by name:

    * ``test="decrease"`` — accept/reject by decrease: ``verdict`` is True when the trial lowers the
      cost. Accepted → ``λ ← 0`` if ``λ < zero_below`` else ``max(λ / decrease, floor)``; rejected
      (or the solve raised ``LinAlgError``) → ``λ ← max(increase · λ, least)`` and the caller solves
      again, at most ``tries`` times; all rejected → :meth:`gives_up` (stalled, status 3).
    * ``test="ratio"`` — the ratio test (Moré 1978; Martens 2010 §4.1): ``verdict`` is
      ``ρ = (J(x) − J(x + δ)) / (−gᵀδ − ½ δᵀGδ)``, actual over predicted decrease; one trial per
      call; ``λ ← increase · λ`` if ρ < 1/4, ``λ · (1/decrease)`` if ρ > 3/4, else unchanged; the step
      is taken if ``ρ > accept`` (a rejected step leaves x, the next call tries the larger λ).
    """
    test: str = "decrease"
    increase: float = 4.0
    decrease: float = 3.0
    tries: int = 40
    floor: float = 0.0
    least: float = 0.0
    zero_below: float = 0.0
    accept: float = 1e-4

    def __post_init__(self):
        if self.test not in TESTS:
            raise ValueError(f"Damping: unknown test {self.test!r} (valid: {', '.join(TESTS)})")

    def search(self, lam, trial):
        """Run the trials from the damping ``lam`` → :class:`Damped`."""
        lam = float(lam)
        if self.test == "ratio":
            payload, rho = trial(lam)
            # (λ · (1/decrease): Martens' "2/3 λ" as a product, bit for bit — 1/1.5 and 2/3 round alike)
            nxt = lam * self.increase if rho < 0.25 else lam * (1.0 / self.decrease) if rho > 0.75 else lam
            return Damped(payload, lam, nxt, bool(rho > self.accept), 1)
        for k in range(1, self.tries + 1):
            try:
                payload, lowers = trial(lam)
            except np.linalg.LinAlgError:   # a singular (e.g. undamped) system: damp more
                payload, lowers = None, False
            if lowers:
                nxt = 0.0 if lam < self.zero_below else max(lam / self.decrease, self.floor)
                return Damped(payload, lam, nxt, True, k)
            lam = max(lam * self.increase, self.least)
        return Damped(None, lam, lam, False, self.tries)

    def gives_up(self, what, detail=""):
        """The stop when no trial was accepted: ``Stop("no damped step lowers <what> in <tries> tries
        (<detail>)", STALLED)`` — rejected steps are not convergence."""
        return Stop(f"no damped step lowers {what} in {self.tries} tries" + (f" ({detail})" if detail else ""), STALLED)


#: :class:`LevenbergMarquardt`'s rule: μ/3 on acceptance (at least 1e-12), 4μ on rejection, 40 tries
LM_DAMPING = Damping("decrease", increase=4.0, decrease=3.0, tries=40, floor=1e-12)


class LevenbergMarquardt:
    """Dense Levenberg–Marquardt with Marquardt's scaling ``diag(JᵀJ)`` (module docstring); the
    damping μ follows :data:`LM_DAMPING` (state ``mu``)."""
    name = "Levenberg–Marquardt"
    damping = LM_DAMPING

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

        def trial(mu):
            delta = np.linalg.solve(H + mu * np.diag(dH), -gv)
            x_new = x + delta
            r_new = np.asarray(self.residual(x_new), dtype=float)
            c_new = float(r_new @ r_new)
            return (delta, x_new, r_new, c_new), math.isfinite(c_new) and c_new <= f
        d = self.damping.search(mu, trial)
        if not d.accepted:
            return Step(None, dict(state, mu=np.array(d.next)), stop=self.damping.gives_up("the cost"))
        delta, x_new, r_new, c_new = d.payload
        self._r = (x_new, r_new)
        rel = (f - c_new) / max(f, 1e-300)
        stalled = stalled + 1 if rel < self.ftol else 0
        state = {"mu": np.array(d.next), "stalled": np.array(float(stalled)), "_roundoff": False}
        if stalled >= 3:
            return Step(x_new, state, stop=Stop(f"relative cost decrease below {self.ftol:g} for 3 steps", STALLED))
        if rel < 1e-15 and np.abs(delta).max() <= 1e-10 * (1 + np.abs(x_new).max()):
            state["_roundoff"] = True      # an accepted step that changes neither J nor x beyond round-off
            return Step(x_new, state, stop=Stop("step and cost decrease at round-off", STALLED))
        return Step(x_new, state)
