"""``ocdl bench train``: time-to-target of the training solvers over a few seeds.

For every seed, ``ocdl compare`` (``ocdl.solvers.compare.compare``) runs the solvers on that
seed's data and initialisation, with the given target loss; the time-to-target is the ``time_s`` of
the first history entry with ``loss ≤ target`` (``None`` if never reached). The per-solver summary
gives the median over the seeds that reached the target and how many did.
"""
import numpy as np

from ocdl.errors import InputError


def time_to_target(history, target):
    """``(time_s, iteration)`` of the first history entry with loss ≤ target, else ``(None, None)``."""
    for h in history:
        loss = h.get("loss")
        if loss is not None and np.isfinite(loss) and loss <= target:
            return float(h["time_s"]), int(h["iteration"])
    return None, None


def _training_data(data, seed, options):
    """``(X, y)``: the training data of one seed through the one loader (synthetic sets drawn with
    ``seed``, real sets their fixed training split, or a CSV)."""
    from ocdl.data.loading import load_dataset
    ds = load_dataset(data, seed=seed, options=options)
    return ds.X, ds.y


def run_train_bench(solvers, seeds, target, data="spirals", field="outer", integrator="euler", layers=20,
                    T=5.0, alpha=1e-3, iterations=None, device="cpu", compare_fn=None, load_fn=None,
                    quiet=False):
    """``ocdl compare`` (``ocdl.solvers.compare.compare``) once per seed, with a fixed target loss;
    return ``{"runs": [...], "summary": [...], "settings": {...}}``.

    ``device`` other than ``"cpu"`` is passed to adam, lbfgs (autograd there) and pmp-adam, pmp-gd,
    pmp-lbfgs (the torch costate sweep there, :mod:`ocdl.pmp.torch_sweeps`); with ``"cpu"`` those keep
    autograd on the CPU and the numpy sweep; the other solvers run on the CPU."""
    from ocdl.progress import Progress, log
    if not target > 0:
        raise InputError(f"--target must be > 0 (got {target})")
    if not solvers or not seeds:
        raise InputError("need at least one solver and one seed")
    if compare_fn is None:
        try:
            from ocdl.solvers.compare import compare as compare_fn
        except ImportError:
            raise InputError("ocdl bench train needs ocdl.solvers.compare (the solvers work is not in this "
                             "tree yet)") from None
    if load_fn is None:
        load_fn = _training_data
    from ocdl.solvers import DEVICE_SOLVERS
    options = {s: {"device": device} for s in solvers if s in ("adam", "lbfgs") + DEVICE_SOLVERS and device != "cpu"}
    runs = []
    bar = Progress(len(seeds), "bench train", quiet)
    for i, seed in enumerate(seeds):
        bar.update(i, force=True, seed=seed)
        X, y = load_fn(data, seed, {})
        result = compare_fn(X, y, list(solvers), field=field, integrator=integrator, layers=layers, T=T,
                            alpha=alpha, seed=seed, iterations=iterations, target=target, options=options,
                            quiet=True, log=lambda msg: log(f"seed {seed}: {msg}", quiet))
        for name in solvers:
            r = result["solvers"][name]
            tt, it = time_to_target(r.get("history") or [], target)
            runs.append({"solver": name, "seed": seed, "target": target, "time_to_target_s": tt,
                         "iterations_to_target": it, "reached": tt is not None,
                         "final_loss": r.get("final_loss"), "kkt_residual": r.get("kkt_residual"),
                         "iterations": r.get("iterations"), "wall_time_s": r.get("wall_time_s"),
                         "train_accuracy": r.get("train_accuracy"), "converged": r.get("converged"),
                         "message": r.get("message"), "error": r.get("error")})
    bar.update(len(seeds), force=True)
    bar.close()
    summary = []
    for solver in solvers:
        rs = [r for r in runs if r["solver"] == solver]
        times = [r["time_to_target_s"] for r in rs if r["reached"]]
        losses = [r["final_loss"] for r in rs if r["final_loss"] is not None]
        summary.append({"solver": solver, "reached": len(times), "runs": len(rs),
                        "median_time_to_target_s": float(np.median(times)) if times else None,
                        "median_final_loss": float(np.median(losses)) if losses else None,
                        "median_wall_time_s": float(np.median([r["wall_time_s"] for r in rs
                                                               if r["wall_time_s"] is not None] or [np.nan]))})
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
            ax.bar(i, s["median_time_to_target_s"], color=f"C{i}", alpha=0.4)
        ax.plot([i] * len(ts), ts, "o", color=f"C{i}")
        ax.text(i, 0, f"{s['reached']}/{s['runs']}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(summary)), [s["solver"] for s in summary], rotation=30)
    ax.set_ylabel("time to target loss (s)")
    ax.set_title(f"time to J ≤ {result['settings']['target']:g} (dots: seeds; bar: median; n reached/runs)",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def format_table(result):
    """The per-solver summary as a plain-text table."""
    from ocdl.bench import number, text_table
    return text_table(["solver", "reached", "median_time_to_target_s", "median_final_loss", "median_wall_time_s"],
                      [[s["solver"], f"{s['reached']}/{s['runs']}", number(s["median_time_to_target_s"]),
                        number(s["median_final_loss"], ".4g"), number(s["median_wall_time_s"])]
                       for s in result["summary"]])
