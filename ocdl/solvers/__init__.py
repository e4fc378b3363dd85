"""Training entry point and the solver registry.

``train(X, y, solver=...)`` builds a :class:`~ocdl.models.ResNetODE`, initialises it (or takes
``params0``) and runs ``SOLVERS[solver](model, params0, X, y, iterations=..., callback=...,
quiet=..., **options)``, which returns an :class:`ocdl.optim.OptimizeResult`.

Solvers here: ``adam``, ``lbfgs`` (torch autograd) and ``pmp-adam``, ``pmp-lbfgs``, ``pmp-gd``
(costate gradient, no autograd tape). Others register themselves in ``SOLVERS`` (one line each).
"""
import numpy as np

from ocdl.errors import InputError, check_choice
from ocdl.models import ResNetODE
from ocdl.solvers.gradient import adam, lbfgs, pmp_adam, pmp_gd, pmp_lbfgs

SOLVERS = {
    "adam": adam,
    "lbfgs": lbfgs,
    "pmp-adam": pmp_adam,
    "pmp-lbfgs": pmp_lbfgs,
    "pmp-gd": pmp_gd,
}
from ocdl.solvers.newton import newton as _newton, ipopt as _ipopt  # noqa: E402
from ocdl.solvers.msa import msa as _msa  # noqa: E402
from ocdl.solvers.shooting import shooting as _shooting  # noqa: E402
SOLVERS.update({"newton": _newton, "ipopt": _ipopt, "msa": _msa, "shooting": _shooting})

#: weight decay α of the ``ocdl train`` command (the library default stays 1e-3): on two spirals
#: (1.5 turns, noise 0.03, 150 points per class, range normalisation, 12 seeds, pmp-adam) the
#: worst held-out accuracy was 96.0 % with α = 1e-3, 98.5 % with 3e-3 and 98.75 % with 1e-2.
CLI_ALPHA = 3e-3

#: iterations used when ``iterations=None``
DEFAULT_ITERATIONS = {"adam": 3000, "pmp-adam": 3000, "pmp-gd": 3000, "lbfgs": 1000, "pmp-lbfgs": 1000}


#: solvers that take ``batch_size``, ``epochs``, ``validation``, ``patience``, ``test`` (mini-batches)
MINIBATCH_SOLVERS = ("adam", "pmp-adam", "pmp-gd", "msa")
BATCH_OPTIONS = ("batch_size", "epochs", "validation", "patience", "test")

#: training sets larger than this train in mini-batches of ``DEFAULT_BATCH`` by default
#: (see docs/benchmarks-real.md for the measurements behind both numbers)
FULL_BATCH_MAX = 1000
DEFAULT_BATCH = 128
DEFAULT_EPOCHS = 60
#: Adam's learning rate for mini-batch runs of adam/pmp-adam (full batch keeps 0.05)
BATCH_LR = 0.02


def default_batching(solver, n, options):
    """Fill in the mini-batch defaults of ``options`` for ``n`` training samples: sets with more
    than ``FULL_BATCH_MAX`` samples train in batches of ``DEFAULT_BATCH`` for ``DEFAULT_EPOCHS``
    epochs (unless ``iterations``/``epochs`` are given); smaller ones in full batch. A mini-batch
    run of adam/pmp-adam without ``lr`` uses ``BATCH_LR``."""
    for k in BATCH_OPTIONS:
        if k in options and options[k] is None:
            del options[k]
    if solver not in MINIBATCH_SOLVERS:
        bad = [k for k in BATCH_OPTIONS if k in options]
        if bad:
            raise InputError(f"{', '.join('--' + k.replace('_', '-') for k in bad)} appl"
                             f"{'ies' if len(bad) == 1 else 'y'} to the solvers {', '.join(MINIBATCH_SOLVERS)} only")
        return options
    if options.get("batch_size") is None and n > FULL_BATCH_MAX:
        options["batch_size"] = DEFAULT_BATCH
    if solver in ("adam", "pmp-adam") and options.get("batch_size", n) < n and options.get("lr") is None:
        options["lr"] = BATCH_LR
    return options


def default_width(field, d_in):
    """Width used when ``width=None``: 3 × input dimension (6 for planar data), rounded up to
    even for the hamiltonian field (whose state is (q, p)).

    A planar flow can untangle two spirals only with difficulty (it is a homeomorphism of the
    plane); extra dimensions make the classes separable easily. Measured on two spirals
    (1.5 turns, noise 0.03, 150 points per class, 12 seeds, pmp-adam): width 4 → worst held-out
    accuracy 97.8 % after 4000 steps, width 6 → 97.8 % worst / 99.6 % mean after 3000 steps.
    """
    d_in = int(d_in)
    if field == "hamiltonian":
        return 2 * ((3 * d_in + 1) // 2)
    return 3 * d_in


def range_normalisation(X):
    """``(shift, scale)`` mapping the training inputs' bounding box into [−1, 1]^d: shift = the
    box centre, scale = the largest half-width (one scale for all features, so shapes keep their
    aspect ratio). For data already in the unit disc (the built-in data sets) it is ≈ identity."""
    X = np.asarray(X, dtype=float)
    lo, hi = X.min(axis=0), X.max(axis=0)
    scale = float(np.max(hi - lo) / 2)
    return ((lo + hi) / 2).tolist(), (scale if scale > 0 else 1.0)


def make_model(X, y, field="outer", integrator="euler", layers=20, T=5.0, width=None, alpha=1e-3,
               beta=0.0, n_classes=None, normalize=False, **model_options):
    """A :class:`ResNetODE` sized for ``(X, y)``; ``normalize=True`` adds the fixed input map of
    :func:`range_normalisation` (stored in the model, so predictions apply it too)."""
    X = np.asarray(X, dtype=float)
    if normalize:
        model_options["input_shift"], model_options["input_scale"] = range_normalisation(X)
    if X.ndim != 2:
        raise InputError(f"data must be an (n, d) array (got shape {X.shape})")
    if n_classes is None:
        n_classes = max(int(np.max(y)) + 1, 2)
    if width is None:
        width = default_width(field, X.shape[1])
    return ResNetODE(field=field, d_in=X.shape[1], width=width, n_classes=n_classes, layers=layers, T=T,
                     integrator=integrator, alpha=alpha, beta=beta, **model_options)


def train(X, y, solver="adam", field="outer", integrator="euler", layers=20, T=5.0, width=None, alpha=1e-3,
          beta=0.0, iterations=None, seed=0, params0=None, callback=None, quiet=True, device="cpu",
          model=None, **options):
    """Train a ResNet-ODE classifier on ``(X, y)``; returns an :class:`ocdl.optim.OptimizeResult`.

    ``solver`` is a key of ``SOLVERS``; ``iterations=None`` uses ``DEFAULT_ITERATIONS``;
    ``seed`` fixes the initial parameters (``model.init(seed)``) unless ``params0`` is given.
    ``callback(iteration, params, loss)`` is called every iteration; returning True stops.
    Solver options go by name (e.g. ``lr``, ``schedule``, ``checkpoint``, ``checkpoint_every``,
    ``should_stop``, ``state0``; for adam/pmp-adam/pmp-gd ``batch_size``, ``epochs``,
    ``validation``, ``patience``, ``test=(X_test, y_test)``, see :mod:`ocdl.solvers.gradient`).
    Training sets of more than ``FULL_BATCH_MAX`` samples train in mini-batches by default
    (:func:`default_batching`). Divergence raises :class:`~ocdl.errors.SolverError` whose
    ``result`` holds the last good parameters.
    """
    check_choice("solver", solver, list(SOLVERS))
    if model is None:
        model = make_model(X, y, field=field, integrator=integrator, layers=layers, T=T, width=width,
                           alpha=alpha, beta=beta, n_classes=options.pop("n_classes", None))
    X, y = model.check_data(X, y)
    default_batching(solver, len(y), options)
    if solver in MINIBATCH_SOLVERS:
        options.setdefault("batch_seed", seed)      # --seed also fixes the batch order and the validation split
    if options.get("batch_size") is not None and options.get("epochs") is None and iterations is None \
            and len(y) > FULL_BATCH_MAX:
        options["epochs"] = DEFAULT_EPOCHS
    if iterations is None:
        iterations = DEFAULT_ITERATIONS.get(solver, 1000)
    if int(iterations) < 0:
        raise InputError(f"--iterations must be ≥ 0 (got {iterations})")
    if params0 is None:
        params0 = model.init(seed=seed)
    else:
        params0 = {k: np.array(v, dtype=float) for k, v in params0.items()}
        model.check_params(params0)
    if solver in ("adam", "lbfgs"):
        options["device"] = device
    return SOLVERS[solver](model, params0, X, y, iterations=int(iterations), callback=callback,
                           quiet=quiet, **options)
