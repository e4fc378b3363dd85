r"""Training a stochastic ResNet ``dX = f(X, θ(t)) dt + ν dW`` for classification, two ways.

Model (matches ``ocdl.models.ResNetODE(field="outer", integrator="euler", beta=0)`` at ``ν = 0``):
``f(x, θ_k) = K_k tanh(x) + b_k`` on layer ``k`` (``h = T/N``), logistic head ``s = W x(T) + μ``,
``Φ(s, c) = log(1 + exp(−(2c − 1) s))``, and the cost

    J = Σ_c w_c E_{x ~ ρ_c(T)} Φ(W x + μ, c) + h Σ_k (α/2)(‖K_k‖² + |b_k|²) + (α_head/2)‖W‖²,

with ``w_c = n_c/n`` (so ``Σ_c w_c E_c = (1/n) Σ_i`` for empirical class measures).

* **Particle PMP** (:func:`particle_value_and_grad`): Euler–Maruyama with ``substeps`` per layer,
  ``x^{n+1} = x^n + dt f(x^n, θ_k) + ν √dt ξ^n``, costate ``p^N = w_i ∇_x Φ_i``,
  ``p^n = p^{n+1} + dt (∂f/∂x)ᵀ p^{n+1}``, ``∂J/∂K_k = dt Σ_n Σ_i p^{n+1}_i tanh(x^n_i)ᵀ + hαK_k``,
  ``∂J/∂b_k = dt Σ_n Σ_i p^{n+1}_i + hα b_k`` — the exact gradient of the sampled cost for a fixed
  noise path (pathwise / common random numbers); unbiased for the expected cost.
* **Density (Fokker–Planck) method** (:func:`density_value_and_grad`): class densities on a grid,
  the exact discrete mean-field gradient of :class:`ocdl.meanfield.adjoint.MeanFieldControl`
  (transpose / backward-Kolmogorov sweep) plus the head gradient
  ``∂J/∂W = Σ_c w_c ∫ ρ_c(T) Φ'(s, c) xᵀ dx + α_head W``.
"""
import time
from dataclasses import dataclass, field as dc_field

import numpy as np
from scipy.special import expit, log_expit, ndtr

from ocdl.errors import InputError, SolverError
from ocdl.meanfield.adjoint import MeanFieldControl, OuterField
from ocdl.meanfield.grid import make_grid


def spirals(points_per_class=200, turns=1.5, noise=0.02, seed=0, t_min=0.1):
    """Two spirals (``r = t``, ``φ = 2π·turns·t + cπ``); uses ``ocdl.data`` when available."""
    try:
        from ocdl.data.datasets import spirals as data_spirals
        return data_spirals(points_per_class, turns=turns, noise=noise, seed=seed, t_min=t_min)
    except ImportError:
        rng = np.random.default_rng(seed)
        Xs, ys = [], []
        for c in (0, 1):
            t = rng.uniform(t_min, 1.0, points_per_class)
            phi = 2 * np.pi * turns * t + c * np.pi
            Xs.append(np.stack([t * np.cos(phi), t * np.sin(phi)], 1) + noise * rng.standard_normal((points_per_class, 2)))
            ys.append(np.full(points_per_class, c))
        perm = rng.permutation(2 * points_per_class)
        return np.concatenate(Xs)[perm], np.concatenate(ys)[perm]


def head_loss(s, c):
    """``Φ(s, c) = log(1 + exp(−σ_c s))``, ``σ_c = 2c − 1``, and ``∂Φ/∂s``."""
    sg = 2.0 * np.asarray(c, dtype=float) - 1.0
    return -log_expit(sg * s), -sg * expit(-sg * s)


@dataclass
class Params:
    K: np.ndarray     # (N, d, d)
    b: np.ndarray     # (N, d)
    W: np.ndarray     # (d,)
    mu: float

    def flatten(self):
        return np.concatenate([self.K.ravel(), self.b.ravel(), self.W.ravel(), [self.mu]])

    @classmethod
    def unflatten(cls, v, layers, d):
        v = np.asarray(v, dtype=float)
        nK = layers * d * d
        return cls(v[:nK].reshape(layers, d, d), v[nK:nK + layers * d].reshape(layers, d),
                   v[nK + layers * d:nK + layers * d + d].copy(), float(v[-1]))

    @classmethod
    def init(cls, layers, d, seed=0, scale=0.1):
        rng = np.random.default_rng(seed)
        return cls(scale * rng.standard_normal((layers, d, d)), np.zeros((layers, d)),
                   rng.standard_normal(d) / np.sqrt(d), 0.0)


def _regulariser(P, h, alpha, alpha_head):
    J = h * 0.5 * alpha * (np.sum(P.K ** 2) + np.sum(P.b ** 2)) + 0.5 * alpha_head * np.sum(P.W ** 2)
    return J, h * alpha * P.K, h * alpha * P.b, alpha_head * P.W


def particle_forward(P, X0, nu, T, substeps, noise=None):
    """States ``x^n`` (list) of the Euler–Maruyama stochastic ResNet; ``noise`` (steps, m, d)."""
    layers = P.K.shape[0]
    dt = T / (layers * substeps)
    xs = [np.asarray(X0, dtype=float)]
    for n in range(layers * substeps):
        k = n // substeps
        x = xs[-1]
        step = x + dt * (np.tanh(x) @ P.K[k].T + P.b[k])
        if nu > 0:
            step = step + nu * np.sqrt(dt) * noise[n]
        xs.append(step)
    return xs


def particle_value_and_grad(P, X0, labels, weights, nu, T, alpha=0.0, alpha_head=0.0, substeps=1, noise=None):
    """Sampled cost and its exact pathwise gradient (see module docstring); returns ``(J, Params)``."""
    layers, d = P.b.shape
    h, dt = T / layers, T / (layers * substeps)
    xs = particle_forward(P, X0, nu, T, substeps, noise)
    s = xs[-1] @ P.W + P.mu
    phi, dphi = head_loss(s, labels)
    J = float(np.sum(weights * phi))
    Jr, gK, gb, gW = _regulariser(P, h, alpha, alpha_head)
    J += Jr
    gK, gb = gK.copy(), gb.copy()
    ws = weights * dphi                          # ∂J/∂s_i
    gW = gW + ws @ xs[-1]
    gmu = float(np.sum(ws))
    p = ws[:, None] * P.W[None, :]              # p^N = w_i Φ' Wᵀ
    for n in range(layers * substeps - 1, -1, -1):
        k = n // substeps
        x = xs[n]
        t = np.tanh(x)
        gK[k] += dt * p.T @ t
        gb[k] += dt * p.sum(0)
        p = p + dt * (1 - t * t) * (p @ P.K[k])
    return J, Params(gK, gb, gW, gmu)


def gaussian_deposit(grid, X, width):
    """Density on ``grid`` of ``(1/m) Σ_i N(x_i, width² I)`` (exact cell averages), mass 1."""
    X = np.atleast_2d(np.asarray(X, dtype=float))
    parts = []
    for a, n in enumerate(grid.shape):
        edges = grid.lower[a] + np.arange(n + 1) * grid.h[a]
        parts.append(np.diff(ndtr((edges[None, :] - X[:, a:a + 1]) / width), axis=1) / grid.h[a])  # (m, n)
    if grid.dim == 1:
        rho = parts[0].mean(0)
    else:
        rho = (parts[0].T @ parts[1] / X.shape[0]).reshape(-1)
    m = grid.mass(rho)
    if not m > 0.5:
        raise InputError("the data lie outside the density grid; widen the domain")
    return rho / m


class DensityProblem:
    """The density-method cost on a grid for ``C = 2`` class densities ``rho0`` (ncells, 2).

    Default ``scheme="euler"`` (backward Euler): its M-matrix keeps ``ρ ≥ 0`` for any drift, which
    training needs — with Crank–Nicolson, large trained drifts give negative densities and the
    optimiser exploits them (the loss can go below zero). ``"cn"`` is for accuracy studies.
    """

    def __init__(self, grid, rho0, class_weights, nu, T, layers, alpha=0.0, alpha_head=0.0,
                 steps_per_layer=1, scheme="euler"):
        self.grid, self.w = grid, np.asarray(class_weights, dtype=float)
        self.alpha_head, self.layers, self.T, self.h = alpha_head, layers, T, T / layers
        self.mfc = MeanFieldControl(grid, OuterField(grid.dim), nu, T, layers, rho0, np.zeros_like(rho0),
                                    alpha=alpha, steps_per_layer=steps_per_layer, scheme=scheme)

    def value_and_grad(self, P):
        g = self.grid
        s = g.centres @ P.W + P.mu
        phi = np.stack([head_loss(s, c)[0] for c in (0, 1)], 1)
        dphi = np.stack([head_loss(s, c)[1] for c in (0, 1)], 1)
        self.mfc.terminal = phi * self.w[None, :]
        d = g.dim
        theta = np.concatenate([P.K.reshape(self.layers, d * d), P.b], 1)
        J, G, _ = self.mfc.value_and_gradient(theta)
        rhoN = self.mfc.last_rho[-1]
        ws = g.volume * np.sum(rhoN * dphi * self.w[None, :], 1)      # ∂J/∂s per cell
        gW = ws @ g.centres + self.alpha_head * P.W
        J += 0.5 * self.alpha_head * np.sum(P.W ** 2)
        return float(J), Params(G[:, :d * d].reshape(self.layers, d, d), G[:, d * d:], gW, float(np.sum(ws)))


def adam(fun_grad, x0, iterations, lr=0.05, progress=None, callback=None, state0=None, ck=None, meta=None):
    """Plain Adam; ``fun_grad(x, it)`` → ``(J, g)``. Returns ``(x, history)``.

    Checkpoints: ``ck`` (:class:`ocdl.checkpoint.Checkpointer`) receives after step ``n`` the state
    ``{iteration n, params {"x"}, opt {"m", "v"}, history, meta: meta()}``; ``state0`` continues one
    (the caller restores what ``meta`` saved, e.g. its random generator) — bit for bit. Divergence
    raises :class:`SolverError` with ``last_good`` = the last iterate with a finite loss and gradient."""
    x = np.array(x0, dtype=float)
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    hist, start = [], 1
    if state0 is not None:
        x = np.array(state0["params"]["x"], dtype=float)
        m, v = np.array(state0["opt"]["m"], dtype=float), np.array(state0["opt"]["v"], dtype=float)
        hist, start = list(state0["history"]), int(state0["iteration"]) + 1
    t0 = time.perf_counter() - (hist[-1]["time_s"] if hist else 0.0)

    def state(n):
        return {"iteration": n, "params": {"x": x.copy()}, "opt": {"m": m.copy(), "v": v.copy()},
                "history": list(hist), "meta": meta() if meta else {}}

    for it in range(start, iterations + 1):
        with np.errstate(over="ignore", invalid="ignore"):      # overflow is reported as divergence below
            J, g = fun_grad(x, it)
        if not (np.isfinite(J) and np.all(np.isfinite(g))):
            if progress is not None:
                progress.close()
            err = SolverError(f"training diverged at iteration {it} (non-finite loss); lower --lr or --T")
            err.last_good = x.copy() if np.all(np.isfinite(x)) else None
            raise err
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        x = x - lr * (m / (1 - 0.9 ** it)) / (np.sqrt(v / (1 - 0.999 ** it)) + 1e-8)
        hist.append({"iteration": it, "loss": float(J), "time_s": time.perf_counter() - t0})
        if progress is not None:
            progress.update(it, loss=float(J))
        if callback is not None:
            callback(it, x)
        if ck is not None:
            ck.after_step(it, lambda: state(it), progress, "meanfield train")
    return x, hist


def predict_proba(P, X, nu, T, substeps=1, samples=16, seed=0):
    """Class-1 probability of the stochastic ResNet, averaged over ``samples`` noise paths."""
    if nu == 0:
        samples = 1
    rng = np.random.default_rng(seed)
    layers, d = P.b.shape
    Xr = np.repeat(np.asarray(X, dtype=float), samples, axis=0)
    noise = rng.standard_normal((layers * substeps,) + Xr.shape) if nu > 0 else None
    xN = particle_forward(P, Xr, nu, T, substeps, noise)[-1]
    return expit(xN @ P.W + P.mu).reshape(-1, samples).mean(1)


@dataclass
class TrainResult:
    x: Params
    fun: float
    success: bool
    message: str
    nit: int
    history: list = dc_field(default_factory=list)
    grid: object = None
    rho_path: list = None


def train_stochastic_resnet(X, y, method="particles", nu=0.1, layers=10, T=2.0, particles=2000, grid_cells=64,
                            alpha=1e-3, alpha_head=1e-3, iterations=200, lr=0.05, seed=0, substeps=1,
                            steps_per_layer=1, smoothing=None, padding=0.75, progress=None, state0=None,
                            checkpoint=None, checkpoint_every=None, should_stop=None):
    """Train by particle PMP (``method="particles"``) or the density method (``"grid"``).

    Checkpoint options as in :mod:`ocdl.checkpoint`: ``checkpoint(state)`` every ``checkpoint_every``
    iterations and on ``should_stop()`` (then ``KeyboardInterrupt``); the state holds the parameters,
    Adam's moments and the particle sampler's generator state, so ``state0`` continues a run to the
    same parameters, bit for bit. Divergence: :class:`SolverError` whose ``last_good`` is a
    :class:`Params` (the last iterate with a finite loss), or None."""
    from ocdl.checkpoint import Checkpointer
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(int)
    if set(np.unique(y)) != {0, 1}:
        raise InputError("meanfield train supports two classes labelled 0 and 1")
    n, d = X.shape
    P0 = Params.init(layers, d, seed)
    cw = np.array([np.mean(y == 0), np.mean(y == 1)])
    rng = np.random.default_rng(seed + 1)
    if method == "particles":
        def fg(v, it):
            P = Params.unflatten(v, layers, d)
            idx = rng.integers(0, n, particles)
            wts = np.full(particles, 1.0 / particles)
            noise = rng.standard_normal((layers * substeps, particles, d)) if nu > 0 else None
            J, G = particle_value_and_grad(P, X[idx], y[idx], wts, nu, T, alpha, alpha_head, substeps, noise)
            return J, G.flatten()
        grid = None
    elif method == "grid":
        lo, hi = X.min(0), X.max(0)
        pad = padding * (hi - lo).max()
        grid = make_grid(lo - pad, hi + pad, [grid_cells] * d)
        width = smoothing if smoothing is not None else 1.5 * grid.h.max()
        rho0 = np.stack([gaussian_deposit(grid, X[y == c], width) for c in (0, 1)], 1)
        prob = DensityProblem(grid, rho0, cw, nu, T, layers, alpha, alpha_head, steps_per_layer)

        def fg(v, it):
            J, G = prob.value_and_grad(Params.unflatten(v, layers, d))
            return J, G.flatten()
    else:
        raise InputError(f"unknown method '{method}' (valid: particles, grid)")
    if state0 is not None and state0.get("meta", {}).get("rng"):
        rng.bit_generator.state = state0["meta"]["rng"]
    ck = Checkpointer(checkpoint, checkpoint_every, should_stop)
    try:
        v, hist = adam(fg, P0.flatten(), iterations, lr, progress, state0=state0, ck=ck,
                       meta=lambda: {"rng": rng.bit_generator.state})
    except SolverError as err:
        last = getattr(err, "last_good", None)
        err.last_good = None if last is None else Params.unflatten(last, layers, d)
        raise
    P = Params.unflatten(v, layers, d)
    res = TrainResult(x=P, fun=hist[-1]["loss"], success=True, message="iterations completed", nit=iterations,
                      history=hist, grid=grid)
    if grid is not None:
        prob.value_and_grad(P)
        res.rho_path = prob.mfc.last_rho
    return res
