"""The elimination pipeline (ocdl/meanfield/eliminate.py): the control read off the imaginary-time
Schrödinger pair against the closed form of the LQ problem (θ* = −(x − z)/(1/c + T − t)), the
quantum-Euler residual with ħ² = −ν⁴ (and its failure with ħ² = +ν⁴), the trained sweep, and the
density-trained affine ResNet."""
import json

import numpy as np
import pytest

from ocdl.meanfield.control import solve_hopf_cole
from ocdl.meanfield.eliminate import (EliminateConfig, _grid, _problem, _weighted_l2, density_affine_training,
                                      lq_control, quantum_euler_residual, read_control, schroedinger_pair)


def _reading_error(cfg, n):
    g = _grid(cfg, n)
    steps = n // 2
    Phi, rho0 = _problem(cfg, g)
    pair = schroedinger_pair(g, rho0, Phi, cfg.nu, cfg.T, steps)
    theta = read_control(g, pair, cfg.nu)
    dt = cfg.T / steps
    exact = [lq_control(g, cfg, (k + 0.5) * dt) for k in range(steps)]
    return g, pair, theta, _weighted_l2(g, pair.rho, theta, exact, cfg.T)


def test_reading_1d_against_closed_form_second_order_below_1e3():
    cfg = EliminateConfig(dim=1)
    errs = [_reading_error(cfg, n)[3] for n in (200, 400, 800)]
    assert errs[-1] < 1e-3                                       # 5.2e-4 at 800 cells
    assert all(abs(np.log2(a / b) - 2) < 0.15 for a, b in zip(errs, errs[1:]))


def test_reading_2d_against_closed_form_second_order():
    cfg = EliminateConfig(dim=2)
    errs = [_reading_error(cfg, n)[3] for n in (40, 80, 160)]
    # 2-D: 3.4e-2 → 9.1e-3 (the 1e-3 level needs ≈ 480² cells; the rate is the claim here)
    assert errs[-1] < 1.2e-2
    assert np.log2(errs[1] / errs[2]) > 1.8


def test_reading_equals_hopf_cole_drift_and_density():
    """θ from (Σ, ρ) is algebraically ν²∇log φ: the same control as solve_hopf_cole's, same ρ path."""
    cfg = EliminateConfig(dim=1)
    g, pair, theta, _ = _reading_error(cfg, 200)
    Phi, rho0 = _problem(cfg, g)
    hc = solve_hopf_cole(g, rho0, Phi, cfg.nu, cfg.T, steps=100)
    assert max(np.max(np.abs(a - b)) for a, b in zip(pair.rho, hc.rho_path)) < 1e-12
    # hc drift uses log of the level average of φ, the reading averages the two levels' gradients: O(dt²)
    assert _weighted_l2(g, pair.rho, theta, hc.drift, cfg.T) < 2e-3


def test_quantum_euler_residual_vanishes_only_for_imaginary_hbar():
    cfg = EliminateConfig(dim=1)
    res, res_real = [], []
    for n in (100, 200, 400):
        g, pair, _, _ = _reading_error(cfg, n)
        res.append(quantum_euler_residual(g, pair, cfg.nu, cfg.T))
        res_real.append(quantum_euler_residual(g, pair, cfg.nu, cfg.T, hbar2=cfg.nu ** 4))
    assert all(abs(np.log2(a / b) - 2) < 0.2 for a, b in zip(res, res[1:]))
    assert res[-1] < 1e-2 and min(res_real) > 0.1


@pytest.mark.slow
def test_density_trained_affine_resnet_converges_at_first_order_in_layers():
    cfg = EliminateConfig(dim=1)
    g, pair, _, _ = _reading_error(cfg, 200)
    x = g.face_points[:, 0]
    errs = []
    for L in (10, 20, 40):
        K, b, r = density_affine_training(cfg, L)
        assert r.success
        tk = (np.arange(L) + 0.5) * cfg.T / L
        lay = np.minimum(((np.arange(100) + 0.5) * (cfg.T / 100) / (cfg.T / L)).astype(int), L - 1)
        errs.append(_weighted_l2(g, pair.rho, [K[k] * x + b[k] for k in lay],
                                 [lq_control(g, cfg, tk[k]) for k in lay], cfg.T))
    assert all(abs(np.log2(a / b) - 1) < 0.15 for a, b in zip(errs, errs[1:]))


def test_eliminate_cli_bad_input(ocdl_cli):
    r = ocdl_cli("meanfield", "eliminate", "--cells", "10", "--quiet")
    assert r.returncode == 2 and "--cells" in r.stderr and "Traceback" not in r.stderr
    r = ocdl_cli("meanfield", "eliminate", "--nu", "0", "--quiet")
    assert r.returncode == 2 and "--nu" in r.stderr


@pytest.mark.slow
def test_eliminate_cli_json(ocdl_cli, tmp_path):
    js, png = tmp_path / "e.json", tmp_path / "e.png"
    r = ocdl_cli("meanfield", "eliminate", "--cells", "40,80", "--density-layers", "6", "--json", js, "--plot", png,
                 "--quiet")
    assert r.returncode == 0, r.stderr
    d = json.loads(js.read_text())
    assert {"control_l2", "residual"} <= set(d)
    assert d["control_l2"] < d["rows"][0]["control_l2_sweep"]     # falls with refinement
    assert png.stat().st_size > 10000


@pytest.mark.slow
def test_eliminate_default_run_rates(ocdl_cli, tmp_path):
    js = tmp_path / "e.json"
    r = ocdl_cli("meanfield", "eliminate", "--json", js, "--quiet")
    assert r.returncode == 0, r.stderr
    d = json.loads(js.read_text())
    assert all(abs(x - 2) < 0.15 for x in d["rates"]["control_l2_sweep"][1:])
    assert d["control_l2"] < 5e-3
