"""``ocdl compare``: several solvers on the same data, model, initialisation and cost."""
import os

from ocdl.cli import common
from ocdl.errors import InputError
from ocdl.progress import log

DEFAULT = "adam,lbfgs,pmp-lbfgs,msa,shooting,newton"


def register(sub):
    from ocdl.data.datasets import DATASETS  # noqa: F401  (validated in load_data)
    from ocdl.models import FIELDS
    from ocdl.models.resnet import EXPLICIT_METHODS, IMPLICIT_RK_METHODS, SPLITTINGS
    from ocdl.solvers import SOLVERS
    p = common.add_command(
        sub, "compare", "run several solvers (backprop and Pontryagin) on the same problem and compare them",
        ["ocdl compare --data spirals --solvers adam,pmp-lbfgs,msa,newton --json cmp.json --plot cmp.png",
         "ocdl compare --data train.csv --test test.csv --solvers adam,newton --layers 10 --T 2"],
        run)
    p.add_argument("--data", required=True, metavar="{spirals,circles,moons,PATH.csv}",
                   help="a built-in data set or a CSV file with header x1,...,xd,label")
    p.add_argument("--test", metavar="PATH.csv",
                   help="held-out labelled CSV (default for built-in sets: a fresh draw with seed + 1000)")
    p.add_argument("--solvers", type=common.choice_list("solver", list(SOLVERS)), default=DEFAULT,
                   help=f"comma-separated solvers (default {DEFAULT})")
    p.add_argument("--field", type=common.choice("field", list(FIELDS)), default="outer",
                   help="vector field (default outer)")
    p.add_argument("--integrator", type=common.choice("integrator", list(EXPLICIT_METHODS) + list(SPLITTINGS)
                                                        + list(IMPLICIT_RK_METHODS) + ["lobatto3ab"]),
                   default="euler", help="layer map (default euler)")
    p.add_argument("--layers", type=common.positive_int, default=20, help="number of layers N (default 20)")
    p.add_argument("--T", type=common.positive, default=5.0, help="final time T (default 5)")
    p.add_argument("--alpha", type=common.nonnegative, default=1e-3, help="weight decay α (default 1e-3)")
    p.add_argument("--width", type=common.positive_int, default=None,
                   help="state dimension (default 2 × input dimension)")
    p.add_argument("--iterations", type=common.positive_int, default=None,
                   help="iterations for every solver (default: each solver's own default)")
    p.add_argument("--target", type=common.positive, default=None,
                   help="target loss for time_to_target_s (default 1.05 × best loss reached)")
    p.add_argument("--normalize", type=common.choice("normalisation", ["range", "none"]), default="range",
                   help="fixed input map into [-1, 1]^d stored in the model: range (default) or none")
    p.add_argument("--segments", type=common.positive_int, default=1, help="shooting segments (default 1)")
    p.add_argument("--device", default="cpu", help="torch device for adam/lbfgs: cpu (default) or cuda")
    p.add_argument("--newton-formulation", type=common.choice("formulation", ["reduced", "full"]), default="reduced",
                   help="newton: reduced-space Newton–CG (default) or full-space Newton on F(z) = 0 with sparse LU")
    p.add_argument("--points", type=common.positive_int, default=200,
                   help="points per class for built-in sets (default 200)")
    p.add_argument("--noise", type=common.nonnegative, default=None, help="noise of built-in data sets")
    p.add_argument("--turns", type=common.positive, default=1.5, help="spiral turns (default 1.5)")
    common.add_outputs(p, json=True, plot=True, seed=True)
    return p


def load(args):
    """Training data and test data (a second draw for built-in data sets without --test)."""
    from ocdl.cli.train import builtin_options, load_data
    from ocdl.data import make_dataset
    from ocdl.data.datasets import DATASETS
    X, y, Xt, yt, _ = load_data(args)
    if Xt is None and args.data in DATASETS:
        Xt, yt = make_dataset(args.data, seed=args.seed + 1000, **builtin_options(args))
    return X, y, Xt, yt


def run(args):
    from ocdl.io import write_json
    from ocdl.solvers.compare import compare, plot, table
    for flag in ("json", "plot"):
        path = getattr(args, flag)
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise InputError(f"--{flag}: directory of '{path}' does not exist; create it first")
    X, y, Xt, yt = load(args)
    device = common.resolve_device(args.device, args.quiet)
    options = {"shooting": {"segments": args.segments}, "newton": {"formulation": args.newton_formulation},
               "adam": {"device": device}, "lbfgs": {"device": device}}
    result = compare(X, y, args.solvers, X_test=Xt, y_test=yt, field=args.field, integrator=args.integrator,
                     layers=args.layers, T=args.T, alpha=args.alpha, width=args.width, seed=args.seed,
                     iterations=args.iterations, target=args.target, options=options, quiet=args.quiet,
                     normalize=args.normalize == "range",
                     log=lambda msg: log(msg, args.quiet))
    result["settings"]["data"] = args.data
    result["settings"]["test"] = args.test or (f"{args.data} seed {args.seed + 1000}" if Xt is not None else None)
    print(table(result))
    for name, r in result["solvers"].items():
        if not r.get("error"):                   # failures are listed under the table already
            common.warn_not_converged(name, r["converged"], r["message"])
    errors = [r.get("error") for r in result["solvers"].values()]
    if all(errors):
        from ocdl.errors import SolverError
        raise SolverError(f"every solver failed; first: {errors[0]}")
    if args.json:
        write_json(args.json, result)
    if args.plot:
        plot(result, args.plot)
    return 0
