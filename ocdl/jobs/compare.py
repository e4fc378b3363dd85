"""``ocdl compare`` as a library call: :class:`CompareJob` runs several solvers on the same data,
model, initialisation and cost (:func:`ocdl.solvers.compare.compare`). Its defaults: the solvers of
:func:`ocdl.solvers.compare.default_solvers`, weight decay ``COMPARE_SYNTHETIC_ALPHA`` on the
synthetic sets and ``DEFAULT_ALPHA`` otherwise, the held-out draw of
:func:`ocdl.data.loading.synthetic_test_seed`. SIGINT/SIGTERM during the runs writes the finished
solvers' rows to ``--json`` (the same JSON with ``"partial": true`` and ``"unfinished"``) and
exits 130 saying so."""
import dataclasses

from ocdl.errors import InputError, SolverError
from ocdl.jobs.base import Job, option, same_option
from ocdl.jobs.train import TrainJob


def _solvers():
    from ocdl.solvers import SOLVERS
    return list(SOLVERS)


def _integrators():
    from ocdl.models.resnet import all_integrators
    return all_integrators()


@dataclasses.dataclass
class CompareJob(Job):
    """``ocdl compare``: the solvers' losses, accuracies and times on one problem."""
    data: str = same_option(TrainJob, "data")
    test: str = same_option(TrainJob, "test", help="held-out labelled CSV (default for synthetic sets: a fresh "
                                                   "draw with seed + 1000; for real sets: their fixed test split)")
    points: int = same_option(TrainJob, "points")
    noise: float = same_option(TrainJob, "noise")
    turns: float = same_option(TrainJob, "turns")
    solvers: list = option(None, "comma-separated solvers (default: ocdl.solvers.compare's, fewer on more than "
                                 "1000 training samples)", "names", choices=_solvers())
    field: str = same_option(TrainJob, "field", help="vector field (default outer)")
    integrator: str = option("euler", "layer map (default euler)", "choice", choices=_integrators)
    layers: int = same_option(TrainJob, "layers")
    T: float = same_option(TrainJob, "T", help="final time T (default 5; conv fields 4)")
    channels: int = same_option(TrainJob, "channels")
    kernel: int = same_option(TrainJob, "kernel")
    shape: list = same_option(TrainJob, "shape")
    alpha: float = option(None, "weight decay α (default 1e-3 on the synthetic sets, 3e-3 — ocdl train's — on real "
                                "and CSV data)", "nonnegative")
    width: int = same_option(TrainJob, "width")
    iterations: int = option(None, "iterations for every solver (default: each solver's own default)", "count")
    target: float = option(None, "target loss for time_to_target_s (default 1.05 × best loss reached)", "positive")
    target_accuracy: float = option(None, "target held-out accuracy for time_to_accuracy_s, a fraction in (0, 1) "
                                          "(default: best final held-out accuracy − 0.01)", "fraction")
    train_size: int = option(None, "train on a class-stratified subset of this many training samples (seeded by "
                                   "--seed; the held-out set is unchanged; default: all)", "count", metavar="COUNT")
    normalize: str = same_option(TrainJob, "normalize")
    segments: int = option(1, "shooting segments (default 1)", "count")
    warm_tol: float = option(None, "shooting: KKT residual at which its newton warm start stops and the "
                                   "Levenberg–Marquardt shooting takes over (default 1e-10)", "positive")
    device: str = option("cpu", "torch device for adam/lbfgs: cpu (default) or cuda", "text")
    hessian_sample: float = same_option(TrainJob, "hessian_sample")
    newton_formulation: str = same_option(TrainJob, "newton_formulation", default="reduced")
    newton_curvature: str = same_option(TrainJob, "newton_curvature")
    newton_preconditioner: str = same_option(TrainJob, "newton_preconditioner")
    newton_warm_start: str = same_option(TrainJob, "newton_warm_start")
    json: str = same_option(TrainJob, "json")
    plot: str = same_option(TrainJob, "plot")
    seed: int = same_option(TrainJob, "seed")
    tensorboard: str = same_option(TrainJob, "tensorboard", help="write TensorBoard scalars (loss, accuracies, "
                                   "gradient norm, learning rate, wall time per iteration) into DIR/<solver>/, one "
                                   "run per solver (needs the extra tensorboard)")

    def inputs(self):
        from ocdl.data.loading import is_csv
        return super().inputs() + ([("--data", self.data)] if self.data and is_csv(self.data) else [])

    def check(self):
        if self.data is None:
            raise InputError("data is required (a built-in data set name or a CSV path)")

    def estimate(self):
        from ocdl.jobs.work import training_data
        return training_data(self)

    def _guard(self, solver, model, n, options=None, iterations=None):
        """The memory and time guard of ``ocdl train`` for one solver, with this job's --max-seconds."""
        from ocdl.jobs.train import guard
        guard(solver, model, n, options, iterations, self.max_seconds)

    def execute(self):
        from ocdl.data import DATASETS
        from ocdl.data.loading import load_dataset, synthetic_test_seed
        from ocdl.errors import Interrupted
        from ocdl.io import write_json
        from ocdl.jobs.train import check_model_size, resolve_device
        from ocdl.optim import tensorboard
        from ocdl.solvers import COMPARE_SYNTHETIC_ALPHA, DEFAULT_ALPHA, default_normalize
        from ocdl.solvers.compare import compare, plot
        ds = load_dataset(self.data, self.test, None, self.seed, self.points, self.noise, self.turns,
                          test_seed=synthetic_test_seed(self.seed))
        X, y, Xt, yt = ds.X, ds.y, ds.X_test, ds.y_test
        if self.train_size is not None:
            from ocdl.data.real import stratified_subset
            if self.train_size > len(y):
                raise InputError(f"--train-size {self.train_size} exceeds the {len(y)} training samples")
            keep = stratified_subset(y, self.train_size, seed=self.seed)
            X, y = X[keep], y[keep]
        check_model_size(self.layers, self.width, X.shape[1], len(X))  # before allocating the model
        synthetic = self.data in DATASETS
        alpha = self.alpha if self.alpha is not None else (COMPARE_SYNTHETIC_ALPHA if synthetic else DEFAULT_ALPHA)
        device = resolve_device(self.device)
        newton = {"formulation": self.newton_formulation}
        if self.hessian_sample is not None:
            newton["hessian_sample"] = self.hessian_sample
        if self.newton_curvature is not None:
            newton["curvature"] = self.newton_curvature
        if self.newton_preconditioner is not None:
            newton["preconditioner"] = self.newton_preconditioner
        if self.newton_warm_start is not None:
            newton["warm_start"] = self.newton_warm_start
        shooting = {"segments": self.segments}
        if self.warm_tol is not None:
            shooting["warm_tol"] = self.warm_tol
        options = {"shooting": shooting, "newton": newton,
                   "adam": {"device": device}, "lbfgs": {"device": device}}
        conv = {k: getattr(self, k) for k in ("channels", "kernel", "shape") if getattr(self, k) is not None}
        try:
            with tensorboard.session(self.tensorboard):     # one TensorBoard run per solver
                result = compare(X, y, self.solvers, X_test=Xt, y_test=yt, field=self.field,
                                 integrator=self.integrator, layers=self.layers, T=self.T, alpha=alpha,
                                 width=self.width, seed=self.seed, iterations=self.iterations, target=self.target,
                                 target_accuracy=self.target_accuracy, options=options, quiet=self.quiet,
                                 precheck=self._guard, log=self.log,
                                 normalize=self.normalize or default_normalize(self.data), **conv)
        except Interrupted as exc:      # SIGINT/SIGTERM: the finished solvers' rows, marked "partial": true
            if not self.json:
                raise Interrupted(f"{exc}; give --json PATH to keep the finished rows", exc.result) from None
            write_json(self.json, self._describe_data(exc.result, Xt))
            raise Interrupted(f"{exc}; their rows written to {self.json} (\"partial\": true)", exc.result) from None
        result = self._describe_data(result, Xt)
        errors = [r.get("error") for r in result["solvers"].values()]
        if all(errors):
            raise SolverError(f"every solver failed; first: {errors[0]}")
        if self.json:
            write_json(self.json, result)
        if self.plot:
            plot(result, self.plot)
        return result

    def _describe_data(self, result, Xt):
        """The settings' ``data`` and ``test`` entries (what was trained and tested on)."""
        from ocdl.data import REAL_DATASETS
        from ocdl.data.loading import synthetic_test_seed
        result["settings"]["data"] = self.data
        result["settings"]["train_size"] = self.train_size
        drawn = f"{self.data} test split" if self.data in REAL_DATASETS else \
            f"{self.data} seed {synthetic_test_seed(self.seed)}"
        result["settings"]["test"] = self.test or (None if Xt is None else drawn)
        return result
