"""``ocdl train`` — train a ResNet-ODE classifier (thin layer over :func:`ocdl.solvers.train`)."""
import hashlib
import json
import os

import numpy as np

from ocdl.cli import runcontrol as runctl
from ocdl.cli import common
from ocdl.errors import InputError, SolverError
from ocdl.progress import log

FIELDS = ["inner", "outer", "hamiltonian", "conv", "hamiltonian-conv"]
INTEGRATORS = ["euler", "heun", "rk4", "symplectic_euler", "symplectic_euler_b", "verlet", "yoshida4",
               "implicit_midpoint", "gauss2", "gauss3", "lobatto3ab"]
DATASETS = ["spirals", "circles", "moons"]


def register(sub):
    from ocdl.solvers import CLI_ALPHA, SOLVERS
    p = common.add_command(
        sub, "train", "train a ResNet-ODE classifier (backprop or Pontryagin costate)",
        ["ocdl train --data spirals --solver pmp-adam --plot spirals.png --json out.json --save model.npz",
         "ocdl train --data train.csv --test test.csv --field hamiltonian --integrator verlet"],
        run)
    p.add_argument("--data", required=True, metavar="{spirals,circles,moons,PATH.csv}",
                   help="a built-in data set or a CSV file with a header line: numeric feature columns (any "
                        "names) and a label column (integers or names)")
    p.add_argument("--label-column", metavar="NAME", default=None,
                   help="label column of the CSV (default: 'label' if present, else the last column)")
    p.add_argument("--test", metavar="PATH.csv", help="held-out labelled CSV for test_accuracy (same columns)")
    p.add_argument("--field", type=common.choice("field", FIELDS), default="outer",
                   help="vector field: inner σ(Kx+b), outer Kσ(x)+b, hamiltonian, conv σ(K∗x+b) and "
                        "hamiltonian-conv on 1-D signals (docs/conv.md) (default outer)")
    add_conv_flags(p)
    p.add_argument("--integrator", type=common.choice("integrator", INTEGRATORS), default="euler",
                   help="layer map: euler (classic ResNet), heun, rk4; hamiltonian also symplectic_euler, "
                        "symplectic_euler_b, verlet, yoshida4; implicit ones (implicit_midpoint, gauss2, gauss3, "
                        "lobatto3ab) with the autograd solvers only (default euler)")
    from ocdl.models.activations import ACTIVATIONS
    p.add_argument("--activation", type=common.choice("activation", list(ACTIVATIONS)), default="tanh",
                   help="activation σ of the field: tanh, softplus, relu (relu' (0) taken as 0) (default tanh)")
    p.add_argument("--layers", type=common.positive_int, default=None,
                   help="number of layers N (default 20; conv fields 8)")
    p.add_argument("--T", type=common.positive, default=None,
                   help="final time T; step h = T/N (default 5.0; conv fields 4.0)")
    p.add_argument("--width", type=common.positive_int, default=None,
                   help="state dimension d ≥ input dimension "
                        "(default 3 × input dimension; hamiltonian: rounded up to even)")
    p.add_argument("--solver", type=common.choice("solver", list(SOLVERS)), default="adam",
                   help="optimiser (default adam)")
    p.add_argument("--iterations", type=common.positive_int, default=None,
                   help="iterations (default 3000 for adam/pmp-adam/pmp-gd, 1000 for lbfgs/pmp-lbfgs)")
    p.add_argument("--lr", type=common.positive, default=None,
                   help="learning rate for adam/pmp-adam (default 0.05, cosine decay) or pmp-gd's first step")
    p.add_argument("--segments", type=common.positive_int, default=None,
                   help="shooting: number of multiple-shooting segments (default 1)")
    p.add_argument("--newton-formulation", type=common.choice("formulation", ["reduced", "full"]), default=None,
                   help="newton: reduced-space Newton–CG (default) or full-space Newton on F(z) = 0 with sparse LU")
    p.add_argument("--alpha", type=common.nonnegative, default=CLI_ALPHA,
                   help=f"weight decay α (default {CLI_ALPHA:g})")
    p.add_argument("--beta", type=common.nonnegative, default=0.0, help="smoothness across layers β (default 0)")
    p.add_argument("--normalize", type=common.choice("normalisation", ["standard", "range", "none"]), default=None,
                   help="input map stored in the model: standard = per-feature mean 0, std 1; range = shift/scale "
                        "the training data's bounding box into [-1, 1]^d (one scale); none "
                        "(default: standard for CSV data, range for the built-in sets)")
    p.add_argument("--save", metavar="MODEL", help="write the trained model to exactly this path")
    runctl.add_flags(p, every=100)
    p.add_argument("--points", type=common.positive_int, default=200,
                   help="points per class for built-in data sets (default 200)")
    p.add_argument("--noise", type=common.nonnegative, default=None,
                   help="noise of built-in data sets (default: spirals 0.02, circles 0.05, moons 0.1)")
    p.add_argument("--turns", type=common.positive, default=1.5, help="spiral turns (default 1.5)")
    common.add_outputs(p, json=True, plot=True, seed=True, device=True)
    return p


def add_conv_flags(p):
    """``--channels``, ``--kernel`` of the conv fields (train, compare, gradcheck)."""
    p.add_argument("--channels", type=common.positive_int, default=None,
                   help="conv fields: channels C of the state C × L (default: docs/conv.md)")
    p.add_argument("--kernel", type=common.positive_int, default=None,
                   help="conv fields: odd kernel size k, same-size zero padding (default: docs/conv.md)")
    p.add_argument("--shape", type=common.int_list, default=None, metavar="H,W",
                   help="conv fields: 2-D images, each row an H × W image stored row-major (H·W = number of "
                        "features); default: one 1-D signal")


def conv_options(args):
    """``{channels, kernel, shape}`` given on the command line (for make_model)."""
    return {k: getattr(args, k) for k in ("channels", "kernel", "shape") if getattr(args, k, None) is not None}


def builtin_options(args):
    """Generator options of a built-in data set from --points, --noise, --turns."""
    kw = {"points_per_class": args.points}
    if args.noise is not None:
        kw["noise"] = args.noise
    if args.data == "spirals":
        kw["turns"] = args.turns
    return kw


def load_data(args):
    """(X, y, X_test, y_test, table) from --data / --test / --label-column; ``table`` is the
    training CSV's :class:`~ocdl.io.LabelledTable` (None for a built-in set)."""
    from ocdl.data import make_dataset
    from ocdl.io import read_classification
    table = None
    if args.data in DATASETS:
        if getattr(args, "label_column", None) is not None:
            raise InputError("--label-column applies to CSV data only")
        X, y = make_dataset(args.data, seed=args.seed, **builtin_options(args))
    elif os.path.splitext(args.data)[1].lower() == ".csv" or os.path.exists(args.data):
        table = read_classification(args.data, label_column=getattr(args, "label_column", None))
        X, y = table.X, table.y
    else:
        raise InputError(f"--data '{args.data}' is neither a built-in data set ({', '.join(DATASETS)}) "
                         f"nor an existing CSV file")
    Xt = yt = None
    if args.test:
        if table is None:
            Xt, yt = read_classification(args.test, classes=list(range(int(y.max()) + 1)))[:2]
            if Xt.shape[1] != X.shape[1]:
                raise InputError(f"--test has {Xt.shape[1]} features but --data has {X.shape[1]}")
        else:
            test = read_classification(args.test, label_column=table.label_column, features=table.features,
                                       classes=table.classes)
            Xt, yt = test.X, test.y
    return X, y, Xt, yt, table

def run(args):
    from ocdl.data import save_model
    from ocdl.io import write_json
    from ocdl.solvers import DEFAULT_NORMALIZE, make_model, train
    runctl.check_flags(args)
    for flag in ("json", "plot", "save"):
        path = getattr(args, flag)
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise InputError(f"--{flag}: directory of '{path}' does not exist; create it first")
    device = common.resolve_device(args.device, args.quiet)
    X, y, Xt, yt, table = load_data(args)
    normalize = args.normalize or ("range" if table is None else DEFAULT_NORMALIZE)
    model = make_model(X, y, field=args.field, integrator=args.integrator, layers=args.layers, T=args.T,
                       width=args.width, alpha=args.alpha, beta=args.beta, normalize=normalize,
                       activation=args.activation, n_classes=None if table is None else len(table.classes),
                       **conv_options(args))
    data_meta = None if table is None else {"features": table.features, "label_column": table.label_column,
                                            "classes": table.classes}
    options = {}
    if args.lr is not None:
        options["lr"] = args.lr
    if args.newton_formulation is not None:
        if args.solver != "newton":
            raise InputError("--newton-formulation applies to --solver newton only")
        options["formulation"] = args.newton_formulation
    if args.segments is not None:
        if args.solver != "shooting":
            raise InputError("--segments applies to --solver shooting only")
        options["segments"] = args.segments
    settings = {"solver": args.solver, "model": model.config(), "iterations": args.iterations, "seed": args.seed,
                "lr": args.lr, "data": hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()[:16]}
    try:
        with runctl.RunControl(args, settings) as rc:
            options.update(rc.options())
            res = train(X, y, solver=args.solver, model=model, iterations=args.iterations, seed=args.seed,
                        quiet=args.quiet, device=device, **options)
    except SolverError as exc:
        bad = getattr(exc, "result", None)
        if bad is not None and args.save and np.isfinite(bad.fun):
            save_model(args.save, model, bad.x, info={"status": "diverged", "message": bad.message,
                                                      "solver": args.solver}, data=data_meta)
            raise SolverError(f"{exc}; last good parameters saved to {args.save}") from None
        raise
    params = res.x
    out = {
        "solver": args.solver, "field": args.field, "integrator": args.integrator, "layers": model.layers,
        "T": model.T, "width": model.d, "alpha": args.alpha, "beta": args.beta, "normalize": normalize,
        "seed": args.seed,
        "train_loss": res.fun, "train_accuracy": model.accuracy(params, X, y),
        "test_accuracy": model.accuracy(params, Xt, yt) if Xt is not None else None,
        "iterations": res.nit, "wall_time_s": res.wall_time_s, "success": res.success, "message": res.message,
        "kkt_residual": res.get("kkt"),
        "history": [{"iteration": h["iteration"], "loss": h["loss"], "time_s": h["time_s"]} for h in res.history],
    }
    if args.save:
        save_model(args.save, model, params, info={k: out[k] for k in (
            "solver", "train_loss", "train_accuracy", "test_accuracy", "iterations", "wall_time_s", "seed")},
            data=data_meta)
    if args.plot:
        from ocdl.models.plotting import plot_classifier
        from ocdl.plotting import save_figure
        title = (f"ocdl train --solver {args.solver} --field {args.field} --integrator {args.integrator} "
                 f"--layers {model.layers} --T {model.T:g}: loss {res.fun:.4f}, "
                 f"train {100 * out['train_accuracy']:.1f} %"
                 + (f", test {100 * out['test_accuracy']:.1f} %" if Xt is not None else ""))
        names = {} if table is None else {"classes": table.classes, "features": table.features}
        save_figure(plot_classifier(model, params, X, y, title=title, **names), args.plot)
    if args.json:
        write_json(args.json, out)
    else:
        from ocdl.io import to_jsonable
        print(json.dumps(to_jsonable({k: v for k, v in out.items() if k != "history"})))
    log(f"{args.solver}: loss {res.fun:.5f}, train accuracy {100 * out['train_accuracy']:.1f} %"
        + (f", test accuracy {100 * out['test_accuracy']:.1f} %" if Xt is not None else "")
        + f", {res.nit} iterations in {res.wall_time_s:.1f} s", args.quiet)
    common.warn_not_converged(args.solver, res.success, res.message)
    return 0
