"""The fused form of a field, shared by the compiled sweeps (:mod:`ocdl.pmp.compiled`) and the
torch sweeps (:mod:`ocdl.pmp.torch_sweeps`): the one definition of the gradient formula,
and of the costate coefficients of an explicit Runge–Kutta tableau (:func:`rk_coefficients`).

A field of form ``outer`` is ``f = M [σ(x); 1]``, of form ``inner`` ``f = D ⊙ σ(M [x; 1])``, with
``M = [K̃ | b̃]`` the field's embedding of ``(K, b)`` (``F.embed``) and ``D`` its output signs
(``F.out_sign``; None = ones; hamiltonian ``[1; −1]``). The backward sweeps contract with
``h M_xᵀ D`` (``(∂f/∂x)ᵀ p = M_xᵀ D (σ' ⊙ p)``, D diagonal) and read the θ-gradient back from
``∂J/∂M = D ⊙ h Σ U [a; 1]ᵀ`` through ``F.theta_grads``. Every function takes numpy arrays or
torch tensors alike.
"""
import functools

import numpy as np

from integrators.tableaux import costate_coefficients, tableau
from ocdl.models.backend import contiguous, is_torch, swap
from ocdl.models.fields import Field


@functools.cache
def rk_coefficients(method):
    """``(A, b, C, Ĉ)`` of the explicit Runge–Kutta method ``method`` (read-only arrays, cached):
    the tableau, the costate coefficients ``C_ij = â_ij − b_j`` of its adjoint partner
    (``integrators.tableaux.costate_coefficients``: ``P_i = p_{k+1} − h Σ_{j>i} C_ij
    (∂f/∂x(Y_j))ᵀ P_j``) and the weighted form ``Ĉ_ij = −b_i C_ij / b_j`` (explicit: ``= a_ji``
    for j > i; None if some ``b_j = 0``) of the compiled kernels, whose stage costates carry ``b_i``."""
    A, b, _ = tableau(method)
    C = costate_coefficients(A, b)
    Ch = None if np.any(b == 0.0) else np.ascontiguousarray(-b[:, None] * C / b[None, :])
    for a in (A, b, C, Ch):
        if a is not None:
            a.flags.writeable = False
    return A, b, C, Ch


def embed(model, params):
    """``(M, D)``: ``M`` (N, d, d+1) the per-layer affine map on ``[a; 1]`` and ``D`` ((d, 1)
    output signs of the inner form, or None), both in the library (and device) of ``params["K"]``."""
    F = model.F
    M = F.embed(params["K"], params["b"])
    D = F.out_sign(model.d)
    if D is None:
        return M, None
    if is_torch(M):
        import torch
        D = torch.as_tensor(D, dtype=M.dtype, device=M.device)
    return M, D[:, None]


def hKT(model, M, D):
    """``h M_xᵀ D`` (N, d, d): the x-contraction matrix of the backward sweeps."""
    out = contiguous(swap(M[:, :, :model.d])) * model.h
    if D is not None:
        out *= D[:, 0][None, None, :]
    return out


def outer_parts(model, params):
    """``(K̃, h b̃, h K̃ᵀ)`` (numpy, contiguous) of an outer-form field with ``M = [K̃ | b̃]`` =
    ``F.embed(K, b)`` — the compiled kernels' operands (``hK̃ᵀ`` is :func:`hKT`; D is None for the
    outer form). M is not formed (nor K copied, if contiguous) when the field keeps the plain
    embedding ``[K | b]``."""
    K, b = params["K"], params["b"]
    d, h = model.d, model.h
    if type(model.F).embed is not Field.embed:
        M = model.F.embed(K, b)
        K, b = M[:, :, :d], M[:, :, d]
    KT = np.empty(K.shape[:1] + K.shape[2:0:-1])
    np.multiply(np.swapaxes(K, 1, 2), h, out=KT)               # h K̃ᵀ, one pass
    return np.ascontiguousarray(K), np.multiply(b, h), KT


def outer_theta_grads(model, gK, gb):
    """``(∂J/∂K, ∂J/∂b)`` from the outer form's ``∂J/∂[K̃ | b̃]`` given as its two parts (the
    row-form kernels' output): the parts themselves for the plain embedding ``[K | b]``, else the
    field's ``theta_grads`` of the joined ``∂J/∂M``."""
    if type(model.F).embed is Field.embed and type(model.F).theta_grads is Field.theta_grads:
        return gK, gb
    return model.F.theta_grads(np.concatenate([gK, gb[:, :, None]], axis=2))


def theta_grads(model, gM, D):
    """``(∂J/∂K, ∂J/∂b)`` from the contraction ``gM = h Σ U [a; 1]ᵀ`` (rows scaled in place by the
    output signs D first: ``∂J/∂M = D ⊙ gM``), through the field's ``theta_grads``."""
    if D is not None:
        gM *= D[None]
    return model.F.theta_grads(gM)


def split_theta_grads(model, params, G, subs):
    """``(∂J/∂K, ∂J/∂b)`` of a splitting network (hamiltonian field) from ``G`` (N, L, m, d+1),
    ``G[:, j] = ch_j Σ U [q; p; 1]ᵀ`` of sub-step ``j``, summed through the field's
    ``half_theta_grads`` (which half of ``(K, b)`` the sub-step's matrix holds)."""
    if is_torch(G):
        import torch
        zeros = torch.zeros_like
    else:
        zeros = np.zeros_like
    gK, gb = zeros(params["K"]), zeros(params["b"])
    for j, (kind, _) in enumerate(subs):
        tK, tb = model.F.half_theta_grads(kind, G[:, j])
        gK += tK
        gb += tb
    return gK, gb
