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


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit code 2."""

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


def add_outputs(p, json=True, plot=True, out=False, seed=True, device=False, out_help="output data file"):
    if json:
        p.add_argument("--json", metavar="PATH", help="write machine-readable results as JSON")
    if plot:
        p.add_argument("--plot", metavar="PNG", help="write a picture")
    if out:
        p.add_argument("--out", metavar="PATH", required=out == "required", help=out_help)
    if seed:
        p.add_argument("--seed", type=integer, default=0, help="random seed (default 0)")
    if device:
        p.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")


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


def _number(text, kind, cast, low=None, strict=False):
    try:
        v = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a valid {kind}") from None
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


def integer(text):
    return _number(text, "integer", int)


def positive_int(text):
    return _number(text, "integer", int, 0, strict=True)


def int_list(text):
    """argparse type: comma-separated positive integers."""
    try:
        items = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers") from None
    if not items or any(i <= 0 for i in items):
        raise argparse.ArgumentTypeError(f"'{text}' must list positive integers")
    return items


def warn_not_converged(solver, success, message):
    """One line ``ocdl: warning: SOLVER did not converge: MESSAGE`` on stderr when ``success`` is
    false (``success`` = the solver's own convergence test passed; an iteration cap is not
    convergence). Printed even with ``--quiet`` — it is a warning, not progress — and the exit
    code stays 0: the results are written, they just are not a converged solution."""
    if not success:
        print(f"ocdl: warning: {solver} did not converge: {message}", file=sys.stderr)


#: threads when neither --threads nor OMP_NUM_THREADS is given. Measured on this project's 2-core
#: machine shared with ~5 other jobs (load ≈ 7): ``ocdl train --data spirals --solver adam
#: --iterations 600`` took 9.9 s with 1 thread, 122 s with 2 and 112 s with torch's default (2):
#: the layers' matrices are small (n × 6), so extra threads only contend for busy cores.
DEFAULT_THREADS = 1


def set_threads(n=None):
    """Limit torch's intra-op threads and the BLAS/OpenMP pools to ``n`` (None: OMP_NUM_THREADS if
    set, else :data:`DEFAULT_THREADS`). Before torch is imported this sets the environment it reads
    at start-up; afterwards ``torch.set_num_threads``; BLAS pools already loaded by numpy are
    limited through threadpoolctl when it is installed. Returns the number used."""
    import os
    if n is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        n = int(env) if env.isdigit() and int(env) > 0 else DEFAULT_THREADS
    n = int(n)
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


def resolve_device(name, quiet=False):
    """Return a torch device name; 'cuda' without a GPU falls back to 'cpu' with a message."""
    from ocdl.errors import InputError
    if name in (None, "cpu"):
        return "cpu"
    if name.startswith("cuda"):
        import torch
        if torch.cuda.is_available():
            return name
        if not quiet:
            print("ocdl: note: --device cuda requested but no CUDA GPU is available; running on cpu",
                  file=sys.stderr)
        return "cpu"
    raise InputError(f"unknown device '{name}' (valid: cpu, cuda, cuda:N)")
