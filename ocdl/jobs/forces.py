"""``ocdl forces simulate|learn {drag,position,oscillator,potential}`` as library calls.

One job per command (:data:`SIMULATE`, :data:`LEARN`): the options with their defaults, their
checks, the file formats and the last-good saving; :mod:`ocdl.forces` does the work.

* simulate: ``drag`` writes ``v0,vT``; ``position`` ``x0,v0,kind,vT`` (``vT`` empty for the
  negatives); ``oscillator`` and ``potential`` ``t,x`` — solve_ivp (DOP853, rtol 1e-10).
* learn: ``drag`` / ``position`` learn the force table (:func:`ocdl.forces.learn.learn_table`),
  ``oscillator`` γ, ω0 (:func:`ocdl.forces.oscillator.solve_oscillator`), ``potential`` V(x)
  (:func:`ocdl.forces.potential.solve_potential`). ``--checkpoint DIR`` (the iterative solvers)
  saves the run and, after a divergence, the last good table (``DIR/last_good.csv``) or record
  (``DIR/last_good.json``); the learning-rate defaults of ``lr=None`` are the library's
  (``ocdl.forces.oscillator.DEFAULT_LR``, ``ocdl.forces.potential.DEFAULT_LR``).
"""
import dataclasses

import numpy as np

from ocdl.errors import InputError
from ocdl.jobs import work
from ocdl.jobs.base import Job, Resumable, option, same_option

PROBLEMS = ("drag", "position", "oscillator", "potential")
TABLE_SOLVERS = ("newton", "adam", "pmp-adam", "pmp-lbfgs")
FIT_SOLVERS = ("newton", "adam", "pinn")
RK = ("euler", "heun", "rk4")


def _expr(flag, text, variables):
    """The compiled expression ``text`` in ``variables``; an InputError naming ``flag`` otherwise."""
    from ocdl.expr import compile_expr
    try:
        return compile_expr(text, variables)
    except InputError as exc:
        raise InputError(f"{flag}: {exc}") from None


def _required(job):
    """Every field marked ``required`` is set (the CLI enforces it; library calls need it too)."""
    from ocdl.jobs.base import flag_of
    for f in job.fields():
        if f.metadata.get("required") and getattr(job, f.name) is None:
            raise InputError(f"{flag_of(f)} is required")


def _lambda(value):
    """``--lambda``: a number ≥ 0 or ``auto``."""
    if value == "auto":
        return value
    try:
        v = float(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    except ValueError:
        v = None
    if v is None or not v == v or v in (float("inf"),) or v < 0:
        raise InputError(f"--lambda must be a number ≥ 0 or 'auto' (got '{value}')")
    return v


# ---------------------------------------------------------------------------------- simulate
@dataclasses.dataclass
class _Simulate(Job):
    """Shared by the simulate jobs: ``--out`` and ``--seed``; subclasses set :meth:`columns` and
    ``law = (field, variables)``, the expression option every simulate job has (checked here,
    compiled by :meth:`compiled_law`; an optional one may be unset)."""
    law = None

    def check(self):
        _required(self)
        self.compiled_law()

    def compiled_law(self):
        """The compiled law expression (None when its option is unset)."""
        name, variables = self.law
        text = getattr(self, name)
        return None if text is None else _expr(f"--{name}", text, variables)

    def estimate(self):
        return work.simulate(self)

    def execute(self):
        from ocdl.io import write_csv
        header, rows = self.columns()
        write_csv(self.out, header, rows)
        self.log(f"wrote {self.out}")
        return {"out": self.out}


def _out(columns):
    return option(None, f"output CSV ({columns})", "path", role="output", required=True, metavar="PATH")


def _seed():
    return option(0, "random seed (default 0)", "seed")


def _json():
    return option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")


def _plot():
    return option(None, "write a picture", "path", role="output", metavar="PNG")


@dataclasses.dataclass
class SimulateDragJob(_Simulate):
    """``ocdl forces simulate drag``: falling body v' = g − F(v) from v0 evenly spaced; writes v0,vT."""
    force: str = option(None, "drag law F(v), e.g. '0.01*v**2'", "text", required=True, metavar="EXPR")
    T: float = option(1.0, "flight time (default 1)", "positive")
    g: float = option(10.0, "gravitational acceleration (default 10)", "real")
    samples: int = option(50, "number of pairs (default 50)", "count")
    vmin: float = option(0.0, "smallest v0 (default 0)", "nonnegative")
    vmax: float = option(40.0, "largest v0; v0 evenly spaced (default 40)", "positive")
    noise: float = option(0.0, "Gaussian noise std added to vT", "nonnegative")
    out: str = _out("v0,vT")
    seed: int = _seed()
    law = ("force", ("v",))

    def columns(self):
        from ocdl.forces.simulate import simulate_drag
        v0, vT = simulate_drag(self.compiled_law(), self.T, self.g, self.samples, self.vmin,
                               self.vmax, self.noise, self.seed)
        return ["v0", "vT"], np.stack([v0, vT], 1)


@dataclasses.dataclass
class SimulatePositionJob(_Simulate):
    """``ocdl forces simulate position``: x' = v, v' = F(x); writes x0,v0,kind,vT (vT of the positives)."""
    force: str = option(None, "force law F(x)", "text", required=True, metavar="EXPR")
    T: float = option(2.0, "final time (default 2)", "positive")
    target: float = option(None, "target position x*", "real", required=True)
    eps: float = option(None, "positive when |x(T) − x*| < eps", "positive", required=True)
    samples: int = option(2000, "data points (default 2000)", "count")
    positive_fraction: float = option(0.5, "share of positives (default 0.5)", "positive")
    xmin: float = option(0.0, "x0 window (default 0..10)", "real")
    xmax: float = option(10.0, None, "real")
    vmin: float = option(-5.0, "v0 window (default −5..5)", "real")
    vmax: float = option(5.0, None, "real")
    noise: float = option(0.0, "Gaussian noise std added to vT", "nonnegative")
    out: str = _out("x0,v0,kind,vT")
    seed: int = _seed()
    law = ("force", ("x",))

    def columns(self):
        from ocdl.forces.simulate import simulate_position
        x0, v0, kind, vT = simulate_position(self.compiled_law(), self.T, self.target, self.eps,
                                             self.samples, self.xmin, self.xmax, self.vmin, self.vmax,
                                             self.positive_fraction, self.noise, self.seed)
        return ["x0", "v0", "kind", "vT"], [[a, b, int(k), (c if k == 1 else None)]
                                            for a, b, k, c in zip(x0, v0, kind, vT)]


@dataclasses.dataclass
class SimulateOscillatorJob(_Simulate):
    """``ocdl forces simulate oscillator``: x'' + 2γx' + ω0²x = 0 sampled with noise; writes t,x."""
    force: str = option(None, "optional acceleration x''(x, v) replacing −2γv − ω0²x", "text", metavar="EXPR")
    gamma: float = option(1.0, "damping γ (default 1)", "nonnegative")
    omega0: float = option(20.0, "natural frequency ω0 (default 20)", "positive")
    x0: float = option(1.0, "x(0) (default 1)", "real")
    v0: float = option(0.0, "x'(0) (default 0)", "real")
    T: float = option(1.0, "samples evenly spaced in [0, T] (default 1)", "positive")
    samples: int = option(40, "number of samples (default 40)", "count")
    noise: float = option(0.04, "Gaussian noise std (default 0.04)", "nonnegative")
    out: str = _out("t,x")
    seed: int = _seed()
    law = ("force", ("x", "v"))

    def columns(self):
        from ocdl.forces.simulate import simulate_oscillator
        accel = self.compiled_law() if self.force else None
        t, x = simulate_oscillator(self.gamma, self.omega0, self.x0, self.v0, self.T, self.samples, self.noise,
                                   self.seed, accel=accel)
        return ["t", "x"], np.stack([t, x], 1)


@dataclasses.dataclass
class SimulatePotentialJob(_Simulate):
    """``ocdl forces simulate potential``: x'' + 2γx' + ω0² V(x) = 0 from x(0), x'(0); writes t,x."""
    potential: str = option(None, "restoring function V(x), e.g. 'x'", "text", required=True, metavar="EXPR")
    gamma: float = option(1.0, "damping γ (default 1)", "nonnegative")
    omega0: float = option(20.0, "ω0 (default 20)", "positive")
    x0: float = option(1.0, "x(0) (default 1)", "real")
    v0: float = option(0.0, "x'(0) (default 0)", "real")
    T: float = option(1.0, "samples evenly spaced in [0, T] (default 1)", "positive")
    samples: int = option(201, "number of samples (default 201)", "count")
    noise: float = option(0.0, "Gaussian noise std (default 0)", "nonnegative")
    out: str = _out("t,x")
    seed: int = _seed()
    law = ("potential", ("x",))

    def columns(self):
        from ocdl.forces.simulate import simulate_potential
        t, x = simulate_potential(self.compiled_law(), self.gamma, self.omega0, self.x0,
                                  self.v0, self.T, self.samples, self.noise, self.seed)
        return ["t", "x"], np.stack([t, x], 1)


# ---------------------------------------------------------------------------------- learn
#: options that do not change a run's result (outputs, verbosity, run control, reference values)
NOT_SETTINGS = {"json", "plot", "profile", "quiet", "config", "checkpoint", "checkpoint_every", "resume",
                "truth", "true_gamma", "true_omega0", "data", "max_seconds", "tensorboard"}


@dataclasses.dataclass
class _Learn(Resumable):
    """Shared by the learn jobs: the run's TensorBoard run ``DIR/<problem>-<solver>/``, the settings
    a resumed run must share, the refusal of ``--checkpoint`` with newton, the outputs."""
    PROBLEM = None
    CHECKPOINT_FILES = ("checkpoint.npz", "last_good.csv", "last_good.json")
    tensorboard: str = option(None, "write TensorBoard scalars (loss, accuracies, gradient norm, learning rate, "
                                    "wall time per iteration) into DIR/<run>/ (needs the extra tensorboard; view: "
                                    "tensorboard --logdir DIR)", "path", role="directory", metavar="DIR")

    def check(self):
        super().check()
        _required(self)
        if self.solver == "newton" and (self.checkpoint or self.resume):
            raise InputError("--checkpoint/--resume apply to the iterative solvers (adam, pmp-adam, pmp-lbfgs, pinn); "
                             "newton (Gauss–Newton) runs in seconds — drop the flags or choose another --solver")
        if getattr(self, "truth", None) is not None:
            _expr("--truth", self.truth, self.VARIABLES)

    def estimate(self):
        return work.learn(self)

    def settings(self, *arrays):
        """What a resumed run must share with the interrupted one: every result-changing option + the data."""
        from ocdl.jobs.base import digest
        out = {f.name: getattr(self, f.name) for f in self.fields() if f.name not in NOT_SETTINGS}
        out.update(problem=self.PROBLEM, data=digest(*arrays))
        return dict(sorted(out.items()))

    def truth_function(self):
        return _expr("--truth", self.truth, self.VARIABLES) if getattr(self, "truth", None) else None

    def execute(self):
        from ocdl.optim import tensorboard
        with tensorboard.session(self.tensorboard), tensorboard.run(f"{self.PROBLEM}-{self.solver}"):
            res, summary, plot = self.learn()
        summary["data"] = self.data
        if self.json:
            from ocdl.io import write_json
            write_json(self.json, summary)
        if self.plot:
            plot(self.plot)
        self.log(self.describe(summary))
        self.outcomes = ((self.solver, res.success, res.message),)
        return summary


@dataclasses.dataclass
class _TableLearn(_Learn):
    """The table problems (drag, position): :func:`ocdl.forces.learn.learn_table` with one
    checkpoint stage per solve; the last good table goes to ``DIR/last_good.csv`` and ``--profile``."""
    data: str = option(None, "data file", "path", role="input", required=True, metavar="CSV")
    solver: str = option("newton", "newton (CasADi Gauss–Newton, default) | adam | pmp-adam | pmp-lbfgs", "choice",
                         choices=TABLE_SOLVERS)
    integrator: str = option("rk4", "euler | heun | rk4 (default rk4)", "choice", choices=RK)
    steps: int = option(50, "network depth N (layers, h = T/N; default 50)", "count")
    lam: object = option(1e-6, "smoothness weight λ, or 'auto' (held-out sweep; default 1e-06)", "object",
                         flag="--lambda")
    grid_step: float = option(1.0, "force-table spacing (default 1)", "positive")
    iterations: int = option(None, "max iterations (default: newton 100, adam 3000, pmp-lbfgs 5000)", "count")
    lr: float = option(0.5, "Adam learning rate, decaying ×0.01 over the run (default 0.5)", "positive")
    init: str = option("zero", "starting table: zero (default) | random (uniform, as the paper; from --seed)",
                       "choice", choices=("zero", "random"))
    truth: str = option(None, "true force law: adds rel_l2_error and the truth curve", "text", metavar="EXPR")
    profile: str = option(None, "write the learned table on the covered range", "path", role="output", metavar="CSV")
    json: str = _json()
    plot: str = _plot()
    seed: int = _seed()

    def check(self):
        super().check()
        self.lam = _lambda(self.lam)

    def learn(self):
        from ocdl.io import read_table
        from ocdl.jobs.runcontrol import RunControl, keep_last_good, last_good_path
        d = self.read(read_table)
        self.check_data(d)
        truth = self.truth_function()
        from ocdl.forces import learn          # validated: now the heavy imports (torch, CasADi)
        problem = learn.build_problem(self.PROBLEM, d, self.T, self.steps, self.integrator, self.grid_step,
                                      **{k: getattr(self, k) for k in self.PROBLEM_OPTIONS})

        def save_table(x, exc):      # the last good table: DIR/last_good.csv with --checkpoint, and --profile
            paths = [p for p in (last_good_path(self.checkpoint, "last_good.csv"), self.profile) if p]
            for path in paths:
                learn.write_profile(path, problem, x)
            return " and ".join(paths) or None
        with keep_last_good(save_table, "table"), \
                RunControl(self, self.settings(*[d[k] for k in sorted(d)]), staged=True) as rc:
            res, summary = learn.learn_table(problem, self.solver, self.lam, self.iterations, self.lr, truth,
                                             self.quiet, continuation=True, stages=rc.stage, init=self.init,
                                             seed=self.seed)
        if self.profile:
            learn.write_profile(self.profile, problem, res.x)

        def plot(path):
            from ocdl.forces.plots import plot_drag, plot_position
            (plot_drag if self.PROBLEM == "drag" else plot_position)(
                path, problem, res, truth, learn.plot_title(problem, self.solver, summary))
        return res, summary, plot

    def describe(self, summary):
        from ocdl.forces.learn import describe
        return describe(summary)


@dataclasses.dataclass
class LearnDragJob(_TableLearn):
    """``ocdl forces learn drag``: the drag table F(v) from (v0, vT) pairs."""
    PROBLEM, VARIABLES, PROBLEM_OPTIONS = "drag", ("v",), ("g", "vmax", "c0")
    T: float = option(None, "flight time T", "positive", required=True)
    g: float = option(None, "gravitational acceleration g", "real", required=True)
    vmax: float = option(None, "table upper speed (default: the data's maximum)", "positive")
    c0: float = option(1.0, "weight of c0·F(0)² (default 1)", "nonnegative")

    def read(self, read_table):
        return read_table(self.data, ["v0", "vT"])

    def check_data(self, d):
        from ocdl.forces import checks
        checks.drag_data(d["v0"], d["vT"], self.T, self.g, self.vmax, self.grid_step)


@dataclasses.dataclass
class LearnPositionJob(_TableLearn):
    """``ocdl forces learn position``: the force table F(x) from positive/negative shots."""
    PROBLEM, VARIABLES = "position", ("x",)
    PROBLEM_OPTIONS = ("target", "eps", "xmin", "xmax", "kind_scale", "c1", "c2")
    integrator: str = same_option(_TableLearn, "integrator", default="verlet", choices=("euler", "rk4", "verlet",
                                  "gauss2"), help="euler | rk4 | verlet | gauss2 (default verlet)")
    lam: object = same_option(_TableLearn, "lam", default=1e-5,
                              help="smoothness weight λ, or 'auto' (held-out sweep; default 1e-05)")
    T: float = option(None, "final time T", "positive", required=True)
    target: float = option(None, "target position x*", "real", required=True)
    eps: float = option(None, "positive radius ε", "positive", required=True)
    xmin: float = option(None, "table range (default: data range ± one grid step)", "real")
    xmax: float = option(None, None, "real")
    kind_scale: float = option(0.2, "kind map k̄ = σ((ε² − (x̄T − x*)²)/(kind_scale·ε²)) (default 0.2)", "positive")
    c1: float = option(1.0, "weight of the kind error (default 1)", "nonnegative")
    c2: float = option(1.0, "weight of the vT error (default 1)", "nonnegative")

    def read(self, read_table):
        return read_table(self.data, ["x0", "v0", "kind", "vT"], allow_empty=("vT",))

    def check_data(self, d):
        from ocdl.forces import checks
        checks.position_data(d["x0"], d["v0"], d["kind"], d["vT"], self.T, self.target, self.eps, self.xmin,
                             self.xmax, self.grid_step)


_PINN_HELP = "PINN L-BFGS iterations (default {})"


@dataclasses.dataclass
class LearnOscillatorJob(_Learn):
    """``ocdl forces learn oscillator``: γ, ω0 (and x(0), x'(0) unless given) from noisy (t, x)."""
    PROBLEM = "oscillator"
    checkpoint_every: int = same_option(Resumable, "checkpoint_every",
                                        help="Adam steps between checkpoints (default 100)")
    data: str = option(None, "data file (t,x)", "path", role="input", required=True, metavar="CSV")
    x0: float = option(None, "x(0) if known (estimated otherwise)", "real")
    v0: float = option(None, "x'(0) if known (estimated otherwise)", "real")
    solver: str = option("newton", "newton (default) | adam | pinn", "choice", choices=FIT_SOLVERS)
    integrator: str = option("rk4", "euler | heun | rk4 (default rk4)", "choice", choices=RK)
    steps: int = option(200, "network depth over [0, t_max] (default 200)", "count")
    iterations: int = option(None, "newton max iterations / adam steps", "count")
    lr: float = option(None, "Adam learning rate (adam 0.01, pinn 0.002)", "positive")
    adam_steps: int = option(6000, "PINN Adam steps (default 6000)", "count")
    lbfgs_steps: int = option(500, _PINN_HELP.format(500), "natural")
    hidden: int = option(32, "PINN width (default 32, 3 layers)", "count")
    init: str = option("grid", "starting point: grid (damped-sinusoid search, default) | random (arbitrary, from "
                               "--seed)", "choice", choices=("grid", "random"))
    true_gamma: float = option(None, "report gamma_rel_error against this value", "real")
    true_omega0: float = option(None, "report omega0_rel_error against this value", "real")
    json: str = _json()
    plot: str = _plot()
    seed: int = _seed()

    def learn(self):
        from ocdl.forces import oscillator as osc
        from ocdl.io import read_table, write_json
        from ocdl.jobs.runcontrol import RunControl, keep_last_good, last_good_path
        d = read_table(self.data, ["t", "x"])
        problem = osc.OscillatorProblem(d["t"], d["x"], self.x0, self.v0, self.steps, self.integrator)
        kw = ({"adam_steps": self.adam_steps, "lbfgs_steps": self.lbfgs_steps, "hidden": self.hidden}
              if self.solver == "pinn" else {"iterations": self.iterations})

        def save_record(x, exc):
            path = last_good_path(self.checkpoint, "last_good.json")
            if path is not None:
                write_json(path, osc.last_good_record(problem, x, str(exc)))
            return path
        with keep_last_good(save_record), RunControl(self, self.settings(d["t"], d["x"])) as rc:
            res = osc.solve_oscillator(problem, self.solver, quiet=self.quiet, seed=self.seed, init=self.init,
                                       lr=self.lr, **kw, **rc.options())
        summary = osc.summarize(problem, res, self.solver, self.true_gamma, self.true_omega0)

        def plot(path):
            from ocdl.forces.plots import plot_oscillator
            plot_oscillator(path, problem, {self.solver: res})
        return res, summary, plot

    def describe(self, summary):
        from ocdl.forces.oscillator import describe
        return describe(summary)


@dataclasses.dataclass
class LearnPotentialJob(_Learn):
    """``ocdl forces learn potential``: V(x) in x'' + 2γx' + ω0² V(x) = 0 from one trajectory (t, x)."""
    PROBLEM, VARIABLES = "potential", ("x",)
    checkpoint_every: int = same_option(Resumable, "checkpoint_every",
                                        help="Adam steps between checkpoints (default 100)")
    data: str = option(None, "data file (t,x), t evenly spaced from 0", "path", role="input", required=True,
                       metavar="CSV")
    gamma: float = option(None, "damping γ (known)", "nonnegative", required=True)
    omega0: float = option(None, "ω0 (known)", "positive", required=True)
    x0: float = option(None, "x(0) if known (estimated otherwise)", "real")
    v0: float = option(None, "x'(0) if known (estimated otherwise)", "real")
    solver: str = option("newton", "newton (Gauss–Newton, default) | adam | pinn", "choice", choices=FIT_SOLVERS)
    init: str = option("zero", "starting table: zero (default) | linear (damped-sinusoid fit) | random (from "
                               "--seed)", "choice", choices=("zero", "linear", "random"))
    integrator: str = option("rk4", "euler | heun | rk4 (default rk4)", "choice", choices=RK)
    substeps: int = option(1, "layers per sample interval (default 1)", "count")
    grid_step: float = option(None, "table spacing (default: data range / 40)", "positive")
    lam: float = option(1e-6, "smoothness weight λ of λ Σ (V_{j+1} − V_j)² (default 1e-6)", "nonnegative",
                        flag="--lambda")
    continuation: bool = option(True, "fit all samples at once (default: growing time windows 10 %% … 100 %%)",
                                "switch", flag="--no-continuation")
    iterations: int = option(None, "newton steps per window (100) / adam steps (2000)", "count")
    lr: float = option(None, "Adam learning rate (adam 0.05 decaying ×0.01, pinn 0.002)", "positive")
    adam_steps: int = option(3000, "PINN Adam steps (default 3000)", "count")
    lbfgs_steps: int = option(300, _PINN_HELP.format(300), "natural")
    hidden: int = option(32, "PINN width (default 32, 3 layers)", "count")
    truth: str = option(None, "true V(x): adds rel_l2_error (+ central 90 %%) and the curve", "text", metavar="EXPR")
    json: str = _json()
    plot: str = _plot()
    seed: int = _seed()

    def estimate(self):
        return work.learn_potential(self)

    def learn(self):
        from ocdl.forces import potential as pot
        from ocdl.io import read_table, write_csv
        from ocdl.jobs.runcontrol import RunControl, keep_last_good, last_good_path
        truth = self.truth_function()
        d = read_table(self.data, ["t", "x"])
        problem = pot.PotentialProblem(d["t"], d["x"], self.gamma, self.omega0, self.x0, self.v0, self.grid_step,
                                       substeps=self.substeps, method=self.integrator)
        kw = ({"adam_steps": self.adam_steps, "lbfgs_steps": self.lbfgs_steps, "hidden": self.hidden}
              if self.solver == "pinn" else {"iterations": self.iterations, "continuation": self.continuation})

        def save_table(x, exc):      # the last good table V on its nodes: DIR/last_good.csv with --checkpoint
            path = last_good_path(self.checkpoint, "last_good.csv")
            if path is not None:
                table = np.asarray(x, float)[-len(problem.names):][:problem.m]   # (the PINN's x ends with the unknowns)
                write_csv(path, ["x", "V"], np.stack([problem.grid.nodes, table], 1))
            return path
        with keep_last_good(save_table, "table"), RunControl(self, self.settings(d["t"], d["x"])) as rc:
            res = pot.solve_potential(problem, self.solver, self.lam, init=self.init, seed=self.seed,
                                      quiet=self.quiet, lr=self.lr, **kw, **rc.options())
        summary = pot.summarize(problem, res, self.solver, self.lam, self.init, truth)

        def plot(path):
            from ocdl.forces.plots import plot_potential
            plot_potential(path, problem, {self.solver: (res, summary)}, truth)
        return res, summary, plot

    def describe(self, summary):
        from ocdl.forces.potential import describe
        return describe(summary)


#: command words → job
SIMULATE = {"drag": SimulateDragJob, "position": SimulatePositionJob, "oscillator": SimulateOscillatorJob,
            "potential": SimulatePotentialJob}
LEARN = {"drag": LearnDragJob, "position": LearnPositionJob, "oscillator": LearnOscillatorJob,
         "potential": LearnPotentialJob}
