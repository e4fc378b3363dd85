"""The defaults of a training run as a function of the data's shape — the one table.

:func:`choose` maps ``(n, d, C)`` — training samples, features, classes — and what the caller
fixed (``solver``, ``field``) to every default a run needs. Two rows:

==============  ================================================================================
row             defaults
==============  ================================================================================
``tabular``     ``field`` not given and d ≥ TABULAR_MIN_FEATURES (4): inner field
                x_{k+1} = x_k + h relu(K_k x_k + b_k), euler, N = TABULAR_LAYERS (4), T = 2,
                width max(TABULAR_WIDTH (128), d), α = 1/n within [10⁻⁴, 10⁻²]
                (:func:`tabular_alpha`), ``normalize="standard"``,
                solver pmp-adam; adam / pmp-adam / pmp-gd: shuffled mini-batches of
                TABULAR_BATCH (128) for TABULAR_EPOCHS (60) epochs at lr TABULAR_LR (0.01, cosine
                decay) — any n; other solvers: their run defaults of the ``reference`` row
``reference``   ``field`` given (``ocdl.train``, ``ocdl train`` and ``ocdl compare`` give
                ``outer`` by default), or d ≤ 3 (the planar sets: spirals, circles, moons):
                outer field (unless given), tanh, euler, N and T and width from the field
                (:meth:`ocdl.models.Field.defaults`: 20 layers, T = 5, width 3 d
                (:func:`ocdl.solvers.default_width`); conv fields: ``conv_defaults``),
                α = 3·10⁻³, ``normalize="standard"``, solver adam;
                n ≤ FULL_BATCH_MAX (1000): full batch, iterations = each solver's declaration
                (``@supports(iterations=…)``, :data:`ocdl.solvers.DEFAULT_ITERATIONS`: adam 3000
                at lr 0.05 cosine, msa 1000, newton 300, …);
                n > FULL_BATCH_MAX: mini-batches of DEFAULT_BATCH (128) for DEFAULT_EPOCHS (60)
                epochs, adam / pmp-adam lr BATCH_LR (0.02); newton batches of NEWTON_BATCH (512)
                with Hessian-vector products on NEWTON_HESSIAN_SAMPLE (128) rows, NEWTON_EPOCHS
                (10) epochs after its Adam warm start; without it (``warm_start="none"``)
                Gauss–Newton steps preconditioned by the Kronecker-factored metric, CG ≤
                NEWTON_KFAC_CG_MAXITER (1), batches of NEWTON_INIT_BATCH (256), products on
                NEWTON_INIT_HESSIAN_SAMPLE (32) rows, NEWTON_INIT_EPOCHS (30) epochs, the row's
                α — on MNIST-1D 73.9 % held-out on the inner field (adam 69.5 %), 64.7 % on
                the outer field (adam 70.7 %; no regulariser measured closes that) (conv field: CG ≤
                NEWTON_KFAC_CONV_CG_MAXITER (3), NEWTON_INIT_CONV_EPOCHS (40) — 95.6 %);
                msa MSA_EPOCHS (30) epochs
                (``default_batching`` applies these)
==============  ================================================================================

Who reads which row: ``ResNetODEClassifier()`` leaves ``field`` (and solver, activation,
layers, T, width, α, iterations, lr) unset, so tabular data get the ``tabular`` row and planar
data the ``reference`` row. ``ocdl.train``, ``ocdl train`` and ``ocdl compare`` default to
``field="outer"`` — the model of every documented solver comparison (docs/benchmarks-real.md,
docs/compare.md) — and read the ``reference`` row (their mini-batch settings through
:func:`ocdl.solvers.default_batching`); ``--field inner --activation relu --layers 4 --T 2
--width 128 --alpha A --solver pmp-adam --batch-size 128 --epochs 60 --lr 0.01`` (A = 1/n within
[1e-4, 1e-2]) is the ``tabular`` row on the command line.

Why the ``tabular`` row (BENCHMARKS.md, "Estimator defaults (issue 26)", measured with
``examples/defaults_study.py`` against a standardised scikit-learn ``MLPClassifier`` — 100 ReLU
units, Adam, batches of 200, stopping on a loss plateau — under the same 3-fold CV, one thread):

* the old defaults (outer tanh, 20 layers, width 3 d, 3000 full-batch Adam steps) were 0.7–2.4
  points below the MLP and 70–220× slower; 500 steps lost 4.5–11 points on synthetic tasks;
* on ``make_classification(2000, 50 features, 10 classes)`` every outer-tanh model fitted the
  training folds perfectly and held out 0.53–0.61 (width 64–200, α 10⁻⁴–3·10⁻², early
  stopping) against the MLP's 0.75: an inductive-bias problem, not capacity or steps;
  outer relu at width 128 held out 0.62–0.69, inner tanh 0.66, **inner relu at width 128,
  4 layers, T = 2: 0.77** (fold 1);
* that row on the whole suite: within −0.9 … +3.3 points of the MLP on every task at 1.2–2.2× its
  fit time (the table is in BENCHMARKS.md);
* pmp-adam (the compiled costate sweep) takes 2.2 ms per step on breast-cancer at width 64
  against torch-autograd adam's 6.8 ms (one thread); with torch's default 2 threads on the
  loaded 2-core machine a torch step took 50× longer, the old study's 70–220× were mostly that.
"""

#: training sets larger than this train in mini-batches of ``DEFAULT_BATCH`` by default (reference row)
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
#: the Kronecker-factored metric of newton's Gauss–Newton CG (``preconditioner="kfac"``,
#: :class:`ocdl.solvers.kronecker.KroneckerMetric`): the factors' exponential average, their
#: relative damping ε, the observations between refreshes of their inverses
NEWTON_KFAC_AVERAGE, NEWTON_KFAC_DAMPING, NEWTON_KFAC_REFRESH = 0.95, 1.0, 10
#: newton from the initialisation (``warm_start="none"``) on large sets: Gauss–Newton steps with the
#: Kronecker-factored metric, CG ≤ NEWTON_KFAC_CG_MAXITER (1: the K-FAC direction with the length of
#: the Gauss–Newton model), batches of NEWTON_INIT_BATCH, products and factors on
#: NEWTON_INIT_HESSIAN_SAMPLE rows, NEWTON_INIT_EPOCHS epochs — MNIST-1D, inner field: 73.9 % held-out
#: against adam's 69.5 % in 0.7× its time (72.5–74.1 % over three seeds); outer field: 64.7 % (99 %
#: training accuracy) in about half adam's time, adam 70.7 %; CG ≤ 2 / 4: 43.7 / 45.3 % after 3 epochs against
#: 51.1 % with 1; batches of 128 / 512: 62.8 % after 20 / 64.3 % after 40 epochs (docs/compare.md,
#: "MNIST-1D: Newton from the default initialisation"). Its α is the reference row's, as adam's: α
#: 2·10⁻³ … 5·10⁻³ hold out 62.7–65.1 %, ×3 / ×10 58.3 / 49.4 % (adam at ×10: 47.9 %); early
#: stopping on a validation split, fewer epochs, decoupled weight decay, the depth penalty β and
#: un-whitened layer inputs end at 60.8–65.8 % (same section, "Regularisation against the gap")
NEWTON_KFAC_CG_MAXITER = 1
NEWTON_INIT_BATCH, NEWTON_INIT_HESSIAN_SAMPLE, NEWTON_INIT_EPOCHS = 256, 32, 30
#: the same on the conv field (16 778 parameters: the Gauss–Newton coupling of the layers pays for
#: more CG iterations) — MNIST-1D (α = 3e-3), 40 epochs: CG ≤ 3 / 5 95.6 / 95.5 % held-out; 15 epochs
#: with CG ≤ 5: 92.4 % (docs/compare.md, "MNIST-1D: Newton from the default initialisation")
NEWTON_KFAC_CONV_CG_MAXITER, NEWTON_INIT_CONV_EPOCHS = 3, 40
#: msa's epochs on large sets: its mini-batch step (``metric="state"``, one (m+1)² solve per layer)
#: costs about an Adam step; 30 epochs of batches of 128 reach adam's 60-epoch held-out accuracy
#: within 3 points on MNIST-1D in about half its time (docs/compare.md, "MNIST-1D … E-MSA"); the
#: exact step (CG) cost ≈ 1.3 s per batch and gave ≈ 35–45 % in 10 epochs
MSA_EPOCHS = 30
#: Adam's learning rate for mini-batch runs of adam/pmp-adam (full batch keeps 0.05)
BATCH_LR = 0.02
#: BLAS/OpenMP/torch threads of a run when the user sets none (neither ``--threads`` nor
#: ``OMP_NUM_THREADS``): ``ocdl``'s commands (``ocdl.cli.common.set_threads``) and
#: ``ResNetODEClassifier.fit`` (for the fit only). The layers' matrices are small, so extra threads
#: only contend for busy cores. Measured on this project's 2-core machine shared with other jobs:
#: ``ocdl train --data spirals --solver adam --iterations 600`` (load ≈ 7) took 9.9 s with 1
#: thread, 122 s with 2 and 112 s with torch's default (2); ten epochs of the tabular row on
#: breast-cancer (load 17) 0.33–0.40 s with one BLAS thread, 25.8 s with OpenBLAS' default 2
THREADS = 1


def run_threads(default=THREADS):
    """The threads of a run the user gave none for: ``OMP_NUM_THREADS`` when set to a positive
    integer, else ``default`` (:data:`THREADS`)."""
    import os
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else int(default)
#: the model defaults of the reference row (layers, T and width: the field's own defaults)
ALPHA, SOLVER, FIELD, ACTIVATION, NORMALIZE = 3e-3, "adam", "outer", "tanh", "standard"

#: the tabular row: data of at least this many features, when the caller leaves ``field`` unset
TABULAR_MIN_FEATURES = 4
TABULAR_FIELD, TABULAR_ACTIVATION, TABULAR_SOLVER = "inner", "relu", "pmp-adam"
TABULAR_LAYERS, TABULAR_HORIZON, TABULAR_WIDTH = 4, 2.0, 128
#: the tabular row's weight decay: α = clip(TABULAR_ALPHA_SAMPLES / n, TABULAR_ALPHA_MIN, TABULAR_ALPHA_MAX) —
#: a fixed Gaussian prior on θ weighs 1/n against the mean loss (scikit-learn's MLP divides its α by
#: the batch size alike)
TABULAR_ALPHA_SAMPLES, TABULAR_ALPHA_MIN, TABULAR_ALPHA_MAX = 1.0, 1e-4, 1e-2
TABULAR_BATCH, TABULAR_EPOCHS, TABULAR_LR = 128, 60, 0.01
#: the solvers that take the tabular row's mini-batch run (the first-order ones)
TABULAR_BATCH_SOLVERS = ("adam", "pmp-adam", "pmp-gd")


def tabular_alpha(n):
    """The tabular row's α for ``n`` training samples: ``TABULAR_ALPHA_SAMPLES / n`` within
    [``TABULAR_ALPHA_MIN``, ``TABULAR_ALPHA_MAX``]."""
    return float(min(TABULAR_ALPHA_MAX, max(TABULAR_ALPHA_MIN, TABULAR_ALPHA_SAMPLES / int(n))))


def choose(n, d, n_classes=2, solver=None, field=None):
    """The defaults for ``n`` training samples of ``d`` features and ``n_classes`` classes (the
    module table), as a dict: ``row`` (``"tabular"`` or ``"reference"``), the model keywords
    ``field``, ``activation``, ``layers``, ``T``, ``width``, ``alpha``, ``normalize``, and the run
    keywords of ``ocdl.train`` ``solver``, ``iterations`` (None when epochs count), ``batch_size``,
    ``epochs``, ``lr`` (None: the solver's own), ``hessian_sample`` (newton on large sets), ``threads``
    (BLAS/OpenMP/torch threads: :data:`THREADS`).
    ``solver``/``field`` given: the defaults of a run with that solver / that field."""
    from ocdl.models import FIELDS
    from ocdl.solvers import DEFAULT_ITERATIONS
    from ocdl.errors import check_choice
    n, d = int(n), int(d)
    if n < 1 or d < 1 or int(n_classes) < 2:
        raise ValueError(f"choose needs n ≥ 1, d ≥ 1 and ≥ 2 classes (got {n}, {d}, {n_classes})")
    if field is not None:
        check_choice("field", field, list(FIELDS))
    if field is None and d >= TABULAR_MIN_FEATURES:
        solver = TABULAR_SOLVER if solver is None else solver
        out = {"row": "tabular", "field": TABULAR_FIELD, "activation": TABULAR_ACTIVATION,
               "layers": TABULAR_LAYERS, "T": TABULAR_HORIZON, "width": max(TABULAR_WIDTH, d),
               "alpha": tabular_alpha(n), "normalize": NORMALIZE, "solver": solver}
        if solver in TABULAR_BATCH_SOLVERS:
            out.update(iterations=None, batch_size=TABULAR_BATCH, epochs=TABULAR_EPOCHS,
                       lr=TABULAR_LR if solver in ("adam", "pmp-adam") else None, hessian_sample=None,
                       threads=THREADS)
            return out
    else:
        field = FIELD if field is None else field
        solver = SOLVER if solver is None else solver
        model = FIELDS[field].defaults(d)
        out = {"row": "reference", "field": field, "activation": ACTIVATION, "layers": model["layers"],
               "T": model["T"], "width": model.get("width"), "alpha": ALPHA, "normalize": NORMALIZE,
               "solver": solver}
    out.update(iterations=DEFAULT_ITERATIONS.get(solver), batch_size=None, epochs=None, lr=None,
               hessian_sample=None, threads=THREADS)
    if n > FULL_BATCH_MAX and solver in ("adam", "pmp-adam", "pmp-gd", "msa", "newton"):
        out["iterations"] = None
        out["batch_size"] = NEWTON_BATCH if solver == "newton" else DEFAULT_BATCH
        out["epochs"] = {"newton": NEWTON_EPOCHS, "msa": MSA_EPOCHS}.get(solver, DEFAULT_EPOCHS)
        if solver == "newton":
            out["hessian_sample"] = NEWTON_HESSIAN_SAMPLE
        if solver in ("adam", "pmp-adam"):
            out["lr"] = BATCH_LR
    return out
