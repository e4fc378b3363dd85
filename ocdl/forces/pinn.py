"""Physics-informed neural network (PINN) for second-order equations of motion (after the PINN
lecture slides on damped oscillators and holography): the three roles of the slides — inverse solver (unknown
parameters, e.g. γ, ω0 or a potential table), forward solver (initial conditions only) and
extrapolation (few data on a short window, physics on a longer one).

An MLP ``x_φ(t)`` (tanh, input ``2t/t_c − 1`` with ``t_c`` the end of the collocation window)
and the problem's unknown parameters ``p`` minimise

    L = (1/n) Σ_i (x_φ(t_i) − x_i)² + w · (1/m) Σ_j r(τ_j)²  [+ (x_φ(0) − x0)² + ((x_φ'(0) − v0)/s)²]

with the physics residual ``r = problem.pinn_residual(p0)(p, x_φ, x_φ', x_φ'')`` (derivatives by
autograd; the problem scales it to O(x), e.g. ``(x'' + 2γx' + ω0² x)/ω_ref²``) on ``m`` collocation
points ``τ_j`` evenly spaced in ``[0, t_c]``, and the initial conditions as data when the problem
fixes them (``s`` = ``problem.pinn_velocity_scale``). ``w = 0`` is the data-only network. Adam,
then L-BFGS, as in the slides.

The problem supplies ``t, x`` (data, possibly empty), ``tmax``, ``names`` (the unknowns, possibly
none), ``fixed`` (``{"x0": …, "v0": …}``, None = not given), ``pinn_residual(p0)`` and optionally
``pinn_domain`` (``t_c``, default ``tmax``) and ``pinn_info(p)`` (extra history columns).

Both phases run on :func:`ocdl.optim.minimize` over the flat vector of all parameters (the
network's, then ``p``): :class:`~ocdl.optim.Adam` (constant rate), then one chunk
of :class:`~ocdl.optim.TorchLBFGS` with ``lbfgs_steps`` iterations. Checkpoints hold the Adam
phase (moments included: a resume is bit for bit) and its finished state; an interrupt during
L-BFGS stops the run and a resume restarts L-BFGS from the end of Adam (which is where it starts
anyway: same result). ``success`` is L-BFGS's own test (it ended before ``lbfgs_steps``).
"""
import time

import numpy as np
import torch

from ocdl.optim import Adam, Checkpointing, Divergence, OptimizeResult, ProgressBar, TorchLBFGS, minimize

DTYPE = torch.float64


def mlp(hidden, depth):
    """``depth`` tanh layers of width ``hidden``, scalar in and out (float64)."""
    layers, width_in = [], 1
    for _ in range(depth):
        layers += [torch.nn.Linear(width_in, hidden), torch.nn.Tanh()]
        width_in = hidden
    layers.append(torch.nn.Linear(width_in, 1))
    return torch.nn.Sequential(*layers).to(DTYPE)


def fit_pinn(problem, theta0, hidden=32, depth=3, adam_steps=6000, lbfgs_steps=500, lr=2e-3,
             collocation=256, weight=1.0, quiet=True, seed=0, state0=None, checkpoint=None,
             checkpoint_every=None, should_stop=None, curve_points=400):
    """Train the PINN; returns an :class:`~ocdl.optim.OptimizeResult` whose ``x`` holds the unknown
    parameters (``problem.names`` order), with extras ``pinn_curve = {"t", "x"}`` (the MLP on
    ``curve_points`` times in ``[0, t_c]``) and ``predict`` (a function ``t ↦ x_φ(t)``, numpy)."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    net = mlp(hidden, depth)
    domain = float(getattr(problem, "pinn_domain", problem.tmax))
    scale = 2.0 / domain
    names = list(problem.names)
    n_theta = len(names)
    params = torch.nn.Parameter(torch.tensor(np.asarray(theta0, float).reshape(-1), dtype=DTYPE))
    residual = problem.pinn_residual(np.asarray(theta0, float))
    info_fn = getattr(problem, "pinn_info", None)
    vscale = float(getattr(problem, "pinn_velocity_scale", 1.0))
    t_data = torch.as_tensor(np.asarray(problem.t, float), dtype=DTYPE)[:, None]
    x_data = torch.as_tensor(np.asarray(problem.x, float), dtype=DTYPE)
    tau = torch.linspace(0, domain, collocation, dtype=DTYPE)[:, None].requires_grad_(True)
    t_ic = torch.zeros((1, 1), dtype=DTYPE, requires_grad=True)
    tensors = list(net.parameters()) + ([params] if n_theta else [])
    x0_fix, v0_fix = problem.fixed.get("x0"), problem.fixed.get("v0")

    def model(t):
        return net(scale * t - 1.0)[:, 0]

    def loss_fn():
        zero = torch.zeros((), dtype=DTYPE)
        data = ((model(t_data) - x_data) ** 2).mean() if len(x_data) else zero
        loss = data
        if weight > 0:
            x = model(tau)
            dx = torch.autograd.grad(x.sum(), tau, create_graph=True)[0][:, 0]
            ddx = torch.autograd.grad(dx.sum(), tau, create_graph=True)[0][:, 0]
            r = residual(params, x, dx, ddx)
            loss = loss + weight * (r * r).mean()
        # initial conditions, when given, enter as data at t = 0
        if x0_fix is not None or v0_fix is not None:
            x0 = model(t_ic)
            if x0_fix is not None:
                loss = loss + (x0[0] - x0_fix) ** 2
            if v0_fix is not None:
                v0 = torch.autograd.grad(x0.sum(), t_ic, create_graph=True)[0][0, 0]
                loss = loss + ((v0 - v0_fix) / vscale) ** 2
        return loss, data

    def objective(x, batch=None):
        """Loss, its gradient in the flat parameter vector (autograd), and the problem's extras."""
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.as_tensor(x, dtype=DTYPE), tensors)
        loss, data = loss_fn()
        grads = torch.autograd.grad(loss, tensors)
        g = torch.cat([gr.reshape(-1) for gr in grads]).numpy()
        info = {"data_loss": float(data.detach())}
        if info_fn is not None and n_theta:
            info.update(info_fn(np.asarray(x[len(x) - n_theta:], float)))
        return float(loss.detach()), g, info

    x0 = torch.nn.utils.parameters_to_vector(tensors).detach().numpy().copy()
    progress, divergence = ProgressBar(quiet), Divergence(hint="try a smaller --lr")
    adam = minimize(objective, x0, Adam(lr=lr, schedule="constant", amsgrad=False), adam_steps, name="pinn",
                    progress=progress, divergence=divergence, state0=state0,
                    checkpointing=Checkpointing(checkpoint, checkpoint_every, should_stop))
    res = adam
    if lbfgs_steps > 0:
        def interruptible(x, batch=None):
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt     # the checkpoint holds the finished Adam phase
            return objective(x, batch)

        rule = TorchLBFGS(max_iter=lbfgs_steps, history_size=50, max_eval=lbfgs_steps * 5 // 4)
        res = minimize(interruptible, adam.x, rule, 1, name="pinn L-BFGS", progress=progress, divergence=divergence)
        offset = adam.nit
        t_adam = adam.history[-1]["time_s"] if adam.history else 0.0
        res.history = list(adam.history) + [dict(h, iteration=h["iteration"] + offset, time_s=h["time_s"] + t_adam)
                                            for h in res.history]
        res.nit = offset + res.nit
    x = np.asarray(res.x, float)
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(torch.as_tensor(x, dtype=DTYPE), tensors)
    net.requires_grad_(False)

    def predict(t):
        with torch.no_grad():
            return model(torch.as_tensor(np.asarray(t, float), dtype=DTYPE)[:, None]).numpy()

    tt = np.linspace(0, domain, curve_points)
    out = OptimizeResult(res)
    out.update(x=x[len(x) - n_theta:].copy() if n_theta else np.zeros(0), wall_time_s=time.perf_counter() - t0,
               pinn_curve={"t": tt, "x": predict(tt)}, predict=predict,
               message=f"Adam {adam_steps} steps (lr {lr:g}); then {res.message}" if lbfgs_steps > 0 else res.message)
    return out


class DampedOscillator:
    """The PINN task of the slides' forward and extrapolation roles: ``x'' + 2γx' + ω0²x = 0`` with
    γ, ω0 *known*; data ``(t, x)`` (possibly none), initial conditions ``x0, v0`` (None = not
    imposed), physics on ``[0, domain]``. Residual scaled by ``ω0²``."""

    names = ()

    def __init__(self, gamma, omega0, domain, t=(), x=(), x0=None, v0=None):
        self.gamma, self.omega0 = float(gamma), float(omega0)
        self.t, self.x = np.asarray(t, float), np.asarray(x, float)
        self.tmax = self.pinn_domain = float(domain)
        self.fixed = {"x0": x0, "v0": v0}
        self.pinn_velocity_scale = self.omega0

    def pinn_residual(self, p0):
        g, w2 = self.gamma, self.omega0 ** 2
        return lambda p, x, dx, ddx: (ddx + 2 * g * dx + w2 * x) / w2


def exact_damped(t, gamma, omega0, x0, v0):
    """The exact under-damped solution ``x(t) = e^{−γt}(c₁e^{iωt} + c₂e^{−iωt})``, ``ω = √(ω0² − γ²)``,
    written with real constants: ``c₁ + c₂ = x0`` and ``i ω (c₁ − c₂) = v0 + γ x0``, i.e.
    ``x = e^{−γt}(x0 cos ωt + (v0 + γ x0)/ω · sin ωt)``. Requires ``γ < ω0``."""
    if not gamma < omega0:
        raise ValueError("exact_damped is the under-damped solution (γ < ω0)")
    w = np.sqrt(omega0 ** 2 - gamma ** 2)
    t = np.asarray(t, float)
    c1 = 0.5 * (x0 - 1j * (v0 + gamma * x0) / w)
    c2 = np.conj(c1)
    return (np.exp(-gamma * t) * (c1 * np.exp(1j * w * t) + c2 * np.exp(-1j * w * t))).real
