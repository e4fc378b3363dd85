"""Learning forces from equations of motion, posed as optimal-control problems.

The unknown force is a piecewise-linear table (:mod:`~ocdl.forces.table`) — a time-invariant
control of the EOM network (:mod:`~ocdl.forces.network`: the equation of motion discretised by
euler / heun / rk4 / verlet / gauss2, one layer per step). Problems (:mod:`~ocdl.forces.problems`):
``DragProblem`` (``v̇ = g − F(v)``), ``PositionProblem`` (``ẋ = v, v̇ = F(x)``) and
(:mod:`~ocdl.forces.oscillator`) ``OscillatorProblem`` (``x'' + 2γx' + ω0²x = 0``) and
(:mod:`~ocdl.forces.potential`) ``PotentialProblem`` (``x'' + 2γx' + ω0² V(x) = 0``, V a table,
solved by :func:`~ocdl.forces.potential.solve_potential`). Solvers
(:mod:`~ocdl.forces.solvers`): ``adam`` (autograd), ``pmp-adam`` / ``pmp-lbfgs`` (costate gradient),
``newton`` (CasADi Gauss–Newton), ``pinn`` (oscillator and potential, :mod:`~ocdl.forces.pinn`, which
also holds the PINN's forward/extrapolation task ``DampedOscillator`` and the exact ``exact_damped``).
Entry points: :func:`ocdl.forces.learn.learn_table`, :func:`ocdl.forces.oscillator.solve_oscillator`.

Submodules are imported on use, so the light ones (``checks``, ``simulate``) need no torch.
"""
