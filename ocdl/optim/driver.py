"""The one iteration driver: ``minimize(objective, x0, rule, iterations, ...)``.

Every optimisation loop in ocdl — the classifier solvers, the force tables, the PINN, the
mean-field training — runs here. The driver owns the run: the history, divergence, stopping,
checkpoints, progress and the caller's callback; a rule only computes the next iterate.

**The rule protocol.** A rule is a small object whose constructor holds its settings:

    state = rule.init(x, saved, run)
    x_next, state, info, stop = rule.update(state, point, run)      # a Step
    ok, text = rule.certify(state, point, run)                     # optional: its convergence test

``state`` is a dict; its entries are the checkpoint's ``"opt"`` arrays (``saved`` when resuming:
continuing from them is bit for bit), except keys beginning with ``_``: the rule's working memory
(torch's L-BFGS object, a flag its test reads), not checkpointed. ``point`` is the
:class:`Point` ``(it, x, f, g, info, batch)`` the driver evaluated: ``info`` holds what the
objective measured there (``kkt``, ``boundary_residual``), ``batch`` the mini-batch (None: all
data). :class:`Step` ``(x, state, info={}, stop=None)``: ``info`` goes into iterate ``it``'s history
row (``step``, ``cg_iterations``); ``stop=Stop(message, status)`` ends the run — with ``x`` given,
that last step is evaluated and recorded as the next iterate first (unless the iteration cap is
reached); with ``x=None`` the run ends at ``point.x``. ``run`` (the driver's :class:`Context`)
gives a rule ``run.call(x, batch) → (f, g, info)`` (trial points: no checks, no row),
``run.iterations``, ``run.gtol``, and for tests ``run.full_losses()``, ``run.epoch_losses()`` (a
mini-batch run, ``run.minibatch``), ``run.first_gmax``. A rule with ``certifies_minibatch = True``
has a test for mini-batch runs; for it the driver computes ``first_gmax`` on the full objective at
x_0 before the first step (one full gradient), else only ``gtol`` certifies a mini-batch run.
A rule never writes the history and raises nothing to stop.

An external solver that drives its own loop (scipy's L-BFGS-B, IPOPT) implements
``rule.run(state, x, run) → (x, state, status, message)`` instead of ``update`` and reports each
iterate through ``run.evaluate(it, x)``, ``run.record(it, x, f, info)`` (True: stop) and
``run.after_step(it, x, state)`` (checkpoint/interrupt): the same bookkeeping.

Run control is given as hook objects (:mod:`ocdl.optim.hooks`): ``progress=ProgressBar(quiet)``,
``callback=Callback(fn)``, ``divergence=Divergence(state_limit, loss_growth, hint)``,
``checkpointing=Checkpointing(save, every, should_stop, extra_state)``,
``early_stopping=EarlyStopping(monitor, patience, epoch_callback)``, ``keep_best=KeepBest()``,
``snapshots=Snapshots(at)``. One iteration ``it`` (1-based) is

1. ``f, g[, info] = objective(x, batch)`` (``batch`` from the ``sampler``, else None);
2. the divergence test: f or g non-finite, ``f > loss_growth · max(f_first, 1)``, or
   ``info["state_max"] > state_limit`` → :class:`~ocdl.errors.SolverError` whose ``result`` holds
   the last good iterate (status −1); a ``SolverError`` or ``IntegratorError`` raised by the
   objective or the rule (a failed inner solve) gets the same ``result`` before it propagates;
3. a history row ``{"iteration": it, "loss": f, "time_s", **info}``, the progress line, the
   callback (True stops: status 2), early stopping, snapshots and the best iterate;
4. the convergence test ``max |g| ≤ gtol`` (status 0), if ``gtol`` is given and the evaluation
   was of the full objective (no mini-batch);
5. ``rule.update``: its ``info`` joins row ``it``; its ``stop`` ends the run (above);
6. a checkpoint (``Checkpointing.save``) every ``every`` iterations and when ``should_stop()`` turns
   true (then ``KeyboardInterrupt``: the caller exits 130 and ``state0=`` resumes bit for bit).

Checkpoint state (the container is :func:`ocdl.data.save_checkpoint`)::

    {"iteration": it, "params": {"x": x, "best": …, "snap_i": …}, "opt": the rule's state,
     "history": [...], "meta": {"rng": sampler.state(), "extra": extra_state(), "best_loss": …,
                                 "snapshot_iterations": [...], "finished": bool, "result": {...}}}

Early stopping (``monitor=(key, "max"|"min")``, ``patience=P``): ``key`` is a metric the
``epoch_callback`` adds to the history row at each epoch's end (e.g. a validation accuracy). The
best iterate is then chosen by that metric (strict improvement; the iterate is the one the
epoch's last batch was evaluated at, the ``x`` the callback saw), not by the loss, and is the
returned ``x``; after ``P`` epochs without improvement the run stops with status 2 and a message
saying so. The best metric and the count of epochs without improvement are in the checkpoint.

When the run ends, the certificate decides ``success`` (:func:`_certify`): the rule's test
(``rule.certify``) or ``max |g| ≤ gtol``, on the full objective at the returned x.

When the run ends and ``checkpointing.save`` is given, the final state is saved with
``finished=True``; a ``state0`` marked finished is returned as its result without iterating
(multi-stage runs skip the stages they already completed).
"""
import math
import time
from typing import Any, NamedTuple

import numpy as np

from integrators.errors import IntegratorError
from ocdl.errors import InputError, SolverError
from ocdl.optim import hooks as _hooks
from ocdl.optim.hooks import (LOSS_GROWTH, Callback, Checkpointing, Divergence, EarlyStopping, KeepBest, ProgressBar,
                              Snapshots)
from ocdl.optim.result import CONVERGED, DIVERGED, ITERATION_CAP, STALLED, STOPPED, OptimizeResult


class Point(NamedTuple):
    """An iterate the driver evaluated: ``f, g, info = objective(x, batch)`` at iteration ``it``."""
    it: int
    x: Any
    f: float
    g: Any
    info: dict
    batch: Any = None


class Stop(NamedTuple):
    """A rule's reason to end the run: ``status`` 0 (its test passed — a claim the driver's
    certificate checks), 3 (stalled), …; ``message`` says why."""
    message: str
    status: int = CONVERGED


class Step(NamedTuple):
    """What ``rule.update`` returns: the next iterate ``x`` (None: no step, only with ``stop``), the
    rule's new ``state``, ``info`` for the current iterate's history row, and ``stop`` (None: go on)."""
    x: Any
    state: dict
    info: dict | None = None
    stop: Stop | None = None


def _copy(x):
    return x.clone() if hasattr(x, "clone") else np.array(x, dtype=float, copy=True)


def _numpy(x):
    return x.detach().cpu().numpy().astype(float) if hasattr(x, "detach") else np.asarray(x, dtype=float)


def _finite(a):
    if hasattr(a, "detach"):
        import torch
        return bool(torch.isfinite(a).all())
    return bool(np.all(np.isfinite(a)))


def _maxabs(a):
    return float(a.abs().max()) if hasattr(a, "detach") else float(np.max(np.abs(a))) if np.size(a) else 0.0


class Context:
    """The bookkeeping of one run (history, progress, divergence, checkpoints, callback); the
    ``run`` a rule sees (module docstring: what a rule may use)."""
    tensorboard = rule = grad_norm = None       # TensorBoard run (ocdl.optim.tensorboard), set by minimize

    def __init__(self, objective, name, iterations, *, gtol=None, sampler=None, state0=None, hooks=None):
        self.objective, self.name, self.iterations, self.gtol, self.sampler = objective, name, int(iterations), gtol, \
            sampler
        hooks = _hooks.check(hooks or {})
        self.checkpointing, self.divergence = hooks["checkpointing"], hooks["divergence"]
        self.early_stopping, self.callback = hooks["early_stopping"], hooks["callback"]
        self.keep_best, self.snapshotting = hooks["keep_best"], hooks["snapshots"]
        self.monitor, self.patience = self.early_stopping.monitor, self.early_stopping.patience
        self.stop_reason = None
        st = state0 or {}
        meta = st.get("meta", {}) or {}
        self.history = list(st.get("history", []))
        self.start = int(st.get("iteration", 0))
        self.first_loss = self.history[0]["loss"] if self.history else None
        self.snapshots = _hooks.Snapshots.load(st)
        self.best = None
        if "best" in st.get("params", {}):
            self.best = (float(meta["best_loss"]), np.array(st["params"]["best"], dtype=float),
                         dict(meta.get("best_info", {})))
        mon = meta.get("monitor") or {}
        self.best_metric, self.best_epoch, self.bad_epochs = mon.get("value"), mon.get("epoch"), int(mon.get("bad", 0))
        if sampler is not None and meta.get("rng") is not None:
            sampler.load_state(meta["rng"])
        self.time_offset = self.history[-1]["time_s"] if self.history else 0.0
        self.t0 = time.perf_counter()
        self.progress = (hooks["progress"] or ProgressBar(quiet=True)).open(self.iterations, name)
        self.last_good = None        # (f, x, info) of the last recorded iterate
        self.batch = None            # the batch the current iterate was evaluated on
        # the certificate's inputs: the last full-objective evaluation (x, f, g, info), the first
        # one's max |g|, and whether every evaluation is of the full objective (no mini-batches)
        self.last_full = None
        self.first_gmax = meta.get("first_gmax")
        self.all_full = sampler is None or getattr(sampler, "size", 0) >= getattr(sampler, "n", 1)
        # a mini-batch run over a finite sample (Batches): epochs, and a full objective to certify on
        self.minibatch = not self.all_full and hasattr(sampler, "size") and hasattr(sampler, "n")

    # ---------------------------------------------------------------- evaluation and checks
    def elapsed(self):
        return self.time_offset + time.perf_counter() - self.t0

    def call(self, x, batch=None):
        """``(f, g, info)`` of the objective at ``x`` — no checks, no recording (line searches)."""
        with np.errstate(over="ignore", invalid="ignore"):
            out = self.objective(x, batch)
        f, g = float(out[0]), out[1]
        info = dict(out[2]) if len(out) > 2 and out[2] else {}
        return f, g, info

    def evaluate(self, it, x, batch=None):
        """Evaluate at iterate ``it`` and apply the divergence test."""
        if batch is None and self.sampler is not None:
            batch = self.sampler.draw()
        self.batch = batch                   # the batch of this iterate (line searches reuse it)
        f, g, info = self.call(x, batch)
        if self.tensorboard is not None and g is not None:     # TensorBoard (ocdl.optim.tensorboard)
            self.grad_norm = float(np.linalg.norm(_numpy(g)))
        if self.first_loss is None and math.isfinite(f):
            self.first_loss = f
        what = self.divergence.test(f, g, info, self.first_loss)
        if what is not None:
            self.diverged(it, what)
        if batch is None and g is not None:
            self.last_full = (_copy(x), f, g, info)
            if self.first_gmax is None:
                self.first_gmax = _maxabs(g)
        return f, g, info

    def full_losses(self):
        """``[(iteration, J)]`` of the recorded iterates when every one is a full-objective value
        (no mini-batches), else ``[]`` — what the stalled-loss test reads."""
        return [(r["iteration"], r["loss"]) for r in self.history] if self.all_full else []

    def epoch_losses(self):
        """``[(epoch, L̄)]`` of a mini-batch run: each completed epoch's mean batch loss, weighted by
        the batch sizes (:func:`ocdl.optim.certificates.epoch_means`); ``[]`` for other runs."""
        if not self.minibatch:
            return []
        from ocdl.optim.certificates import epoch_means
        return epoch_means(self.history, self.sampler.n, self.sampler.size)

    def diverged(self, it, what):
        good = self.last_good
        if good is None and _finite(self._x_now):
            good = (float("nan"), _copy(self._x_now), {})
        res = self.result(good[1] if good else None, good[0] if good else float("nan"), DIVERGED,
                          f"diverged at iteration {it}: {what}", good[2] if good else {})
        self.progress.close()
        hint = self.divergence.hint
        err = SolverError(f"{self.name} diverged at iteration {it}: {what}" + (f"; {hint}" if hint else ""))
        err.result = res
        raise err

    # ---------------------------------------------------------------- recording
    def record(self, it, x, f, info=None):
        """History row, progress, snapshots, best iterate, callback; True when the callback stops."""
        info = {k: v for k, v in (info or {}).items() if k != "state_max"}
        row = {"iteration": int(it), "loss": float(f), "time_s": self.elapsed()}
        row.update({k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) and v is not None
                        and not isinstance(v, bool) else v) for k, v in info.items()})
        if self.sampler is not None and getattr(self.sampler, "epoch_done", False):
            row["epoch"] = int(self.sampler.epoch)
            if self.early_stopping.epoch_callback is not None:
                row.update(self.early_stopping.epoch_callback(int(self.sampler.epoch), x) or {})
        self.history.append(row)
        if self.tensorboard is not None:                        # TensorBoard (ocdl.optim.tensorboard)
            rate = getattr(self.rule, "rate", None)
            self.tensorboard.record(row, self.grad_norm, float(rate(it, self.iterations)) if callable(rate) else None)
        self.last_good = (float(f), _copy(x), info)
        if self.monitor is not None:
            self._monitor(row, x, f, info)
        elif self.keep_best is not None and self.keep_best.improves(f, self.best):
            self.best = (float(f), _numpy(x).copy(), info)
        if self.snapshotting is not None and it in self.snapshotting.at:
            self.snapshots.append((int(it), _numpy(x).copy()))
        self.progress.update(it, loss=float(f), **{k: v for k, v in info.items() if isinstance(v, float)})
        if self.stop_reason is not None:
            return True
        return self.callback is not None and self.callback.stops(it, x, f)

    def annotate(self, info):
        """A rule's ``Step.info`` joins the row of the iterate it stepped from (values as given)."""
        if info:
            self.history[-1].update(info)

    def _monitor(self, row, x, f, info):
        """Early stopping: track the best iterate by the monitored epoch metric; stop after
        ``patience`` epochs without strict improvement."""
        key = self.monitor[0]
        if key not in row:
            return
        v = float(row[key])
        if self.early_stopping.improves(v, self.best_metric):
            self.best_metric, self.best_epoch, self.bad_epochs = v, int(row.get("epoch", row["iteration"])), 0
            self.best = (float(f), _numpy(x).copy(), info)
        else:
            self.bad_epochs += 1
        if self.patience is not None and self.bad_epochs >= self.patience:
            self.stop_reason = (f"early stopping: {key} did not improve for {self.bad_epochs} epochs; "
                                f"best {key} {self.best_metric:.6g} at epoch {self.best_epoch}")

    # ---------------------------------------------------------------- checkpoints
    def state(self, it, x, rule_state, finished=None):
        params = {"x": _numpy(x)}
        meta = {"snapshot_iterations": [i for i, _ in self.snapshots]}
        params.update({f"snap_{j}": s for j, (_, s) in enumerate(self.snapshots)})
        if self.best is not None:
            params["best"] = self.best[1]
            meta["best_loss"], meta["best_info"] = self.best[0], _jsonable(self.best[2])
        if self.sampler is not None:
            meta["rng"] = self.sampler.state()
        if self.monitor is not None:
            meta["monitor"] = {"value": self.best_metric, "epoch": self.best_epoch, "bad": self.bad_epochs}
        if self.first_gmax is not None:
            meta["first_gmax"] = self.first_gmax
        if self.checkpointing.extra_state is not None:
            meta["extra"] = self.checkpointing.extra_state()
        if finished is not None:
            meta["finished"] = True
            meta["result"] = {k: finished[k] for k in ("fun", "success", "status", "message", "nit", "wall_time_s")}
            meta["result_extra"] = _jsonable({k: v for k, v in finished.items() if k not in (
                "x", "fun", "success", "status", "message", "nit", "wall_time_s", "history", "snapshots", "best")})
            params["x"] = _numpy(finished["x"])
        opt = {k: _numpy(v) for k, v in (rule_state or {}).items() if finished is None and not k.startswith("_")}
        return {"iteration": int(it), "params": params, "opt": opt, "history": list(self.history), "meta": meta}

    def after_step(self, it, x, rule_state):
        """Checkpoint on schedule or on interrupt (``x`` is the iterate *after* step ``it``,
        ``rule_state`` the rule's state then)."""
        stop, save_now = self.checkpointing.due(it)
        if save_now:
            self.checkpointing.save(self.state(it, x, rule_state))
        if stop:
            self.progress.close(f"{self.name}: interrupted at iteration {it}"
                                + ("; checkpoint saved" if self.checkpointing.save is not None else ""))
            raise KeyboardInterrupt

    # ---------------------------------------------------------------- the result
    def result(self, x, f, status, message, info=None):
        nit = self.history[-1]["iteration"] if self.history else self.start
        res = OptimizeResult(x=x, fun=float(f), success=status == CONVERGED, status=int(status),
                             message=str(message), nit=int(nit), history=self.history,
                             wall_time_s=self.elapsed())
        for k, v in (info or {}).items():
            if k != "state_max":
                res[k] = v
        if self.snapshotting is not None:
            res["snapshots"] = list(self.snapshots)
        return res


def _jsonable(d):
    out = {}
    for k, v in d.items():
        if isinstance(v, (bool, int, float, str)) or v is None:
            out[k] = v
        elif isinstance(v, (np.floating, np.integer)):
            out[k] = v.item()
    return out


def result_from_state(st):
    """The :class:`OptimizeResult` stored in a finished checkpoint state."""
    meta = st["meta"]
    res = OptimizeResult(x=np.array(st["params"]["x"], dtype=float), history=list(st["history"]),
                         **meta["result"], **meta.get("result_extra", {}))
    if meta.get("snapshot_iterations"):
        res["snapshots"] = _hooks.Snapshots.load(st)
    return res


def minimize(objective, x0, rule, iterations, *, name="", gtol=None, sampler=None, state0=None, after=None, **hooks):
    """Minimise ``objective`` from ``x0`` with ``rule`` for at most ``iterations`` iterations.

    ``hooks``: run control, by kind (:data:`ocdl.optim.hooks.HOOKS`): ``progress=ProgressBar(…)``,
    ``callback=Callback(…)``, ``checkpointing=Checkpointing(…)``, ``divergence=Divergence(…)``,
    ``early_stopping=EarlyStopping(…)``, ``keep_best=KeepBest()``, ``snapshots=Snapshots(at)``
    (not given or None: no progress line, no callback, no checkpoint, the default divergence test,
    no early stopping, the last iterate, no snapshots).
    ``after``: the :class:`OptimizeResult` of a previous phase this run continues (warm start →
    Newton): its iteration count, history and clock go on; ``iterations`` counts from 0 as usual
    (give ``after.nit + k`` for k more). The keywords the hooks replaced (``checkpoint=``,
    ``quiet=``, ``hint=``, …) raise a TypeError naming the replacement.

    Returns an :class:`~ocdl.optim.OptimizeResult` whose ``x`` is a flat float64 array (the best
    recorded iterate with ``keep_best``; with ``EarlyStopping.monitor=(key, mode)`` the best by that
    epoch metric, and ``patience`` epochs without improvement stop the run: early stopping). See the
    module docstring for the rule protocol, the iteration, the checkpoint state and ``status``.
    """
    hooks = _hooks.check(hooks)
    if state0 is not None and (state0.get("meta") or {}).get("finished"):
        return result_from_state(state0)
    if after is not None:            # a chained phase: continue the previous run's count, rows and clock
        if state0 is not None:
            raise ValueError("minimize: give state0 (resume) or after (chain a phase), not both")
        state0 = {"iteration": int(after.nit), "params": {"x": np.asarray(x0)}, "history": after.history}
    ctx = Context(objective, name or getattr(rule, "name", "minimize"), iterations, gtol=gtol, sampler=sampler,
                  state0=state0, hooks=hooks)
    monitor, checkpoint = ctx.monitor, ctx.checkpointing.save
    from ocdl.optim import tensorboard                          # TensorBoard: the session's current run
    ctx.tensorboard, ctx.rule = tensorboard.current(ctx.name), rule
    x = np.array(state0["params"]["x"], dtype=float) if state0 is not None else _copy(x0)
    if state0 is not None and x.shape != np.shape(x0):
        raise InputError(f"the checkpoint holds {x.size} parameters but this run has {np.size(x0)}; "
                         "it was made for another model — use another --checkpoint directory")
    if not hasattr(x, "clone"):
        x = np.asarray(x, dtype=float)
    ctx._x_now = x
    if ctx.minibatch and ctx.first_gmax is None and getattr(rule, "certifies_minibatch", False):
        # the mini-batch certificate's reference: max |∇J(x_0)| on the FULL objective, once (one full
        # gradient); kept in the checkpoint's meta, so a resumed run reads it instead
        g0 = ctx.call(x, None)[1]
        if g0 is not None and _finite(g0):
            ctx.first_gmax = _maxabs(g0)
    state = rule.init(x, (state0 or {}).get("opt"), ctx)
    try:
        if hasattr(rule, "run"):
            x, state, status, message = rule.run(state, x, ctx)
            f = info = None
        else:
            x, state, f, info, status, message = _loop(ctx, rule, x, state)
    except (SolverError, IntegratorError) as err:
        _attach_last_good(ctx, err)
        raise
    if f is None:                    # the last step was taken but not evaluated (iteration cap, external run)
        f, _, info = ctx.evaluate(ctx.history[-1]["iteration"] + 1 if ctx.history else 1, x)
    if monitor is not None and ctx.best is not None:
        f, x, info = ctx.best[0], ctx.best[1], ctx.best[2]
    elif ctx.keep_best is not None and ctx.keep_best.replaces(ctx.best, f, status):
        f, x, info = ctx.best[0], ctx.best[1], ctx.best[2]
    status, message, f = _certify(ctx, rule, state, x, f, status, message)
    ctx.progress.close()
    res = ctx.result(_numpy(x) if not hasattr(x, "clone") else x, f, status, message, info)
    if ctx.keep_best is not None or monitor is not None:
        res["best"] = True
    if monitor is not None:
        res["best_epoch"], res[f"best_{monitor[0]}"] = ctx.best_epoch, ctx.best_metric
    if ctx.snapshotting is not None:
        res["snapshots"].append((res.nit, _numpy(x).copy()))
    if checkpoint is not None:
        checkpoint(ctx.state(res.nit, x, None, finished=res))
    return res


def _certify(ctx, rule, state, x, f, status, message):
    """The driver's verdict at the returned ``x``: the rule's test (``rule.certify``, else
    ``max |g| ≤ gtol`` when a ``gtol`` is given) on the **full** objective there. Certified →
    status 0, whatever made the rule stop; a rule's claim that fails the test → status 3 (stalled).
    A rule without a test and no ``gtol`` keeps its own status (the Newton-type rules raise
    ``Stop(…, CONVERGED)`` only from their KKT test at the iterate they return).
    A mini-batch run is tested by the rule only when it declares ``certifies_minibatch`` (Adam,
    gradient descent: the epoch form of :func:`ocdl.optim.certificates.first_order`), else only by
    ``gtol``. Returns ``(status, message, f)``, ``f`` the full objective at x when it was evaluated."""
    from ocdl.optim import certificates
    test = getattr(rule, "certify", None)
    if test is None and ctx.gtol is not None:
        gradient = certificates.gradient(ctx.gtol)

        def test(state, point, run):
            return gradient(point.f, point.g, run)
    if test is None or status not in (CONVERGED, ITERATION_CAP, STALLED, STOPPED):
        return status, message, f
    if ctx.sampler is not None and not hasattr(ctx.sampler, "size"):
        ok, text = False, "a stochastic objective (no full objective to test)"
    elif not ctx.all_full and ctx.gtol is None and not getattr(rule, "certifies_minibatch", False):
        ok, text = False, ("a mini-batch run of this rule is certified only by max |gradient| ≤ gtol on the "
                           "full objective")
    else:
        full = ctx.last_full
        if full is None or not _same(full[0], x):
            fx, g, info_x = ctx.call(x, None)
            full = ctx.last_full = (_copy(x), fx, g, info_x)
        fx, g = full[1], full[2]
        if g is None or not (math.isfinite(fx) and _finite(g)):
            ok, text = False, "the objective at the returned point is not finite"
        else:
            it = ctx.history[-1]["iteration"] if ctx.history else ctx.start
            ok, text = test(state, Point(it, x, fx, g, full[3]), ctx)
            f = fx
    if ok:
        reason = "" if status == CONVERGED or message.startswith("converged") else f" ({message})"
        return CONVERGED, f"converged: {text}{reason}", f
    if status == CONVERGED:
        return STALLED, f"{message.removeprefix('converged: ')}, but the convergence test fails: {text}", f
    return status, f"{message}; {text}", f


def _same(a, b):
    if hasattr(a, "detach") or hasattr(b, "detach"):
        return a is b
    return np.shape(a) == np.shape(b) and np.array_equal(a, b)


def _attach_last_good(ctx, err):
    """An error raised inside the objective or a rule's step (an inner solve that failed, an
    integrator whose stages did not converge) keeps the work done so far: ``err.result`` is the
    last recorded iterate (status −1, like divergence) unless the error already carries one."""
    if getattr(err, "result", None) is not None or ctx.last_good is None:
        return
    f, x, info = ctx.last_good
    ctx.progress.close()
    err.result = ctx.result(_numpy(x) if not hasattr(x, "clone") else x, f, DIVERGED,
                            f"failed after iteration {ctx.history[-1]['iteration']}: {err}", info)


def _loop(ctx, rule, x, state):
    """The stepping loop (rules with ``update``) → ``(x, state, f, info, status, message)``; ``f`` None
    when the last step was not evaluated."""
    f, info = None, {}
    for it in range(ctx.start + 1, ctx.iterations + 1):
        ctx._x_now = x
        f, g, info = ctx.evaluate(it, x)
        if ctx.record(it, x, f, info):
            return x, state, f, info, STOPPED, ctx.stop_reason or f"stopped by the callback at iteration {it}"
        if ctx.gtol is not None and ctx.batch is None and _maxabs(g) <= ctx.gtol:     # full objective only
            return x, state, f, info, CONVERGED, f"converged: max |gradient| {_maxabs(g):.2e} ≤ gtol {ctx.gtol:g}"
        x_next, state, extra, stop = rule.update(state, Point(it, x, f, g, info, ctx.batch), ctx)
        ctx.annotate(extra)
        if stop is not None and x_next is None:
            return x, state, f, info, stop.status, stop.message
        x = x_next
        ctx.after_step(it, x, state)
        if stop is not None:                        # a last step: checkpointed above, evaluated and recorded
            if it == ctx.iterations:
                return x, state, None, info, stop.status, stop.message
            ctx._x_now = x
            f, g, info = ctx.evaluate(it + 1, x)
            if ctx.record(it + 1, x, f, info):
                return x, state, f, info, STOPPED, ctx.stop_reason or f"stopped by the callback at iteration {it + 1}"
            return x, state, f, info, stop.status, stop.message
    n = ctx.iterations
    if ctx.gtol is None and not hasattr(rule, "certify"):
        return x, state, None, info, ITERATION_CAP, f"iteration limit reached ({n}) (no convergence test for this rule)"
    return x, state, None, info, ITERATION_CAP, f"iteration limit reached ({n})"     # + the certificate's verdict


__all__ = ["minimize", "Point", "Step", "Stop", "Context", "Checkpointing", "Divergence", "EarlyStopping",
           "ProgressBar", "Callback", "KeepBest", "Snapshots", "LOSS_GROWTH", "result_from_state", "CONVERGED",
           "ITERATION_CAP", "STOPPED", "STALLED", "DIVERGED"]
