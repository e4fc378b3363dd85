"""``ODEBlock`` and ``ConvODEBlock``: ``torch.nn.Module``\\ s whose backward is the exact discrete costate sweep.

A block is the state map of a ResNet-ODE without lift and head,

    x_0 = x (the input, the whole initial state),   x_{k+1} = Ψ_h(x_k; θ_k)  (k = 0..N−1, h = T/N),
    forward(x) = x_N,

``Ψ_h`` one step of the integrator for the field ``ẋ = f(x, θ_k)`` (:mod:`ocdl.models.fields`,
:mod:`ocdl.models.conv`; the parameters ``K`` (N, …) and ``b`` (N, …) in the field's convention).

**Backward.** For an incoming gradient ``v = ∂ℓ/∂x_N`` (any scalar ℓ downstream) the discrete
costate of the linear terminal cost ``⟨v, x_N⟩`` gives both gradients at once
(:func:`ocdl.pmp.vjp`):

    p_N = v,   p_k = (∂Ψ_h/∂x_k)ᵀ p_{k+1}   (the adjoint-partner sweep; Euler: p_k = p_{k+1} + h (∂f/∂x(x_k))ᵀ p_{k+1}),
    ∂ℓ/∂x = p_0,   ∂ℓ/∂θ_k = (∂Ψ_h/∂θ_k)ᵀ p_{k+1}   (Euler: h (∂f/∂θ(x_k))ᵀ p_{k+1}).

That is the exact gradient of the discrete map — equal to autograd through the same explicit steps
to round-off — without an autograd tape over the layers: ``forward`` runs the forward sweep once,
keeping what the costate sweep reads (σ of every layer or stage, in the model's sweep workspace),
and ``backward`` runs the costate sweep from those stored stages — the forward is not re-run and
no state or costate trajectory is assembled; it returns ``p_0`` and the parameter gradients. So
memory is the stored stages, O(N n d) floats, plus one layer's work arrays, with no
per-operation tape. Under ``torch.no_grad()``, or when nothing requires grad, the forward is the
cost-only sweep and stores nothing. A second backward through one forward (``retain_graph``)
raises: the stored stages are consumed by the first.

**Where it runs.** On CPU tensors the compiled sweeps (numba kernels on numpy copies,
:mod:`ocdl.pmp.compiled`); on CUDA tensors the torch sweeps of :mod:`ocdl.pmp.torch_sweeps` on the
tensor's device (the conv fields and the implicit methods have none: they run the CPU sweep on
a copy). The sweeps work in float64; float32 inputs and parameters are promoted for the sweep
and the results cast back (so float32 gradients are the float64 ones rounded).

**torch.func.** ``torch.func.grad`` / ``vjp`` over a block are not supported (the sweep leaves
torch for numpy): they raise :class:`NotImplementedError` saying so. Use ``loss.backward()`` or
``torch.autograd.grad``.
"""
import os

import numpy as np
import torch

from ocdl import pmp
from ocdl.errors import InputError
from ocdl.models.resnet import EXPLICIT_METHODS, SPLITTINGS, ResNetODE, exact_integrators


def _in_functorch(*tensors):
    """True inside a ``torch.func`` transform (its wrapped tensors cannot reach numpy)."""
    try:
        from torch._C._functorch import is_functorch_wrapped_tensor
    except ImportError:                             # pragma: no cover - older torch
        return False
    return any(is_functorch_wrapped_tensor(t) for t in tensors)


class _CostateSweep(torch.autograd.Function):
    """``x ↦ x_N`` with the costate sweep as its backward (see the module docstring): the forward
    keeps the sweep's pullback (:func:`ocdl.pmp.vjp`, holding the stored stages), the backward
    calls it once."""

    @staticmethod
    def forward(ctx, x, K, b, block):
        xN, pullback = block._forward_stored(x, K, b)
        ctx.pullback = pullback
        ctx.like = tuple((t.dtype, t.device) for t in (x, K, b))
        return xN

    @staticmethod
    def backward(ctx, v):
        if ctx.pullback is None:
            raise RuntimeError("ODEBlock: a second backward through one forward is not supported "
                               "(the costate sweep consumed the stored stages); run the forward again")
        pullback, ctx.pullback = ctx.pullback, None
        gx, gK, gb = _Block._backward(pullback, v, ctx.like, ctx.needs_input_grad)
        return gx, gK, gb, None


class _Block(torch.nn.Module):
    """What :class:`ODEBlock` and :class:`ConvODEBlock` share: the ResNet-ODE they run (``model``,
    whole-state input, no regulariser), the parameters, the forward/backward sweeps and the
    model-file conversions."""

    def _setup(self, model_kwargs, dtype, device, seed, scale):
        field, integrator = model_kwargs["field"], model_kwargs["integrator"]
        model = ResNetODE(n_classes=2, alpha=0.0, beta=0.0, alpha_head=0.0, **model_kwargs)
        exact = exact_integrators(field)
        if integrator not in exact:
            raise InputError(f"no exact costate sweep for integrator '{integrator}' on the {field} field "
                             f"(there is one for {', '.join(exact)})")
        self.model = model
        if seed is None:
            seed = int(torch.randint(0, 2 ** 31 - 1, (1,)).item())    # follows torch.manual_seed
        K, b = model.F.init_theta(np.random.default_rng(seed), model.layers, model.m, scale)
        dtype = torch.get_default_dtype() if dtype is None else dtype
        self.K = torch.nn.Parameter(torch.as_tensor(K, dtype=dtype, device=device))
        self.b = torch.nn.Parameter(torch.as_tensor(b, dtype=dtype, device=device))

    # -------------------------------------------------------------------- configuration
    @property
    def field(self):
        return self.model.field

    @property
    def integrator(self):
        return self.model.integrator

    @property
    def activation(self):
        return self.model.activation

    @property
    def layers(self):
        return self.model.layers

    @property
    def T(self):
        return self.model.T

    @property
    def h(self):
        """The step ``h = T / layers``."""
        return self.model.h

    def extra_repr(self):
        return (f"field={self.field!r}, integrator={self.integrator!r}, activation={self.activation!r}, "
                f"layers={self.layers}, T={self.T}, state={self.state_shape}")

    # -------------------------------------------------------------------- forward / backward
    def forward(self, x):
        """``x_N`` for the input ``x`` of shape ``(n,) + state_shape`` (same shape, dtype and device)."""
        shape = tuple(x.shape[1:])
        if x.dim() < 2 or shape != self.state_shape:
            raise InputError(f"{type(self).__name__} takes (samples,) + {self.state_shape} inputs "
                             f"(got shape {tuple(x.shape)})")
        x2 = x.reshape(x.shape[0], -1)
        if _in_functorch(x, self.K, self.b):
            raise NotImplementedError(f"torch.func transforms (grad, vjp, vmap, jacrev) cannot see through "
                                      f"{type(self).__name__}: its backward is the costate sweep, outside torch. "
                                      f"Use loss.backward() or torch.autograd.grad.")
        if torch.is_grad_enabled() and (x.requires_grad or self.K.requires_grad or self.b.requires_grad):
            xN = _CostateSweep.apply(x2, self.K, self.b, self)
        else:
            xN = self._final_state(x2, self.K, self.b)
        return xN.reshape(x.shape)

    def _on_device(self, t):
        """True when the torch sweeps on ``t``'s device are the ones to run (CUDA, and the model has them)."""
        return t.device.type != "cpu" and self.model.F.form in ("outer", "inner") and \
            (self.integrator in EXPLICIT_METHODS or self.integrator in SPLITTINGS)

    def _params(self, x, K, b):
        """The sweep's inputs: float64 numpy arrays (CPU sweeps) or float64 tensors on x's device."""
        if self._on_device(x):
            def conv(t):
                return t.detach().to(torch.float64)
        else:
            def conv(t):
                return t.detach().to(device="cpu", dtype=torch.float64).numpy()
        X = conv(x)
        head = {"W": np.zeros((1, self.model.d)), "mu": np.zeros(1)}
        if not isinstance(X, np.ndarray):
            head = {k: torch.as_tensor(v, device=x.device) for k, v in head.items()}
        return {"K": conv(K), "b": conv(b), **head}, X

    @staticmethod
    def _back(a, like):
        """A sweep result (numpy or tensor) as a tensor of ``like``'s dtype and device."""
        a = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
        return a.to(device=like.device, dtype=like.dtype)

    def _final_state(self, x, K, b):
        params, X = self._params(x, K, b)
        return self._back(pmp.final_state(self.model, params, X), x)

    def _forward_stored(self, x, K, b):
        """``(x_N, pullback)``: the forward sweep keeping what the costate sweep reads
        (:func:`ocdl.pmp.vjp`)."""
        params, X = self._params(x, K, b)
        xN, pullback = pmp.vjp(self.model, params, X)
        return self._back(xN, x), pullback

    @staticmethod
    def _backward(pullback, v, like, needs):
        """``(∂ℓ/∂x, ∂ℓ/∂K, ∂ℓ/∂b)`` for ``v = ∂ℓ/∂x_N``: the costate sweep from the stored
        stages, ``∂ℓ/∂x = p_0`` (None where ``needs`` says no gradient is wanted); ``like`` the
        ``(dtype, device)`` of x, K, b."""
        p0, grads = pullback(v.detach().to(torch.float64))

        def back(a, i):
            if not needs[i]:
                return None
            a = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
            return a.to(device=like[i][1], dtype=like[i][0])
        return back(p0, 0), back(grads["K"], 1), back(grads["b"], 2)

    # -------------------------------------------------------------------- model files
    def to_model(self, head=None, path=None, info=None):
        """The block as an ocdl classifier ``(model, params)`` — a :class:`~ocdl.models.ResNetODE`
        whose input is the whole initial state (``d_in = d``, lift = identity) and whose head
        ``W x_N + μ`` is ``head`` (a ``torch.nn.Linear(d, C')``, C' = 1 for two classes, C' = C ≥ 3
        classes; None: a zero two-class head) — written as a model file to ``path`` when given
        (what ``ocdl predict --model`` reads; its data are the flattened block inputs, n × d)."""
        d = self.model.d
        if head is None:
            W, mu = np.zeros((1, d)), np.zeros(1)
        else:
            if not isinstance(head, torch.nn.Linear) or head.in_features != d:
                raise InputError(f"head must be a torch.nn.Linear({d}, C') (got {head!r})")
            W = head.weight.detach().cpu().double().numpy()
            mu = (head.bias.detach().cpu().double().numpy() if head.bias is not None
                  else np.zeros(head.out_features))
        n_out = W.shape[0]
        if n_out == 2:
            raise InputError("a two-class head has one logit (torch.nn.Linear(d, 1)); ocdl's two-class "
                             "model is the logistic one")
        cfg = dict(self.model.config())
        cfg.update(d_in=d, n_classes=2 if n_out == 1 else n_out, alpha=0.0, beta=0.0, alpha_head=0.0)
        model = ResNetODE(**cfg)
        params = {"K": self.K.detach().cpu().double().numpy().copy(),
                  "b": self.b.detach().cpu().double().numpy().copy(), "W": W, "mu": mu}
        if path is not None:
            from ocdl.data.modelfile import save_model
            save_model(path, model, params, info=info)
        return model, params

    @classmethod
    def _model_and_params(cls, model, params):
        if isinstance(model, (str, os.PathLike)):
            from ocdl.data.modelfile import load_model
            model, params, _ = load_model(model)
        if params is None:
            raise InputError("from_model needs the parameters: from_model(model, params) or from_model(path)")
        return model, params

    @classmethod
    def from_model(cls, model, params=None, dtype=None, device=None):
        """The block of an ocdl classifier: ``model`` a model file's path (``ocdl train --save``,
        :meth:`to_model`) or a :class:`~ocdl.models.ResNetODE` with its ``params``. The block runs
        the model's layers on the lifted state; :func:`ocdl.nn.from_model` gives lift, block and
        head as one ``nn.Sequential``."""
        model, params = cls._model_and_params(model, params)
        block = cls._from_config(model, dtype or torch.get_default_dtype(), device)
        with torch.no_grad():
            block.K.copy_(torch.as_tensor(np.asarray(params["K"], dtype=float)))
            block.b.copy_(torch.as_tensor(np.asarray(params["b"], dtype=float)))
        return block


class ODEBlock(_Block):
    """A residual network ``x_{k+1} = Ψ_h(x_k; K_k, b_k)`` on ``(n, width)`` inputs as a
    ``torch.nn.Module`` whose backward is the exact discrete costate sweep (module docstring).

    ``field``: ``"outer"`` (f = K σ(x) + b), ``"inner"`` (f = σ(K x + b)) or ``"hamiltonian"``
    (x = (q, p), q̇ = σ(K p + b), ṗ = −σ(Kᵀ q + b); even width, K and b of size width/2);
    ``integrator``: ``euler``, ``heun``, ``rk4``, and on the hamiltonian field the splittings
    ``symplectic_euler``, ``symplectic_euler_b``, ``verlet``, ``yoshida4`` (symplectic), plus the
    implicit ones with an exact sweep (``implicit_midpoint``, ``gauss2``, ``gauss3``; CPU).

    Parameters ``K`` ((layers, m, m), m = width or width/2) and ``b`` ((layers, m)) are
    ``nn.Parameter``\\ s, initialised as ``ocdl.train`` does (K ~ N(0, scale²/m), b ~ N(0, 0.1²))
    from ``seed`` (None: drawn from torch's generator, so ``torch.manual_seed`` fixes it).
    """

    def __init__(self, width, layers=20, T=5.0, field="outer", integrator="euler", activation="tanh",
                 *, seed=None, scale=1.0, dtype=None, device=None):
        super().__init__()
        if field not in ("outer", "inner", "hamiltonian"):
            raise InputError(f"ODEBlock takes the fields outer, inner, hamiltonian (got '{field}'; "
                             f"the conv fields are ConvODEBlock's)")
        self._setup(dict(field=field, d_in=int(width), width=int(width), layers=layers, T=T,
                         integrator=integrator, activation=activation), dtype, device, seed, scale)
        self.width = int(width)

    @property
    def state_shape(self):
        return (self.width,)

    @classmethod
    def _from_config(cls, model, dtype, device):
        if getattr(model.F, "conv", False):
            raise InputError(f"the model has the {model.field} field: use ConvODEBlock.from_model")
        return cls(model.d, layers=model.layers, T=model.T, field=model.field, integrator=model.integrator,
                   activation=model.activation, seed=0, dtype=dtype, device=device)


class ConvODEBlock(_Block):
    """The convolutional block on ``(n, C_state) + shape`` inputs: ``field="conv"``
    (f = σ(K ∗ x + b), C_state = channels) or ``"hamiltonian-conv"`` (x = (q, p) with ``channels``
    channels each, C_state = 2 channels; q̇ = σ(K ∗ p + b), ṗ = −σ(Kᵀ ∗ q + b); the splittings
    apply) — same-size zero-padded cross-correlation as ``torch.nn.functional.conv1d`` (``conv2d``
    for a 2-D ``length``), kernel ``K`` ((layers, C, C, k[, k])), bias ``b`` ((layers, C)), one per
    channel (:mod:`ocdl.models.conv`). ``length``: the positions L, or ``(H, W)`` for images.
    Integrators: ``euler``, ``heun``, ``rk4`` (and the splittings on ``hamiltonian-conv``); CPU sweeps.
    """

    def __init__(self, channels, length, layers=8, T=4.0, field="conv", integrator="euler", activation="tanh",
                 kernel=5, *, seed=None, scale=1.0, dtype=None, device=None):
        super().__init__()
        if field not in ("conv", "hamiltonian-conv"):
            raise InputError(f"ConvODEBlock takes the fields conv, hamiltonian-conv (got '{field}')")
        shape = (int(length),) if np.ndim(length) == 0 else tuple(int(v) for v in length)
        halves = 2 if field == "hamiltonian-conv" else 1
        d = int(channels) * halves * int(np.prod(shape))
        self._setup(dict(field=field, d_in=d, layers=layers, T=T, integrator=integrator, activation=activation,
                         channels=int(channels), kernel=int(kernel), shape=shape), dtype, device, seed, scale)
        self.channels, self.shape, self.kernel = int(channels), shape, int(kernel)
        self.state_shape = (int(channels) * halves,) + shape

    @classmethod
    def _from_config(cls, model, dtype, device):
        if not getattr(model.F, "conv", False):
            raise InputError(f"the model has the {model.field} field: use ODEBlock.from_model")
        return cls(model.F.C, model.F.shape, layers=model.layers, T=model.T, field=model.field,
                   integrator=model.integrator, activation=model.activation, kernel=model.F.k, seed=0,
                   dtype=dtype, device=device)
