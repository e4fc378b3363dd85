"""The config-object pattern every command follows (docs/cli.md, "How a command is built").

A *job* is a dataclass holding one command's options with their defaults; each field carries
its help text, its kind (``count``, ``natural`` (an integer ≥ 0), ``positive``, ``nonnegative``,
``real``, ``fraction``, ``seed``, ``switch``, ``choice``, ``path``, ``text``, lists: ``counts``,
``seeds``, ``names``, ``positives``) and, for paths, its role (``input``, ``output``, ``directory``)
in ``metadata`` (build fields with :func:`option`). The base class
gives every job the same life cycle — ``job.run()`` =

1. :meth:`Job.validate` — every field against its kind (library calls and the CLI alike: a
   negative ``lr`` is refused the same way), then the job's own :meth:`Job.check`;
2. :meth:`Job.check_paths` — every path the job will write (:meth:`Job.outputs`: the named
   outputs, the checkpoint's files, derived files such as a sweep's summary) through
   :func:`ocdl.io.paths.check_paths`, before any work;
3. :meth:`Job.estimate` → :class:`~ocdl.jobs.budget.Estimate` (memory and seconds, naming the
   options that drive them) through :func:`~ocdl.jobs.budget.check_budget`;
4. :meth:`Job.execute` — the work; it returns a dict (the command's JSON).

The CLI builds its flags from the fields (:func:`ocdl.cli.common.add_job`) and the job from the
parsed flags (:func:`ocdl.cli.common.job_from_args`); it prints. SIGINT/SIGTERM during
:meth:`run` stop the work (``KeyboardInterrupt``; the CLI exits 130) after the job kept what it
had (checkpoints, finished sweep runs).
"""
import dataclasses
import hashlib
import math
import os

import numpy as np

from ocdl.errors import InputError

#: largest count (layers, steps, samples, iterations ...) an option takes: beyond it numpy cannot
#: even index the arrays, and no run of that size finishes
MAX_COUNT = 2 ** 31 - 1
KINDS = ("count", "natural", "positive", "nonnegative", "real", "fraction", "seed", "switch", "choice", "path",
         "text", "counts", "seeds", "names", "positives", "object")


def option(default, help, kind="text", flag=None, choices=None, role=None, required=False, metavar=None,
           cli=True):
    """A job field: ``default`` (None: unset), ``help`` (the flag's help text), ``kind`` (see
    :data:`KINDS`), ``flag`` (default ``--name-with-dashes``), ``choices`` (for ``choice`` /
    ``names``; a list, or a function returning it — read when used, so a registry's later
    additions count), ``role`` of a path (``input``, ``output``, ``directory``), ``required`` (the CLI
    flag must be given), ``cli=False`` for library-only fields."""
    assert kind in KINDS, kind
    meta = {"help": help, "kind": kind, "flag": flag, "choices": choices, "role": role, "required": required,
            "metavar": metavar, "cli": cli}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def same_option(job_class, name, **changes):
    """A field like ``job_class``'s field ``name`` (its default, help, kind …), with ``changes``
    (``default=``, ``help=`` or any :func:`option` argument): one definition of an option shared by
    several jobs."""
    f = job_class.__dataclass_fields__[name]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    kw = {k: f.metadata[k] for k in ("help", "kind", "flag", "choices", "role", "required", "metavar", "cli")}
    kw.update(changes)
    return option(changes.pop("default", default), **{k: v for k, v in kw.items() if k != "default"})


def flag_of(f):
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def choices_of(choices):
    """The list of choices (``choices`` itself, or its value when it is a function; None stays None)."""
    return choices() if callable(choices) else choices


def check_value(name, value, kind, choices=None):
    """``value`` of option ``name`` checked against ``kind`` (None passes: unset); returns it,
    numbers as int/float. InputError naming the option otherwise."""
    if value is None:
        return None

    def bad(what):
        shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
        return InputError(f"{name} must be {what} (got {shown})")
    if kind in ("count", "natural", "seed"):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
                value = int(value)
            else:
                raise bad("an integer")
        value = int(value)
        if kind == "count" and not 1 <= value <= MAX_COUNT:
            raise bad(f"an integer in 1..{MAX_COUNT}")
        if kind == "natural" and not 0 <= value <= MAX_COUNT:
            raise bad(f"an integer in 0..{MAX_COUNT}")
        if kind == "seed" and not 0 <= value < 2 ** 63:
            raise bad("an integer in 0..2**63-1")
        return value
    if kind in ("positive", "nonnegative", "real", "fraction"):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise bad("a real number")
        value = float(value)
        if not math.isfinite(value):
            raise bad("finite")
        if kind == "positive" and value <= 0:
            raise bad("> 0")
        if kind == "nonnegative" and value < 0:
            raise bad("≥ 0")
        if kind == "fraction" and not 0 < value < 1:
            raise bad("in (0, 1)")
        return value
    if kind == "switch":
        if not isinstance(value, (bool, np.bool_)):
            raise bad("true or false")
        return bool(value)
    if kind == "choice":
        if isinstance(value, bool) or (choices is not None and value not in choices) or \
                (choices is None and not isinstance(value, str)):
            from ocdl.errors import unknown_name
            raise unknown_name(name, value, choices or [])
        return value
    if kind == "path":
        if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
            raise bad("a str or os.PathLike path")
        value = os.fspath(value)
        if not value.strip():
            raise bad("a non-empty path")
        return value
    if kind == "counts":
        if not isinstance(value, (list, tuple)) or not value:
            raise bad("a non-empty list of integers")
        return [check_value(name, v, "count") for v in value]
    if kind == "seeds":
        if not isinstance(value, (list, tuple)) or not value:
            raise bad("a non-empty list of seeds")
        return [check_value(name, v, "seed") for v in value]
    if kind == "positives":
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
            raise bad("a non-empty list of numbers > 0")
        return [check_value(name, v, "positive") for v in value]
    if kind == "names":
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
            raise bad("a non-empty list of names")
        return [check_value(name, v, "choice", choices) for v in value]
    return value


def digest(*arrays):
    """The settings digest of a run's data: a short hash (a resumed run must see the same data)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


@dataclasses.dataclass
class Job:
    """Base of every command's config (module docstring). Subclasses add fields and override
    :meth:`check`, :meth:`outputs`, :meth:`estimate` and :meth:`execute`."""
    #: ``(name, success, message)`` of the runs a job made that can end unconverged (set by
    #: :meth:`execute`); the command line prints the one warning line for each failed one
    outcomes = ()
    quiet: bool = option(True, "silence progress output on stderr", "switch")
    max_seconds: float = option(None, "refuse runs estimated to take longer than this many seconds "
                                      "(default 3600; see 'Bounded work' in docs/cli.md)", "positive",
                                metavar="S")
    config: str = option(None, "the TOML file the options were read from (an input: never overwritten)", "path",
                         role="input", cli=False)

    #: derived files the job writes into its ``checkpoint`` directory
    CHECKPOINT_FILES = ("checkpoint.npz",)

    def fields(self):
        return dataclasses.fields(self)

    def validate(self):
        """Every field against its kind, then :meth:`check`; returns self."""
        for f in self.fields():
            kind = f.metadata.get("kind", "object")
            setattr(self, f.name, check_value(flag_of(f), getattr(self, f.name), kind,
                                              choices_of(f.metadata.get("choices"))))
        self.check()
        return self

    def check(self):
        """Cross-option checks of the job (InputError)."""

    def inputs(self):
        """``(flag, path)`` of the files the job reads."""
        return [(flag_of(f), getattr(self, f.name)) for f in self.fields()
                if f.metadata.get("role") == "input" and getattr(self, f.name) is not None]

    def outputs(self):
        """``(flag, path)`` of every file the job writes (named outputs and the checkpoint's files)."""
        out = [(flag_of(f), getattr(self, f.name)) for f in self.fields()
               if f.metadata.get("role") == "output" and getattr(self, f.name) is not None]
        directory = getattr(self, "checkpoint", None)
        if directory is not None:
            out += [("--checkpoint", os.path.join(directory, n)) for n in self.CHECKPOINT_FILES]
        return out

    def directories(self):
        return [(flag_of(f), getattr(self, f.name)) for f in self.fields()
                if f.metadata.get("role") == "directory" and getattr(self, f.name) is not None]

    def check_paths(self):
        from ocdl.io.paths import check_paths
        check_paths(self.inputs(), self.outputs(), self.directories())

    def estimate(self):
        """The run's :class:`~ocdl.jobs.budget.Estimate` (None: negligible)."""
        return None

    def check_budget(self):
        from ocdl.jobs.budget import check_budget
        est = self.estimate()
        if est is not None:
            check_budget(est, self.max_seconds)

    def prepare(self):
        """Everything before the work: validate, paths, budget."""
        self.validate()
        self.check_paths()
        self.check_budget()
        return self

    def run(self):
        """Prepare, then :meth:`execute`; returns its dict."""
        self.prepare()
        return self.execute()

    def execute(self):
        raise NotImplementedError

    def log(self, msg):
        from ocdl.progress import log
        log(msg, self.quiet)

@dataclasses.dataclass
class Resumable(Job):
    """A job that checkpoints: ``checkpoint`` DIR, ``checkpoint_every`` K, ``resume``."""
    checkpoint: str = option(None, "save resumable state in DIR periodically and on Ctrl-C/SIGTERM", "path",
                             role="directory", metavar="DIR")
    checkpoint_every: int = option(100, "iterations between checkpoints (default 100)", "count", metavar="K")
    resume: bool = option(False, "continue from the checkpoint in --checkpoint DIR", "switch")

    def check(self):
        if self.resume and not self.checkpoint:
            raise InputError("--resume needs --checkpoint DIR (the directory of the interrupted run)")
