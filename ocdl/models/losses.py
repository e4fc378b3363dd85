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
            z = -(2.0 * yt.to(s.dtype) - 1.0) * s[:, 0]
            # log(1 + e^z) exactly (torch's softplus returns z itself beyond z = 20)
            return torch.logaddexp(torch.zeros_like(z), z).sum() / n
        lse = torch.logsumexp(s, dim=1)
        return (lse - s[torch.arange(n, device=s.device), yt]).sum() / n
    return _numpy_loss(s, y, grad=False)[0]


def mean_loss_grad(s, y):
    """Gradient of ``mean_loss`` with respect to the logits ``s`` (n, C')."""
    if is_torch(s):
        return _mean_loss_grad_torch(s, y)
    return _numpy_loss(s, y, loss=False)[1]


def mean_loss_and_grad(s, y):
    """``(mean_loss(s, y), mean_loss_grad(s, y))``; on numpy logits the exponentials are shared."""
    if is_torch(s):
        return mean_loss(s, y), mean_loss_grad(s, y)
    return _numpy_loss(s, y)


def _numpy_loss(s, y, loss=True, grad=True):
    """The numpy loss and/or its gradient (None for the one not asked for), one formula each:

    two classes, ``z = −(2c − 1) s``, ``e = exp(−|z|)`` (overflow-free):
        ``Φ = log(1 + e^z) = max(z, 0) + log1p(e)``,
        ``∂Φ/∂s = −(2c − 1) λ(z)``, ``λ(z) = 1/(1 + e^{−z})`` = ``1/(1 + e)`` (z ≥ 0), ``e/(1 + e)`` (z < 0);
    C classes, ``e_j = exp(s_j − max s)``, ``Σ = Σ_j e_j``:
        ``Φ = max s + log Σ − s_c``,  ``∂Φ/∂s_j = e_j/Σ − [j = c]``.
    """
    n = s.shape[0]
    y = np.asarray(y)
    if s.shape[1] == 1:
        nsign = 1.0 - 2.0 * y                           # −(2c − 1)
        z = nsign * s[:, 0]
        val = float(np.logaddexp(0.0, z).sum() / n) if loss else None   # max(z, 0) + log1p(e)
        if not grad:
            return val, None
        e = np.abs(z)
        np.negative(e, out=e)
        np.exp(e, out=e)
        lam = np.where(z >= 0.0, 1.0, e)
        e += 1.0
        lam /= e
        nsign *= 1.0 / n
        lam *= nsign
        return val, lam[:, None]
    smax = s.max(axis=1, keepdims=True)
    e = np.exp(s - smax)
    tot = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    val = float((smax[:, 0] + np.log(tot[:, 0]) - s[rows, y]).sum() / n) if loss else None
    if not grad:
        return val, None
    g = e / tot
    g[rows, y] -= 1.0
    g /= n
    return val, g


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
