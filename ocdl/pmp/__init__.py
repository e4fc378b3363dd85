"""Pontryagin machinery on the discrete ResNet-ODE: cost, costate sweep, exact gradient, KKT residual.

``value_and_grad`` runs the state forward and the costate backward with the adjoint partner
of the forward method — no autograd tape — and returns the exact gradient of the discrete cost
(see :mod:`ocdl.pmp.costate`). ``vjp`` runs the forward once, keeping its stages, and
returns the costate sweep as a pullback (the backward of :class:`ocdl.nn.ODEBlock`).
``continuous_value_and_grad`` is the optimise-then-discretise alternative, accurate only to
O(h^q).
"""
from ocdl.pmp.costate import cost, costate, final_state, kkt_residual, sweep, value_and_grad, vjp  # noqa: F401
from ocdl.pmp.continuous import continuous_value_and_grad  # noqa: F401
from ocdl.pmp.reference import autograd_value_and_grad, finite_difference_directional  # noqa: F401
from ocdl.pmp.gradcheck import gradcheck, rel_error  # noqa: F401
from ocdl.pmp.module import module_objective, module_value_and_grad  # noqa: F401
