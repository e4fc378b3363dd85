"""Long runs lose nothing: checkpoints, Ctrl-C / SIGTERM and ``--resume``, shared by every training command.

Library side (no argparse): a solver loop takes the options ``state0`` (a state to continue from),
``checkpoint`` (a callable receiving the state dict), ``checkpoint_every`` (K) and ``should_stop``
(a zero-argument callable) and calls :meth:`Checkpointer.after_step` after each step:

* every K steps it hands ``state`` to ``checkpoint``;
* when ``should_stop()`` turns true it saves too, then raises ``KeyboardInterrupt`` (exit code 130).

A state is ``{"iteration": steps done, "params": {name: array}, "opt": {name: array},
"history": [...], "meta": {JSON-able extras, e.g. a numpy Generator state}}`` — the container is
:func:`ocdl.data.modelfile.save_checkpoint` (``DIR/checkpoint.npz``, atomic).

CLI side: :func:`add_flags` (``--checkpoint DIR``, ``--checkpoint-every K``, ``--resume``),
:func:`check_flags`, :class:`StopFlag` (the SIGINT/SIGTERM handler: the first signal asks the loop to
checkpoint and stop at the next step, a second one stops at once) and :class:`RunControl`, which
loads the state to resume (refusing a checkpoint made with other settings), builds the options above
and installs the handler for the duration of a ``with`` block.
"""
import hashlib
import os
import signal

import numpy as np

from ocdl.errors import InputError


class Checkpointer:
    """Checkpoint on schedule or on interrupt; ``after_step(n, state)`` with ``n`` = steps done."""

    def __init__(self, checkpoint=None, checkpoint_every=None, should_stop=None):
        self.checkpoint, self.every, self.should_stop = checkpoint, checkpoint_every, should_stop

    def after_step(self, n, state, progress=None, label="run"):
        """``state`` may be a zero-argument callable, evaluated only when a checkpoint is written."""
        stop = self.should_stop is not None and bool(self.should_stop())
        due = bool(self.every) and n > 0 and n % self.every == 0
        if self.checkpoint is not None and (stop or due):
            self.checkpoint(state() if callable(state) else state)
        if stop:
            if progress is not None:
                progress.close(f"{label}: interrupted after step {n}"
                               + ("; checkpoint saved" if self.checkpoint is not None else ""))
            raise KeyboardInterrupt

    def save(self, state):
        if self.checkpoint is not None:
            self.checkpoint(state() if callable(state) else state)


def torch_adam_state(opt, tensors):
    """Adam's moments and step counts of ``tensors`` (in order) as float64 arrays ``{key_i: ...}``."""
    out = {}
    for i, t in enumerate(tensors):
        st = opt.state.get(t, {})
        if not st:
            continue
        out[f"step_{i}"] = np.array(float(st["step"]))
        out[f"m_{i}"] = st["exp_avg"].detach().cpu().numpy().astype(float)
        out[f"v_{i}"] = st["exp_avg_sq"].detach().cpu().numpy().astype(float)
        if "max_exp_avg_sq" in st:
            out[f"vmax_{i}"] = st["max_exp_avg_sq"].detach().cpu().numpy().astype(float)
    out["lr"] = np.array(float(opt.param_groups[0]["lr"]))
    return out


def load_torch_adam_state(opt, tensors, saved):
    """Inverse of :func:`torch_adam_state` (bit-for-bit: the arrays are float64 like the tensors)."""
    import torch
    for i, t in enumerate(tensors):
        if f"m_{i}" not in saved:
            continue
        st = {"step": torch.tensor(float(saved[f"step_{i}"])),
              "exp_avg": torch.tensor(saved[f"m_{i}"], dtype=t.dtype).reshape(t.shape),
              "exp_avg_sq": torch.tensor(saved[f"v_{i}"], dtype=t.dtype).reshape(t.shape)}
        if f"vmax_{i}" in saved:
            st["max_exp_avg_sq"] = torch.tensor(saved[f"vmax_{i}"], dtype=t.dtype).reshape(t.shape)
        opt.state[t] = st
    for group in opt.param_groups:
        group["lr"] = float(saved["lr"])


# ---- command line ----------------------------------------------------------------------------
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
    from ocdl.cli import common
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
