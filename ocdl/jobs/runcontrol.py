"""Checkpoints, signals and last good results of a run (the run-control side of a job).

The library side of checkpoints is :func:`ocdl.optim.minimize` (``state0``, ``checkpoint``,
``checkpoint_every``, ``should_stop``) and the file format :func:`ocdl.data.save_checkpoint` /
``load_checkpoint`` (``DIR/checkpoint.npz``, atomic). Here: :class:`StopFlag` (the SIGINT/SIGTERM
handler: the first signal asks the loop to checkpoint and stop at the next step, a second one
stops at once), :class:`RunControl`, which loads the state to resume (refusing a checkpoint made
with other settings or of another size), builds the options above and installs the handler for a
``with`` block, and :func:`keep_last_good` — the one last-good handler.
"""
import contextlib
import os
import signal

from ocdl.errors import Signalled, SolverError


class StopFlag:
    """Set by SIGINT/SIGTERM; the solver checkpoints and stops at the next iteration."""

    def __init__(self):
        self.set = False
        self.old = {}

    def __call__(self):
        return self.set

    def install(self):
        def handler(signum, frame):
            if self.set:                      # second Ctrl-C: stop now
                raise Signalled
            self.set = True
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.old[sig] = signal.signal(sig, handler)

    def restore(self):
        for sig, h in self.old.items():
            signal.signal(sig, h)
        self.old = {}


class RunControl:
    """The plumbing of one run: ``with RunControl(job, settings) as rc: solve(..., **rc.options())``.

    ``job`` has ``checkpoint``, ``checkpoint_every``, ``resume`` and ``quiet`` (a
    :class:`~ocdl.jobs.base.Resumable`). ``rc.state0`` is the state to resume (None for a fresh
    run); :meth:`stage` gives the same for one stage of a multi-stage run (its own sub-directory
    ``DIR/<name>``). ``size``: the run's parameter count, checked against the checkpoint's arrays."""

    def __init__(self, job, settings, staged=False, size=None):
        from ocdl.progress import log
        self.directory, self.every, self.settings, self.size = job.checkpoint, job.checkpoint_every, settings, size
        self.resume, self.quiet, self.stop = bool(job.resume), job.quiet, StopFlag()
        self.state0 = None if staged else self.load()
        if self.resume and staged and not any(
                os.path.exists(os.path.join(self.directory, n, "checkpoint.npz"))
                for n in (os.listdir(self.directory) if os.path.isdir(self.directory) else ())):
            log(f"ocdl: note: no checkpoint in '{self.directory}' yet; starting from the beginning", self.quiet)
        if self.resume and not staged:
            if self.state0 is None:
                log(f"ocdl: note: no checkpoint in '{self.directory}' yet; starting from the beginning", self.quiet)
            else:
                log(f"ocdl: resuming from iteration {self.state0['iteration']}", self.quiet)

    def _dir(self, stage=None):
        return self.directory if stage is None else os.path.join(self.directory, stage)

    def load(self, stage=None):
        from ocdl.data import load_checkpoint
        if not (self.directory and self.resume):
            return None
        return load_checkpoint(self._dir(stage), self.settings, None if stage else self.size)

    def save(self, state, stage=None):
        from ocdl.data import save_checkpoint
        save_checkpoint(self._dir(stage), state, self.settings)

    def options(self):
        """``state0``, ``checkpoint``, ``checkpoint_every``, ``should_stop`` for a one-stage solver."""
        return {"state0": self.state0, "checkpoint": self.save if self.directory else None,
                "checkpoint_every": self.every if self.directory else None, "should_stop": self.stop}

    def stage(self, name):
        """Options of the same kind for stage ``name`` of a multi-stage run."""
        from ocdl.progress import log
        state0 = self.load(name)
        if state0 is not None:
            log(f"ocdl: stage {name}: " + ("finished; restored" if state0.get("meta", {}).get("finished") else
                                           f"resuming from iteration {state0['iteration']}"), self.quiet)
        return {"state0": state0,
                "checkpoint": (lambda st: self.save(st, name)) if self.directory else None,
                "checkpoint_every": self.every if self.directory else None, "should_stop": self.stop}

    def path(self, name):
        """``DIR/name`` (for the last good parameters after a divergence), or None without --checkpoint."""
        if not self.directory:
            return None
        os.makedirs(self.directory, exist_ok=True)
        return os.path.join(self.directory, name)

    def __enter__(self):
        self.stop.install()
        return self

    def __exit__(self, *exc):
        self.stop.restore()
        return False


def last_good_path(directory, name):
    """``DIR/name`` for the last good results (the directory made if missing), or None without one."""
    if not directory:
        return None
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, name)


@contextlib.contextmanager
def keep_last_good(save, what="parameters"):
    """The one last-good handler: when the block raises a :class:`SolverError` whose ``result.x``
    holds the last good parameters, ``save(x, exc)`` writes them and returns the path (or None
    when there is nowhere to write), and the error is raised again saying where they are."""
    try:
        yield
    except SolverError as exc:
        last = getattr(getattr(exc, "result", None), "x", None)
        if last is None:
            raise
        path = save(last, exc)
        if path is None:
            raise SolverError(f"{exc} (give --checkpoint DIR to keep the last good {what})") from None
        raise SolverError(f"{exc}; last good {what} saved to {path}") from None


@contextlib.contextmanager
def interrupts():
    """SIGTERM and SIGINT raise :class:`~ocdl.errors.Signalled` (a ``KeyboardInterrupt``) inside the
    block: every command stops the same way (exit 130, keeping what it wrote). SIGINT is taken over
    only from Python's default handler (an ignored SIGINT, e.g. a background job's, stays ignored).
    Only in the main thread."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Signalled
    old = {signal.SIGTERM: signal.signal(signal.SIGTERM, handler)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        old[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
