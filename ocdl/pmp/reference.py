"""Independent references for the costate gradient: torch autograd and finite differences."""
import numpy as np

from ocdl.models.resnet import PARAM_KEYS, to_numpy, to_torch


def autograd_value_and_grad(model, params, X, y, device="cpu"):
    """``(J, grads)`` by torch reverse-mode autograd through ``model.cost`` in float64."""
    import torch
    tp = to_torch(params, device=device, requires_grad=True)
    Xt = torch.tensor(np.asarray(X, dtype=float), dtype=torch.float64, device=device)
    J = model.cost(tp, Xt, np.asarray(y))
    J.backward()
    return float(J.detach()), to_numpy({k: tp[k].grad for k in PARAM_KEYS})


def finite_difference_directional(model, params, X, y, direction, eps=1e-6):
    """Central difference ``(J(θ + εv) − J(θ − εv)) / 2ε`` of the discrete cost along ``direction``."""
    th = model.flatten(params)
    v = model.flatten(direction)
    jp = model.cost(model.unflatten(th + eps * v), X, y)
    jm = model.cost(model.unflatten(th - eps * v), X, y)
    return float((jp - jm) / (2 * eps))
