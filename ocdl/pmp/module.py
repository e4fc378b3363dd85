"""Exact costate gradient for a user-supplied torch field: one ``torch.nn.Module`` per layer.

The network is ``x_0`` given, ``x_{k+1} = Ψ_h(x_k; θ_k)`` (k = 0..N−1) with ``Ψ_h`` one step of an
explicit Runge–Kutta method (``euler``: ``x + h f_k(x)``) for the field ``f_k = layers[k]``, a
module mapping a batch ``x`` of shape (n, d) to ``f_k(x)`` of shape (n, d) with its own
parameters ``θ_k`` (any architecture; the layers need not share a class or a shape), optionally
plus given additive increments ``ξ_k`` (``x_{k+1} = Ψ_h(x_k; θ_k) + ξ_k``, Euler–Maruyama with
additive noise). The cost is ``J = loss(x_N)`` (a scalar; ``loss`` may be a module with its own
parameters, e.g. a head and a data term).

Costate sweep (discretise-then-optimise, the same as :mod:`ocdl.pmp.costate` with the
Jacobians taken by torch): ``p_N = ∂J/∂x_N`` and, backwards,

    (p_k, ∂J/∂θ_k) = (∂Ψ_h/∂(x_k, θ_k))ᵀ p_{k+1}

— one ``torch.func.vjp`` of the step map of layer k at the stored ``x_k`` (the layer's forward
is re-run inside the backward step). Only the states ``x_0..x_N`` are stored (as plain tensors,
computed under ``torch.no_grad``): no whole-network autograd tape exists at any time; at most
one layer's graph is alive during the backward sweep. Memory O(N n d) for the states plus one
layer's intermediates, against O(N × layer intermediates) for whole-network autograd.

Not a sweep of :mod:`ocdl.pmp.dispatch`: the step's transposed Jacobian is taken whole by
``torch.func.vjp`` of an arbitrary module, so there is no stage-level recursion to share with
the fused sweeps.
"""
import numpy as np

from ocdl.errors import InputError


def _step_map(module, method, h):
    """``Ψ(x, params)`` — one explicit RK step (``integrators.layers.rk_layer``) of ``module``
    with its parameters as an argument."""
    from torch.func import functional_call

    from integrators.layers import rk_layer
    return lambda x, params: rk_layer(method, lambda z: functional_call(module, params, (z,)), x, h)


def module_value_and_grad(layers, x0, loss, h, integrator="euler", increments=None, states=False):
    """``J`` and its exact gradient for the module-field network of the module docstring.

    ``layers``: a sequence (e.g. ``torch.nn.ModuleList``) of N modules, ``f_k(x)`` (n, d) → (n, d).
    ``x0``: (n, d) tensor (the lifted inputs). ``loss(x_N)`` → scalar tensor. ``h``: step size.
    ``increments``: optional (N, n, d) additive increments. Returns ``(J, grads, loss_grads[, X])``:
    ``J`` a float, ``grads[k]`` a dict ``{name: ∂J/∂θ_k[name]}`` over ``layers[k].named_parameters()``,
    ``loss_grads`` the same for ``loss`` if it is a module (else ``{}``), and with ``states=True``
    the stored states ``X`` (N+1, n, d) (plain tensors, no graph). Gradients are *returned*, not
    accumulated into ``.grad``; use :func:`set_grads` for that.
    """
    import torch
    from torch.func import vjp
    from integrators.tableaux import EXPLICIT
    if integrator not in EXPLICIT:
        raise InputError(f"the module-field costate sweep needs an explicit Runge–Kutta integrator "
                         f"({', '.join(EXPLICIT)}); got '{integrator}'")
    N = len(layers)
    if N < 1:
        raise InputError("need at least one layer")
    x0 = torch.as_tensor(x0)
    if x0.dim() != 2:
        raise InputError(f"x0 must be an (n, d) tensor (got shape {tuple(x0.shape)})")
    if increments is not None:
        increments = torch.as_tensor(increments, dtype=x0.dtype, device=x0.device)
        if tuple(increments.shape) != (N,) + tuple(x0.shape):
            raise InputError(f"increments have shape {tuple(increments.shape)}, need {(N,) + tuple(x0.shape)}")
    steps = [_step_map(mod, integrator, float(h)) for mod in layers]
    params = [{k: v.detach() for k, v in mod.named_parameters()} for mod in layers]
    # forward: states only, no tape
    X = torch.empty((N + 1,) + tuple(x0.shape), dtype=x0.dtype, device=x0.device)
    with torch.no_grad():
        X[0] = x0
        for k in range(N):
            X[k + 1] = steps[k](X[k], params[k])
            if increments is not None:
                X[k + 1] += increments[k]
    # terminal costate p_N = ∂J/∂x_N (and the loss's own parameter gradients)
    xN = X[N].clone().requires_grad_(True)
    with torch.enable_grad():
        J = loss(xN)
        lp = list(loss.named_parameters()) if isinstance(loss, torch.nn.Module) else []
        gs = torch.autograd.grad(J, [xN] + [v for _, v in lp], allow_unused=True)
    p = gs[0]
    loss_grads = {name: (torch.zeros_like(v) if g is None else g) for (name, v), g in zip(lp, gs[1:])}
    # backward: one vjp of the step map per layer
    grads = [None] * N
    for k in range(N - 1, -1, -1):
        _, pullback = vjp(steps[k], X[k], params[k])
        p, grads[k] = pullback(p)
        del pullback                       # this layer's graph goes before the next is built
    out = (float(J.detach()), grads, loss_grads)
    return out + (X,) if states else out


def module_objective(layers, x0, loss, h, integrator="euler"):
    """``(objective, theta0)`` for a flat-vector optimiser (``ocdl.optim.minimize``):
    ``objective(theta, batch=None) -> (J, g)`` with ``theta`` the float64 numpy vector of all
    parameters (``layers[0..N−1]`` then ``loss`` if it is a module, each in ``named_parameters``
    order), ``g`` the exact costate gradient of :func:`module_value_and_grad`; ``theta`` is
    written into the modules before each evaluation. ``theta0`` is their current value."""
    import torch
    mods = list(layers) + ([loss] if isinstance(loss, torch.nn.Module) else [])
    tensors = [v for mod in mods for v in mod.parameters()]

    def objective(theta, batch=None):
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(torch.as_tensor(np.asarray(theta, dtype=float)).to(
                tensors[0]), tensors)
        J, grads, lgrads = module_value_and_grad(layers, x0, loss, h, integrator=integrator)
        return J, np.concatenate([flat(grads)] + ([flat([lgrads])] if lgrads else []))

    return objective, torch.nn.utils.parameters_to_vector(tensors).detach().cpu().numpy().astype(float)


def set_grads(modules_and_grads):
    """Write returned gradients into ``.grad``: ``[(module, {name: grad}), ...]``."""
    for module, g in modules_and_grads:
        for name, v in module.named_parameters():
            v.grad = g[name].detach().clone()


def flat(grads):
    """Per-layer gradient dicts (in ``named_parameters`` order) → one flat float64 numpy vector."""
    return np.concatenate([g.detach().cpu().numpy().ravel() for d in grads for g in d.values()])
