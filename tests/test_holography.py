"""AdS/DL bulk reconstruction (ocdl.holography): the network against an independent recursion,
the horizon condition against scipy, costate gradients against autograd, simulate → learn, and
bad input. Studies (the full-size target run, Newton against the paper's Adam) are ``slow``."""
import json

import numpy as np
import pytest
import torch

from ocdl.holography import HolographyProblem, Layers, Network, learn, simulate
from tests.conftest import run_ocdl_inprocess

DTYPE = torch.float64


def paper_recursion(h, phi, pi, m2, lam, eta_ini=1.0, eta_fin=0.1):
    """The paper's Euler network written out (numpy, independent of ocdl): F at η_fin."""
    N = len(h)
    de = (eta_fin - eta_ini) / N
    for k in range(N):
        phi, pi = phi + de * pi, pi - de * (h[k] * pi - m2 * phi - lam * phi ** 3)
    return 2 * pi / eta_fin - m2 * phi - lam * phi ** 3


def test_euler_network_is_the_papers_recursion():
    rng = np.random.default_rng(0)
    layers = Layers(1.0, 0.1, 10)
    h = 3 / np.tanh(3 * layers.eta) + rng.normal(0, 0.3, 10)
    X = np.column_stack([rng.uniform(0, 1.5, 200), rng.uniform(-0.2, 0.2, 200)])
    net = Network(layers, "euler")
    F = net.horizon_value(torch.tensor(np.r_[h, -1.0, 1.0]), X).numpy()
    ref = paper_recursion(h, X[:, 0], X[:, 1], -1.0, 1.0)
    # the same arithmetic up to the order of operations: round-off of |F| ~ 10²
    assert np.abs(F - ref).max() <= 1e-11 * max(1.0, np.abs(ref).max())


def test_horizon_condition_against_scipy():
    """Solutions regular at the horizon (series φ = φ_h + V'(φ_h) η²/4 started at η = 10⁻³ and
    integrated outward by scipy, DOP853 rtol 1e-12, in the exact metric 3 coth 3η) must give
    F ≈ 0 when fed back inward through a fine network: |F| is the O(η_fin²) error of the
    horizon series at η_fin = 0.1 plus the network's discretisation error, well inside ε = 0.1;
    irregular data (π shifted by 0.02) give |F| ≫ ε."""
    from scipy.integrate import solve_ivp
    m2, lam = -1.0, 1.0

    def rhs(eta, y):
        return [y[1], -3 / np.tanh(3 * eta) * y[1] + m2 * y[0] + lam * y[0] ** 3]

    X = []
    for phi_h in np.linspace(0.1, 1.2, 8):
        e0 = 1e-3
        vp = m2 * phi_h + lam * phi_h ** 3
        sol = solve_ivp(rhs, (e0, 1.0), [phi_h + vp * e0 ** 2 / 4, vp * e0 / 2], method="DOP853", rtol=1e-12,
                        atol=1e-14)
        X.append(sol.y[:, -1])
    X = np.array(X)
    layers = Layers(1.0, 0.1, 400)
    h = 3 / np.tanh(3 * layers.eta)
    net = Network(layers, "rk4")
    F = net.horizon_value(torch.tensor(np.r_[h, m2, lam]), X).numpy()
    assert np.abs(F).max() < 0.03
    F_bad = net.horizon_value(torch.tensor(np.r_[h, m2, lam]), X + [0.0, 0.02]).numpy()
    assert np.abs(F_bad).min() > 1.0


@pytest.mark.parametrize("method", ["euler", "heun", "rk4"])
@pytest.mark.parametrize("loss", ["l1", "l2"])
def test_costate_gradient_matches_autograd(method, loss):
    """Costate gradient of the paper's loss (data + η⁴ regulariser) in (h, m², λ) against torch
    autograd through the same network: relative difference ≤ 1e-12."""
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.uniform(0, 1.5, 60), rng.uniform(-0.2, 0.2, 60)])
    lab = rng.integers(0, 2, 60)
    lab[:2] = [0, 1]
    # σ = 0.5 so that every sample has a non-negligible gradient (σ = 0.01 zeroes most of them)
    p = HolographyProblem(X, lab, method=method, learn_mass=True, learn_coupling=True, loss=loss, sigma=0.5)
    x = p.x0(3 / np.tanh(3 * p.layers.eta)) + rng.normal(0, 0.3, len(p.free))
    E, _, g = p.loss_costate(x)
    xt = torch.tensor(x, requires_grad=True)
    Et, _ = p.loss_torch(xt)
    (ga,) = torch.autograd.grad(Et, xt)
    assert abs(float(E) - float(Et.detach())) <= 1e-14 * abs(float(Et.detach()))
    assert float((g - ga).abs().max()) <= 1e-12 * float(ga.abs().max())


def test_residual_jacobian_rows_match_autograd():
    """The per-sample costate rows (one vectorised sweep) are the Jacobian of the residuals."""
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.uniform(0, 1.5, 40), rng.uniform(-0.2, 0.2, 40)])
    lab = np.r_[np.zeros(20), np.ones(20)]
    p = HolographyProblem(X, lab, method="rk4", learn_mass=True, loss="l2", sigma=0.5)
    x = p.x0(3.0) + rng.normal(0, 0.3, len(p.free))
    r, J = p.residual_jacobian(x)

    def residual(xx):
        th = p.theta(xx)
        t, _ = p.net.output.indicator(p.net.horizon_value(th, p.X))
        return (t - p.target) / np.sqrt(p.n)

    Ja = torch.autograd.functional.jacobian(residual, torch.tensor(x)).numpy()
    assert np.allclose(r[:p.n], residual(torch.tensor(x)).numpy(), rtol=0, atol=1e-15)
    assert np.abs(J[:p.n] - Ja).max() <= 1e-12 * np.abs(Ja).max()
    # the regulariser rows: √c_reg η_k² (h_{k+1} − h_k)
    h = x[:p.layers.N]
    assert np.allclose(r[p.n:], np.sqrt(p.c_reg) * p.layers.eta[:-1] ** 2 * np.diff(h), rtol=1e-14, atol=0)


def test_simulate_labels_and_balance():
    d = simulate(samples=200, seed=3)
    assert (d["label"] == 1).sum() == 100 and (d["label"] == 0).sum() == 100
    assert d["phi"].min() >= 0 and d["phi"].max() <= 1.5 and np.abs(d["pi"]).max() <= 0.2
    F = paper_recursion(d["h_true"], d["phi"], d["pi"], -1.0, 1.0)
    assert np.all((np.abs(F) < 0.1) == (d["label"] == 1))
    assert np.allclose(d["h_true"], 3 / np.tanh(3 * (1.0 - 0.09 * np.arange(10))), rtol=1e-14)


def test_simulate_learn_recovers_the_metric(tmp_path):
    """Small fast case (400 samples): newton classifies held-out data ≥ 97 % and recovers
    3 coth 3η over η ≥ 0.2 within 8 % (the full-size runs and why the data alone cannot reach the
    issue's 5 % are in docs/holography.md; the 400-sample run measured 6.0 %)."""
    data, test, out = tmp_path / "h.csv", tmp_path / "t.csv", tmp_path / "h.json"
    assert run_ocdl_inprocess("holography", "simulate", "--samples", 400, "--out", data, "--quiet")[0] == 0
    assert run_ocdl_inprocess("holography", "simulate", "--samples", 400, "--seed", 1, "--out", test,
                              "--quiet")[0] == 0
    rc, _, err = run_ocdl_inprocess("holography", "learn", "--data", data, "--test", test, "--json", out, "--quiet")
    assert rc == 0, err
    s = json.loads(out.read_text())
    assert s["success"] and s["message"]
    assert len(s["metric"]["eta"]) == len(s["metric"]["h"]) == 10
    h_true = 3 / np.tanh(3 * np.asarray(s["metric"]["eta"]))
    assert learn.metric_error(s["metric"]["h"], h_true, s["metric"]["eta"]) < 0.08
    assert s["train_accuracy"] >= 0.97 and s["test_accuracy"] >= 0.97
    assert abs(s["metric_rel_l2_error"] - learn.metric_error(s["metric"]["h"], h_true, s["metric"]["eta"])) < 1e-12


def test_learn_mass_reports_m2(tmp_path):
    data, out = tmp_path / "h.csv", tmp_path / "h.json"
    assert run_ocdl_inprocess("holography", "simulate", "--samples", 200, "--out", data, "--quiet")[0] == 0
    rc, _, err = run_ocdl_inprocess("holography", "learn", "--data", data, "--learn-mass", "--learn-coupling",
                                    "--m2", "-0.5", "--lam", "0.5", "--iterations", "20", "--json", out, "--quiet")
    assert rc == 0, err
    s = json.loads(out.read_text())
    assert "m2" in s and "lam" in s and np.isfinite(s["m2"]) and np.isfinite(s["lam"])


@pytest.mark.parametrize("metric,what", [("1/(eta-1)", "not finite"), ("sqrt(eta-0.5)", "not finite"),
                                         ("1e9/eta", "singular"), ("eta +", "malformed")])
def test_bad_metric_exits_2_naming_the_flag(tmp_path, metric, what):
    rc, _, err = run_ocdl_inprocess("holography", "simulate", "--metric", metric, "--out", tmp_path / "x.csv")
    assert rc == 2
    assert "--metric" in err and what in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()


def test_empty_class_exits_2(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("phi,pi,label\n0.1,0.0,1\n0.2,0.01,1\n")
    rc, _, err = run_ocdl_inprocess("holography", "learn", "--data", path)
    assert rc == 2 and "empty class" in err and len(err.strip().splitlines()) == 1


def test_bad_true_metric_exits_2(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("phi,pi,label\n0.1,0.0,1\n0.2,0.01,0\n")
    rc, _, err = run_ocdl_inprocess("holography", "learn", "--data", path, "--true-metric", "log(eta-2)")
    assert rc == 2 and "--true-metric" in err


@pytest.mark.slow
def test_full_size_default_run():
    """The issue's default set-up (2000 samples, newton): held-out accuracy ≥ 97 %, metric error
    over η ≥ 0.2 below 6.5 % (measured 5.79 %: the issue's 5 % is not reached — the data fix two
    combinations of h, docs/holography.md); d = 4 within 6 % (measured 4.0 %)."""
    from ocdl.holography.run import best_constant
    for metric, bound in (("3/tanh(3*eta)", 0.065), ("4/tanh(4*eta)", 0.06)):
        d, t = simulate(metric, samples=2000, seed=0), simulate(metric, samples=2000, seed=1)
        p = HolographyProblem(np.column_stack([d["phi"], d["pi"]]), d["label"], loss="l2")
        res = learn.solve(p, "newton", p.x0(best_constant(p)))
        assert res.success
        assert learn.metric_error(res.x[:10], d["h_true"], p.layers.eta) < bound
        assert p.accuracy(res.x, np.column_stack([t["phi"], t["pi"]]), t["label"]) >= 0.97


@pytest.mark.slow
def test_newton_from_random_starts_lands_on_one_solution():
    """From the paper's random starts h_k ~ N(3, 1) Gauss–Newton (with its stiff first stage)
    ends on the same metric for every seed, and no worse than Adam's on the same starts."""
    d = simulate(samples=600, seed=0)
    X = np.column_stack([d["phi"], d["pi"]])
    ends, adam = [], []
    for seed in (0, 1):
        h0 = learn.initial_h(Layers(), "random", 3.0, seed, 1.0)
        p = HolographyProblem(X, d["label"], loss="l2")
        ends.append(learn.solve(p, "newton", p.x0(h0)).x)
        q = HolographyProblem(X, d["label"])
        adam.append(learn.solve(q, "pmp-adam", q.x0(h0), iterations=1500).x)
    assert np.abs(ends[0] - ends[1]).max() < 1e-3
    for x_newton, x_adam in zip(ends, adam):
        e_n = learn.metric_error(x_newton, d["h_true"], Layers().eta)
        e_a = learn.metric_error(x_adam, d["h_true"], Layers().eta)
        assert e_n <= e_a + 0.005


def test_adam_interrupted_and_resumed_equals_uninterrupted():
    """pmp-adam stopped by should_stop (as Ctrl-C does) after a checkpoint, then resumed from it,
    ends bit for bit where the uninterrupted run ends."""
    rng = np.random.default_rng(4)
    X = np.column_stack([rng.uniform(0, 1.5, 80), rng.uniform(-0.2, 0.2, 80)])
    lab = np.r_[np.zeros(40), np.ones(40)]
    p = HolographyProblem(X, lab, sigma=0.5)
    x0 = p.x0(3.0)
    full = learn.solve(p, "pmp-adam", x0, iterations=40)
    saved, calls = {}, {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] >= 25

    with pytest.raises(KeyboardInterrupt):
        learn.solve(p, "pmp-adam", x0, iterations=40,
                    control={"checkpoint": lambda st: saved.update(st=st), "checkpoint_every": 10,
                             "should_stop": should_stop})
    assert saved["st"]["iteration"] == 25
    resumed = learn.solve(p, "pmp-adam", x0, iterations=40, control={"state0": saved["st"]})
    assert np.array_equal(resumed.x, full.x)


def test_checkpoint_flags_refused_for_newton(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("phi,pi,label\n0.1,0.0,1\n0.2,0.01,0\n")
    rc, _, err = run_ocdl_inprocess("holography", "learn", "--data", path, "--checkpoint", tmp_path / "ck")
    assert rc == 2 and "newton" in err


def test_learn_on_another_grid_than_the_data(tmp_path):
    """--layers different from the simulated grid: no true metric from the meta file (its grid
    differs), no crash; --true-metric evaluates on the new grid."""
    data, out = tmp_path / "h.csv", tmp_path / "h.json"
    assert run_ocdl_inprocess("holography", "simulate", "--samples", 100, "--out", data, "--quiet")[0] == 0
    rc, _, err = run_ocdl_inprocess("holography", "learn", "--data", data, "--layers", 3, "--iterations", 2,
                                    "--solver", "pmp-adam", "--json", out, "--quiet")
    assert rc == 0, err
    assert "metric_rel_l2_error" not in json.loads(out.read_text())
    rc, _, err = run_ocdl_inprocess("holography", "learn", "--data", data, "--layers", 3, "--iterations", 2,
                                    "--solver", "pmp-adam", "--true-metric", "3/tanh(3*eta)", "--json", out, "--quiet")
    s = json.loads(out.read_text())
    assert rc == 0 and len(s["h_true"]) == 3
    assert np.allclose(s["h_true"], 3 / np.tanh(3 * np.asarray(s["metric"]["eta"])), rtol=1e-14)
