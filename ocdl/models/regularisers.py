"""Regularisers of the discrete cost (numpy or torch), with their numpy gradients.

``R(θ) = h Σ_k (α/2)(‖K_k‖_F² + |b_k|²) + (β/2) Σ_{k=0}^{N-2} (‖K_{k+1} − K_k‖_F² + |b_{k+1} − b_k|²)/h
        + (α_head/2) ‖W‖_F²``     (μ is not regularised).
"""
import numpy as np


def _sq(a):
    """``Σ a²`` (numpy: one BLAS dot product over the flattened array, no temporary)."""
    if isinstance(a, np.ndarray):
        return float(np.vdot(a, a))
    return (a * a).sum()


def regulariser(params, h, alpha, beta, alpha_head):
    K, b, W = params["K"], params["b"], params["W"]
    r = 0.5 * alpha * h * (_sq(K) + _sq(b)) + 0.5 * alpha_head * _sq(W)
    if beta and K.shape[0] > 1:
        r = r + 0.5 * beta / h * (_sq(K[1:] - K[:-1]) + _sq(b[1:] - b[:-1]))
    return r


def regulariser_grad(params, h, alpha, beta, alpha_head, into=None):
    """Gradients of ``regulariser`` as a dict with keys K, b, W, mu (numpy or torch, as the params);
    with ``into`` (a dict of arrays with keys K, b, W) they are added to those arrays in place
    instead (μ's gradient is zero) and ``into`` is returned."""
    K, b, W = params["K"], params["b"], params["W"]
    if into is None:
        gK = alpha * h * K
        gb = alpha * h * b
    else:
        gK, gb = into["K"], into["b"]
        gK += (alpha * h) * K
        gb += (alpha * h) * b
    if beta and K.shape[0] > 1:
        dK = (beta / h) * (K[1:] - K[:-1])
        db = (beta / h) * (b[1:] - b[:-1])
        gK[1:] += dK
        gK[:-1] -= dK
        gb[1:] += db
        gb[:-1] -= db
    if into is not None:
        into["W"] += alpha_head * W
        return into
    return {"K": gK, "b": gb, "W": alpha_head * W, "mu": 0.0 * params["mu"]}
