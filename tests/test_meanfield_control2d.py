"""2-D drift-as-control (`--dim 2`): Hopf–Cole and the FP–HJB sweep against the closed-form LQ solution
(the 2-D problem with Φ = (c/2)|x − z|² separates into two 1-D ones: ρ(T) is the product of
:func:`lq_gaussian` laws, the cost their sum) and against particles driven by the exact optimal
feedback a = −(x − z)/(1/c + T − t)."""
import numpy as np
import pytest
from scipy.special import ndtr

from ocdl.meanfield import make_grid
from ocdl.meanfield.control import lq_gaussian, solve_hopf_cole, solve_forward_backward

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
    # measured (direction-split steps): L1 2.96e-2 → 7.99e-3 (ratio 3.7), cost error 1.0e-2 → 2.8e-3
    assert 3.3 < errs[0] / errs[1] < 4.7 and errs[1] < 1e-2
    assert cost_errs[1] < cost_errs[0] / 3


def _assert_moments_agree(g, rho, x, slack):
    """Mean and variance per axis of the grid density ``rho`` against the particles ``x`` (P, 2):
    within 4 Monte-Carlo standard errors (``√(v/P)``, ``v √(2/P)``) plus ``slack``."""
    X = g.centres
    mean = g.volume * rho @ X
    var = g.volume * rho @ (X - mean) ** 2
    P = x.shape[0]
    pm, pv = x.mean(0), x.var(0)
    se_m, se_v = np.sqrt(pv / P), pv * np.sqrt(2.0 / P)
    assert np.all(np.abs(mean - pm) < 4 * se_m + slack)
    assert np.all(np.abs(var - pv) < 4 * se_v + slack)


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
    # grid error O(h²) (measured ≤ 2e-3 here) + 4 Monte-Carlo sigma (Euler bias O(dt) = 3e-4)
    _assert_moments_agree(g, hc.rho, x, slack=3e-3)


def test_sweep_2d_agrees_with_hopf_cole_to_discretisation_level():
    g, rho0, Phi = _problem(20)
    hc = solve_hopf_cole(g, rho0, Phi, NU, T, steps=20)
    sw = solve_forward_backward(g, rho0, Phi, NU, T, steps=20, tol=1e-6, maxiter=100)
    rho, cost, _ = _exact(g)
    assert sw.success
    # both are O(h²) discretisations of the same optimum: their distance is of the size of their
    # own error against the closed form (measured at 20²: 0.103 apart, 0.103 / 0.101 from the closed form)
    assert _l1(g, sw.rho, hc.rho) < 1.5 * max(_l1(g, sw.rho, rho), _l1(g, hc.rho, rho))


def _study(sizes, tol):
    """Per ``n`` (``n²`` cells, ``n/2`` steps): L1 of sweep − Hopf–Cole, sweep − exact, HC − exact, and
    the sweep's cost error."""
    out = []
    for n in sizes:
        g, rho0, Phi = _problem(n)
        hc = solve_hopf_cole(g, rho0, Phi, NU, T, steps=n // 2)
        sw = solve_forward_backward(g, rho0, Phi, NU, T, steps=n // 2, tol=tol, maxiter=100)
        rho, cost, _ = _exact(g)
        assert sw.success
        out.append((_l1(g, sw.rho, hc.rho), _l1(g, sw.rho, rho), _l1(g, hc.rho, rho), abs(sw.cost - cost)))
    return np.array(out)


def test_sweep_and_hopf_cole_2d_second_order_together():
    """40² → 80² (20 → 40 steps): sweep − HC, sweep − exact and HC − exact all fall ×4 (second order)."""
    d = _study((40, 80), tol=1e-5)
    ratio = d[0] / d[1]
    # measured: sw−HC 2.60e-2 → 6.60e-3, sw−exact 2.64e-2 → 6.64e-3, HC−exact 3.02e-2 → 7.99e-3 (ratios
    # 3.94, 3.97, 3.78), cost error 7.5e-2 → 1.9e-2
    assert np.all((3.5 < ratio[:3]) & (ratio[:3] < 4.5)) and d[1, 0] < 7e-3
    assert ratio[3] > 3.5                                   # cost error, second order too


@pytest.mark.slow
def test_sweep_and_hopf_cole_2d_agree_to_2e_3():
    """Issue #15's target: sweep − Hopf–Cole L1 ≤ 2e-3 at 160² (80 steps), each second order against
    the closed form from 80²."""
    d = _study((80, 160), tol=1e-5)
    ratio = d[0] / d[1]
    # measured: sw−HC 6.60e-3 → 1.66e-3, sw−exact 6.64e-3 → 1.66e-3, HC−exact 7.99e-3 → 2.05e-3
    # (ratios 3.98, 4.01, 3.90); the test takes 6 s at load 2.5 on 2 cores (25 s at load 5)
    assert d[1, 0] <= 2e-3
    assert np.all((3.5 < ratio[:3]) & (ratio[:3] < 4.6))


def _face_interpolator(g, a):
    """Bilinear interpolation of the staggered face drifts ``a`` (axis-0 faces at (x_face, y_centre),
    axis-1 faces at (x_centre, y_face)); constant beyond the outermost faces."""
    n0, n1 = g.shape
    nf0 = (n0 - 1) * n1
    parts = [(a[:nf0].reshape(n0 - 1, n1), g.lower + np.array([1.0, 0.5]) * g.h),
             (a[nf0:].reshape(n0, n1 - 1), g.lower + np.array([0.5, 1.0]) * g.h)]

    def f(x):
        out = []
        for F, start in parts:
            u = np.clip((x - start) / g.h, 0, np.array(F.shape) - 1)
            i = np.minimum(np.floor(u).astype(int), np.array(F.shape) - 2)
            w = u - i
            i0, i1 = i[:, 0], i[:, 1]
            out.append(F[i0, i1] * (1 - w[:, 0]) * (1 - w[:, 1]) + F[i0 + 1, i1] * w[:, 0] * (1 - w[:, 1])
                       + F[i0, i1 + 1] * (1 - w[:, 0]) * w[:, 1] + F[i0 + 1, i1 + 1] * w[:, 0] * w[:, 1])
        return np.column_stack(out)
    return f


def test_sweep_2d_density_matches_particles_driven_by_its_own_drift():
    """Particles driven by the sweep's computed optimal drift (bilinear in the face values, held per
    step) against the sweep's ρ(T): moments and a 10 × 10 histogram."""
    g, rho0, Phi = _problem(80)
    steps, sub, P = 40, 8, 20000
    sw = solve_forward_backward(g, rho0, Phi, NU, T, steps=steps, tol=1e-5, maxiter=100)
    rng = np.random.default_rng(0)
    x = M0 + S0 * rng.standard_normal((P, 2))
    dt = T / (steps * sub)
    for n in range(steps):
        f = _face_interpolator(g, sw.drift[n])
        for _ in range(sub):
            x = x + dt * f(x) + NU * np.sqrt(dt) * rng.standard_normal((P, 2))
    # 4 Monte-Carlo sigma + Euler–Maruyama bias (dt/2 ∫P² |m − z| ≈ 1.4e-3 at dt = 1/320) + grid O(h²)
    _assert_moments_agree(g, sw.rho, x, slack=2e-3)
    edges = [g.lower[a] + np.arange(0, 81, 8) * g.h[a] for a in (0, 1)]
    H = np.histogram2d(x[:, 0], x[:, 1], bins=edges)[0] / P
    R = (g.volume * sw.rho).reshape(10, 8, 10, 8).sum((1, 3))
    noise = np.sqrt(2 / np.pi) * np.sum(np.sqrt(R * (1 - R) / P))     # expected L1 of pure sampling noise
    assert np.abs(H - R).sum() < 1.5 * noise + 5e-3


def test_split_step_is_the_exact_transpose_and_conserves_mass():
    """The direction-split θ-step against the dense product of its factors; ``backward`` = ``Sᵀ``;
    ``1ᵀS = 1ᵀ``; backward-Euler splitting is entrywise ≥ 0."""
    from ocdl.meanfield.fokker_planck import SplitStepper, assemble_from_coefficients, flux_coefficients
    g = make_grid([-1.0, -2.0], [1.5, 2.0], [7, 9])
    rng = np.random.default_rng(3)
    cL, cR = flux_coefficients(2 * rng.standard_normal(g.left.size), 0.3, g.spacing)
    L0 = assemble_from_coefficients(g, np.where(g.axis == 0, cL, 0), np.where(g.axis == 0, cR, 0)).toarray()
    L1 = assemble_from_coefficients(g, cL, cR).toarray() - L0
    eye, dt = np.eye(g.ncells), 0.05
    for th in (0.5, 1.0):
        st = SplitStepper(g, cL, cR, dt, th)
        S = np.column_stack([st.forward(e) for e in eye])
        B0, B1 = eye + (1 - th) * dt * L0, eye + (1 - th) * dt * L1
        ref = np.linalg.solve(eye - th * dt * L1, B0 @ np.linalg.solve(eye - th * dt * L0, B1))
        assert np.abs(S - ref).max() < 1e-13
        assert np.abs(np.column_stack([st.backward(e) for e in eye]) - S.T).max() < 1e-14
        assert np.abs(S.sum(0) - 1).max() < 1e-13
    assert S.min() >= 0


def test_split_step_is_second_order_in_time():
    """Peaceman–Rachford against unsplit Crank–Nicolson (sparse LU) on the same generator, with a
    rotating (non-separable) drift: the splitting error falls ×4 per halving of dt."""
    from ocdl.meanfield.fokker_planck import ThetaStepper, assemble_from_coefficients, flux_coefficients, SplitStepper
    g = make_grid([-3.0, -3.0], [3.0, 3.0], [40, 40])
    P = g.face_points
    f = np.where(g.axis == 0, -P[:, 0] - 2 * P[:, 1], 2 * P[:, 0] - P[:, 1])
    cL, cR = flux_coefficients(f, 0.18, g.spacing)
    X = g.centres
    rho0 = np.exp(-2 * np.sum((X - [1.0, 0.5]) ** 2, 1))
    diffs = []
    for steps in (10, 20, 40):
        full = ThetaStepper(assemble_from_coefficients(g, cL, cR), 1.0 / steps, 0.5)
        split = SplitStepper(g, cL, cR, 1.0 / steps, 0.5)
        a = b = rho0
        for _ in range(steps):
            a, b = full.forward(a), split.forward(b)
        diffs.append(g.volume * np.abs(a - b).sum())
    ratios = np.array(diffs[:-1]) / np.array(diffs[1:])
    assert np.all((3.5 < ratios) & (ratios < 4.5)), (diffs, ratios)


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
