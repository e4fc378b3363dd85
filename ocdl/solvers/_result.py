"""Small shared helpers for the Pontryagin solvers (result construction, history, timing)."""
import time

import numpy as np


def make_result(model, params, fun, success, message, nit, history, **extra):
    """A :class:`ocdl.solvers.TrainResult` (falls back to a plain namespace before it exists)."""
    try:
        from ocdl.solvers import TrainResult
    except ImportError:  # pragma: no cover - only while the models branch is not merged
        TrainResult = None
    kw = dict(x=params, fun=float(fun), success=bool(success), message=str(message), nit=int(nit),
              history=history, model=model, solver=extra.pop("solver", None),
              wall_time_s=float(extra.pop("wall_time_s", history[-1]["time_s"] if history else 0.0)))
    if TrainResult is None:
        from types import SimpleNamespace
        res = SimpleNamespace(**kw)
    else:
        try:
            res = TrainResult(**kw)
        except TypeError:
            res = TrainResult(**{k: v for k, v in kw.items() if k != "model"})
            res.model = model
    for k, v in extra.items():
        try:
            setattr(res, k, v)
        except AttributeError:  # frozen dataclass
            object.__setattr__(res, k, v)
    return res


class History:
    """``[{"iteration", "loss", "time_s", "kkt", ...}]`` with a wall clock started at creation."""

    def __init__(self, callback=None, progress=None):
        self.t0 = time.perf_counter()
        self.rows = []
        self.callback = callback
        self.progress = progress

    def elapsed(self):
        return time.perf_counter() - self.t0

    def add(self, iteration, loss, kkt=None, params=None, **more):
        row = {"iteration": int(iteration), "loss": float(loss), "time_s": self.elapsed()}
        if kkt is not None:
            row["kkt"] = float(kkt)
        row.update({k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in more.items()})
        self.rows.append(row)
        if self.progress is not None:
            metrics = {"loss": float(loss)} if kkt is None else {"loss": float(loss), "kkt": float(kkt)}
            self.progress.update(iteration, **metrics)
        if self.callback is not None and params is not None:
            self.callback(iteration, params, float(loss))
        return row


def lifted(model, X):
    return np.asarray(model.lift(np.asarray(X, dtype=float)), dtype=float)


def pop_loop_options(name, options):
    """Accept the generic loop options ``ocdl train`` passes to every solver.

    ``should_stop`` (a callable; checked every iteration) is returned; resuming (``state0``) and
    checkpoints are not supported by the Pontryagin solvers and raise a one-line error.
    """
    from ocdl.errors import SolverError
    state0 = options.pop("state0", None)
    should_stop = options.pop("should_stop", None)
    checkpoint = options.pop("checkpoint", None)
    options.pop("checkpoint_every", None)
    options.pop("device", None)
    if state0 is not None:
        raise SolverError(f"{name} cannot resume from a checkpoint (--resume); rerun it from the start")
    if checkpoint is not None:
        raise SolverError(f"{name} does not write checkpoints; drop --checkpoint for this solver")
    return should_stop
