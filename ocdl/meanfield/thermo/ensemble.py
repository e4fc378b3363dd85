r"""An ensemble of networks whose trainable variable ``q`` follows eq. (20) of the seed.

One trainable variable: the angle of the weight matrix, ``w(q) = s R(q)`` (``R`` the 2×2
rotation, ``N = 2`` neurons, ``b`` fixed), so ``F(q)`` — the free energy of the hidden variables,
by quadrature — is ``2π``-periodic and eq. (20) needs no boundary (the seed assumes "periodic or
vanishing boundary conditions" for its eq. (22)). Eq. (20) with the seed's sign (eq. (19)):

    ∂p/∂t = ∂_q (D ∂_q p − γ F'(q) p)        ⇔   dq = γ F'(q) dt + √(2D) dW      (ocdl's SDE),
    stationary (zero flux):  p_∞ ∝ exp(γ F / D)                                   (ocdl's law).

The seed writes neither the SDE nor the stationary law: both are ocdl's reading of its eq. (20).
With ``γ > 0`` the drift *raises* ``F`` (eq. (19)); ``γ < 0`` is descent.

Shannon entropy ``S_q = −∫ p log p`` (eq. (21)); its production (eq. (22), checked here):

    dS_q/dt = ∫ (p'/p)(D p' − γF' p) = 4D ∫ (√p')² + γ ∫ F'' p.

:func:`ensemble_study` runs the Euler–Maruyama ensemble and the Crank–Nicolson Fokker–Planck
solution (:func:`ocdl.meanfield.solve_fokker_planck`, periodic grid) side by side.
"""
import numpy as np

from ocdl.errors import InputError
from ocdl.meanfield.fokker_planck import solve_fokker_planck
from ocdl.meanfield.grid import make_grid
from ocdl.meanfield.particles import euler_maruyama
from ocdl.meanfield.thermo.partition import BulkLoss, quadrature


def rotation_network(q, scale=1.2, b=(0.2, -0.1), m=0.0):
    c, s = np.cos(q), np.sin(q)
    return BulkLoss(scale * np.array([[c, -s], [s, c]]), np.asarray(b, dtype=float), m)


class PeriodicFreeEnergy:
    """``F(q)`` on ``M`` equispaced angles by quadrature; ``F, F', F''`` anywhere from its Fourier
    series (tabulated on ``fine`` points, periodic linear interpolation: error ``O((2π/fine)²)``)."""

    def __init__(self, beta, M=64, scale=1.2, b=(0.2, -0.1), m=0.0, points=81, fine=4096):
        self.q = -np.pi + 2 * np.pi * np.arange(M) / M
        self.F = np.array([quadrature(rotation_network(qq, scale, b, m), beta, points=points,
                                      gradients=False, tol=1e-8).F for qq in self.q])
        k = np.fft.fftfreq(M, 1.0 / M)
        c = np.fft.fft(self.F) / M
        self.qf = -np.pi + 2 * np.pi * np.arange(fine) / fine
        ph = np.exp(1j * np.outer(self.qf + np.pi, k))
        self.tab = [np.real(ph @ (c * (1j * k) ** n)) for n in range(3)]
        self.spectrum_tail = float(np.abs(c[M // 4: 3 * M // 4]).max() / np.abs(c).max())

    def __call__(self, q, derivative=0):
        n = self.qf.size
        s = (np.asarray(q, dtype=float) + np.pi) * (n / (2 * np.pi))
        i = np.floor(s)
        f = s - i
        i = i.astype(np.int64) % n
        tab = self.tab[derivative]
        return (1 - f) * tab[i] + f * tab[(i + 1) % n]


def _wrap(q):
    return (q + np.pi) % (2 * np.pi) - np.pi


def shannon(p, h):
    p = np.maximum(p, 0)
    nz = p > 0
    return float(-np.sum(p[nz] * np.log(p[nz])) * h)


def entropy_production_predicted(p, h, D, gamma, Fpp):
    """Eq. (22) on a periodic grid density ``p``: ``4D∫(√p)'² + γ∫F''p`` (spectral ``√p'``)."""
    r = np.sqrt(np.maximum(p, 0))
    k = np.fft.fftfreq(p.size, h / (2 * np.pi))
    dr = np.real(np.fft.ifft(1j * k * np.fft.fft(r)))
    return float(4 * D * np.sum(dr * dr) * h + gamma * np.sum(Fpp * p) * h)


def ensemble_study(beta=2.0, gamma=1.0, D=0.05, T=4.0, particles=20000, steps=2000, cells=128, seed=0,
                   q0=0.0, s0=0.3, scale=1.2, m=0.0, snapshots=8, free_energy=None):
    """Ensemble vs Fokker–Planck vs ``exp(γF/D)`` on the circle; entropy production vs eq. (22).

    Returns a dict: ``histogram_fp_l1`` (cell masses at T), ``mc_expected_l1`` (what a perfect
    sampler shows), ``max_z`` (largest per-cell ``|p_hist − p_fp| / √(p_fp(1−p_fp)/P)``),
    ``stationary_l1`` (ensemble at T vs ``exp(γF/D)``), ``fp_stationary_l1``, and the entropy
    series: ``S_fp`` (FP), ``S_ens`` (histogram entropy of the ensemble), ``rate_measured`` (central
    differences of ``S_fp``), ``rate_predicted`` (eq. (22) on the FP density), ``rate_ensemble``.
    """
    if not D > 0 or not np.isfinite(D):
        raise InputError(f"--D must be > 0 (got {D:g}): D = 0 has no stationary density")
    if not beta > 0:
        raise InputError(f"--beta must be > 0 (got {beta:g})")
    if gamma == 0 or not np.isfinite(gamma):
        raise InputError("--gamma must be a finite non-zero number")
    Ff = free_energy or PeriodicFreeEnergy(beta, scale=scale, m=m)
    grid = make_grid(-np.pi, np.pi, cells, boundary="periodic")
    x = grid.centres[:, 0]
    h = grid.h[0]
    d = _wrap(x - q0)
    p0 = np.exp(-0.5 * d * d / s0 ** 2)
    p0 /= p0.sum() * h
    nu = np.sqrt(2 * D)
    drift_fp = lambda pts, t: gamma * Ff(pts[:, 0], 1)  # noqa: E731
    if steps % snapshots:
        raise InputError(f"--steps {steps} must be a multiple of {snapshots} (the entropy snapshots)")
    every = steps // snapshots
    fp = solve_fokker_planck(grid, p0, drift_fp, nu, T, steps, scheme="cn", store_every=1)
    Sf = np.array([shannon(r, h) for r in fp.history])
    fp.history = fp.history[::every]
    rng = np.random.default_rng(seed)
    qs = _wrap(q0 + s0 * rng.standard_normal(particles))  # wrapped Gaussian = p0 up to the cut tails
    ens_hist = []

    def hist(qq):
        idx = np.clip(np.floor((_wrap(qq) + np.pi) / h).astype(int), 0, cells - 1)
        return np.bincount(idx, minlength=cells) / particles

    ens_hist.append(hist(qs))
    dt_chunk = T / snapshots
    for _ in range(snapshots):
        qs = euler_maruyama(lambda qq, t: gamma * Ff(qq, 1), qs, nu, dt_chunk, every, rng)
        qs = _wrap(qs)
        ens_hist.append(hist(qs))
    times = np.linspace(0, T, snapshots + 1)
    p_fp = [np.maximum(r, 0) * h for r in fp.history]
    Fpp = Ff(x, 2)
    S_fp = np.array([shannon(r, h) for r in fp.history])
    S_ens = np.array([-np.sum(pb[pb > 0] * np.log(pb[pb > 0] / h)) for pb in ens_hist])
    pred = np.array([entropy_production_predicted(r, h, D, gamma, Fpp) for r in fp.history])
    # measured rate: central differences of the FP entropy on every step, at the snapshot times
    rate = np.gradient(Sf, T / steps)[::every]
    gibbs = np.exp(gamma * (Ff(x) - Ff(x).max()) / D)
    gibbs /= gibbs.sum()
    pT = p_fp[-1]
    z = np.abs(ens_hist[-1] - pT) / np.sqrt(np.maximum(pT * (1 - pT), 1e-300) / particles)
    mc = np.sqrt(2 / np.pi) * np.sum(np.sqrt(pT * (1 - pT) / particles))
    heavy = pT > 1e-4                      # bins whose z-score means something; none on very fine grids
    return {
        "grid": grid, "q": x, "F": Ff(x), "rho_fp": fp.rho, "p_hist": ens_hist[-1], "gibbs": gibbs,
        "times": times, "S_fp": S_fp, "S_ens": S_ens, "rate_measured": rate, "rate_predicted": pred,
        "rate_ensemble": np.gradient(S_ens, times),
        "histogram_fp_l1": float(np.sum(np.abs(ens_hist[-1] - pT))), "mc_expected_l1": float(mc),
        "max_z": float(z[heavy].max()) if heavy.any() else None,
        "stationary_l1": float(np.sum(np.abs(ens_hist[-1] - gibbs))),
        "fp_stationary_l1": float(np.sum(np.abs(pT - gibbs))),
        "F_spectrum_tail": Ff.spectrum_tail,
    }
