"""The gradient-based classifier solvers, all run by :func:`ocdl.optim.minimize`.

=============  ===============================================  ==================================
solver         gradient                                         rule
=============  ===============================================  ==================================
``adam``       torch reverse-mode autograd through the network  :class:`ocdl.optim.Adam`
``lbfgs``      torch autograd                                   :class:`ocdl.optim.TorchLBFGS`
``pmp-adam``   costate sweep (``ocdl.pmp.sweep``, no tape)      :class:`ocdl.optim.Adam`
``pmp-gd``     costate sweep                                    :class:`ocdl.optim.GradientDescent`
``pmp-lbfgs``  costate sweep                                    :class:`ocdl.optim.LBFGS` (scipy)
=============  ===============================================  ==================================

Adam: β = (0.9, 0.999), ε = 1e-8, AMSGrad and cosine learning-rate decay by default.
Convergence test: ``max |∂J/∂θ| ≤ gtol`` (default 1e-6) for adam, pmp-adam and pmp-gd; L-BFGS
uses its own tests (torch: gradient/change tolerance; scipy: ``gtol`` on the projected gradient).
A run that ends at its iteration cap has ``success = False``.

Divergence (non-finite loss or gradient, loss growth beyond 1e6 × the first loss, or a hidden
state beyond ``STATE_LIMIT``) raises :class:`~ocdl.errors.SolverError` whose ``result.x`` holds
the last good parameters. Checkpoints hold the flat parameter vector and the rule's state (Adam's
moments), so ``state0`` resumes bit for bit.
"""
import numpy as np

from ocdl import optim, pmp
from ocdl.errors import SolverError
from ocdl.models.losses import mean_loss
from ocdl.models.regularisers import regulariser

STATE_LIMIT = 1e6
GTOL = 1e-6
HINT = "try a smaller learning rate (--lr / options lr), a larger --alpha, fewer --layers or a smaller --T"


def costate_objective(model, X, y):
    """``objective(x, batch) → (J, ∇J, {"kkt", "state_max"})`` from the costate sweep."""
    def objective(x, batch=None):
        p = model.unflatten(x)
        Xb, yb = (X, y) if batch is None else (X[batch], y[batch])
        J, grads, states, _ = pmp.sweep(model, p, Xb, yb)
        return J, model.flatten(grads), {"kkt": pmp.kkt_residual(model, p, Xb, yb, grads=grads),
                                         "state_max": float(np.abs(states[-1]).max())}
    return objective


def autograd_objective(model, X, y, device="cpu"):
    """``objective(x, batch) → (J, ∇J, {"state_max"})`` by torch reverse mode through the network."""
    import torch
    Xt = torch.tensor(np.asarray(X, dtype=float), dtype=torch.float64, device=device)
    yt = np.asarray(y)
    shapes = model.shapes()

    def objective(x, batch=None):
        xt = torch.tensor(np.asarray(x, dtype=float), dtype=torch.float64, device=device, requires_grad=True)
        tp, i = {}, 0
        for k, shp in shapes.items():
            size = int(np.prod(shp))
            tp[k] = xt[i:i + size].reshape(shp)
            i += size
        Xb, yb = (Xt, yt) if batch is None else (Xt[torch.as_tensor(batch, device=device)], yt[batch])
        xN = model.forward(tp, Xb)[-1]
        J = mean_loss(model.head(tp, xN), yb) + regulariser(tp, model.h, model.alpha, model.beta, model.alpha_head)
        J.backward()
        return float(J.detach()), xt.grad.detach().cpu().numpy(), {"state_max": float(xN.detach().abs().max())}
    return objective


def _run(name, model, params0, objective, rule, iterations, callback, quiet, gtol, state0, checkpoint,
         checkpoint_every, should_stop):
    cb = None if callback is None else (lambda it, x, f: callback(it, model.unflatten(x), f))
    try:
        res = optim.minimize(objective, model.flatten(params0), rule, iterations, name=name, callback=cb,
                             quiet=quiet, gtol=gtol, state0=state0, checkpoint=checkpoint,
                             checkpoint_every=checkpoint_every, should_stop=should_stop,
                             state_limit=STATE_LIMIT, hint=HINT)
    except SolverError as err:
        if getattr(err, "result", None) is not None and err.result.x is not None:
            err.result.x = model.unflatten(np.array(err.result.x, dtype=float))
            err.result.update(model=model, solver=name)
        raise
    res.x = model.unflatten(np.array(res.x, dtype=float))
    res.update(model=model, solver=name)
    return res


def adam(model, params0, X, y, *, iterations=3000, callback=None, quiet=True, lr=0.05, schedule="cosine",
         betas=(0.9, 0.999), eps=1e-8, amsgrad=True, gtol=GTOL, device="cpu", state0=None, checkpoint=None,
         checkpoint_every=None, should_stop=None):
    """Adam on the torch-autograd gradient (the baseline users know)."""
    return _run("adam", model, params0, autograd_objective(model, X, y, device),
                optim.Adam(lr, schedule, betas, eps, amsgrad), iterations, callback, quiet, gtol, state0,
                checkpoint, checkpoint_every, should_stop)


def lbfgs(model, params0, X, y, *, iterations=1000, callback=None, quiet=True, lr=1.0, history_size=20,
          device="cpu", state0=None, checkpoint=None, checkpoint_every=None, should_stop=None):
    """torch L-BFGS (strong Wolfe, one L-BFGS iteration per recorded iteration) on the autograd gradient."""
    rule = optim.TorchLBFGS(max_iter=1, history_size=history_size, max_eval=25, lr=lr)
    return _run("lbfgs", model, params0, autograd_objective(model, X, y, device), rule, iterations, callback,
                quiet, None, state0, checkpoint, checkpoint_every, should_stop)


def pmp_adam(model, params0, X, y, *, iterations=3000, callback=None, quiet=True, lr=0.05, schedule="cosine",
             betas=(0.9, 0.999), eps=1e-8, amsgrad=True, gtol=GTOL, state0=None, checkpoint=None,
             checkpoint_every=None, should_stop=None):
    """Adam on the exact discrete costate gradient."""
    return _run("pmp-adam", model, params0, costate_objective(model, X, y),
                optim.Adam(lr, schedule, betas, eps, amsgrad), iterations, callback, quiet, gtol, state0,
                checkpoint, checkpoint_every, should_stop)


def pmp_gd(model, params0, X, y, *, iterations=4000, callback=None, quiet=True, lr=0.5, armijo=1e-4, gtol=GTOL,
           state0=None, checkpoint=None, checkpoint_every=None, should_stop=None):
    """Gradient descent with Armijo backtracking on the costate gradient (trial points: fused cost only)."""
    rule = optim.GradientDescent(lr, armijo, value=lambda x: pmp.cost(model, model.unflatten(x), X, y))
    return _run("pmp-gd", model, params0, costate_objective(model, X, y), rule, iterations, callback, quiet,
                gtol, state0, checkpoint, checkpoint_every, should_stop)


def pmp_lbfgs(model, params0, X, y, *, iterations=1000, callback=None, quiet=True, gtol=1e-9, state0=None,
              checkpoint=None, checkpoint_every=None, should_stop=None):
    """scipy's L-BFGS-B on the costate gradient (a resumed run restarts the L-BFGS memory)."""
    return _run("pmp-lbfgs", model, params0, costate_objective(model, X, y), optim.LBFGS(gtol=gtol), iterations,
                callback, quiet, None, state0, checkpoint, checkpoint_every, should_stop)
