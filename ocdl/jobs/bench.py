"""``ocdl bench gradient|train|block`` as library calls: :class:`BenchGradientJob`,
:class:`BenchTrainJob` and :class:`BenchBlockJob` (the configs of :mod:`ocdl.bench.gradient`,
:mod:`ocdl.bench.train` and :mod:`ocdl.bench.block`, which measure, tabulate and plot).
Each returns the benchmark's result dict (the ``--json`` file)."""
import dataclasses

from ocdl.bench.block import METHODS as BLOCK_METHODS
from ocdl.bench.gradient import METHODS as GRADIENT_METHODS
from ocdl.jobs import work
from ocdl.jobs.base import Job, option, same_option
from ocdl.jobs.train import DATA_METAVAR, TrainJob

#: the fields the gradient and block benchmarks build their problems for
FIELDS = ("outer", "hamiltonian", "inner")


def _json():
    return option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")


def _plot():
    return option(None, "write a picture", "path", role="output", metavar="PNG")


def _device():
    return option("cpu", "torch device: cpu (default) or cuda[:N]", "text")


@dataclasses.dataclass
class _Bench(Job):
    """Writes the result to ``--json`` and the picture to ``--plot``."""

    def finish(self, result, plot):
        if self.json:
            from ocdl.io import write_json
            write_json(self.json, result)
        if self.plot:
            plot(result, self.plot)
        return result


@dataclasses.dataclass
class BenchGradientJob(_Bench):
    """``ocdl bench gradient``: gradient time, peak memory and error against depth, per method and
    field (:func:`ocdl.bench.gradient.run_gradient_bench`; missing peers are skipped and listed)."""
    # (``fields_``: ``Job.fields()`` is the dataclass fields; the flag and the TOML key are ``fields``)
    fields_: list = option(["outer", "hamiltonian"], "fields (default outer,hamiltonian)", "names",
                           choices=list(FIELDS), flag="--fields", metavar="FIELDS")
    depths: list = option([16, 64, 256, 1024, 4096], "numbers of layers N (default 16,64,256,1024,4096)", "counts")
    samples: int = option(512, "data points n (default 512)", "count")
    width: int = option(8, "state width d (default 8)", "count")
    repeats: int = option(3, "timing repeats; the best is reported (default 3)", "count")
    methods: list = option(list(GRADIENT_METHODS), "methods to run (default: all nine; jax and diffrax* need the "
                                                   "extra peers)", "names", choices=list(GRADIENT_METHODS))
    T: float = option(5.0, "final time T (default 5)", "positive")
    json: str = _json()
    plot: str = _plot()
    seed: int = option(0, "random seed (default 0)", "seed")
    device: str = _device()

    def estimate(self):
        import types
        return work.bench_gradient(types.SimpleNamespace(**dict(vars(self), fields=self.fields_)))

    def execute(self):
        from ocdl.bench.gradient import plot_gradient_bench, run_gradient_bench
        from ocdl.jobs.train import resolve_device
        result = run_gradient_bench(fields=self.fields_, depths=self.depths, samples=self.samples, width=self.width,
                                    repeats=self.repeats, device=resolve_device(self.device), methods=self.methods,
                                    T=self.T, seed=self.seed, quiet=self.quiet)
        return self.finish(result, plot_gradient_bench)


@dataclasses.dataclass
class BenchTrainJob(_Bench):
    """``ocdl bench train``: time-to-target per solver over seeds (``ocdl compare`` once per seed;
    :func:`ocdl.bench.train.run_train_bench`)."""
    solvers: list = same_option(TrainJob, "solver", default=["adam", "lbfgs", "pmp-lbfgs", "msa", "shooting", "newton"],
                                kind="names", help="comma-separated solver names (default adam,lbfgs,pmp-lbfgs,msa,"
                                                   "shooting,newton)", flag="--solvers")
    seeds: list = option([0, 1, 2], "comma-separated seeds (default 0,1,2)", "seeds")
    target: float = option(0.02, "target loss J (default 0.02)", "positive")
    data: str = option("spirals", "a built-in data set (synthetic: drawn per seed; real: its fixed training split) "
                                  "or a CSV (default spirals)", "text", metavar=DATA_METAVAR)
    field: str = same_option(TrainJob, "field", help="field (default outer)")
    integrator: str = same_option(TrainJob, "integrator", help="integrator (default euler)")
    layers: int = option(20, "layers N (default 20)", "count")
    T: float = option(5.0, "final time (default 5)", "positive")
    alpha: float = option(1e-3, "weight regularisation (default 1e-3)", "nonnegative")
    iterations: int = option(None, "iterations per run", "count")
    json: str = _json()
    plot: str = _plot()
    device: str = _device()

    def inputs(self):
        from ocdl.data.loading import is_csv
        return super().inputs() + ([("--data", self.data)] if self.data and is_csv(self.data) else [])

    def estimate(self):
        return work.bench_train(self)

    def execute(self):
        from ocdl.bench.train import plot_train_bench, run_train_bench
        from ocdl.jobs.train import resolve_device
        result = run_train_bench(self.solvers, self.seeds, self.target, data=self.data, field=self.field,
                                 integrator=self.integrator, layers=self.layers, T=self.T, alpha=self.alpha,
                                 iterations=self.iterations, device=resolve_device(self.device), quiet=self.quiet)
        return self.finish(result, plot_train_bench)


@dataclasses.dataclass
class BenchBlockJob(_Bench):
    """``ocdl bench block``: ocdl.nn.ODEBlock's forward + backward against autograd and torchdiffeq
    (:func:`ocdl.bench.block.run_block_bench`); ``--json`` is rewritten after every case, so a run cut
    short keeps what it measured."""
    depths: list = option([16, 64, 256, 1024], "numbers of layers N (default 16,64,256,1024)", "counts")
    widths: list = option([8, 64], "state widths (default 8,64)", "counts")
    samples: int = option(256, "batch size n (default 256)", "count")
    repeats: int = option(3, "timing repeats; the best is reported", "count")
    methods: list = option(list(BLOCK_METHODS), "methods (default all four)", "names", choices=list(BLOCK_METHODS))
    field: str = option("outer", "field (default outer)", "choice", choices=list(FIELDS))
    T: float = option(5.0, "final time T (default 5)", "positive")
    json: str = _json()
    plot: str = _plot()
    seed: int = option(0, "random seed (default 0)", "seed")

    def estimate(self):
        return work.bench_block(self)

    def execute(self):
        from ocdl.bench.block import plot_block_bench, run_block_bench
        from ocdl.io import write_json
        result = run_block_bench(depths=self.depths, widths=self.widths, samples=self.samples, repeats=self.repeats,
                                 methods=self.methods, field=self.field, T=self.T, seed=self.seed, quiet=self.quiet,
                                 partial=(lambda r: write_json(self.json, r)) if self.json else None)
        return self.finish(result, plot_block_bench)
