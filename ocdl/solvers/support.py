"""What a solver supports, declared next to the solver and checked in one place.

Every solver function carries a :class:`Supports` (``@supports(...)`` on its definition): the
fields, activations and integrators it computes correctly, and its default iteration count.
:func:`check` refuses any other model with one line (:class:`~ocdl.errors.InputError`, exit 2 at
the command line) before any work — a solver never silently computes another network.

Each of ``fields``, ``activations``, ``integrators`` is

* :data:`ALL` — everything the model accepts (every registered field or activation; every
  integrator :func:`ocdl.models.resnet.integrators_for` the field);
* a tuple of names;
* a :class:`Rule`: a one-line description and a predicate — on the field *class*
  (``FIELDS[name]``), on the activation object, or for integrators a function of the field
  class returning the names.

Predicates read what the objects carry (``form``, ``separable``, ``conv``; the activation's
forms), so a newly registered field or activation is accepted exactly by the solvers whose
predicate it meets, without editing any solver.
"""
from dataclasses import dataclass

from ocdl.errors import InputError

ALL = "all"


@dataclass(frozen=True)
class Rule:
    """``description`` (for messages and docs) and ``test``: predicate (fields, activations) or
    field class → integrator names (integrators)."""
    description: str
    test: object


@dataclass(frozen=True)
class Supports:
    fields: object = ALL
    activations: object = ALL
    integrators: object = ALL
    #: iterations when ``iterations=None`` (``ocdl.solvers.DEFAULT_ITERATIONS`` is read from these)
    iterations: int = 1000

    def field_names(self):
        from ocdl.models.fields import FIELDS
        return [n for n, cls in FIELDS.items() if _ok(self.fields, n, cls)]

    def activation_names(self):
        from ocdl.models.activations import ACTIVATIONS
        return [n for n, act in ACTIVATIONS.items() if _ok(self.activations, n, act)]

    def integrator_names(self, field):
        """Integrators supported on ``field`` (a name): those the field accepts, filtered."""
        from ocdl.models.fields import FIELDS
        from ocdl.models.resnet import integrators_for
        accepted = integrators_for(field)
        spec = self.integrators
        if spec == ALL:
            return list(accepted)
        names = spec.test(FIELDS[field]) if isinstance(spec, Rule) else spec
        return [n for n in accepted if n in names]


def _ok(spec, name, obj):
    if spec == ALL:
        return True
    if isinstance(spec, Rule):
        return bool(spec.test(obj))
    return name in spec


def supports(*, fields=ALL, activations=ALL, integrators=ALL, iterations=1000):
    """Decorator: attach a :class:`Supports` to a solver function as ``fn.supports``."""
    decl = Supports(fields, activations, integrators, int(iterations))

    def attach(fn):
        fn.supports = decl
        return fn
    return attach


def declaration(fn):
    """The :class:`Supports` of a solver function (everything, if it declares nothing)."""
    return getattr(fn, "supports", None) or Supports()


def check(name, fn, model):
    """InputError (one line) unless solver ``name`` (function ``fn``) supports ``model``'s field,
    activation and integrator."""
    decl = declaration(fn)
    for kind, value, ok, valid in (
            ("field", model.field, lambda: _ok(decl.fields, model.field, type(model.F)), decl.field_names),
            ("activation", model.F.act.name, lambda: _ok(decl.activations, model.F.act.name, model.F.act),
             decl.activation_names),
            ("integrator", model.integrator, lambda: model.integrator in decl.integrator_names(model.field),
             lambda: decl.integrator_names(model.field))):
        if not ok():
            names = valid()
            spec = {"field": decl.fields, "activation": decl.activations, "integrator": decl.integrators}[kind]
            why = f" ({spec.description})" if isinstance(spec, Rule) else ""
            raise InputError(f"solver '{name}' does not support {kind} '{value}'"
                             + (f" with field '{model.field}'" if kind == "integrator" else "")
                             + f"{why}; it supports: {', '.join(names) if names else 'none'}")


#: common declarations
WITH_FUSED_FORM = Rule("fields with a fused form, which the costate sweeps run on",
                       lambda F: F.form is not None)
FULLY_CONNECTED = Rule("fully connected fields with a fused form (per-layer dense blocks)",
                       lambda F: F.form is not None and not getattr(F, "conv", False))


def _exact(F):
    from ocdl.models.resnet import exact_integrators
    return exact_integrators(F.name)


def _explicit(F):
    from integrators.tableaux import EXPLICIT
    return tuple(EXPLICIT)


def _has_casadi(act):
    from ocdl.models.activations import Activation
    return type(act).casadi is not Activation.casadi


EXACT_COSTATE = Rule("integrators with an exact costate sweep", _exact)
EXPLICIT_RK = Rule("explicit Runge–Kutta methods", _explicit)
WITH_CASADI_FORM = Rule("fully connected fields with a CasADi form",
                        lambda F: callable(getattr(F, "casadi", None)) and not getattr(F, "conv", False))
CASADI_ACTIVATIONS = Rule("activations with a CasADi form", _has_casadi)
