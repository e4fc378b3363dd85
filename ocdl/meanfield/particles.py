r"""Euler–Maruyama ensembles of the stochastic ResNet ``dX = f(X, t) dt + ν dW``.

``X_{k+1} = X_k + h f(X_k, t_k) + ν √h ξ_k``, ``ξ_k ~ N(0, I)``, vectorised over particles
(array ``(P, d)``). With ``ν = 0`` this is the ResNet ``x_{k+1} = x_k + h f(x_k, θ_k)``.
Its law solves the Fokker–Planck equation of :mod:`ocdl.meanfield.fokker_planck` (weak order 1
in ``h``; Monte-Carlo error ``O(P^{-1/2})``).
"""
import numpy as np

from ocdl.errors import InputError, SolverError


def euler_maruyama(drift, x0, nu, T, steps, rng, store=False):
    """Integrate ``P`` particles ``x0`` (shape ``(P,)`` or ``(P, d)``); ``drift(x, t)`` → like ``x``.

    Returns the final positions (and the list of all layers if ``store``).
    """
    x = np.array(x0, dtype=float)
    if not (nu >= 0 and np.isfinite(nu)):
        raise InputError("--nu must be a finite number ≥ 0")
    steps = int(steps)
    if steps < 1 or not T > 0:
        raise InputError("need T > 0 and steps ≥ 1")
    h = T / steps
    traj = [x.copy()] if store else None
    for k in range(steps):
        x = x + h * np.asarray(drift(x, k * h), dtype=float) + nu * np.sqrt(h) * rng.standard_normal(x.shape)
        if store:
            traj.append(x.copy())
    if not np.all(np.isfinite(x)):
        raise SolverError("particles diverged (non-finite positions); reduce the drift or raise --steps")
    return (x, traj) if store else x


def probe_domain(drift, mean, std, nu, T, xmin=None, xmax=None, probes=2000, steps=100, spreads=8.0, seed=0):
    """A 1-D domain ``(lo, hi)`` for the density started from ``N(mean, std²)`` under ``drift``.

    A given wall is kept; a missing one is placed where ``probes`` noise-free Euler particles
    (``steps`` steps to ``T``, starting points from generator ``seed``) reach at their extreme over
    start and end, widened by ``spreads · max(std, ν√T)``. InputError if the drift is not finite
    along the probes or the walls are not ordered."""
    if xmin is not None and xmax is not None:
        lo, hi = xmin, xmax
    else:
        rng = np.random.default_rng(seed)
        x0 = mean + std * rng.standard_normal(probes)
        try:
            xT = euler_maruyama(drift, x0, 0.0, T, steps, rng)
        except SolverError:
            raise InputError("the drift is not finite along probe trajectories from the initial density; "
                             "check --drift or give --xmin/--xmax") from None
        spread = max(std, nu * np.sqrt(T))
        lo = min(x0.min(), xT.min()) - spreads * spread if xmin is None else xmin
        hi = max(x0.max(), xT.max()) + spreads * spread if xmax is None else xmax
    if not hi > lo:
        raise InputError(f"--xmax ({hi:g}) must be greater than --xmin ({lo:g})")
    return lo, hi
