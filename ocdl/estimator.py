"""``ResNetODEClassifier`` — a scikit-learn estimator over :func:`ocdl.train` (needs scikit-learn ≥ 1.6,
``pip install 'ocdl[sklearn]'``; ``import ocdl`` itself does not).

``fit(X, y)`` encodes the labels (any hashable values, ``classes_ = np.unique(y)``; class c is
``classes_[c]``), then calls ``ocdl.train`` — the one training path of the library and of
``ocdl train`` — with the estimator's parameters, and keeps the trained ``model_`` (a
:class:`~ocdl.models.ResNetODE`, its input normalisation included) and ``params_``.
``predict_proba`` is the model's probability (logistic σ(s) for two classes, softmax(s) for more,
columns in the order of ``classes_``); ``predict`` returns ``classes_[argmax]``, the labels as given.

Checks: ``sklearn.utils.estimator_checks.check_estimator`` passes (``tests/test_estimator.py``;
what is skipped and why: :data:`SKIPPED_CHECKS`).
"""
try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # pragma: no cover - exercised by the no-sklearn test in a subprocess
    raise ImportError("ocdl.ResNetODEClassifier needs scikit-learn >= 1.6: pip install 'ocdl[sklearn]' "
                      f"(or pip install scikit-learn) — {exc}") from None
import contextlib

import numpy as np

from ocdl.solvers.defaults import NORMALIZE

#: checks of ``check_estimator`` this estimator is expected to fail, with the reason
#: (``check_estimator(..., expected_failed_checks=SKIPPED_CHECKS)``). None: all 55 checks of
#: scikit-learn 1.9 pass (measured with ``iterations=100, layers=3``). Two are skipped by
#: scikit-learn itself when their optional dependency is missing: ``check_array_api_input``
#: (SCIPY_ARRAY_API unset) and the pandas part of ``check_classifier_data_not_an_array``; the
#: sample-weight checks do not apply (``fit`` takes no ``sample_weight``: the cost is the
#: unweighted mean loss).
SKIPPED_CHECKS = {}


@contextlib.contextmanager
def _threads(n, torch_run=False):
    """BLAS/OpenMP pools (threadpoolctl, which scikit-learn brings) and torch's intra-op pool limited
    to ``n`` threads for the ``with`` block, then restored; OMP_NUM_THREADS, when set, wins.
    ``torch_run``: the run uses torch (imported here first, so its pool is limited too)."""
    import sys

    from threadpoolctl import threadpool_limits

    from ocdl.solvers.defaults import run_threads
    n = run_threads(n)
    if torch_run:
        import torch  # noqa: F401  (its pool exists before the limit is set)
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        with threadpool_limits(limits=n):
            if torch is not None:
                torch.set_num_threads(n)
            yield n
    finally:
        if torch is not None:
            torch.set_num_threads(before)


class ResNetODEClassifier(ClassifierMixin, BaseEstimator):
    """A ResNet-ODE classifier ``x_{k+1} = Ψ_h(x_k; θ_k)``, ``s = W x_N + μ`` (see
    :mod:`ocdl.models.resnet`), trained by ``ocdl.train`` on the cost

        J = (1/n) Σ_i Φ(s_i, c_i) + h Σ_k (α/2)(‖K_k‖² + |b_k|²) + (β/2) Σ_k ‖θ_{k+1} − θ_k‖²/h + (α/2)‖W‖²

    (Φ logistic for two classes, softmax cross-entropy for more).

    Parameters (all plain values; every one is a ``get_params``/``set_params`` key and a keyword of
    ``ocdl.train``; None: from the defaults table, :func:`ocdl.solvers.defaults.choose`, at ``fit``
    for the data's shape): ``solver`` (adam, lbfgs, pmp-adam, pmp-lbfgs, pmp-gd, newton, ipopt, msa,
    shooting), ``field`` (inner, outer, hamiltonian; None: inner for data of ≥ 4 features — the
    table's ``tabular`` row —, outer for planar data; a field given selects the table's
    ``reference`` row, as in ``ocdl.train``), ``integrator`` (euler, heun, rk4, …), ``activation``
    (tanh, softplus, relu), ``layers`` N, ``T`` (h = T/N), ``width``, ``alpha`` α, ``beta`` β,
    ``normalize`` (``"standard"`` per-feature mean/std — the default —, ``"range"``, ``"none"``;
    computed on the training data and stored in the model), ``iterations`` (None: the table's
    epochs or the solver's default; given: that many steps, on the table's mini-batches), ``lr``
    (only for solvers with a learning rate), ``seed`` (initial parameters), ``device`` (None:
    autograd on the CPU and numpy costate sweeps; a torch device: adam/lbfgs autograd and the
    pmp-* costate sweeps there), ``solver_options`` (a dict of further solver keywords, e.g.
    ``{"schedule": "constant"}`` or ``{"batch_size": 64, "epochs": 20}``; None: none).
    :meth:`run_settings` shows what ``fit`` will use.

    With every default, tabular data (≥ 4 features) train an inner-field ReLU ResNet-ODE of 4
    layers, width max(128, d), α = 1/n within [1e-4, 1e-2], by pmp-adam on mini-batches of 128 for
    60 epochs — within 1 point of a standardised ``MLPClassifier`` on average over the suite of
    ``examples/defaults_study.py`` (BENCHMARKS.md, "Estimator defaults (issue 26)"). ``fit`` runs on
    the table's ``threads`` (1) BLAS/OpenMP/torch threads, or OMP_NUM_THREADS when set, and restores
    the pools afterwards.

    Attributes after ``fit``: ``classes_`` (sorted unique labels), ``n_features_in_``,
    ``feature_names_in_`` (when X has string column names), ``model_``, ``params_``, ``result_``
    (the :class:`~ocdl.optim.OptimizeResult`: ``success``, ``message``, ``fun``, ``history``),
    ``n_iter_``.

    Not converging within ``iterations`` is not an error: ``result_.success`` is False and ``fit``
    warns with scikit-learn's ``ConvergenceWarning``, as its iterative estimators do; divergence
    raises :class:`~ocdl.errors.SolverError`.
    Skipped ``check_estimator`` checks: :data:`SKIPPED_CHECKS`.
    """

    def __init__(self, solver=None, field=None, integrator="euler", activation=None, layers=None, T=None,
                 width=None, alpha=None, beta=0.0, normalize=NORMALIZE, iterations=None, lr=None, seed=0,
                 device=None, solver_options=None):
        self.solver = solver
        self.field = field
        self.integrator = integrator
        self.activation = activation
        self.layers = layers
        self.T = T
        self.width = width
        self.alpha = alpha
        self.beta = beta
        self.normalize = normalize
        self.iterations = iterations
        self.lr = lr
        self.seed = seed
        self.device = device
        self.solver_options = solver_options

    def fit(self, X, y):
        """Train on X (n, d) and labels y (n,) of any hashable type; returns ``self``."""
        from ocdl.jobs.train import check_options, resolve_device
        from ocdl.solvers import train
        resolve_device(self.device)          # InputError (a ValueError) for a device that is not there
        check_options({k: getattr(self, k) for k in ("layers", "T", "width", "alpha", "beta", "iterations", "lr",
                                                     "seed")})
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=False)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; "
                             f"the data contain only one class: {self.classes_[0]!r}")
        cfg = self.run_settings(len(y), X.shape[1], len(self.classes_))
        options = dict(self.solver_options or {})
        if self.lr is not None:
            options["lr"] = self.lr
        elif cfg["lr"] is not None:
            options.setdefault("lr", cfg["lr"])
        for k in ("batch_size", "epochs", "hessian_sample"):      # the table's run, unless given
            if cfg[k] is not None and not (k == "epochs" and self.iterations is not None):
                options.setdefault(k, cfg[k])
        with _threads(cfg["threads"], torch_run=cfg["solver"] in ("adam", "lbfgs") or self.device is not None):
            res = train(X, y_index, solver=cfg["solver"], field=cfg["field"], integrator=self.integrator,
                        activation=cfg["activation"], layers=cfg["layers"], T=cfg["T"], width=cfg["width"],
                        alpha=cfg["alpha"], beta=self.beta, normalize=self.normalize, n_classes=len(self.classes_),
                        iterations=cfg["iterations"], seed=self.seed, device=self.device, quiet=True, **options)
        self.model_, self.params_, self.result_ = res.model, res.x, res
        self.n_iter_ = int(res.nit)
        if not res.success:
            import warnings
            from sklearn.exceptions import ConvergenceWarning
            warnings.warn(f"{res.get('solver', self.solver)} did not converge: {res.message}", ConvergenceWarning,
                          stacklevel=2)
        return self

    def run_settings(self, n, d, n_classes):
        """The settings ``fit`` uses for ``n`` samples of ``d`` features and ``n_classes`` classes: the
        row of :func:`ocdl.solvers.defaults.choose` for the estimator's ``solver`` and ``field``
        (None: chosen by the table), with every parameter that is not None in its place
        (``iterations`` given: no epochs; ``lr``)."""
        from ocdl.solvers.defaults import choose
        cfg = choose(n, d, n_classes, solver=self.solver, field=self.field)
        for k in ("activation", "layers", "T", "width", "alpha", "iterations", "lr"):
            if getattr(self, k) is not None:
                cfg[k] = getattr(self, k)
        if self.iterations is not None:
            cfg["epochs"] = None
        return cfg

    def _check(self, X):
        check_is_fitted(self, "params_")
        return validate_data(self, X, dtype=np.float64, reset=False)

    def decision_function(self, X):
        """Logits ``s = W x_N + μ``: shape (n,) for two classes (s > 0 → ``classes_[1]``), (n, C) otherwise."""
        X = self._check(X)
        s = self.model_.logits(self.params_, X)
        return s[:, 0] if s.shape[1] == 1 else s

    def predict_proba(self, X):
        """Probabilities (n, C) in the order of ``classes_``; rows sum to 1 (see ``ResNetODE.predict_proba``)."""
        X = self._check(X)
        return self.model_.predict_proba(self.params_, X)

    def predict(self, X):
        """The original labels: ``classes_[model.predict(X)]`` (the argmax of :meth:`predict_proba`)."""
        X = self._check(X)
        return self.classes_[self.model_.predict(self.params_, X)]

    def save(self, path):
        """Write the fitted model to a model file (``ocdl.load``/``ocdl predict`` read it) with the
        classes and, when known, the feature names."""
        from ocdl.data.modelfile import save_model
        check_is_fitted(self, "params_")
        features = getattr(self, "feature_names_in_", None)
        save_model(path, self.model_, self.params_,
                   info={"solver": self.solver, "train_loss": float(self.result_.fun), "iterations": self.n_iter_,
                         "success": bool(self.result_.success)},
                   data={"features": None if features is None else list(features), "label_column": None,
                         "classes": self.classes_.tolist()})
