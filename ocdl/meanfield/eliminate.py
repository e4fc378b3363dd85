r"""The elimination step, computed: the ResNet's control read off the Schrödinger / quantum-Euler form.

Problem (the drift-as-control problem of :mod:`ocdl.meanfield.control`; the control ``θ(t, x)`` is
the network's velocity field, ``dX = θ dt + ν dW``)::

    min  E[∫₀ᵀ |θ|²/2 dt + Φ(X_T)],      ∂_tρ = −∇·(θρ) + (ν²/2)Δρ,  ρ(0) = ρ₀.

Derivation (the seed's chain, with the signs this computation needs):

1. Mean-field optimality system: Fokker–Planck forward, HJB ``−∂_tV = −|∇V|²/2 + (ν²/2)ΔV``,
   ``V(T) = Φ`` backward, stationarity ``θ = −∇V``.
2. Change of variable ``θ = v + (ν²/2)∇log ρ``: Fokker–Planck becomes the continuity equation
   ``∂_tρ + ∇·(ρv) = 0``.
3. The running cost becomes ``∫ρ|v|²/2 + (ν⁴/8)∫|∇log ρ|²ρ`` (Fisher information) plus
   ``(ν²/2)d/dt∫ρ log ρ`` (a boundary term: ``∫v·∇ρ = d/dt ∫ρ log ρ`` along the continuity equation).
4. Eliminating the costate (``v = ∇Σ``, ``Σ = −V − (ν²/2)log ρ``) gives the quantum-Euler system

       ∂_tρ + ∇·(ρ∇Σ) = 0,     ∂_tΣ + |∇Σ|²/2 + (ν⁴/2) Δ√ρ/√ρ = 0,

   i.e. Madelung's equations with the Bohm potential ``Q = −(ħ²/2)Δ√ρ/√ρ`` at **ħ² = −ν⁴** (the
   seed's ``ħ = ν⁴``, read as ``ħ² = ν⁴``, has the wrong sign: with it the residual below is O(1)).
5. Schrödinger form: ``ψ = √ρ e^{iΣ/ħ}`` with ``ħ = iν²`` is ``φ = √ρ e^{Σ/ν²}`` and its "conjugate"
   ``φ̂ = √ρ e^{−Σ/ν²}``: real, with ``∂_tφ = −(ν²/2)Δφ``, ``∂_tφ̂ = +(ν²/2)Δφ̂`` — the Schrödinger
   equation in imaginary time, i.e. the Hopf–Cole pair.

Which solver and why: with ``ħ² = −ν⁴`` the real-time split-step NLS (:mod:`ocdl.meanfield.nls`)
would integrate ``∂_tφ = −(ν²/2)Δφ`` forward from ``t = 0`` — a backward heat equation, ill-posed
(mode ``k`` grows as ``e^{ν²k²t/2}``). The constants make it an imaginary-time two-point problem:
``φ`` backward from ``φ(T) = e^{−Φ/ν²}``, ``φ̂`` forward from ``φ̂(0) = ρ₀/φ(0)``. This module solves
that pair with the same finite-volume heat operator and Crank–Nicolson steps as
:func:`ocdl.meanfield.control.solve_hopf_cole` (:func:`schroedinger_pair`), then reads the weights
from phase and amplitude::

    ρ = φφ̂,   Σ = (ν²/2) log(φ/φ̂),   θ = ∇Σ + (ν²/2)∇log ρ      (= ν²∇log φ).

:func:`eliminate` compares that ``θ`` with the control trained directly by the policy-iteration
sweep (:func:`ocdl.meanfield.control.solve_forward_backward`), with the closed form of the LQ problem
``Φ = Σ_a (c/2)(x_a − z_a)²`` (``θ* = −(x − z)/(1/c + T − t)``) and, in 1-D, with a layered affine
ResNet ``θ_k(x) = K_k x + b_k`` trained by the Gaussian-blob density recursion of
:mod:`ocdl.meanfield.lagrangian` (one blob, exact in law for this linear field; Euler in time).
"""
from dataclasses import dataclass, field

import numpy as np

from ocdl.errors import InputError
from ocdl.meanfield.control import _face_grad, solve_forward_backward
from ocdl.meanfield.fokker_planck import SCHEMES, stepper_for_drift
from ocdl.meanfield.grid import make_grid


@dataclass
class EliminateConfig:
    dim: int = 1
    nu: float = 0.6
    T: float = 1.0
    c: float = 2.0                        # Φ = (c/2)|x − z|²
    z: tuple = (1.5, -0.5)
    mean: tuple = (-1.0, 0.5)
    std: float = 0.5
    cells: tuple = None                   # refinement levels per axis (1-D 100 200 400; 2-D 40 80)
    density_layers: int = 40              # affine ResNet layers of the density training (1-D)
    sweep_tol: float = None               # 1e-10 (1-D), 1e-6 (2-D: the policy iteration floors near 1e-5)
    sweep_maxiter: int = 100
    density_rate: bool = False            # also train 10/20/40/80 layers (rate in the layer count)

    def check(self):
        if self.cells is None:
            self.cells = (100, 200, 400) if self.dim == 1 else (40, 80)
        if self.sweep_tol is None:
            self.sweep_tol = 1e-10 if self.dim == 1 else 1e-6
        if self.dim not in (1, 2):
            raise InputError(f"--dim must be 1 or 2 (got {self.dim})")
        if not self.nu > 0:
            raise InputError(f"--nu must be > 0 (got {self.nu:g})")
        if not self.T > 0:
            raise InputError(f"--T must be > 0 (got {self.T:g})")
        if min(self.cells) < 20:
            raise InputError(f"--cells {min(self.cells)} is too coarse for the control to 1e-3; use ≥ 20")


def _grid(cfg, n):
    lo, hi = [], []
    for a in range(cfg.dim):
        s = max(cfg.std, cfg.nu * np.sqrt(cfg.T))
        lo.append(min(cfg.mean[a], cfg.z[a]) - 6 * s)
        hi.append(max(cfg.mean[a], cfg.z[a]) + 6 * s)
    return make_grid(lo, hi, [n] * cfg.dim)


def _problem(cfg, g):
    X = g.centres
    z = np.asarray(cfg.z[:cfg.dim])
    m = np.asarray(cfg.mean[:cfg.dim])
    Phi = 0.5 * cfg.c * np.sum((X - z) ** 2, 1)
    rho0 = np.exp(-0.5 * np.sum((X - m) ** 2, 1) / cfg.std ** 2)
    return Phi, rho0 / g.mass(rho0)


@dataclass
class SchroedingerPair:
    """``φ``, ``φ̂`` at the time levels ``0..steps`` (cell values) and the fields read from them."""
    phi: list
    phihat: list
    rho: list = field(default_factory=list)
    Sigma: list = field(default_factory=list)


def schroedinger_pair(grid, rho0, Phi, nu, T, steps, scheme="cn"):
    """The imaginary-time Schrödinger pair: ``φ`` backward (``∂_tφ = −(ν²/2)Δφ``, ``φ(T) = e^{−Φ/ν²}``,
    scaled by ``e^{min Φ/ν²}``), ``φ̂`` forward (``∂_tφ̂ = (ν²/2)Δφ̂``, ``φ̂(0) = ρ₀/φ(0)``); the
    exact transpose pair of one heat operator, so ``∫φφ̂`` is conserved to round-off."""
    th = SCHEMES[scheme]
    dt = T / steps
    st = stepper_for_drift(grid, np.zeros(grid.left.size), nu, dt, th, grid.dim > 1)
    phi = [None] * (steps + 1)
    phi[steps] = np.exp(-(Phi - Phi.min()) / nu ** 2)
    for n in range(steps - 1, -1, -1):
        phi[n] = st.backward(phi[n + 1])
    if np.any(phi[0] <= 0):
        raise InputError("e^{−Φ/ν²} underflows on the grid: raise --nu or shrink the domain")
    ph = [rho0 / phi[0]]
    for _ in range(steps):
        ph.append(st.forward(ph[-1]))
    pair = SchroedingerPair(phi=phi, phihat=ph)
    pair.rho = [a * b for a, b in zip(phi, ph)]
    pair.Sigma = [0.5 * nu ** 2 * (np.log(a) - np.log(np.maximum(b, 1e-300))) for a, b in zip(phi, ph)]
    return pair


def read_control(grid, pair, nu):
    """``θ^{n+½}`` at the faces from phase and amplitude: ``∇Σ + (ν²/2)∇log ρ`` (face differences),
    averaged over the time levels ``n`` and ``n+1``."""
    theta = [_face_grad(grid, S) + 0.5 * nu ** 2 * _face_grad(grid, np.log(np.maximum(r, 1e-300)))
             for S, r in zip(pair.Sigma, pair.rho)]
    return [0.5 * (a + b) for a, b in zip(theta[:-1], theta[1:])]


def quantum_euler_residual(grid, pair, nu, T, hbar2=None):
    """ρ-weighted L1 residuals of ``∂_tρ + ∇·(ρ∇Σ) = 0`` and ``∂_tΣ + |∇Σ|²/2 − (ħ²/2)Δ√ρ/√ρ = 0``
    (default ``ħ² = −ν⁴``) at the time midpoints, central differences in space (cells away from the
    walls): the continuity residual as an L1 norm in x averaged over t (ρ has mass 1), the HJ
    residual ρ-weighted relative to the ρ-weighted ``|∇Σ|²/2``; returns the larger of the two."""
    hbar2 = -nu ** 4 if hbar2 is None else hbar2
    steps = len(pair.rho) - 1
    dt = T / steps
    shape = grid.shape
    h = grid.h

    def grad(f):
        F = f.reshape(shape)
        return [np.gradient(F, h[a], axis=a, edge_order=2) for a in range(grid.dim)]

    def lap(f):
        F = f.reshape(shape)
        return sum(np.gradient(np.gradient(F, h[a], axis=a, edge_order=2), h[a], axis=a, edge_order=2)
                   for a in range(grid.dim))
    inner = np.ones(shape, bool)
    for a in range(grid.dim):
        sl = [slice(None)] * grid.dim
        sl[a] = slice(0, 3)
        inner[tuple(sl)] = False
        sl[a] = slice(-3, None)
        inner[tuple(sl)] = False
    rc, rh, scale = 0.0, 0.0, 0.0
    for n in range(steps):
        rho = 0.5 * (pair.rho[n] + pair.rho[n + 1])
        S = 0.5 * (pair.Sigma[n] + pair.Sigma[n + 1])
        gS = grad(S)
        flux = sum(np.gradient(rho.reshape(shape) * gS[a], h[a], axis=a, edge_order=2) for a in range(grid.dim))
        cont = (pair.rho[n + 1] - pair.rho[n]).reshape(shape) / dt + flux
        sq = np.sqrt(rho)
        kin = 0.5 * sum(g * g for g in gS)
        hj = (pair.Sigma[n + 1] - pair.Sigma[n]).reshape(shape) / dt + kin - 0.5 * hbar2 * lap(sq) / sq.reshape(shape)
        w = rho.reshape(shape) * inner
        rc += np.sum(np.abs(cont) * inner) * grid.volume / steps          # L1 in x, mean over t
        rh += np.sum(w * np.abs(hj))
        scale += np.sum(w * kin)
    return float(max(rc, rh / scale))


def lq_control(grid, cfg, t):
    """``θ*(t, x) = −(x − z)/(1/c + T − t)`` at the faces (normal component)."""
    z = np.asarray(cfg.z[:cfg.dim])
    x = grid.face_points[np.arange(grid.left.size), grid.axis]
    return -(x - z[grid.axis]) / (1.0 / cfg.c + cfg.T - t)


def density_affine_training(cfg, layers=None, iterations=400):
    """1-D: a ResNet ``x ← x + dt (K_k x + b_k)`` of ``layers`` layers, trained on the Gaussian blob
    of ρ₀ with the recursion of :mod:`ocdl.meanfield.lagrangian` (``m ← m + dt(Km + b)``,
    ``s² ← (1 + dtK)²s² + ν²dt``: exact for a linear field) to minimise
    ``Σ_k dt E|K_k X + b_k|²/2 + E Φ(X_T)`` by L-BFGS (gradient by torch autograd). Returns
    ``(K, b)`` per layer."""
    import torch
    from scipy.optimize import minimize as sp_minimize
    L = layers or cfg.density_layers
    dt = cfg.T / L

    def J(v):
        p = torch.tensor(v, dtype=torch.float64, requires_grad=True)
        K, b = p[:L], p[L:]
        m = torch.tensor(cfg.mean[0], dtype=torch.float64)
        s2 = torch.tensor(cfg.std ** 2, dtype=torch.float64)
        cost = torch.zeros((), dtype=torch.float64)
        for k in range(L):
            cost = cost + dt * 0.5 * (K[k] ** 2 * (s2 + m * m) + 2 * K[k] * b[k] * m + b[k] ** 2)
            m = m + dt * (K[k] * m + b[k])
            s2 = (1 + dt * K[k]) ** 2 * s2 + cfg.nu ** 2 * dt
        cost = cost + 0.5 * cfg.c * ((m - cfg.z[0]) ** 2 + s2)
        cost.backward()
        return float(cost.detach()), p.grad.numpy().copy()
    r = sp_minimize(J, np.zeros(2 * L), jac=True, method="L-BFGS-B",
                    options={"maxiter": iterations, "gtol": 1e-12, "ftol": 1e-15})
    return r.x[:L], r.x[L:], r


def _weighted_l2(grid, rho_path, a, b, T):
    """``(∫₀ᵀ ∫ ρ |a − b|² dx dt / T)^{1/2}`` with face values (ρ averaged onto faces, mid-level)."""
    steps = len(a)
    acc = 0.0
    for n in range(steps):
        r = 0.25 * (rho_path[n][grid.left] + rho_path[n][grid.right]
                    + rho_path[n + 1][grid.left] + rho_path[n + 1][grid.right])
        acc += np.sum(r * (a[n] - b[n]) ** 2) * grid.volume
    return float(np.sqrt(acc / steps / grid.dim))


def eliminate(cfg: EliminateConfig, quiet=True):
    """Run the pipeline at each refinement level; returns the JSON dict (``control_l2`` = reading
    against the sweep at the finest level, ``residual`` = quantum-Euler residual there)."""
    cfg.check()
    rows = []
    dens = None
    if cfg.dim == 1:
        K, bb, r = density_affine_training(cfg)
        dens = {"layers": cfg.density_layers, "K": K.tolist(), "b": bb.tolist(), "cost": float(r.fun),
                "success": bool(r.success)}
    for n in cfg.cells:
        g = _grid(cfg, n)
        steps = max(n // 2, 10)
        Phi, rho0 = _problem(cfg, g)
        pair = schroedinger_pair(g, rho0, Phi, cfg.nu, cfg.T, steps)
        theta = read_control(g, pair, cfg.nu)
        dt = cfg.T / steps
        exact = [lq_control(g, cfg, (k + 0.5) * dt) for k in range(steps)]
        sw = solve_forward_backward(g, rho0, Phi, cfg.nu, cfg.T, steps=steps, tol=cfg.sweep_tol,
                                    maxiter=cfg.sweep_maxiter, quiet=quiet)
        row = {"cells": n, "steps": steps,
               "control_l2_sweep": _weighted_l2(g, pair.rho, theta, sw.drift, cfg.T),
               "control_l2_closed_form": _weighted_l2(g, pair.rho, theta, exact, cfg.T),
               "sweep_l2_closed_form": _weighted_l2(g, pair.rho, sw.drift, exact, cfg.T),
               "sweep_iterations": sw.nit, "sweep_residual": sw.residual,
               "residual": quantum_euler_residual(g, pair, cfg.nu, cfg.T),
               "residual_real_hbar": quantum_euler_residual(g, pair, cfg.nu, cfg.T, hbar2=cfg.nu ** 4),
               "mass_defect": float(abs(g.mass(pair.rho[-1]) - 1))}
        if dens is not None:
            # the trained affine layer k acts on [t_k, t_{k+1}); evaluate at the grid's mid-levels
            x = g.face_points[:, 0]
            lay = np.minimum(((np.arange(steps) + 0.5) * dt / (cfg.T / cfg.density_layers)).astype(int),
                             cfg.density_layers - 1)
            dth = [K[k] * x + bb[k] for k in lay]
            row["control_l2_density"] = _weighted_l2(g, pair.rho, theta, dth, cfg.T)
            row["density_l2_closed_form"] = _weighted_l2(g, pair.rho, dth, exact, cfg.T)
        rows.append(row)
        last = (g, pair, theta, sw, exact)

    def rates(key):
        return [float(np.log2(a[key] / b[key])) for a, b in zip(rows, rows[1:])]
    out = {"dim": cfg.dim, "nu": cfg.nu, "T": cfg.T, "c": cfg.c, "z": list(cfg.z[:cfg.dim]),
           "control_l2": rows[-1]["control_l2_sweep"], "residual": rows[-1]["residual"],
           "control_l2_closed_form": rows[-1]["control_l2_closed_form"], "rows": rows,
           "rates": {k: rates(k) for k in ("control_l2_sweep", "control_l2_closed_form", "residual")},
           "solver": "imaginary-time Schrödinger pair (Hopf–Cole), ħ² = −ν⁴",
           "reading": "theta = grad Sigma + (nu^2/2) grad log rho, Sigma = (nu^2/2) log(phi/phihat), rho = phi phihat"}
    if dens is not None:
        out["density"] = dens
        out["density"]["control_l2_closed_form"] = rows[-1]["density_l2_closed_form"]
        if cfg.density_rate:
            out["density"]["layer_study"] = density_layer_rate(cfg)
    return out, last


def density_layer_rate(cfg, layers=(10, 20, 40, 80), cells=400):
    """The density-trained affine ResNet against the closed form as layers double (Euler: rate 1)."""
    g = _grid(cfg, cells)
    steps = cells // 2
    Phi, rho0 = _problem(cfg, g)
    pair = schroedinger_pair(g, rho0, Phi, cfg.nu, cfg.T, steps)
    dt = cfg.T / steps
    x = g.face_points[:, 0]
    errs = []
    for L in layers:
        K, b, _ = density_affine_training(cfg, L)
        # compare at the layer midpoints (the layer's constant control approximates θ* there)
        tk = (np.arange(L) + 0.5) * cfg.T / L
        lay = np.minimum(((np.arange(steps) + 0.5) * dt / (cfg.T / L)).astype(int), L - 1)
        ex = [lq_control(g, cfg, tk[k]) for k in lay]
        errs.append(_weighted_l2(g, pair.rho, [K[k] * x + b[k] for k in lay], ex, cfg.T))
    return {"layers": list(layers), "l2_closed_form_at_layer_midpoints": errs,
            "rates": [float(np.log2(a / b)) for a, b in zip(errs, errs[1:])]}


def plot_eliminate(out, last, path):
    """Left: the control read off (φ, φ̂) against the sweep and the closed form at three times
    (1-D) or its x-component along the line through the mean (2-D); right: the distances vs cells."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    g, pair, theta, sw, exact = last
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    steps = len(theta)
    if g.dim == 1:
        sel = np.arange(g.left.size)
    else:                                   # x-faces on the row of cells nearest y = mean-y
        xf = np.flatnonzero(g.axis == 0)
        yrow = g.face_points[xf[np.argmin(np.abs(g.face_points[xf, 1] - g.centres[:, 1].mean()))], 1]
        sel = xf[np.abs(g.face_points[xf, 1] - yrow) < 1e-12]
    x = g.face_points[sel, 0]
    for k, col in zip((0, steps // 2, steps - 1), ("C0", "C1", "C2")):
        t = (k + 0.5) * out["T"] / steps
        ax[0].plot(x, theta[k][sel], color=col, lw=2, label=f"read from (φ, φ̂), t = {t:.2f}")
        ax[0].plot(x, sw.drift[k][sel], "--", color="k", lw=0.8)
        ax[0].plot(x, exact[k][sel], ":", color="r", lw=1)
    ax[0].set_xlabel("x")
    ax[0].set_ylabel("θ(t, x)")
    ax[0].set_title("control read off the Schrödinger form (-- sweep, ·· closed form)")
    ax[0].legend(fontsize=8)
    rows = out["rows"]
    n = [r["cells"] for r in rows]
    for key, lab in (("control_l2_sweep", "reading vs sweep"), ("control_l2_closed_form", "reading vs closed form"),
                     ("residual", "quantum-Euler residual (ħ² = −ν⁴)"),
                     ("residual_real_hbar", "same with ħ² = +ν⁴")):
        ax[1].loglog(n, [r[key] for r in rows], "o-", label=lab)
    if "control_l2_density" in rows[0]:
        ax[1].loglog(n, [r["control_l2_density"] for r in rows], "s--",
                     label=f"reading vs density-trained ResNet ({out['density']['layers']} layers)")
    ax[1].loglog(n, [rows[0]["control_l2_closed_form"] * (n[0] / m) ** 2 for m in n], "k:", label="slope −2")
    ax[1].set_xlabel("cells per axis")
    ax[1].set_title(f"{out['dim']}-D: distances (ρ-weighted L2) vs refinement")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
