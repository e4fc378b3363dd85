"""Training entry point and the solver registry.

``train(X, y, solver=...)`` builds a :class:`~ocdl.models.ResNetODE`, initialises it (or takes
``params0``) and runs ``SOLVERS[solver](model, params0, X, y, iterations=..., callback=...,
quiet=..., **options)``, which returns an :class:`ocdl.optim.OptimizeResult`.

Solvers here: ``adam``, ``lbfgs`` (torch autograd) and ``pmp-adam``, ``pmp-lbfgs``, ``pmp-gd``
(costate gradient, no autograd tape). Others register themselves in ``SOLVERS`` (one line each).
Each solver function declares what it supports (``@supports(fields=…, activations=…,
integrators=…, iterations=…)``, :mod:`ocdl.solvers.support`); ``train`` refuses any other model
with one line before any work.
"""
import numpy as np

from ocdl.errors import InputError, check_choice
from ocdl.models import ResNetODE
from ocdl.solvers.gradient import adam, lbfgs, pmp_adam, pmp_gd, pmp_lbfgs
from ocdl.solvers.support import check, declaration, supports  # noqa: F401  (supports: for new solvers)

SOLVERS = {
    "adam": adam,
    "lbfgs": lbfgs,
    "pmp-adam": pmp_adam,
    "pmp-lbfgs": pmp_lbfgs,
    "pmp-gd": pmp_gd,
}
from ocdl.solvers.newton import newton as _newton  # noqa: E402
from ocdl.solvers.ipopt import ipopt as _ipopt  # noqa: E402
from ocdl.solvers.msa import msa as _msa  # noqa: E402
from ocdl.solvers.shooting import shooting as _shooting  # noqa: E402
SOLVERS.update({"newton": _newton, "ipopt": _ipopt, "msa": _msa, "shooting": _shooting})

#: weight decay α, the default of ``train`` and of ``ocdl train``: on two spirals (1.5 turns, noise
#: 0.03, 150 points per class, range normalisation, 12 seeds, pmp-adam) the worst held-out accuracy
#: was 96.0 % with α = 1e-3, 98.5 % with 3e-3 and 98.75 % with 1e-2.
from ocdl.solvers.defaults import ALPHA as DEFAULT_ALPHA  # noqa: E402  (the one table)
CLI_ALPHA = DEFAULT_ALPHA

#: input maps ``make_model(normalize=...)`` knows (see :func:`normalisation`)
NORMALIZATIONS = ("standard", "range", "none")
#: the default input map of ``train``, of ``ocdl train`` on CSV data and of the estimator. Measured
#: (pmp-adam, defaults otherwise, held-out accuracy): wine 70/30 split seeds 0/1 — standard 98.1 /
#: 96.3 %, range 96.3 / 96.3 %; breast cancer seed 0 — standard 95.3 %, range 93.0 %; two spirals (1.5 turns, noise
#: 0.03, 150 per class, seeds 0/1/2, test = 200 per class from another seed) — standard 100 / 99.8 /
#: 99.2 %, range 100 / 99.8 / 98.5 %.
DEFAULT_NORMALIZE = "standard"
#: ``ocdl compare``'s weight decay on the synthetic sets (its documented spirals studies); real
#: data and CSV files get :data:`DEFAULT_ALPHA`, as in ``ocdl train``
COMPARE_SYNTHETIC_ALPHA = 1e-3


def default_normalize(data, from_table=False):
    """The input map ``ocdl train`` and ``ocdl compare`` use when ``--normalize`` is not given:
    ``"range"`` for the synthetic 2-D sets (``--data spirals``, …), else :data:`DEFAULT_NORMALIZE`
    (CSV files — ``from_table`` — and the real built-in sets)."""
    from ocdl.data import DATASETS
    return "range" if data in DATASETS and not from_table else DEFAULT_NORMALIZE

#: iterations used when ``iterations=None``: each solver's own declaration (``@supports(iterations=…)``)
DEFAULT_ITERATIONS = {name: declaration(fn).iterations for name, fn in SOLVERS.items()}


#: costate solvers that run the torch sweeps of ocdl.pmp.torch_sweeps when given a ``device``
DEVICE_SOLVERS = ("pmp-adam", "pmp-gd", "pmp-lbfgs")

#: solvers that take ``batch_size``, ``epochs``, ``validation``, ``patience``, ``test`` (mini-batches)
MINIBATCH_SOLVERS = ("adam", "pmp-adam", "pmp-gd", "msa", "newton")
BATCH_OPTIONS = ("batch_size", "epochs", "validation", "patience", "test")

#: mini-batch defaults by data size (the one table and its measurements: :mod:`ocdl.solvers.defaults`)
from ocdl.solvers.defaults import (BATCH_LR, DEFAULT_BATCH, DEFAULT_EPOCHS, FULL_BATCH_MAX, MSA_EPOCHS,  # noqa: E402,F401
                                   NEWTON_BATCH, NEWTON_EPOCHS, NEWTON_HESSIAN_SAMPLE, NEWTON_INIT_BATCH,
                                   NEWTON_INIT_CONV_EPOCHS, NEWTON_INIT_EPOCHS, NEWTON_INIT_HESSIAN_SAMPLE)


def default_batching(solver, n, options, iterations=None, field=None):
    """Fill in the mini-batch defaults of ``options`` for ``n`` training samples: sets with more
    than ``FULL_BATCH_MAX`` samples train in batches of ``DEFAULT_BATCH`` for ``DEFAULT_EPOCHS``
    epochs (unless ``iterations``/``epochs`` are given; newton: batches of ``NEWTON_BATCH``,
    Hessian-vector products on ``NEWTON_HESSIAN_SAMPLE`` rows, ``NEWTON_EPOCHS`` epochs — with
    ``warm_start="none"`` ``NEWTON_INIT_BATCH``, ``NEWTON_INIT_HESSIAN_SAMPLE``, ``NEWTON_INIT_EPOCHS``
    (``field="conv"``: ``NEWTON_INIT_CONV_EPOCHS``); msa
    ``MSA_EPOCHS`` epochs); smaller
    ones in full batch. A mini-batch run of adam/pmp-adam without ``lr`` uses ``BATCH_LR``.
    The one place these defaults are applied (``train``, ``ocdl train``, ``ocdl compare``)."""
    for k in BATCH_OPTIONS:
        if k in options and options[k] is None:
            del options[k]
    if solver not in MINIBATCH_SOLVERS or options.get("formulation") == "full":
        bad = [k for k in BATCH_OPTIONS if k in options and not (k == "test" and solver == "newton")]
        if bad:
            raise InputError(f"{', '.join('--' + k.replace('_', '-') for k in bad)} appl"
                             f"{'ies' if len(bad) == 1 else 'y'} to the solvers {', '.join(MINIBATCH_SOLVERS)} only"
                             f" (newton: with --newton-formulation reduced)")
        return options
    large = n > FULL_BATCH_MAX
    cold = solver == "newton" and options.get("warm_start") == "none"     # newton from the initialisation
    if options.get("batch_size") is None and large:
        options["batch_size"] = (NEWTON_INIT_BATCH if cold else NEWTON_BATCH) if solver == "newton" else DEFAULT_BATCH
        if solver == "newton" and options.get("hessian_sample") is None:
            options["hessian_sample"] = NEWTON_INIT_HESSIAN_SAMPLE if cold else NEWTON_HESSIAN_SAMPLE
    if options.get("batch_size") is not None and options.get("epochs") is None and iterations is None and large:
        options["epochs"] = {"newton": (NEWTON_INIT_CONV_EPOCHS if field == "conv" else NEWTON_INIT_EPOCHS) if cold
                             else NEWTON_EPOCHS, "msa": MSA_EPOCHS}.get(solver, DEFAULT_EPOCHS)
    if solver in ("adam", "pmp-adam") and options.get("batch_size", n) < n and options.get("lr") is None:
        options["lr"] = BATCH_LR
    return options


def check_solver_for_model(solver, model):
    """InputError (one line) unless ``solver`` declares support for ``model``'s field, activation
    and integrator (:mod:`ocdl.solvers.support`)."""
    check_choice("solver", solver, list(SOLVERS))
    check(solver, SOLVERS[solver], model)


def default_width(field, d_in):
    """Width used when ``width=None``: the field's own :meth:`~ocdl.models.Field.default_width`
    (3 × input dimension; hamiltonian rounded up to even; conv fields None: channels × length)."""
    from ocdl.models import FIELDS
    check_choice("field", field, list(FIELDS))
    return FIELDS[field].default_width(d_in)


def range_normalisation(X):
    """``(shift, scale)`` mapping the training inputs' bounding box into [−1, 1]^d: shift = the
    box centre, scale = the largest half-width (one scale for all features, so shapes keep their
    aspect ratio). For data already in the unit disc (the built-in data sets) it is ≈ identity."""
    X = np.asarray(X, dtype=float)
    lo, hi = X.min(axis=0), X.max(axis=0)
    scale = float(np.max(hi - lo) / 2)
    return ((lo + hi) / 2).tolist(), (scale if scale > 0 else 1.0)


def standard_normalisation(X):
    """``(shift, scale)`` per feature j: shift_j = mean of column j, scale_j = its standard
    deviation (population, ddof = 0, as scikit-learn's StandardScaler), so ``(X − shift)/scale``
    has mean 0 and variance 1 in every column; a constant column keeps scale 1."""
    X = np.asarray(X, dtype=float)
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    return mean.tolist(), np.where(std > 0, std, 1.0).tolist()


def normalisation(X, kind):
    """``(input_shift, input_scale)`` of the fixed input map ``x ↦ (x − shift)/scale`` for
    ``kind`` in :data:`NORMALIZATIONS` (``True`` means ``"range"``, ``False``/``None`` ``"none"``,
    as before); ``(None, None)`` for ``"none"``."""
    if kind is True:
        kind = "range"
    if kind is False or kind is None:
        kind = "none"
    check_choice("normalisation", kind, list(NORMALIZATIONS))
    if kind == "range":
        return range_normalisation(X)
    if kind == "standard":
        return standard_normalisation(X)
    return None, None


def make_model(X, y, field="outer", integrator="euler", layers=None, T=None, width=None, alpha=1e-3,
               beta=0.0, n_classes=None, normalize=False, **model_options):
    """A :class:`ResNetODE` sized for ``(X, y)`` (``n_classes = max(y) + 1`` unless given, width
    :func:`default_width`); ``normalize`` (``"standard"``, ``"range"``/True, ``"none"``/False) adds the
    fixed input map of :func:`normalisation`, computed from X and stored in the model, so
    predictions apply it too. ``model_options`` go to :class:`ResNetODE` (e.g. ``activation``).
    ``layers``/``T`` None: 20 and 5.0, or for the conv fields (with ``channels``, ``kernel``)
    the field's :meth:`~ocdl.models.Field.defaults` (conv: :func:`ocdl.models.conv.conv_defaults` of
    the signal length)."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise InputError(f"data must be an (n, d) array (got shape {X.shape})")
    shift, scale = normalisation(X, normalize)
    if shift is not None:
        model_options["input_shift"], model_options["input_scale"] = shift, scale
    if n_classes is None:
        n_classes = max(int(np.max(y)) + 1, 2)
    # layers/T/width None: the field's defaults (conv: with channels and kernel, from the signal length)
    from ocdl.models import FIELDS
    check_choice("field", field, list(FIELDS))
    defaults = FIELDS[field].defaults(X.shape[1])
    layers = defaults["layers"] if layers is None else layers
    T = defaults["T"] if T is None else T
    for k in ("channels", "kernel"):         # (shape: None = one signal of d positions)
        if k in defaults and model_options.get(k) is None:
            model_options[k] = defaults[k]
    if width is None:
        width = defaults.get("width")
    return ResNetODE(field=field, d_in=X.shape[1], width=width, n_classes=n_classes, layers=layers, T=T,
                     integrator=integrator, alpha=alpha, beta=beta, **model_options)


#: options every solver accepts (the run-control ones are forwarded to each solver, which uses or
#: refuses them)
LOOP_OPTIONS = ("state0", "checkpoint", "checkpoint_every", "should_stop")


def solver_options(solver):
    """Names of the keyword options ``SOLVERS[solver]`` takes beyond the common ones."""
    import inspect
    common = {"model", "params0", "X", "y", "iterations", "callback", "quiet", "device"}
    sig = inspect.signature(SOLVERS[solver])
    return sorted(n for n, p in sig.parameters.items()
                  if p.kind is p.KEYWORD_ONLY and n not in common) + [o for o in LOOP_OPTIONS
                                                                         if o not in sig.parameters]


def train(X, y, solver="adam", *, field="outer", integrator="euler", activation="tanh", layers=None, T=None,
          width=None, alpha=DEFAULT_ALPHA, beta=0.0, normalize=DEFAULT_NORMALIZE, n_classes=None,
          iterations=None, seed=0, params0=None, model=None, callback=None, quiet=True, device=None,
          max_seconds=None, tensorboard_dir=None, **options):
    """Train a ResNet-ODE classifier on inputs X (n, d) and labels y in 0..C−1; returns an
    :class:`~ocdl.optim.OptimizeResult` (``x`` = parameters {K, b, W, mu}, ``fun`` = final cost J,
    ``success``, ``message``, ``nit``, ``history``, ``model``).

    It minimises the discrete cost of :mod:`ocdl.models.resnet`

        J = (1/n) Σ_i Φ(W x_i(N) + μ, c_i) + h Σ_k (α/2)(‖K_k‖² + |b_k|²)
            + (β/2) Σ_k ‖θ_{k+1} − θ_k‖²/h + (α/2)‖W‖²,   x_{k+1} = Ψ_h(x_k; θ_k),  h = T/N,

    over θ = (K_k, b_k)_{k<N}, W, μ.

    Model (ignored when ``model`` is given): ``field`` (inner, outer, hamiltonian, conv,
    hamiltonian-conv), ``integrator``, ``activation``, ``layers`` = N and ``T`` (None: 20 and 5.0, or
    the conv defaults of :func:`make_model`), ``width`` (None: :func:`default_width`), ``alpha`` = α,
    ``beta`` = β, ``n_classes`` (None: max(y) + 1), ``normalize`` = the fixed input map stored in
    the model (:func:`normalisation`: ``"standard"`` per-feature mean/std — the default, as in
    ``ocdl train`` on CSV data and in :class:`ocdl.ResNetODEClassifier` —, ``"range"``, ``"none"``).

    Run: ``solver`` is a key of ``SOLVERS``; ``iterations=None`` uses ``DEFAULT_ITERATIONS``;
    ``seed`` fixes the initial parameters (``model.init(seed)``) unless ``params0`` is given;
    ``callback(iteration, params, loss)`` is called every iteration (returning True stops);
    ``device`` (a torch device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``) runs adam/lbfgs' autograd and the
    pmp-* solvers' costate sweeps (:mod:`ocdl.pmp.torch_sweeps`) there; None (default): autograd on the
    CPU, numpy costate sweeps. The other solvers run on the CPU (any other device: InputError).
    ``options`` are the solver's own keywords (:func:`solver_options`; e.g. ``lr``, ``schedule``,
    ``gtol``, ``formulation``, ``segments``) and the run controls ``state0``, ``checkpoint``,
    ``checkpoint_every``, ``should_stop``; any other keyword raises TypeError.
    ``tensorboard_dir``: write TensorBoard scalars of every iteration (loss, accuracies, gradient
    norm, learning rate, wall time) to ``tensorboard_dir/<solver>/`` (:mod:`ocdl.optim.tensorboard`;
    extra ``tensorboard``); inside an open :func:`ocdl.optim.tensorboard.session` the run goes there.
    adam, pmp-adam, pmp-gd and msa also take ``batch_size``, ``epochs``, ``validation``, ``patience``,
    ``test=(X_test, y_test)`` (:mod:`ocdl.solvers.gradient`); training sets of more than
    ``FULL_BATCH_MAX`` samples train in mini-batches by default (:func:`default_batching`).
    Divergence raises :class:`~ocdl.errors.SolverError` whose ``result`` holds the last good
    parameters. Bad arguments (complex or empty X, labels that are not class indices, a negative
    ``lr`` …) raise one InputError naming the argument (:func:`ocdl.jobs.train.check_arrays`,
    ``check_options``); a run whose memory or time estimate is too large is refused before it
    starts (:func:`ocdl.jobs.train.guard`; ``max_seconds`` lifts the one-hour time bound).
    """
    from ocdl.jobs import train as job
    check_choice("solver", solver, list(SOLVERS))
    X, y = job.check_arrays(X, y, n_classes if model is None else model.n_classes)
    checked = job.check_options({"layers": layers, "T": T, "width": width, "alpha": alpha, "beta": beta,
                                 "iterations": iterations, "seed": seed, **options})
    options = {k: checked[k] for k in options}
    default_batching(solver, len(y), options, iterations,   # InputError for batch options of other solvers
                     field if model is None else model.field)
    known = solver_options(solver)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"train() got unexpected keyword argument(s) {', '.join(map(repr, unknown))} "
                        f"for solver '{solver}' (its options: {', '.join(known)})")
    if model is None:
        model = make_model(X, y, field=field, integrator=integrator, layers=layers, T=T, width=width,
                           alpha=alpha, beta=beta, n_classes=n_classes, normalize=normalize,
                           activation=activation)
    X, y = model.check_data(X, y)
    job.guard(solver, model, len(y), options, iterations, max_seconds)
    if solver in MINIBATCH_SOLVERS:
        options.setdefault("batch_seed", seed)      # --seed also fixes the batch order and the validation split
    check_solver_for_model(solver, model)
    if solver in DEVICE_SOLVERS and device is not None:
        from ocdl.pmp.dispatch import SWEEPS, lookup
        lookup(SWEEPS, "torch", model)              # InputError if no device sweep covers the model
    if iterations is None:      # the solver's declaration (a function without one: the table's entry)
        decl = getattr(SOLVERS[solver], "supports", None)
        iterations = decl.iterations if decl is not None else DEFAULT_ITERATIONS.get(solver, 1000)
    if int(iterations) < 0:
        raise InputError(f"--iterations must be ≥ 0 (got {iterations})")
    if params0 is None:
        params0 = model.init(seed=seed)
    else:
        params0 = {k: np.array(v, dtype=float) for k, v in params0.items()}
        model.check_params(params0)
    if solver in ("adam", "lbfgs"):
        options["device"] = "cpu" if device is None else device
    elif solver in DEVICE_SOLVERS:
        if device is not None:
            options["device"] = device
    elif device not in (None, "cpu"):
        raise InputError(f"--device {device} applies to the solvers {', '.join(('adam', 'lbfgs') + DEVICE_SOLVERS)} "
                         f"only ('{solver}' runs on the CPU)")
    from ocdl.optim import tensorboard
    with tensorboard.session(tensorboard_dir), tensorboard.run(solver) as tb:
        res = SOLVERS[solver](model, params0, X, y, iterations=int(iterations), callback=callback,
                              quiet=quiet, **options)
        if tb is not None:
            tb.history(res.history)             # solvers whose loop is not the driver's
    return res
