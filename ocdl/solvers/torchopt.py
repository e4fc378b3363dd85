"""Baseline solvers: torch reverse-mode autograd through the discrete network (float64).

* ``adam``  — ``torch.optim.Adam`` (β = (0.9, 0.999), ε = 1e-8, ``amsgrad=True`` by default — it
  prevents the catastrophic late loss spikes plain Adam showed on the spirals), cosine
  learning-rate decay by default; its moment estimates and step count are part of the checkpoint state, so a resumed
  run reproduces an uninterrupted one exactly.
* ``lbfgs`` — ``torch.optim.LBFGS`` with a strong-Wolfe line search, one L-BFGS iteration per
  recorded iteration (checkpoints hold parameters only; a resumed run restarts the memory).
"""
import numpy as np

from ocdl.models.losses import mean_loss
from ocdl.models.regularisers import regulariser
from ocdl.models.resnet import to_numpy, to_torch
from ocdl.solvers.base import Loop, learning_rate

KEYS = ("K", "b", "W", "mu")


def _loss(model, tp, Xt, y):
    xN = model.forward(tp, Xt)[-1]
    J = mean_loss(model.head(tp, xN), y) + regulariser(tp, model.h, model.alpha, model.beta, model.alpha_head)
    return J, float(xN.detach().abs().max())


def _setup(params, X, device):
    import torch
    tp = to_torch(params, device=device, requires_grad=True)
    Xt = torch.tensor(np.asarray(X, dtype=float), dtype=torch.float64, device=device)
    return torch, tp, Xt


def adam(model, params0, X, y, *, iterations=3000, callback=None, quiet=True, lr=0.05, schedule="cosine",
         betas=(0.9, 0.999), eps=1e-8, amsgrad=True, device="cpu", state0=None, checkpoint=None, checkpoint_every=None,
         should_stop=None, **_):
    torch, tp, Xt = _setup(state0["params"] if state0 else params0, X, device)
    loop = Loop("adam", model, iterations, quiet, callback, state0, checkpoint, checkpoint_every, should_stop)
    order = [tp[k] for k in KEYS]
    opt = torch.optim.Adam(order, lr=lr, betas=tuple(betas), eps=eps, amsgrad=amsgrad, foreach=False)
    if state0:
        sd = opt.state_dict()
        sd["state"] = {i: {"step": torch.tensor(float(state0["opt"]["step_" + k])),
                           "exp_avg": torch.tensor(state0["opt"]["m_" + k], dtype=torch.float64, device=device),
                           "exp_avg_sq": torch.tensor(state0["opt"]["v_" + k], dtype=torch.float64, device=device),
                           **({"max_exp_avg_sq": torch.tensor(state0["opt"]["vmax_" + k], dtype=torch.float64,
                                                              device=device)} if amsgrad else {})}
                       for i, k in enumerate(KEYS)}
        opt.load_state_dict(sd)

    def opt_state():
        out = {}
        for k in KEYS:
            st = opt.state[tp[k]]
            out["step_" + k] = np.array(float(st["step"]))
            out["m_" + k] = st["exp_avg"].detach().cpu().numpy()
            out["v_" + k] = st["exp_avg_sq"].detach().cpu().numpy()
            if amsgrad:
                out["vmax_" + k] = st["max_exp_avg_sq"].detach().cpu().numpy()
        return out

    for it in range(loop.start_iteration + 1, iterations + 1):
        opt.zero_grad()
        J, xmax = _loss(model, tp, Xt, y)
        J.backward()
        Jf = float(J.detach())
        params = to_numpy(tp)
        loop.check(it, Jf, params, to_numpy({k: tp[k].grad for k in KEYS}), state_max=xmax)
        loop.record(it, Jf, params)
        if loop.stopped_by_callback:
            break
        for group in opt.param_groups:
            group["lr"] = learning_rate(lr, schedule, it, iterations)
        opt.step()
        loop.after_step(it, lambda: to_numpy(tp), opt_state)
    return _finish(loop, model, tp, Xt, y)


def lbfgs(model, params0, X, y, *, iterations=1000, callback=None, quiet=True, lr=1.0, history_size=20,
          device="cpu", state0=None, checkpoint=None, checkpoint_every=None, should_stop=None, **_):
    torch, tp, Xt = _setup(state0["params"] if state0 else params0, X, device)
    loop = Loop("lbfgs", model, iterations, quiet, callback, state0, checkpoint, checkpoint_every, should_stop)
    opt = torch.optim.LBFGS([tp[k] for k in KEYS], lr=lr, max_iter=1, history_size=history_size,
                            max_eval=25, line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-16)
    message = "finished all iterations"
    for it in range(loop.start_iteration + 1, iterations + 1):
        first = {}

        def closure():
            opt.zero_grad()
            J, xmax = _loss(model, tp, Xt, y)
            J.backward()
            if not first:
                first.update(J=float(J.detach()), xmax=xmax)
            return J

        before = model.flatten(to_numpy(tp))
        opt.step(closure)
        params_before = model.unflatten(before)
        loop.check(it, first["J"], params_before, state_max=first["xmax"])
        loop.record(it, first["J"], params_before)
        after = to_numpy(tp)
        if not np.all(np.isfinite(model.flatten(after))):
            loop.check(it + 1, float("nan"), after)
        if loop.stopped_by_callback:
            break
        if np.array_equal(before, model.flatten(after)):
            message = "converged (no further progress; gradient at tolerance)"
            break
        loop.after_step(it, after, None)
    return _finish(loop, model, tp, Xt, y, message)


def _finish(loop, model, tp, Xt, y, message=None):
    import torch
    with torch.no_grad():
        J, xmax = _loss(model, tp, Xt, y)
    params = to_numpy(tp)
    J = float(J)
    loop.check(loop.history[-1]["iteration"] + 1 if loop.history else 1, J, params, state_max=xmax)
    loop.close()
    return loop.result(params, J, success=True,
                       message=message or ("stopped by callback" if loop.stopped_by_callback else "finished all iterations"))
