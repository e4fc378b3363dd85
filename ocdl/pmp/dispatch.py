"""The one dispatch table of the sweeps: which code runs a model's costate sweep (and its
cost-only forward, :data:`FORWARDS`).

Keyed by ``(backend, family)``:

* backends: ``compiled`` — numpy arrays on the CPU, whole sweeps in numba kernels
  (:mod:`ocdl.pmp.compiled`); ``torch`` — tensors on any device (:mod:`ocdl.pmp.torch_sweeps`),
  chosen by torch inputs or ``device=``, and on the CPU for an activation without a compiled
  form; ``numpy`` — the conv fields (:mod:`ocdl.pmp.fused_conv`) and the implicit methods
  (:mod:`ocdl.pmp.implicit`), which have no other backend;
* families: ``euler``, ``rk`` (the other explicit tableaux), ``split`` (drift/kick splittings
  of a separable field), ``conv-rk``, ``conv-split``, ``implicit``.
"""
from integrators.tableaux import EXPLICIT
from ocdl.errors import InputError
from ocdl.models.backend import is_torch
from ocdl.models.resnet import SPLITTINGS
from ocdl.pmp import compiled, fused_conv, implicit, torch_sweeps


def _subs(f):
    """A splitting sweep ``f(model, params, X, subs, trajectories, initial_costate)`` in the
    table's signature (the sub-steps from ``resnet.SPLITTINGS``; no increments: refused before)."""
    def sweep(model, params, X, trajectories=False, increments=None, initial_costate=False):
        return f(model, params, X, SPLITTINGS[model.integrator], trajectories, initial_costate)
    return sweep


def _no_increments(increments):
    if increments is not None:
        raise InputError("additive increments are not supported for the conv fields")


def _conv_rk(model, params, X, trajectories=False, increments=None, initial_costate=False):
    _no_increments(increments)
    return fused_conv.conv_rk_sweep(model, params, X, trajectories, initial_costate)


#: ``(backend, family) → sweep(model, params, X, trajectories, increments, initial_costate)``,
#: a two-phase generator (see :func:`finish`)
SWEEPS = {
    ("compiled", "euler"): compiled.euler_sweep,
    ("compiled", "rk"): compiled.rk_sweep,
    ("compiled", "split"): _subs(compiled.split_sweep),
    ("torch", "euler"): torch_sweeps.rk_sweep,        # Euler: the one-stage tableau
    ("torch", "rk"): torch_sweeps.rk_sweep,
    ("torch", "split"): _subs(torch_sweeps.split_sweep),
    ("numpy", "conv-rk"): _conv_rk,
    ("numpy", "conv-split"): _subs(fused_conv.conv_split_sweep),
    ("numpy", "implicit"): implicit.sweep,
}


def finish(sweep, lamN):
    """The backward phase of a two-phase sweep: send it ``p_N`` and return what it returns,
    ``(gK, gb, states, costates, p0)``.

    Every sweep of the table is a generator in two phases. The forward runs when it is first
    advanced (``x_N = next(sweep)``) and keeps what the costate sweep reads — σ of every layer or
    stage, or the states — in the model's workspace (:mod:`ocdl.pmp.workspace`), which it holds
    until it ends. Sent ``p_N`` (n, d), it runs the costate sweep from those stored stages
    (the forward is not re-run) and returns ``gK, gb`` (the θ-gradient of the data term),
    ``states`` and ``costates`` ((N+1, n, d) with ``trajectories``, else None) and ``p0`` (the
    initial costate, (n, d), with ``initial_costate``, else None). A sweep dropped after its
    forward releases the workspace when it is garbage-collected (``close``)."""
    try:
        sweep.send(lamN)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("a sweep yielded more than once")        # pragma: no cover - a broken sweep


def run(sweep, terminal):
    """Both phases of ``sweep`` with the terminal ``terminal(xN) → (J_data, p_N, extra)`` between
    them: ``(J_data, gK, gb, xN, extra, states, costates)``."""
    xN = next(sweep)
    Jd, lamN, extra = terminal(xN)
    gK, gb, states, costates, _ = finish(sweep, lamN)
    return Jd, gK, gb, xN, extra, states, costates


def _conv_forward(model, params, X, increments=None):
    _no_increments(increments)
    if model.integrator in SPLITTINGS:
        return fused_conv.conv_split_final_state(model, params, X, SPLITTINGS[model.integrator])
    return fused_conv.conv_rk_final_state(model, params, X)


def _compiled_forward(model, params, X, increments=None):
    return compiled.final_state(model, params, X, increments, SPLITTINGS.get(model.integrator))


#: the same table for the cost-only forward: ``(backend, family) → forward(model, params, X,
#: increments)`` returning ``x_N`` (n, d), nothing stored (the implicit family: the model's own)
FORWARDS = {
    **{("compiled", fam): _compiled_forward for fam in ("euler", "rk", "split")},
    **{("torch", fam): torch_sweeps.final_state for fam in ("euler", "rk", "split")},
    ("numpy", "conv-rk"): _conv_forward,
    ("numpy", "conv-split"): _conv_forward,
    ("numpy", "implicit"): lambda model, params, X, increments=None: model.forward(params, X)[-1],
}


def family(model):
    """The sweep family of ``model`` (see the module docstring); InputError if it has none."""
    integ, form = model.integrator, model.F.form
    if integ in implicit.IMPLICIT_RK:
        if form == "conv":
            raise InputError(f"no exact costate sweep for the conv fields with '{integ}' "
                             f"(they have one for the explicit Runge–Kutta methods and the splittings)")
        return "implicit"
    if integ not in EXPLICIT and integ not in SPLITTINGS:
        raise InputError(f"no exact costate sweep for integrator '{integ}' (it has one for "
                         f"euler, heun, rk4, {', '.join(implicit.IMPLICIT_RK)} and, on the hamiltonian "
                         f"field, {', '.join(SPLITTINGS)}); use the autograd solvers adam/lbfgs for it")
    if form == "conv":
        return "conv-split" if integ in SPLITTINGS else "conv-rk"
    if form not in ("outer", "inner"):
        raise InputError(f"field '{model.F.name}' has no fused form; use pmp.module_value_and_grad "
                         f"or the autograd solvers for it")
    return "split" if integ in SPLITTINGS else ("euler" if integ == "euler" else "rk")


def backend(model, params, X, device=None):
    """``"torch"`` for torch inputs or a ``device``, else ``"numpy"`` for the conv and implicit
    families, ``"compiled"`` for the others (``"torch"`` on the CPU for an activation without a
    compiled form)."""
    if device is not None or is_torch(X) or any(is_torch(v) for v in params.values()):
        return "torch"
    fam = family(model)
    if fam in ("conv-rk", "conv-split", "implicit"):
        return "numpy"
    return "compiled" if compiled.supports(model.F.act) else "torch"
