"""Newton / PMP against the paper's Adam on one data set, over seeds and initialisations.

For every (solver, start, seed) run: the metric error over ``η ≥ 0.2`` after every iteration
(a driver callback, timed by the solve's own clock), the time and iteration at which it first
falls below each target (5 % and 10 %), the final error and the held-out accuracy. Starts:
``random`` — the paper's random metric ``h_k ~ N(mean, spread²)`` with the run's seed;
``constant`` — the best constant metric (a 1-D scan of the loss).
"""
import time

import numpy as np

from ocdl.holography import learn
from ocdl.holography.run import best_constant

TARGETS = (0.05, 0.10)


def run_one(problem, solver, h0, h_true, test=None, iterations=None, lr=0.05):
    """One solve with the metric-error trace; returns a JSON-ready record."""
    trace = []
    t0 = time.perf_counter()
    N = problem.layers.N

    def callback(it, x, f):
        trace.append((it, time.perf_counter() - t0,
                      learn.metric_error(np.asarray(x)[:N], h_true, problem.layers.eta)))
        return False

    res = learn.solve(problem, solver, problem.x0(h0), iterations, lr, callback=callback)
    wall = time.perf_counter() - t0
    final = learn.metric_error(np.asarray(res.x)[:N], h_true, problem.layers.eta)
    rec = {"solver": solver, "final_metric_error": final, "wall_time_s": wall, "iterations": int(res.nit),
           "train_accuracy": problem.accuracy(res.x), "success": bool(res.success), "message": res.message,
           "trace": [{"iteration": i, "time_s": t, "metric_error": e}
                     for i, t, e in trace[:: max(1, len(trace) // 200)]]}
    if test is not None:
        rec["test_accuracy"] = problem.accuracy(res.x, *test)
    for target in TARGETS:
        hit = next(((i, t) for i, t, e in trace if e <= target), None)
        rec[f"time_to_{target:g}"] = None if hit is None else hit[1]
        rec[f"iterations_to_{target:g}"] = None if hit is None else hit[0]
    return rec


def compare(make_problem, h_true, solvers=("newton", "pmp-adam", "adam"), seeds=(0, 1, 2),
            starts=("random", "constant"), test=None, iterations=None, lr=0.05, mean=3.0, spread=1.0, quiet=True):
    """All (solver, start, seed) runs. ``make_problem(solver)`` builds the problem (newton solves
    the sum-of-squares form). ``random`` starts draw ``h_k ~ N(mean, spread²)``."""
    from ocdl.progress import log
    runs = []
    for start in starts:
        for seed in (seeds if start == "random" else seeds[:1]):
            for solver in solvers:
                problem = make_problem(solver)
                if start == "random":
                    h0 = learn.initial_h(problem.layers, "random", mean, seed, spread)
                else:
                    h0 = np.full(problem.layers.N, best_constant(problem))
                rec = run_one(problem, solver, h0, h_true, test, (iterations or {}).get(solver), lr)
                rec.update(start=start, seed=seed, h_initial=np.asarray(h0).tolist())
                runs.append(rec)
                log(f"{solver:9s} {start:8s} seed {seed}: metric error {rec['final_metric_error']:.2%}, "
                    f"{rec['wall_time_s']:.1f}s, time to 5%: {rec['time_to_0.05']}", quiet)
    return runs


def table(runs):
    """Markdown table: one row per (solver, start) with median/min/max over seeds."""
    rows = ["| solver | start | runs | final metric error (median, min–max) | time to 10 % (s, median) | "
            "time to 5 % | wall time (s, median) | held-out accuracy (min) |", "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["solver"], r["start"]) for r in runs}, key=lambda k: (k[1], k[0]))
    for solver, start in keys:
        rs = [r for r in runs if r["solver"] == solver and r["start"] == start]
        err = np.array([r["final_metric_error"] for r in rs])
        t10 = [r["time_to_0.1"] for r in rs if r["time_to_0.1"] is not None]
        t5 = [r["time_to_0.05"] for r in rs if r["time_to_0.05"] is not None]
        acc = [r.get("test_accuracy", r["train_accuracy"]) for r in rs]
        rows.append(f"| {solver} | {start} | {len(rs)} | {np.median(err):.1%} ({err.min():.1%}–{err.max():.1%}) | "
                    f"{(f'{np.median(t10):.1f} ({len(t10)}/{len(rs)})') if t10 else f'never (0/{len(rs)})'} | "
                    f"{(f'{np.median(t5):.1f} ({len(t5)}/{len(rs)})') if t5 else f'never (0/{len(rs)})'} | "
                    f"{np.median([r['wall_time_s'] for r in rs]):.1f} | {min(acc):.1%} |")
    return "\n".join(rows)
