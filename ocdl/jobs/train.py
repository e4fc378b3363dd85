"""``ocdl train`` as a library call: :class:`TrainJob` (the options, their defaults and checks) and
the checks :func:`ocdl.train` shares with it (:func:`check_arrays`, :func:`check_options`,
:func:`guard`).

    from ocdl.jobs import TrainJob
    out = TrainJob(data="spirals", solver="pmp-adam", save="model.npz").run()   # the JSON dict

The run: load the data (:func:`ocdl.data.loading.load_dataset`, one label codec), build the model
(:func:`ocdl.solvers.make_model`), check memory and time (:func:`guard`, also inside
:func:`ocdl.train`), train with checkpoints and SIGINT/SIGTERM handling
(:class:`~ocdl.jobs.runcontrol.RunControl`), keep the last good parameters of a diverged run
(:func:`~ocdl.jobs.runcontrol.keep_last_good`), write ``save``/``json``/``plot``.
"""
import dataclasses

import numpy as np

from ocdl.errors import InputError
from ocdl.jobs.base import Resumable, digest, option
from ocdl.solvers import defaults as TABLE      # the reference row of the one defaults table

DATA_HELP = ("a built-in data set (synthetic spirals, circles, moons; real mnist1d, digits, wine, breast-cancer, "
             "iris with a fixed train/test split, see docs/benchmarks-real.md) or a CSV file with header "
             "x1,...,xd,label")
DATA_METAVAR = "{spirals,circles,moons,mnist1d,digits,wine,breast-cancer,iris,PATH.csv}"


def _solvers():
    from ocdl.solvers import SOLVERS
    return list(SOLVERS)


def _default_iterations():
    from ocdl.solvers import DEFAULT_ITERATIONS
    return DEFAULT_ITERATIONS


def _activations():
    from ocdl.models.activations import ACTIVATIONS
    return list(ACTIVATIONS)


def _fields():
    from ocdl.models.fields import FIELDS
    return list(FIELDS)


def _integrators():
    from ocdl.models.resnet import all_integrators
    return all_integrators()


# ---------------------------------------------------------------------------- shared with ocdl.train
def check_arrays(X, y, n_classes=None):
    """``(X, y)`` as float64 (n, d) and int64 (n,) class indices, or one InputError naming the argument:
    empty, complex, non-finite or non-numeric X; y not integers 0..C−1 (strings: encode them with
    :class:`ocdl.data.labels.LabelCodec` or use :class:`ocdl.ResNetODEClassifier`), NaN, wrong length."""
    try:
        Xa = np.asarray(X)
    except (ValueError, TypeError) as exc:
        raise InputError(f"X must be a numeric (n, d) array ({exc})") from None
    if np.iscomplexobj(Xa):
        raise InputError("X is complex; give real inputs (e.g. np.column_stack([X.real, X.imag]))")
    if Xa.dtype.kind not in "biuf":
        raise InputError(f"X must hold real numbers (got dtype {Xa.dtype})")
    if Xa.ndim != 2 or Xa.shape[0] == 0 or Xa.shape[1] == 0:
        raise InputError(f"X must be a non-empty (n, d) array (got shape {Xa.shape})")
    Xa = Xa.astype(float)
    if not np.all(np.isfinite(Xa)):
        raise InputError("X holds NaN or infinite values")
    if np.max(np.abs(Xa)) > 1e150:
        raise InputError("X holds values larger than 1e150 in magnitude; rescale it")
    ya = np.asarray(y)
    if ya.ndim != 1 or len(ya) != len(Xa):
        raise InputError(f"y must be a 1-D array of {len(Xa)} class indices (got shape {ya.shape})")
    if ya.dtype.kind == "f":
        if not np.all(np.isfinite(ya)) or np.any(ya != np.round(ya)):
            raise InputError("y holds NaN, infinite or fractional values; give class indices 0..C-1")
    elif ya.dtype.kind not in "biu":
        raise InputError(f"y must hold integer class indices 0..C-1 (got dtype {ya.dtype}); encode labels with "
                         f"ocdl.data.labels.LabelCodec.fit(y) or use ocdl.ResNetODEClassifier")
    ya = ya.astype(np.int64)
    if ya.min() < 0 or (n_classes is not None and ya.max() >= n_classes):
        raise InputError(f"y must hold class indices in 0..{'C' if n_classes is None else n_classes}-1 "
                         f"(found {ya.min()}..{ya.max()})")
    from ocdl.data.labels import MAX_CLASSES
    if ya.max() >= MAX_CLASSES:
        raise InputError(f"y has class index {ya.max()}; at most {MAX_CLASSES} classes are supported")
    return Xa, ya


#: the numeric options of ``ocdl.train`` and ``ocdl train``, by kind (one validation for both)
OPTION_KINDS = {"lr": "positive", "iterations": "count", "layers": "count", "width": "count", "T": "positive",
                "alpha": "nonnegative", "beta": "nonnegative", "batch_size": "count", "epochs": "count",
                "validation": "fraction", "patience": "count", "segments": "count", "hessian_sample": "positive",
                "seed": "seed", "gtol": "nonnegative", "checkpoint_every": "count"}


def check_options(options):
    """The numeric entries of ``options`` (names of :data:`OPTION_KINDS`) checked alike for the library
    and the CLI: returns them converted; InputError naming the first bad one."""
    from ocdl.jobs.base import check_value
    return {k: (check_value(k, v, OPTION_KINDS[k]) if k in OPTION_KINDS else v) for k, v in options.items()}


def estimate(solver, model, n, options=None, iterations=None):
    """The :class:`~ocdl.jobs.budget.Estimate` of training ``model`` on ``n`` samples: memory from
    :func:`ocdl.solvers.memory.estimate` (options as they will run: mini-batch defaults filled in),
    time ≈ iterations × 12 (N+1) B d m flops (forward, backward and the parameter update)."""
    from ocdl.jobs.budget import SECONDS_PER_FLOP, SECONDS_PER_STEP, Estimate
    from ocdl.solvers import DEFAULT_ITERATIONS, default_batching
    from ocdl.solvers.memory import estimate as memory
    opts = default_batching(solver, n, dict(options or {}), field=model.field)
    formulation = opts.get("formulation", "reduced")
    nbytes, flag = memory(solver, model, n, opts.get("batch_size"), opts.get("hessian_sample"), formulation,
                          opts.get("segments") or 1)
    B = min(n, opts.get("batch_size") or n)
    # epochs override the iteration count (ocdl.solvers.gradient.Batching)
    its = opts["epochs"] * -(-n // B) if opts.get("epochs") else (iterations or DEFAULT_ITERATIONS.get(solver, 1000))
    flops = 12.0 * its * (model.layers + 1) * B * model.d * model.m
    what = f"--solver {solver}" + (" --newton-formulation full" if solver == "newton" and formulation == "full"
                                   else "")
    what += f" (width {model.d}, {model.layers} layers, {n} samples" + (
        f", batches of {opts['batch_size']}" if opts.get("batch_size") else "") + f", {its} iterations)"
    advice = (f"reduce {flag}" if flag != "--newton-formulation reduced" else "use --newton-formulation reduced")
    return Estimate(nbytes, flops * SECONDS_PER_FLOP + SECONDS_PER_STEP * its * (model.layers + 1), what, advice)


def guard(solver, model, n, options=None, iterations=None, max_seconds=None):
    """:func:`ocdl.jobs.budget.check_budget` of :func:`estimate` — the memory and time guard of
    ``ocdl train`` and of :func:`ocdl.train` (``max_seconds=inf`` lifts the time bound)."""
    from ocdl.jobs.budget import check_budget
    check_budget(estimate(solver, model, n, options, iterations), max_seconds)


def model_bytes(layers, width, samples, classes=2):
    """Rough float64 memory of a ResNet-ODE's training: parameters K (N, d, d), b (N, d) with a few
    optimiser copies, and the states x_0..x_N of all samples kept for the backward sweep (with the
    costates and autograd's tape: ≈ 4 copies) — checked before the model is even built."""
    params = layers * width * (width + 1) + classes * (width + 1)
    return 8 * (4 * params + 4 * (layers + 1) * samples * width)


def check_model_size(layers, width, n_features, samples, names=("--layers", "--width")):
    """Memory guard of :func:`model_bytes` (defaults: the outer field's row of the defaults table,
    :func:`ocdl.solvers.defaults.choose` — 20 layers, width 3 × features)."""
    from ocdl.jobs.budget import check_memory
    from ocdl.solvers.defaults import choose
    row = choose(max(int(samples), 1), max(int(n_features), 1), field="outer")
    layers, w = layers or row["layers"], width or row["width"]
    flags = f"{names[0]} {layers} {names[1]} {w}" + ("" if width else " (default)")
    check_memory(model_bytes(layers, w, samples), flags)


# ---------------------------------------------------------------------------- the job
@dataclasses.dataclass
class TrainJob(Resumable):
    """``ocdl train``: train a ResNet-ODE classifier on a data set (see the module docstring)."""
    data: str = option(None, DATA_HELP, "text", required=True, metavar=DATA_METAVAR)
    test: str = option(None, "held-out labelled CSV for test_accuracy (same columns; default for the real "
                             "built-in sets: their fixed test split)", "path", role="input", metavar="PATH.csv")
    points: int = option(200, "points per class for the synthetic sets (default 200)", "count")
    noise: float = option(None, "noise of the synthetic sets (default: spirals 0.02, circles 0.05, moons 0.1)",
                          "nonnegative")
    turns: float = option(1.5, "spiral turns (default 1.5)", "positive")
    label_column: str = option(None, "label column of the CSV (default: 'label' if present, else the last column)",
                               "text", metavar="NAME")
    field: str = option("outer", "vector field: inner σ(Kx+b), outer Kσ(x)+b, hamiltonian, conv σ(K∗x+b) and "
                                 "hamiltonian-conv on 1-D signals (docs/conv.md) (default outer)", "choice",
                        choices=_fields)
    channels: int = option(None, "conv fields: channels C of the state C × L (default: docs/conv.md)", "count")
    kernel: int = option(None, "conv fields: odd kernel size k, same-size zero padding (default: docs/conv.md)",
                         "count")
    shape: list = option(None, "conv fields: 2-D images, each row an H × W image stored row-major (H·W = number "
                               "of features); default: one 1-D signal", "counts", metavar="H,W")
    integrator: str = option("euler", "layer map: euler (classic ResNet), heun, rk4; hamiltonian also "
                                      "symplectic_euler, symplectic_euler_b, verlet, yoshida4; implicit ones "
                                      "(implicit_midpoint, gauss2, gauss3, lobatto3ab) with the autograd solvers "
                                      "only (default euler)", "choice", choices=_integrators)
    activation: str = option(TABLE.ACTIVATION, "activation σ of the field: tanh, softplus, relu (relu' (0) taken as "
                                               "0; a solver that does not support it refuses it) (default "
                                               f"{TABLE.ACTIVATION})", "choice",
                             choices=_activations)
    layers: int = option(None, "number of layers N (default 20; conv fields 8)", "count")
    T: float = option(None, "final time T; step h = T/N (default 5.0; conv fields 4.0)", "positive")
    width: int = option(None, "state dimension d ≥ input dimension (default 3 × input dimension; hamiltonian: "
                              "rounded up to even)", "count")
    solver: str = option(TABLE.SOLVER, f"optimiser: {', '.join(_solvers())} (default {TABLE.SOLVER})", "choice",
                         choices=_solvers())
    iterations: int = option(None, "iterations (default: the solver's own, " + ", ".join(
        f"{k} {v}" for k, v in _default_iterations().items()) + ")", "count")
    lr: float = option(None, "learning rate for adam/pmp-adam (default 0.05, for mini-batch runs 0.02; cosine "
                             "decay) or pmp-gd's first step", "positive")
    batch_size: int = option(None, "adam/pmp-adam/pmp-gd/msa/newton: mini-batch size (default: full batch up to "
                                   "1000 training samples, else 128)", "count")
    epochs: int = option(None, "adam/pmp-adam/pmp-gd/msa/newton: passes over the training data; sets the "
                               "iterations to epochs × batches per epoch", "count")
    validation: float = option(None, "adam/pmp-adam/pmp-gd/msa/newton: hold out this stratified fraction of the "
                                     "training data; the parameters of the epoch with the best validation accuracy "
                                     "are kept (early stopping)", "fraction", metavar="FRACTION")
    patience: int = option(None, "with --validation: stop after this many epochs without a better validation "
                                 "accuracy", "count")
    segments: int = option(None, "shooting: number of multiple-shooting segments (default 1)", "count")
    hessian_sample: float = option(None, "newton (reduced): Hessian-vector products on a fresh random subsample "
                                         "of the gradient's rows every step, a fraction ≤ 1 or a count > 1 "
                                         "(default: all rows)", "positive", metavar="FRACTION|COUNT")
    newton_formulation: str = option(None, "newton: reduced-space Newton–CG (default) or full-space Newton on "
                                           "F(z) = 0 with sparse LU", "choice", choices=["reduced", "full"])
    newton_curvature: str = option(None, "newton (reduced): curvature of the CG steps far from a solution — "
                                         "hessian (exact, trust region; default) or gauss-newton "
                                         "(Levenberg–Marquardt on the generalised Gauss–Newton matrix; the exact "
                                         "Hessian near the solution)", "choice", choices=["hessian", "gauss-newton"])
    newton_preconditioner: str = option(None, "newton (reduced, gauss-newton curvature): preconditioner and "
                                              "damping metric of the CG — kfac (Kronecker-factored Gauss–Newton "
                                              "blocks of the layers from the costate sweeps; outer, inner or conv "
                                              "field, euler) or none (default: kfac with --newton-warm-start none on "
                                              "more than 1000 samples on those, else none)", "choice",
                                        choices=["kfac", "none"])
    newton_warm_start: str = option(None, "newton: warm start before the Newton steps — adam (default, reduced), "
                                          "lbfgs (default, full) or none (from the initialisation)", "choice",
                                    choices=["adam", "lbfgs", "none"])
    alpha: float = option(TABLE.ALPHA, f"weight decay α (default {TABLE.ALPHA:g})", "nonnegative")
    beta: float = option(0.0, "smoothness across layers β (default 0)", "nonnegative")
    normalize: str = option(None, "input map stored in the model: standard = per-feature mean 0, std 1; range = "
                                  "shift/scale the training data's bounding box into [-1, 1]^d (one scale); none "
                                  "(default: standard for CSV data and the real built-in sets, range for the "
                                  "synthetic ones)", "choice", choices=["standard", "range", "none"])
    save: str = option(None, "write the trained model to exactly this path", "path", role="output",
                       metavar="MODEL")
    json: str = option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")
    plot: str = option(None, "write a picture", "path", role="output", metavar="PNG")
    seed: int = option(0, "random seed (default 0)", "seed")
    tensorboard: str = option(None, "write TensorBoard scalars (loss, accuracies, gradient norm, learning rate, "
                                    "wall time per iteration) into DIR/<solver>/ (needs the extra tensorboard)",
                              "path", role="directory", metavar="DIR")
    device: str = option(None, "torch device cpu, cuda or cuda:N: adam/lbfgs autograd and the pmp-* solvers' "
                               "exact costate sweep run there (default: autograd on the CPU, numpy costate "
                               "sweeps)", "text")

    CHECKPOINT_FILES = ("checkpoint.npz",)

    def inputs(self):
        from ocdl.data.loading import is_csv
        out = super().inputs()
        return out + ([("--data", self.data)] if self.data is not None and is_csv(self.data) else [])

    def check(self):
        super().check()
        if self.data is None:
            raise InputError("data is required (a built-in data set name or a CSV path)")
        if self.newton_formulation is not None and self.solver != "newton":
            raise InputError("--newton-formulation applies to --solver newton only")
        if self.hessian_sample is not None and (self.solver != "newton" or self.newton_formulation == "full"):
            raise InputError("--hessian-sample applies to --solver newton (reduced formulation) only")
        if self.newton_curvature is not None and (self.solver != "newton" or self.newton_formulation == "full"):
            raise InputError("--newton-curvature applies to --solver newton (reduced formulation) only")
        if self.newton_preconditioner is not None and (self.solver != "newton" or self.newton_formulation == "full"):
            raise InputError("--newton-preconditioner applies to --solver newton (reduced formulation) only")
        if self.newton_warm_start is not None and self.solver != "newton":
            raise InputError("--newton-warm-start applies to --solver newton only")
        if self.patience is not None and self.validation is None:
            raise InputError("--patience applies with --validation only")
        if self.segments is not None and self.solver != "shooting":
            raise InputError("--segments applies to --solver shooting only")

    def estimate(self):
        from ocdl.jobs.work import training_data
        return training_data(self)           # synthetic data: before drawing them

    def outputs(self):
        out = super().outputs()
        if self.checkpoint and self.save is None:
            out.append(("--checkpoint", f"{self.checkpoint}/last_good.npz"))
        return out

    def options(self):
        """The solver keywords of this job (besides model, iterations, seed, device)."""
        opts = {k: getattr(self, k) for k in ("lr", "batch_size", "epochs", "validation", "patience", "segments",
                                               "hessian_sample") if getattr(self, k) is not None}
        if self.newton_formulation is not None:
            opts["formulation"] = self.newton_formulation
        if self.newton_curvature is not None:
            opts["curvature"] = self.newton_curvature
        if self.newton_preconditioner is not None:
            opts["preconditioner"] = self.newton_preconditioner
        if self.newton_warm_start is not None:
            opts["warm_start"] = self.newton_warm_start
        return opts

    def execute(self):
        from ocdl.data.loading import load_dataset
        from ocdl.solvers import MINIBATCH_SOLVERS, default_normalize, make_model
        device = resolve_device(self.device)
        ds = load_dataset(self.data, self.test, self.label_column, self.seed, self.points, self.noise, self.turns)
        for note in ds.notes:
            self.log(f"ocdl: note: {note}")
        X, y, Xt, yt = ds.X, ds.y, ds.X_test, ds.y_test
        check_model_size(self.layers, self.width, X.shape[1], len(X))   # before allocating the model
        normalize = self.normalize or default_normalize(self.data, ds.from_table)
        conv = {k: getattr(self, k) for k in ("channels", "kernel", "shape") if getattr(self, k) is not None}
        model = make_model(X, y, field=self.field, integrator=self.integrator, layers=self.layers, T=self.T,
                           width=self.width, alpha=self.alpha, beta=self.beta, normalize=normalize,
                           activation=self.activation, n_classes=len(ds.codec) if ds.from_table else None, **conv)
        options = self.options()
        if Xt is not None and self.solver in MINIBATCH_SOLVERS:
            options["test"] = (Xt, yt)
        guard(self.solver, model, len(y), options, self.iterations, self.max_seconds)
        settings = {"solver": self.solver, "model": model.config(), "iterations": self.iterations, "seed": self.seed,
                    "lr": self.lr, "batch_size": self.batch_size, "epochs": self.epochs,
                    "validation": self.validation, "patience": self.patience, "data": digest(X, y)}
        from ocdl.data import save_model
        from ocdl.jobs.runcontrol import RunControl, keep_last_good, last_good_path
        from ocdl.solvers import train

        def save_last(x, exc):
            if not np.all([np.all(np.isfinite(v)) for v in x.values()]):
                return None
            path = self.save or last_good_path(self.checkpoint, "last_good.npz")
            if path is not None:
                save_model(path, model, x, info={"status": "diverged", "message": exc.message
                                                 if hasattr(exc, "message") else str(exc), "solver": self.solver},
                           data=ds.meta())
            return path
        with keep_last_good(save_last), RunControl(self, settings, size=model.n_params()) as rc:
            res = train(X, y, solver=self.solver, model=model, iterations=self.iterations, seed=self.seed,
                        quiet=self.quiet, device=device, max_seconds=float("inf"), tensorboard_dir=self.tensorboard,
                        **options, **rc.options())
        params = res.x
        out = {
            "solver": self.solver, "field": self.field, "integrator": self.integrator, "layers": model.layers,
            "T": model.T, "width": model.d, "alpha": self.alpha, "beta": self.beta, "normalize": normalize,
            "seed": self.seed, "train_loss": res.fun, "train_accuracy": model.accuracy(params, X, y),
            "test_accuracy": model.accuracy(params, Xt, yt) if Xt is not None else None,
            "iterations": res.nit, "wall_time_s": res.wall_time_s, "success": res.success, "message": res.message,
            "kkt_residual": res.get("kkt"),
            "epochs": next((h["epoch"] for h in reversed(res.history) if "epoch" in h), None),
            "best_epoch": res.get("best_epoch"),
            "history": [{k: h[k] for k in ("iteration", "loss", "time_s", "epoch", "test_accuracy", "val_accuracy",
                                           "val_loss") if k in h} for h in res.history],
        }
        if self.save:
            save_model(self.save, model, params, info={k: out[k] for k in (
                "solver", "train_loss", "train_accuracy", "test_accuracy", "iterations", "wall_time_s", "seed")},
                data=ds.meta())
        if self.plot:
            from ocdl.models.plotting import plot_classifier
            from ocdl.plotting import save_figure
            title = (f"ocdl train --solver {self.solver} --field {self.field} --integrator {self.integrator} "
                     f"--layers {model.layers} --T {model.T:g}: loss {res.fun:.4f}, "
                     f"train {100 * out['train_accuracy']:.1f} %"
                     + (f", test {100 * out['test_accuracy']:.1f} %" if Xt is not None else ""))
            names = {"classes": ds.classes, "features": ds.features} if ds.from_table else {}
            save_figure(plot_classifier(model, params, X, y, title=title, **names), self.plot)
        if self.json:
            from ocdl.io import write_json
            write_json(self.json, out)
        return out


def resolve_device(name):
    """The torch device of ``device`` (None stays None); 'cuda' without that GPU is an InputError."""
    if name is None or name == "cpu":
        return name
    if not isinstance(name, str):
        raise InputError(f"device must be a name such as 'cpu' or 'cuda:0' (got {name!r})")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        import torch
        if not torch.cuda.is_available():
            raise InputError(f"no CUDA device: device {name} needs a GPU, and torch {torch.__version__} sees none "
                             f"(torch.cuda.is_available() is False)")
        count = torch.cuda.device_count()
        if name != "cuda" and int(name[5:]) >= count:
            raise InputError(f"no CUDA device: device {name}, but torch sees {count} GPU(s)")
        return name
    raise InputError(f"unknown device '{name}' (valid: cpu, cuda, cuda:N)")
