"""2-D drift-as-control (`--dim 2`): Hopf–Cole and the FP–HJB sweep against the closed-form LQ solution
(the 2-D problem with Φ = (c/2)|x − z|² separates into two 1-D ones: ρ(T) is the product of
:func:`lq_gaussian` laws, the cost their sum) and against particles driven by the exact optimal
feedback a = −(x − z)/(1/c + T − t)."""
import numpy as np
import pytest
from scipy.special import ndtr

from ocdl.meanfield import make_grid
from ocdl.meanfield.control import lq_gaussian, solve_hopf_cole, solve_sweep

NU, T, C = 0.6, 1.0, 2.0
Z, M0, S0 = np.array([1.0, -0.5]), np.array([-1.0, 0.5]), 0.5


def _problem(n):
    g = make_grid([-3.0, -2.5], [2.5, 3.0], [n, n])
    X = g.centres
    rho0 = np.exp(-0.5 * np.sum((X - M0) ** 2, 1) / S0 ** 2)
    return g, rho0 / g.mass(rho0), 0.5 * C * np.sum((X - Z) ** 2, 1)


def _exact(g):
    """Closed-form ρ(T) as exact cell averages and the closed-form cost."""
    laws = [lq_gaussian(M0[a], S0, NU, T, C, Z[a]) for a in (0, 1)]
    avg = []
    for a, (m, v, _) in enumerate(laws):
        e = g.lower[a] + np.arange(g.shape[a] + 1) * g.h[a]
        avg.append(np.diff(ndtr((e - m) / np.sqrt(v))) / g.h[a])
    rho = np.outer(avg[0], avg[1]).reshape(-1)
    X = g.centres                                  # match the grid's cell ordering
    if abs(np.sum(rho * X[:, 0]) * g.volume - laws[0][0]) > 1e-3:
        rho = np.outer(avg[0], avg[1]).T.reshape(-1)
    return rho, laws[0][2] + laws[1][2], laws


def _l1(g, a, b):
    return float(g.volume * np.sum(np.abs(a - b)))


def test_hopf_cole_2d_is_second_order_against_the_closed_form():
    errs, cost_errs = [], []
    for n in (40, 80):
        g, rho0, Phi = _problem(n)
        hc = solve_hopf_cole(g, rho0, Phi, NU, T, steps=40)
        rho, cost, _ = _exact(g)
        errs.append(_l1(g, hc.rho, rho))
        cost_errs.append(abs(hc.cost - cost))
    # measured: L1 3.0e-2 → 8.2e-3 (ratio 3.6), cost error 1.0e-2 → 2.8e-3
    assert 3.3 < errs[0] / errs[1] < 4.7 and errs[1] < 1e-2
    assert cost_errs[1] < cost_errs[0] / 3


def test_hopf_cole_2d_moments_match_particles_with_the_exact_feedback():
    g, rho0, Phi = _problem(80)
    hc = solve_hopf_cole(g, rho0, Phi, NU, T, steps=40)
    rng = np.random.default_rng(0)
    P, steps = 40000, 400
    x = M0 + S0 * rng.standard_normal((P, 2))
    dt = T / steps
    for n in range(steps):
        t = (n + 0.5) * dt
        x = x - dt * (x - Z) / (1.0 / C + T - t) + NU * np.sqrt(dt) * rng.standard_normal((P, 2))
    X = g.centres
    mean = g.volume * hc.rho @ X
    var = g.volume * hc.rho @ (X - mean) ** 2
    pm, pv = x.mean(0), x.var(0)
    se_m, se_v = np.sqrt(pv / P), pv * np.sqrt(2.0 / P)
    # grid error O(h²) (measured ≤ 2e-3 here) + 4 Monte-Carlo sigma (Euler bias O(dt) = 3e-4)
    assert np.all(np.abs(mean - pm) < 4 * se_m + 3e-3)
    assert np.all(np.abs(var - pv) < 4 * se_v + 3e-3)


def test_sweep_2d_agrees_with_hopf_cole_to_discretisation_level():
    g, rho0, Phi = _problem(20)
    hc = solve_hopf_cole(g, rho0, Phi, NU, T, steps=20)
    sw = solve_sweep(g, rho0, Phi, NU, T, steps=20, tol=1e-6, maxiter=100)
    rho, cost, _ = _exact(g)
    assert sw.success
    # both are O(h²) discretisations of the same optimum: their distance is of the size of their
    # own error against the closed form (measured at 20²: 0.104 apart, 0.103 / 0.102 from the closed form)
    assert _l1(g, sw.rho, hc.rho) < 1.5 * max(_l1(g, sw.rho, rho), _l1(g, hc.rho, rho))


@pytest.mark.slow
def test_sweep_and_hopf_cole_2d_converge_together():
    """sweep − Hopf–Cole L1 falls at second order (40² → 80², 40 → 80 steps)."""
    d = []
    for n in (40, 80):
        g, rho0, Phi = _problem(n)
        hc = solve_hopf_cole(g, rho0, Phi, NU, T, steps=n)
        sw = solve_sweep(g, rho0, Phi, NU, T, steps=n, tol=1e-7, maxiter=200)
        d.append(_l1(g, sw.rho, hc.rho))
    assert 3.0 < d[0] / d[1] < 5.0


def test_control_cli_dim2_writes_csv_json_and_picture(tmp_path):
    import json
    from ocdl.cli.main import main
    out, js, png = tmp_path / "rho.csv", tmp_path / "c.json", tmp_path / "c.png"
    assert main(["meanfield", "control", "--dim", "2", "--terminal", "(x-1)**2 + (y+0.5)**2", "--nu", "0.6",
                 "--mean", "-1", "--mean-y", "0.5", "--std", "0.5", "--T", "1", "--cells", "16", "--steps", "16",
                 "--tol", "1e-6", "--out", str(out), "--json", str(js), "--plot", str(png), "--quiet"]) == 0
    r = json.loads(js.read_text())
    assert r["sweep_success"] and r["sweep_hopf_cole_l1"] < 0.3 and png.stat().st_size > 5000
    assert out.read_text().splitlines()[0] == "x,y,rho"


def test_control_cli_dim2_refuses_congestion(capsys):
    from ocdl.cli.main import main
    assert main(["meanfield", "control", "--dim", "2", "--terminal", "x**2+y**2", "--nu", "0.6", "--mean", "0",
                 "--std", "0.5", "--T", "1", "--g", "0.5", "--out", "x.csv"]) == 2
    assert "--g 0 only" in capsys.readouterr().err
