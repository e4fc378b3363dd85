"""Tiny array-namespace helpers so the same model code runs on numpy arrays and torch tensors.

numpy in → numpy out (float64); torch in → torch out (autograd flows through). No torch import
happens unless a tensor is passed in.
"""
import numpy as np


def is_torch(x):
    return not isinstance(x, np.ndarray) and type(x).__module__.startswith("torch")


def tanh(z):
    return np.tanh(z) if isinstance(z, np.ndarray) or np.isscalar(z) else z.tanh()


def swap(K):
    """Transpose the last two axes (K.T for a matrix)."""
    return np.swapaxes(K, -1, -2) if isinstance(K, np.ndarray) else K.transpose(-1, -2)


def concat(parts, axis=-1):
    if is_torch(parts[0]):
        import torch
        return torch.cat(parts, dim=axis)
    return np.concatenate(parts, axis=axis)


def stack(parts):
    if is_torch(parts[0]):
        import torch
        return torch.stack(parts)
    return np.stack(parts)


def zeros_like_shape(x, shape):
    if is_torch(x):
        import torch
        return torch.zeros(shape, dtype=x.dtype, device=x.device)
    return np.zeros(shape, dtype=x.dtype)


def empty(shape, like):
    """An uninitialised float array of ``shape`` in the library (and dtype, device) of ``like``."""
    if is_torch(like):
        import torch
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    return np.empty(shape)


def contiguous(a):
    """A fresh C-contiguous copy of ``a`` (never its memory: ``ascontiguousarray`` and torch's
    ``contiguous`` hand back ``a`` itself when it is contiguous already — a size-1 slice is)."""
    if is_torch(a):
        import torch
        return a.clone(memory_format=torch.contiguous_format)
    return np.array(a, order="C")


def total(x):
    """Sum of all entries as a scalar of the same library."""
    return x.sum()


def affine(x, K, b):
    """``x Kᵀ + b`` (rows of x); one fused op (``torch.addmm``) on 2-D torch tensors."""
    if is_torch(x) and x.dim() == 2:
        import torch
        return torch.addmm(b, x, K.transpose(0, 1))
    return x @ swap(K) + b


from integrators.backend import axpy  # noqa: E402,F401  (one definition: x + a y, numpy or torch)
