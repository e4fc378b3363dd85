"""The pieces every Pontryagin solver shares (newton, ipopt, shooting, msa).

- :func:`check_options`, :func:`refuse_checkpoints`: one-line errors for options a solver does
  not have and for resuming the multi-phase solvers;
- :class:`KKTObjective`: ``(J, ∇J, {"kkt"})`` on the flat parameters — the exact costate gradient
  (:func:`ocdl.pmp.value_and_grad`) and the shared KKT residual (:func:`ocdl.pmp.kkt_residual`,
  ``max(‖∂J/∂θ_k‖∞/h, ‖∂J/∂(W, μ)‖∞)``, which equals the full-space ``‖F(z)‖∞`` of the discrete
  PMP system at the iterate's exact states and costates);
- :class:`Phases`: a multi-phase solve (warm start, then the solver) with one history and clock,
  each phase one :func:`ocdl.optim.minimize` run;
- :class:`UntilKKT`, :func:`adam_phase`, :func:`lbfgs_phase`: warm-start phases that stop at a KKT
  target (newton's and shooting's Adam warm start is :func:`adam_phase`).
"""
import time

import numpy as np

from ocdl import optim, pmp
from ocdl.errors import SolverError
from ocdl.optim import CONVERGED, ITERATION_CAP, STOPPED, Step, Stop
from ocdl.solvers.gradient import DIVERGENCE


def check_options(name, unknown):
    """One-line error for options a solver does not have (``ocdl train --lr`` with ``--solver msa``)."""
    if unknown:
        raise SolverError(f"{name}: unknown option(s) {', '.join(sorted(unknown))}")


def refuse_checkpoints(name, state0, checkpoint):
    """The multi-phase CasADi solvers do not resume: a one-line error for ``--resume``/``--checkpoint``."""
    if state0 is not None:
        raise SolverError(f"{name} cannot resume from a checkpoint (--resume); rerun it from the start")
    if checkpoint is not None:
        raise SolverError(f"{name} does not write checkpoints; drop --checkpoint for this solver")


class KKTObjective:
    """``objective(x, batch) → (J, ∇J, {"kkt", "phase"})`` for :func:`ocdl.optim.minimize` on the flat
    parameters: the exact costate gradient (:func:`ocdl.pmp.value_and_grad`) and the shared KKT
    residual :func:`ocdl.pmp.kkt_residual`, of the rows ``batch`` (None: all data; a mini-batch:
    the batch cost ``J_B``). ``phase`` (set by the solver) labels the history rows.
    The last two evaluations are remembered: a trust-region step evaluates its trial point, which
    the driver evaluates again as the next iterate."""

    def __init__(self, model, X, y, phase=""):
        self.model, self.X, self.y, self.phase = model, X, y, phase
        self._cache = []

    def data(self, rows):
        return (self.X, self.y) if rows is None else (self.X[rows], self.y[rows])

    def grad(self, x, rows=None):
        """∇J of the rows ``rows`` (None: all) only (not remembered: finite-difference
        Hessian-vector products)."""
        return self.model.flatten(pmp.value_and_grad(self.model, self.model.unflatten(x), *self.data(rows))[1])

    def __call__(self, x, batch=None):
        for xc, bc, cached in self._cache:
            if np.array_equal(xc, x) and (bc is batch or (bc is not None and batch is not None
                                                          and np.array_equal(bc, batch))):
                out = cached
                break
        else:
            params = self.model.unflatten(x)
            X, y = self.data(batch)
            J, grads = pmp.value_and_grad(self.model, params, X, y)
            out = (J, self.model.flatten(grads), pmp.kkt_residual(self.model, params, X, y, grads=grads))
            self._cache = [(np.array(x, dtype=float, copy=True), None if batch is None else np.array(batch), out)] \
                + self._cache[:1]
        return out[0], out[1], {"kkt": out[2], "phase": self.phase}


class UntilKKT:
    """A stepping rule that also stops the run, converged (status 0), once the iterate's ``kkt``
    (measured by the objective) is ≤ ``tol``; the wrapped rule's state is its state."""

    def __init__(self, rule, tol):
        self.rule, self.tol, self.name = rule, float(tol), rule.name

    def init(self, x, saved, run):
        return self.rule.init(x, saved, run)

    def update(self, state, p, run):
        kkt = p.info["kkt"]
        if kkt <= self.tol:
            return Step(None, state, stop=Stop(f"converged: KKT residual {kkt:.2e} <= {self.tol:g}", CONVERGED))
        return self.rule.update(state, p, run)


class Phases:
    """The phases of one multi-phase solve (warm start, Newton, restarts) on :func:`ocdl.optim.minimize`:
    each phase continues the previous one's iteration count, history and clock (``minimize(after=…)``),
    so the result has one history whose ``time_s`` is measured from the
    solver's start (time between phases included). ``to_params`` maps the phase's flat ``x``
    to the parameter dict (for the callback and for ``err.result`` of a divergence)."""

    def __init__(self, name, model, callback, quiet, should_stop):
        self.name, self.model, self.callback, self.quiet, self.should_stop = name, model, callback, quiet, should_stop
        self.last, self.user_stopped, self.t0 = None, False, time.perf_counter()

    def run(self, objective, x, rule, iterations, to_params, stop_test=None, extra=None):
        """``iterations`` more iterations of ``rule`` from ``x``; ``stop_test(x)`` True ends the phase
        (status 2, like a callback) — used for the L-BFGS warm start's KKT target. ``extra``: more
        keywords of :func:`ocdl.optim.minimize` (mini-batches: sampler, early_stopping)."""
        prev = self.last

        def cb(it, xx, f):
            if self.callback is not None and self.callback(it, to_params(xx), f):
                self.user_stopped = True
                return True
            return bool(stop_test is not None and stop_test(xx))

        start = 0 if prev is None else prev.nit
        # the driver's clock continues from the last row's time; the time spent outside the
        # phases (CasADi builds, a warm start by another solver) is added to this phase's rows
        before = prev.history if prev is not None else []
        gap = time.perf_counter() - self.t0 - (before[-1]["time_s"] if before else 0.0)

        def shift(history):
            for row in history[len(before):]:
                row["time_s"] += gap
        try:
            res = optim.minimize(objective, x, rule, start + int(iterations), name=self.name,
                                 progress=optim.ProgressBar(self.quiet), callback=optim.Callback(cb), after=prev,
                                 divergence=DIVERGENCE, checkpointing=optim.Checkpointing(should_stop=self.should_stop),
                                 **(extra or {}))
        except SolverError as err:
            if getattr(err, "result", None) is not None:
                shift(err.result.history)
                if err.result.x is not None:
                    err.result.x = to_params(np.asarray(err.result.x, dtype=float))
                err.result.update(model=self.model, solver=self.name)
            raise
        shift(res.history)
        self.last = res
        return res

    def finish(self, params, **extra):
        res = self.last
        res.x = params
        res.update(model=self.model, solver=self.name, wall_time_s=time.perf_counter() - self.t0, **extra)
        return res


def adam_phase(phases, objective, z, iterations, lr, tol, sampler=None):
    """The Adam warm start of newton and shooting: ``iterations`` steps of the adam solver's rule —
    AMSGrad, cosine schedule ``a_t = lr (1 + cos(π (t − 1)/iterations))/2`` (:mod:`ocdl.optim.schedules`),
    so the last step is taken at ≈ (π/2w)² lr, w = ``iterations`` (2.5·10⁻⁶ lr at w = 1000) — on
    the exact costate gradient ∇J (of the mini-batch cost ``J_B`` when a ``sampler`` draws batches;
    rows: phase "adam"), stopping early, converged, once ‖F(z)‖∞ ≤ ``tol``.

    Hand-over: in full batch the best iterate by the recorded loss (the full cost J, the driver's
    ``keep_best``), so the next phase never starts above the lowest J the warm start reached; in
    mini-batches the last iterate (a mini-batch loss is no measure of the iterate, the decaying
    schedule is what makes the last iterate a good one).

    Why (docs/compare.md, digits): with a constant lr 0.02 and plain Adam on batches of 512
    newton's warm start reached J_B = 0.037 and then diverged (step ≈ 700 of 1000: loss 0.04 → 35),
    and Newton–CG started from the last, diverged iterate; shooting's Adam warm start had the same
    constant-rate rule.
    """
    objective.phase = "adam"
    rule = UntilKKT(optim.Adam(lr), tol)            # Adam's defaults = the adam solver's: cosine, AMSGrad
    extra = {"keep_best": optim.KeepBest()} if sampler is None else {"sampler": sampler}
    return phases.run(objective, z, rule, iterations, phases.model.unflatten, extra=extra)


def lbfgs_phase(phases, objective, z, iterations, warm_tol):
    """scipy L-BFGS-B on J with the exact costate gradient until the KKT residual is ≤ ``warm_tol``
    (rows: phase "lbfgs"); status 0 when it got there."""
    objective.phase = "lbfgs"
    res = phases.run(objective, z, optim.LBFGS(gtol=0.0, ftol=0.0, maxcor=20), iterations, phases.model.unflatten,
                     stop_test=lambda x: objective(x)[2]["kkt"] <= warm_tol)
    if res.status == STOPPED and not phases.user_stopped:
        res.update(status=CONVERGED, success=True,
                   message=f"warm start converged: KKT residual {res.kkt:.2e} <= {warm_tol:g}")
    return res


def cap_message(res, what, n, tol, key="kkt"):
    if res.status == ITERATION_CAP:
        res.message = f"iteration limit reached ({n} {what}) before convergence ({key} {res[key]:.2e} > tol {tol:g})"
