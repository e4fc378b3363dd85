"""The one optimisation core of ocdl: one driver, one result type, pluggable step rules.

``minimize(objective, x0, rule, iterations, ...)`` works on ``objective(x, batch) → (f, g[, info])``
over a flat float64 vector, whatever computes the gradient (the costate sweep, torch autograd,
CasADi). Rules: :class:`Adam`, :class:`GradientDescent` (Armijo), :class:`LBFGS` (scipy
L-BFGS-B), :class:`TorchLBFGS` (strong Wolfe), :class:`LevenbergMarquardt` (Gauss–Newton).
Every run returns an :class:`OptimizeResult` (``x, fun, success, status, message, nit,
history``); ``success`` means the convergence certificate passed at the returned x, on the
full objective (:mod:`ocdl.optim.certificates`, docs/optim.md). Run control — progress,
the caller's callback, checkpoints and the interrupt, divergence, early stopping, keeping the
best iterate, snapshots — is given as hook objects (:mod:`ocdl.optim.hooks`). A rule is
``init(x, saved, run) → state`` and ``update(state, point, run) → Step(x, state, info, stop)``
(:mod:`ocdl.optim.driver`).
"""
from ocdl.optim.batches import Batches
from ocdl.optim.driver import (CONVERGED, DIVERGED, ITERATION_CAP, STALLED, STOPPED, Point, Step, Stop, minimize,
                               result_from_state)
from ocdl.optim.hooks import Callback, Checkpointing, Divergence, EarlyStopping, KeepBest, ProgressBar, Snapshots
from ocdl.optim.lbfgs import LBFGS, TorchLBFGS
from ocdl.optim.lm import LevenbergMarquardt
from ocdl.optim.result import OptimizeResult
from ocdl.optim.rules import Adam, GradientDescent
from ocdl.optim.schedules import SCHEDULES, learning_rate

__all__ = ["minimize", "OptimizeResult", "Point", "Step", "Stop", "result_from_state", "Adam", "GradientDescent",
           "LBFGS", "TorchLBFGS", "LevenbergMarquardt", "Batches", "learning_rate", "SCHEDULES", "CONVERGED",
           "ITERATION_CAP", "STOPPED", "STALLED", "DIVERGED", "Checkpointing", "Divergence", "EarlyStopping",
           "ProgressBar", "Callback", "KeepBest", "Snapshots"]
