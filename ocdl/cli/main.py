"""``ocdl`` entry point: builds the sub-command tree, applies ``--config``, maps errors to exit codes.

Exit codes: 0 success, 2 bad input, 3 solver failure or divergence, 130 interrupted; 1 only for
an internal error (a bug in ocdl: see "Exit codes" in README.md for how to report it).
"""
import importlib
import os
import sys
import traceback

from ocdl import __version__
from ocdl.cli.common import Parser, set_threads, warn_not_converged
from ocdl.errors import InputError, OcdlError, interrupt_cause
from ocdl.io import read_toml
from ocdl.jobs import work
from ocdl.jobs.runcontrol import interrupts

# one module per command, in --help order; each defines ``register(subparsers)``.
COMMANDS = [
    "ocdl.cli.train",
    "ocdl.cli.predict",
    "ocdl.cli.gradcheck",
    "ocdl.cli.compare",
    "ocdl.cli.integrators",
    "ocdl.cli.forces",
    "ocdl.cli.holography",
    "ocdl.cli.meanfield",
    "ocdl.cli.bench",
    "ocdl.cli.sweep",
]


def build_parser():
    parser = Parser(prog="ocdl", description="Residual networks as controlled ODEs, trained by optimal control.")
    parser.add_argument("--version", action="version", version=f"ocdl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def _subparsers(p):
    for action in p._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            return action
    return None


def apply_config(parser, argv):
    """Insert the flags of a ``--config FILE.toml`` right after the sub-command words.

    Later flags override earlier ones in argparse, so flags on the command line win.
    """
    path = None
    for i, tok in enumerate(argv):
        if tok == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif tok.startswith("--config="):
            path = tok.split("=", 1)[1]
    if path is None:
        return argv
    cfg = read_toml(path, "config")
    p, i = parser, 0
    while i < len(argv) and (sub := _subparsers(p)) is not None and argv[i] in sub.choices:
        p = sub.choices[argv[i]]
        i += 1
    if p.get_default("own_config"):  # the command reads --config itself (e.g. a sweep file)
        return argv
    options = {s: a for a in p._actions for s in a.option_strings}
    tokens = []
    for key, value in cfg.items():
        flag = "--" + key.replace("_", "-")
        action = options.get(flag) or options.get("--" + key)
        if action is None or flag in ("--config", "--help"):
            valid = sorted(s[2:] for s in options if s.startswith("--") and s not in ("--config", "--help"))
            raise InputError(f"config file '{path}': unknown key '{key}' for 'ocdl {' '.join(argv[:i])}' "
                             f"(valid: {', '.join(valid)})")
        if action.nargs == 0:
            if not isinstance(value, bool):
                raise InputError(f"config file '{path}': '{key}' is a switch; give true or false (got {value!r})")
            if value:
                tokens.append(action.option_strings[-1])
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        tokens += [action.option_strings[-1], str(value)]
    return argv[:i] + tokens + argv[i:]


def _leaf(parser, argv):
    return _walk(parser, argv)[0]


def _walk(parser, argv):
    """The leaf parser of ``argv``'s sub-command words and those words."""
    p, i = parser, 0
    while i < len(argv) and (sub := _subparsers(p)) is not None and argv[i] in sub.choices:
        p = sub.choices[argv[i]]
        i += 1
    return p, argv[:i]


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        argv = apply_config(parser, argv)
        debug = "--debug" in argv  # also `debug = true` in a --config file
        args = parser.parse_args(argv)
        set_threads(getattr(args, "threads", None))
        func = getattr(args, "func", None)
        if func is None:
            _leaf(parser, argv).print_help(sys.stderr)
            return 2
        # every path is checked by the command's job before any work (ocdl.jobs.base.Job.check_paths)
        words = _walk(parser, argv)[1]
        work.check(words, args, args.max_seconds)   # memory and time estimate, before any work
        # SIGINT/SIGTERM raise ocdl.errors.Signalled, a KeyboardInterrupt subclass: caught below (exit
        # 130); a bare KeyboardInterrupt could make CPython exit by SIGINT instead (see Signalled)
        with interrupts():
            rc = func(args)
        for solver, message in getattr(args, "unconverged", ()):       # the one place; also under --quiet
            warn_not_converged(solver, False, message)
        return 0 if rc is None else int(rc)
    except OcdlError as exc:
        if debug:
            traceback.print_exc()
        msg = " ".join(str(exc).split("\n"))
        print(f"ocdl: error: {msg}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:      # ocdl.errors.Interrupted says what was kept
        detail = " ".join(str(exc).split("\n"))
        print("ocdl: interrupted" + (f"; {detail}" if detail else ""), file=sys.stderr)
        return 130
    except MemoryError:
        if debug:
            traceback.print_exc()
        print("ocdl: error: out of memory; reduce the problem size (--layers, --width, --points, "
              "--particles, --samples or the data)", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # stdout closed early (``ocdl … | head``): stop quietly, as Unix tools do; any files the
        # command wrote are complete (atomic writes). Point stdout at devnull so the interpreter's
        # final flush does not raise again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, no traceback
        if interrupt_cause(exc) is not None:      # a signal another frame wrapped (ocdl.errors)
            print("ocdl: interrupted", file=sys.stderr)
            return 130
        if debug:
            traceback.print_exc()
        msg = " ".join(str(exc).split("\n"))[:300]
        print(f"ocdl: internal error: {type(exc).__name__}: {msg} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
