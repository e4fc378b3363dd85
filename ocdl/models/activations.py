"""Activations σ — the one place each is defined: numpy (in place), torch and CasADi forms, and
σ' read off the stored value σ(z) so the costate sweeps never re-evaluate the activation.

* ``tanh``      σ(z) = tanh z,                σ' = 1 − σ²                       (default)
* ``softplus``  σ(z) = log(1 + e^z),          σ' = 1/(1 + e^{−z}) = 1 − e^{−σ}  (= −expm1(−σ))
* ``relu``      σ(z) = max(z, 0),             σ' = 1 if σ > 0 else 0

ReLU is not differentiable at z = 0; its derivative there is taken as **0** (``σ' = [z > 0]``),
the same convention as torch autograd, so costate gradients agree with autograd exactly.
Softplus is evaluated overflow-free as ``logaddexp(z, 0)`` (numpy and torch: smooth, so autograd
gives σ'(0) = 1/2 exactly where the zero-padded lift puts states at 0); CasADi ``log1p(e^z)``.

Each activation provides, on numpy arrays with ``out=`` buffers (the fused sweeps' kernels):

* ``apply(z, out)``            out = σ(z)
* ``deriv_inplace(s)``         s ← σ'(z) given s = σ(z)
* ``mul_deriv(s, v, out, tmp)`` out = σ'(z) ⊙ v given s = σ(z) (``out`` may be ``v``; ``tmp`` scratch)

and the first two on torch tensors (any device; the device sweeps of :mod:`ocdl.pmp.torch_sweeps`,
which form σ' of all layers at once and so need no ``mul_deriv``): ``apply_torch(z, out)``,
``deriv_inplace_torch(s)``. Also ``torch(z)`` (autograd form), ``casadi(z)``
and ``__call__`` (numpy or torch, by the argument's type).

The compiled sweeps (:mod:`ocdl.pmp.kernels`) are built from ``compiled()``: the pair of
numba-compilable scalar functions ``(σ(z), σ'(z) v given s = σ(z))``, or None (then the torch
sweeps run on the CPU instead).
"""
import numpy as np

from ocdl.errors import check_choice
from ocdl.models.backend import is_torch


class Activation:
    name = None

    @staticmethod
    def compiled():
        """``(value(z), mul_deriv(s, v))`` scalar functions for the compiled sweeps, or None."""
        return None

    def __call__(self, z):
        if is_torch(z):
            return self.torch(z)
        z = np.asarray(z, dtype=float)
        return self.apply(z, np.empty_like(z))

    def deriv(self, z):
        """σ'(z) (numpy), through the value: ``deriv_inplace(σ(z))``."""
        s = self(z)
        self.deriv_inplace(s)
        return s

    def __repr__(self):
        return f"<activation {self.name}>"


def _tanh_mul_deriv(s, v):
    return (1.0 - s * s) * v


def _softplus(z):
    return max(z, 0.0) + np.log1p(np.exp(-abs(z)))      # logaddexp(z, 0)


def _softplus_mul_deriv(s, v):
    return -np.expm1(-s) * v


def _relu(z):
    return max(z, 0.0)


def _relu_mul_deriv(s, v):
    return v if s > 0.0 else 0.0


class Tanh(Activation):
    name = "tanh"

    @staticmethod
    def compiled():
        from ocdl.models.fastmath import tanh            # branch-free, vectorisable (numba)
        return tanh, _tanh_mul_deriv

    @staticmethod
    def apply(z, out):
        return np.tanh(z, out=out)

    @staticmethod
    def deriv_inplace(s):
        np.multiply(s, s, out=s)
        np.subtract(1.0, s, out=s)
        return s

    @staticmethod
    def mul_deriv(s, v, out, tmp):
        # v − σ² v  (= (1 − σ²) v; this order of operations is the historical one)
        np.multiply(s, s, out=tmp)
        np.multiply(tmp, v, out=tmp)
        np.subtract(v, tmp, out=out)
        return out

    @staticmethod
    def apply_torch(z, out):
        import torch
        return torch.tanh(z, out=out)

    @staticmethod
    def deriv_inplace_torch(s):
        s.mul_(s)
        s.neg_()
        s.add_(1.0)                              # 1 − σ² (negation exact: same value as numpy's)
        return s

    @staticmethod
    def torch(z):
        return z.tanh()

    @staticmethod
    def casadi(z):
        import casadi as ca
        return ca.tanh(z)


class Softplus(Activation):
    name = "softplus"

    @staticmethod
    def compiled():
        return _softplus, _softplus_mul_deriv

    @staticmethod
    def apply(z, out):
        return np.logaddexp(z, 0.0, out=out)     # log(e^z + e^0), overflow-free

    @staticmethod
    def deriv_inplace(s):
        np.negative(s, out=s)
        np.expm1(s, out=s)
        np.negative(s, out=s)                    # 1 − e^{−σ}
        return s

    @staticmethod
    def mul_deriv(s, v, out, tmp):
        np.negative(s, out=tmp)
        np.expm1(tmp, out=tmp)
        np.multiply(tmp, v, out=out)
        np.negative(out, out=out)
        return out

    @staticmethod
    def apply_torch(z, out):
        import torch
        return torch.logaddexp(z, torch.zeros((), dtype=z.dtype, device=z.device), out=out)

    @staticmethod
    def deriv_inplace_torch(s):
        s.neg_()
        s.expm1_()
        s.neg_()                                 # 1 − e^{−σ}
        return s

    @staticmethod
    def torch(z):
        import torch
        return torch.logaddexp(z, torch.zeros_like(z))      # autograd: σ'(z) = 1/(1 + e^{−z}) everywhere

    @staticmethod
    def casadi(z):
        # smooth everywhere (a max/abs form would give a wrong derivative at z = 0, which the
        # zero-padded lift hits exactly); overflows to inf only for z > 709
        import casadi as ca
        return ca.log1p(ca.exp(z))


class ReLU(Activation):
    name = "relu"

    @staticmethod
    def compiled():
        return _relu, _relu_mul_deriv

    @staticmethod
    def apply(z, out):
        return np.maximum(z, 0.0, out=out)

    @staticmethod
    def deriv_inplace(s):
        np.greater(s, 0.0, out=s, casting="unsafe")
        return s

    @staticmethod
    def mul_deriv(s, v, out, tmp):
        np.greater(s, 0.0, out=tmp, casting="unsafe")
        np.multiply(tmp, v, out=out)
        return out

    @staticmethod
    def apply_torch(z, out):
        import torch
        return torch.clamp(z, min=0.0, out=out)

    @staticmethod
    def deriv_inplace_torch(s):
        return s.gt_(0.0)                        # 1.0 where σ > 0, else 0.0

    @staticmethod
    def torch(z):
        import torch
        return torch.relu(z)

    @staticmethod
    def casadi(z):
        import casadi as ca
        return ca.if_else(z > 0, z, 0)          # derivative at 0 is 0, as in the numpy/torch forms


ACTIVATIONS = {a.name: a for a in (Tanh(), Softplus(), ReLU())}


def get_activation(act):
    """An :class:`Activation` from its name (or itself); unknown names raise InputError."""
    if isinstance(act, Activation):
        return act
    check_choice("activation", act, list(ACTIVATIONS))
    return ACTIVATIONS[act]
