"""PyTorch modules backed by the costate sweep: :class:`ODEBlock`, :class:`ConvODEBlock`
(:mod:`ocdl.nn.block`), and :func:`from_model`, an ocdl model file as an ``nn.Sequential``.

Needs only torch (a dependency of ocdl). ``docs/torch.md`` is the tutorial.
"""
import numpy as np
import torch

from ocdl.nn.block import ConvODEBlock, ODEBlock

__all__ = ["ODEBlock", "ConvODEBlock", "Lift", "from_model"]


class Lift(torch.nn.Module):
    """The lift of an ocdl model as a module: ``(X − input_shift) / input_scale`` (when the model
    has a normalisation), then zero padding of the d_in features to the state width d
    (:meth:`ocdl.models.ResNetODE.lift`); no parameters."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, X):
        return self.model.lift(X)

    def extra_repr(self):
        return f"d_in={self.model.d_in}, width={self.model.d}"


def from_model(model, params=None, dtype=None, device=None):
    """An ocdl classifier (a model file's path, or a :class:`~ocdl.models.ResNetODE` and its
    ``params``) as ``nn.Sequential(Lift, block, Flatten, Linear)`` whose output is the model's
    logits ``W x_N + μ`` (one logit for two classes) — ``ocdl train``'s model inside a PyTorch
    program. The block is an :class:`ODEBlock` or a :class:`ConvODEBlock` by the model's field."""
    model, params = ODEBlock._model_and_params(model, params)
    dtype = dtype or torch.get_default_dtype()
    cls = ConvODEBlock if getattr(model.F, "conv", False) else ODEBlock
    block = cls.from_model(model, params, dtype=dtype, device=device)
    W = np.asarray(params["W"], dtype=float)
    head = torch.nn.Linear(W.shape[1], W.shape[0], dtype=dtype, device=device)
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(W))
        head.bias.copy_(torch.as_tensor(np.asarray(params["mu"], dtype=float)))
    unflatten = torch.nn.Unflatten(1, block.state_shape)
    return torch.nn.Sequential(Lift(model), unflatten, block, torch.nn.Flatten(), head)
