"""Run several solvers on the same data, model, initialisation and cost; summarise and plot.

Every solver gets the same :class:`~ocdl.models.ResNetODE` and the same ``params0 =
model.init(seed)``. The KKT residual of the returned point is evaluated for every solver by the
one shared function :func:`ocdl.pmp.kkt_residual` (‖F(z)‖∞ of the discrete PMP system), never
by the solver's own report. Histories without a ``kkt`` entry (the torch solvers) are given one
after the run from parameter snapshots taken at ~40 log-spaced iterations by the callback
(snapshots are copies; the KKT evaluations happen after the clock has stopped).

``converged``: the solver's own convergence test passed (``result.success``); a run stopped by its
iteration cap is not converged, and ``message`` says why it stopped.

With held-out data, each history row that has a snapshot (or that the mini-batch solvers wrote at
an epoch's end) also carries ``test_accuracy``, so :func:`plot` draws held-out accuracy against
wall time for every solver. adam, pmp-adam and pmp-gd get the data-size defaults of
:func:`ocdl.solvers.default_batching` (mini-batches for more than ``FULL_BATCH_MAX`` samples).

``time_to_target_s``: wall time of the first history entry with ``loss ≤ target``; the default
target is ``1.05 ×`` the best loss any solver reached (``None`` if a solver never got there).
With held-out data also ``time_to_accuracy_s``: wall time of the first history entry whose
held-out accuracy is ≥ ``target_accuracy`` (default: the best final held-out accuracy of any
solver minus one point). ``memory_bytes``: the solver's memory estimate
(:func:`ocdl.solvers.memory.estimate`, checked against traced peaks in docs/benchmarks-real.md).
newton also reports ``n_hvp`` (curvature products: Hessian- or Gauss–Newton-vector),
``cg_iterations`` and ``n_gauss_newton_steps``.
"""
import time

import numpy as np

from ocdl import pmp
from ocdl.optim import tensorboard
from ocdl.errors import InputError, Interrupted, SolverError

DEFAULT_SOLVERS = ("adam", "lbfgs", "pmp-lbfgs", "msa", "shooting", "newton")
#: the default on training sets of more than ``FULL_BATCH_MAX`` samples: the mini-batch solvers
#: (full-batch L-BFGS and shooting's dense Jacobian do not scale to them)
LARGE_DATA_SOLVERS = ("adam", "pmp-adam", "msa", "newton")


def default_solvers(n):
    """The solvers ``ocdl compare`` runs when none are named, for ``n`` training samples."""
    from ocdl.solvers import FULL_BATCH_MAX
    return LARGE_DATA_SOLVERS if n > FULL_BATCH_MAX else DEFAULT_SOLVERS


def _snapshot_iterations(total, count=40):
    total = max(int(total), 1)
    return set(np.unique(np.geomspace(1, total, count).astype(int)).tolist()) | {total}


def time_to_target(history, target, key="loss"):
    """Wall time of the first row with ``row[key] ≤ target`` (``key="loss"``) or ``≥ target``
    (``key="test_accuracy"``); None if no row gets there."""
    for row in history:
        if key not in row:
            continue
        if (row[key] <= target) if key == "loss" else (row[key] >= target):
            return float(row["time_s"])
    return None


def compare(X, y, solvers=None, X_test=None, y_test=None, field="outer", integrator="euler",
            layers=None, T=None, alpha=1e-3, beta=0.0, width=None, seed=0, iterations=None, target=None,
            options=None, quiet=True, log=None, normalize=False, precheck=None, target_accuracy=None,
            **model_options):
    """Run ``solvers`` and return ``{"solvers": {name: summary}, "settings": {...}}``.

    ``iterations``: None, an int for all, or a dict per solver. ``normalize``: the model's fixed
    input map, ``"standard"``, ``"range"`` (or True) or ``"none"`` (or False), as in ``ocdl train``.
    ``options``: dict solver -> kwargs.
    A solver that fails (SolverError) is reported with ``"error"`` and null numbers.
    ``precheck(name, model, n, options, iterations)`` (e.g. the CLI's memory and time guard) is
    called for every solver before any of them runs, so a refusal comes up front; ``iterations``
    is the count given for that solver (None: its default).
    SIGINT/SIGTERM (``KeyboardInterrupt``) during the runs raises :class:`ocdl.errors.Interrupted`
    whose ``result`` is the same dict over the finished solvers, with ``"partial": true`` and
    ``"unfinished"`` (the solvers not run to the end).
    """
    if solvers is None:
        solvers = default_solvers(len(y))
    from ocdl.solvers import SOLVERS, check_solver_for_model, make_model
    unknown = [s for s in solvers if s not in SOLVERS]
    if unknown:
        raise InputError(f"unknown solver(s) {', '.join(unknown)} (valid: {', '.join(SOLVERS)})")
    X = np.asarray(X, dtype=float)
    model = make_model(X, y, field=field, integrator=integrator, layers=layers, T=T, width=width,
                       alpha=alpha, beta=beta, normalize=normalize, **model_options)
    X, y = model.check_data(X, y)
    for name in solvers:
        check_solver_for_model(name, model)
    params0 = model.init(seed=seed)
    options = options or {}
    if precheck is not None:
        for name in solvers:
            its = iterations.get(name) if isinstance(iterations, dict) else iterations
            precheck(name, model, len(y), dict(options.get(name, {})), its)
    for name in solvers:
        if name in ("adam", "lbfgs"):
            # torch's first call costs seconds (import, kernel set-up); do it outside the clock
            SOLVERS[name](model, {k: v.copy() for k, v in params0.items()}, X[:4], y[:4], iterations=1,
                          callback=None, quiet=True)
    if any(s in ("newton", "ipopt", "shooting") for s in solvers):
        import casadi  # noqa: F401
    out = {}
    try:
        _run_all(out, model, params0, X, y, solvers, iterations, options, X_test, y_test, quiet, log)
    except KeyboardInterrupt:
        # SIGINT/SIGTERM: the finished solvers' rows, summarised as a full run would be
        result = _summary(out, model, X, X_test, target, target_accuracy, field, integrator, alpha, beta, seed,
                          solvers, normalize)
        unfinished = [s for s in solvers if s not in out]
        result.update(partial=True, unfinished=unfinished)
        during = f" (stopped during {unfinished[0]})" if unfinished else ""
        raise Interrupted(f"{len(out)} of {len(solvers)} solvers finished{during}", result) from None
    return _summary(out, model, X, X_test, target, target_accuracy, field, integrator, alpha, beta, seed, solvers,
                    normalize)


def _run_all(out, model, params0, X, y, solvers, iterations, options, X_test, y_test, quiet, log):
    """Run every solver from ``params0``; each finished solver's row goes into ``out`` at once."""
    from ocdl.solvers import DEFAULT_ITERATIONS, MINIBATCH_SOLVERS, SOLVERS, default_batching
    for name in solvers:
        its = iterations.get(name) if isinstance(iterations, dict) else iterations
        given = its is not None
        if its is None:
            its = DEFAULT_ITERATIONS[name]
        opts = dict(options.get(name, {}))
        if name in MINIBATCH_SOLVERS:
            default_batching(name, len(y), opts, its if given else None, model.field)
            if "epochs" in opts:
                its = int(opts["epochs"]) * -(-len(y) // min(int(opts.get("batch_size") or len(y)), len(y)))
            if X_test is not None:
                opts.setdefault("test", (np.asarray(X_test, dtype=float), np.asarray(y_test)))
        snaps = {}
        wanted = _snapshot_iterations(its if name not in ("newton",) else its + 1000)

        def callback(it, params, loss, snaps=snaps, wanted=wanted):
            if it in wanted:
                snaps[it] = {k: np.array(v, dtype=float, copy=True) for k, v in params.items()}
            return False

        if log:
            log(f"compare: running {name} ...")
        t0 = time.perf_counter()
        try:
            with tensorboard.run(name) as tb:   # one TensorBoard run per solver (inside a session)
                res = SOLVERS[name](model, {k: v.copy() for k, v in params0.items()}, X, y, iterations=int(its),
                                    callback=callback, quiet=quiet, **opts)
        except SolverError as exc:
            out[name] = {"error": str(exc), "final_loss": None, "train_accuracy": None, "test_accuracy": None,
                         "iterations": None, "wall_time_s": time.perf_counter() - t0, "kkt_residual": None,
                         "converged": False, "message": str(exc), "time_to_target_s": None,
                         "time_to_accuracy_s": None, "memory_bytes": None, "history": []}
            continue
        wall = time.perf_counter() - t0
        history = [dict(r) for r in res.history]
        for row in history:                      # fill KKT from snapshots where the solver had none
            if "kkt" not in row and row["iteration"] in snaps:
                row["kkt"] = pmp.kkt_residual(model, snaps[row["iteration"]], X, y)
            if X_test is not None and "test_accuracy" not in row and row["iteration"] in snaps:
                row["test_accuracy"] = float(model.accuracy(snaps[row["iteration"]], np.asarray(X_test, dtype=float),
                                                            np.asarray(y_test)))
        if tb is not None:                       # rows of solvers outside the driver; KKT, test accuracy
            tb.history(history, extra=("kkt", "test_accuracy"))
        params = res.x
        out[name] = {
            "final_loss": float(pmp.cost(model, params, X, y)),
            "train_accuracy": float(model.accuracy(params, X, y)),
            "test_accuracy": (float(model.accuracy(params, np.asarray(X_test, dtype=float), np.asarray(y_test)))
                              if X_test is not None else None),
            "iterations": int(res.nit),
            "wall_time_s": float(wall),
            "kkt_residual": float(pmp.kkt_residual(model, params, X, y)),
            "converged": bool(res.success),
            "message": str(res.message),
            "memory_bytes": _memory(name, model, len(y), opts),
            "history": history,
        }
        if name == "shooting" and "boundary_residual" in res:
            out[name]["boundary_residual"] = float(res["boundary_residual"])
        for k in ("n_hvp", "cg_iterations", "n_gauss_newton_steps"):       # newton's curvature work
            if k in res:
                out[name][k] = int(res[k])


def _summary(out, model, X, X_test, target, target_accuracy, field, integrator, alpha, beta, seed, solvers,
             normalize):
    """``{"solvers": out, "settings": ...}`` with the times to the target loss and accuracy."""
    losses = [r["final_loss"] for r in out.values() if r["final_loss"] is not None]
    losses += [row["loss"] for r in out.values() for row in r["history"]]
    best = min(losses) if losses else None
    tgt = float(target) if target is not None else (1.05 * best if best is not None else None)
    for r in out.values():
        r["time_to_target_s"] = time_to_target(r["history"], tgt) if tgt is not None and r["history"] else None
    accs = [r["test_accuracy"] for r in out.values() if r.get("test_accuracy") is not None]
    tacc = float(target_accuracy) if target_accuracy is not None else (max(accs) - 0.01 if accs else None)
    for r in out.values():
        r["time_to_accuracy_s"] = (time_to_target(r["history"], tacc, "test_accuracy")
                                   if tacc is not None and r["history"] else None)
    settings = {"field": field, "integrator": integrator, "layers": int(model.layers), "T": float(model.T),
                "alpha": float(alpha), "beta": float(beta), "width": int(model.d), "seed": int(seed),
                "n_train": int(X.shape[0]), "n_test": None if X_test is None else int(np.asarray(X_test).shape[0]),
                "target_loss": tgt, "best_loss": best, "target_accuracy": tacc, "solvers": list(solvers),
                "n_params": int(model.n_params()),
                "normalize": {True: "range", False: "none", None: "none"}.get(normalize, normalize)}
    return {"solvers": out, "settings": settings}


def _memory(name, model, n, opts):
    from ocdl.solvers.memory import estimate
    try:
        return int(estimate(name, model, n, opts.get("batch_size"), opts.get("hessian_sample"),
                            opts.get("formulation", "reduced"), opts.get("segments") or 1)[0])
    except ValueError:
        return None


def table(result):
    """The terminal table (one row per solver)."""
    head = ("solver", "final_loss", "train_acc", "test_acc", "iters", "wall_s", "kkt", "converged", "t_target_s",
            "t_acc_s", "memory")
    rows = []
    for name, r in result["solvers"].items():
        def f(v, fmt):
            return "—" if v is None else format(v, fmt)
        rows.append((name, f(r["final_loss"], ".6g"), f(r["train_accuracy"], ".3f"), f(r["test_accuracy"], ".3f"),
                     f(r["iterations"], "d"), f(r["wall_time_s"], ".2f"), f(r["kkt_residual"], ".1e"),
                     "—" if r.get("error") else ("yes" if r["converged"] else "no"),
                     f(r["time_to_target_s"], ".2f"), f(r.get("time_to_accuracy_s"), ".2f"),
                     "—" if r.get("memory_bytes") is None else _mb(r["memory_bytes"])))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    for name, r in result["solvers"].items():
        if r.get("error"):
            lines.append(f"{name} failed: {r['error']}")
    tgt = result["settings"].get("target_loss")
    if tgt is not None:
        lines.append(f"target loss {tgt:.6g} (1.05 × best loss reached unless given)")
    tacc = result["settings"].get("target_accuracy")
    if tacc is not None:
        lines.append(f"target held-out accuracy {tacc:.3f} (best final held-out accuracy − 0.01 unless given)")
    return "\n".join(lines)


def _mb(nbytes):
    return f"{nbytes / 2**20:.0f} MB"


def plot(result, path):
    """Loss and KKT residual against wall time (log–log), one curve per solver; with held-out data
    a third panel: held-out accuracy against wall time."""
    from ocdl.plotting import plt, save_figure
    held = any("test_accuracy" in row for r in result["solvers"].values() for row in r["history"])
    fig, axes = plt.subplots(1, 3 if held else 2, figsize=(16 if held else 11, 4.2))
    a1, a2 = axes[0], axes[1]
    for name, r in result["solvers"].items():
        h = [row for row in r["history"] if row["time_s"] > 0]
        if not h:
            continue
        t = np.array([row["time_s"] for row in h])
        line, = a1.plot(t, [row["loss"] for row in h], label=name, lw=1.4)
        hk = [row for row in h if "kkt" in row and row["kkt"] > 0]
        if hk:
            a2.plot([row["time_s"] for row in hk], [row["kkt"] for row in hk], label=name, lw=1.4,
                    color=line.get_color(), marker="." if len(hk) < 60 else None)
        ha = [row for row in h if "test_accuracy" in row]
        if held and ha:
            axes[2].plot([row["time_s"] for row in ha], [100 * row["test_accuracy"] for row in ha], label=name,
                         lw=1.4, color=line.get_color(), marker="." if len(ha) < 60 else None)
    tgt = result["settings"].get("target_loss")
    if tgt:
        a1.axhline(tgt, color="gray", ls=":", lw=1, label="target")
    for a, lab in ((a1, "loss J"), (a2, "KKT residual ‖F(z)‖∞")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("wall time [s]")
        a.set_ylabel(lab)
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
    if held:
        axes[2].set_xscale("log")
        axes[2].set_xlabel("wall time [s]")
        axes[2].set_ylabel("held-out accuracy [%]")
        axes[2].grid(True, which="both", alpha=0.3)
        axes[2].legend(fontsize=8)
    s = result["settings"]
    fig.suptitle(f"{s['field']} field, {s['integrator']}, N={s['layers']}, T={s['T']:g}, α={s['alpha']:g}, "
                 f"n={s['n_train']}, {s['n_params']} parameters")
    fig.tight_layout()
    save_figure(fig, path)
