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

Device (``device="cpu"``, ``"cuda"``, ``"cuda:N"``): adam and lbfgs run torch autograd there; the
pmp-* solvers run the torch costate sweeps of :mod:`ocdl.pmp.torch_sweeps` there (the exact gradient, no
tape; the data are moved to the device once, the parameter vector and the gradient cross per
iteration, the rule's own state stays on the host — so checkpoints, resuming and scipy's L-BFGS
are unchanged). ``device=None`` (the pmp-* default) is the compiled sweep of :mod:`ocdl.pmp.compiled`.

Adam: β = (0.9, 0.999), ε = 1e-8, AMSGrad and cosine learning-rate decay by default.
Convergence test: ``max |∂J/∂θ| ≤ gtol`` (default 1e-6) for adam, pmp-adam and pmp-gd; L-BFGS
uses its own tests (torch: gradient/change tolerance; scipy: ``gtol`` on the projected gradient).
A run that ends at its iteration cap has ``success = False``.

Mini-batches (adam, pmp-adam, pmp-gd): ``batch_size=B`` draws shuffled batches of B training
samples (:class:`ocdl.optim.Batches`, seed ``batch_seed``); each step follows the exact
gradient of the batch cost ``J_B = (1/|B|) Σ_{i∈B} Φ_i + R(θ)`` (pmp-gd's Armijo search tests
the same batch). ``epochs=E`` sets the iteration count to ``E · ⌈n/B⌉`` (overriding
``iterations``). History rows hold the batch cost as ``loss``; at each epoch's end they also
hold ``test_accuracy`` (when ``test=(X_test, y_test)`` is given) and ``val_accuracy``,
``val_loss`` (when ``validation=FRACTION`` holds out that stratified fraction of the training
data, split with ``stratified_split(y, FRACTION, batch_seed)``). With a validation part the
returned parameters are those of the epoch with the best validation *accuracy* (strict
improvement, so the earliest of equals), and ``patience`` epochs without improvement stop the
run (early stopping, status 2). ``res.fun`` is the full training cost at the returned
parameters. A full batch (``B ≥ n`` or None) with ``test``/``validation`` makes every iteration
an epoch and computes the same numbers as a run without them.

Divergence (non-finite loss or gradient, loss growth beyond 1e6 × the first loss, or a hidden
state beyond ``STATE_LIMIT``) raises :class:`~ocdl.errors.SolverError` whose ``result.x`` holds
the last good parameters. Checkpoints hold the flat parameter vector and the rule's state (Adam's
moments), so ``state0`` resumes bit for bit.
"""
import numpy as np

from ocdl import optim, pmp
from ocdl.errors import SolverError
from ocdl.models.losses import mean_loss
from ocdl.models.resnet import PARAM_KEYS
from ocdl.models.regularisers import regulariser
from ocdl.solvers.support import EXACT_COSTATE, WITH_FUSED_FORM, declaration, supports

STATE_LIMIT = 1e6
GTOL = 1e-6
HINT = "try a smaller learning rate (--lr / options lr), a larger --alpha, fewer --layers or a smaller --T"
DIVERGENCE = optim.Divergence(state_limit=STATE_LIMIT, hint=HINT)     # the classifier solvers' divergence test


def tensor_params(model, xt):
    """The parameter dict of ``model`` as views into the flat torch tensor ``xt`` (K, b, W, μ order)."""
    out, i = {}, 0
    for k, shp in model.shapes().items():
        size = int(np.prod(shp))
        out[k] = xt[i:i + size].reshape(shp)
        i += size
    return out


def costate_objective(model, X, y, device=None):
    """``objective(x, batch) → (J, ∇J, {"kkt", "state_max"})`` from the costate sweep: numpy
    (``device=None``) or the torch sweep on ``device`` (x and ∇J stay numpy vectors)."""
    if device is not None:
        return _device_costate_objective(model, X, y, device)

    def objective(x, batch=None):
        p = model.unflatten(x)
        Xb, yb = (X, y) if batch is None else (X[batch], y[batch])
        J, grads, states, _ = pmp.sweep(model, p, Xb, yb, trajectories=False)     # states = x_N[None]
        return J, model.flatten(grads), {"kkt": pmp.kkt_residual(model, p, Xb, yb, grads=grads),
                                         "state_max": float(np.abs(states[-1]).max())}
    return objective


def _device_costate_objective(model, X, y, device):
    import torch
    Xt = torch.tensor(np.asarray(X, dtype=float), dtype=torch.float64, device=device)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.int64, device=device)

    def objective(x, batch=None):
        p = tensor_params(model, torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64, device=device))
        if batch is None:
            Xb, yb = Xt, yt
        else:
            idx = torch.as_tensor(batch, device=device)
            Xb, yb = Xt[idx], yt[idx]
        J, grads, states, _ = pmp.sweep(model, p, Xb, yb, trajectories=False)     # states = x_N[None]
        g = torch.cat([grads[k].reshape(-1) for k in PARAM_KEYS]).cpu().numpy()
        return J, g, {"kkt": pmp.kkt_residual(model, p, Xb, yb, grads=model.unflatten(g)),
                      "state_max": float(states[-1].abs().max())}
    return objective


def autograd_objective(model, X, y, device="cpu"):
    """``objective(x, batch) → (J, ∇J, {"state_max"})`` by torch reverse mode through the network."""
    import torch
    Xt = torch.tensor(np.asarray(X, dtype=float), dtype=torch.float64, device=device)
    yt = np.asarray(y)

    def objective(x, batch=None):
        xt = torch.tensor(np.asarray(x, dtype=float), dtype=torch.float64, device=device, requires_grad=True)
        tp = tensor_params(model, xt)
        Xb, yb = (Xt, yt) if batch is None else (Xt[torch.as_tensor(batch, device=device)], yt[batch])
        xN = model.forward(tp, Xb)[-1]
        J = mean_loss(model.head(tp, xN), yb) + regulariser(tp, model.h, model.alpha, model.beta, model.alpha_head)
        J.backward()
        return float(J.detach()), xt.grad.detach().cpu().numpy(), {"state_max": float(xN.detach().abs().max())}
    return objective


#: early-stopping patience in epochs (mini-batch runs; a full-batch epoch is one iteration)
PATIENCE = 20


class Batching:
    """The stochastic part of a run: training/validation split, sampler, per-epoch metrics.

    ``Batching(model, X, y, batch_size, epochs, validation, patience, test, seed)``; ``X, y``
    become the training part; ``minimize_options(iterations)`` gives the keyword arguments of
    :func:`ocdl.optim.minimize` (sampler, early_stopping) and the iteration
    count. ``active`` is False when nothing stochastic or per-epoch was asked for."""

    def __init__(self, model, X, y, batch_size=None, epochs=None, validation=None, patience=PATIENCE, test=None,
                 seed=0, device=None):
        from ocdl.data.real import stratified_split
        from ocdl.errors import InputError
        self.model, self.test, self.val, self.device = model, test, None, device
        if validation is not None:
            if not 0 < validation < 1:
                raise InputError(f"--validation must be a fraction in (0, 1) (got {validation})")
            tr, va = stratified_split(y, validation, seed)
            if len(va) == 0 or len(tr) == 0:
                raise InputError(f"--validation {validation:g} leaves an empty part of {len(y)} samples")
            self.val = (X[va], y[va])
            X, y = X[tr], y[tr]
        self.X, self.y, self.n = X, y, len(y)
        if batch_size is not None and int(batch_size) < 1:
            raise InputError(f"--batch-size must be ≥ 1 (got {batch_size})")
        if epochs is not None and int(epochs) < 1:
            raise InputError(f"--epochs must be ≥ 1 (got {epochs})")
        self.size = self.n if batch_size is None else min(int(batch_size), self.n)
        self.epochs, self.patience, self.seed = epochs, patience, seed
        self.active = self.size < self.n or test is not None or self.val is not None or epochs is not None

    def iterations(self, iterations):
        return iterations if self.epochs is None else int(self.epochs) * -(-self.n // self.size)

    def metrics(self, epoch, x):
        p, row = self.model.unflatten(np.asarray(x, dtype=float)), {}
        if self.test is not None:
            row["test_accuracy"] = self.model.accuracy(p, *self.test)
        if self.val is not None:
            row["val_accuracy"] = self.model.accuracy(p, *self.val)
            row["val_loss"] = pmp.cost(self.model, p, *self.val, device=self.device)
        return row

    def minimize_options(self):
        if not self.active:
            return {}
        early = (optim.EarlyStopping(("val_accuracy", "max"), self.patience, self.metrics) if self.val is not None
                 else optim.EarlyStopping(epoch_callback=self.metrics))
        return {"sampler": optim.Batches(self.n, self.size, self.seed), "early_stopping": early}


def _run(name, model, params0, objective, rule, iterations, callback, quiet, gtol, state0, checkpoint,
         checkpoint_every, should_stop, batching=None):
    if iterations is None:
        from ocdl.solvers import SOLVERS
        iterations = declaration(SOLVERS[name]).iterations
    cb = None if callback is None else (lambda it, x, f: callback(it, model.unflatten(x), f))
    extra = {} if batching is None else batching.minimize_options()
    if batching is not None:
        iterations = batching.iterations(iterations)
    try:
        res = optim.minimize(objective, model.flatten(params0), rule, iterations, name=name, gtol=gtol,
                             state0=state0, progress=optim.ProgressBar(quiet),
                             callback=None if cb is None else optim.Callback(cb), divergence=DIVERGENCE,
                             checkpointing=optim.Checkpointing(checkpoint, checkpoint_every, should_stop), **extra)
    except SolverError as err:
        if getattr(err, "result", None) is not None and err.result.x is not None:
            err.result.x = model.unflatten(np.array(err.result.x, dtype=float))
            err.result.update(model=model, solver=name)
        raise
    res.x = model.unflatten(np.array(res.x, dtype=float))
    if batching is not None and (batching.size < batching.n or batching.val is not None):
        res.fun = pmp.cost(model, res.x, batching.X, batching.y, device=batching.device)   # full training cost
    res.update(model=model, solver=name)
    return res


@supports(iterations=3000)
def adam(model, params0, X, y, *, iterations=None, callback=None, quiet=True, lr=0.05, schedule="cosine",
         betas=(0.9, 0.999), eps=1e-8, amsgrad=True, gtol=GTOL, device="cpu", state0=None, checkpoint=None,
         checkpoint_every=None, should_stop=None, batch_size=None, epochs=None, validation=None,
         patience=PATIENCE, test=None, batch_seed=0):
    """Adam on the torch-autograd gradient (the baseline users know); mini-batches as in the module doc."""
    bt = Batching(model, X, y, batch_size, epochs, validation, patience, test, batch_seed)
    return _run("adam", model, params0, autograd_objective(model, bt.X, bt.y, device),
                optim.Adam(lr, schedule, betas, eps, amsgrad), iterations, callback, quiet, gtol, state0,
                checkpoint, checkpoint_every, should_stop, bt)


@supports(iterations=1000)
def lbfgs(model, params0, X, y, *, iterations=None, callback=None, quiet=True, lr=1.0, history_size=20,
          device="cpu", state0=None, checkpoint=None, checkpoint_every=None, should_stop=None):
    """torch L-BFGS (strong Wolfe, one L-BFGS iteration per recorded iteration) on the autograd gradient."""
    rule = optim.TorchLBFGS(max_iter=1, history_size=history_size, max_eval=25, lr=lr)
    return _run("lbfgs", model, params0, autograd_objective(model, X, y, device), rule, iterations, callback,
                quiet, None, state0, checkpoint, checkpoint_every, should_stop)


@supports(fields=WITH_FUSED_FORM, integrators=EXACT_COSTATE, iterations=3000)
def pmp_adam(model, params0, X, y, *, iterations=None, callback=None, quiet=True, lr=0.05, schedule="cosine",
             betas=(0.9, 0.999), eps=1e-8, amsgrad=True, gtol=GTOL, state0=None, checkpoint=None,
             checkpoint_every=None, should_stop=None, batch_size=None, epochs=None, validation=None,
             patience=PATIENCE, test=None, batch_seed=0, device=None):
    """Adam on the exact discrete costate gradient (of the batch's cost with mini-batches);
    ``device``: the torch sweep there (None: numpy)."""
    bt = Batching(model, X, y, batch_size, epochs, validation, patience, test, batch_seed, device)
    return _run("pmp-adam", model, params0, costate_objective(model, bt.X, bt.y, device),
                optim.Adam(lr, schedule, betas, eps, amsgrad), iterations, callback, quiet, gtol, state0,
                checkpoint, checkpoint_every, should_stop, bt)


@supports(fields=WITH_FUSED_FORM, integrators=EXACT_COSTATE, iterations=3000)
def pmp_gd(model, params0, X, y, *, iterations=None, callback=None, quiet=True, lr=0.5, armijo=1e-4, gtol=GTOL,
           state0=None, checkpoint=None, checkpoint_every=None, should_stop=None, batch_size=None, epochs=None,
           validation=None, patience=PATIENCE, test=None, batch_seed=0, device=None):
    """Gradient descent with Armijo backtracking on the costate gradient (trial points: fused cost
    only, on the iteration's batch); ``device``: the torch sweeps there (None: numpy)."""
    bt = Batching(model, X, y, batch_size, epochs, validation, patience, test, batch_seed, device)
    Xt, yt = bt.X, bt.y
    if device is not None:
        import torch
        Xt = torch.tensor(np.asarray(Xt, dtype=float), dtype=torch.float64, device=device)
        yt = torch.as_tensor(np.asarray(yt), dtype=torch.int64, device=device)

    def value(x, batch=None):
        if batch is not None and device is not None:
            batch = torch.as_tensor(batch, device=device)
        Xb, yb = (Xt, yt) if batch is None else (Xt[batch], yt[batch])
        return pmp.cost(model, model.unflatten(x), Xb, yb, device=device)
    rule = optim.GradientDescent(lr, armijo, value=value)
    return _run("pmp-gd", model, params0, costate_objective(model, bt.X, bt.y, device), rule, iterations, callback,
                quiet, gtol, state0, checkpoint, checkpoint_every, should_stop, bt)


@supports(fields=WITH_FUSED_FORM, integrators=EXACT_COSTATE, iterations=1000)
def pmp_lbfgs(model, params0, X, y, *, iterations=None, callback=None, quiet=True, gtol=1e-9, state0=None,
              checkpoint=None, checkpoint_every=None, should_stop=None, device=None):
    """scipy's L-BFGS-B on the costate gradient (a resumed run restarts the L-BFGS memory);
    ``device``: the torch sweep there (None: numpy)."""
    return _run("pmp-lbfgs", model, params0, costate_objective(model, X, y, device), optim.LBFGS(gtol=gtol),
                iterations, callback, quiet, None, state0, checkpoint, checkpoint_every, should_stop)
