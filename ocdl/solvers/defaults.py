"""The defaults of a training run as a function of the data's shape — the one table.

:func:`choose` maps ``(n, d, C)`` — training samples, features, classes — to every default a run
needs (``ocdl.train``, ``ocdl train``, ``ocdl compare`` and ``ResNetODEClassifier`` use it; their
own defaults are None meaning "from this table"):

=====================  ==========================================================================
regime                 defaults
=====================  ==========================================================================
every run              outer field, euler, tanh, N = 20 layers, T = 5, α = 3·10⁻³, width 3 d
                       (:func:`ocdl.solvers.default_width`), ``normalize="standard"``, solver adam
n ≤ FULL_BATCH_MAX     full batch; iterations: each solver's declaration
(1000)                 (``@supports(iterations=…)``, :data:`ocdl.solvers.DEFAULT_ITERATIONS`;
                       adam 3000 at lr 0.05 cosine, msa 1000, newton 300, …)
n > FULL_BATCH_MAX     mini-batches of DEFAULT_BATCH (128) for DEFAULT_EPOCHS (60) epochs, adam /
                       pmp-adam lr BATCH_LR (0.02); newton batches of NEWTON_BATCH (512) with
                       Hessian-vector products on NEWTON_HESSIAN_SAMPLE (128) rows, NEWTON_EPOCHS
                       (10) epochs after its Adam warm start (without it — Gauss–Newton steps with
                       CG ≤ NEWTON_GN_CG_MAXITER (10) at NEWTON_GN_CG_RTOL (1e-3) — it reaches
                       50 % held-out on MNIST-1D, not adam's 70.7 %); msa MSA_EPOCHS (10) epochs
=====================  ==========================================================================

The measurements behind the numbers: docs/benchmarks-real.md (mini-batch sizes, epochs,
learning rates) and BENCHMARKS.md, "Estimator defaults" (the study of
``examples/defaults_study.py`` against scikit-learn's ``MLPClassifier`` and
``LogisticRegression``).
"""

#: training sets larger than this train in mini-batches of ``DEFAULT_BATCH`` by default
FULL_BATCH_MAX = 1000
DEFAULT_BATCH = 128
DEFAULT_EPOCHS = 60
#: newton's mini-batch defaults on large sets: Newton–CG steps on batches of 512 with Hessian-vector
#: products on 128 of their rows (Byrd et al. 2011), 10 epochs — MNIST-1D: 72.6 / 72.1 / 72.3 %
#: held-out (seeds 0/1/2) in about a minute, where batches of 128 gave 59.6 % after 3 epochs
NEWTON_BATCH, NEWTON_HESSIAN_SAMPLE, NEWTON_EPOCHS = 512, 128, 10
#: newton's Gauss–Newton steps (``curvature="gauss-newton"``): CG on (G + λI)s = −g truncated at
#: NEWTON_GN_CG_MAXITER iterations or relative residual NEWTON_GN_CG_RTOL, first damping λ = 1 —
#: MNIST-1D from the initialisation, batches of 512, products on 128 rows: 46.9 % held-out after 6
#: epochs with these, 40.9 % with the Newton forcing term (2–4 CG iterations per step), 45.3 % with
#: 30 iterations (docs/compare.md, "MNIST-1D: Newton from the default initialisation")
NEWTON_GN_CG_MAXITER, NEWTON_GN_CG_RTOL = 10, 1e-3
#: msa's epochs on large sets: its stochastic E-MSA step costs ≈ 1.3 s per batch of 128 at width
#: 120 (MNIST-1D), so 60 epochs would take ≈ 40 min for ≈ 35–40 % held-out; 10 epochs ≈ 7 min
MSA_EPOCHS = 10
#: Adam's learning rate for mini-batch runs of adam/pmp-adam (full batch keeps 0.05)
BATCH_LR = 0.02
#: the model defaults of every regime
LAYERS, HORIZON, ALPHA, SOLVER, NORMALIZE = 20, 5.0, 3e-3, "adam", "standard"


def choose(n, d, n_classes=2, solver=None, field="outer"):
    """The defaults for ``n`` training samples of ``d`` features and ``n_classes`` classes (the
    module table), as a dict of ``ocdl.train`` keywords: ``solver``, ``layers``, ``T``, ``alpha``,
    ``width``, ``normalize``, ``iterations`` (None when epochs count), ``batch_size``, ``epochs``,
    ``lr`` (None: the solver's own), ``hessian_sample`` (newton on large sets)."""
    from ocdl.solvers import DEFAULT_ITERATIONS, default_width
    n, d = int(n), int(d)
    if n < 1 or d < 1 or int(n_classes) < 2:
        raise ValueError(f"choose needs n ≥ 1, d ≥ 1 and ≥ 2 classes (got {n}, {d}, {n_classes})")
    solver = SOLVER if solver is None else solver
    out = {"solver": solver, "layers": LAYERS, "T": HORIZON, "alpha": ALPHA, "width": default_width(field, d),
           "normalize": NORMALIZE, "iterations": DEFAULT_ITERATIONS.get(solver), "batch_size": None,
           "epochs": None, "lr": None, "hessian_sample": None}
    if n > FULL_BATCH_MAX and solver in ("adam", "pmp-adam", "pmp-gd", "msa", "newton"):
        out["iterations"] = None
        out["batch_size"] = NEWTON_BATCH if solver == "newton" else DEFAULT_BATCH
        out["epochs"] = {"newton": NEWTON_EPOCHS, "msa": MSA_EPOCHS}.get(solver, DEFAULT_EPOCHS)
        if solver == "newton":
            out["hessian_sample"] = NEWTON_HESSIAN_SAMPLE
        if solver in ("adam", "pmp-adam"):
            out["lr"] = BATCH_LR
    return out
