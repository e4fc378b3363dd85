"""``ocdl meanfield ...``: Fokker–Planck, particles, drift-as-control, NLS, Langevin study.

Thin layer over :mod:`ocdl.meanfield`; conventions and signs are in docs/meanfield.md:
SDE ``dX = f dt + ν dW`` ⇔ Fokker–Planck ``∂ρ/∂t = −∂x(fρ) + (ν²/2)∂xxρ``.
"""
import re
import sys
import time

import numpy as np

from ocdl.cli import common
from ocdl.errors import InputError, SolverError


def _compile_field(text, what="--drift"):
    from ocdl.expr import compile_expr
    uses_t = re.search(r"\bt\b", text or "") is not None
    fn = compile_expr(text, ("x", "t"))

    def field(x, t=0.0):
        val = np.asarray(fn(x, t), dtype=float)
        return np.broadcast_to(val, np.shape(x)).copy()
    field.autonomous = not uses_t
    field.text = text
    return field


def _fp_common(p):
    p.add_argument("--nu", type=common.nonnegative, required=True, help="noise level ν ≥ 0 (dX = f dt + ν dW)")
    p.add_argument("--mean", type=common.real, required=True, help="mean of the Gaussian initial density")
    p.add_argument("--std", type=common.positive, required=True, help="std of the Gaussian initial density (> 0)")
    p.add_argument("--T", type=common.positive, required=True, help="final time T > 0")


def cmd_fokker_planck(args):
    from ocdl.io import write_csv
    from ocdl.meanfield import gaussian_density, make_grid, solve_fokker_planck
    from ocdl.meanfield.particles import probe_domain
    from ocdl.progress import Progress
    f = _compile_field(args.drift)
    lo, hi = probe_domain(f, args.mean, args.std, args.nu, args.T, args.xmin, args.xmax)
    g = make_grid(lo, hi, args.cells)
    if args.std < 2 * g.h[0]:
        raise InputError(f"--std {args.std:g} is below two cells ({2 * g.h[0]:.3g}); "
                         "raise --cells or narrow the domain")
    rho0 = gaussian_density(g, args.mean, args.std)
    prog = Progress(args.steps, "fokker-planck", args.quiet)
    res = solve_fokker_planck(g, rho0, lambda pts, t: f(pts[:, 0], t), args.nu, args.T, args.steps,
                              scheme=args.scheme, autonomous=f.autonomous, progress=prog)
    prog.close()
    if res.wall_fraction > 1e-6 and not args.quiet:
        print(f"ocdl: note: density at the domain wall is {res.wall_fraction:.1e} of its peak; the no-flux wall "
              "affects the result — widen --xmin/--xmax", file=sys.stderr)
    write_csv(args.out, ["x", "rho"], np.column_stack([res.x, res.rho]))
    return 0


def cmd_particles(args):
    from ocdl.io import write_csv
    from ocdl.meanfield import euler_maruyama
    f = _compile_field(args.drift)
    rng = np.random.default_rng(args.seed)
    x0 = args.mean + args.std * rng.standard_normal(args.particles)
    x = euler_maruyama(f, x0, args.nu, args.T, args.steps, rng)
    write_csv(args.out, ["x"], x[:, None])
    return 0


def cmd_control(args):
    from ocdl.expr import compile_expr
    from ocdl.io import write_csv, write_json
    from ocdl.meanfield import gaussian_density, make_grid
    from ocdl.meanfield.control import control_domain, solve_hopf_cole, solve_sweep
    from ocdl.progress import Progress
    if args.nu <= 0:
        raise InputError("--nu must be > 0 for the drift-as-control problem")
    if args.cells is None:
        args.cells = 80 if args.dim == 2 else 800
    if args.steps is None:
        args.steps = 80 if args.dim == 2 else 400
    if args.dim == 2:
        return _control_2d(args)
    if args.plot or args.mean_y is not None:
        raise InputError("--plot and --mean-y need --dim 2")
    phi_fn = compile_expr(args.terminal, ("x",))
    lo, hi = control_domain(phi_fn, args.mean, args.std, args.nu, args.T, args.xmin, args.xmax)
    g = make_grid(lo, hi, args.cells)
    x = g.centres[:, 0]
    Phi = np.broadcast_to(np.asarray(phi_fn(x), dtype=float), x.shape).copy()
    rho0 = gaussian_density(g, args.mean, args.std)
    if args.method == "hopf-cole":
        prog = Progress(args.maxiter if args.g else 1, "hopf-cole", args.quiet)
        res = solve_hopf_cole(g, rho0, Phi, args.nu, args.T, steps=args.steps, g=args.g, maxiter=args.maxiter,
                              tol=args.tol, progress=prog)
        prog.close()
        if not res.success and not args.quiet:
            print(f"ocdl: note: Hopf–Cole fixed point stopped after {res.nit} iterations with residual "
                  f"{res.residual:.2e}", file=sys.stderr)
    else:
        res = solve_sweep(g, rho0, Phi, args.nu, args.T, steps=args.steps, g=args.g, maxiter=args.maxiter,
                          tol=args.tol, quiet=args.quiet)
        if not res.success and not args.quiet:
            print(f"ocdl: note: sweep stopped after {res.nit} iterations with residual {res.residual:.2e}",
                  file=sys.stderr)
    write_csv(args.out, ["x", "rho"], np.column_stack([x, res.rho]))
    if args.json:
        write_json(args.json, {"iterations": res.nit, "residual": res.residual, "cost": res.cost,
                               "method": args.method, "success": res.success, "message": res.message,
                               "nu": args.nu, "g": args.g, "T": args.T, "cells": args.cells, "steps": args.steps})
    return 0


def _control_2d(args):
    """``--dim 2``: Φ(x, y), initial ``N((mean, mean-y), std² I)``; both solvers run (CSV x,y,rho of
    --method; JSON and picture compare them)."""
    from ocdl.expr import compile_expr
    from ocdl.io import write_csv, write_json
    from ocdl.meanfield.control import control_box_2d, solve_hopf_cole, solve_sweep
    if args.g:
        raise InputError("--dim 2 supports --g 0 only (congested Hopf–Cole is 1-D)")
    phi_fn = compile_expr(args.terminal, ("x", "y"))
    m0 = np.array([args.mean, args.mean if args.mean_y is None else args.mean_y])
    g = control_box_2d(phi_fn, m0, args.std, args.nu, args.T, args.cells, args.xmin, args.xmax)
    X = g.centres
    Phi = np.broadcast_to(np.asarray(phi_fn(X[:, 0], X[:, 1]), dtype=float), (g.ncells,)).copy()
    rho0 = np.exp(-0.5 * np.sum((X - m0) ** 2, 1) / args.std ** 2)
    rho0 /= g.mass(rho0)
    t0 = time.perf_counter()
    hc = solve_hopf_cole(g, rho0, Phi, args.nu, args.T, steps=args.steps)
    sw = solve_sweep(g, rho0, Phi, args.nu, args.T, steps=args.steps, maxiter=args.maxiter, tol=args.tol,
                     quiet=args.quiet)
    if not sw.success and not args.quiet:
        print(f"ocdl: note: sweep stopped after {sw.nit} iterations with residual {sw.residual:.2e} "
              f"({sw.message})", file=sys.stderr)
    res = hc if args.method == "hopf-cole" else sw
    write_csv(args.out, ["x", "y", "rho"], np.column_stack([X, res.rho]))
    l1 = float(g.volume * np.sum(np.abs(sw.rho - hc.rho)))
    if args.json:
        write_json(args.json, {"dim": 2, "method": args.method, "cost": res.cost, "residual": res.residual,
                               "iterations": res.nit, "success": res.success, "sweep_cost": sw.cost,
                               "hopf_cole_cost": hc.cost, "sweep_hopf_cole_l1": l1, "sweep_success": sw.success,
                               "sweep_message": sw.message, "wall_time_s": time.perf_counter() - t0,
                               "nu": args.nu, "T": args.T, "cells": args.cells, "steps": args.steps})
    if args.plot:
        from ocdl.meanfield.plots import plot_control_2d
        plot_control_2d(g, rho0, sw, hc, Phi, args.plot)
    if not args.quiet and not args.json:
        print(f"cost sweep {sw.cost:.6g} hopf-cole {hc.cost:.6g}; L1(sweep, hopf-cole) at T = {l1:.2e}")
    return 0


def cmd_nls(args):
    from ocdl.expr import compile_expr
    from ocdl.io import write_json, write_npz
    from ocdl.meanfield import nls
    from ocdl.progress import Progress
    potential = (compile_expr(args.potential, ("x", "y") if args.dim == 2 else ("x",))
                 if args.potential is not None else None)
    if args.psi0 == "soliton" and potential is not None and not args.quiet:
        print("ocdl: note: the soliton is exact only for V = 0", file=sys.stderr)
    steps, dt = nls.time_steps(args.T, args.dt)
    if abs(dt - args.dt) > 1e-12 * args.dt and not args.quiet:
        print(f"ocdl: note: using dt = {dt:.6g} so that T/dt is an integer ({steps} steps)", file=sys.stderr)
    prog = Progress(steps, "nls", args.quiet)
    x, res, out = nls.run_case(args.psi0, args.T, steps, L=args.L, points=args.points, g=args.g, hbar=args.hbar,
                               eta=args.eta, velocity=args.velocity, x0=args.x0, width=args.width,
                               omega=args.omega, potential=potential, progress=prog, dim=args.dim)
    prog.close()
    write_npz(args.out, x=x, psi=res.psi, t=res.t, mass=res.mass, energy=res.energy)
    if args.json:
        write_json(args.json, out)
    return 0


def cmd_langevin(args):
    from ocdl.io import write_json
    from ocdl.meanfield.langevin import DISTANCES, langevin_report, langevin_study
    r = langevin_study(params=int(args.params), gamma=args.gamma, D=args.D, T=args.T, particles=args.particles,
                       steps=args.steps, seed=args.seed, cells=args.cells, weight_decay=args.weight_decay)
    out = langevin_report(r, args.params, args.gamma, args.D, args.T, args.particles, args.steps, args.seed,
                          args.weight_decay)
    if args.json:
        write_json(args.json, out)
    if args.plot:
        from ocdl.meanfield.plots import plot_langevin
        plot_langevin(r, args.plot)
    if not args.json:
        print(" ".join(f"{k}={out[k]:.4g}" for k in DISTANCES))
    return 0


def cmd_train(args):
    from ocdl.optim import tensorboard              # --tensorboard DIR: the run is DIR/meanfield-<method>/
    method = args.method or ("grid" if getattr(args, "grid", None) else "particles")
    with tensorboard.session(args.tensorboard), tensorboard.run(f"meanfield-{method}"):
        return _train(args)


def _train(args):
    from ocdl.data.datasets import spirals
    from ocdl.io import read_labelled, write_json
    from ocdl.meanfield import training as tr
    if args.data == "spirals":
        X, y = spirals(args.points, noise=args.noise, seed=args.seed)
        Xt, yt = spirals(args.points, noise=args.noise, seed=args.seed + 1000)
    elif args.data.endswith(".csv"):
        X, y = read_labelled(args.data)
        Xt, yt = read_labelled(args.test) if args.test else (None, None)
    else:
        from ocdl.errors import unknown_name
        err = unknown_name("data set", args.data, ["spirals"])
        raise InputError(f"{err} — or give a CSV file x1,x2,label")
    if X.shape[1] != 2:
        raise InputError(f"meanfield train needs 2-D inputs (got {X.shape[1]} columns)")
    method = args.method or ("grid" if args.grid is not None else "particles")
    if (method == "grid") != (args.grid is not None) or (args.particles is not None and method != "particles"):
        raise InputError(f"--method {method} does not go with "
                         f"{'--grid' if args.grid is not None else '--particles' if args.particles else 'no --grid'}: "
                         "--grid N is the Eulerian method, --particles P the particle method")
    if method == "grid" and args.grid < 8:
        raise InputError(f"--grid {args.grid} is too coarse; use at least 8 (e.g. --grid 48)")
    if args.iterations is None:
        args.iterations = 300 if method == "grid" else 1500
    particles = args.particles or 1000
    from ocdl.jobs import runcontrol as runctl
    from ocdl.jobs.base import digest
    common.check_checkpoint_flags(args)
    settings = {k: getattr(args, k) for k in ("nu", "particles", "grid", "layers", "T", "iterations", "lr", "alpha",
                                              "substeps", "steps_per_layer", "padding", "seed")}
    settings["data"] = digest(X, y)
    if method == "density":                      # (kept out of the other methods' settings: old checkpoints resume)
        settings.update(method=method, smoothing=args.smoothing)
    try:
        with runctl.RunControl(args, settings) as rc:
            res = tr.train_stochastic_resnet(X, y, method=method, nu=args.nu, layers=args.layers, T=args.T,
                                             particles=particles, grid_cells=args.grid or 64,
                                             alpha=args.alpha, alpha_head=args.alpha, iterations=args.iterations,
                                             lr=args.lr, seed=args.seed, substeps=args.substeps,
                                             steps_per_layer=args.steps_per_layer, padding=args.padding,
                                             smoothing=args.smoothing,
                                             quiet=args.quiet, **rc.options())
    except SolverError as exc:
        last = exc.result.x if getattr(exc, "result", None) is not None else None
        if last is not None and args.checkpoint:       # keep the last good parameters
            from ocdl.io import write_npz
            path = rc.path("last_good.npz")
            write_npz(path, **tr.param_arrays(last))
            raise SolverError(f"{exc}; last good parameters saved to {path}") from None
        if last is not None:
            raise SolverError(f"{exc} (give --checkpoint DIR to keep the last good parameters)") from None
        raise
    out = tr.train_report(res, method, X, y, Xt, yt, nu=args.nu, layers=args.layers, T=args.T,
                          substeps=args.substeps, particles=particles, grid=args.grid, seed=args.seed)
    if args.json:
        write_json(args.json, out)
    if args.plot:
        from ocdl.meanfield.plots import plot_class_densities
        grid, path, clouds = res.grid, res.rho_path, None
        if method == "density":
            from ocdl.meanfield.lagrangian import blob_density_path
            grid, path = blob_density_path(res.x, X, y, args.nu, args.T, args.substeps, args.smoothing or 0.0)
        elif grid is None:                         # particle training: show particle clouds of the trained net
            grid, traj, labels = tr.particle_clouds(res.x, X, y, args.nu, args.T, args.substeps, 4000, args.seed)
            clouds = (traj, labels)
        plot_class_densities(grid, path, args.layers, args.steps_per_layer if method == "grid" else 1, res.x,
                             res.history, args.plot,
                             f"{out['solver']}, ν = {args.nu:g}: class densities through the layers "
                             f"(test accuracy {out['test_accuracy'] or float('nan'):.2f})", particles=clouds)
    if not args.json:
        print(f"train_loss={res.fun:.4g} train_accuracy={out['train_accuracy']:.3f} "
              f"test_accuracy={None if out['test_accuracy'] is None else round(out['test_accuracy'], 3)}")
    return 0


def cmd_limit(args):
    from ocdl.io import write_json
    from ocdl.meanfield.limit import limit_study, limit_table, plot_limit
    if args.max_particles < 400:
        raise InputError(f"--max-particles {args.max_particles} is too small for a slope; use at least 400")
    sizes = [int(p) for p in np.unique(np.round(np.geomspace(100, args.max_particles, 4) / 2) * 2)]
    r = limit_study(sizes=sizes, seeds=args.seeds, nus=tuple(args.nus), nu_particles=args.nu)
    if args.json:
        write_json(args.json, r)
    if args.plot:
        plot_limit(r, args.plot)
    if not args.quiet:
        print(limit_table(r))
    return 0


def cmd_thermo(args):
    from ocdl.io import write_json
    from ocdl.meanfield.thermo.study import ThermoConfig, thermo_study
    cfg = ThermoConfig(**{k: getattr(args, k) for k in ThermoConfig.__dataclass_fields__
                          if getattr(args, k, None) is not None})
    out, extra = thermo_study(cfg, quiet=args.quiet)
    if args.json:
        write_json(args.json, out)
    if args.plot:
        from ocdl.meanfield.thermo.plots import plot_thermo
        plot_thermo(out, extra, args.plot)
    if not args.quiet:
        lz = out["log_Z"]
        print(f"log Z: exact {lz['exact']:.6f}  eq.(7) {lz['gaussian']:.6f}  Laplace {lz['laplace']:.6f}  "
              f"Monte Carlo {lz['monte_carlo']:.6f} ± {lz['monte_carlo_stderr']:.1e}")
        print(f"trained: U {out['U']:.5f} F {out['F']:.5f} S0 {out['S0']:.5f} C {out['C']:.5f} Sx {out['Sx']:.5f}; "
              f"first-law residual {out['first_law_residual']:.2e}; second law "
              f"{'holds' if out['second_law']['holds'] else 'fails'} (S_x rose on "
              f"{out['second_law']['increasing_steps']}/{out['second_law']['steps']} steps, by "
              f"{out['second_law']['total_increase']:.3g} in total)")
        ep = out["entropy_production"]
        print(f"ensemble vs FP L1 {out['ensemble']['histogram_fp_l1']:.4f} (MC level "
              f"{out['ensemble']['mc_expected_l1']:.4f}); stationary L1 {out['stationary_l1']:.4f}; "
              f"entropy production at t = {ep['at_time']:g}: measured {ep['measured']:.5f}, eq. (22) "
              f"{ep['predicted']:.5f}")
    return 0


def cmd_eliminate(args):
    from ocdl.io import write_json
    from ocdl.meanfield.eliminate import EliminateConfig, eliminate, plot_eliminate
    cfg = EliminateConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(args).items()
                             if k in EliminateConfig.__dataclass_fields__ and v is not None})
    out, last = eliminate(cfg, quiet=args.quiet)
    if args.json:
        write_json(args.json, out)
    if args.plot:
        plot_eliminate(out, last, args.plot)
    if not args.quiet:
        for r in out["rows"]:
            print(f"cells {r['cells']:4d}: |θ_read − θ_sweep| {r['control_l2_sweep']:.3e}  "
                  f"|θ_read − θ*| {r['control_l2_closed_form']:.3e}  quantum-Euler residual {r['residual']:.3e} "
                  f"(ħ² = +ν⁴: {r['residual_real_hbar']:.3e})")
    return 0


def _psi0(text):
    """--psi0: a built-in state or a .csv / .npz file (read on the command's grid)."""
    if text.endswith((".csv", ".npz")):
        return text
    return common.choice("initial state", ["soliton", "gaussian", "coherent"])(text)


# Values such as ``--drift -(x-1)`` start with '-': let argparse read any single-dash token other
# than '-h' as a value (all options of these commands are long '--' options).
_VALUE_WITH_DASH = re.compile(r"^-(?!-|h$)")


def _command(sub, *a, **k):
    p = common.add_command(sub, *a, **k)
    p._negative_number_matcher = _VALUE_WITH_DASH
    return p


def register(subparsers):
    top = common.add_command(subparsers, "meanfield", "stochastic ResNets: Fokker–Planck, particles, "
                             "mean-field control, NLS / Madelung, Langevin learning",
                             "ocdl meanfield fokker-planck --drift '-(x-1)' --nu 0.8 --mean -1 --std 0.4 --T 1 "
                             "--out rho.csv")
    sub = top.add_subparsers(dest="meanfield_command", metavar="SUBCOMMAND")

    p = _command(sub, "fokker-planck",
                           "1-D Fokker–Planck ∂ρ/∂t = −∂x(fρ) + (ν²/2)∂xxρ from a Gaussian; CSV x,rho at T",
                           "ocdl meanfield fokker-planck --drift '-(x-1)' --nu 0.8 --mean -1 --std 0.4 --T 1 "
                           "--out rho.csv",
                           cmd_fokker_planck)
    p.add_argument("--drift", required=True, metavar="EXPR", help="drift f(x) (may use t), e.g. '-(x-1)'")
    _fp_common(p)
    p.add_argument("--xmin", type=common.real, help="left wall (default: from a particle probe)")
    p.add_argument("--xmax", type=common.real, help="right wall (default: from a particle probe)")
    p.add_argument("--cells", type=common.positive_int, default=400, help="finite-volume cells (default 400)")
    p.add_argument("--steps", type=common.positive_int, default=200, help="time steps (default 200)")
    p.add_argument("--scheme", type=common.choice("scheme", ["cn", "euler"]), default="cn",
                   help="cn (Crank–Nicolson, 2nd order; default) or euler (backward Euler, 1st order, ρ ≥ 0 exactly)")
    common.add_outputs(p, json=False, plot=False, out="required", seed=False, out_help="CSV x,rho")

    p = _command(sub, "particles", "Euler–Maruyama ensemble of dX = f dt + ν dW; CSV x at T",
                           "ocdl meanfield particles --drift '-(x-1)' --nu 0.8 --mean -1 --std 0.4 --T 1 "
                           "--particles 10000 --seed 0 --out x.csv", cmd_particles)
    p.add_argument("--drift", required=True, metavar="EXPR", help="drift f(x) (may use t)")
    _fp_common(p)
    p.add_argument("--particles", type=common.positive_int, required=True, help="number of particles P")
    p.add_argument("--steps", type=common.positive_int, default=200, help="time steps (default 200)")
    common.add_outputs(p, json=False, plot=False, out="required", seed=True, out_help="CSV x")

    p = _command(sub, "control",
                 "drift-as-control: min ∫ρ|a|²/2 + (g/2)∫ρ² + ∫Φρ(T) s.t. Fokker–Planck; CSV x,rho at T",
                 "ocdl meanfield control --terminal '(x-1.5)**2' --nu 0.6 --mean -1 --std 0.5 --T 1 "
                 "--method hopf-cole --out rho.csv --json control.json", cmd_control)
    p.add_argument("--terminal", required=True, metavar="EXPR", help="terminal cost Φ(x), e.g. '(x-1.5)**2'")
    _fp_common(p)
    p.add_argument("--g", type=common.nonnegative, default=0.0, help="congestion weight g ≥ 0 (default 0)")
    p.add_argument("--method", type=common.choice("method", ["sweep", "hopf-cole"]), default="sweep",
                   help="sweep (FP + HJB policy iteration) or hopf-cole (imaginary-time Schrödinger pair; "
                        "with g > 0 a damped fixed point on ρ)")
    p.add_argument("--dim", type=int, choices=[1, 2], default=1,
                   help="1 (default) or 2: Φ(x, y), both solvers run, --plot draws them")
    p.add_argument("--mean-y", type=common.real, help="--dim 2: second coordinate of the initial mean (default --mean)")
    p.add_argument("--xmin", type=common.real, help="left wall (default: around ρ0 and argmin Φ; --dim 2: both axes)")
    p.add_argument("--xmax", type=common.real, help="right wall")
    p.add_argument("--cells", type=common.positive_int, help="cells (default 800; --dim 2: 80 per axis)")
    p.add_argument("--steps", type=common.positive_int, help="Crank–Nicolson steps (default 400; --dim 2: 80)")
    p.add_argument("--maxiter", type=common.positive_int, default=200,
                   help="sweep / congested Hopf–Cole iterations (default 200)")
    p.add_argument("--tol", type=common.positive, default=1e-9,
                   help="tolerance on the drift change (sweep) or density change (congested Hopf–Cole)")
    common.add_outputs(p, json=True, plot=True, out="required", seed=False, out_help="CSV x,rho (x,y,rho) at T")

    p = _command(sub, "nls", "split-step Fourier NLS iħψ_t = −(ħ²/2)ψ_xx + Vψ + g|ψ|²ψ (periodic); "
                 "NPZ + Madelung residuals",
                 "ocdl meanfield nls --psi0 soliton --eta 1 --velocity 1 --g -1 --T 1 --dt 0.005 "
                 "--out psi.npz --json nls.json", cmd_nls)
    p.add_argument("--psi0", type=_psi0, required=True,
                   help="soliton (bright, needs g < 0), gaussian packet, coherent state of V = ω²x²/2, or a file: "
                        "CSV x,re,im (2-D: x,y,re,im) or .npz with psi (and x) on the command's grid")
    p.add_argument("--eta", type=common.positive, help="soliton inverse width η (default 1)")
    p.add_argument("--velocity", type=common.real, default=0.0, help="group velocity v (k = v/ħ; default 0)")
    p.add_argument("--x0", type=common.real, default=0.0, help="initial centre (default 0)")
    p.add_argument("--width", type=common.positive, help="gaussian: std of |ψ|² (default 1)")
    p.add_argument("--omega", type=common.positive, default=1.0, help="coherent: trap frequency ω (default 1)")
    p.add_argument("--potential", metavar="EXPR", help="V(x) (default 0; coherent: ω²x²/2)")
    p.add_argument("--g", type=common.real, help="nonlinearity g (default −1 for soliton, else 0)")
    p.add_argument("--hbar", type=common.positive, default=1.0, help="ħ (default 1)")
    p.add_argument("--dim", type=int, choices=[1, 2], default=1,
                   help="1 (default) or 2 (periodic square box, points² grid; --potential may use x and y)")
    p.add_argument("--T", type=common.positive, required=True, help="final time")
    p.add_argument("--L", type=common.positive, default=40.0, help="periodic box length, x ∈ [−L/2, L/2) (default 40)")
    p.add_argument("--points", type=common.positive_int, default=512, help="grid points (default 512)")
    p.add_argument("--dt", type=common.positive, default=0.005, help="time step (default 0.005)")
    common.add_outputs(p, json=True, plot=False, out="required", seed=False,
                       out_help="NPZ with x, psi (complex, at T), t, mass, energy")

    p = _command(sub, "langevin", "noisy learning: ensemble of one-neuron nets trained by dq = −γ∇L dt + √(2D) dW "
                 "vs the Fokker–Planck law of the parameters and exp(−γL/D)",
                 "ocdl meanfield langevin --params 2 --gamma 5 --D 0.1 --T 6 --particles 5000 "
                 "--plot langevin.png --json langevin.json", cmd_langevin)
    p.add_argument("--params", type=common.choice("number of trainable variables", ["1", "2"]), default="1",
                   help="1 (w) or 2 (w, b) trainable variables (default 1)")
    p.add_argument("--gamma", type=common.positive, default=5.0, help="learning rate γ (default 5)")
    p.add_argument("--D", type=common.positive, default=0.1, help="noise strength D (default 0.1)")
    p.add_argument("--T", type=common.positive, default=6.0, help="training time (default 6)")
    p.add_argument("--particles", type=common.positive_int, default=5000, help="ensemble size (default 5000)")
    p.add_argument("--steps", type=common.positive_int, default=600, help="Euler–Maruyama steps (default 600)")
    p.add_argument("--cells", type=common.positive_int, help="FP cells per axis (default 400 in 1-D, 70 in 2-D)")
    p.add_argument("--weight-decay", type=common.positive, default=0.05, help="λ in L (default 0.05)")
    common.add_outputs(p, json=True, plot=True, out=False, seed=True)
    p.set_defaults(_langevin=True)

    p = _command(sub, "thermo", "learning thermodynamics (Vanchurin §2–6): Z of the hidden variables by quadrature, "
                 "Monte Carlo and the Gaussian approximation; U, F, S0, C, Sx along training; first and second "
                 "laws; Langevin ensemble vs Fokker–Planck (20) and eq. (22); the action's equations",
                 "ocdl meanfield thermo --beta 2 --json thermo.json --plot thermo.png", cmd_thermo)
    p.add_argument("--beta", type=common.positive, help="inverse temperature β > 0 of the hidden variables (default 2)")
    p.add_argument("--neurons", type=common.positive_int, help="neurons of the quadrature network, ≤ 3 (default 2)")
    p.add_argument("--mc-neurons", type=common.positive_int, help="neurons of the Monte-Carlo network (default 6)")
    p.add_argument("--mass", type=common.real, help="mass term m < 1 in V(x) = −(m/2)x² (default 0.2)")
    p.add_argument("--points", type=common.positive_int, help="quadrature nodes per axis (default 101)")
    p.add_argument("--samples", type=common.positive_int, help="Monte-Carlo samples (default 200000)")
    p.add_argument("--objective", type=common.choice("objective", ["free-energy", "loss"]),
                   help="training: gradient descent on F (free-energy, default) or on U (loss)")
    p.add_argument("--iterations", type=common.positive_int, help="gradient-descent iterations (default 40)")
    p.add_argument("--gamma", type=common.real, help="γ of eq. (20), drift γ∂F/∂q (default 1; < 0: descent on F)")
    p.add_argument("--D", type=common.nonnegative, help="noise D ≥ 0 of eq. (20) (default 0.25)")
    p.add_argument("--T", type=common.positive, help="ensemble time (default 8)")
    p.add_argument("--particles", type=common.positive_int, help="ensemble size (default 20000)")
    p.add_argument("--steps", type=common.positive_int, help="time steps, a multiple of 8 (default 2000)")
    p.add_argument("--cells", type=common.positive_int, help="Fokker–Planck cells on the circle (default 128)")
    common.add_outputs(p, json=True, plot=True, out=False, seed=True)

    p = _command(sub, "eliminate", "weights read off the Schrödinger form: solve the imaginary-time Schrödinger "
                 "(Hopf–Cole) pair of the LQ drift-as-control problem, read θ = ∇Σ + (ν²/2)∇log ρ from phase and "
                 "amplitude, compare with the sweep, the closed form and a density-trained ResNet",
                 "ocdl meanfield eliminate --json elim.json --plot elim.png", cmd_eliminate)
    p.add_argument("--dim", type=int, choices=[1, 2], help="1 (default) or 2")
    p.add_argument("--nu", type=common.positive, help="noise ν > 0 (default 0.6)")
    p.add_argument("--T", type=common.positive, help="horizon (default 1)")
    p.add_argument("--c", type=common.positive, help="Φ = (c/2)|x − z|² (default 2)")
    p.add_argument("--std", type=common.positive, help="std of the Gaussian ρ0 (default 0.5)")
    p.add_argument("--cells", type=common.positive_int, nargs="+",
                   help="refinement levels, cells per axis (default 100 200 400; 2-D 40 80); steps = cells/2")
    p.add_argument("--density-layers", type=common.positive_int, help="layers of the density-trained ResNet (40)")
    p.add_argument("--density-rate", action="store_true", default=None,
                   help="also train 10/20/40/80 layers and report the rate in the layer count")
    common.add_outputs(p, json=True, plot=True, out=False, seed=False)

    p = _command(sub, "limit", "the mean-field limit measured: particles → density as P → ∞ (slope), stochastic "
                 "optimum → deterministic PMP optimum as ν → 0 (rate), stationarity residuals; table, JSON, picture",
                 "ocdl meanfield limit --json limit.json --plot limit.png", cmd_limit)
    p.add_argument("--nu", type=common.positive, default=0.3, help="noise of the P → ∞ study (default 0.3)")
    p.add_argument("--max-particles", type=common.positive_int, default=100000,
                   help="largest P; four sizes from 100 on a log scale (default 100000)")
    p.add_argument("--seeds", type=common.positive_int, default=6, help="seeds per P (default 6)")
    p.add_argument("--nus", type=common.positive, nargs="+", default=[0.4, 0.2, 0.1],
                   help="noise levels of the ν → 0 study (default 0.4 0.2 0.1)")
    common.add_outputs(p, json=True, plot=True, out=False, seed=False)

    p = _command(sub, "train", "train a stochastic ResNet dX = (K tanh X + b) dt + ν dW by particle PMP "
                 "(--particles), the Lagrangian density method (--method density) or the Eulerian "
                 "Fokker–Planck grid (--grid)",
                 ["ocdl meanfield train --data spirals --nu 0.05 --particles 1000 --json mf.json --plot mf.png",
                  "ocdl meanfield train --data spirals --nu 0.05 --method density --json mfd.json --plot mfd.png",
                  "ocdl meanfield train --data spirals --nu 0.05 --grid 64 --json mf.json --plot mf.png"], cmd_train)
    common.add_tensorboard(p)
    p.add_argument("--data", default="spirals", help="spirals (default) or a CSV x1,x2,label (labels 0/1)")
    p.add_argument("--test", help="test CSV (with a CSV --data)")
    p.add_argument("--nu", type=common.nonnegative, required=True, help="noise level ν ≥ 0")
    p.add_argument("--method", type=common.choice("method", ["particles", "density", "grid"]),
                   help="particles (default; particle PMP), density (Lagrangian Gaussian blobs carried by the "
                        "flow, exact adjoint) or grid (Eulerian Fokker–Planck on --grid N cells)")
    p.add_argument("--smoothing", type=common.nonnegative,
                   help="initial density = data smoothed by a Gaussian of this width (density: default 0; "
                        "grid: default 1.5 cells)")
    grp = p.add_mutually_exclusive_group()
    grp.add_argument("--particles", type=common.positive_int,
                     help="particle PMP with P particles per iteration (default, P = 1000)")
    grp.add_argument("--grid", type=common.positive_int, help="density method on an N×N finite-volume grid")
    p.add_argument("--layers", type=common.positive_int, default=10, help="layers N (default 10)")
    p.add_argument("--T", type=common.positive, default=2.0, help="depth T (default 2)")
    p.add_argument("--iterations", type=common.positive_int,
                   help="Adam iterations (default 1500; 300 with --grid)")
    p.add_argument("--lr", type=common.positive, default=0.05, help="Adam learning rate (default 0.05)")
    p.add_argument("--alpha", type=common.nonnegative, default=1e-3, help="weight decay α (layers and head)")
    p.add_argument("--points", type=common.positive_int, default=200, help="spirals: points per class")
    p.add_argument("--noise", type=common.nonnegative, default=0.02, help="spirals: data noise")
    p.add_argument("--substeps", type=common.positive_int, default=1,
                   help="Euler(–Maruyama) sub-steps per layer (particles and density)")
    p.add_argument("--steps-per-layer", type=common.positive_int, default=1,
                   help="--grid: implicit Fokker–Planck steps per layer (more = less numerical diffusion, slower)")
    p.add_argument("--padding", type=common.nonnegative, default=0.75,
                   help="--grid: domain = data box widened by this fraction of its size on each side")
    common.add_checkpoint_flags(p, every=100)
    common.add_outputs(p, json=True, plot=True, out=False, seed=True)
    return top
