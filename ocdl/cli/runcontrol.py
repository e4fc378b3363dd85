"""Checkpoint flags and signal handling of the training commands (the CLI side of checkpoints).

The library side is :func:`ocdl.optim.minimize` (``state0``, ``checkpoint``, ``checkpoint_every``,
``should_stop``) and the file format :func:`ocdl.data.save_checkpoint` / ``load_checkpoint``
(``DIR/checkpoint.npz``, atomic). Here: :func:`add_flags` (``--checkpoint DIR``,
``--checkpoint-every K``, ``--resume``), :func:`check_flags`, :class:`StopFlag` (the SIGINT/SIGTERM
handler: the first signal asks the loop to checkpoint and stop at the next step, a second one
stops at once) and :class:`RunControl`, which loads the state to resume (refusing a checkpoint made
with other settings), builds the options above and installs the handler for a ``with`` block.
"""
import hashlib
import os
import signal

import numpy as np

from ocdl.cli import common
from ocdl.errors import InputError


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
                raise KeyboardInterrupt
            self.set = True
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.old[sig] = signal.signal(sig, handler)

    def restore(self):
        for sig, h in self.old.items():
            signal.signal(sig, h)
        self.old = {}


def add_flags(p, every=100, unit="iterations"):
    """``--checkpoint DIR``, ``--checkpoint-every K``, ``--resume`` on parser ``p``."""
    p.add_argument("--checkpoint", metavar="DIR", help="save resumable state in DIR periodically and on Ctrl-C")
    p.add_argument("--checkpoint-every", type=common.positive_int, default=every, metavar="K",
                   help=f"{unit} between checkpoints (default {every})")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint DIR")


def check_flags(args):
    """InputError for ``--resume`` without ``--checkpoint`` or a ``--checkpoint`` that is a file."""
    if args.resume and not args.checkpoint:
        raise InputError("--resume needs --checkpoint DIR (the directory of the interrupted run)")
    if args.checkpoint and os.path.exists(args.checkpoint) and not os.path.isdir(args.checkpoint):
        raise InputError(f"--checkpoint '{args.checkpoint}' exists and is not a directory")


def digest(*arrays):
    """A short hash of the data (part of a run's settings: a resumed run must see the same data)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


class RunControl:
    """The CLI plumbing of one run: ``with RunControl(args, settings) as rc: solve(..., **rc.options())``.

    ``rc.state0`` is the state to resume (None for a fresh run); :meth:`stage` gives the same for
    one stage of a multi-stage run (its own sub-directory ``DIR/<name>``)."""

    def __init__(self, args, settings, staged=False):
        from ocdl.progress import log
        check_flags(args)
        self.directory, self.every, self.settings = args.checkpoint, args.checkpoint_every, settings
        self.resume, self.quiet, self.stop = bool(args.resume), args.quiet, StopFlag()
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
        return load_checkpoint(self._dir(stage), self.settings)

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
