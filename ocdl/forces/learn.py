"""High-level entry points: build a problem from data, solve it, and summarise (JSON-ready).

``learn_table(problem, solver, lam, ...)`` serves ``drag`` and ``position``; the oscillator goes
through :func:`ocdl.forces.oscillator.solve_oscillator`. The summary holds the keys the command
line writes: ``problem, solver, integrator, final_loss, iterations, wall_time_s, history`` and,
with a truth expression, ``rel_l2_error`` over the data-covered range.
"""
import time

import numpy as np

from ocdl.forces.solvers import choose_lambda, solve

MAX_HISTORY = 400


def thin_history(history, keep=MAX_HISTORY):
    """At most ``keep`` entries, always including the first and the last."""
    if len(history) <= keep:
        return list(history)
    idx = np.unique(np.r_[np.linspace(0, len(history) - 1, keep).astype(int), len(history) - 1])
    return [history[i] for i in idx]


def rel_l2(learned, true):
    den = np.linalg.norm(true)
    return float(np.linalg.norm(learned - true) / (den if den > 0 else 1.0))


def covered_range(problem, theta):
    """The range where ``F`` is identifiable: speeds between ``v0`` and ``vT`` (drag, exact: 1-D
    trajectories are monotone) / positions visited by the positives' fitted trajectories
    (position), clipped to the table."""
    if problem.name == "position":
        lo, hi = problem.visited_range(theta)
        problem.covered = (max(lo, problem.grid.lo), min(hi, problem.grid.hi))
    return problem.covered


def learn_table(problem, solver="newton", lam=1e-6, iterations=None, lr=0.5, truth=None, quiet=True,
                continuation=True, stages=None, init="zero", seed=0):
    """Solve for the force table; ``lam='auto'`` applies the λ rule. ``continuation`` first solves
    with larger λ (1e-1, 1e-3, 1e-5 down to λ) and warm-starts from each (newton / pmp-lbfgs).
    ``stages(name)`` (optional, e.g. :meth:`ocdl.jobs.runcontrol.RunControl.stage`) gives every solve of
    the run — named ``sweep-1e-03``, ``path-1e-01``, ``final`` — its checkpoint options (``state0``,
    ``checkpoint``, ``checkpoint_every``, ``should_stop``); a finished stage is restored, not re-run.
    ``init``: the starting table, ``zero`` or ``random`` (uniform, as the paper's Fig. 5; drawn with
    ``seed``; see :meth:`~ocdl.forces.problems._TableProblem.initial_table`).
    Returns ``(result, summary)``; ``iterations`` in the summary counts the whole path."""
    t0 = time.perf_counter()
    sweep = None
    stage = stages or (lambda name: {})
    start = problem.initial_table(init, seed)
    if lam == "auto":
        lam, sweep = choose_lambda(problem, solver, quiet=quiet, iterations=iterations, lr=lr, stages=stages,
                                   theta0=start)
    theta0, path = start, []
    if sweep is not None:   # warm start from the best λ's fit on 4/5 of the data
        theta0 = next(s["table"] for s in sweep if s["lambda"] == lam)
    elif continuation and solver in ("newton", "pmp-lbfgs"):
        # globalisation: warm starts down a λ path 1e-1, 1e-3, ... > λ (a stiff table first)
        for mu in (1e-1, 1e-3, 1e-5):
            if mu > 10 * lam:
                r = solve(problem, solver, mu, theta0=theta0, iterations=iterations, quiet=quiet, label=f"λ={mu:.0e}",
                          **stage(f"path-{mu:.0e}"))
                theta0 = r.x
                path.append({"lambda": mu, "iterations": r.nit, "final_loss": r.fun, "result": r})
    res = solve(problem, solver, lam, theta0=theta0, iterations=iterations, lr=lr, quiet=quiet, **stage("final"))
    if path:
        # one history / snapshot list over the whole λ path (iterations and times offset)
        hist, snaps, it0, tt0 = [], [], 0, 0.0
        for q, r in [(q, q.pop("result")) for q in path] + [(None, res)]:
            lam_r = lam if q is None else q["lambda"]
            hist += [dict(h, iteration=h["iteration"] + it0, time_s=h["time_s"] + tt0, **{"lambda": lam_r})
                     for h in r.history]
            snaps += [(it + it0, th) for it, th in r.get("snapshots", [])]
            it0, tt0 = it0 + r.nit, tt0 + r.wall_time_s
        res.history, res.snapshots, res.nit = hist, snaps, it0
    wall = time.perf_counter() - t0
    lo, hi = covered_range(problem, res.x)
    nodes, prof = problem.profile(res.x)
    summary = {
        "problem": problem.name, "solver": solver, "integrator": problem.method,
        "final_loss": res.fun, "data_loss": res.data_loss, "iterations": res.nit,
        "wall_time_s": wall, "solve_time_s": res.wall_time_s, "success": res.success, "message": res.message,
        "lambda": lam, "steps": problem.steps, "T": problem.T, "grid_step": problem.grid.step,
        "grid": [problem.grid.lo, problem.grid.hi, problem.grid.size], "n_samples": problem.n,
        "covered_range": [lo, hi], "profile": {problem.variable: nodes, "F": prof}, "init": init,
        "history": thin_history(res.history),
    }
    if problem.name == "position":
        summary["kind_accuracy"] = problem.kind_accuracy(res.x)
    if "casadi_build_s" in res:
        summary["casadi_build_s"] = res.casadi_build_s
    if path:
        summary["continuation"] = path
    if sweep is not None:
        summary["lambda_sweep"] = [{k: v for k, v in s.items() if k != "table"} for s in sweep]
        summary["lambda_rule"] = "smallest held-out data error (every 5th sample by input held out), refit on all"
    if truth is not None:
        true = np.broadcast_to(truth(nodes), nodes.shape).astype(float)
        summary["rel_l2_error"] = rel_l2(prof, true)
        summary["snapshot_rel_l2_error"] = [
            {"iteration": it, "rel_l2_error": rel_l2(problem.profile(th)[1], true)}
            for it, th in res.get("snapshots", [])]
    return res, summary


def build_problem(name, data, T, steps, integrator, grid_step, **kw):
    """The ``drag`` / ``position`` problem from data columns (``v0, vT`` / ``x0, v0, kind, vT``);
    ``kw``: drag ``g, vmax, c0``; position ``target, eps, xmin, xmax, kind_scale, c1, c2``."""
    from ocdl.forces.problems import DragProblem, PositionProblem
    if name == "drag":
        return DragProblem(data["v0"], data["vT"], T, kw["g"], kw.get("vmax"), grid_step, steps, integrator,
                           kw.get("c0", 1.0))
    return PositionProblem(data["x0"], data["v0"], data["kind"], data["vT"], T, kw["target"], kw["eps"],
                           kw.get("xmin"), kw.get("xmax"), grid_step, steps, integrator, kw.get("kind_scale", 0.2),
                           kw.get("c1", 1.0), kw.get("c2", 1.0))


def write_profile(path, problem, table):
    """The table on the data-covered range as a CSV ``(variable, F)``."""
    from ocdl.io import write_csv
    nodes, prof = problem.profile(table)
    write_csv(path, [problem.variable, "F"], np.stack([nodes, prof], 1))


def describe(summary):
    """The one-line report of a finished ``learn_table`` run."""
    msg = (f"{summary['problem']}: {summary['solver']} ({summary['integrator']}) final loss "
           f"{summary['final_loss']:.3e} after {summary['iterations']} iterations, {summary['wall_time_s']:.2f}s")
    if "rel_l2_error" in summary:
        lo, hi = summary["covered_range"]
        var = "v" if summary["problem"] == "drag" else "x"
        msg += f"; rel. L2 error {summary['rel_l2_error']:.3%} on {var} ∈ [{lo:.3g}, {hi:.3g}]"
    if "kind_accuracy" in summary:
        msg += f"; kinds {summary['kind_accuracy']:.1%} right"
    return msg


def plot_title(problem, solver, summary):
    title = f"{problem.name}: {solver}, {problem.method}, N={problem.steps}, λ={summary['lambda']:g}"
    if "rel_l2_error" in summary:
        title += f", rel. L2 error {summary['rel_l2_error']:.2%}"
    return title
