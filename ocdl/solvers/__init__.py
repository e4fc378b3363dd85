"""Training entry point and the solver registry.

``train(X, y, solver=...)`` builds a :class:`~ocdl.models.ResNetODE`, initialises it (or takes
``params0``) and runs ``SOLVERS[solver](model, params0, X, y, iterations=..., callback=...,
quiet=..., **options)``, which returns a :class:`TrainResult`.

Solvers here: ``adam``, ``lbfgs`` (torch autograd) and ``pmp-adam``, ``pmp-lbfgs``, ``pmp-gd``
(costate gradient, no autograd tape). Others register themselves in ``SOLVERS`` (one line each).
"""
import numpy as np

from ocdl.errors import InputError, check_choice
from ocdl.models import ResNetODE
from ocdl.solvers.base import TrainResult  # noqa: F401
from ocdl.solvers.pmpopt import pmp_adam, pmp_gd, pmp_lbfgs
from ocdl.solvers.torchopt import adam, lbfgs

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

#: iterations used when ``iterations=None``
DEFAULT_ITERATIONS = {"adam": 2000, "pmp-adam": 2000, "pmp-gd": 2000, "lbfgs": 1000, "pmp-lbfgs": 1000}


def default_width(field, d_in):
    """Width used when ``width=None``: 2 × input dimension (4 for planar data) for every field.

    A planar flow can untangle two spirals only with difficulty (it is a homeomorphism of the
    plane); two extra dimensions make the classes separable easily and robustly.
    """
    return 2 * int(d_in)


def make_model(X, y, field="outer", integrator="euler", layers=20, T=5.0, width=None, alpha=1e-3,
               beta=0.0, n_classes=None, **model_options):
    X = np.asarray(X, dtype=float)
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
    """Train a ResNet-ODE classifier on ``(X, y)``; returns a :class:`TrainResult`.

    ``solver`` is a key of ``SOLVERS``; ``iterations=None`` uses ``DEFAULT_ITERATIONS``;
    ``seed`` fixes the initial parameters (``model.init(seed)``) unless ``params0`` is given.
    ``callback(iteration, params, loss)`` is called every iteration; returning True stops.
    Solver options go by name (e.g. ``lr``, ``schedule``, ``checkpoint``, ``checkpoint_every``,
    ``should_stop``, ``state0``). Divergence raises :class:`~ocdl.errors.SolverError` whose
    ``result`` holds the last good parameters.
    """
    check_choice("solver", solver, list(SOLVERS))
    if model is None:
        model = make_model(X, y, field=field, integrator=integrator, layers=layers, T=T, width=width,
                           alpha=alpha, beta=beta, n_classes=options.pop("n_classes", None))
    X, y = model.check_data(X, y)
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
