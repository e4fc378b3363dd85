r"""Noisy learning (Vanchurin, *The world as a neural network*, arXiv:2008.01540): Langevin training
of a tiny network and the Fokker–Planck equation of its trainable variables.

Model: one neuron ``y = tanh(w x + b)`` fitted to a fixed data set; trainable ``q = (w, b)``
(``params=2``) or ``q = w`` with ``b = 0`` (``params=1``). Loss with weight decay

    L(q) = (1/2n) Σ_j (tanh(w x_j + b) − y_j)² + (λ/2)|q|²,

(the weight decay makes the stationary law normalisable: tanh saturates, so without it the
noise would carry the parameters away to infinity).

Sign convention: every ensemble member follows the Langevin SDE

    dq = −γ ∇L(q) dt + √(2D) dW,

i.e. ``dq = f dt + ν dW`` with ``f = −γ∇L``, ``ν = √(2D)``; its density obeys
``∂ρ/∂t = ∇·(γ ∇L ρ) + D Δρ`` and relaxes to the Gibbs law ``ρ_∞ ∝ exp(−γ L / D)``.
The seed contains only a Fokker–Planck equation for ``q`` (its eq. (20), drift ``γ∂F/∂q``, diffusion
``D``); the SDE ``dq = γ∇F dt + √(2D) dW`` and the stationary law ``∝ exp(γF/D)`` are ocdl's own
reading of that equation (not statements of the seed). With ``F = −L`` they are the SDE and law
above. ``ocdl meanfield thermo`` (:mod:`ocdl.meanfield.thermo`) uses the seed's ``F`` itself — the
free energy of the hidden variables.
"""
import numpy as np

from ocdl.errors import InputError
from ocdl.meanfield.fokker_planck import gaussian_density, solve_fokker_planck
from ocdl.meanfield.grid import make_grid
from ocdl.meanfield.particles import euler_maruyama


class NeuronLoss:
    """``L(q)`` and ``∇L(q)`` for the one-neuron model, vectorised over parameter points."""

    def __init__(self, params=2, n=16, weight_decay=0.05, seed=0, w_true=1.5, b_true=-0.3, noise=0.1):
        if params not in (1, 2):
            raise InputError("--params must be 1 or 2")
        rng = np.random.default_rng(seed)
        self.params, self.lam = params, float(weight_decay)
        self.x = rng.uniform(-2, 2, n)
        self.y = np.tanh(w_true * self.x + (b_true if params == 2 else 0.0)) + noise * rng.standard_normal(n)

    def _wb(self, q):
        q = np.atleast_2d(np.asarray(q, dtype=float))
        if q.shape[1] != self.params:
            q = q.reshape(-1, self.params)
        b = q[:, 1:2] if self.params == 2 else 0.0
        return q, q[:, 0:1], b

    def value(self, q):
        q, w, b = self._wb(q)
        r = np.tanh(w * self.x + b) - self.y
        return 0.5 * np.mean(r * r, axis=1) + 0.5 * self.lam * np.sum(q * q, axis=1)

    def grad(self, q):
        q, w, b = self._wb(q)
        t = np.tanh(w * self.x + b)
        s = (t - self.y) * (1 - t * t) / self.x.size          # ∂/∂(pre-activation)
        gw = np.sum(s * self.x, axis=1)
        cols = [gw] if self.params == 1 else [gw, np.sum(s, axis=1)]
        return np.stack(cols, axis=1) + self.lam * q


def langevin_study(params=1, gamma=1.0, D=0.02, T=10.0, particles=20000, steps=1000, seed=0, cells=None,
                   q0=0.0, s0=0.3, weight_decay=0.05, fp_steps=400):
    """Run the ensemble and the Fokker–Planck solution; return a dict of arrays and distances.

    Distances are L1 between probability masses on the FP cells (particles binned to cells):
    ``histogram_fp_l1`` (ensemble at T vs FP at T), ``histogram_stationary_l1`` (ensemble vs
    ``exp(−γL/D)``), ``fp_stationary_l1``, and ``mc_expected_l1`` = √(2/π) Σ_b √(p_b(1−p_b)/P),
    the L1 distance a perfect sampler of the FP law would show on average.
    """
    if not (gamma > 0 and D > 0 and T > 0):
        raise InputError("--gamma, --D and --T must be > 0")
    model = NeuronLoss(params=params, weight_decay=weight_decay)
    cells = cells or (400 if params == 1 else 70)
    rng = np.random.default_rng(seed)
    nu = np.sqrt(2 * D)

    def drift(q, t=0.0):
        return -gamma * model.grad(q).reshape(np.shape(q))

    start = q0 + s0 * rng.standard_normal((particles, params))
    qT = euler_maruyama(drift, start, nu, T, steps, rng)
    # domain: where a seeded probe ensemble goes, plus a margin of a few noise widths
    prng = np.random.default_rng(seed + 12345)
    probe = euler_maruyama(drift, q0 + s0 * prng.standard_normal((2000, params)), nu, T, max(steps // 4, 50), prng)
    ext = np.concatenate([probe, q0 + s0 * prng.standard_normal((2000, params))])
    margin = s0 + 4 * np.sqrt(D / gamma)
    lo, hi = ext.min(0) - margin, ext.max(0) + margin
    grid = make_grid(lo, hi, [cells] * params)
    rho0 = gaussian_density(grid, [q0] * params, [s0] * params)
    fp = solve_fokker_planck(grid, rho0, lambda p, t: drift(p), nu, T, fp_steps, scheme="cn")
    Lc = model.value(grid.centres)
    gibbs = np.exp(-gamma * (Lc - Lc.min()) / D)
    gibbs /= grid.mass(gibbs)
    # particle histogram on the FP cells
    idx = np.floor((qT - grid.lower) / grid.h).astype(int)
    inside = np.all((idx >= 0) & (idx < np.array(grid.shape)), axis=1)
    flat = np.ravel_multi_index(idx[inside].T, grid.shape) if params == 2 else idx[inside, 0]
    counts = np.bincount(flat, minlength=grid.ncells).astype(float)
    p_hist = counts / particles
    p_fp = np.maximum(fp.rho, 0) * grid.volume
    p_gibbs = gibbs * grid.volume
    mc = np.sqrt(2 / np.pi) * np.sum(np.sqrt(p_fp * (1 - p_fp) / particles))
    return {
        "grid": grid, "particles_T": qT, "rho_fp": fp.rho, "rho_stationary": gibbs, "p_hist": p_hist,
        "model": model,
        "histogram_fp_l1": float(np.sum(np.abs(p_hist - p_fp))),
        "histogram_stationary_l1": float(np.sum(np.abs(p_hist - p_gibbs))),
        "fp_stationary_l1": float(np.sum(np.abs(p_fp - p_gibbs))),
        "mc_expected_l1": float(mc),
        "outside_fraction": float(1 - inside.mean()),
        "fp_mass_drift": float(np.max(np.abs(fp.mass - 1))),
    }


#: the distances :func:`langevin_study` reports (the one-line summary of ``ocdl meanfield langevin``)
DISTANCES = ("histogram_fp_l1", "histogram_stationary_l1", "fp_stationary_l1", "mc_expected_l1",
             "outside_fraction", "fp_mass_drift")


def langevin_report(r, params, gamma, D, T, particles, steps, seed, weight_decay):
    """The JSON summary of a :func:`langevin_study` result ``r``: its distances plus the settings."""
    out = {k: r[k] for k in DISTANCES}
    out.update(params=int(params), gamma=gamma, D=D, T=T, particles=particles, steps=steps, seed=seed,
               cells=list(r["grid"].shape), weight_decay=weight_decay,
               sde="dq = -gamma grad L dt + sqrt(2 D) dW", stationary="exp(-gamma L / D)")
    return out
