"""Shared command-line conventions.

Every command takes ``--quiet``, ``--debug``, ``--threads N`` and ``--config FILE.toml``; most take ``--json``,
``--plot``, ``--seed`` (or ``--out`` for data). Argument types here turn bad numbers and
unknown names into one-line errors (exit 2) that list the valid names and suggest the closest.
"""
import argparse
import difflib
import math
import re
import sys

EXAMPLE_PREFIX = "example:\n  "

# Values such as ``--force -0.1*v`` or ``--drift -(x-1)`` start with '-': every parser reads any
# single-dash token other than '-h' as a value (all options are long '--' options); the form
# ``--force=-0.1*v`` works too.
_VALUE_WITH_DASH = re.compile(r"^-(?!-|h$)")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit code 2, and which reads a
    token starting with a single '-' (a negative number or expression) as a value."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _VALUE_WITH_DASH

    def error(self, message):
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:  # sub-command names: suggest the closest, like the choice() argument type does
            valid = re.findall(r"'([^']*)'", m.group(2)) or [v.strip() for v in m.group(2).split(",")]
            close = difflib.get_close_matches(m.group(1), valid, n=1, cutoff=0.5)
            if close:
                message += f"; did you mean '{close[0]}'?"
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def add_command(subparsers, name, help, example, func=None, description=None):
    """Add a sub-command with an example invocation in its ``--help``; return its parser."""
    epilog = EXAMPLE_PREFIX + "\n  ".join([example] if isinstance(example, str) else example)
    p = subparsers.add_parser(name, help=help, description=description or help, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_global(p)
    if func is not None:
        p.set_defaults(func=func)
    return p


def add_global(p):
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="threads for torch and BLAS (default 1, or OMP_NUM_THREADS if set; see 'threads' in README)")
    p.add_argument("--quiet", action="store_true", help="silence progress output on stderr")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("--config", metavar="FILE.toml",
                   help="read any of this command's flags from a TOML file; flags given on the command line win")
    p.add_argument("--max-seconds", type=positive, default=None, metavar="S",
                   help="refuse runs estimated to take longer than S seconds (default 3600; docs/cli.md)")






def choice(kind, valid):
    """argparse type: a name from ``valid``; unknown names list the valid ones and the closest."""
    valid = list(valid)

    def parse(text):
        if text in valid:
            return text
        close = difflib.get_close_matches(text, valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise argparse.ArgumentTypeError(f"unknown {kind} '{text}' (valid: {', '.join(valid)}){hint}")

    parse.__name__ = kind
    return parse


def choice_list(kind, valid):
    """argparse type: a comma-separated list of names from ``valid``."""
    one = choice(kind, valid)

    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"empty {kind} list")
        return [one(t) for t in items]

    parse.__name__ = kind + " list"
    return parse


#: largest count (layers, steps, samples, iterations ...) a flag accepts: beyond it numpy cannot even
#: index the arrays, and no run of that size finishes
MAX_COUNT = 2 ** 31 - 1


def _number(text, kind, cast, low=None, strict=False, high=MAX_COUNT):
    try:
        v = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a valid {kind}") from None
    if cast is int and high is not None and abs(v) > high:
        raise argparse.ArgumentTypeError(f"'{text}' is too large (at most {high})")
    if cast is float and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"'{text}' is not finite; give a finite number")
    if low is not None and (v <= low if strict else v < low):
        rel = ">" if strict else "≥"
        raise argparse.ArgumentTypeError(f"'{text}' must be {rel} {low:g}")
    return v


def real(text):
    """argparse type: a finite float."""
    return _number(text, "number", float)


def positive(text):
    """argparse type: a finite float > 0."""
    return _number(text, "number", float, 0.0, strict=True)


def nonnegative(text):
    """argparse type: a finite float ≥ 0."""
    return _number(text, "number", float, 0.0)




def seed_int(text):
    """argparse type: a random seed, an integer in 0 .. 2**63 - 1 (numpy and torch both take it)."""
    v = _number(text, "seed (an integer ≥ 0)", int, 0, high=None)
    if v >= 2 ** 63:
        raise argparse.ArgumentTypeError(f"'{text}' is too large for a seed (must be < 2**63)")
    return v


def positive_int(text):
    return _number(text, "integer", int, 0, strict=True)


def natural(text):
    """argparse type: an integer ≥ 0."""
    return _number(text, "integer", int, 0)


def seed_list(text):
    """argparse type: comma-separated seeds."""
    items = [seed_int(t.strip()) for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"'{text}' must list seeds (integers ≥ 0)")
    return items


def int_list(text):
    """argparse type: comma-separated positive integers."""
    try:
        items = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers") from None
    if any(i > MAX_COUNT for i in items):
        raise argparse.ArgumentTypeError(f"'{text}': {max(items)} is too large (at most {MAX_COUNT})")
    if not items or any(i <= 0 for i in items):
        raise argparse.ArgumentTypeError(f"'{text}' must list positive integers")
    return items


def not_converged(args, solver, success, message):
    """Record a run's outcome for the command's warning: when ``success`` is false, ``cli/main``
    prints ``ocdl: warning: SOLVER did not converge: MESSAGE`` once the command has finished —
    the one place that line is printed (:func:`warn_not_converged`)."""
    if not success:
        vars(args).setdefault("unconverged", []).append((solver, message))


def warn_not_converged(solver, success, message):
    """One line ``ocdl: warning: SOLVER did not converge: MESSAGE`` on stderr when ``success`` is
    false (``success`` = the certificate at the returned point passed; an iteration cap is not
    convergence). Printed even with ``--quiet`` — it is a warning, not progress — and the exit
    code stays 0: the results are written, they just are not a converged solution. Called by
    ``cli/main`` only; commands record outcomes with :func:`not_converged`."""
    if not success:
        print(f"ocdl: warning: {solver} did not converge: {message}", file=sys.stderr)


#: most threads accepted: each costs a stack and a BLAS buffer; far more than any machine's cores
MAX_THREADS = 1024


def set_threads(n=None):
    """Limit torch's intra-op threads and the BLAS/OpenMP pools to ``n`` (None: OMP_NUM_THREADS if
    set, else the defaults table's :data:`ocdl.solvers.defaults.THREADS`, with its measurements).
    Before torch is imported this sets the environment it reads at start-up; afterwards
    ``torch.set_num_threads``; BLAS pools already loaded by numpy are limited through threadpoolctl
    when it is installed. Returns the number used."""
    import os
    if n is None:
        from ocdl.solvers.defaults import run_threads
        n = run_threads()
    n = int(n)
    if n > MAX_THREADS:
        from ocdl.errors import InputError
        raise InputError(f"--threads {n} is more than {MAX_THREADS} (this machine has {os.cpu_count()} cores)")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return n
    threadpool_limits(n)
    return n







# ------------------------------------------------------------------------------ jobs
_TYPES = {"count": lambda: positive_int, "natural": lambda: natural, "seeds": lambda: seed_list,
          "positive": lambda: positive, "nonnegative": lambda: nonnegative,
          "real": lambda: real, "seed": lambda: seed_int, "counts": lambda: int_list, "fraction": lambda: positive}


def add_job(p, job_class, skip=(), defaults=None, helps=None, only=None):
    """Add one flag per field of ``job_class`` (a :class:`ocdl.jobs.base.Job` dataclass) to parser
    ``p``: name, help, type and default from the field (``defaults`` overrides some); ``skip``
    names fields the command sets itself (``only``: the fields to add; ``helps``: other help
    texts). ``--quiet`` and ``--max-seconds`` come from :func:`add_global`."""
    import dataclasses

    from ocdl.jobs.base import flag_of
    p.set_defaults(job_class=job_class)
    for f in dataclasses.fields(job_class):
        m = f.metadata
        if f.name in skip or f.name in ("quiet", "max_seconds") or not m.get("cli", True) or \
                (only is not None and f.name not in only):
            continue
        own = f.default if f.default is not dataclasses.MISSING else \
            (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        default = (defaults or {}).get(f.name, own)
        kw = {"help": (helps or {}).get(f.name, m["help"]), "dest": f.name}
        if m["kind"] == "switch":        # a switch whose default is true is a --no-... flag
            p.add_argument(flag_of(f), action="store_false" if default is True else "store_true", **kw)
            continue
        from ocdl.jobs.base import choices_of
        choices = choices_of(m["choices"])
        if m["kind"] == "choice" and all(isinstance(c, int) for c in choices):
            kw.update(type=int, choices=choices)
        elif m["kind"] == "choice":
            kw["type"] = choice(m.get("metavar") or f.name.replace("_", " "), choices)
        elif m["kind"] == "positives":
            kw.update(type=positive, nargs="+")
        elif m["kind"] == "names":
            kw["type"] = choice_list(f.name.rstrip("_").rstrip("s").replace("_", " "), choices)
        elif m["kind"] in _TYPES:
            kw["type"] = _TYPES[m["kind"]]()
        if m.get("metavar"):
            kw["metavar"] = m["metavar"]
        p.add_argument(flag_of(f), default=default, required=bool(m.get("required")), **kw)


def job_from_args(args):
    """The job of a parsed command line (its ``job_class`` built from the flags of :func:`add_job`)."""
    import dataclasses
    cls = args.job_class
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})






def run_job(args):
    """``func`` of a job command: build, run and return the job's result dict."""
    return job_from_args(args).run()
