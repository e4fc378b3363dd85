"""Defaults study: ``ResNetODEClassifier()`` with its defaults (the table of
``ocdl.solvers.defaults``) against a standardised scikit-learn ``MLPClassifier`` and
``LogisticRegression`` under the same stratified cross-validation, on the tasks a user would try:
the bundled sets (iris, wine, breast-cancer, digits), ``make_classification`` variants (2–10
classes, 5–50 features, 200–2000 samples, column scales over several decades) and MNIST-1D.

    python examples/defaults_study.py            # quick mode (< 1 min): iris and one synthetic task, 2 folds
    python examples/defaults_study.py --study    # the whole suite, 3 folds (a study: hours on a busy machine)

Prints one row per task (mean CV accuracy of each model, ocdl − MLP in points, mean fit times and
their ratio) and writes ``defaults_study.png`` (accuracy difference to the MLP per task). The
numbers of the last study are in BENCHMARKS.md, "Estimator defaults".
"""
import argparse
import time
import warnings

import numpy as np


def tasks(study):
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
    if study:
        from ocdl.data.real import load_real
        Xa, ya, Xb, yb = load_real("mnist1d")
        out["mnist1d"] = (np.vstack([Xa, Xb]), np.concatenate([ya, yb]))
    return out


def cv_score(make, X, y, folds):
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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", action="store_true", help="the whole suite, 3 folds (long)")
    p.add_argument("--out", default="defaults_study.png")
    p.add_argument("--iterations", type=int, default=None,
                   help="candidate: ResNetODEClassifier(iterations=…) instead of the defaults")
    p.add_argument("--tasks", default=None, help="comma-separated task-name prefixes (default: all)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ocdl.estimator import ResNetODEClassifier
    folds = 3 if args.study else 2
    its = args.iterations if args.iterations is not None else (None if args.study else 300)
    models = {"ocdl": lambda: ResNetODEClassifier(iterations=its),
              "mlp": lambda: make_pipeline(StandardScaler(), MLPClassifier(random_state=0, max_iter=500)),
              "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))}
    rows = []
    print(f"{'task':40s} {'ocdl':>6s} {'mlp':>6s} {'logreg':>6s} {'Δ pts':>6s} {'t_ocdl':>8s} {'t_mlp':>7s} "
          f"{'ratio':>6s}")
    wanted = None if args.tasks is None else args.tasks.split(",")
    for name, (X, y) in tasks(args.study).items():
        if wanted is not None and not any(name.startswith(w) for w in wanted):
            continue
        r = {m: cv_score(make, np.asarray(X, dtype=float), np.asarray(y), folds) for m, make in models.items()}
        delta = 100 * (r["ocdl"][0] - r["mlp"][0])
        rows.append((name, delta))
        print(f"{name:40s} {r['ocdl'][0]:6.3f} {r['mlp'][0]:6.3f} {r['logreg'][0]:6.3f} {delta:+6.1f} "
              f"{r['ocdl'][1]:8.2f} {r['mlp'][1]:7.2f} {r['ocdl'][1] / max(r['mlp'][1], 1e-9):6.1f}", flush=True)
    from ocdl.plotting import plt, save_figure
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.5))
    ax.barh([n for n, _ in rows], [d for _, d in rows], color=["C2" if d >= -1 else "C3" for _, d in rows])
    ax.axvline(-1, color="gray", ls=":", lw=1)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("ResNetODEClassifier − MLPClassifier, mean CV accuracy [points]")
    ax.set_title(f"defaults study ({folds}-fold CV{'' if args.study else ', quick mode'})")
    fig.tight_layout()
    save_figure(fig, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
