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
              history=history, model=model)
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
