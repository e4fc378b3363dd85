"""The result type and the loop machinery shared by the gradient-based solvers.

Every solver runs ``iterations`` steps and records, per iteration, ``{"iteration", "loss",
"time_s"}`` (+ ``"kkt"`` where the costate sweep gives it for free). The loop also

* reports progress on stderr (``ocdl.progress.Progress``, silenced by ``quiet``);
* stops on divergence — a non-finite loss or gradient, an exploding state
  (``max |x_N| > STATE_LIMIT``) or an exploding loss (``> LOSS_GROWTH_LIMIT × max(J_0, 1)``) — with a :class:`SolverError` whose ``result`` attribute holds a
  :class:`TrainResult` with the last good parameters (``success=False``);
* calls ``checkpoint(state)`` every ``checkpoint_every`` iterations and when ``should_stop()``
  turns true (then raises ``KeyboardInterrupt`` after saving); ``state`` is a dict with
  ``iteration``, ``params``, ``opt`` (optimiser state arrays, e.g. Adam's moments) and
  ``history`` — enough to resume bit-for-bit through the ``state0`` option.
"""
import math
import time

import numpy as np

from ocdl.errors import SolverError
from ocdl.progress import Progress

STATE_LIMIT = 1e6
LOSS_GROWTH_LIMIT = 1e6     # loss > this × max(first loss, 1) counts as divergence


class TrainResult(dict):
    """scipy.optimize-like result: ``x`` (params dict), ``fun``, ``success``, ``message``, ``nit``,
    ``history``, ``model``, ``solver``, ``wall_time_s``. Attribute and key access both work."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __repr__(self):
        keys = ("solver", "fun", "success", "message", "nit", "wall_time_s")
        return "TrainResult(" + ", ".join(f"{k}={self.get(k)!r}" for k in keys) + ")"


def cosine_lr(lr, it, total):
    """Cosine decay from ``lr`` at iteration 1 to ≈ 0 at ``total``: ``lr (1 + cos(π (it−1)/total)) / 2``."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * (it - 1) / max(total, 1)))


def learning_rate(lr, schedule, it, total):
    if schedule == "cosine":
        return cosine_lr(lr, it, total)
    if schedule == "constant":
        return lr
    from ocdl.errors import unknown_name
    raise unknown_name("learning-rate schedule", schedule, ["cosine", "constant"])


class Loop:
    """History, progress, divergence checks, checkpoints and interrupts for one solver run."""

    def __init__(self, name, model, iterations, quiet=True, callback=None, state0=None,
                 checkpoint=None, checkpoint_every=None, should_stop=None):
        self.name, self.model, self.iterations = name, model, int(iterations)
        self.callback, self.checkpoint, self.should_stop = callback, checkpoint, should_stop
        self.checkpoint_every = checkpoint_every
        self.history = list(state0["history"]) if state0 else []
        self.start_iteration = int(state0["iteration"]) if state0 else 0
        self.time_offset = self.history[-1]["time_s"] if self.history else 0.0
        self.t0 = time.perf_counter()
        self.progress = Progress(self.iterations, name, quiet)
        self.last_good = None
        self.first_loss = self.history[0]["loss"] if self.history else None
        self.stopped_by_callback = False

    def elapsed(self):
        return self.time_offset + time.perf_counter() - self.t0

    def check(self, it, loss, params, grads=None, state_max=None):
        """Raise SolverError (with the last good params) if this iterate diverged."""
        what = None
        if self.first_loss is None and math.isfinite(loss):
            self.first_loss = loss
        if not math.isfinite(loss):
            what = f"loss became {loss}"
        elif loss > LOSS_GROWTH_LIMIT * max(self.first_loss, 1.0):
            what = f"loss exploded ({loss:.3g}, first {self.first_loss:.3g})"
        elif grads is not None and not all(np.all(np.isfinite(g)) for g in grads.values()):
            what = "gradient became non-finite"
        elif state_max is not None and not (state_max <= STATE_LIMIT):
            what = f"hidden state exploded (max |x_N| = {state_max:.3g} > {STATE_LIMIT:g})"
        if what is None:
            return
        good = self.last_good
        res = self.result(good[1] if good else params, good[0] if good else float("nan"),
                          success=False, message=f"diverged at iteration {it}: {what}")
        err = SolverError(f"{self.name} diverged at iteration {it}: {what}; try a smaller learning rate "
                          f"(--lr / options lr), a larger --alpha, fewer --layers or a smaller --T")
        err.result = res
        raise err

    def record(self, it, loss, params, opt_state=None, **extra):
        """Log iteration ``it`` (1-based) whose parameters *before* the step had ``loss``."""
        entry = {"iteration": int(it), "loss": float(loss), "time_s": self.elapsed()}
        entry.update({k: float(v) for k, v in extra.items()})
        self.history.append(entry)
        self.last_good = (float(loss), {k: np.array(v, dtype=float, copy=True) for k, v in params.items()})
        self.progress.update(it, loss=float(loss), **{k: float(v) for k, v in extra.items()})
        if self.callback is not None and self.callback(it, params, loss):
            self.stopped_by_callback = True

    def after_step(self, it, params, opt_state):
        """Checkpoint on schedule or on interrupt (params are the iterate *after* step ``it``).

        ``params`` and ``opt_state`` may be zero-argument callables, evaluated only when needed."""
        stop = self.should_stop is not None and self.should_stop()
        due = self.checkpoint_every and it % self.checkpoint_every == 0
        if self.checkpoint is not None and (stop or due):
            params = params() if callable(params) else params
            opt_state = opt_state() if callable(opt_state) else opt_state
            self.checkpoint(self.state(it, params, opt_state))
        if stop:
            self.progress.close(f"{self.name}: interrupted at iteration {it}"
                                + ("; checkpoint saved" if self.checkpoint is not None else ""))
            raise KeyboardInterrupt

    def state(self, it, params, opt_state):
        return {"iteration": int(it), "params": {k: np.array(v, dtype=float) for k, v in params.items()},
                "opt": {k: np.array(v, dtype=float) for k, v in (opt_state or {}).items()},
                "history": list(self.history)}

    def result(self, params, loss, success=True, message=None, nit=None):
        return TrainResult(x={k: np.array(v, dtype=float) for k, v in params.items()}, fun=float(loss),
                           success=bool(success), message=message or "finished", solver=self.name,
                           nit=int(nit if nit is not None else (self.history[-1]["iteration"] if self.history else 0)),
                           history=self.history, model=self.model, wall_time_s=self.elapsed())

    def close(self, message=None):
        self.progress.close(message)
