"""Learning thermodynamics (ocdl/meanfield/thermo): each quantity against an independent reference —
closed-form Gaussian integrals, finite differences of quadrature values, the Fokker–Planck
solution, the split-step Schrödinger solver, the linear dispersion relation."""
import json

import numpy as np
import pytest

from ocdl.meanfield.thermo import action, ensemble, learning
from ocdl.meanfield.thermo.partition import (BulkLoss, gaussian_error_scan, monte_carlo, quadrature)

W2 = np.array([[0.3, -0.4], [0.5, 0.2]])
B2 = np.array([0.2, -0.1])


def _linear_closed_form(w, b, m, beta):
    """``H = ½|(I−w)x − b|² − (m/2)|x|²``: Gaussian with A = (I−w)ᵀ(I−w) − mI, linear term (I−w)ᵀb."""
    N = b.size
    J = np.eye(N) - w
    A = J.T @ J - m * np.eye(N)
    c = J.T @ b
    Hmin = 0.5 * b @ b - 0.5 * c @ np.linalg.solve(A, c)
    log_Z = 0.5 * N * np.log(2 * np.pi / beta) - 0.5 * np.linalg.slogdet(A)[1] - beta * Hmin
    return log_Z, Hmin + N / (2 * beta)          # log Z, U = ⟨H⟩ = H_min + N/(2β)


@pytest.mark.parametrize("N,m,beta", [(1, 0.0, 1.0), (2, 0.3, 2.0), (3, 0.05, 0.7)])
def test_quadrature_equals_gaussian_closed_form_for_the_linear_network(N, m, beta):
    rng = np.random.default_rng(N)
    w, b = 0.2 * rng.standard_normal((N, N)), 0.4 * rng.standard_normal(N)
    ens = quadrature(BulkLoss(w, b, m, "linear"), beta, points=61 if N == 3 else 101, gradients=False)
    lz, U = _linear_closed_form(w, b, m, beta)
    # trapezoid on a Gaussian resolved by ≥ 3 nodes per σ: error ≪ 1e-10 (estimate 2e^{−2π²σ²/h²})
    assert abs(ens.log_Z - lz) < 1e-10
    assert abs(ens.U - U) < 1e-10
    assert abs(ens.Sx - (lz + beta * U)) < 1e-9


def test_tanh_quadrature_converges_and_U_is_minus_dlogZ_dbeta():
    loss = BulkLoss(1.2 * W2, B2, 0.3)
    a, b = quadrature(loss, 2.0, points=121), quadrature(loss, 2.0, points=241)
    assert abs(a.log_Z - b.log_Z) < 1e-12                       # spectral convergence of the trapezoid
    h = 1e-4
    lp = quadrature(loss, 2.0 + h, points=121, gradients=False).log_Z
    lm = quadrature(loss, 2.0 - h, points=121, gradients=False).log_Z
    assert abs(a.U + (lp - lm) / (2 * h)) < 1e-7                # central difference O(h²) ≈ 1e-8


def test_gradients_in_b_and_w_against_finite_differences():
    N, beta, m = 2, 1.5, 0.2
    q = learning.pack(1.1 * W2, B2)
    ens = quadrature(BulkLoss(*learning.unpack(q, N), m), beta, points=121)
    h = 1e-5
    for i in range(q.size):
        e = np.zeros(q.size)
        e[i] = h
        p = quadrature(BulkLoss(*learning.unpack(q + e, N), m), beta, points=121, gradients=False)
        n = quadrature(BulkLoss(*learning.unpack(q - e, N), m), beta, points=121, gradients=False)
        assert abs(ens.grad_F[i] - (p.F - n.F) / (2 * h)) < 1e-8
        assert abs(ens.grad_U[i] - (p.U - n.U) / (2 * h)) < 1e-8
        assert abs(ens.grad_Sx[i] - (p.Sx - n.Sx) / (2 * h)) < 1e-7


def test_monte_carlo_agrees_with_quadrature_within_4_standard_errors():
    loss = BulkLoss(1.2 * W2, B2, 0.3)
    ex = quadrature(loss, 2.0, gradients=False)
    mc = monte_carlo(loss, 2.0, samples=100_000, rng=np.random.default_rng(5))
    assert abs(mc.log_Z - ex.log_Z) < 4 * mc.stderr_log_Z
    assert mc.stderr_log_Z < 5e-3


def _slope(rows, key):
    b = np.log([r["beta"] for r in rows])
    e = np.log(np.abs([r[key] for r in rows]))
    return np.polyfit(b, e, 1)[0]


def test_gaussian_approximation_error_shrinks_like_one_over_beta_without_mass_term():
    """m = 0: tanh has a fixed point (H* = 0), eq. (7) and Laplace are both O(1/β) at low temperature."""
    rows = gaussian_error_scan(BulkLoss(1.2 * W2, B2, 0.0), [8.0, 16.0, 32.0, 64.0])
    assert abs(_slope(rows, "gaussian_error") + 1) < 0.1
    assert abs(_slope(rows, "laplace_error") + 1) < 0.1
    assert abs(rows[-1]["gaussian_error"]) < 0.03
    # with the mass term eq. (7) misses e^{−βH*} (H* < 0): its error grows at large β, Laplace's still falls
    rows = gaussian_error_scan(BulkLoss(1.2 * W2, B2, 0.3), [16.0, 32.0, 64.0])
    assert abs(rows[-1]["gaussian_error"]) > abs(rows[0]["gaussian_error"])
    assert _slope(rows, "laplace_error") < -0.8                 # −0.88 here: pre-asymptotic, tends to −1


def test_training_first_law_holds_at_the_free_energy_equilibrium():
    res = learning.train(0.8 * W2, B2, 2.0, 0.2, "free-energy", iterations=60, points=61)
    law = learning.first_law(res.x, 2, 2.0, 0.2, points=61)
    # dU − T dS_x = dF: zero to first order at a stationary point of F (|∇F| ≈ 1e-7 here)
    assert law["grad_F_norm"] < 1e-5
    assert law["gradient_form"] < 1e-3 and law["finite_step"] < 1e-3
    assert law["grad_U_norm"] > 100 * law["grad_F_norm"]       # …while U itself is not stationary (eq. (11))
    F = [h["F"] for h in res.history]
    assert all(b <= a + 1e-12 for a, b in zip(F, F[1:]))       # descent on F (Armijo)
    law2 = learning.second_law(res.history)
    assert law2["steps"] == len(res.history) - 1


@pytest.fixture(scope="module")
def free_energy():
    return ensemble.PeriodicFreeEnergy(2.0, M=48)


def test_langevin_ensemble_matches_fokker_planck_and_eq22(free_energy):
    r = ensemble.ensemble_study(beta=2.0, gamma=1.0, D=0.25, T=2.0, particles=20000, steps=800, cells=96,
                                seed=3, free_energy=free_energy)
    grid = r["grid"]
    q, p = r["q"], r["rho_fp"] * grid.h[0]
    P = 20000
    # circular moments of the ensemble vs the FP law, within 4 standard errors (+ O(dt) EM bias 1e-3)
    hist = r["p_hist"]
    for fn in (np.cos, np.sin):
        m_fp = np.sum(p * fn(q))
        sd = np.sqrt(np.sum(p * fn(q) ** 2) - m_fp ** 2)
        assert abs(np.sum(hist * fn(q)) - m_fp) < 4 * sd / np.sqrt(P) + 1e-3
    assert r["histogram_fp_l1"] < 1.3 * r["mc_expected_l1"]
    # entropy production: finite differences of the FP entropy vs eq. (22) on the same density
    meas, pred = r["rate_measured"][1:], r["rate_predicted"][1:]
    assert np.max(np.abs(meas - pred)) < 0.02 * np.max(np.abs(pred))


def test_stationary_law_is_exp_gamma_F_over_D(free_energy):
    r = ensemble.ensemble_study(beta=2.0, gamma=1.0, D=0.25, T=14.0, particles=20000, steps=800, cells=128, seed=1,
                                free_energy=free_energy)
    assert r["fp_stationary_l1"] < 0.01
    assert r["stationary_l1"] < 1.3 * r["mc_expected_l1"] + 0.01


def test_learning_terms_off_is_schroedinger_with_hbar_4_sqrt_D_gamma_over_mu():
    r = action.schroedinger_check(gamma=1.0, D=0.1, mu=4.0, T=0.4)
    assert r["rows"][-1]["density_max_error"] < 1e-6 and r["rows"][-1]["velocity_max_error"] < 1e-6
    assert all(abs(o - 2) < 0.05 for o in r["orders"])        # Strang splitting, 2nd order
    lit = action.schroedinger_check(gamma=1.0, D=0.1, mu=4.0, T=0.4, literal=True, steps=(4,))
    assert lit["rows"][0]["density_max_error"] > 1e-2            # the seed's (34)-(35) need D → D/μ
    one = action.schroedinger_check(gamma=1.0, D=0.1, mu=1.0, T=0.4, literal=True, steps=(4,))
    assert one["rows"][0]["density_max_error"] < 1e-6           # …and are right for μ = 1


@pytest.mark.parametrize("D", [0.25, 0.05])
def test_learning_terms_on_follow_the_linear_dispersion_relation(D):
    r = action.dispersion_check(1.0, D, 4.0)
    assert r["regime"].startswith("dispersive" if 1.0 < 4 * D * 4.0 else "ill-posed")
    assert r["relative_error"] < 1e-5                           # ε = 1e-4: nonlinear terms O(ε)


def test_hamilton_jacobi_regime_hopf_cole_and_newton_factor():
    r = action.hamilton_jacobi_check(gamma=1.0, mu=40.0, n=64)
    assert all(abs(o - 2) < 0.05 for o in r["orders"])
    assert r["rows"][-1]["max_difference"] < 1e-7
    assert abs(r["newton_factor"] - 2) < 0.05                  # q̈ = −2γV', not the seed's −γV'


def test_stationary_free_energy_is_canonical_with_mu_2beta():
    r = action.stationary_check(beta=2.0, lams=(0.8, 1.2, 2.0))
    assert r["residual_mu_2beta"] < 1e-3                        # central differences, h = 1e-2
    assert r["residual_mu_beta"] > 0.5
    assert abs(r["mu_fit"] - 4.0) < 1e-3


@pytest.mark.parametrize("flags,name", [(["--beta", "0"], "--beta"), (["--beta", "-1"], "--beta"),
                                        (["--D", "-0.1"], "--D"), (["--points", "15"], "--points"),
                                        (["--steps", "1001"], "--steps")])
def test_thermo_cli_bad_input(ocdl_cli, flags, name):
    r = ocdl_cli("meanfield", "thermo", *flags, "--quiet")
    assert r.returncode == 2
    assert name in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_thermo_cli_default_run(ocdl_cli, tmp_path):
    js, png = tmp_path / "t.json", tmp_path / "t.png"
    r = ocdl_cli("meanfield", "thermo", "--json", js, "--plot", png, "--quiet")
    assert r.returncode == 0, r.stderr
    d = json.loads(js.read_text())
    for k in ("beta", "log_Z", "U", "F", "S0", "C", "Sx", "first_law_residual", "entropy_production",
              "stationary_l1"):
        assert k in d
    for k in ("exact", "gaussian", "monte_carlo"):
        assert k in d["log_Z"]
    assert set(d["entropy_production"]) >= {"measured", "predicted"}
    assert abs(d["log_Z"]["monte_carlo"] - d["log_Z"]["exact"]) < 4 * d["log_Z"]["monte_carlo_stderr"]
    assert png.stat().st_size > 10000
