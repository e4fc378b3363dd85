"""The few array operations the stepping loop needs, for numpy arrays and torch tensors.

States are tuples of arrays (one entry for ``y' = F(t, y)``, two for ``(q, p)``); everything
else is plain ``+`` and ``*`` on those arrays, which numpy and torch share. Torch tensors are
never detached, so autograd flows through every step.
"""
import sys

import numpy as np


def _torch():
    """The torch module if it has been imported (a tensor cannot exist otherwise); else None.
    Keeps ``import integrators`` light for numpy-only use."""
    return sys.modules.get("torch")


def is_torch(a):
    torch = _torch()
    return torch is not None and isinstance(a, torch.Tensor)


def as_state_array(a, name):
    """Return ``a`` as a floating numpy array or torch tensor (integers become float64)."""
    if is_torch(a):
        torch = _torch()
        if not torch.is_floating_point(a):
            a = a.to(torch.float64)
        return a
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        if np.issubdtype(a.dtype, np.complexfloating) or a.dtype == object:
            raise ValueError(f"{name} must be a real array, got dtype {a.dtype}")
        a = a.astype(np.float64)
    return a


def eps(a):
    """Machine epsilon of the array's dtype."""
    if is_torch(a):
        return _torch().finfo(a.dtype).eps
    return float(np.finfo(a.dtype).eps)


def max_abs(a):
    """``max |a|`` as a Python float (0 for an empty array); never part of an autograd graph."""
    if a.numel() == 0 if is_torch(a) else a.size == 0:
        return 0.0
    if is_torch(a):
        return float(a.detach().abs().max())
    return float(abs(a).max())


def all_finite(a):
    if is_torch(a):
        return bool(_torch().isfinite(a.detach()).all())
    return bool(np.isfinite(a).all())


def concat_last(a, b):
    if is_torch(a):
        return _torch().cat([a, b], dim=-1)
    return np.concatenate([a, b], axis=-1)


def stack(items):
    """Stack a list of arrays along a new leading axis (keeps the autograd graph for torch)."""
    if is_torch(items[0]):
        return _torch().stack(items)
    return np.stack(items)


def check_like(value, like, what):
    """Check that a right-hand side returned an array of the state's shape and kind."""
    if is_torch(like):
        if not is_torch(value):
            raise ValueError(f"{what} returned {type(value).__name__}; expected a torch tensor like the state")
    else:
        if is_torch(value):
            raise ValueError(f"{what} returned a torch tensor for a numpy state; return numpy arrays")
        value = np.asarray(value)
    if tuple(value.shape) != tuple(like.shape):
        raise ValueError(f"{what} returned shape {tuple(value.shape)}; expected the state's shape {tuple(like.shape)}")
    return value


_torch_mats = {}


def mix(M, F):
    """``Σ_j M_ij F_j`` for a float matrix ``M`` (m × s, numpy) and stacked stages ``F`` (s, *shape)."""
    s = F.shape[0]
    if is_torch(F):
        key = (id(M), F.dtype, F.device)
        Mt = _torch_mats.get(key)
        if Mt is None:
            Mt = _torch_mats[key] = (_torch().as_tensor(M, dtype=F.dtype, device=F.device), M)
        return (Mt[0] @ F.reshape(s, -1)).reshape((M.shape[0],) + tuple(F.shape[1:]))
    return (M @ F.reshape(s, -1)).reshape((M.shape[0],) + F.shape[1:])


def axpy(x, a, y):
    """``x + a y`` with a Python float ``a``; one op (``torch.add(alpha=a)``) on torch tensors."""
    if is_torch(x):
        return _torch().add(x, y, alpha=a)
    return x + a * y
