"""Terminal losses Φ on the head's logits ``s = W x(T) + μ`` (numpy or torch), and their gradients.

* two classes: one logit per sample, logistic loss ``Φ(s, c) = log(1 + exp(−(2c − 1) s))``;
* C > 2 classes: softmax cross-entropy ``Φ(s, c) = logsumexp(s) − s_c``.

``mean_loss(s, y)`` is ``(1/n) Σ_i Φ(s_i, c_i)``; ``mean_loss_grad(s, y)`` is its gradient in s,
i.e. ``(1/n) ∇_s Φ`` (numpy, or torch for torch logits — the device sweeps). With torch logits the
labels ``y`` may be a numpy array or a tensor on the logits' device.
"""
import numpy as np

from ocdl.models.backend import is_torch


def mean_loss(s, y):
    n = s.shape[0]
    if is_torch(s):
        import torch
        yt = y if is_torch(y) else torch.as_tensor(np.asarray(y), device=s.device)
        if s.shape[1] == 1:
            sign = (2.0 * yt.to(s.dtype) - 1.0)
            return torch.nn.functional.softplus(-sign * s[:, 0]).sum() / n
        lse = torch.logsumexp(s, dim=1)
        return (lse - s[torch.arange(n, device=s.device), yt]).sum() / n
    y = np.asarray(y)
    if s.shape[1] == 1:
        sign = 2.0 * y - 1.0
        return float(np.logaddexp(0.0, -sign * s[:, 0]).sum() / n)
    smax = s.max(axis=1, keepdims=True)
    lse = smax[:, 0] + np.log(np.exp(s - smax).sum(axis=1))
    return float((lse - s[np.arange(n), y]).sum() / n)


def mean_loss_grad(s, y):
    """Gradient of ``mean_loss`` with respect to the logits ``s`` (n, C')."""
    n = s.shape[0]
    if is_torch(s):
        return _mean_loss_grad_torch(s, y)
    y = np.asarray(y)
    if s.shape[1] == 1:
        sign = 2.0 * y - 1.0
        # d/ds log(1 + e^{-a s}) = -a σ(-a s) with σ the logistic function
        z = -sign * s[:, 0]
        sig = 0.5 * (1.0 + np.tanh(0.5 * z))   # overflow-free logistic
        return (-sign * sig / n)[:, None]
    e = np.exp(s - s.max(axis=1, keepdims=True))
    g = e / e.sum(axis=1, keepdims=True)
    g[np.arange(n), y] -= 1.0
    return g / n


def _mean_loss_grad_torch(s, y):
    """:func:`mean_loss_grad` on torch logits, the same formulas and operation order."""
    import torch
    n = s.shape[0]
    y = y if is_torch(y) else torch.as_tensor(np.asarray(y), device=s.device)
    if s.shape[1] == 1:
        sign = 2.0 * y.to(s.dtype) - 1.0
        z = -sign * s[:, 0]
        sig = 0.5 * (1.0 + torch.tanh(0.5 * z))
        return (-sign * sig / n)[:, None]
    e = torch.exp(s - s.max(dim=1, keepdim=True).values)
    g = e / e.sum(dim=1, keepdim=True)
    g[torch.arange(n, device=s.device), y] -= 1.0
    return g / n
