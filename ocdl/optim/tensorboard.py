"""TensorBoard scalars of optimisation runs (``--tensorboard DIR``, ``ocdl.train(tensorboard_dir=...)``).

One logger, attached to the one iteration driver: while a :func:`session` is open, every
history row that :func:`ocdl.optim.minimize` records is written as scalars to the event files
of the current *run* (``DIR/<run>/``, one ``torch.utils.tensorboard.SummaryWriter`` per run),
at ``global_step`` = the iteration:

* every number in the row — ``loss``; the accuracies (``train_accuracy``, ``val_accuracy``,
  ``test_accuracy``) and ``epoch`` where the run adds them; ``kkt`` where a solver reports it;
* ``wall_time_s`` — the row's ``time_s``, seconds since the run started;
* ``grad_norm`` — ‖g‖₂ of the gradient the driver evaluated at that iterate;
* ``lr`` — the step rule's learning rate at that iteration (rules with a ``rate(it, total)``, e.g. Adam).

:func:`run` names the run (``ocdl.train`` uses the solver's name, ``ocdl compare`` one run per
solver, so their curves overlay in TensorBoard). Solvers whose iterations do not pass through
the driver (CasADi Newton, IPOPT, shooting, MSA's own loop) leave a history instead; the
command writes it after the solve with :meth:`Run.history`, so every run has its curves.

Needs the ``tensorboard`` package (extra ``tensorboard``); without it a session raises one
:class:`~ocdl.errors.InputError` naming the extra. ``tensorboard --logdir DIR`` shows the runs.
"""
import contextlib
import contextvars
import math
import os
import re

from ocdl.errors import InputError

_SESSION = contextvars.ContextVar("ocdl_tensorboard_session", default=None)
_RUN = contextvars.ContextVar("ocdl_tensorboard_run", default=None)


class Logger:
    """The event-file writers of one session directory, one per run name."""

    def __init__(self, log_dir):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise InputError("--tensorboard needs the tensorboard package: pip install 'ocdl[tensorboard]'") from None
        self.log_dir, self._writer_cls, self.writers = os.fspath(log_dir), SummaryWriter, {}
        os.makedirs(self.log_dir, exist_ok=True)

    def writer(self, run):
        name = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", str(run or "run")).strip("_") or "run"
        if name not in self.writers:
            self.writers[name] = self._writer_cls(log_dir=os.path.join(self.log_dir, name))
        return self.writers[name]

    def write(self, run, row, grad_norm=None, lr=None, keys=None):
        """Scalars of one history row at step ``row["iteration"]`` (``keys``: only these)."""
        w = self.writer(run)
        step = int(row["iteration"])
        values = dict(row)
        if "time_s" in values:
            values["wall_time_s"] = values.pop("time_s")
        if grad_norm is not None:
            values["grad_norm"] = grad_norm
        if lr is not None:
            values["lr"] = lr
        for key, v in values.items():
            if key == "iteration" or (keys is not None and key not in keys):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                continue
            w.add_scalar(key, float(v), step)

    def close(self):
        for w in self.writers.values():
            w.close()
        self.writers.clear()


class Run:
    """The current run of a session (:func:`run`): counts the rows written live by the driver."""

    def __init__(self, logger, name):
        self.logger, self.name, self.live_rows = logger, name, 0

    def record(self, row, grad_norm=None, lr=None):
        self.live_rows += 1
        self.logger.write(self.name, row, grad_norm, lr)

    def history(self, rows, extra=()):
        """After the solve: all of ``rows`` if the driver wrote none of them live, else only the
        keys in ``extra`` (numbers a command adds to the history afterwards, e.g. compare's KKT)."""
        for row in rows:
            if "iteration" in row:
                self.logger.write(self.name, row, keys=None if not self.live_rows else set(extra))


@contextlib.contextmanager
def session(log_dir):
    """Write TensorBoard scalars into ``log_dir`` while open (None: no-op, yields None)."""
    if log_dir is None:
        yield None
        return
    logger = Logger(log_dir)
    token = _SESSION.set(logger)
    try:
        yield logger
    finally:
        _SESSION.reset(token)
        logger.close()


@contextlib.contextmanager
def run(name):
    """Name the run whose rows follow (``DIR/<name>/``); yields the :class:`Run` (None outside a session)."""
    logger = _SESSION.get()
    if logger is None:
        yield None
        return
    r = Run(logger, name)
    token = _RUN.set(r)
    try:
        yield r
    finally:
        _RUN.reset(token)
        logger.writer(name).flush()


def current(default_name):
    """The run the driver writes to: the named one, or a run named after the driver's ``name``."""
    r = _RUN.get()
    if r is not None or _SESSION.get() is None:
        return r
    r = Run(_SESSION.get(), default_name)
    return r
