"""The one dispatch table of the sweeps: which code runs a model's costate sweep (and its
cost-only forward: the same sweep with ``store=False``, closed after its forward).

Keyed by ``(backend, family)``:

* backends: ``compiled`` — numpy arrays on the CPU, whole sweeps in numba kernels
  (:mod:`ocdl.pmp.compiled`); ``torch`` — tensors on any device (:mod:`ocdl.pmp.torch_sweeps`),
  chosen by torch inputs or ``device=``, and on the CPU for an activation without a compiled
  form; ``numpy`` — the conv fields (:mod:`ocdl.pmp.fused_conv`) and the implicit methods
  (:mod:`ocdl.pmp.implicit`), which have no other backend;
* families: ``rk`` (the explicit tableaux, Euler included), ``split`` (drift/kick splittings
  of a separable field), ``conv-rk``, ``conv-split``, ``implicit``.
"""
from integrators.tableaux import EXPLICIT
from ocdl.errors import InputError
from ocdl.models.backend import is_torch
from ocdl.models.resnet import SPLITTINGS
from ocdl.pmp import compiled, fused_conv, implicit, torch_sweeps


#: ``(backend, family) → sweep(model, params, X, trajectories, increments, initial_costate, store)``,
#: a two-phase generator (see :func:`finish`); increments (explicit RK on the outer and inner
#: forms only) are checked before (``ocdl.pmp.costate``), the splittings read their sub-steps
#: from ``resnet.SPLITTINGS``
SWEEPS = {
    ("compiled", "rk"): compiled.rk_sweep,
    ("compiled", "split"): compiled.split_sweep,
    ("torch", "rk"): torch_sweeps.rk_sweep,
    ("torch", "split"): torch_sweeps.split_sweep,
    ("numpy", "conv-rk"): fused_conv.conv_rk_sweep,
    ("numpy", "conv-split"): fused_conv.conv_split_sweep,
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


def lookup(table, be, model):
    """``table[be, family(model)]`` (:data:`SWEEPS`); InputError if backend
    ``be`` has no sweep for the model (torch: the conv fields and the implicit methods)."""
    fam = family(model)
    if (be, fam) not in table:
        what = f"the {model.field} field" if fam.startswith("conv") else f"integrator '{model.integrator}'"
        raise InputError(f"no device sweep for {what} (the torch sweeps cover the explicit Runge–Kutta "
                         f"methods and the splittings); leave out --device to use the numpy sweep")
    return table[be, fam]


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
    return "split" if integ in SPLITTINGS else "rk"


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
