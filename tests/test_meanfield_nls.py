"""Split-step NLS against analytic solutions; Madelung transform, Bohm potential and residuals."""
import numpy as np

from ocdl.meanfield.nls import (PeriodicBox, bohm_potential, coherent_state, from_madelung, gaussian_packet,
                                madelung_residuals, soliton, split_step, to_madelung)

L, T = 40.0, 1.0


def run_soliton(N, dt):
    box = PeriodicBox(L, N)
    x = box.x[0]
    psi0 = soliton(x, 0, 1.0, 1.0, -2.0, -1.0, 1.0, L)
    r = split_step(box, psi0, 0.0, -1.0, 1.0, dt, int(round(T / dt)))
    return box, r, np.max(np.abs(r.psi - soliton(x, T, 1.0, 1.0, -2.0, -1.0, 1.0, L)))


def test_bright_soliton_shape_second_order_and_mass():
    errs = []
    for dt in (0.02, 0.01, 0.005):
        box, r, e = run_soliton(512, dt)
        errs.append(e)
        # every sub-step is unitary: relative mass drift is round-off (measured 2.5e-14)
        assert np.max(np.abs(r.mass / r.mass[0] - 1)) < 1e-13
    # bar: ≤ 1e-4 at dt = 0.005 (measured 3.9e-6 on 512 points, L = 40, η = 1, v = 1, T = 1)
    assert errs[-1] < 1e-4
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(orders - 2) < 0.1), orders


def test_madelung_residuals_fall_with_refinement():
    res = []
    for N, dt in ((128, 0.02), (256, 0.01), (512, 0.005)):
        box = PeriodicBox(L, N)
        x = box.x[0]
        V = 0.02 * x**2 * 0 + 0.1 * np.cos(2 * np.pi * x / L)      # a smooth periodic potential
        r = split_step(box, gaussian_packet(x, 0.0, 1.0, 1.0, 1.0), V, -1.0, 1.0, dt, int(round(T / dt)))
        res.append(madelung_residuals(box, r.previous[0], r.previous[1], r.psi, dt, V, -1.0))
    res = np.array(res)
    # the continuity and quantum-HJ equations hold up to the O(dt²) time differences and splitting
    ratios = res[:-1] / res[1:]
    assert np.all(ratios > 3.5), res
    # a wrong sign anywhere (e.g. +Q or −gρ in the HJ residual) leaves an O(1) residual
    assert np.all(res[-1] < 1e-4), res


def test_madelung_round_trip_and_bohm_potential():
    box = PeriodicBox(30.0, 256)
    x = box.x[0]
    psi = gaussian_packet(x, 0.5, 1.2, 0.7, 1.0) * np.exp(0.3j * np.sin(2 * np.pi * x / 30.0))
    rho, S = to_madelung(psi)
    assert np.max(np.abs(from_madelung(rho, S) - psi)) < 1e-14
    sig, hbar = 1.2, 0.8
    rho = np.exp(-x**2 / (2 * sig**2)) / np.sqrt(2 * np.pi * sig**2)
    Q = bohm_potential(box, rho, hbar)
    exact = -0.5 * hbar**2 * (x**2 / (4 * sig**4) - 1 / (2 * sig**2))
    bulk = np.abs(x) < 5 * sig                   # outside, √ρ < 1e-5 and Q is ill-conditioned
    assert np.max(np.abs(Q - exact)[bulk]) < 1e-7


def test_coherent_state_1d_and_2d():
    omega, hbar, x0, v = 1.0, 1.0, 2.0, 0.5
    box = PeriodicBox(24.0, 128)
    x = box.x[0]
    r = split_step(box, coherent_state(x, x0, v, omega, hbar), 0.5 * omega**2 * x**2, 0.0, hbar, 0.01, 200)
    X = x0 * np.cos(omega * 2.0) + v / omega * np.sin(omega * 2.0)
    exact = np.abs(coherent_state(x, X, 0.0, omega, hbar)) ** 2
    assert np.max(np.abs(np.abs(r.psi) ** 2 - exact)) < 1e-4    # Strang O(dt²) ≈ 1e-5 measured
    box2 = PeriodicBox(20.0, 64, dim=2)
    X1, X2 = box2.x
    psi0 = coherent_state(X1, x0, 0.0, omega, hbar) * coherent_state(X2, 0.0, v, omega, hbar)
    r2 = split_step(box2, psi0, 0.5 * omega**2 * (X1**2 + X2**2), 0.0, hbar, 0.01, 150)
    t = 1.5
    ex2 = (np.abs(coherent_state(X1, x0 * np.cos(t), 0.0, omega, hbar)) ** 2
           * np.abs(coherent_state(X2, v * np.sin(t), 0.0, omega, hbar)) ** 2)
    assert np.max(np.abs(np.abs(r2.psi) ** 2 - ex2)) < 1e-4
    assert np.max(np.abs(r2.mass / r2.mass[0] - 1)) < 1e-13     # round-off (measured 8.9e-15)
    res = []
    for dt in (0.01, 0.005):
        r2 = split_step(box2, psi0, 0.5 * omega**2 * (X1**2 + X2**2), 0.0, hbar, dt, int(round(1.5 / dt)))
        res.append(madelung_residuals(box2, r2.previous[0], r2.previous[1], r2.psi, dt,
                                      0.5 * (X1**2 + X2**2), 0.0))
    res = np.array(res)
    assert np.all(res[0] / res[1] > 3.5), res     # 2-D Madelung residuals: O(dt²)
