"""``ocdl bench train``: time-to-target of the training solvers over a few seeds.

For every (solver, seed), ``ocdl.solvers.train`` runs on the same data and settings (the runs
``ocdl compare`` makes); the time-to-target is the ``time_s`` of the first history entry with
``loss ≤ target`` (``None`` if never reached). The per-solver summary gives the median over the
seeds that reached the target and how many did.
"""
import time

import numpy as np

from ocdl.errors import InputError


def time_to_target(history, target):
    """``(time_s, iteration)`` of the first history entry with loss ≤ target, else ``(None, None)``."""
    for h in history:
        loss = h.get("loss")
        if loss is not None and np.isfinite(loss) and loss <= target:
            return float(h["time_s"]), int(h["iteration"])
    return None, None


def run_train_bench(solvers, seeds, target, data="spirals", field="outer", integrator="euler", layers=20,
                    T=5.0, alpha=1e-3, iterations=None, device="cpu", train_fn=None, load_fn=None,
                    quiet=False):
    """Run every (solver, seed); return ``{"runs": [...], "summary": [...]}``."""
    from ocdl.progress import Progress
    if not target > 0:
        raise InputError(f"--target must be > 0 (got {target})")
    if train_fn is None:
        try:
            from ocdl.solvers import SOLVERS
            from ocdl.solvers import train as train_fn
        except ImportError:
            raise InputError("ocdl bench train needs ocdl.solvers (the solvers work is not in this tree yet)") \
                from None
        for name in solvers:
            if name not in SOLVERS:
                from ocdl.errors import unknown_name
                raise unknown_name("solver", name, SOLVERS)
    if not solvers or not seeds:
        raise InputError("need at least one solver and one seed")
    if load_fn is None:
        from ocdl.bench.sweep import load_data as load_fn
    runs = []
    bar = Progress(len(solvers) * len(seeds), "bench train", quiet)
    for seed in seeds:
        X, y = load_fn(data, seed, {})
        for solver in solvers:
            bar.update(len(runs), force=True, solver=solver, seed=seed)
            t0 = time.perf_counter()
            res = train_fn(X, y, solver=solver, field=field, integrator=integrator, layers=layers, T=T,
                           alpha=alpha, iterations=iterations, seed=seed, quiet=True, device=device)
            wall = time.perf_counter() - t0
            tt, it = time_to_target(res.history, target)
            runs.append({"solver": solver, "seed": seed, "target": target, "time_to_target_s": tt,
                         "iterations_to_target": it, "reached": tt is not None, "final_loss": float(res.fun),
                         "iterations": int(res.nit), "wall_time_s": wall, "success": bool(res.success),
                         "message": str(res.message)})
    bar.update(len(runs), force=True)
    bar.close()
    summary = []
    for solver in solvers:
        rs = [r for r in runs if r["solver"] == solver]
        times = [r["time_to_target_s"] for r in rs if r["reached"]]
        summary.append({"solver": solver, "reached": len(times), "runs": len(rs),
                        "median_time_to_target_s": float(np.median(times)) if times else None,
                        "median_final_loss": float(np.median([r["final_loss"] for r in rs]))})
    return {"runs": runs, "summary": summary,
            "settings": {"data": data, "field": field, "integrator": integrator, "layers": layers, "T": T,
                         "alpha": alpha, "iterations": iterations, "target": target, "seeds": list(seeds),
                         "solvers": list(solvers), "device": device}}


def plot_train_bench(result, path):
    """Time-to-target per solver (one dot per seed, bar = median)."""
    from ocdl.plotting import plt, save_figure
    summary = result["summary"]
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(summary), 4))
    for i, s in enumerate(summary):
        ts = [r["time_to_target_s"] for r in result["runs"] if r["solver"] == s["solver"] and r["reached"]]
        if s["median_time_to_target_s"] is not None:
            ax.bar(i, s["median_time_to_target_s"], color="C%d" % i, alpha=0.4)
        ax.plot([i] * len(ts), ts, "o", color="C%d" % i)
        ax.text(i, 0, f"{s['reached']}/{s['runs']}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(summary)), [s["solver"] for s in summary], rotation=30)
    ax.set_ylabel("time to target loss (s)")
    ax.set_title(f"time to J ≤ {result['settings']['target']:g} (dots: seeds; bar: median; n reached/runs)",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
