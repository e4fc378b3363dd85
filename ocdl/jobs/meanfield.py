"""``ocdl meanfield ...`` as library calls: one job per sub-command (Fokker–Planck, particles,
drift-as-control, NLS, Langevin study, mean-field limit study, stochastic-ResNet training), holding
the defaults (cells and steps by dimension, iterations by method, particles), the checks and
the estimates (:mod:`ocdl.jobs.work`). Conventions and signs: docs/meanfield.md — SDE
``dX = f dt + ν dW`` ⇔ Fokker–Planck ``∂ρ/∂t = −∂x(fρ) + (ν²/2)∂xxρ``.
"""
import dataclasses
import re
import time

import numpy as np

from ocdl.errors import InputError
from ocdl.jobs import work
from ocdl.jobs.base import Job, Resumable, option


def compile_field(text):
    """The drift ``f(x, t)`` of expression ``text`` (numpy, broadcast to x's shape); ``autonomous``
    when it does not use t."""
    from ocdl.expr import compile_expr
    fn = compile_expr(text, ("x", "t"))

    def field(x, t=0.0):
        val = np.asarray(fn(x, t), dtype=float)
        return np.broadcast_to(val, np.shape(x)).copy()
    field.autonomous = re.search(r"\bt\b", text or "") is None
    field.text = text
    return field


def _gaussian_fields():
    return dict(
        nu=option(None, "noise level ν ≥ 0 (dX = f dt + ν dW)", "nonnegative", required=True),
        mean=option(None, "mean of the Gaussian initial density", "real", required=True),
        std=option(None, "std of the Gaussian initial density (> 0)", "positive", required=True),
        T=option(None, "final time T > 0", "positive", required=True))


def _required(job, *names):
    missing = [n for n in names if getattr(job, n) is None]
    if missing:
        raise InputError(f"missing required option(s): {', '.join('--' + n.replace('_', '-') for n in missing)}")


@dataclasses.dataclass
class FokkerPlanckJob(Job):
    """``ocdl meanfield fokker-planck``: 1-D Fokker–Planck from a Gaussian; CSV x,rho at T."""
    drift: str = option(None, "drift f(x) (may use t), e.g. '-(x-1)'", "text", required=True, metavar="EXPR")
    nu: float = _gaussian_fields()["nu"]
    mean: float = _gaussian_fields()["mean"]
    std: float = _gaussian_fields()["std"]
    T: float = _gaussian_fields()["T"]
    xmin: float = option(None, "left wall (default: from a particle probe)", "real")
    xmax: float = option(None, "right wall (default: from a particle probe)", "real")
    cells: int = option(400, "finite-volume cells (default 400)", "count")
    steps: int = option(200, "time steps (default 200)", "count")
    scheme: str = option("cn", "cn (Crank–Nicolson, 2nd order; default) or euler (backward Euler, 1st order, "
                               "ρ ≥ 0 exactly)", "choice", choices=["cn", "euler"])
    out: str = option(None, "CSV x,rho", "path", role="output", required=True, metavar="PATH")

    def check(self):
        _required(self, "drift", "nu", "mean", "std", "T", "out")

    def estimate(self):
        return work.fokker_planck(self)

    def execute(self):
        from ocdl.io import write_csv
        from ocdl.meanfield import gaussian_density, make_grid, solve_fokker_planck
        from ocdl.meanfield.particles import probe_domain
        from ocdl.progress import Progress
        f = compile_field(self.drift)
        lo, hi = probe_domain(f, self.mean, self.std, self.nu, self.T, self.xmin, self.xmax)
        g = make_grid(lo, hi, self.cells)
        if self.std < 2 * g.h[0]:
            raise InputError(f"--std {self.std:g} is below two cells ({2 * g.h[0]:.3g}); "
                             "raise --cells or narrow the domain")
        rho0 = gaussian_density(g, self.mean, self.std)
        prog = Progress(self.steps, "fokker-planck", self.quiet)
        res = solve_fokker_planck(g, rho0, lambda pts, t: f(pts[:, 0], t), self.nu, self.T, self.steps,
                                  scheme=self.scheme, autonomous=f.autonomous, progress=prog)
        prog.close()
        if res.wall_fraction > 1e-6:
            self.log(f"ocdl: note: density at the domain wall is {res.wall_fraction:.1e} of its peak; the no-flux "
                     "wall affects the result — widen --xmin/--xmax")
        write_csv(self.out, ["x", "rho"], np.column_stack([res.x, res.rho]))
        return {"wall_fraction": res.wall_fraction}


@dataclasses.dataclass
class ParticlesJob(Job):
    """``ocdl meanfield particles``: Euler–Maruyama ensemble of dX = f dt + ν dW; CSV x at T."""
    drift: str = option(None, "drift f(x) (may use t)", "text", required=True, metavar="EXPR")
    nu: float = _gaussian_fields()["nu"]
    mean: float = _gaussian_fields()["mean"]
    std: float = _gaussian_fields()["std"]
    T: float = _gaussian_fields()["T"]
    particles: int = option(None, "number of particles P", "count", required=True)
    steps: int = option(200, "time steps (default 200)", "count")
    out: str = option(None, "CSV x", "path", role="output", required=True, metavar="PATH")
    seed: int = option(0, "random seed (default 0)", "seed")

    def check(self):
        _required(self, "drift", "nu", "mean", "std", "T", "particles", "out")

    def estimate(self):
        return work.particles(self)

    def execute(self):
        from ocdl.io import write_csv
        from ocdl.meanfield import euler_maruyama
        f = compile_field(self.drift)
        rng = np.random.default_rng(self.seed)
        x0 = self.mean + self.std * rng.standard_normal(self.particles)
        x = euler_maruyama(f, x0, self.nu, self.T, self.steps, rng)
        write_csv(self.out, ["x"], x[:, None])
        return {"particles": int(len(x))}


@dataclasses.dataclass
class ControlJob(Job):
    """``ocdl meanfield control``: drift-as-control min ∫ρ|a|²/2 + (g/2)∫ρ² + ∫Φρ(T) s.t. Fokker–Planck."""
    terminal: str = option(None, "terminal cost Φ(x), e.g. '(x-1.5)**2'", "text", required=True, metavar="EXPR")
    nu: float = _gaussian_fields()["nu"]
    mean: float = _gaussian_fields()["mean"]
    std: float = _gaussian_fields()["std"]
    T: float = _gaussian_fields()["T"]
    g: float = option(0.0, "congestion weight g ≥ 0 (default 0)", "nonnegative")
    method: str = option("sweep", "sweep (FP + HJB policy iteration) or hopf-cole (imaginary-time Schrödinger pair; "
                                  "with g > 0 a damped fixed point on ρ)", "choice", choices=["sweep", "hopf-cole"])
    dim: int = option(1, "1 (default) or 2: Φ(x, y), both solvers run, --plot draws them", "choice", choices=[1, 2])
    mean_y: float = option(None, "--dim 2: second coordinate of the initial mean (default --mean)", "real")
    xmin: float = option(None, "left wall (default: around ρ0 and argmin Φ; --dim 2: both axes)", "real")
    xmax: float = option(None, "right wall", "real")
    cells: int = option(None, "cells (default 800; --dim 2: 80 per axis)", "count")
    steps: int = option(None, "Crank–Nicolson steps (default 400; --dim 2: 80)", "count")
    maxiter: int = option(200, "sweep / congested Hopf–Cole iterations (default 200)", "count")
    tol: float = option(1e-9, "tolerance on the drift change (sweep) or density change (congested Hopf–Cole)",
                        "positive")
    out: str = option(None, "CSV x,rho (x,y,rho) at T", "path", role="output", required=True, metavar="PATH")
    json: str = option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")
    plot: str = option(None, "write a picture", "path", role="output", metavar="PNG")

    #: cells and steps by dimension (the defaults of --cells / --steps)
    DEFAULTS = {1: (800, 400), 2: (80, 80)}

    def check(self):
        _required(self, "terminal", "nu", "mean", "std", "T", "out")
        if self.nu <= 0:
            raise InputError("--nu must be > 0 for the drift-as-control problem")
        cells, steps = self.DEFAULTS[self.dim]
        self.cells = cells if self.cells is None else self.cells
        self.steps = steps if self.steps is None else self.steps
        if self.dim == 1 and (self.plot or self.mean_y is not None):
            raise InputError("--plot and --mean-y need --dim 2")
        if self.dim == 2 and self.g:
            raise InputError("--dim 2 supports --g 0 only (congested Hopf–Cole is 1-D)")

    def estimate(self):
        return work.control(self)

    def execute(self):
        if self.dim == 2:
            return self._two_d()
        from ocdl.expr import compile_expr
        from ocdl.io import write_csv, write_json
        from ocdl.meanfield import gaussian_density, make_grid
        from ocdl.meanfield.control import control_domain, solve_hopf_cole, solve_forward_backward
        from ocdl.progress import Progress
        phi_fn = compile_expr(self.terminal, ("x",))
        lo, hi = control_domain(phi_fn, self.mean, self.std, self.nu, self.T, self.xmin, self.xmax)
        g = make_grid(lo, hi, self.cells)
        x = g.centres[:, 0]
        Phi = np.broadcast_to(np.asarray(phi_fn(x), dtype=float), x.shape).copy()
        rho0 = gaussian_density(g, self.mean, self.std)
        if self.method == "hopf-cole":
            prog = Progress(self.maxiter if self.g else 1, "hopf-cole", self.quiet)
            res = solve_hopf_cole(g, rho0, Phi, self.nu, self.T, steps=self.steps, g=self.g, maxiter=self.maxiter,
                                  tol=self.tol, progress=prog)
            prog.close()
        else:
            res = solve_forward_backward(g, rho0, Phi, self.nu, self.T, steps=self.steps, g=self.g,
                                         maxiter=self.maxiter, tol=self.tol, quiet=self.quiet)
        self.outcomes = [(self.method, res.success,
                          f"{res.message} ({res.nit} iterations, residual {res.residual:.2e})")]
        write_csv(self.out, ["x", "rho"], np.column_stack([x, res.rho]))
        out = {"iterations": res.nit, "residual": res.residual, "cost": res.cost, "method": self.method,
               "success": res.success, "message": res.message, "nu": self.nu, "g": self.g, "T": self.T,
               "cells": self.cells, "steps": self.steps}
        if self.json:
            write_json(self.json, out)
        return out

    def _two_d(self):
        """Φ(x, y), initial ``N((mean, mean-y), std² I)``; both solvers run (CSV x,y,rho of --method;
        JSON and picture compare them)."""
        from ocdl.expr import compile_expr
        from ocdl.io import write_csv, write_json
        from ocdl.meanfield.control import control_box_2d, solve_hopf_cole, solve_forward_backward
        phi_fn = compile_expr(self.terminal, ("x", "y"))
        m0 = np.array([self.mean, self.mean if self.mean_y is None else self.mean_y])
        g = control_box_2d(phi_fn, m0, self.std, self.nu, self.T, self.cells, self.xmin, self.xmax)
        X = g.centres
        Phi = np.broadcast_to(np.asarray(phi_fn(X[:, 0], X[:, 1]), dtype=float), (g.ncells,)).copy()
        rho0 = np.exp(-0.5 * np.sum((X - m0) ** 2, 1) / self.std ** 2)
        rho0 /= g.mass(rho0)
        t0 = time.perf_counter()
        hc = solve_hopf_cole(g, rho0, Phi, self.nu, self.T, steps=self.steps)
        sw = solve_forward_backward(g, rho0, Phi, self.nu, self.T, steps=self.steps, maxiter=self.maxiter, tol=self.tol,
                         quiet=self.quiet)
        self.outcomes = [(name, r.success, f"{r.message} ({r.nit} iterations, residual {r.residual:.2e})")
                         for name, r in (("hopf-cole", hc), ("sweep", sw))]
        res = hc if self.method == "hopf-cole" else sw
        write_csv(self.out, ["x", "y", "rho"], np.column_stack([X, res.rho]))
        l1 = float(g.volume * np.sum(np.abs(sw.rho - hc.rho)))
        out = {"dim": 2, "method": self.method, "cost": res.cost, "residual": res.residual,
               "iterations": res.nit, "success": res.success, "sweep_cost": sw.cost,
               "hopf_cole_cost": hc.cost, "sweep_hopf_cole_l1": l1, "sweep_success": sw.success,
               "sweep_message": sw.message, "wall_time_s": time.perf_counter() - t0,
               "nu": self.nu, "T": self.T, "cells": self.cells, "steps": self.steps}
        if self.json:
            write_json(self.json, out)
        if self.plot:
            from ocdl.meanfield.plots import plot_control_2d
            plot_control_2d(g, rho0, sw, hc, Phi, self.plot)
        self.summary = f"cost sweep {sw.cost:.6g} hopf-cole {hc.cost:.6g}; L1(sweep, hopf-cole) at T = {l1:.2e}"
        return out


@dataclasses.dataclass
class NLSJob(Job):
    """``ocdl meanfield nls``: split-step Fourier NLS iħψ_t = −(ħ²/2)ψ_xx + Vψ + g|ψ|²ψ (periodic)."""
    psi0: str = option(None, "soliton (bright, needs g < 0), gaussian packet, coherent state of V = ω²x²/2, or a "
                             "file: CSV x,re,im (2-D: x,y,re,im) or .npz with psi (and x) on the command's grid",
                       "text", required=True)
    eta: float = option(None, "soliton inverse width η (default 1)", "positive")
    velocity: float = option(0.0, "group velocity v (k = v/ħ; default 0)", "real")
    x0: float = option(0.0, "initial centre (default 0)", "real")
    width: float = option(None, "gaussian: std of |ψ|² (default 1)", "positive")
    omega: float = option(1.0, "coherent: trap frequency ω (default 1)", "positive")
    potential: str = option(None, "V(x) (default 0; coherent: ω²x²/2)", "text", metavar="EXPR")
    g: float = option(None, "nonlinearity g (default −1 for soliton, else 0)", "real")
    hbar: float = option(1.0, "ħ (default 1)", "positive")
    dim: int = option(1, "1 (default) or 2 (periodic square box, points² grid; --potential may use x and y)",
                      "choice", choices=[1, 2])
    T: float = option(None, "final time", "positive", required=True)
    L: float = option(40.0, "periodic box length, x ∈ [−L/2, L/2) (default 40)", "positive")
    points: int = option(512, "grid points (default 512)", "count")
    dt: float = option(0.005, "time step (default 0.005)", "positive")
    out: str = option(None, "NPZ with x, psi (complex, at T), t, mass, energy", "path", role="output",
                      required=True, metavar="PATH")
    json: str = option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")

    STATES = ("soliton", "gaussian", "coherent")

    def check(self):
        _required(self, "psi0", "T", "out")
        if not str(self.psi0).endswith((".csv", ".npz")) and self.psi0 not in self.STATES:
            from ocdl.errors import unknown_name
            raise unknown_name("initial state", self.psi0, self.STATES)

    def inputs(self):
        return super().inputs() + ([("--psi0", self.psi0)] if str(self.psi0).endswith((".csv", ".npz")) else [])

    def estimate(self):
        return work.nls(self)

    def execute(self):
        from ocdl.expr import compile_expr
        from ocdl.io import write_json, write_npz
        from ocdl.meanfield import nls
        from ocdl.progress import Progress
        potential = (compile_expr(self.potential, ("x", "y") if self.dim == 2 else ("x",))
                     if self.potential is not None else None)
        if self.psi0 == "soliton" and potential is not None:
            self.log("ocdl: note: the soliton is exact only for V = 0")
        steps, dt = nls.time_steps(self.T, self.dt)
        if abs(dt - self.dt) > 1e-12 * self.dt:
            self.log(f"ocdl: note: using dt = {dt:.6g} so that T/dt is an integer ({steps} steps)")
        prog = Progress(steps, "nls", self.quiet)
        x, res, out = nls.run_case(self.psi0, self.T, steps, L=self.L, points=self.points, g=self.g, hbar=self.hbar,
                                   eta=self.eta, velocity=self.velocity, x0=self.x0, width=self.width,
                                   omega=self.omega, potential=potential, progress=prog, dim=self.dim)
        prog.close()
        write_npz(self.out, x=x, psi=res.psi, t=res.t, mass=res.mass, energy=res.energy)
        if self.json:
            write_json(self.json, out)
        return out


@dataclasses.dataclass
class LangevinJob(Job):
    """``ocdl meanfield langevin``: noisy learning vs the Fokker–Planck law of the parameters."""
    params: str = option("1", "1 (w) or 2 (w, b) trainable variables (default 1)", "choice", choices=["1", "2"])
    gamma: float = option(5.0, "learning rate γ (default 5)", "positive")
    D: float = option(0.1, "noise strength D (default 0.1)", "positive")
    T: float = option(6.0, "training time (default 6)", "positive")
    particles: int = option(5000, "ensemble size (default 5000)", "count")
    steps: int = option(600, "Euler–Maruyama steps (default 600)", "count")
    cells: int = option(None, "FP cells per axis (default 400 in 1-D, 70 in 2-D)", "count")
    weight_decay: float = option(0.05, "λ in L (default 0.05)", "positive")
    json: str = option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")
    plot: str = option(None, "write a picture", "path", role="output", metavar="PNG")
    seed: int = option(0, "random seed (default 0)", "seed")

    def estimate(self):
        return work.langevin(self)

    def execute(self):
        from ocdl.io import write_json
        from ocdl.meanfield.langevin import DISTANCES, langevin_report, langevin_study
        r = langevin_study(params=int(self.params), gamma=self.gamma, D=self.D, T=self.T, particles=self.particles,
                           steps=self.steps, seed=self.seed, cells=self.cells, weight_decay=self.weight_decay)
        out = langevin_report(r, self.params, self.gamma, self.D, self.T, self.particles, self.steps, self.seed,
                              self.weight_decay)
        if self.json:
            write_json(self.json, out)
        if self.plot:
            from ocdl.meanfield.plots import plot_langevin
            plot_langevin(r, self.plot)
        self.summary = " ".join(f"{k}={out[k]:.4g}" for k in DISTANCES)
        return out


@dataclasses.dataclass
class LimitJob(Job):
    """``ocdl meanfield limit``: particles → density as P → ∞, stochastic → deterministic as ν → 0."""
    nu: float = option(0.3, "noise of the P → ∞ study (default 0.3)", "positive")
    max_particles: int = option(100000, "largest P; four sizes from 100 on a log scale (default 100000)", "count")
    seeds: int = option(6, "seeds per P (default 6)", "count")
    nus: list = option([0.4, 0.2, 0.1], "noise levels of the ν → 0 study (default 0.4 0.2 0.1)", "positives")
    json: str = option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")
    plot: str = option(None, "write a picture", "path", role="output", metavar="PNG")

    def check(self):
        if self.max_particles < 400:
            raise InputError(f"--max-particles {self.max_particles} is too small for a slope; use at least 400")

    def estimate(self):
        return work.limit(self)

    def execute(self):
        from ocdl.io import write_json
        from ocdl.meanfield.limit import limit_study, limit_table, plot_limit
        sizes = [int(p) for p in np.unique(np.round(np.geomspace(100, self.max_particles, 4) / 2) * 2)]
        r = limit_study(sizes=sizes, seeds=self.seeds, nus=tuple(self.nus), nu_particles=self.nu)
        if self.json:
            write_json(self.json, r)
        if self.plot:
            plot_limit(r, self.plot)
        self.summary = limit_table(r)
        return r


@dataclasses.dataclass
class MeanfieldTrainJob(Resumable):
    """``ocdl meanfield train``: a stochastic ResNet dX = (K tanh X + b) dt + ν dW by particle PMP, the
    Lagrangian density method or the Eulerian Fokker–Planck grid."""
    data: str = option("spirals", "spirals (default), another built-in 2-D set or a CSV x1,x2,label", "text")
    test: str = option(None, "test CSV (default for synthetic sets: a fresh draw with seed + 1000)", "path",
                       role="input")
    nu: float = option(None, "noise level ν ≥ 0", "nonnegative", required=True)
    method: str = option(None, "particles (default; particle PMP), density (Lagrangian Gaussian blobs carried by "
                               "the flow, exact adjoint) or grid (Eulerian Fokker–Planck on --grid N cells)",
                         "choice", choices=["particles", "density", "grid"])
    smoothing: float = option(None, "initial density = data smoothed by a Gaussian of this width (density: default "
                                    "0; grid: default 1.5 cells)", "nonnegative")
    particles: int = option(None, "particle PMP with P particles per iteration (default, P = 1000)", "count")
    grid: int = option(None, "density method on an N×N finite-volume grid", "count")
    layers: int = option(10, "layers N (default 10)", "count")
    T: float = option(2.0, "depth T (default 2)", "positive")
    iterations: int = option(None, "Adam iterations (default 1500; 300 with --grid)", "count")
    lr: float = option(None, "Adam learning rate (default 0.05; --method density 0.02: its exact gradient takes "
                             "larger Adam steps, docs/meanfield.md)", "positive")
    alpha: float = option(1e-3, "weight decay α (layers and head)", "nonnegative")
    points: int = option(200, "spirals: points per class", "count")
    noise: float = option(0.02, "spirals: data noise", "nonnegative")
    substeps: int = option(1, "Euler(–Maruyama) sub-steps per layer (particles and density)", "count")
    steps_per_layer: int = option(1, "--grid: implicit Fokker–Planck steps per layer (more = less numerical "
                                     "diffusion, slower)", "count")
    padding: float = option(0.75, "--grid: domain = data box widened by this fraction of its size on each side",
                            "nonnegative")
    json: str = option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")
    plot: str = option(None, "write a picture", "path", role="output", metavar="PNG")
    seed: int = option(0, "random seed (default 0)", "seed")
    tensorboard: str = option(None, "write TensorBoard scalars (loss, accuracies, gradient norm, learning rate, "
                                    "wall time per iteration) into DIR/meanfield-<method>/ (needs the extra "
                                    "tensorboard)", "path", role="directory", metavar="DIR")

    CHECKPOINT_FILES = ("checkpoint.npz", "last_good.npz")
    #: iterations by method, particles: the defaults of --iterations and --particles
    ITERATIONS = {"grid": 300, "particles": 1500, "density": 1500}
    PARTICLES = 1000

    def check(self):
        super().check()
        _required(self, "nu")
        if self.particles is not None and self.grid is not None:
            raise InputError("--particles and --grid exclude each other: --grid N is the Eulerian method, "
                             "--particles P the particle method")
        method = self.method or ("grid" if self.grid is not None else "particles")
        if (method == "grid") != (self.grid is not None) or (self.particles is not None and method != "particles"):
            given = "--grid" if self.grid is not None else "--particles" if self.particles else "no --grid"
            raise InputError(f"--method {method} does not go with {given}: --grid N is the Eulerian method, "
                             "--particles P the particle method")
        if method == "grid" and self.grid < 8:
            raise InputError(f"--grid {self.grid} is too coarse; use at least 8 (e.g. --grid 48)")
        self.method = method

    def inputs(self):
        from ocdl.data.loading import is_csv
        return super().inputs() + ([("--data", self.data)] if is_csv(self.data) else [])

    def estimate(self):
        return work.meanfield_train(self)

    def execute(self):
        from ocdl.data.loading import load_dataset, synthetic_test_seed
        from ocdl.io import write_json, write_npz
        from ocdl.jobs.runcontrol import RunControl, keep_last_good, last_good_path
        from ocdl.meanfield import training as tr
        ds = load_dataset(self.data, self.test, None, self.seed, points=self.points, noise=self.noise,
                          test_seed=synthetic_test_seed(self.seed))
        X, y, Xt, yt = ds.X, ds.y, ds.X_test, ds.y_test
        if X.shape[1] != 2:
            raise InputError(f"meanfield train needs 2-D inputs (got {X.shape[1]} columns)")
        method = self.method
        iterations = self.iterations or self.ITERATIONS[method]
        particles = self.particles or self.PARTICLES
        lr = self.lr if self.lr is not None else tr.DEFAULT_LR[method]
        settings = {"nu": self.nu, "particles": self.particles, "grid": self.grid, "layers": self.layers, "T": self.T,
                    "iterations": iterations, "lr": lr, "alpha": self.alpha, "substeps": self.substeps,
                    "steps_per_layer": self.steps_per_layer, "padding": self.padding, "seed": self.seed}
        from ocdl.jobs.base import digest
        settings["data"] = digest(X, y)
        if method == "density":                      # (kept out of the other methods' settings: old checkpoints resume)
            settings.update(method=method, smoothing=self.smoothing)

        def save_last(x, exc):
            path = last_good_path(self.checkpoint, "last_good.npz")
            if path is not None:
                write_npz(path, **tr.param_arrays(x))
            return path
        from ocdl.optim import tensorboard
        with keep_last_good(save_last), RunControl(self, settings) as rc, \
                tensorboard.session(self.tensorboard), tensorboard.run(f"meanfield-{method}"):
            res = tr.train_stochastic_resnet(X, y, method=method, nu=self.nu, layers=self.layers, T=self.T,
                                             particles=particles, grid_cells=self.grid or 64,
                                             alpha=self.alpha, alpha_head=self.alpha, iterations=iterations,
                                             lr=lr, seed=self.seed, substeps=self.substeps,
                                             steps_per_layer=self.steps_per_layer, padding=self.padding,
                                             smoothing=self.smoothing, quiet=self.quiet, **rc.options())
        out = tr.train_report(res, method, X, y, Xt, yt, nu=self.nu, layers=self.layers, T=self.T,
                              substeps=self.substeps, particles=particles, grid=self.grid, seed=self.seed)
        self.outcomes = [(out["solver"], res.success, res.message)]
        if self.json:
            write_json(self.json, out)
        if self.plot:
            from ocdl.meanfield.plots import plot_class_densities
            grid, path, clouds = res.grid, res.rho_path, None
            if method == "density":
                from ocdl.meanfield.lagrangian import blob_density_path
                grid, path = blob_density_path(res.x, X, y, self.nu, self.T, self.substeps, self.smoothing or 0.0)
            elif grid is None:                         # particle training: particle clouds of the trained net
                grid, traj, labels = tr.particle_clouds(res.x, X, y, self.nu, self.T, self.substeps, 4000, self.seed)
                clouds = (traj, labels)
            plot_class_densities(grid, path, self.layers, self.steps_per_layer if method == "grid" else 1, res.x,
                                 res.history, self.plot,
                                 f"{out['solver']}, ν = {self.nu:g}: class densities through the layers "
                                 f"(test accuracy {out['test_accuracy'] or float('nan'):.2f})", particles=clouds)
        self.summary = (f"train_loss={res.fun:.4g} train_accuracy={out['train_accuracy']:.3f} test_accuracy="
                        f"{None if out['test_accuracy'] is None else round(out['test_accuracy'], 3)}")
        return out


#: sub-command name → job
JOBS = {"fokker-planck": FokkerPlanckJob, "particles": ParticlesJob, "control": ControlJob, "nls": NLSJob,
        "langevin": LangevinJob, "limit": LimitJob, "train": MeanfieldTrainJob}
