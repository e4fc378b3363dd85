r"""The mean-field limit measured as a limit (``ocdl meanfield limit``), on the 1-D two-class problem
of :mod:`ocdl.meanfield.gradient_study` (classes ``N(−0.6, 0.35²)``, ``N(0.7, 0.3²)``, 4 layers,
``T = 1``, field ``K tanh x + b``, logistic head).

* **(a) P → ∞** at fixed parameters θ: the particle-PMP cost ``J_P`` and gradient ``∇J_P``
  (``P`` particles drawn from the class laws, one Euler–Maruyama noise path each) against the
  density solution (Crank–Nicolson Fokker–Planck on a fine grid, exact discrete adjoint): RMS over
  seeds of ``|J_P − J|`` and ``‖∇J_P − ∇J‖``, and their fitted log–log slopes (theory: −1/2).
* **(b) ν → 0**: the stochastic optimum ``θ*(ν)`` (L-BFGS on the density problem, weight decay
  ``α``) against the deterministic PMP optimum ``θ*(0)`` on the same initial measure (particle PMP
  at ``ν = 0`` over midpoint-quantile nodes of each class): ``J*(ν) − J*(0)`` and
  ``max|θ*(ν) − θ*(0)|`` with fitted rates (theory: ``ν²``, the noise enters through ``ν²/2 Δ``).
* **(c) stationarity** (the discrete Pontryagin / HJB condition ``Σ_c ∫ ρ_c (∂f/∂θ)ᵀ ∇u_c + ∇r = 0``,
  i.e. ``∇J = 0``): ``max|∇J|`` of each solution on its own problem, and of ``θ*(0)`` on the
  stochastic problem (how far the deterministic optimum is from stationary at noise ν).
"""
import time

import numpy as np
from scipy.special import ndtri

from ocdl.meanfield import gradient_study as gs
from ocdl.meanfield.fokker_planck import gaussian_density
from ocdl.meanfield.grid import make_grid
from ocdl.meanfield.training import DensityProblem, layer_model, particle_value_and_grad


def fit_power(x, y):
    """Least-squares slope and prefactor of ``log y = p log x + log c``: ``(p, c)``."""
    p, lc = np.polyfit(np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float)), 1)
    return float(p), float(np.exp(lc))


def _density(nu, cells, steps_per_layer, alpha):
    g = make_grid(-4, 4, cells)
    rho0 = np.stack([gaussian_density(g, gs.MEANS[c], gs.STDS[c]) for c in (0, 1)], 1)
    return DensityProblem(g, rho0, [0.5, 0.5], nu, gs.T, gs.LAYERS, alpha=alpha, alpha_head=alpha,
                          steps_per_layer=steps_per_layer, scheme="cn")


def particles_to_density(nu=0.3, sizes=(100, 1000, 10000, 100000), seeds=6, substeps=50, cells=2000,
                         steps_per_layer=40):
    """(a): ``{"P", "cost_error", "grad_error", "cost_slope", "grad_slope", "J_density"}``."""
    P = gs.study_params()
    Jref, Gref = _density(nu, cells, steps_per_layer, 0.0).value_and_grad(P)
    gref = gs._flat(Gref)
    ce, ge = [], []
    for n in sizes:
        c2, g2 = [], []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            y = np.repeat([0, 1], n // 2)
            X = np.where(y == 0, gs.MEANS[0] + gs.STDS[0] * rng.standard_normal(y.size),
                         gs.MEANS[1] + gs.STDS[1] * rng.standard_normal(y.size))[:, None]
            noise = rng.standard_normal((gs.LAYERS * substeps, y.size, 1))
            J, G = particle_value_and_grad(P, X, y, nu, gs.T, substeps=substeps, noise=noise)
            c2.append((J - Jref) ** 2)
            g2.append(np.sum((gs._flat(G) - gref) ** 2))
        ce.append(float(np.sqrt(np.mean(c2))))
        ge.append(float(np.sqrt(np.mean(g2))))
    return {"nu": nu, "P": list(sizes), "seeds": seeds, "cost_error": ce, "grad_error": ge,
            "cost_slope": fit_power(sizes, ce)[0], "grad_slope": fit_power(sizes, ge)[0], "J_density": float(Jref)}


def _solve(objective, x0, iterations):
    from ocdl.optim import LBFGS, minimize
    return minimize(objective, x0, LBFGS(gtol=1e-9, ftol=1e-15, maxcor=20), iterations,
                    name="meanfield limit (L-BFGS)")


def noise_to_deterministic(nus=(0.4, 0.2, 0.1), alpha=0.05, cells=2000, steps_per_layer=20, nodes=1000,
                           substeps=100, iterations=400):
    """(b) and (c): optima at each ``ν`` (continuation from ``θ*(0)``) against ``θ*(0)``."""
    model = layer_model(gs.LAYERS, 1, gs.T)
    u = (np.arange(nodes) + 0.5) / nodes
    X = np.concatenate([gs.MEANS[c] + gs.STDS[c] * ndtri(u) for c in (0, 1)])[:, None]
    y = np.repeat([0, 1], nodes)

    def det(v, batch):
        J, G = particle_value_and_grad(model.unflatten(v), X, y, 0.0, gs.T, alpha, alpha, substeps)
        return J, model.flatten(G)
    r0 = _solve(det, model.flatten(gs.study_params()), iterations)
    x0, J0 = r0.x, r0.fun
    rows = []
    for nu in nus:
        prob = _density(nu, cells, steps_per_layer, alpha)

        def sto(v, batch, prob=prob):
            J, G = prob.value_and_grad(model.unflatten(v))
            return J, model.flatten(G)
        r = _solve(sto, x0, iterations)
        g_own = np.max(np.abs(sto(r.x, None)[1]))
        g_det = np.max(np.abs(sto(x0, None)[1]))
        rows.append({"nu": nu, "cost_gap": float(r.fun - J0), "param_gap": float(np.max(np.abs(r.x - x0))),
                     "stationarity": float(g_own), "deterministic_optimum_stationarity": float(g_det),
                     "success": bool(r.success), "nit": int(r.nit)})
    out = {"alpha": alpha, "J_deterministic": float(J0), "deterministic_stationarity":
           float(np.max(np.abs(det(x0, None)[1]))), "deterministic_success": bool(r0.success), "rows": rows}
    nu = [r["nu"] for r in rows]
    out["cost_rate"] = fit_power(nu, [abs(r["cost_gap"]) for r in rows])[0]
    out["param_rate"] = fit_power(nu, [r["param_gap"] for r in rows])[0]
    return out


def limit_study(sizes=(100, 1000, 10000, 100000), seeds=6, nus=(0.4, 0.2, 0.1), nu_particles=0.3):
    """Both studies at the default resolutions: ``{"particles": (a), "noise": (b, c), "wall_time_s"}``."""
    t = time.perf_counter()
    a = particles_to_density(nu_particles, sizes, seeds)
    b = noise_to_deterministic(nus)
    return {"particles": a, "noise": b, "wall_time_s": time.perf_counter() - t}


def plot_limit(r, path):
    """(a) errors vs P with the P^{-1/2} line; (b) gaps vs ν with the ν² line; (c) stationarity."""
    from ocdl.plotting import plt, save_figure
    a, b = r["particles"], r["noise"]
    fig, axs = plt.subplots(1, 3, figsize=(13, 3.8))
    P = np.array(a["P"], dtype=float)
    for key, lab in (("cost_error", "|J_P − J_density|"), ("grad_error", "‖∇J_P − ∇J_density‖")):
        axs[0].loglog(P, a[key], "o-", label=f"{lab} (slope {a[key.split('_')[0] + '_slope']:.2f})")
    axs[0].loglog(P, a["grad_error"][0] * np.sqrt(P[0] / P), "k:", label="P^-1/2")
    axs[0].set_xlabel("particles P")
    axs[0].set_title(f"(a) particles → density, ν = {a['nu']:g}", fontsize=9)
    axs[0].legend(fontsize=7)
    nu = np.array([row["nu"] for row in b["rows"]])
    cg = [abs(row["cost_gap"]) for row in b["rows"]]
    pg = [row["param_gap"] for row in b["rows"]]
    axs[1].loglog(nu, cg, "o-", label=f"|J*(ν) − J*(0)| (rate {b['cost_rate']:.2f})")
    axs[1].loglog(nu, pg, "s-", label=f"max|θ*(ν) − θ*(0)| (rate {b['param_rate']:.2f})")
    axs[1].loglog(nu, cg[0] * (nu / nu[0]) ** 2, "k:", label="ν²")
    axs[1].set_xlabel("ν")
    axs[1].set_title("(b) stochastic optimum → deterministic PMP optimum", fontsize=9)
    axs[1].legend(fontsize=7)
    axs[2].semilogy(nu, [row["stationarity"] for row in b["rows"]], "o-", label="max|∇J| at θ*(ν)")
    axs[2].semilogy(nu, [row["deterministic_optimum_stationarity"] for row in b["rows"]], "s-",
                    label="max|∇J_ν| at θ*(0)")
    axs[2].axhline(b["deterministic_stationarity"], color="k", ls=":", label="max|∇J_0| at θ*(0)")
    axs[2].set_xscale("log")
    axs[2].set_xlabel("ν")
    axs[2].set_title("(c) Hamiltonian stationarity residual", fontsize=9)
    axs[2].legend(fontsize=7)
    fig.suptitle("the mean-field limit (1-D two-class stochastic ResNet, 4 layers)", fontsize=10)
    save_figure(fig, path)


def limit_table(r):
    """The command's text table."""
    a, b = r["particles"], r["noise"]
    lines = [f"(a) P -> inf at fixed theta, nu = {a['nu']:g} (RMS over {a['seeds']} seeds)",
             "      P    |J_P - J|   |gradJ_P - gradJ|"]
    lines += [f"{p:>7d}   {c:.3e}   {g:.3e}" for p, c, g in zip(a["P"], a["cost_error"], a["grad_error"])]
    lines.append(f"  slopes: cost {a['cost_slope']:.3f}, gradient {a['grad_slope']:.3f} (theory -0.5)")
    lines += [f"(b,c) nu -> 0: J*(0) = {b['J_deterministic']:.6f}, stationarity at theta*(0) "
              f"{b['deterministic_stationarity']:.1e}",
              "     nu   J*(nu)-J*(0)  max|dtheta|   |gradJ| own   |gradJ_nu(theta*(0))|"]
    lines += [f"{row['nu']:>7.3f}   {row['cost_gap']:+.3e}   {row['param_gap']:.3e}   {row['stationarity']:.1e}"
              f"       {row['deterministic_optimum_stationarity']:.2e}" for row in b["rows"]]
    lines.append(f"  rates: cost {b['cost_rate']:.2f}, parameters {b['param_rate']:.2f} (theory 2)")
    return "\n".join(lines)
