"""Stochastic ResNets and the mean-field limit: particles, Fokker–Planck, backward (adjoint)
equations, mean-field control, Hopf–Cole, Madelung and the NLS. Signs: docs/meanfield.md."""
from ocdl.meanfield.grid import Grid, make_grid  # noqa: F401
from ocdl.meanfield.fokker_planck import (  # noqa: F401
    solve_fokker_planck, gaussian_density, ou_exact, ThetaStepper, FPResult)
from ocdl.meanfield.particles import euler_maruyama  # noqa: F401
