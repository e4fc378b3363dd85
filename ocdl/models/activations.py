"""Activations σ — the one place each is defined. An activation object carries everything about
itself; nothing elsewhere in ocdl branches on its name.

* ``tanh``      σ(z) = tanh z,                σ' = 1 − σ²                       (default)
* ``softplus``  σ(z) = log(1 + e^z),          σ' = 1/(1 + e^{−z}) = 1 − e^{−σ}  (= −expm1(−σ))
* ``relu``      σ(z) = max(z, 0),             σ' = 1 if σ > 0 else 0

ReLU is not differentiable at z = 0; its derivative there is taken as **0** (``σ' = [z > 0]``),
the same convention as torch autograd, so costate gradients agree with autograd exactly.
Softplus is evaluated overflow-free as ``logaddexp(z, 0)`` (numpy and torch: smooth, so autograd
gives σ'(0) = 1/2 exactly where the zero-padded lift puts states at 0); CasADi ``log1p(e^z)``.

**What an activation defines** (a new one subclasses :class:`Activation`, defines the first three
and is decorated with :func:`register`; CONTRIBUTING.md walks through an example):

* ``value(z, xp)``             σ(z) written once for the array library ``xp`` (numpy or torch);
* ``deriv_from_value(s, xp)``  σ'(z) as a function of ``s = σ(z)``: the costate sweeps keep σ,
                               never z, so σ' must be a function of σ (true for tanh, softplus,
                               relu, arctan, the logistic; not for sin or GELU);
* ``casadi(z)``                σ as a CasADi expression (newton, ipopt, shooting);
* ``antiderivative(z)``        A with A' = σ, A(0) = 0, numpy — optional; the hamiltonian
                               field's conserved energy needs it;
* ``derivatives(z)``           ``(σ, σ', σ'', σ''')`` numpy, for the Gaussian closure of
                               :mod:`ocdl.meanfield.lagrangian` — by default torch autograd of
                               ``value``; the built-in activations give closed forms;
* ``compiled()``               the compiled backend's code for σ: the pair of numba-compilable
                               scalar functions ``(σ(z), σ'(z)·v given s = σ(z))`` the kernels of
                               :mod:`ocdl.pmp.kernels` are built from — optional; None (the
                               default) runs the torch sweeps on the CPU instead.

From these the base class derives the forms the sweeps call — numpy with ``out=`` buffers:
``apply(z, out)`` (out = σ(z)), ``deriv_inplace(s)`` (s ← σ'(z) given s = σ(z)),
``mul_deriv(s, v, out, tmp)`` (out = σ'(z) ⊙ v given s = σ(z); ``out`` may be ``v``, ``tmp`` is
scratch); torch (any device; the sweeps of :mod:`ocdl.pmp.torch_sweeps`): ``apply_torch(z, out)``,
``deriv_inplace_torch(s)``; and ``torch(z)`` (autograd
form), ``deriv(z)`` (numpy σ'), ``__call__`` (numpy or torch, by the argument's type). The
built-in activations override them with hand-written in-place kernels (same values).
"""
import numpy as np

from ocdl.errors import check_choice
from ocdl.models.backend import is_torch


class Activation:
    """Base class; see the module docstring for what a subclass defines."""
    name = None

    # ------------------------------------------------------------ what a subclass defines
    def value(self, z, xp):
        raise NotImplementedError(f"activation {self.name}: value(z, xp)")

    def deriv_from_value(self, s, xp):
        raise NotImplementedError(f"activation {self.name}: deriv_from_value(s, xp)")

    def casadi(self, z):
        raise NotImplementedError(f"activation {self.name}: casadi(z)")

    antiderivative = None        # optional: numpy A(z), A' = σ, A(0) = 0

    def derivatives(self, z):
        """``(σ, σ', σ'', σ''')`` at ``z`` (numpy), by torch autograd of :meth:`value`."""
        import torch
        zt = torch.tensor(np.asarray(z, dtype=float), dtype=torch.float64, requires_grad=True)
        out = [self.value(zt, torch)]
        for _ in range(3):
            g, = torch.autograd.grad(out[-1].sum(), zt, create_graph=True, allow_unused=True)
            out.append(torch.zeros_like(zt) if g is None else g)
        return tuple(o.detach().numpy().astype(float) for o in out)

    # ------------------------------------------------------------ derived forms
    def apply(self, z, out):
        np.copyto(out, self.value(z, np))
        return out

    def deriv_inplace(self, s):
        np.copyto(s, self.deriv_from_value(s, np))
        return s

    def mul_deriv(self, s, v, out, tmp):
        np.multiply(self.deriv_from_value(s, np), v, out=out)
        return out

    def apply_torch(self, z, out):
        import torch
        return out.copy_(self.value(z, torch))

    def deriv_inplace_torch(self, s):
        import torch
        return s.copy_(self.deriv_from_value(s, torch))

    def torch(self, z):
        import torch
        return self.value(z, torch)

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


#: the registry: name → activation object (:func:`register` adds to it)
ACTIVATIONS = {}


def register(cls):
    """Class decorator (or call with an instance): add the activation to :data:`ACTIVATIONS` under
    its ``name``; every model, solver and CLI choice list reads that table."""
    act = cls() if isinstance(cls, type) else cls
    if not isinstance(act, Activation) or not act.name:
        raise TypeError("register() needs an Activation subclass with a name")
    ACTIVATIONS[act.name] = act
    return cls


def unregister(name):
    """Remove an activation from :data:`ACTIVATIONS` (tests that register a toy one)."""
    ACTIVATIONS.pop(name, None)


@register
class Tanh(Activation):
    name = "tanh"

    def value(self, z, xp):
        return xp.tanh(z)

    def deriv_from_value(self, s, xp):
        return 1.0 - s * s

    @staticmethod
    def antiderivative(z):
        a = np.abs(z)
        return a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)     # overflow-free log cosh z

    def derivatives(self, z):
        th = np.tanh(z)
        s2 = 1.0 - th * th
        d1 = -2.0 * s2 * th                                       # tanh'' = (sech²)'
        return th, s2, d1, -2.0 * s2 * (s2 - 2.0 * th * th)       # tanh''' = (sech²)''

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


@register
class Softplus(Activation):
    name = "softplus"

    def value(self, z, xp):
        return xp.logaddexp(z, xp.zeros_like(z))

    def deriv_from_value(self, s, xp):
        return -xp.expm1(-s)                     # 1 − e^{−σ}

    @staticmethod
    def antiderivative(z):
        from scipy.special import spence                        # spence(1 − w) = Li₂(w)
        return spence(2.0) - spence(1.0 + np.exp(z))            # −Li₂(−e^z) + Li₂(−1)

    def derivatives(self, z):
        from scipy.special import expit
        e = expit(z)                                              # σ' = logistic
        d2 = e * (1.0 - e)
        return np.logaddexp(z, 0.0), e, d2, d2 * (1.0 - 2.0 * e)

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


@register
class ReLU(Activation):
    name = "relu"

    def value(self, z, xp):
        return z * (z > 0)

    def deriv_from_value(self, s, xp):
        return (s > 0) * 1.0

    @staticmethod
    def antiderivative(z):
        return 0.5 * np.maximum(z, 0.0) ** 2

    def derivatives(self, z):
        z = np.asarray(z, dtype=float)
        zero = np.zeros_like(z)
        return np.maximum(z, 0.0), (z > 0).astype(float), zero, zero.copy()

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


def get_activation(act):
    """An :class:`Activation` from its name (or itself); unknown names raise InputError."""
    if isinstance(act, Activation):
        return act
    check_choice("activation", act, list(ACTIVATIONS))
    return ACTIVATIONS[act]
