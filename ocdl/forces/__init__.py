"""Learning forces from equations of motion, posed as optimal-control problems.

The unknown force is a piecewise-linear table (:mod:`~ocdl.forces.table`) — a time-invariant
control of the EOM network (:mod:`~ocdl.forces.network`: the equation of motion discretised by
euler / heun / rk4 / verlet / gauss2, one layer per step). Problems: :class:`DragProblem`
(``v̇ = g − F(v)``), :class:`PositionProblem` (``ẋ = v, v̇ = F(x)``) and
:class:`OscillatorProblem` (``x'' + 2γx' + ω0²x = 0``). Solvers: ``adam`` (autograd), ``pmp-adam``
/ ``pmp-lbfgs`` (costate gradient), ``newton`` (CasADi Gauss–Newton), ``pinn`` (oscillator).
"""
from ocdl.forces.learn import learn_table  # noqa: F401
from ocdl.forces.oscillator import OscillatorProblem, solve_oscillator  # noqa: F401
from ocdl.forces.problems import DragProblem, PositionProblem  # noqa: F401
from ocdl.forces.solvers import ForceResult, SOLVERS, choose_lambda, solve  # noqa: F401
from ocdl.forces.table import ForceGrid  # noqa: F401
