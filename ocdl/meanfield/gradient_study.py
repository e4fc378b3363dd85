r"""Convergence of stochastic-ResNet gradients (1-D, two Gaussian classes, fixed θ and head).

* ``density_vs_deterministic``: the density-method gradient at noise ``ν`` against the
  deterministic PMP gradient for the same initial measure (``ν = 0``: particle PMP over
  midpoint-quantile nodes of each class, many Euler sub-steps). The gap is ``O(ν²)`` down to the
  grid's numerical-diffusion floor (Scharfetter–Gummel → upwind as ``ν → 0``: ``O(h)``).
* ``particles_vs_density``: RMS distance of particle-PMP gradients (``P`` particles, seeds) from
  the density-method gradient at the same ``ν``: ``O(P^{-1/2})`` until the Euler–Maruyama bias.
"""
import numpy as np
from scipy.special import ndtri

from ocdl.meanfield.fokker_planck import gaussian_density
from ocdl.meanfield.grid import make_grid
from ocdl.meanfield.training import DensityProblem, init_params, particle_value_and_grad

MEANS, STDS, LAYERS, T = (-0.6, 0.7), (0.35, 0.3), 4, 1.0


def _flat(g):
    return np.concatenate([np.ravel(g[k]) for k in ("K", "b", "W", "mu")])


def study_params():
    P = init_params(LAYERS, 1, seed=4, scale=0.6)
    P["b"] = np.random.default_rng(1).normal(scale=0.3, size=P["b"].shape)
    P["W"] = np.full((1, 1), 1.5)
    P["mu"] = np.array([0.1])
    return P


def density_gradient(P, nu, cells=1000, steps_per_layer=20):
    g = make_grid(-4, 4, cells)
    rho0 = np.stack([gaussian_density(g, MEANS[c], STDS[c]) for c in (0, 1)], 1)
    prob = DensityProblem(g, rho0, [0.5, 0.5], nu, T, LAYERS, steps_per_layer=steps_per_layer, scheme="cn")
    return _flat(prob.value_and_grad(P)[1])


def deterministic_gradient(P, nodes=4000, substeps=400):
    u = (np.arange(nodes) + 0.5) / nodes
    X = np.concatenate([MEANS[c] + STDS[c] * ndtri(u) for c in (0, 1)])[:, None]
    y = np.repeat([0, 1], nodes)
    return _flat(particle_value_and_grad(P, X, y, 0.0, T, substeps=substeps)[1])


def density_vs_deterministic(nus=(0.4, 0.2, 0.1, 0.05, 0.0), cells=1000, steps_per_layer=20):
    P = study_params()
    gdet = deterministic_gradient(P)
    return np.array([np.max(np.abs(density_gradient(P, nu, cells, steps_per_layer) - gdet)) for nu in nus])


def particles_vs_density(nu=0.3, sizes=(100, 400, 1600, 6400), seeds=8, substeps=50, cells=2000, steps_per_layer=40):
    P = study_params()
    gref = density_gradient(P, nu, cells, steps_per_layer)
    out = []
    for n in sizes:
        errs = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            y = np.repeat([0, 1], n // 2)
            X = np.where(y == 0, MEANS[0] + STDS[0] * rng.standard_normal(y.size),
                         MEANS[1] + STDS[1] * rng.standard_normal(y.size))[:, None]
            noise = rng.standard_normal((LAYERS * substeps, y.size, 1))
            G = particle_value_and_grad(P, X, y, nu, T, substeps=substeps, noise=noise)[1]
            errs.append(np.sum((_flat(G) - gref) ** 2))
        out.append(np.sqrt(np.mean(errs)))
    return np.array(out)
