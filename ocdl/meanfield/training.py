r"""Training a stochastic ResNet ``dX = f(X, θ(t)) dt + ν dW`` for classification, two ways.

Model: ``f(x, θ_k) = K_k tanh(x) + b_k`` on layer ``k`` (``h = T/N``), logistic head
``s = W x(T) + μ``, ``Φ(s, c) = log(1 + exp(−(2c − 1) s))``, and the cost

    J = Σ_c w_c E_{x ~ ρ_c(T)} Φ(W x + μ, c) + h Σ_k (α/2)(‖K_k‖² + |b_k|²) + (α_head/2)‖W‖²,

with ``w_c = n_c/n`` (so ``Σ_c w_c E_c = (1/n) Σ_i`` for empirical class measures). Parameters are
``ocdl.models.ResNetODE`` dicts ``{K (N, d, d), b (N, d), W (1, d), mu (1,)}`` of the model
:func:`layer_model` (``field="outer"``, width ``d``, identity lift, two classes).

* **Particle PMP** (:func:`particle_value_and_grad`): Euler–Maruyama with ``s = substeps`` steps
  per layer, ``x^{n+1} = x^n + dt f(x^n, θ_k) + ξ^n``, ``ξ^n = ν √dt z^n``, ``dt = h/s``. This is
  ``ocdl.models.ResNetODE`` with ``N·s`` Euler layers whose θ is tied (θ_k repeated ``s`` times)
  and additive increments ξ, so cost and costate are those of :func:`ocdl.pmp.value_and_grad`
  (``increments=ξ``); the gradient of θ_k is the sum over its ``s`` sub-layers, and the
  regulariser ``dt Σ_n (α/2)|θ_{k(n)}|² = h Σ_k (α/2)|θ_k|²``. For a fixed noise path this is the
  exact gradient of the sampled cost (pathwise / common random numbers); unbiased for the
  expected cost.
* **Lagrangian density method** (:func:`ocdl.meanfield.lagrangian.blob_value_and_grad`): each
  class density a sum of Gaussian blobs carried by the flow, diffusion added to their covariance;
  exact discrete adjoint. This is the density method that trains (docs/meanfield.md).
* **Eulerian density (Fokker–Planck) method** (:class:`DensityProblem`): class densities on a grid,
  the exact discrete mean-field gradient of :class:`ocdl.meanfield.adjoint.MeanFieldControl`
  (transpose / backward-Kolmogorov sweep) plus the head gradient
  ``∂J/∂W = Σ_c w_c ∫ ρ_c(T) Φ'(s, c) xᵀ dx + α_head W``.
"""
import numpy as np
from scipy.special import expit, log_expit, ndtr

from ocdl import pmp
from ocdl.errors import InputError, SolverError
from ocdl.meanfield.adjoint import MeanFieldControl
from ocdl.meanfield.grid import make_grid
from ocdl.meanfield.lagrangian import blob_value_and_grad
from ocdl.models import ResNetODE
from ocdl.pmp import compiled


def layer_model(layers, d, T, alpha=0.0, alpha_head=0.0, substeps=1):
    """The ResNet-ODE of the particle method: ``layers·substeps`` Euler layers of ``f = K tanh(x) + b``
    on width ``d`` (identity lift), logistic head, regulariser ``α`` on K, b and ``α_head`` on W."""
    return ResNetODE(field="outer", d_in=d, width=d, n_classes=2, layers=layers * substeps, T=T,
                     integrator="euler", alpha=alpha, beta=0.0, alpha_head=alpha_head)


def init_params(layers, d, seed=0, scale=0.1):
    """``K ~ N(0, scale²)``, ``b = 0``, ``W ~ N(0, 1/d)``, ``μ = 0`` (one generator, in that order)."""
    rng = np.random.default_rng(seed)
    K = scale * rng.standard_normal((layers, d, d))
    W = rng.standard_normal(d) / np.sqrt(d)
    return {"K": K, "b": np.zeros((layers, d)), "W": W[None, :], "mu": np.zeros(1)}


def _tie(params, substeps):
    """θ_k repeated over the ``substeps`` sub-layers of layer k."""
    if substeps == 1:
        return params
    return dict(params, K=np.repeat(params["K"], substeps, axis=0), b=np.repeat(params["b"], substeps, axis=0))


def _untie(grads, substeps):
    """Gradient of the tied θ_k: the sum over its sub-layers."""
    if substeps == 1:
        return grads
    K, b = grads["K"], grads["b"]
    return dict(grads, K=K.reshape((-1, substeps) + K.shape[1:]).sum(1),
                b=b.reshape((-1, substeps) + b.shape[1:]).sum(1))


def _increments(nu, dt, noise):
    return None if nu == 0 or noise is None else nu * np.sqrt(dt) * np.asarray(noise, dtype=float)


def particle_value_and_grad(params, X, y, nu, T, alpha=0.0, alpha_head=0.0, substeps=1, noise=None):
    """Sampled cost ``J`` and its exact pathwise gradient (module docstring): ``(J, grads dict)``.

    ``X`` (m, d) particles, ``y`` their labels, ``noise`` standard normals ``(layers·substeps, m, d)``
    (ignored at ``ν = 0``)."""
    layers, d = params["b"].shape
    model = layer_model(layers, d, T, alpha, alpha_head, substeps)
    J, g = pmp.value_and_grad(model, _tie(params, substeps), X, y, increments=_increments(nu, model.h, noise))
    return J, _untie(g, substeps)


def particle_states(params, X, nu, T, substeps=1, noise=None):
    """States ``(layers·substeps + 1, m, d)`` of the Euler–Maruyama stochastic ResNet."""
    layers, d = params["b"].shape
    model = layer_model(layers, d, T, substeps=substeps)
    return compiled.states(model, _tie(params, substeps), np.asarray(X, dtype=float),
                           increments=_increments(nu, model.h, noise))


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


def head_loss(s, c):
    """Density-method head: ``Φ(s, c) = log(1 + exp(−σ_c s))``, ``σ_c = 2c − 1``, and ``∂Φ/∂s`` per
    cell (the particle method's head is the model's, :mod:`ocdl.models.losses`)."""
    sg = 2.0 * np.asarray(c, dtype=float) - 1.0
    return -log_expit(sg * s), -sg * expit(-sg * s)


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
        self.mfc = MeanFieldControl(grid, "outer", nu, T, layers, rho0, np.zeros_like(rho0),
                                    alpha=alpha, steps_per_layer=steps_per_layer, scheme=scheme)

    def value_and_grad(self, params):
        """``(J, grads)`` for a parameter dict (keys K, b, W, mu as :func:`init_params`)."""
        g = self.grid
        W, mu = np.asarray(params["W"], dtype=float).reshape(-1), float(np.ravel(params["mu"])[0])
        s = g.centres @ W + mu
        phi = np.stack([head_loss(s, c)[0] for c in (0, 1)], 1)
        dphi = np.stack([head_loss(s, c)[1] for c in (0, 1)], 1)
        self.mfc.terminal = phi * self.w[None, :]
        d = g.dim
        theta = np.concatenate([np.reshape(params["K"], (self.layers, d * d)), params["b"]], 1)
        J, G, _ = self.mfc.value_and_gradient(theta)
        rhoN = self.mfc.last_rho[-1]
        ws = g.volume * np.sum(rhoN * dphi * self.w[None, :], 1)      # ∂J/∂s per cell
        gW = ws @ g.centres + self.alpha_head * W
        J += 0.5 * self.alpha_head * np.sum(W ** 2)
        return float(J), {"K": G[:, :d * d].reshape(self.layers, d, d), "b": G[:, d * d:], "W": gW[None, :],
                          "mu": np.array([np.sum(ws)])}


def predict_proba(params, X, nu, T, substeps=1, samples=16, seed=0):
    """Class-1 probability of the stochastic ResNet, averaged over ``samples`` noise paths."""
    if nu == 0:
        samples = 1
    rng = np.random.default_rng(seed)
    layers, d = params["b"].shape
    Xr = np.repeat(np.asarray(X, dtype=float), samples, axis=0)
    noise = rng.standard_normal((layers * substeps,) + Xr.shape) if nu > 0 else None
    xN = particle_states(params, Xr, nu, T, substeps, noise)[-1]
    return expit(xN @ params["W"][0] + params["mu"][0]).reshape(-1, samples).mean(1)


def accuracy(params, X, y, nu, T, substeps=1, samples=16, seed=0):
    """Accuracy of the stochastic network: class-1 probability (:func:`predict_proba`) > 1/2."""
    return float(np.mean((predict_proba(params, X, nu, T, substeps, samples, seed) > 0.5) == (np.asarray(y) == 1)))


def particle_clouds(params, X, y, nu, T, substeps=1, count=4000, seed=0):
    """Particle clouds of the trained network for pictures: ``(grid, states per layer, labels)``.

    ``count`` training points drawn with replacement (generator ``seed``), one noise path each;
    ``grid`` is an 8×8 frame around the 0.5–99.5 % range of all layers' states."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), count)
    layers, d = params["b"].shape
    noise = rng.standard_normal((layers * substeps, idx.size, d)) if nu > 0 else None
    traj = particle_states(params, np.asarray(X, dtype=float)[idx], nu, T, substeps, noise)[::substeps]
    allx = traj.reshape(-1, d)
    lo, hi = np.percentile(allx, 0.5, axis=0), np.percentile(allx, 99.5, axis=0)
    pad = 0.1 * (hi - lo).max()
    return make_grid(lo - pad, hi + pad, [8] * d), traj, np.asarray(y)[idx]


class ParticleSampler:
    """The particle method's random draws: per iteration ``particles`` training indices (with
    replacement) and, at ``ν > 0``, their standard-normal noise path ``(steps, particles, d)`` —
    both from one ``numpy.random.Generator`` whose state is checkpointed (``state``/``load_state``)."""

    def __init__(self, n, particles, steps, d, nu, seed):
        self.n, self.particles, self.shape, self.nu = int(n), int(particles), (int(steps), int(particles), int(d)), nu
        self.rng = np.random.default_rng(seed)

    def draw(self):
        idx = self.rng.integers(0, self.n, self.particles)
        noise = self.rng.standard_normal(self.shape) if self.nu > 0 else None
        return idx, noise

    def state(self):
        return self.rng.bit_generator.state

    def load_state(self, st):
        self.rng.bit_generator.state = st


#: Adam's constant rate per method. The density method's gradient is exact (full batch, noise integrated
#: out in law), so Adam's steady step |m̂|/√v̂ is ≈ lr per parameter; the particle method's sampled
#: gradient lowers it to ≈ 0.72 lr (median over the parameters, measured on a trained spirals net).
#: With the particles' 0.05 the density method took ~40 % larger steps and, on some data sets,
#: settled in a worse basin (1.75 turns: held-out 0.91 vs 0.985); at 0.02 it held within 3 points of
#: particles on six spirals sets (docs/meanfield.md, "Density training beyond its tuning set").
DEFAULT_LR = {"particles": 0.05, "grid": 0.05, "density": 0.02}


def train_stochastic_resnet(X, y, method="particles", nu=0.1, layers=10, T=2.0, particles=2000, grid_cells=64,
                            alpha=1e-3, alpha_head=1e-3, iterations=200, lr=None, seed=0, substeps=1,
                            steps_per_layer=1, smoothing=None, padding=0.75, quiet=True, state0=None,
                            checkpoint=None, checkpoint_every=None, should_stop=None, schedule=None):
    """Train by particle PMP (``method="particles"``), the Lagrangian density method (``"density"``,
    :mod:`ocdl.meanfield.lagrangian`: one Gaussian blob per training point, initial width
    ``smoothing`` (default 0), ``substeps`` Euler steps per layer) or the Eulerian Fokker–Planck grid
    (``"grid"``, initial width ``smoothing``, default 1.5 cells) with Adam (constant rate ``lr``,
    default :data:`DEFAULT_LR` of the method)
    through :func:`ocdl.optim.minimize`.

    Returns an :class:`ocdl.optim.OptimizeResult` whose ``x`` is the parameter dict; Adam has no
    convergence test, so ``success`` is False and ``message`` says the iteration limit was reached.
    Extras: ``grid`` and ``rho_path`` (the class densities through the layers; grid method — for the
    density method :func:`ocdl.meanfield.lagrangian.blob_density_path` draws them).
    The particle method draws its particles and noise from a :class:`ParticleSampler` (seed
    ``seed + 1``) whose generator state is part of the checkpoint, so ``state0`` continues a run to
    the same parameters, bit for bit (checkpoint options as in :func:`ocdl.optim.minimize`).
    Divergence: :class:`SolverError` whose ``result.x`` is the last good parameter dict."""
    from ocdl.optim import Adam, Checkpointing, Divergence, ProgressBar, minimize
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(int)
    if set(np.unique(y)) != {0, 1}:
        raise InputError("meanfield train supports two classes labelled 0 and 1")
    n, d = X.shape
    shape_model = layer_model(layers, d, T)
    sampler = None
    if method == "particles":
        sampler = ParticleSampler(n, particles, layers * substeps, d, nu, seed + 1)

        def objective(v, batch):
            idx, noise = batch
            J, G = particle_value_and_grad(shape_model.unflatten(v), X[idx], y[idx], nu, T, alpha, alpha_head,
                                           substeps, noise)
            return J, shape_model.flatten(G)
        grid = None
    elif method == "density":
        def objective(v, batch):
            J, G = blob_value_and_grad(shape_model.unflatten(v), X, y, nu, T, alpha, alpha_head, substeps,
                                       smoothing or 0.0)
            return J, shape_model.flatten(G)
        grid = None
    elif method == "grid":
        lo, hi = X.min(0), X.max(0)
        pad = padding * (hi - lo).max()
        grid = make_grid(lo - pad, hi + pad, [grid_cells] * d)
        width = smoothing if smoothing is not None else 1.5 * grid.h.max()
        rho0 = np.stack([gaussian_deposit(grid, X[y == c], width) for c in (0, 1)], 1)
        cw = np.array([np.mean(y == 0), np.mean(y == 1)])
        prob = DensityProblem(grid, rho0, cw, nu, T, layers, alpha, alpha_head, steps_per_layer)

        def objective(v, batch):
            J, G = prob.value_and_grad(shape_model.unflatten(v))
            return J, shape_model.flatten(G)
    else:
        raise InputError(f"unknown method '{method}' (valid: particles, density, grid)")
    try:
        res = minimize(objective, shape_model.flatten(init_params(layers, d, seed)),
                       Adam(lr=DEFAULT_LR.get(method, 0.05) if lr is None else lr, schedule=schedule or "constant",
                            amsgrad=False), iterations,
                       name=f"meanfield train ({method})", progress=ProgressBar(quiet), sampler=sampler, state0=state0,
                       checkpointing=Checkpointing(checkpoint, checkpoint_every, should_stop),
                       divergence=Divergence(hint="lower --lr or --T"))
    except SolverError as err:
        if err.result.x is not None:
            err.result.x = shape_model.unflatten(err.result.x)
        raise
    res.x = shape_model.unflatten(res.x)
    res.grid, res.rho_path = grid, None
    if grid is not None:
        prob.value_and_grad(res.x)
        res.rho_path = prob.mfc.last_rho
    return res


def param_arrays(params):
    """A parameter dict in the layout of the ``last_good.npz`` file: K (N, d, d), b (N, d), W (d,), mu ()."""
    return {"K": np.asarray(params["K"]), "b": np.asarray(params["b"]), "W": np.ravel(params["W"]),
            "mu": np.array(float(np.ravel(params["mu"])[0]))}


def train_report(res, method, X, y, Xt=None, yt=None, nu=0.1, layers=10, T=2.0, substeps=1, particles=None,
                 grid=None, seed=0):
    """The summary of a training run (the JSON keys of ``ocdl meanfield train``): solver, loss,
    accuracies of the stochastic network (16 noise paths, generator ``seed``), history, settings."""
    acc = lambda A, b: accuracy(res.x, A, b, nu, T, substeps, 16, seed)  # noqa: E731
    particle = method == "particles"
    solver = {"particles": "particle-pmp", "density": "density-lagrangian", "grid": "density-fp"}[method]
    integrator = {"particles": "euler-maruyama", "density": "gaussian-characteristics-euler",
                  "grid": "fokker-planck-implicit-euler"}[method]
    return {"solver": solver, "field": "outer", "integrator": integrator,
            "layers": layers, "T": T, "train_loss": res.fun, "train_accuracy": acc(X, y),
            "test_accuracy": acc(Xt, yt) if Xt is not None else None, "iterations": res.nit,
            "wall_time_s": res.wall_time_s, "success": res.success, "message": res.message,
            "history": res.history, "nu": nu, "method": method,
            "particles": particles if particle else None, "grid": grid if method == "grid" else None}
