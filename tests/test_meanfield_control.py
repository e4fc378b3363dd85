"""Drift-as-control: the FP+HJB sweep and the Hopf–Cole (imaginary-time Schrödinger) system agree,
and both match the closed-form Gaussian answer for a quadratic terminal cost."""
import numpy as np
import pytest

from ocdl.errors import InputError
from ocdl.meanfield import gaussian_density, make_grid
from ocdl.meanfield.control import lq_gaussian, policy_cost, solve_hopf_cole, solve_forward_backward

M0, S0, NU, T, C, Z = -1.0, 0.5, 0.6, 1.0, 2.0, 1.5


def setup(N):
    g = make_grid(-5, 5, N)
    x = g.centres[:, 0]
    return g, x, gaussian_density(g, M0, S0), C / 2 * (x - Z) ** 2


def l1(g, a, b):
    return np.sum(np.abs(a - b)) * g.h[0]


def test_sweep_and_hopf_cole_agree_and_match_closed_form():
    mT, vT, cost = lq_gaussian(M0, S0, NU, T, C, Z)
    diffs = []
    for N in (400, 800):
        g, x, rho0, Phi = setup(N)
        sw = solve_forward_backward(g, rho0, Phi, NU, T, steps=N // 2)
        hc = solve_hopf_cole(g, rho0, Phi, NU, T, steps=N // 2)
        assert sw.success
        exact = np.exp(-(x - mT) ** 2 / (2 * vT)) / np.sqrt(2 * np.pi * vT)
        diffs.append(l1(g, sw.rho, hc.rho))
    # bar: ≤ 1e-3 in L1 (measured at 800 cells / 400 CN steps: sweep–HC 4.9e-4,
    # sweep–exact 4.2e-4, HC–exact 5.6e-4); both are second-order discretisations
    assert diffs[-1] < 1e-3
    assert l1(g, sw.rho, exact) < 1e-3 and l1(g, hc.rho, exact) < 1e-3
    assert diffs[0] / diffs[1] > 3.5, diffs
    # expected cost ∫ρ0 V(0) vs closed form (ν²/2)log(1+cT) + ((m0−z)²+s0²)/(2(1/c+T)): O(h²)
    assert abs(sw.cost - cost) < 2e-3 and abs(hc.cost - cost) < 1e-3, (sw.cost, hc.cost, cost)
    # Hopf–Cole: ρ = φφ̂ keeps mass exactly (the heat step is symmetric): defect is round-off
    assert hc.residual < 1e-12
    # the optimal feedback a = −P(t)(x − z) at t = 0 (P(0) = 1/(1/c + T)) on the bulk of ρ0
    bulk = np.abs(g.face_points[:, 0] - M0) < 2 * S0
    assert np.max(np.abs(sw.drift[0][bulk] + (g.face_points[bulk, 0] - Z) / (1 / C + T))) < 2e-2


def test_congestion_sweep_is_optimal_against_perturbed_policies():
    g, x, rho0, Phi = setup(200)
    sw = solve_forward_backward(g, rho0, Phi, NU, T, steps=100, g=0.5)
    sw0 = solve_forward_backward(g, rho0, Phi, NU, T, steps=100, g=0.0)
    assert sw.success
    var = lambda r: np.sum(r * x**2) * g.h[0] - (np.sum(r * x) * g.h[0]) ** 2  # noqa: E731
    assert var(sw.rho) > var(sw0.rho)          # congestion spreads the terminal density
    rng = np.random.default_rng(0)
    for _ in range(3):
        bump = np.exp(-((g.face_points[:, 0] - rng.uniform(-2, 2)) ** 2))
        pert = [a + 0.05 * rng.standard_normal() * bump for a in sw.drift]
        other = policy_cost(g, rho0, Phi, pert, NU, T, g=0.5)
        # the perturbation changes J at 2nd order (≈ 1e-4); the sweep's fixed point is the
        # continuum optimum up to O(h²) ≈ 1e-5 in J
        assert other > sw.cost - 1e-5


def test_congested_hopf_cole_fixed_point_agrees_with_sweep():
    # g > 0: imaginary-time cubic NLS pair (φ, φ̂) by a damped fixed point on ρ, against the
    # FP+HJB sweep with the congestion term gρ in the HJB — two independent discretisations
    diffs = []
    for N in (200, 400):
        g, x, rho0, Phi = setup(N)
        sw = solve_forward_backward(g, rho0, Phi, NU, T, steps=N // 2, g=0.5)
        hc = solve_hopf_cole(g, rho0, Phi, NU, T, steps=N // 2, g=0.5)
        assert sw.success and hc.success
        diffs.append(l1(g, sw.rho, hc.rho))
        # measured cost gap 1e-4 (200 cells), 7e-6 (400): the same optimum
        assert abs(sw.cost - hc.cost) < 5e-4
    # measured 6.8e-3 → 1.7e-3 (→ 4.3e-4 at 800 cells): second-order agreement
    assert diffs[1] < 2.5e-3 and diffs[0] / diffs[1] > 3.5, diffs


def test_hopf_cole_rejects_negative_congestion():
    g, x, rho0, Phi = setup(100)
    with pytest.raises(InputError, match="--g"):
        solve_hopf_cole(g, rho0, Phi, NU, T, g=-0.1)


def test_sweep_result_reports_the_policy_it_returns():
    g, x, rho0, Phi = setup(200)
    capped = solve_forward_backward(g, rho0, Phi, NU, T, steps=100, g=0.5, maxiter=5)
    assert capped.success is False and capped.status == 1 and "iteration limit" in capped.message
    assert capped.nit == 5 and len(capped.history) == 5
    # cost, density and residual all belong to the returned policy x (= drift)
    assert capped.cost == capped.fun == policy_cost(g, rho0, Phi, capped.x, NU, T, g=0.5)
    assert capped.drift is capped.x and capped.residual > 1e-3
    done = solve_forward_backward(g, rho0, Phi, NU, T, steps=100, g=0.5)
    assert done.success and done.status == 0 and done.residual <= 1e-9


def test_hopf_cole_without_congestion_reports_its_mass_check():
    """g = 0 is two linear solves (no iteration): ``success`` is the one check made — the mass of
    ρ = φφ̂ against 1 (independently: the grid's mass of the unnormalised path end) — not a
    constant True as before."""
    from ocdl.meanfield.fokker_planck import MASS_TOL
    g, x, rho0, Phi = setup(200)
    hc = solve_hopf_cole(g, rho0, Phi, NU, T, steps=100)
    defect = abs(g.mass(hc.rho_path[-1]) - 1.0)
    assert hc.success == (defect <= MASS_TOL) and hc.success
    assert f"{defect:.1e}" in hc.message
