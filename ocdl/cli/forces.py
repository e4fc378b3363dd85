"""``ocdl forces simulate|learn {drag,position,oscillator,potential}``: learn forces from equations of motion.

Thin layer: parses flags, reads/writes files, calls :mod:`ocdl.forces`.
"""
import argparse

import numpy as np

from ocdl.jobs import runcontrol as runctl
from ocdl.jobs.base import digest
from ocdl.cli import common
from ocdl.errors import InputError

PROBLEMS = ("drag", "position", "oscillator", "potential")


def _lambda(text):
    if text == "auto":
        return "auto"
    try:
        return common.nonnegative(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"--lambda must be a number ≥ 0 or 'auto' (got '{text}')") from None


def register(subparsers):
    p = subparsers.add_parser("forces", help="learn forces from equations of motion (optimal control)",
                              description="Learn unknown forces from initial/final data through the "
                                          "discretised equation of motion (the force is the control).")
    common.add_global(p)
    sub = p.add_subparsers(dest="forces_command", metavar="{simulate,learn}")
    ps = sub.add_parser("simulate", help="synthetic data from solve_ivp (DOP853, rtol 1e-10)")
    common.add_global(ps)
    pl = sub.add_parser("learn", help="learn the force from a data CSV")
    common.add_global(pl)
    ss, sl = ps.add_subparsers(dest="problem", metavar="{drag,position,oscillator,potential}"), \
        pl.add_subparsers(dest="problem", metavar="{drag,position,oscillator,potential}")

    # ---- simulate ----------------------------------------------------------------------------
    q = common.add_command(ss, "drag", "falling body: v' = g − F(v); writes v0,vT",
                           "ocdl forces simulate drag --force '0.01*v**2+0.05*v' --T 1 --g 10 --samples 50 "
                           "--vmax 40 --out drag.csv", _simulate)
    q.add_argument("--force", required=True, metavar="EXPR", help="drag law F(v), e.g. '0.01*v**2'")
    q.add_argument("--T", type=common.positive, default=1.0, help="flight time (default 1)")
    q.add_argument("--g", type=common.real, default=10.0, help="gravitational acceleration (default 10)")
    q.add_argument("--samples", type=common.positive_int, default=50, help="number of pairs (default 50)")
    q.add_argument("--vmin", type=common.nonnegative, default=0.0, help="smallest v0 (default 0)")
    q.add_argument("--vmax", type=common.positive, default=40.0, help="largest v0; v0 evenly spaced (default 40)")
    q.add_argument("--noise", type=common.nonnegative, default=0.0, help="Gaussian noise std added to vT")
    common.add_outputs(q, json=False, plot=False, out="required", out_help="output CSV (v0,vT)")

    q = common.add_command(ss, "position", "x' = v, v' = F(x); writes x0,v0,kind,vT (half positive)",
                           "ocdl forces simulate position --force '2*sin(x)-0.3*(x-5)' --T 2 --target 5 "
                           "--eps 0.5 --samples 2000 --out pos.csv", _simulate)
    q.add_argument("--force", required=True, metavar="EXPR", help="force law F(x)")
    q.add_argument("--T", type=common.positive, default=2.0, help="final time (default 2)")
    q.add_argument("--target", type=common.real, required=True, help="target position x*")
    q.add_argument("--eps", type=common.positive, required=True, help="positive when |x(T) − x*| < eps")
    q.add_argument("--samples", type=common.positive_int, default=2000, help="data points (default 2000)")
    q.add_argument("--positive-fraction", type=common.positive, default=0.5, help="share of positives (default 0.5)")
    q.add_argument("--xmin", type=common.real, default=0.0, help="x0 window (default 0..10)")
    q.add_argument("--xmax", type=common.real, default=10.0)
    q.add_argument("--vmin", type=common.real, default=-5.0, help="v0 window (default −5..5)")
    q.add_argument("--vmax", type=common.real, default=5.0)
    q.add_argument("--noise", type=common.nonnegative, default=0.0, help="Gaussian noise std added to vT")
    common.add_outputs(q, json=False, plot=False, out="required", out_help="output CSV (x0,v0,kind,vT)")

    q = common.add_command(ss, "oscillator", "x'' + 2γx' + ω0²x = 0 sampled with noise; writes t,x",
                           "ocdl forces simulate oscillator --gamma 1 --omega0 20 --samples 40 --noise 0.04 "
                           "--out osc.csv", _simulate)
    q.add_argument("--force", metavar="EXPR", help="optional acceleration x''(x, v) replacing −2γv − ω0²x")
    q.add_argument("--gamma", type=common.nonnegative, default=1.0, help="damping γ (default 1)")
    q.add_argument("--omega0", type=common.positive, default=20.0, help="natural frequency ω0 (default 20)")
    q.add_argument("--x0", type=common.real, default=1.0, help="x(0) (default 1)")
    q.add_argument("--v0", type=common.real, default=0.0, help="x'(0) (default 0)")
    q.add_argument("--T", type=common.positive, default=1.0, help="samples evenly spaced in [0, T] (default 1)")
    q.add_argument("--samples", type=common.positive_int, default=40, help="number of samples (default 40)")
    q.add_argument("--noise", type=common.nonnegative, default=0.04, help="Gaussian noise std (default 0.04)")
    common.add_outputs(q, json=False, plot=False, out="required", out_help="output CSV (t,x)")

    q = common.add_command(ss, "potential", "x'' + 2γx' + ω0² V(x) = 0 from x(0), x'(0); writes t,x",
                           "ocdl forces simulate potential --potential 'x + 0.5*x**3' --gamma 1 --omega0 20 "
                           "--samples 201 --out pot.csv", _simulate)
    q.add_argument("--potential", required=True, metavar="EXPR", help="restoring function V(x), e.g. 'x'")
    q.add_argument("--gamma", type=common.nonnegative, default=1.0, help="damping γ (default 1)")
    q.add_argument("--omega0", type=common.positive, default=20.0, help="ω0 (default 20)")
    q.add_argument("--x0", type=common.real, default=1.0, help="x(0) (default 1)")
    q.add_argument("--v0", type=common.real, default=0.0, help="x'(0) (default 0)")
    q.add_argument("--T", type=common.positive, default=1.0, help="samples evenly spaced in [0, T] (default 1)")
    q.add_argument("--samples", type=common.positive_int, default=201, help="number of samples (default 201)")
    q.add_argument("--noise", type=common.nonnegative, default=0.0, help="Gaussian noise std (default 0)")
    common.add_outputs(q, json=False, plot=False, out="required", out_help="output CSV (t,x)")

    # ---- learn ------------------------------------------------------------------------------
    def shared(q, integrators, default_integrator, default_steps, default_lambda):
        q.add_argument("--data", required=True, metavar="CSV", help="data file")
        q.add_argument("--solver", type=common.choice("solver", ("newton", "adam", "pmp-adam", "pmp-lbfgs")),
                       default="newton", help="newton (CasADi Gauss–Newton, default) | adam | pmp-adam | pmp-lbfgs")
        q.add_argument("--integrator", type=common.choice("integrator", integrators), default=default_integrator,
                       help=f"{' | '.join(integrators)} (default {default_integrator})")
        q.add_argument("--steps", type=common.positive_int, default=default_steps,
                       help=f"network depth N (layers, h = T/N; default {default_steps})")
        q.add_argument("--lambda", dest="lam", type=_lambda, default=default_lambda,
                       help=f"smoothness weight λ, or 'auto' (held-out sweep; default {default_lambda:g})")
        q.add_argument("--grid-step", type=common.positive, default=1.0, help="force-table spacing (default 1)")
        q.add_argument("--iterations", type=common.positive_int,
                       help="max iterations (default: newton 100, adam 3000, pmp-lbfgs 5000)")
        q.add_argument("--lr", type=common.positive, default=0.5,
                       help="Adam learning rate, decaying ×0.01 over the run (default 0.5)")
        q.add_argument("--init", type=common.choice("init", ("zero", "random")), default="zero",
                       help="starting table: zero (default) | random (uniform, as the paper; from --seed)")
        q.add_argument("--truth", metavar="EXPR", help="true force law: adds rel_l2_error and the truth curve")
        q.add_argument("--profile", metavar="CSV", help="write the learned table on the covered range")
        common.add_checkpoint_flags(q, every=100)
        common.add_outputs(q)

    q = common.add_command(sl, "drag", "learn F(v) from (v0, vT) pairs",
                           "ocdl forces learn drag --data drag.csv --T 1 --g 10 --solver newton --lambda auto "
                           "--json drag.json --profile drag_F.csv --plot drag.png --truth '0.01*v**2+0.05*v'",
                           _tensorboard(_learn_table))
    common.add_tensorboard(q)
    q.add_argument("--T", type=common.positive, required=True, help="flight time T")
    q.add_argument("--g", type=common.real, required=True, help="gravitational acceleration g")
    q.add_argument("--vmax", type=common.positive, help="table upper speed (default: the data's maximum)")
    q.add_argument("--c0", type=common.nonnegative, default=1.0, help="weight of c0·F(0)² (default 1)")
    shared(q, ("euler", "heun", "rk4"), "rk4", 50, 1e-6)

    q = common.add_command(sl, "position", "learn F(x) from positive/negative shots",
                           "ocdl forces learn position --data pos.csv --T 2 --target 5 --eps 0.5 --grid-step 0.5 "
                           "--integrator verlet --json pos.json --plot pos.png --truth '2*sin(x)-0.3*(x-5)'",
                           _tensorboard(_learn_table))
    common.add_tensorboard(q)
    q.add_argument("--T", type=common.positive, required=True, help="final time T")
    q.add_argument("--target", type=common.real, required=True, help="target position x*")
    q.add_argument("--eps", type=common.positive, required=True, help="positive radius ε")
    q.add_argument("--xmin", type=common.real, help="table range (default: data range ± one grid step)")
    q.add_argument("--xmax", type=common.real)
    q.add_argument("--kind-scale", type=common.positive, default=0.2,
                   help="kind map k̄ = σ((ε² − (x̄T − x*)²)/(kind_scale·ε²)) (default 0.2)")
    q.add_argument("--c1", type=common.nonnegative, default=1.0, help="weight of the kind error (default 1)")
    q.add_argument("--c2", type=common.nonnegative, default=1.0, help="weight of the vT error (default 1)")
    shared(q, ("euler", "rk4", "verlet", "gauss2"), "verlet", 50, 1e-5)

    q = common.add_command(sl, "oscillator", "learn γ, ω0 (and x(0), x'(0) unless given) from noisy (t, x)",
                           "ocdl forces learn oscillator --data osc.csv --x0 1 --v0 0 --solver newton --json osc.json",
                           _tensorboard(_learn_oscillator))
    common.add_tensorboard(q)
    q.add_argument("--data", required=True, metavar="CSV", help="data file (t,x)")
    q.add_argument("--x0", type=common.real, help="x(0) if known (estimated otherwise)")
    q.add_argument("--v0", type=common.real, help="x'(0) if known (estimated otherwise)")
    q.add_argument("--solver", type=common.choice("solver", ("newton", "adam", "pinn")), default="newton",
                   help="newton (default) | adam | pinn")
    q.add_argument("--integrator", type=common.choice("integrator", ("euler", "heun", "rk4")), default="rk4")
    q.add_argument("--steps", type=common.positive_int, default=200, help="network depth over [0, t_max] (default 200)")
    q.add_argument("--iterations", type=common.positive_int, help="newton max iterations / adam steps")
    q.add_argument("--lr", type=common.positive, help="Adam learning rate (adam 0.01, pinn 0.002)")
    q.add_argument("--adam-steps", type=common.positive_int, default=6000, help="PINN Adam steps (default 6000)")
    q.add_argument("--lbfgs-steps", type=common.integer, default=500, help="PINN L-BFGS iterations (default 500)")
    q.add_argument("--hidden", type=common.positive_int, default=32, help="PINN width (default 32, 3 layers)")
    q.add_argument("--init", type=common.choice("init", ("grid", "random")), default="grid",
                   help="starting point: grid (damped-sinusoid search, default) | random (arbitrary, from --seed)")
    q.add_argument("--true-gamma", type=common.real, help="report gamma_rel_error against this value")
    q.add_argument("--true-omega0", type=common.real, help="report omega0_rel_error against this value")
    common.add_checkpoint_flags(q, every=100, unit="Adam steps")
    common.add_outputs(q)

    q = common.add_command(sl, "potential", "learn V(x) in x'' + 2γx' + ω0² V(x) = 0 from one trajectory (t, x)",
                           "ocdl forces learn potential --data pot.csv --gamma 1 --omega0 20 --x0 1 --v0 0 "
                           "--json pot.json --plot pot.png --truth 'x + 0.5*x**3'", _tensorboard(_learn_potential))
    common.add_tensorboard(q)
    q.add_argument("--data", required=True, metavar="CSV", help="data file (t,x), t evenly spaced from 0")
    q.add_argument("--gamma", type=common.nonnegative, required=True, help="damping γ (known)")
    q.add_argument("--omega0", type=common.positive, required=True, help="ω0 (known)")
    q.add_argument("--x0", type=common.real, help="x(0) if known (estimated otherwise)")
    q.add_argument("--v0", type=common.real, help="x'(0) if known (estimated otherwise)")
    q.add_argument("--solver", type=common.choice("solver", ("newton", "adam", "pinn")), default="newton",
                   help="newton (Gauss–Newton, default) | adam | pinn")
    q.add_argument("--init", type=common.choice("init", ("zero", "linear", "random")), default="zero",
                   help="starting table: zero (default) | linear (damped-sinusoid fit) | random (from --seed)")
    q.add_argument("--integrator", type=common.choice("integrator", ("euler", "heun", "rk4")), default="rk4")
    q.add_argument("--substeps", type=common.positive_int, default=1, help="layers per sample interval (default 1)")
    q.add_argument("--grid-step", type=common.positive, help="table spacing (default: data range / 40)")
    q.add_argument("--lambda", dest="lam", type=common.nonnegative, default=1e-6,
                   help="smoothness weight λ of λ Σ (V_{j+1} − V_j)² (default 1e-6)")
    q.add_argument("--no-continuation", dest="continuation", action="store_false",
                   help="fit all samples at once (default: growing time windows 10 %% … 100 %%)")
    q.add_argument("--iterations", type=common.positive_int, help="newton steps per window (100) / adam steps (2000)")
    q.add_argument("--lr", type=common.positive, help="Adam learning rate (adam 0.05 decaying ×0.01, pinn 0.002)")
    q.add_argument("--adam-steps", type=common.positive_int, default=3000, help="PINN Adam steps (default 3000)")
    q.add_argument("--lbfgs-steps", type=common.integer, default=300, help="PINN L-BFGS iterations (default 300)")
    q.add_argument("--hidden", type=common.positive_int, default=32, help="PINN width (default 32, 3 layers)")
    q.add_argument("--truth", metavar="EXPR", help="true V(x): adds rel_l2_error (+ central 90 %%) and the curve")
    common.add_checkpoint_flags(q, every=100, unit="Adam steps")
    common.add_outputs(q)


# ----------------------------------------------------------------------------------------------
def _expr(text, variables):
    from ocdl.expr import compile_expr
    return compile_expr(text, variables)


# flags that do not change the result (outputs, verbosity, the checkpoint flags themselves)
_NOT_SETTINGS = {"json", "plot", "profile", "quiet", "debug", "config", "checkpoint", "checkpoint_every", "resume",
                 "truth", "true_gamma", "true_omega0", "data", "func", "max_seconds"}


def _settings(args, *arrays):
    """What a resumed run must share with the interrupted one: every result-changing flag + the data."""
    out = {k: v for k, v in sorted(vars(args).items())
           if k not in _NOT_SETTINGS and not k.startswith("_") and (v is None or isinstance(v, (int, float, str)))}
    out["data"] = digest(*arrays)
    return out


def _refuse_newton(args):
    common.check_checkpoint_flags(args)
    if args.solver == "newton" and (args.checkpoint or args.resume):
        raise InputError("--checkpoint/--resume apply to the iterative solvers (adam, pmp-adam, pmp-lbfgs, pinn); "
                         "newton (Gauss–Newton) runs in seconds — drop the flags or choose another --solver")


def _simulate(args):
    from ocdl.forces import simulate as sim
    from ocdl.io import write_csv
    from ocdl.progress import log
    if args.problem == "drag":
        v0, vT = sim.simulate_drag(_expr(args.force, ("v",)), args.T, args.g, args.samples, args.vmin, args.vmax,
                                   args.noise, args.seed)
        write_csv(args.out, ["v0", "vT"], np.stack([v0, vT], 1))
    elif args.problem == "position":
        x0, v0, kind, vT = sim.simulate_position(_expr(args.force, ("x",)), args.T, args.target, args.eps,
                                                 args.samples, args.xmin, args.xmax, args.vmin, args.vmax,
                                                 args.positive_fraction, args.noise, args.seed)
        rows = [[a, b, int(k), (c if k == 1 else None)] for a, b, k, c in zip(x0, v0, kind, vT)]
        write_csv(args.out, ["x0", "v0", "kind", "vT"], rows)
    elif args.problem == "potential":
        t, x = sim.simulate_potential(_expr(args.potential, ("x",)), args.gamma, args.omega0, args.x0, args.v0,
                                      args.T, args.samples, args.noise, args.seed)
        write_csv(args.out, ["t", "x"], np.stack([t, x], 1))
    else:
        accel = _expr(args.force, ("x", "v")) if args.force else None
        t, x = sim.simulate_oscillator(args.gamma, args.omega0, args.x0, args.v0, args.T, args.samples,
                                       args.noise, args.seed, accel=accel)
        write_csv(args.out, ["t", "x"], np.stack([t, x], 1))
    log(f"wrote {args.out}", args.quiet)
    return 0


_PROBLEM_FLAGS = {"drag": ("g", "vmax", "c0"),
                  "position": ("target", "eps", "xmin", "xmax", "kind_scale", "c1", "c2")}


def _tensorboard(run):
    """``--tensorboard DIR``: the learn command's iterations as TensorBoard run DIR/<problem>-<solver>/."""
    def wrapped(args):
        from ocdl.optim import tensorboard
        with tensorboard.session(args.tensorboard), tensorboard.run(f"{args.problem}-{args.solver}"):
            return run(args)
    return wrapped


def _learn_table(args):
    from ocdl.forces import checks
    from ocdl.io import read_table, write_json
    from ocdl.progress import log
    _refuse_newton(args)
    truth = _expr(args.truth, (("v",) if args.problem == "drag" else ("x",))) if args.truth else None
    if args.problem == "drag":
        d = read_table(args.data, ["v0", "vT"])
        checks.drag_data(d["v0"], d["vT"], args.T, args.g, args.vmax, args.grid_step)
    else:
        d = read_table(args.data, ["x0", "v0", "kind", "vT"], allow_empty=("vT",))
        checks.position_data(d["x0"], d["v0"], d["kind"], d["vT"], args.T, args.target, args.eps,
                             args.xmin, args.xmax, args.grid_step)
    # validated: now the heavy imports (torch, CasADi)
    from ocdl.forces import learn
    problem = learn.build_problem(args.problem, d, args.T, args.steps, args.integrator, args.grid_step,
                                  **{k: getattr(args, k) for k in _PROBLEM_FLAGS[args.problem]})
    arrays = [d[k] for k in sorted(d)]
    def save_table(x, exc):          # the last good table: DIR/last_good.csv with --checkpoint, and --profile
        paths = [p for p in (runctl.last_good_path(args.checkpoint, "last_good.csv"), args.profile) if p]
        for path in paths:
            learn.write_profile(path, problem, x)
        return " and ".join(paths) or None
    with runctl.keep_last_good(save_table, "table"), \
            runctl.RunControl(args, _settings(args, *arrays), staged=True) as rc:
        res, summary = learn.learn_table(problem, args.solver, args.lam, args.iterations, args.lr, truth,
                                         args.quiet, continuation=True, stages=rc.stage,
                                         init=args.init, seed=args.seed)  # SIGINT/SIGTERM stop it anyway
    summary["data"] = args.data
    if args.json:
        write_json(args.json, summary)
    if args.profile:
        learn.write_profile(args.profile, problem, res.x)
    if args.plot:
        from ocdl.forces.plots import plot_drag, plot_position
        (plot_drag if problem.name == "drag" else plot_position)(args.plot, problem, res, truth,
                                                                 learn.plot_title(problem, args.solver, summary))
    log(learn.describe(summary), args.quiet)
    common.not_converged(args, args.solver, res.success, res.message)
    return 0


def _learn_oscillator(args):
    from ocdl.forces import oscillator as osc
    from ocdl.io import read_table, write_json
    from ocdl.progress import log
    _refuse_newton(args)
    d = read_table(args.data, ["t", "x"])
    problem = osc.OscillatorProblem(d["t"], d["x"], args.x0, args.v0, args.steps, args.integrator)
    if args.lbfgs_steps < 0:
        raise InputError("--lbfgs-steps must be ≥ 0")
    if args.solver == "pinn":
        kw = {"adam_steps": args.adam_steps, "lbfgs_steps": args.lbfgs_steps, "hidden": args.hidden,
              "lr": args.lr}
    else:
        kw = {"lr": args.lr, "iterations": args.iterations}
    def save_record(x, exc):
        path = runctl.last_good_path(args.checkpoint, "last_good.json")
        if path is not None:
            write_json(path, osc.last_good_record(problem, x, str(exc)))
        return path
    with runctl.keep_last_good(save_record), runctl.RunControl(args, _settings(args, d["t"], d["x"])) as rc:
        res = osc.solve_oscillator(problem, args.solver, quiet=args.quiet, seed=args.seed, init=args.init, **kw,
                                   **rc.options())
    summary = osc.summarize(problem, res, args.solver, args.true_gamma, args.true_omega0)
    summary["data"] = args.data
    if args.json:
        write_json(args.json, summary)
    if args.plot:
        from ocdl.forces.plots import plot_oscillator
        plot_oscillator(args.plot, problem, {args.solver: res})
    log(osc.describe(summary), args.quiet)
    common.not_converged(args, args.solver, res.success, res.message)
    return 0


def _learn_potential(args):
    from ocdl.forces import potential as pot
    from ocdl.io import read_table, write_json
    from ocdl.progress import log
    _refuse_newton(args)
    truth = _expr(args.truth, ("x",)) if args.truth else None
    d = read_table(args.data, ["t", "x"])
    if args.lbfgs_steps < 0:
        raise InputError("--lbfgs-steps must be ≥ 0")
    problem = pot.PotentialProblem(d["t"], d["x"], args.gamma, args.omega0, args.x0, args.v0, args.grid_step,
                                   substeps=args.substeps, method=args.integrator)
    if args.solver == "pinn":
        kw = {"adam_steps": args.adam_steps, "lbfgs_steps": args.lbfgs_steps, "hidden": args.hidden,
              "lr": args.lr}
    else:
        kw = {"lr": args.lr, "iterations": args.iterations, "continuation": args.continuation}
    def save_table(x, exc):          # the last good table V on its nodes: DIR/last_good.csv with --checkpoint
        if not args.checkpoint:
            return None
        from ocdl.io import write_csv
        path = runctl.last_good_path(args.checkpoint, "last_good.csv")
        table = np.asarray(x, float)[-len(problem.names):][:problem.m]   # (the PINN's x ends with the unknowns)
        write_csv(path, ["x", "V"], np.stack([problem.grid.nodes, table], 1))
        return path
    with runctl.keep_last_good(save_table, "table"), runctl.RunControl(args, _settings(args, d["t"], d["x"])) as rc:
        res = pot.solve_potential(problem, args.solver, args.lam, init=args.init, seed=args.seed, quiet=args.quiet,
                                  **kw, **rc.options())
    summary = pot.summarize(problem, res, args.solver, args.lam, args.init, truth)
    summary["data"] = args.data
    if args.json:
        write_json(args.json, summary)
    if args.plot:
        from ocdl.forces.plots import plot_potential
        plot_potential(args.plot, problem, {args.solver: (res, summary)}, truth)
    log(pot.describe(summary), args.quiet)
    common.not_converged(args, args.solver, res.success, res.message)
    return 0
