"""PINN baseline for the damped oscillator (seed ``pinn-holography-slides.txt``).

An MLP ``x_φ(t)`` (tanh, input ``2t/t_max − 1``) with trainable ``γ, ω0`` minimises

    L = (1/n) Σ_i (x_φ(t_i) − x_i)² + w · (1/m) Σ_j (r(τ_j)/ω_ref²)²,
    r = x_φ'' + 2γ x_φ' + ω0² x_φ   (derivatives by autograd)

on ``m`` collocation points ``τ_j`` evenly spaced in ``[0, t_max]`` (``ω_ref`` = the initial ω0,
fixed, makes the residual O(x)). Adam, then L-BFGS, as in the slides.

Checkpoints (``ck``, :class:`ocdl.checkpoint.Checkpointer`) hold the network, ``γ, ω0`` and Adam's
moments during the Adam phase, and the state at its end; an interrupt during L-BFGS stops the run
and a resume restarts L-BFGS from the end of Adam (which is where it starts anyway: same result).
"""
import math
import time

import torch

from ocdl.errors import SolverError
from ocdl.progress import Progress

DTYPE = torch.float64


def fit_pinn(problem, theta0, hidden=32, depth=3, adam_steps=6000, lbfgs_steps=500, lr=2e-3,
             collocation=256, weight=1.0, quiet=True, seed=0, state0=None, ck=None):
    from ocdl.checkpoint import load_torch_adam_state, torch_adam_state
    from ocdl.forces.solvers import ForceResult
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

    history, start = [], 0
    tensors = list(net.parameters()) + [params]
    opt = torch.optim.Adam(tensors, lr=lr)
    if state0 is not None:
        start, history = int(state0["iteration"]), list(state0["history"])
        with torch.no_grad():
            for i, t in enumerate(tensors):
                t.copy_(torch.as_tensor(state0["params"][f"p{i}"], dtype=DTYPE).reshape(t.shape))
        load_torch_adam_state(opt, tensors, state0["opt"])
        t0 -= history[-1]["time_s"] if history else 0.0

    def state(n):
        return {"iteration": n, "history": list(history), "meta": {},
                "params": {f"p{i}": t.detach().numpy().copy() for i, t in enumerate(tensors)},
                "opt": torch_adam_state(opt, tensors)}

    prog = Progress(adam_steps + lbfgs_steps, "pinn", quiet)
    good = None
    for it in range(start, adam_steps):
        opt.zero_grad()
        loss, data = loss_fn()
        lv = float(loss.detach())
        if not math.isfinite(lv):
            prog.close()
            err = SolverError(f"PINN loss became non-finite at Adam step {it} (diverged); try a smaller --lr")
            err.last_good = good
            raise err
        good = params.detach().numpy().copy()          # γ, ω0 (, x0, v0) with a finite loss
        loss.backward()
        opt.step()
        if it % 50 == 0:
            history.append({"iteration": it, "loss": lv, "data_loss": float(data.detach()),
                            "time_s": time.perf_counter() - t0, "gamma": float(params[0].detach()),
                            "omega0": float(params[1].detach())})
        prog.update(it, loss=lv)
        if ck is not None:
            ck.after_step(it + 1, lambda: state(it + 1), prog, "pinn")
    if ck is not None and start < adam_steps:
        ck.save(lambda: state(adam_steps))            # the end of the Adam phase
    lbfgs = torch.optim.LBFGS(list(net.parameters()) + [params], lr=1.0, max_iter=lbfgs_steps,
                              tolerance_grad=1e-12, tolerance_change=1e-16, history_size=50,
                              line_search_fn="strong_wolfe")

    def closure():
        if ck is not None and ck.should_stop is not None and ck.should_stop():
            prog.close("pinn: interrupted during L-BFGS; a resume restarts L-BFGS from the end of Adam")
            raise KeyboardInterrupt
        lbfgs.zero_grad()
        loss, _ = loss_fn()
        loss.backward()
        return loss

    if lbfgs_steps > 0:
        lbfgs.step(closure)
    loss, data = loss_fn()
    lv = float(loss.detach())
    if not math.isfinite(lv):
        raise SolverError("PINN loss became non-finite during L-BFGS")
    history.append({"iteration": adam_steps + lbfgs_steps, "loss": lv, "data_loss": float(data.detach()),
                    "time_s": time.perf_counter() - t0, "gamma": float(params[0].detach()), "omega0": float(params[1].detach())})
    prog.close()
    x = params.detach().numpy().copy()
    with torch.no_grad():
        tt = torch.linspace(0, problem.tmax, 400, dtype=DTYPE)[:, None]
        curve = model(tt).numpy()
    return ForceResult(x, True, f"{adam_steps} Adam steps (lr {lr:g}) + L-BFGS ({lbfgs_steps} max)",
                       adam_steps + lbfgs_steps, lv, float(data.detach()), time.perf_counter() - t0, history, [],
                       {"pinn_curve": {"t": tt[:, 0].numpy(), "x": curve}})
