"""Defaults study: ``ResNetODEClassifier()`` with its defaults (the table of
``ocdl.solvers.defaults``) against a standardised scikit-learn ``MLPClassifier`` and
``LogisticRegression`` under the same stratified cross-validation, on the tasks a user would try:
the bundled sets (iris, wine, breast-cancer, digits), ``make_classification`` variants (2–10
classes, 5–50 features, 200–2000 samples, column scales over several decades) and MNIST-1D.

    OMP_NUM_THREADS=1 python examples/defaults_study.py           # quick mode (< 1 min): iris, one synthetic task
    OMP_NUM_THREADS=1 python examples/defaults_study.py --study   # the whole suite, 3 folds (≈ 10 min on a quiet core)
    python examples/defaults_study.py --study --tasks digits,synthetic --params '{"layers": 8}'   # a candidate

Prints one row per task (mean CV accuracy of each model, ocdl − MLP in points, mean fit times and
their ratio) and writes ``defaults_study.png`` (accuracy difference to the MLP and fit-time ratio
per task). One fit of each model on a small set runs first, untimed, so the one-time compilation
of the costate sweeps is not counted. The numbers of the last study are in BENCHMARKS.md,
"Estimator defaults (issue 26)".
"""
import argparse
import time
import warnings

import numpy as np


def _mlp():
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), MLPClassifier(random_state=0, max_iter=500))


def _logreg():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))


def _ocdl(**params):
    from ocdl.estimator import ResNetODEClassifier
    return ResNetODEClassifier(**params)


#: the compared models: the estimator with its defaults, the standardised MLP and logistic regression
MODELS = {"ocdl": _ocdl, "mlp": _mlp, "logreg": _logreg}


def tasks(study, only=None):
    """The suite as ``{name: (X, y)}`` (quick mode: iris and one synthetic task); ``only``: the
    names (or name prefixes) to build."""
    from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine, make_classification
    out = {"iris": load_iris(return_X_y=True)}
    if study:
        out.update({"wine": load_wine(return_X_y=True), "breast-cancer": load_breast_cancer(return_X_y=True),
                    "digits": load_digits(return_X_y=True)})
    variants = [(600, 12, 4, 0)] if not study else [(200, 5, 2, 0), (600, 12, 4, 0), (1000, 20, 3, 1),
                                                     (2000, 50, 10, 2), (500, 8, 2, 3), (1500, 30, 5, 4)]
    rng = np.random.default_rng(0)
    for n, d, c, scales in variants:
        X, y = make_classification(n_samples=n, n_features=d, n_informative=max(2, (2 * d) // 3),
                                   n_redundant=min(2, d // 4), n_classes=c, n_clusters_per_class=1 if c > 4 else 2,
                                   random_state=n + d + c)
        if scales:                                  # column scales over `scales` decades
            X = X * 10.0 ** rng.uniform(-scales, scales, size=d)
        out[f"synthetic n={n} d={d} C={c}" + (f" scales 1e±{scales}" if scales else "")] = (X, y)
    if study and (only is None or any("mnist1d".startswith(w) for w in only)):
        from ocdl.data.real import load_real
        Xa, ya, Xb, yb = load_real("mnist1d")
        out["mnist1d"] = (np.vstack([Xa, Xb]), np.concatenate([ya, yb]))
    if only is not None:
        out = {k: v for k, v in out.items() if any(k.startswith(w) for w in only)}
    return {k: (np.asarray(X, dtype=float), np.asarray(y)) for k, (X, y) in out.items()}


def cv_score(make, X, y, folds):
    """Mean held-out accuracy and mean fit time of ``make()`` over stratified ``folds``-fold CV."""
    from sklearn.model_selection import StratifiedKFold
    accs, times = [], []
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=0).split(X, y):
        model = make()
        t = time.perf_counter()
        model.fit(X[tr], y[tr])
        times.append(time.perf_counter() - t)
        accs.append(float((model.predict(X[te]) == y[te]).mean()))
    return float(np.mean(accs)), float(np.mean(times))


def main(argv=None):
    import json
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", action="store_true", help="the whole suite, 3 folds")
    p.add_argument("--out", default="defaults_study.png")
    p.add_argument("--params", default=None,
                   help="candidate: JSON of ResNetODEClassifier parameters instead of the defaults")
    p.add_argument("--tasks", default=None, help="comma-separated task-name prefixes (default: all)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    params = json.loads(args.params) if args.params else {}
    models = dict(MODELS, ocdl=lambda: _ocdl(**params))
    folds = 3 if args.study else 2
    suite = tasks(args.study, None if args.tasks is None else args.tasks.split(","))
    Xw, yw = suite[next(iter(suite))]
    for make in models.values():                  # untimed warm-up: one-time compilation, imports
        make().fit(Xw[:60], yw[:60])
    rows = []
    print(f"{'task':40s} {'ocdl':>6s} {'mlp':>6s} {'logreg':>6s} {'Δ pts':>6s} {'t_ocdl':>8s} {'t_mlp':>7s} "
          f"{'ratio':>6s}")
    for name, (X, y) in suite.items():
        r = {m: cv_score(make, X, y, folds) for m, make in models.items()}
        delta, ratio = 100 * (r["ocdl"][0] - r["mlp"][0]), r["ocdl"][1] / max(r["mlp"][1], 1e-9)
        rows.append((name, delta, ratio))
        print(f"{name:40s} {r['ocdl'][0]:6.3f} {r['mlp'][0]:6.3f} {r['logreg'][0]:6.3f} {delta:+6.1f} "
              f"{r['ocdl'][1]:8.2f} {r['mlp'][1]:7.2f} {ratio:6.1f}", flush=True)
    deltas = [d for _, d, _ in rows]
    print(f"mean Δ {np.mean(deltas):+.2f} points, worst {min(deltas):+.1f}, "
          f"largest time ratio {max(r for _, _, r in rows):.1f}×")
    from ocdl.plotting import plt, save_figure
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.8), sharey=True)
    names = [n for n, _, _ in rows]
    ax.barh(names, deltas, color=["C2" if d >= -2 else "C3" for d in deltas])
    ax.axvline(-1, color="gray", ls=":", lw=1)
    ax.axvline(-2, color="C3", ls=":", lw=1)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("ResNetODEClassifier − MLPClassifier,\nmean CV accuracy [points]")
    bx.barh(names, [r for _, _, r in rows], color=["C0" if r <= 10 else "C3" for _, _, r in rows])
    bx.axvline(10, color="C3", ls=":", lw=1)
    bx.set_xlabel("fit time ocdl / MLP")
    fig.suptitle(f"defaults study ({folds}-fold CV{'' if args.study else ', quick mode'})")
    fig.tight_layout()
    save_figure(fig, args.out)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
