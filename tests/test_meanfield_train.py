"""Stochastic-ResNet training: particle-PMP gradient = ocdl.pmp at ν = 0; density gradient exact
(finite differences) and consistent with the particle gradient."""
import numpy as np
from ocdl import pmp
from ocdl.meanfield import make_grid
from ocdl.meanfield.training import (DensityProblem, Params, gaussian_deposit, particle_value_and_grad, spirals)
from ocdl.models import ResNetODE


def test_particle_pmp_matches_ocdl_pmp_at_zero_noise():
    X, y = spirals(20, seed=3)
    m = ResNetODE(field="outer", d_in=2, n_classes=2, layers=5, T=2.0, integrator="euler", alpha=0.01,
                  beta=0.0, alpha_head=0.02)
    p = m.init(seed=1)
    p["b"] = np.random.default_rng(0).normal(size=p["b"].shape)
    J_ref, g_ref = pmp.value_and_grad(m, p, X, y)
    P = Params(p["K"], p["b"], p["W"][0], float(p["mu"][0]))
    J, G = particle_value_and_grad(P, X, y, np.full(len(y), 1 / len(y)), 0.0, 2.0, 0.01, 0.02)
    # the same discrete gradient in another order of operations: round-off (measured: J identical,
    # blocks ≤ 5.6e-17 absolute with entries ~0.1); bar 1e-13
    assert abs(J - J_ref) < 1e-13
    for a, b in ((G.K, g_ref["K"]), (G.b, g_ref["b"]), (G.W, g_ref["W"][0]), (G.mu, g_ref["mu"][0])):
        assert np.max(np.abs(np.asarray(a) - b)) < 1e-13


def test_density_gradient_matches_finite_differences_including_head():
    X, y = spirals(30, seed=0)
    g = make_grid([-2, -2], [2, 2], [20, 20])
    rho0 = np.stack([gaussian_deposit(g, X[y == c], 0.2) for c in (0, 1)], 1)
    prob = DensityProblem(g, rho0, [0.5, 0.5], 0.3, 1.0, 3, alpha=0.01, alpha_head=0.02, steps_per_layer=2)
    P = Params.init(3, 2, seed=4, scale=0.5)
    J, G = prob.value_and_grad(P)
    v, gv = P.flatten(), G.flatten()
    eps = 1e-6
    fd = np.array([(prob.value_and_grad(Params.unflatten(v + eps * e, 3, 2))[0]
                    - prob.value_and_grad(Params.unflatten(v - eps * e, 3, 2))[0]) / (2 * eps)
                   for e in np.eye(v.size)])
    assert np.max(np.abs(fd - gv)) < 1e-8          # central FD: O(eps²) + O(1e-16/eps)


def test_density_gradient_tends_to_deterministic_pmp_as_nu_to_zero():
    from ocdl.meanfield.gradient_study import density_vs_deterministic
    nus = (0.4, 0.2, 0.1)
    err = density_vs_deterministic(nus, cells=1000, steps_per_layer=20)
    # the gap is O(ν²) (measured 4.3e-2, 1.1e-2, 2.8e-3) above the grid floor (7e-4 at 1000 cells)
    assert np.all(err[:-1] / err[1:] > 3.3), err
    assert err[-1] < 5e-3


def test_particle_gradients_converge_to_density_gradient_at_mc_rate():
    from ocdl.meanfield.gradient_study import particles_vs_density
    sizes = (100, 400, 1600, 6400)
    rms = particles_vs_density(0.3, sizes, seeds=8, substeps=50)
    slope = np.polyfit(np.log(sizes), np.log(rms), 1)[0]
    # RMS over 8 seeds of a P^{-1/2} quantity; measured slope −0.56 (ratios 1.9–2.4 per ×4)
    assert -0.65 < slope < -0.4, (slope, rms)
