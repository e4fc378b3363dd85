"""Run control for :func:`ocdl.optim.minimize`: the hook objects the loop consults.

Each is a frozen settings object with the one test it owns; the run's state (the first loss,
the best metric, the epochs without improvement) stays in the driver's ``Context`` and in the
checkpoint, so one hook object can serve any number of runs.

* :class:`Divergence` — when an evaluation ends the run as diverged (status −1);
* :class:`Checkpointing` — where and when the checkpoint state is saved, and the interrupt;
* :class:`EarlyStopping` — the monitored epoch metric, its patience and the epoch callback that
  measures it;
* :class:`ProgressBar` — the progress line on stderr (:class:`ocdl.progress.Progress`);
* :class:`Callback` — the caller's ``fn(it, x, f)`` after each recorded iterate (True stops);
* :class:`KeepBest` — return the recorded iterate with the lowest loss, not the last one;
* :class:`Snapshots` — copies of x at chosen iterations (``result.snapshots``).

A hook not given (None) does nothing: no progress line, no callback, no checkpoint, no early
stopping, the last iterate returned, no snapshots; the divergence test always runs (default
thresholds).
"""
import math
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import numpy as np

from ocdl.optim.result import CONVERGED

LOSS_GROWTH = 1e6


def _finite(a):
    if hasattr(a, "detach"):
        import torch
        return bool(torch.isfinite(a).all())
    return bool(np.all(np.isfinite(a)))


@dataclass(frozen=True)
class Divergence:
    """The divergence test of one evaluation: f non-finite, ``f > loss_growth · max(f_first, 1)``,
    g non-finite, or ``info["state_max"] > state_limit`` (when a limit is given). ``hint``: what the
    error message suggests to the user."""
    state_limit: float | None = None
    loss_growth: float = LOSS_GROWTH
    hint: str = ""

    def test(self, f, g, info, first_loss):
        """Why the evaluation ``(f, g, info)`` diverged, or None."""
        if not math.isfinite(f):
            return f"loss became {f}"
        if f > self.loss_growth * max(first_loss, 1.0):
            return f"loss exploded ({f:.3g}, first {first_loss:.3g})"
        if g is not None and not _finite(g):
            return "gradient became non-finite"
        if self.state_limit is not None and not (info.get("state_max", 0.0) <= self.state_limit):
            return f"hidden state exploded (max |x_N| = {info['state_max']:.3g} > {self.state_limit:g})"
        return None


@dataclass(frozen=True)
class Checkpointing:
    """``save(state)`` stores the checkpoint state (:func:`ocdl.data.save_checkpoint`); it is called
    every ``every`` iterations, when ``should_stop()`` turns true (then the run raises
    ``KeyboardInterrupt``) and once at the end with the finished state. ``extra_state()``: a
    caller's JSON-able state stored in ``meta["extra"]``."""
    save: Callable[[dict], Any] | None = None
    every: int | None = None
    should_stop: Callable[[], bool] | None = None
    extra_state: Callable[[], dict] | None = None

    def due(self, it):
        """``(stop, save_now)`` after step ``it``."""
        stop = self.should_stop is not None and bool(self.should_stop())
        save_now = self.save is not None and (stop or (bool(self.every) and it % self.every == 0))
        return stop, save_now


@dataclass(frozen=True)
class EarlyStopping:
    """``epoch_callback(epoch, x) → {key: value}`` adds metrics to the history row at each epoch's
    end; ``monitor=(key, "max"|"min")`` chooses the best iterate by that metric (strict
    improvement) and ``patience`` epochs without improvement stop the run (status 2)."""
    monitor: tuple | None = None
    patience: int | None = None
    epoch_callback: Callable[[int, Any], dict] | None = None

    def __post_init__(self):
        m = self.monitor
        if m is not None and (len(m) != 2 or m[1] not in ("max", "min")):
            raise ValueError(f"monitor must be (key, 'max' | 'min'), got {m!r}")

    def improves(self, value, best):
        return best is None or (value > best if self.monitor[1] == "max" else value < best)


@dataclass(frozen=True)
class ProgressBar:
    """The progress line of a run on stderr (iteration, loss, the row's float metrics, ETA), labelled
    with the run's ``name``; ``quiet=True`` silences it (the ``--quiet`` flag)."""
    quiet: bool = False

    def open(self, total, label):
        from ocdl.progress import Progress
        return Progress(total, label, self.quiet)


@dataclass(frozen=True)
class Callback:
    """``fn(it, x, f)`` after each recorded iterate (its history row written); a true return stops
    the run (status 2, "stopped by the callback at iteration it")."""
    fn: Callable[[int, Any, float], Any]

    def stops(self, it, x, f):
        return bool(self.fn(it, x, f))


@dataclass(frozen=True)
class KeepBest:
    """Return the recorded iterate with the lowest loss instead of the last one: the best
    ``(f, x, info)`` (strictly lower f) replaces the last iterate at the end unless the last is lower
    still or the run stopped converged (its test passed there: it is kept). The driver's
    certificate (``success``) is evaluated at the iterate returned. The best iterate is in the
    checkpoint (``params["best"]``, ``meta["best_loss"]``, ``meta["best_info"]``)."""

    def improves(self, f, best):
        return best is None or f < best[0]

    def replaces(self, best, f, status):
        """Whether the best ``(f, x, info)`` replaces the last iterate (loss ``f``, the run's ``status``)."""
        return best is not None and best[0] <= f and status != CONVERGED


@dataclass(frozen=True)
class Snapshots:
    """Copies of x at the recorded iterations ``at`` and of the returned x at the end, as
    ``result.snapshots = [(iteration, x)]``; kept in the checkpoint (``params["snap_j"]``,
    ``meta["snapshot_iterations"]``)."""
    at: frozenset = frozenset()

    def __post_init__(self):
        object.__setattr__(self, "at", frozenset(int(i) for i in self.at))

    @staticmethod
    def load(st):
        """The ``[(iteration, x)]`` stored in a checkpoint state."""
        params, meta = st.get("params", {}), st.get("meta") or {}
        return [(int(i), np.array(params[f"snap_{j}"], dtype=float))
                for j, i in enumerate(meta.get("snapshot_iterations", []))]


# the keywords minimize() took before the hooks: each now raises one line naming its replacement
REMOVED = {"checkpoint": "checkpointing=Checkpointing(save=…)",
           "checkpoint_every": "checkpointing=Checkpointing(every=…)",
           "should_stop": "checkpointing=Checkpointing(should_stop=…)",
           "extra_state": "checkpointing=Checkpointing(extra_state=…)",
           "state_limit": "divergence=Divergence(state_limit=…)",
           "loss_growth": "divergence=Divergence(loss_growth=…)",
           "hint": "divergence=Divergence(hint=…)",
           "monitor": "early_stopping=EarlyStopping(monitor=…)",
           "patience": "early_stopping=EarlyStopping(patience=…)",
           "epoch_callback": "early_stopping=EarlyStopping(epoch_callback=…)",
           "quiet": "progress=ProgressBar(quiet=…)"}
HOOKS = {"progress": ProgressBar, "callback": Callback, "checkpointing": Checkpointing, "divergence": Divergence,
         "early_stopping": EarlyStopping, "keep_best": KeepBest, "snapshots": Snapshots}


def check(hooks):
    """The hook objects ``{kind: hook}`` of :data:`HOOKS` (None or not given → the default:
    ``Divergence()``, an inactive ``Checkpointing()``/``EarlyStopping()``; no progress line, callback,
    KeepBest, Snapshots); TypeError, one line, for a keyword ``minimize`` no longer takes (naming
    its replacement), an unknown one, or a hook of the wrong type."""
    for key in hooks:
        if key in REMOVED:
            raise TypeError(f"minimize(): {key}= was removed; give {REMOVED[key]} (ocdl.optim.hooks)")
        if key not in HOOKS:
            raise TypeError(f"minimize() got an unexpected keyword argument {key!r}")
    out = {}
    for kind, cls in HOOKS.items():
        hook = hooks.get(kind)
        if hook is not None and not isinstance(hook, cls):
            raise TypeError(f"minimize(): {kind}= takes a {cls.__name__}(…) hook, got {type(hook).__name__}")
        out[kind] = hook if hook is not None or kind not in ("checkpointing", "divergence", "early_stopping") else cls()
    return out


__all__ = ["Divergence", "Checkpointing", "EarlyStopping", "ProgressBar", "Callback", "KeepBest", "Snapshots",
           "LOSS_GROWTH", "check"]
