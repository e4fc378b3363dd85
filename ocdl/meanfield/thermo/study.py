"""``ocdl meanfield thermo``: the whole learning-thermodynamics computation in one call.

:class:`ThermoConfig` holds the defaults (the CLI maps its flags onto it); :func:`thermo_study`
runs, in order: the partition function of a random ``--neurons`` network by quadrature, Monte
Carlo and the Gaussian approximations (and Monte Carlo alone for ``--mc-neurons``); the error of
the Gaussian approximations over β; training ``(b, w)`` by gradient descent with ``U, F, S₀, C,
S_x`` recorded, the second law along it and the first law at its end; the Langevin ensemble of
networks against the Fokker–Planck equation (20) and ``exp(γF/D)``, entropy production against
eq. (22); the action's equations (Schrödinger limit, dispersion, Hamilton–Jacobi regime,
stationary ``F`` against the canonical free energy with ``μ = 2β``). Returns the JSON dict.
"""
from dataclasses import asdict, dataclass, field

import numpy as np

from ocdl.errors import InputError
from ocdl.meanfield.thermo import action, ensemble, learning
from ocdl.meanfield.thermo.partition import (BulkLoss, entropy_split, gaussian_error_scan, gaussian_paper, laplace,
                                             monte_carlo, quadrature)


@dataclass
class ThermoConfig:
    beta: float = 2.0               # inverse temperature of the hidden variables
    neurons: int = 2                # network for quadrature (≤ 3)
    mc_neurons: int = 6             # larger network for Monte Carlo
    mass: float = 0.2               # m in V(x) = −(m/2)x² (< 1)
    points: int = 101               # quadrature nodes per axis
    samples: int = 200_000          # Monte-Carlo samples
    objective: str = "free-energy"  # training: gradient descent on F ("free-energy") or U ("loss")
    iterations: int = 40            # gradient-descent iterations
    gamma: float = 1.0              # learning rate γ of eq. (19)/(20)
    D: float = 0.25                 # noise D of eq. (20)
    T: float = 8.0                  # ensemble time
    particles: int = 20_000         # ensemble size
    steps: int = 2000               # Euler–Maruyama / Crank–Nicolson steps
    cells: int = 128                # Fokker–Planck cells on the circle
    seed: int = 0
    betas: tuple = field(default=(0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0))

    def check(self):
        if not self.beta > 0:
            raise InputError(f"--beta must be > 0 (got {self.beta:g})")
        if not self.D > 0:
            raise InputError(f"--D must be > 0 (got {self.D:g}): D = 0 has no stationary density")
        if self.gamma == 0:
            raise InputError("--gamma must be non-zero")
        if not 1 <= self.neurons <= 3:
            raise InputError(f"--neurons must be 1, 2 or 3 for quadrature (got {self.neurons}); "
                             "use --mc-neurons for larger networks")
        if not self.mass < 1:
            raise InputError(f"--mass must be < 1 (got {self.mass:g}): Z diverges")
        if self.steps % 8:
            raise InputError(f"--steps {self.steps} must be a multiple of 8 (the entropy snapshots)")
        if self.points < 9:
            raise InputError(f"--points {self.points} is too coarse; use at least 9")


def random_network(N, seed, m, scale=0.6):
    rng = np.random.default_rng(seed)
    return BulkLoss(scale * rng.standard_normal((N, N)) / np.sqrt(N), 0.3 * rng.standard_normal(N), m)


def thermo_study(cfg: ThermoConfig, quiet=True):
    cfg.check()
    N, beta, m = cfg.neurons, cfg.beta, cfg.mass
    net = random_network(N, cfg.seed, m)
    ens = quadrature(net, beta, points=cfg.points)
    rng = np.random.default_rng(cfg.seed)
    mc = monte_carlo(net, beta, samples=cfg.samples, rng=rng)
    big = random_network(cfg.mc_neurons, cfg.seed + 1, m)
    mcb = monte_carlo(big, beta, samples=cfg.samples, rng=rng)
    log_Z = {"exact": ens.log_Z, "gaussian": gaussian_paper(net, beta, ens.mean_x), "laplace": laplace(net, beta),
             "monte_carlo": mc.log_Z, "monte_carlo_stderr": mc.stderr_log_Z,
             "quadrature_error_estimate": ens.extra["error_estimate"],
             "large": {"neurons": cfg.mc_neurons, "monte_carlo": mcb.log_Z, "monte_carlo_stderr": mcb.stderr_log_Z,
                       "effective_samples": mcb.extra["effective_samples"],
                       "gaussian": gaussian_paper(big, beta, mcb.mean_x), "laplace": laplace(big, beta)}}
    scan = gaussian_error_scan(net, cfg.betas, points=max(cfg.points, 161))
    scan0 = gaussian_error_scan(BulkLoss(net.w, net.b, 0.0), cfg.betas, points=max(cfg.points, 161))
    # training
    res = learning.train(net.w, net.b, beta, m, cfg.objective, cfg.iterations, points=cfg.points, quiet=quiet)
    hist = [{k: h[k] for k in ("iteration", "loss", "U", "F", "S0", "C", "Sx", "grad_norm")} for h in res.history]
    law2 = learning.second_law(res.history)
    law1 = learning.first_law(res.x, N, beta, m, points=cfg.points)
    end = res.history[-1]
    # ensemble of networks on the circle q (rotation angle of w)
    Ff = ensemble.PeriodicFreeEnergy(beta, m=m)
    es = ensemble.ensemble_study(beta, cfg.gamma, cfg.D, cfg.T, cfg.particles, cfg.steps, cfg.cells, cfg.seed,
                                 free_energy=Ff)
    j = 1                                                        # first snapshot after t = 0
    mu = 2 * beta
    act = {"mu": mu,
           "schroedinger": action.schroedinger_check(abs(cfg.gamma), cfg.D, mu),
           "schroedinger_seed_literal": action.schroedinger_check(abs(cfg.gamma), cfg.D, mu, literal=True,
                                                                  steps=(4,)),
           "dispersion": action.dispersion_check(abs(cfg.gamma), cfg.D, mu),
           "hamilton_jacobi": action.hamilton_jacobi_check(abs(cfg.gamma), mu, n=64),
           "stationary": action.stationary_check(beta, abs(cfg.gamma))}
    out = {
        "beta": beta, "neurons": N, "mass": m, "log_Z": log_Z,
        "initial": {"U": ens.U, "F": ens.F, "Sx": ens.Sx, **dict(zip(("S0", "C"), entropy_split(ens, N)))},
        "U": end["U"], "F": end["F"], "S0": end["S0"], "C": end["C"], "Sx": end["Sx"],
        "first_law_residual": law1["gradient_form"], "first_law": law1, "second_law": law2,
        "training": {"objective": cfg.objective, "iterations": res.nit, "success": res.success,
                     "message": res.message, "history": hist,
                     "w": learning.unpack(res.x, N)[0].tolist(), "b": learning.unpack(res.x, N)[1].tolist()},
        "gaussian_scan": scan, "gaussian_scan_massless": scan0,
        "entropy_production": {"measured": float(es["rate_measured"][j]), "predicted": float(es["rate_predicted"][j]),
                               "ensemble": float(es["rate_ensemble"][j]), "at_time": float(es["times"][j]),
                               "series": {"t": es["times"].tolist(), "measured": es["rate_measured"].tolist(),
                                          "predicted": es["rate_predicted"].tolist(),
                                          "ensemble": es["rate_ensemble"].tolist()}},
        "stationary_l1": es["stationary_l1"],
        "ensemble": {k: es[k] for k in ("histogram_fp_l1", "mc_expected_l1", "max_z", "fp_stationary_l1")},
        "action": act, "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "conventions": {"sde": "dq = gamma F'(q) dt + sqrt(2 D) dW (ocdl's reading of eq. (20))",
                        "stationary": "exp(gamma F / D) (ocdl's, from eq. (20))",
                        "S0": "(N/2)(1 + log(2 pi / beta)) (ocdl's choice; C = Sx - S0)"},
    }
    return out, {"ensemble": es, "history": hist, "scan": scan, "scan0": scan0}
