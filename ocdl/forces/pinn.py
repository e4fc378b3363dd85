"""PINN baseline for the damped oscillator (seed ``pinn-holography-slides.txt``).

An MLP ``x_φ(t)`` (tanh, input ``2t/t_max − 1``) with trainable ``γ, ω0`` minimises

    L = (1/n) Σ_i (x_φ(t_i) − x_i)² + w · (1/m) Σ_j (r(τ_j)/ω_ref²)²,
    r = x_φ'' + 2γ x_φ' + ω0² x_φ   (derivatives by autograd)

on ``m`` collocation points ``τ_j`` evenly spaced in ``[0, t_max]`` (``ω_ref`` = the initial ω0,
fixed, makes the residual O(x)). Adam, then L-BFGS, as in the slides.

Both phases run on :func:`ocdl.optim.minimize` over the flat vector of all parameters (the
network's, then ``γ, ω0 (, x0, v0)``): :class:`~ocdl.optim.Adam` (constant rate), then one chunk
of :class:`~ocdl.optim.TorchLBFGS` with ``lbfgs_steps`` iterations. Checkpoints hold the Adam
phase (moments included: a resume is bit for bit) and its finished state; an interrupt during
L-BFGS stops the run and a resume restarts L-BFGS from the end of Adam (which is where it starts
anyway: same result). ``success`` is L-BFGS's own test (it ended before ``lbfgs_steps``).
"""
import time

import numpy as np
import torch

from ocdl.optim import Adam, OptimizeResult, TorchLBFGS, minimize
from ocdl.optim.result import CONVERGED

DTYPE = torch.float64


def fit_pinn(problem, theta0, hidden=32, depth=3, adam_steps=6000, lbfgs_steps=500, lr=2e-3,
             collocation=256, weight=1.0, quiet=True, seed=0, state0=None, checkpoint=None,
             checkpoint_every=None, should_stop=None):
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    layers, width_in = [], 1
    for _ in range(depth):
        layers += [torch.nn.Linear(width_in, hidden), torch.nn.Tanh()]
        width_in = hidden
    layers.append(torch.nn.Linear(width_in, 1))
    net = torch.nn.Sequential(*layers).to(DTYPE)
    scale = 2.0 / problem.tmax
    names = problem.names
    params = torch.nn.Parameter(torch.tensor(theta0, dtype=DTYPE))
    omega_ref = float(theta0[1])
    t_data = torch.as_tensor(problem.t, dtype=DTYPE)[:, None]
    x_data = torch.as_tensor(problem.x, dtype=DTYPE)
    tau = torch.linspace(0, problem.tmax, collocation, dtype=DTYPE)[:, None].requires_grad_(True)
    t_ic = torch.zeros((1, 1), dtype=DTYPE, requires_grad=True)
    tensors = list(net.parameters()) + [params]
    n_theta = len(theta0)

    def model(t):
        return net(scale * t - 1.0)[:, 0]

    def loss_fn():
        vals = dict(zip(names, params))
        gamma, omega0 = vals["gamma"], vals["omega0"]
        data = ((model(t_data) - x_data) ** 2).mean()
        x = model(tau)
        dx = torch.autograd.grad(x.sum(), tau, create_graph=True)[0][:, 0]
        ddx = torch.autograd.grad(dx.sum(), tau, create_graph=True)[0][:, 0]
        r = (ddx + 2 * gamma * dx + omega0 ** 2 * x) / omega_ref ** 2
        loss = data + weight * (r * r).mean()
        # initial conditions, when given, enter as data at t = 0
        if problem.fixed["x0"] is not None or problem.fixed["v0"] is not None:
            x0 = model(t_ic)
            if problem.fixed["x0"] is not None:
                loss = loss + (x0[0] - problem.fixed["x0"]) ** 2
            if problem.fixed["v0"] is not None:
                v0 = torch.autograd.grad(x0.sum(), t_ic, create_graph=True)[0][0, 0]
                loss = loss + ((v0 - problem.fixed["v0"]) / omega_ref) ** 2
        return loss, data

    def objective(x, batch=None):
        """Loss, its gradient in the flat parameter vector (autograd), and γ, ω0."""
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.as_tensor(x, dtype=DTYPE), tensors)
        loss, data = loss_fn()
        grads = torch.autograd.grad(loss, tensors)
        g = torch.cat([gr.reshape(-1) for gr in grads]).numpy()
        return float(loss.detach()), g, {"data_loss": float(data.detach()), "gamma": float(x[-n_theta]),
                                         "omega0": float(x[-n_theta + 1])}

    x0 = torch.nn.utils.parameters_to_vector(tensors).detach().numpy().copy()
    hint = "try a smaller --lr"
    adam = minimize(objective, x0, Adam(lr=lr, schedule="constant", amsgrad=False), adam_steps, name="pinn",
                    quiet=quiet, state0=state0, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                    should_stop=should_stop, hint=hint)
    res = adam
    if lbfgs_steps > 0:
        def interruptible(x, batch=None):
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt     # the checkpoint holds the finished Adam phase
            return objective(x, batch)

        rule = TorchLBFGS(max_iter=lbfgs_steps, history_size=50, max_eval=lbfgs_steps * 5 // 4)
        res = minimize(interruptible, adam.x, rule, 1, name="pinn L-BFGS", quiet=quiet, hint=hint)
        if rule.stop_next:          # L-BFGS ended before its iteration budget: its convergence test
            res.update(status=CONVERGED, success=True, message="converged: L-BFGS ended early "
                       "(gradient or change at tolerance)")
        offset = adam.nit
        res.history = list(adam.history) + [dict(h, iteration=h["iteration"] + offset) for h in res.history]
        res.nit = offset + res.nit
    x = np.asarray(res.x, float)
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(torch.as_tensor(x, dtype=DTYPE), tensors)
        tt = torch.linspace(0, problem.tmax, 400, dtype=DTYPE)[:, None]
        curve = model(tt).numpy()
    out = OptimizeResult(res)
    out.update(x=x[-n_theta:].copy(), wall_time_s=time.perf_counter() - t0,
               pinn_curve={"t": tt[:, 0].numpy(), "x": curve},
               message=f"Adam {adam_steps} steps (lr {lr:g}); then {res.message}" if lbfgs_steps > 0 else res.message)
    return out
