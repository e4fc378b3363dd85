"""``ocdl train`` — train a ResNet-ODE classifier (thin layer over :func:`ocdl.solvers.train`)."""
import hashlib
import json
import os

import numpy as np

from ocdl.cli import runcontrol as runctl
from ocdl.cli import common
from ocdl.errors import InputError, SolverError
from ocdl.progress import log



def register(sub):
    from ocdl.models import ACTIVATIONS, FIELDS, all_integrators
    from ocdl.solvers import CLI_ALPHA, DEFAULT_ITERATIONS, SOLVERS
    p = common.add_command(
        sub, "train", "train a ResNet-ODE classifier (backprop or Pontryagin costate)",
        ["ocdl train --data spirals --solver pmp-adam --plot spirals.png --json out.json --save model.npz",
         "ocdl train --data train.csv --test test.csv --field hamiltonian --integrator verlet"],
        run)
    common.add_data_options(p, test_help="held-out labelled CSV for test_accuracy (same columns; default for the "
                                         "real built-in sets: their fixed test split)")
    p.add_argument("--label-column", metavar="NAME", default=None,
                   help="label column of the CSV (default: 'label' if present, else the last column)")
    p.add_argument("--field", type=common.choice("field", list(FIELDS)), default="outer",
                   help="vector field: inner σ(Kx+b), outer Kσ(x)+b, hamiltonian, conv σ(K∗x+b) and "
                        "hamiltonian-conv on 1-D signals (docs/conv.md) (default outer)")
    add_conv_flags(p)
    p.add_argument("--integrator", type=common.choice("integrator", all_integrators()), default="euler",
                   help="layer map: euler (classic ResNet), heun, rk4; hamiltonian also symplectic_euler, "
                        "symplectic_euler_b, verlet, yoshida4; implicit ones (implicit_midpoint, gauss2, gauss3, "
                        "lobatto3ab) with the autograd solvers only (default euler)")
    p.add_argument("--activation", type=common.choice("activation", list(ACTIVATIONS)), default="tanh",
                   help=f"activation σ of the field: {', '.join(ACTIVATIONS)} (relu'(0) taken as 0; a solver that does "
                        f"not support the activation refuses it) (default tanh)")
    p.add_argument("--layers", type=common.positive_int, default=None,
                   help="number of layers N (default 20; conv fields 8)")
    p.add_argument("--T", type=common.positive, default=None,
                   help="final time T; step h = T/N (default 5.0; conv fields 4.0)")
    p.add_argument("--width", type=common.positive_int, default=None,
                   help="state dimension d ≥ input dimension "
                        "(default 3 × input dimension; hamiltonian: rounded up to even)")
    p.add_argument("--solver", type=common.choice("solver", list(SOLVERS)), default="adam",
                   help=f"optimiser: {', '.join(SOLVERS)} (default adam)")
    p.add_argument("--iterations", type=common.positive_int, default=None,
                   help="iterations (default: the solver's own, "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_ITERATIONS.items()) + ")")
    p.add_argument("--lr", type=common.positive, default=None,
                   help="learning rate for adam/pmp-adam (default 0.05, for mini-batch runs 0.02; cosine decay) "
                        "or pmp-gd's first step")
    from ocdl.solvers import DEFAULT_BATCH, DEFAULT_EPOCHS, FULL_BATCH_MAX, NEWTON_BATCH, NEWTON_EPOCHS, \
        NEWTON_HESSIAN_SAMPLE
    from ocdl.solvers.gradient import PATIENCE
    p.add_argument("--batch-size", type=common.positive_int, default=None,
                   help=f"adam/pmp-adam/pmp-gd/msa/newton: mini-batch size (default: full batch up to {FULL_BATCH_MAX} "
                        f"training samples, else {DEFAULT_BATCH}; newton {NEWTON_BATCH} with --hessian-sample "
                        f"{NEWTON_HESSIAN_SAMPLE})")
    p.add_argument("--epochs", type=common.positive_int, default=None,
                   help=f"adam/pmp-adam/pmp-gd/msa/newton: passes over the training data; sets the iterations to "
                        f"epochs × batches per epoch (default {DEFAULT_EPOCHS} for mini-batch runs, newton and msa "
                        f"{NEWTON_EPOCHS}, unless "
                        f"--iterations is given)")
    p.add_argument("--validation", type=common.positive, default=None, metavar="FRACTION",
                   help="adam/pmp-adam/pmp-gd/msa/newton: hold out this stratified fraction of the training data; the "
                        "parameters of the epoch with the best validation accuracy are kept (early stopping)")
    p.add_argument("--patience", type=common.positive_int, default=None,
                   help=f"with --validation: stop after this many epochs without a better validation accuracy "
                        f"(default {PATIENCE})")
    p.add_argument("--segments", type=common.positive_int, default=None,
                   help="shooting: number of multiple-shooting segments (default 1)")
    p.add_argument("--hessian-sample", type=common.positive, default=None, metavar="FRACTION|COUNT",
                   help="newton (reduced): Hessian-vector products on a fresh random subsample of the gradient's "
                        "rows every step, a fraction ≤ 1 or a count > 1 (Byrd et al. 2011; default: all rows)")
    p.add_argument("--newton-formulation", type=common.choice("formulation", ["reduced", "full"]), default=None,
                   help="newton: reduced-space Newton–CG (default) or full-space Newton on F(z) = 0 with sparse LU")
    p.add_argument("--alpha", type=common.nonnegative, default=CLI_ALPHA,
                   help=f"weight decay α (default {CLI_ALPHA:g})")
    p.add_argument("--beta", type=common.nonnegative, default=0.0, help="smoothness across layers β (default 0)")
    p.add_argument("--normalize", type=common.choice("normalisation", ["standard", "range", "none"]), default=None,
                   help="input map stored in the model: standard = per-feature mean 0, std 1; range = shift/scale "
                        "the training data's bounding box into [-1, 1]^d (one scale); none "
                        "(default: standard for CSV data and the real built-in sets, range for the synthetic ones)")
    p.add_argument("--save", metavar="MODEL", help="write the trained model to exactly this path")
    runctl.add_flags(p, every=100)
    common.add_outputs(p, json=True, plot=True, seed=True,
                       device="torch device cpu, cuda or cuda:N: adam/lbfgs autograd and the pmp-* solvers' exact "
                             "costate sweep run there (default: autograd on the CPU, numpy costate sweeps)")
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


def load_data(args):
    """(X, y, X_test, y_test, table) from --data / --test / --label-column; ``table`` is the
    training CSV's :class:`~ocdl.io.LabelledTable` (None for a built-in set, synthetic or real:
    :func:`ocdl.cli.common.load_data`)."""
    from ocdl.data import ALL_DATASETS
    from ocdl.io import read_classification
    if args.data in ALL_DATASETS:
        if getattr(args, "label_column", None) is not None:
            raise InputError("--label-column applies to CSV data only")
        return (*common.load_data(args), None)
    if not (os.path.splitext(args.data)[1].lower() == ".csv" or os.path.exists(args.data)):
        raise InputError(f"--data '{args.data}' is neither a built-in data set ({', '.join(ALL_DATASETS)}) "
                         f"nor an existing CSV file")
    table = read_classification(args.data, label_column=getattr(args, "label_column", None))
    X, y = table.X, table.y
    Xt = yt = None
    if args.test:
        test = read_classification(args.test, label_column=table.label_column, features=table.features,
                                   classes=table.classes)
        Xt, yt = test.X, test.y
    return X, y, Xt, yt, table

def run(args):
    from ocdl.data import save_model
    from ocdl.io import write_json
    from ocdl.solvers import default_normalize, make_model, train
    runctl.check_flags(args)
    device = common.resolve_device(args.device, args.quiet)
    X, y, Xt, yt, table = load_data(args)
    common.check_model_size(args, X.shape[1], len(X))  # before allocating the model
    normalize = args.normalize or default_normalize(args.data, table is not None)
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
    if args.hessian_sample is not None:
        if args.solver != "newton" or args.newton_formulation == "full":
            raise InputError("--hessian-sample applies to --solver newton (reduced formulation) only")
        options["hessian_sample"] = args.hessian_sample
    if args.patience is not None and args.validation is None:
        raise InputError("--patience applies with --validation only")
    for key in ("batch_size", "epochs", "validation", "patience"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    from ocdl.solvers import MINIBATCH_SOLVERS
    if Xt is not None and args.solver in MINIBATCH_SOLVERS:
        options["test"] = (Xt, yt)
    if args.segments is not None:
        if args.solver != "shooting":
            raise InputError("--segments applies to --solver shooting only")
        options["segments"] = args.segments
    common.check_solver_memory(args.solver, model, len(y), options)   # before the solver allocates
    settings = {"solver": args.solver, "model": model.config(), "iterations": args.iterations, "seed": args.seed,
                "lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs, "validation": args.validation,
                "patience": args.patience, "data": hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()[:16]}
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
        "epochs": next((h["epoch"] for h in reversed(res.history) if "epoch" in h), None),
        "best_epoch": res.get("best_epoch"),
        "history": [{k: h[k] for k in ("iteration", "loss", "time_s", "epoch", "test_accuracy", "val_accuracy",
                                       "val_loss") if k in h} for h in res.history],
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
    common.not_converged(args, args.solver, res.success, res.message)
    return 0
