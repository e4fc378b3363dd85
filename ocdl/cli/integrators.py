"""``ocdl integrators``: every method of the ``integrators`` table on one Hamiltonian problem.

For each method: the measured order of convergence (log–log slope of the error against the exact
solution over one study of doubling step counts, :func:`integrators.study.measured_order`), the
maximum energy error ``max_n |H(q_n, p_n) − H(q_0, p_0)|`` over a long run of ``--steps`` steps
covering ``--periods`` periods, and that run's wall time. Prints a table on stdout, writes
``{"methods": {name: {"order", "energy_error", "time_s", ...}}, ...}`` with ``--json`` and a
log-scale plot of the energy error against time with ``--plot``.

``--stage-solver auto|fixed-point|newton`` chooses how implicit_midpoint/gauss2/gauss3 solve their
stages (:mod:`integrators.newton`). ``--stiff`` runs the stiff study instead
(:func:`integrators.stiff.stiff_study`: Van der Pol with ε = 1e-6 on its slow manifold, Newton
stages against the largest fixed-point step, errors against scipy's Radau).
"""
import math
import sys

import numpy as np

import integrators
from integrators import problems, study
from ocdl.cli import common
from ocdl.errors import InputError, SolverError
from ocdl.progress import Progress, log


def register(sub):
    p = common.add_command(
        sub, "integrators", "compare the one-step methods of the integrators package on a Hamiltonian problem",
        ["ocdl integrators --problem kepler --json integrators.json --plot integrators.png",
         "ocdl integrators --problem pendulum --steps 20000 --periods 200 --methods verlet,rk4,gauss2"],
        func=run)
    p.add_argument("--problem", type=common.choice("problem", list(problems.PROBLEMS)), default="kepler",
                   help="kepler (e = 0.5, default), pendulum (amplitude 97°) or oscillator")
    p.add_argument("--steps", type=common.positive_int, default=1000,
                   help="steps of the long run whose energy error is reported (default 1000)")
    p.add_argument("--periods", type=common.positive, default=10.0,
                   help="length of the long run in periods of the orbit (default 10; h = periods·period/steps)")
    p.add_argument("--methods", type=common.choice_list("method", integrators.available()),
                   default=None, help="comma-separated subset of methods (default: all)")
    p.add_argument("--stage-solver", type=common.choice("stage solver", ["auto", "fixed-point", "newton"]),
                   default="auto", help="implicit Runge–Kutta stages: auto (default: fixed point, Newton where it "
                                        "fails), fixed-point or newton")
    p.add_argument("--stiff", action="store_true",
                   help="the stiff study instead: Van der Pol (eps = 1e-6) with Newton stages vs scipy Radau, for "
                        "the implicit Runge–Kutta methods among --methods (default gauss2, gauss3, implicit_midpoint)")
    common.add_outputs(p, json=True, plot=True, seed=False)
    p.add_argument("--seed", type=common.seed_int, default=0,
                   help="accepted for uniformity with the other commands; these runs are deterministic")
    return p


def run(args):
    if args.stiff:
        return run_stiff(args)
    problem = problems.get_problem(args.problem)
    methods = args.methods or integrators.available()
    steps, periods = args.steps, args.periods
    if steps < 2 * periods:
        raise InputError(f"--steps {steps} is too few for --periods {periods:g}: give at least 2 steps per period "
                         f"(e.g. --steps {int(math.ceil(100 * periods))})")
    log(f"ocdl integrators: {problem.description}; {steps} steps over {periods:g} periods "
        f"(h = {periods * problem.period / steps:.4g})", args.quiet)
    bar = Progress(len(methods), "integrators", args.quiet)
    results, runs = {}, {}
    for i, name in enumerate(methods):
        bar.update(i, force=True, method=name)
        # the problems are separable (H = T(p) + V(q)): the splitting methods run explicitly
        order = study.measured_order(name, problem, separable=True, stage_solver=args.stage_solver)
        entry = {"order": order.order, "classical_order": integrators.order(name),
                 "order_steps": order.steps, "order_errors": order.errors}
        try:
            r = study.energy_run(name, problem, steps, periods, separable=True, stage_solver=args.stage_solver)
        except integrators.IntegratorError as exc:  # one method failing is a result, not a crash
            entry.update(energy_error=None, time_s=None, invariant_error=None, error=str(exc))
            log(f"ocdl integrators: {name} failed: {exc}", args.quiet)
        else:
            runs[name] = r
            entry.update(energy_error=float(r.energy_error.max()), time_s=r.time_s,
                         invariant_error=None if r.invariant_error is None else float(r.invariant_error.max()))
        results[name] = entry
    bar.close()
    if not runs:
        raise SolverError(f"every method failed on {problem.name} with {steps} steps over {periods:g} periods; "
                          "use more steps")
    _print_table(problem, results, sys.stdout)
    out = {"problem": problem.name, "description": problem.description, "steps": steps, "periods": periods,
           "h": periods * problem.period / steps, "methods": results}
    if args.json:
        from ocdl.io import write_json
        write_json(args.json, out)
        log(f"wrote {args.json}", args.quiet)
    if args.plot:
        _plot(problem, runs, results, args.plot, steps, periods)
        log(f"wrote {args.plot}", args.quiet)
    return 0


STIFF_METHODS = ("gauss2", "gauss3", "implicit_midpoint")


def run_stiff(args):
    from integrators.stiff import stiff_study
    methods = [m for m in (args.methods or STIFF_METHODS) if m in STIFF_METHODS]
    if not methods:
        raise InputError(f"--stiff studies the implicit Runge–Kutta methods ({', '.join(STIFF_METHODS)}); "
                         f"--methods names none of them")
    out = {}
    for name in methods:
        r = out[name] = stiff_study(name)
        print(f"{name}: {r['problem']}; largest fixed-point step {r['fixed_point_max_step']:.3g}")
        print(f"  {'steps':>6} {'h':>9} {'h/h_fp':>9} {'error vs Radau':>15} {'time [s]':>9}")
        for row in r["runs"]:
            err = f"{row['error_vs_radau']:15.3e}" if row["converged"] else f"{'failed':>15}"
            print(f"  {row['steps']:6d} {row['h']:9.3g} {row['h_over_fixed_point']:9.3g} {err} {row['time_s']:9.3f}")
    if args.json:
        from ocdl.io import write_json
        write_json(args.json, {"stiff": out})
        log(f"wrote {args.json}", args.quiet)
    if args.plot:
        from ocdl.plotting import plt, save_figure
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for name, r in out.items():
            ok = [row for row in r["runs"] if row["converged"]]
            ax.loglog([row["h"] for row in ok], [row["error_vs_radau"] for row in ok], "o-",
                      label=f"{name}, Newton stages")
            ax.axvline(r["fixed_point_max_step"], ls=":", color=ax.lines[-1].get_color(), lw=1)
        ax.set_xlabel("step h (dotted: largest step fixed-point stages converge)")
        ax.set_ylabel("max |y(0.5) − y_Radau(0.5)|")
        ax.set_title("Van der Pol, eps = 1e-6, slow manifold: Newton stages vs scipy Radau", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
        save_figure(fig, args.plot)
        log(f"wrote {args.plot}", args.quiet)
    return 0


def _print_table(problem, results, fh):
    inv = "angular momentum" if problem.name == "kepler" else None
    head = f"{'method':<20} {'order':>6} {'(classical)':>11} {'max |ΔH|':>10} {'time [s]':>9}"
    if inv:
        head += f" {'max |ΔL|':>10}"
    print(head, file=fh)
    for name, r in results.items():
        if r["energy_error"] is None:
            print(f"{name:<20} {r['order']:6.2f} {r['classical_order']:>11d}     failed: {r['error']}", file=fh)
            continue
        line = (f"{name:<20} {r['order']:6.2f} {r['classical_order']:>11d} {r['energy_error']:10.2e} "
                f"{r['time_s']:9.3f}")
        if inv:
            line += f" {r['invariant_error']:10.2e}"
        print(line, file=fh)


def _plot(problem, runs, results, path, steps, periods):
    from ocdl.plotting import plt, save_figure
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1.6, 1]})
    colors = plt.get_cmap("tab20").colors
    tiny = 1e-17  # |ΔH| is exactly 0 at t = 0; keep the log axis finite
    for i, (name, r) in enumerate(runs.items()):
        m = integrators.get_method(name)
        style = "-" if m.symplectic else "--"
        stride = max(1, len(r.t) // 4000)
        ax.semilogy(r.t[::stride] / problem.period, np.maximum(r.energy_error[::stride], tiny), style,
                    color=colors[i % 20], lw=0.9,
                    label=f"{name} (order {m.order}, measured {results[name]['order']:.2f})")
        o = results[name]
        if len(o["order_steps"]) >= 2:
            ax2.loglog(np.array(o["order_steps"], dtype=float), o["order_errors"], "o" + style, color=colors[i % 20],
                       ms=3, lw=0.9)
    ax.set_xlabel("t / period")
    ax.set_ylabel("|H(t) − H(0)|")
    ax.set_title(f"energy error: {problem.description}, {steps} steps over {periods:g} periods\n"
                 "solid: symplectic (bounded), dashed: not symplectic (drifts)")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_ylim(bottom=1e-16)
    ax2.set_xlabel("steps per 0.7 period")
    ax2.set_ylabel("error at t = 0.7 period")
    ax2.set_title("convergence: measured order (slope)")
    ax2.grid(True, which="major", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.12))
    save_figure(fig, path)
