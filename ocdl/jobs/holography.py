"""``ocdl holography simulate|learn`` as library calls: :class:`HolographySimulateJob` and
:class:`HolographyLearnJob` (the configs of :mod:`ocdl.holography.run`, whose functions do the
work and the file formats)."""
import dataclasses

from ocdl.errors import InputError
from ocdl.jobs import work
from ocdl.jobs.base import Job, Resumable, option

INTEGRATORS = ("euler", "heun", "rk4")
SOLVERS = ("newton", "pmp-adam", "adam", "pmp-lbfgs")


def _numbers(name, value):
    """A number, a list of numbers, or a comma-separated string of numbers → float or list."""
    if isinstance(value, str):
        try:
            value = [float(t) for t in value.split(",") if t.strip()]
        except ValueError:
            raise InputError(f"{name} must be a number or a comma-separated list of numbers (got '{value}')") from None
    if isinstance(value, (list, tuple)):
        vals = [float(v) for v in value]
        if not vals:
            raise InputError(f"{name} must not be empty")
        if not all(v == v and abs(v) != float("inf") for v in vals):
            raise InputError(f"{name} must be finite")
        return vals[0] if len(vals) == 1 else vals
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        raise InputError(f"{name} must be a finite number or a list of numbers (got {value!r})")
    return float(value)


def _check_expr(flag, text):
    from ocdl.expr import compile_expr
    try:
        compile_expr(text, ("eta",))
    except InputError as exc:
        raise InputError(f"{flag}: {exc}") from None


@dataclasses.dataclass
class HolographySimulateJob(Job):
    """``ocdl holography simulate``: labelled boundary data from a known metric."""
    metric: str = option("3/tanh(3*eta)", "h(η) = ∂_η log √(f g^{d−1}), an expression in eta (default "
                                          "AdS-Schwarzschild d=3: 3/tanh(3*eta))", "text", metavar="EXPR")
    m2: object = option(-1.0, "mass² (default −1); a comma list (--m2=-1,0,1) gives data at several", "object")
    lam: object = option(1.0, "φ⁴ coupling λ (default 1); a comma list pairs with --m2", "object")
    eta_ini: float = option(1.0, "boundary cut-off η_ini (default 1)", "positive")
    eta_fin: float = option(0.1, "horizon cut-off η_fin (default 0.1)", "positive")
    layers: int = option(10, "network depth N (default 10)", "count")
    samples: int = option(2000, "data points, half per class (default 2000, at most 20000)", "count")
    eps: float = option(0.1, "positive when |F| < eps (default 0.1)", "positive")
    integrator: str = option("euler", "euler (the paper's network, default) | heun | rk4", "choice",
                             choices=INTEGRATORS)
    seed: int = option(0, "random seed (default 0)", "seed")
    out: str = option(None, "output CSV (phi,pi,label[,m2,lam]); also writes OUT.meta.json", "path", role="output",
                      required=True)

    def check(self):
        self.m2, self.lam = _numbers("--m2", self.m2), _numbers("--lam", self.lam)
        _check_expr("--metric", self.metric)

    def outputs(self):
        from ocdl.holography.run import meta_path
        out = super().outputs()
        return out + ([("--out", meta_path(self.out))] if self.out else [])

    def estimate(self):
        return work.holography_simulate(self)

    def execute(self):
        from ocdl.holography.run import simulate_file
        d = simulate_file(self)
        out = {"out": self.out, "n_positive": int((d["label"] == 1).sum()), "n_negative": int((d["label"] == 0).sum())}
        self.log(f"wrote {self.out}: {out['n_positive']} positive, {out['n_negative']} negative")
        return out


@dataclasses.dataclass
class HolographyLearnJob(Resumable):
    """``ocdl holography learn``: the metric h(η_k) (and m², λ) from labelled boundary data.
    ``--checkpoint DIR`` (adam, pmp-adam, pmp-lbfgs) saves the run every ``--checkpoint-every``
    iterations and on Ctrl-C / SIGTERM; ``--resume`` continues it bit for bit (Adam); a diverged run
    leaves its last good parameters in ``DIR/last_good.json``."""
    data: str = option(None, "data file (phi,pi,label[,m2,lam])", "path", role="input", required=True,
                       metavar="CSV")
    test: str = option(None, "held-out data for test_accuracy", "path", role="input", metavar="CSV")
    solver: str = option("newton", "newton (Gauss–Newton, default) | pmp-adam | adam | pmp-lbfgs", "choice",
                         choices=SOLVERS)
    integrator: str = option(None, "euler | heun | rk4 (default: the data's, else euler)", "choice",
                             choices=INTEGRATORS)
    learn_mass: bool = option(False, "learn m² too", "switch")
    learn_coupling: bool = option(False, "learn λ too", "switch")
    m2: float = option(None, "m² (fixed, or the start with --learn-mass; default the data's, else −1)", "real")
    lam: float = option(None, "λ (fixed, or the start with --learn-coupling; default the data's, else 1)", "real")
    eta_ini: float = option(None, "default: the data's, else 1", "positive")
    eta_fin: float = option(None, "default: the data's, else 0.1", "positive")
    layers: int = option(None, "default: the data's, else 10", "count")
    eps: float = option(None, "output-layer half-width ε (default: the data's, else 0.1)", "positive")
    c_reg: float = option(1.0, "weight of the smoothness regulariser Σ η_k⁴ (h_{k+1} − h_k)² (default 1)",
                          "nonnegative")
    init: str = option("constant", "constant (default: the best constant metric, or --init-value) | random "
                                   "(h_k ~ N(mean, 1))", "choice", choices=("constant", "random"))
    init_value: float = option(None, "the constant / the random mean (default: a scan / 1)", "real")
    iterations: int = option(None, "max iterations (newton 100 per stage, adam 3000, pmp-lbfgs 2000)", "count")
    lr: float = option(0.05, "Adam learning rate (default 0.05, ×0.01 decay)", "positive")
    true_metric: str = option(None, "true h(η): adds metric_rel_l2_error and the curve", "text", metavar="EXPR")
    json: str = option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")
    plot: str = option(None, "write a picture: learned and true metric, data and decision boundary", "path",
                       role="output", metavar="PNG")
    seed: int = option(0, "random seed of --init random (default 0)", "seed")

    def check(self):
        super().check()
        if self.true_metric is not None:
            _check_expr("--true-metric", self.true_metric)
        if self.solver == "newton" and (self.checkpoint or self.resume):
            raise InputError("--checkpoint/--resume apply to the iterative solvers (adam, pmp-adam, pmp-lbfgs); "
                             "newton (Gauss–Newton) runs in seconds — drop the flags or choose another --solver")

    def estimate(self):
        return work.holography_learn(self)

    def execute(self):
        from ocdl.holography.learn import describe
        from ocdl.holography.run import learn_file, read_data
        from ocdl.jobs.base import digest
        from ocdl.jobs.runcontrol import RunControl, keep_last_good
        X, lab = read_data(self.data)[:2]
        # what a resumed run must share with the interrupted one: every result-changing option + the data
        settings = {k: getattr(self, k) for k in (
            "solver", "integrator", "learn_mass", "learn_coupling", "m2", "lam", "eta_ini", "eta_fin", "layers", "eps",
            "c_reg", "init", "init_value", "iterations", "lr", "seed")}
        settings["data"] = digest(X, lab)

        def save_last(x, exc):
            if not self.checkpoint:
                return None
            from ocdl.io import write_json
            path = f"{self.checkpoint}/last_good.json"
            write_json(path, {"x": [float(v) for v in x], "message": str(exc), "solver": self.solver})
            return path
        with keep_last_good(save_last), RunControl(self, settings) as rc:
            problem, res, summary, _ = learn_file(self, control=rc.options())
        if self.json:
            from ocdl.io import write_json
            write_json(self.json, summary)
        if self.plot:
            from ocdl.holography.plots import plot_learn
            plot_learn(self.plot, problem, dict(summary, x=res.x), summary.get("h_true"))
        self.log(describe(summary))
        return summary
