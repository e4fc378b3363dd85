"""Shared command-line conventions.

Every command takes ``--quiet``, ``--debug``, ``--threads N`` and ``--config FILE.toml``; most take ``--json``,
``--plot``, ``--seed`` (or ``--out`` for data). Argument types here turn bad numbers and
unknown names into one-line errors (exit 2) that list the valid names and suggest the closest.
"""
import argparse
import difflib
import math
import os
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


def add_outputs(p, json=True, plot=True, out=False, seed=True, device=False, out_help="output data file"):
    if json:
        p.add_argument("--json", metavar="PATH", help="write machine-readable results as JSON")
    if plot:
        p.add_argument("--plot", metavar="PNG", help="write a picture")
    if out:
        p.add_argument("--out", metavar="PATH", required=out == "required", help=out_help)
    if seed:
        p.add_argument("--seed", type=seed_int, default=0, help="random seed (default 0)")
    if device:
        p.add_argument("--device", default="cpu" if device is True else None,
                       help="torch device: cpu (default) or cuda[:N]" if device is True else device)


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


def integer(text):
    return _number(text, "integer", int)


def seed_int(text):
    """argparse type: a random seed, an integer in 0 .. 2**63 - 1 (numpy and torch both take it)."""
    v = _number(text, "seed (an integer ≥ 0)", int, 0, high=None)
    if v >= 2 ** 63:
        raise argparse.ArgumentTypeError(f"'{text}' is too large for a seed (must be < 2**63)")
    return v


def positive_int(text):
    return _number(text, "integer", int, 0, strict=True)


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
    """The torch device name of ``--device`` (None stays None: the command's default); 'cuda'
    or 'cuda:N' without that GPU is an InputError (one line, exit 2)."""
    from ocdl.errors import InputError
    if name is None or name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        import torch
        if not torch.cuda.is_available():
            raise InputError(f"no CUDA device: --device {name} needs a GPU, and torch "
                             f"{torch.__version__} sees none (torch.cuda.is_available() is False)")
        count = torch.cuda.device_count()
        if name != "cuda" and int(name[5:]) >= count:
            raise InputError(f"no CUDA device: --device {name}, but torch sees {count} GPU(s) "
                             f"(cuda:0..cuda:{count - 1})")
        return name
    raise InputError(f"unknown device '{name}' (valid: cpu, cuda, cuda:N)")


#: flags naming files a command reads, and files / directories it writes (any command, any level)
INPUT_FLAGS = ("data", "test", "model", "config")
OUTPUT_FLAGS = ("json", "plot", "save", "out", "profile", "checkpoint")
#: picture formats ``--plot`` accepts (matplotlib's Agg/PDF/SVG/PS writers)
PLOT_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp", "pgf",
                "raw", "rgba")


def _same(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _writable_dir(flag, path, create=False):
    """InputError unless files can be created in directory ``path`` (with ``create``: its nearest
    existing ancestor, since the command makes the missing levels)."""
    from ocdl.errors import InputError
    path = os.path.abspath(path)
    if create:
        while not os.path.exists(path) and os.path.dirname(path) != path:
            path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise InputError(f"--{flag}: directory '{path}' does not exist; create it first")
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"--{flag}: directory '{path}' is not writable; choose another location")


def check_paths(args, directories=()):
    """Check every output path of a parsed command line before any work (InputError, exit 2).

    Output files (``--json --plot --save --out --profile``) must lie in an existing writable
    directory, not be a directory, not be one of the inputs (``--data --test --model --config``)
    and not coincide with another output; ``--plot`` needs a picture extension. ``directories``
    names the output flags that are directories (``--checkpoint`` always is): they must be (or
    become) writable directories. Called once by ``ocdl.cli.main`` for every
    command, right after parsing."""
    from ocdl.errors import InputError
    inputs = [(f, getattr(args, f)) for f in INPUT_FLAGS
              if isinstance(getattr(args, f, None), str) and os.path.isfile(getattr(args, f))]
    outputs = [(f, getattr(args, f)) for f in OUTPUT_FLAGS if isinstance(getattr(args, f, None), str)]
    directories = set(directories) | {"checkpoint"}
    for flag, path in outputs:
        if not path.strip():
            raise InputError(f"--{flag}: empty path")
        if flag in directories:
            if os.path.exists(path) and not os.path.isdir(path):
                raise InputError(f"--{flag} '{path}' exists and is not a directory")
            _writable_dir(flag, path, create=True)
            continue
        if os.path.isdir(path):
            raise InputError(f"--{flag} '{path}' is a directory; give a file name")
        _writable_dir(flag, os.path.dirname(os.path.abspath(path)))
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise InputError(f"--{flag}: '{path}' exists and is read-only; choose another name")
        for iflag, ipath in inputs:
            if _same(path, ipath):
                raise InputError(f"--{flag} '{path}' is the --{iflag} input file; writing it would replace "
                                 f"the input — choose another name")
        if flag == "plot":
            ext = os.path.splitext(path)[1].lstrip(".").lower()
            if ext and ext not in PLOT_FORMATS:
                raise InputError(f"--plot '{path}': unsupported picture format '.{ext}' "
                                 f"(use one of: {', '.join('.' + e for e in PLOT_FORMATS[:6])})")
    files = [(f, p) for f, p in outputs if f not in directories]
    for i, (fa, pa) in enumerate(files):
        for fb, pb in files[i + 1:]:
            if _same(pa, pb):
                raise InputError(f"--{fa} and --{fb} are the same file '{pa}'; give each output its own name")


def available_memory():
    """Bytes of memory available to this process (MemAvailable of /proc/meminfo; 8 GB if unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 8 << 30


def check_memory(nbytes, flags, advice="reduce them"):
    """InputError (exit 2) naming ``flags`` (e.g. "--layers 10 --width 100000") when a run would need
    about ``nbytes`` bytes, more than half the available memory — checked before allocating.
    ``advice`` ends the message (which flag to change)."""
    from ocdl.errors import InputError
    limit = available_memory() // 2
    if nbytes > limit:
        raise InputError(f"{flags} would need about {nbytes / 2**30:.3g} GB of memory "
                         f"(available: {limit / 2**30:.3g} GB); {advice}")


def check_solver_memory(solver, model, n, options):
    """:func:`check_memory` with the solver's own estimate (:func:`ocdl.solvers.memory.estimate`) for
    ``model`` on ``n`` training samples and the solver ``options`` as they will run (mini-batch
    defaults filled in by :func:`ocdl.solvers.default_batching` on a copy); the message names the
    flag that reduces the need (``--batch-size``, ``--hessian-sample``, ``--newton-formulation
    reduced``, ``--width``). Call it after building the model, before training."""
    from ocdl.solvers import default_batching
    from ocdl.solvers.memory import estimate
    opts = default_batching(solver, n, dict(options))
    formulation = opts.get("formulation", "reduced")
    nbytes, flag = estimate(solver, model, n, opts.get("batch_size"), opts.get("hessian_sample"), formulation,
                            opts.get("segments") or 1)
    what = f"--solver {solver}" + (" --newton-formulation full" if solver == "newton" and formulation == "full"
                                   else "")
    what += f" (width {model.d}, {model.layers} layers, {n} samples" + (
        f", batches of {opts['batch_size']}" if opts.get("batch_size") else "") + ")"
    check_memory(nbytes, what, f"reduce {flag}" if flag != "--newton-formulation reduced"
                 else "use --newton-formulation reduced")


def resnet_bytes(layers, width, samples, classes=2):
    """Rough float64 memory of training a ResNet-ODE: parameters K (N, d, d), b (N, d) with a few
    optimiser copies (gradient, two Adam moments), and the states x_0..x_N of all samples kept
    for the backward sweep (with the costates and autograd's tape: ≈ 4 copies)."""
    params = layers * width * (width + 1) + classes * (width + 1)
    return 8 * (4 * params + 4 * (layers + 1) * samples * width)


def check_model_size(args, n_features, samples):
    """:func:`check_memory` for a ResNet-ODE of ``--layers`` × ``--width`` (defaults: 20 layers,
    width 3 × features — rough, as is the estimate) on ``samples`` points."""
    width = getattr(args, "width", None) or 3 * int(n_features)
    layers = getattr(args, "layers", None) or 20
    flags = f"--layers {layers} --width {width}" + ("" if getattr(args, "width", None) else " (default)")
    check_memory(resnet_bytes(layers, width, samples), flags)


# ------------------------------------------------------------------------------ built-in data
DATA_METAVAR = "{spirals,circles,moons,mnist1d,digits,wine,breast-cancer,iris,PATH.csv}"


def add_data_options(p, test_help="held-out labelled CSV for test_accuracy (default for the real "
                                  "built-in sets: their fixed test split)"):
    """``--data``, ``--test`` and the synthetic generators' ``--points``, ``--noise``, ``--turns``."""
    p.add_argument("--data", required=True, metavar=DATA_METAVAR,
                   help="a built-in data set (synthetic spirals, circles, moons; real mnist1d, digits, wine, "
                        "breast-cancer, iris with a fixed train/test split, see docs/benchmarks-real.md) "
                        "or a CSV file with header x1,...,xd,label")
    p.add_argument("--test", metavar="PATH.csv", help=test_help)
    p.add_argument("--points", type=positive_int, default=200,
                   help="points per class for the synthetic sets (default 200)")
    p.add_argument("--noise", type=nonnegative, default=None,
                   help="noise of the synthetic sets (default: spirals 0.02, circles 0.05, moons 0.1)")
    p.add_argument("--turns", type=positive, default=1.5, help="spiral turns (default 1.5)")


def builtin_options(args):
    """Generator options of a synthetic data set from --points, --noise, --turns."""
    kw = {"points_per_class": args.points}
    if args.noise is not None:
        kw["noise"] = args.noise
    if args.data == "spirals":
        kw["turns"] = args.turns
    return kw


def load_data(args, test_seed=None):
    """``(X, y, X_test, y_test)`` from --data / --test.

    A built-in name goes through :func:`ocdl.data.named_dataset` (synthetic sets: seed ``--seed``
    and, when ``test_seed`` is given, a second draw for the test part; real sets: their fixed
    split). ``--test`` replaces any built-in test part."""
    import os

    from ocdl.data import ALL_DATASETS, DATASETS, named_dataset
    from ocdl.errors import InputError
    from ocdl.io import read_labelled
    Xt = yt = None
    if args.data in ALL_DATASETS:
        opts = builtin_options(args) if args.data in DATASETS else {}
        X, y, Xt, yt = named_dataset(args.data, seed=args.seed, test_seed=None if args.test else test_seed, **opts)
    elif os.path.splitext(args.data)[1].lower() == ".csv" or os.path.exists(args.data):
        X, y = read_labelled(args.data)
    else:
        raise InputError(f"--data '{args.data}' is neither a built-in data set ({', '.join(ALL_DATASETS)}) "
                         f"nor an existing CSV file")
    if args.test:
        Xt, yt = read_labelled(args.test, min_classes=1)
    if Xt is not None:
        if Xt.shape[1] != X.shape[1]:
            raise InputError(f"--test has {Xt.shape[1]} features but --data has {X.shape[1]}; "
                             f"both need the same columns x1,...,x{X.shape[1]}")
        C = int(y.max()) + 1
        if int(yt.max()) >= C:
            raise InputError(f"--test has label {int(yt.max())} but the training data have only classes 0..{C - 1}")
    return X, y, Xt, yt
