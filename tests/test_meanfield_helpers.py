"""Library pieces behind ``ocdl meanfield``: default domains, the NLS run with its analytic checks,
and the stochastic network's predictions — each against an independent reference."""
import numpy as np
import pytest
from scipy.special import ndtr

from ocdl.data.datasets import spirals
from ocdl.errors import InputError
from ocdl.meanfield import nls
from ocdl.meanfield.control import control_domain
from ocdl.meanfield.fokker_planck import FPResult, ou_exact
from ocdl.meanfield.particles import probe_domain
from ocdl.meanfield.training import accuracy, init_params, param_arrays, particle_clouds, predict_proba


def test_probe_domain_holds_the_exact_ou_law():
    drift = lambda x, t=0.0: -(x - 1.0)  # noqa: E731
    lo, hi = probe_domain(drift, -1.0, 0.4, 0.8, 1.0)
    for t in (0.0, 0.5, 1.0):        # the exact OU law at every time has (almost) no mass outside
        _, mu, var = ou_exact(np.zeros(1), t, 1.0, 1.0, 0.8, -1.0, 0.4)
        outside = ndtr((lo - mu) / np.sqrt(var)) + 1 - ndtr((hi - mu) / np.sqrt(var))
        assert outside < 1e-12, (t, lo, hi)
    assert probe_domain(drift, -1.0, 0.4, 0.8, 1.0, xmin=-2.0)[0] == -2.0
    assert probe_domain(drift, -1.0, 0.4, 0.8, 1.0, -2.0, 3.0) == (-2.0, 3.0)


@pytest.mark.parametrize("kw,needle", [(dict(xmin=2.0, xmax=1.0), "--xmax"), (dict(), "not finite")])
def test_probe_domain_bad_input(kw, needle):
    drift = (lambda x, t=0.0: -x) if kw else (lambda x, t=0.0: np.exp(1e3 * x * x))
    with pytest.raises(InputError, match=needle), np.errstate(all="ignore"):
        probe_domain(drift, 0.0, 1.0, 0.5, 1.0, **kw)


def test_control_domain_brackets_mean_and_target():
    # Φ = (x − 1.5)²: z = 1.5; spread = max(std, ν√T) = 0.6; probe spacing 60·1.6/4000 = 0.024
    lo, hi = control_domain(lambda x: (x - 1.5) ** 2, -1.0, 0.5, 0.6, 1.0)
    assert abs(lo - (-1.0 - 6 * 0.6)) < 1e-12
    assert abs(hi - (1.5 + 6 * 0.6)) <= 0.024
    # non-finite values of Φ are skipped: log(x − 2) has no minimum left of 2 → z at the probe's right end
    with np.errstate(all="ignore"):
        lo2, hi2 = control_domain(lambda x: -np.log(x - 2.0), 0.0, 0.5, 0.5, 1.0)
    assert lo2 == pytest.approx(-3.0) and hi2 > 40
    with pytest.raises(InputError, match="--xmax"):
        control_domain(lambda x: x * x, 0.0, 1.0, 0.5, 1.0, xmin=1.0, xmax=0.0)


def test_wall_fraction():
    r = FPResult(x=np.arange(4.0), rho=np.array([0.1, 2.0, 1.0, 0.3]), t=np.zeros(1), mass=np.ones(1), min_rho=0.1)
    assert r.wall_fraction == 0.15


def test_time_steps_fit_T():
    assert nls.time_steps(1.0, 0.003) == (333, 1.0 / 333)
    assert nls.time_steps(1.0, 5.0) == (1, 1.0)


def test_run_case_coherent_state_against_the_analytic_solution():
    # |ψ(t)|² is the ground density centred at x0 cos t + v sin t; E = ħω/2 + (v² + ω²x0²)/2 = 1.125
    errs = []
    for steps in (100, 200):
        _, res, out = nls.run_case("coherent", 1.0, steps, x0=1.0, velocity=0.5)
        errs.append(out["max_density_error_vs_analytic"])
        assert abs(out["energy"] - 1.125) < 1e-5 and out["mass_drift"] < 1e-12
    # Strang splitting: second order in dt (measured 5.2e-6 → 1.3e-6)
    assert 3.6 < errs[0] / errs[1] < 4.4 and errs[1] < 2e-6
    _, _, out = nls.run_case("soliton", 1.0, 200, velocity=1.0)
    assert out["g"] == -1.0 and out["max_error_vs_analytic"] < 1e-4      # measured 3.9e-6
    _, _, out = nls.run_case("gaussian", 1.0, 20)
    assert "max_error_vs_analytic" not in out and "max_density_error_vs_analytic" not in out


def test_run_case_bad_input():
    with pytest.raises(InputError, match="potential"), np.errstate(all="ignore"):
        nls.run_case("gaussian", 1.0, 10, potential=lambda x: 1.0 / (x - x))
    with pytest.raises(InputError, match="initial state"):
        nls.run_case("vortex", 1.0, 10)


def _euler(P, X, T):
    """Independent plain-numpy ResNet forward x ← x + h (K tanh x + b) (ν = 0)."""
    h = T / P["K"].shape[0]
    x = np.array(X, dtype=float)
    for K, b in zip(P["K"], P["b"]):
        x = x + h * (np.tanh(x) @ K.T + b)
    return x


def test_predictions_of_the_stochastic_network():
    X, y = spirals(40, seed=1)
    P = init_params(5, 2, seed=3, scale=0.8)
    P["b"] = np.random.default_rng(2).normal(scale=0.5, size=P["b"].shape)
    s = _euler(P, X, 2.0) @ P["W"][0] + P["mu"][0]
    np.testing.assert_allclose(predict_proba(P, X, 0.0, 2.0), 1 / (1 + np.exp(-s)), rtol=1e-13, atol=0)
    assert accuracy(P, X, y, 0.0, 2.0) == np.mean((s > 0) == (y == 1))
    # tiny noise: the averaged probability moves by O(ν)
    assert np.max(np.abs(predict_proba(P, X, 1e-9, 2.0, substeps=2) - predict_proba(P, X, 0.0, 2.0, substeps=2))) < 1e-8
    grid, traj, lab = particle_clouds(P, X, y, 0.0, 2.0, substeps=3, count=500, seed=4)
    assert traj.shape == (6, 500, 2)
    # each layer-0 point is a training point with its label; the last layer is the ν = 0 forward
    i = np.argmin(np.sum((traj[0][:, None, :] - X[None]) ** 2, axis=2), axis=1)
    assert np.array_equal(traj[0], X[i]) and np.array_equal(lab, y[i])
    tied = {"K": np.repeat(P["K"], 3, 0), "b": np.repeat(P["b"], 3, 0)}
    np.testing.assert_allclose(traj[-1], _euler(tied, X[i], 2.0),
                               rtol=0, atol=1e-13)
    inside = np.all((traj.reshape(-1, 2) >= grid.lower) & (traj.reshape(-1, 2) <= grid.upper), axis=1)
    assert inside.mean() > 0.98
    a = param_arrays(P)
    assert a["W"].shape == (2,) and a["mu"].shape == () and a["K"].shape == (5, 2, 2)
