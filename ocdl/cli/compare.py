"""``ocdl compare``: several solvers on the same data, model, initialisation and cost."""
from ocdl.cli import common
from ocdl.progress import log



def register(sub):
    from ocdl.models import FIELDS
    from ocdl.solvers.compare import DEFAULT_SOLVERS, LARGE_DATA_SOLVERS
    DEFAULT, LARGE = ",".join(DEFAULT_SOLVERS), ",".join(LARGE_DATA_SOLVERS)
    from ocdl.models.resnet import EXPLICIT_METHODS, IMPLICIT_RK_METHODS, SPLITTINGS
    from ocdl.solvers import SOLVERS
    p = common.add_command(
        sub, "compare", "run several solvers (backprop and Pontryagin) on the same problem and compare them",
        ["ocdl compare --data spirals --solvers adam,pmp-lbfgs,msa,newton --json cmp.json --plot cmp.png",
         "ocdl compare --data train.csv --test test.csv --solvers adam,newton --layers 10 --T 2"],
        run)
    common.add_data_options(p, test_help="held-out labelled CSV (default for synthetic sets: a fresh draw with "
                                         "seed + 1000; for real sets: their fixed test split)")
    p.add_argument("--solvers", type=common.choice_list("solver", list(SOLVERS)), default=None,
                   help=f"comma-separated solvers (default {DEFAULT}; on more than 1000 training samples "
                        f"{LARGE})")
    p.add_argument("--field", type=common.choice("field", list(FIELDS)), default="outer",
                   help="vector field (default outer)")
    p.add_argument("--integrator", type=common.choice("integrator", list(EXPLICIT_METHODS) + list(SPLITTINGS)
                                                        + list(IMPLICIT_RK_METHODS) + ["lobatto3ab"]),
                   default="euler", help="layer map (default euler)")
    p.add_argument("--layers", type=common.positive_int, default=None,
                   help="number of layers N (default 20; conv fields 8)")
    p.add_argument("--T", type=common.positive, default=None, help="final time T (default 5; conv fields 4)")
    from ocdl.cli.train import add_conv_flags
    add_conv_flags(p)
    p.add_argument("--alpha", type=common.nonnegative, default=None,
                   help="weight decay α (default 1e-3 on the synthetic sets, 3e-3 — ocdl train's — "
                        "on real and CSV data)")
    p.add_argument("--width", type=common.positive_int, default=None,
                   help="state dimension (default 3 × input dimension; hamiltonian: rounded up to even)")
    p.add_argument("--iterations", type=common.positive_int, default=None,
                   help="iterations for every solver (default: each solver's own default)")
    p.add_argument("--target", type=common.positive, default=None,
                   help="target loss for time_to_target_s (default 1.05 × best loss reached)")
    p.add_argument("--normalize", type=common.choice("normalisation", ["standard", "range", "none"]), default=None,
                   help="input map stored in the model, as in ocdl train: standard (per-feature mean 0, std 1), "
                        "range (bounding box into [-1, 1]^d) or none (default: standard for CSV data and the real "
                        "built-in sets, range for the synthetic ones)")
    p.add_argument("--segments", type=common.positive_int, default=1, help="shooting segments (default 1)")
    p.add_argument("--device", default="cpu", help="torch device for adam/lbfgs: cpu (default) or cuda")
    p.add_argument("--hessian-sample", type=common.positive, default=None, metavar="FRACTION|COUNT",
                   help="newton: Hessian-vector products on a random subsample of each step's rows (a fraction "
                        "in (0, 1] or a count; default all rows, on more than 1000 samples 128 of batches of 512)")
    p.add_argument("--newton-formulation", type=common.choice("formulation", ["reduced", "full"]), default="reduced",
                   help="newton: reduced-space Newton–CG (default) or full-space Newton on F(z) = 0 with sparse LU")
    common.add_tensorboard(p)
    common.add_outputs(p, json=True, plot=True, seed=True)
    return p


def load(args):
    """Training data and test data (a second draw for built-in data sets without --test)."""
    from ocdl.data.loading import load_dataset, synthetic_test_seed
    ds = load_dataset(args.data, args.test, None, args.seed, args.points, args.noise, args.turns,
                      test_seed=synthetic_test_seed(args.seed))
    return ds.X, ds.y, ds.X_test, ds.y_test


def run(args):
    from ocdl.io import write_json
    from ocdl.cli.train import conv_options
    from ocdl.solvers.compare import compare, plot, table
    from ocdl.data import DATASETS
    from ocdl.solvers import COMPARE_SYNTHETIC_ALPHA, DEFAULT_ALPHA, default_normalize
    X, y, Xt, yt = load(args)
    from ocdl.jobs.train import check_model_size, guard
    check_model_size(args.layers, args.width, X.shape[1], len(X))  # before allocating the model
    synthetic = args.data in DATASETS
    normalize = args.normalize or default_normalize(args.data)
    alpha = args.alpha if args.alpha is not None else (COMPARE_SYNTHETIC_ALPHA if synthetic else DEFAULT_ALPHA)
    device = common.resolve_device(args.device, args.quiet)
    newton = {"formulation": args.newton_formulation}
    if args.hessian_sample is not None:
        newton["hessian_sample"] = args.hessian_sample
    options = {"shooting": {"segments": args.segments}, "newton": newton,
               "adam": {"device": device}, "lbfgs": {"device": device}}
    from ocdl.optim import tensorboard
    with tensorboard.session(args.tensorboard):         # one TensorBoard run per solver
        result = compare(X, y, args.solvers, X_test=Xt, y_test=yt, field=args.field, integrator=args.integrator,
                         layers=args.layers, T=args.T, alpha=alpha, width=args.width, seed=args.seed,
                         iterations=args.iterations, target=args.target, options=options, quiet=args.quiet,
                         normalize=normalize, precheck=guard, **conv_options(args),
                         log=lambda msg: log(msg, args.quiet))
    result["settings"]["data"] = args.data
    from ocdl.data import REAL_DATASETS
    from ocdl.data.loading import synthetic_test_seed
    drawn = f"{args.data} test split" if args.data in REAL_DATASETS else \
        f"{args.data} seed {synthetic_test_seed(args.seed)}"
    result["settings"]["test"] = args.test or (None if Xt is None else drawn)
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
