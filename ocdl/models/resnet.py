"""The ResNet-ODE classifier: lifted inputs, a controlled ODE discretised by a one-step method,
and a linear head.

    x_i(0) = lift(y_i),   x_{k+1} = Ψ_h(x_k; θ_k)  (k = 0..N−1, h = T/N),   logits = W x_N + μ

``Ψ_h`` is one step of the chosen integrator for ``ẋ = f(x, θ_k)`` with θ_k = (K_k, b_k) held
constant on layer k. Explicit Runge–Kutta methods (``euler`` = the classic ResNet, ``heun``,
``rk4``) apply to every field; the splitting methods apply to the separable ``hamiltonian``
field (drift ``q += c h F_q(p)``, kick ``p += c h F_p(q)``), with the conventions of the
``integrators`` package: ``symplectic_euler`` = kick h then drift h (p explicit with the old q),
``symplectic_euler_b`` = drift then kick, ``verlet`` = position form (drift h/2, kick h,
drift h/2), ``yoshida4`` = triple-jump composition of that Verlet step.

Discrete cost (the one definition every solver uses; see ``cost``):

    J = (1/n) Σ_i Φ(W x_i(N) + μ, c_i) + h Σ_k (α/2)(‖K_k‖² + |b_k|²)
        + (β/2) Σ_k (‖K_{k+1} − K_k‖² + |b_{k+1} − b_k|²)/h + (α_head/2)‖W‖²
"""
import numpy as np

from integrators.layers import rk_layer, splitting_layer
from integrators.tableaux import EXPLICIT, GAUSS, SPLITTINGS  # noqa: F401  (SPLITTINGS re-exported)
from ocdl.errors import InputError, check_choice
from ocdl.models.backend import concat, is_torch, stack, zeros_like_shape
from ocdl.models.activations import get_activation
from ocdl.models.fields import FIELDS, get_field
from ocdl.models.losses import mean_loss
from ocdl.models.regularisers import regulariser

EXPLICIT_METHODS = tuple(EXPLICIT)
#: implicit Runge–Kutta methods with an exact costate sweep (ocdl.pmp.implicit), every field
IMPLICIT_RK_METHODS = tuple(GAUSS)
PARAM_KEYS = ("K", "b", "W", "mu")


def exact_integrators(field):
    """Integrators with an exact costate sweep for ``field`` (explicit RK; splittings for the
    separable fields; implicit midpoint, Gauss and, separable, Lobatto IIIA–IIIB for the fully
    connected fields — the implicit stage solves use dense per-sample Jacobians, not convolutions)."""
    sep = FIELDS[field].separable
    implicit = () if FIELDS[field].form == "conv" else IMPLICIT_RK_METHODS + (("lobatto3ab",) if sep else ())
    return EXPLICIT_METHODS + (tuple(SPLITTINGS) if sep else ()) + implicit


def general_integrators(field):
    """Other ``integrators`` methods (implicit ones) the forward pass can use through
    ``integrators.solve``: non-partitioned ones for every field, partitioned ones (Lobatto
    IIIA–IIIB) only for the (q, p) layout of ``hamiltonian``. Gradients: torch autograd."""
    import integrators
    exact = exact_integrators(field)
    out = []
    for name in integrators.available():
        if name in exact:
            continue
        if getattr(integrators.get_method(name), "partitioned", False) and not FIELDS[field].separable:
            continue
        out.append(name)
    return tuple(out)


def integrators_for(field):
    """Every integrator name a field accepts (exact costate first, then the general ones)."""
    return exact_integrators(field) + general_integrators(field)


def all_integrators():
    """Every integrator some registered field accepts (the CLI's --integrator choices), in order."""
    out = []
    for field in FIELDS:
        out += [n for n in integrators_for(field) if n not in out]
    return out


class ResNetODE:
    """A residual network as a controlled ODE (see the module docstring for the equations)."""

    def __init__(self, field="outer", d_in=2, width=None, n_classes=2, layers=20, T=5.0,
                 integrator="euler", alpha=1e-3, beta=0.0, alpha_head=None, activation="tanh",
                 input_shift=None, input_scale=None, channels=None, kernel=None, shape=None):
        check_choice("field", field, list(FIELDS))
        check_choice("integrator", integrator, list(integrators_for(field)))
        act = get_activation(activation)            # the object (InputError for an unknown name)
        activation = act.name
        is_conv = getattr(FIELDS[field], "conv", False)
        if is_conv:             # C channels × L = d_in positions; width follows (C L, or 2 C L)
            from ocdl.models.conv import conv_defaults
            dflt = conv_defaults(d_in)
            channels = dflt["channels"] if channels is None else channels
            # the input is one channel of shape positions (lifted into channel 0), or the whole
            # initial state (every channel, q and p: d_in = C × halves × positions; lift = identity)
            positions = None if shape is None else int(np.prod(shape))
            whole_state = (positions is not None
                           and positions * int(channels) * FIELDS[field].halves_per_state == int(d_in))
            if positions is not None and positions != int(d_in) and not whole_state:
                raise InputError(f"--shape {','.join(str(int(v)) for v in shape)} has {positions} "
                                 f"positions but the data have {int(d_in)} features")
            F = FIELDS[field](act, channels=channels, kernel=dflt["kernel"] if kernel is None else kernel,
                              length=positions if whole_state else int(d_in), shape=shape)
            if width is not None and int(width) != F.state_width():
                raise InputError(f"--width does not apply to the {field} field (its state is --channels × "
                                 f"input length = {F.state_width()}); leave it out")
            width = F.state_width()
        elif channels is not None or kernel is not None or shape is not None:
            raise InputError(f"--channels/--kernel/--shape apply to the conv fields only (not '{field}')")
        else:
            F = get_field(field, act)
        d_in, n_classes, layers = int(d_in), int(n_classes), int(layers)
        if d_in < 1:
            raise InputError(f"input dimension must be ≥ 1 (got {d_in})")
        if n_classes < 2:
            raise InputError(f"need at least 2 classes (got {n_classes})")
        if layers < 1:
            raise InputError(f"--layers must be ≥ 1 (got {layers})")
        if not (np.isfinite(T) and T > 0):
            raise InputError(f"--T must be a finite number > 0 (got {T})")
        for name, v in (("alpha", alpha), ("beta", beta)):
            if not (np.isfinite(v) and v >= 0):
                raise InputError(f"--{name} must be a finite number ≥ 0 (got {v})")
        if width is None:
            width = F.state_width(d_in)
        width = int(width)
        if is_conv:
            pass
        elif F.separable:
            if width % 2 or (width // 2 < d_in and width != d_in):     # width == d_in: x_0 = (q, p) given
                raise InputError(f"{field} field needs an even --width ≥ 2 × input dimension "
                                 f"= {2 * d_in} (got {width})")
        elif width < d_in:
            raise InputError(f"--width must be ≥ input dimension {d_in} (got {width})")
        self.field, self.integrator, self.activation = field, integrator, activation
        self.F = F                                  # the field object (with its σ)
        self.d_in, self.d, self.n_classes, self.layers, self.T = d_in, width, n_classes, layers, float(T)
        self.m = self.F.param_width(width)
        self.alpha, self.beta = float(alpha), float(beta)
        self.alpha_head = float(alpha if alpha_head is None else alpha_head)
        # optional fixed input normalisation (X − shift) / scale before the lift (None: identity)
        # input_scale: one number for every feature (range normalisation) or one per feature (standard)
        self.input_shift = None if input_shift is None else [float(v) for v in np.ravel(input_shift)]
        if input_scale is None or np.ndim(input_scale) == 0:
            self.input_scale = None if input_scale is None else float(input_scale)
        else:
            self.input_scale = [float(v) for v in np.ravel(input_scale)]
            if len(self.input_scale) != d_in:
                raise InputError(f"input_scale needs 1 or {d_in} entries (got {len(self.input_scale)})")
        if self.input_shift is not None and len(self.input_shift) != d_in:
            raise InputError(f"input_shift needs {d_in} entries (got {len(self.input_shift)})")
        sc = None if self.input_scale is None else np.asarray(self.input_scale)
        if sc is not None and not np.all(np.isfinite(sc) & (sc > 0)):
            raise InputError(f"input_scale must hold finite numbers > 0 (got {input_scale})")
        self.n_out = 1 if n_classes == 2 else n_classes

    # ------------------------------------------------------------------ bookkeeping
    @property
    def h(self):
        return self.T / self.layers

    def config(self):
        """The constructor arguments (JSON-able); ``ResNetODE(**model.config())`` rebuilds it."""
        return dict(field=self.field, d_in=self.d_in, width=self.d, n_classes=self.n_classes,
                    layers=self.layers, T=self.T, integrator=self.integrator, alpha=self.alpha,
                    beta=self.beta, alpha_head=self.alpha_head, activation=self.activation,
                    input_shift=self.input_shift, input_scale=self.input_scale,
                    **({"channels": self.F.C, "kernel": self.F.k, "shape": list(self.F.shape)}
                       if getattr(self.F, "conv", False) else {}))

    def shapes(self):
        return {**self.F.param_shapes(self.layers, self.m), "W": (self.n_out, self.d), "mu": (self.n_out,)}

    def init(self, seed=0, scale=1.0):
        """Random float64 parameters: K ~ N(0, scale²/m) (conv: scale²/(C k)), b ~ N(0, 0.1²),
        W ~ N(0, 1/d), μ = 0."""
        rng = np.random.default_rng(seed)
        N, m, d = self.layers, self.m, self.d
        K, b = self.F.init_theta(rng, N, m, scale)
        return {"K": K, "b": b,
                "W": rng.standard_normal((self.n_out, d)) / np.sqrt(d),
                "mu": np.zeros(self.n_out)}

    def flatten(self, params):
        return np.concatenate([np.asarray(params[k], dtype=float).ravel() for k in PARAM_KEYS])

    def unflatten(self, vec):
        vec = np.asarray(vec, dtype=float)
        out, i = {}, 0
        for k, shp in self.shapes().items():
            size = int(np.prod(shp))
            out[k] = vec[i:i + size].reshape(shp)
            i += size
        if i != vec.size:
            raise InputError(f"parameter vector has {vec.size} entries, model needs {i}")
        return out

    def n_params(self):
        return int(sum(np.prod(s) for s in self.shapes().values()))

    def check_params(self, params):
        for k, shp in self.shapes().items():
            if k not in params:
                raise InputError(f"parameters lack '{k}'")
            if tuple(params[k].shape) != shp:
                raise InputError(f"parameter '{k}' has shape {tuple(params[k].shape)}, model needs {shp}")

    # ------------------------------------------------------------------ forward
    def lift(self, X):
        """Zero padding to width d (hamiltonian: the input goes into q = x[:, :d/2], p = 0; conv: the
        signal (or image, row-major) is channel 0 (of q), the other channels start at 0), after
        the optional fixed normalisation ``(X − input_shift) / input_scale`` (``input_scale`` one
        number for all features, or one per feature, divided column-wise). With ``d_in = d`` (an
        input that is the whole initial state, e.g. an :class:`ocdl.nn.ODEBlock`'s) it is the identity."""
        X = self._normalised(X)
        n, d_in = X.shape
        if self.d == d_in:
            return X if not isinstance(X, np.ndarray) else np.asarray(X, dtype=float)
        return concat([X, zeros_like_shape(X, (n, self.d - d_in))], axis=1)

    def lift_into(self, X, out, zero_padding=True):
        """:meth:`lift` written feature-major: ``out`` ((d, n), numpy) ← ``lift(X)ᵀ``, without
        forming the padded copy (the fused sweeps' first state); ``zero_padding=False`` leaves the
        padding rows ``out[d_in:]`` as they are (a buffer that holds zeros there already)."""
        X = self._normalised(np.asarray(X, dtype=float))
        d_in = X.shape[1]
        out[:d_in] = X.T
        if zero_padding:
            out[d_in:] = 0.0
        return out

    def _normalised(self, X):
        """``(X − input_shift) / input_scale`` after the feature-count check (X itself if neither is set)."""
        n, d_in = X.shape
        if d_in != self.d_in:
            raise InputError(f"data have {d_in} features, model expects {self.d_in}")
        if self.input_shift is not None or self.input_scale is not None:
            shift = np.zeros(d_in) if self.input_shift is None else np.asarray(self.input_shift)
            scale = np.asarray(1.0 if self.input_scale is None else self.input_scale, dtype=float)
            if is_torch(X):
                import torch
                shift = torch.as_tensor(shift, dtype=X.dtype, device=X.device)
                scale = torch.as_tensor(scale, dtype=X.dtype, device=X.device)
            X = (X - shift) / scale
        return X

    def step(self, x, K, b, keep=None):
        """One layer ``x_{k+1} = Ψ_h(x_k; K, b)``. ``keep`` (a list) receives what the costate
        sweep needs: the stage values Y_i (Runge–Kutta) or the sub-step states (splittings)."""
        h = self.h
        if self.integrator in EXPLICIT:
            return rk_layer(self.integrator, lambda Y: self.F.f(Y, K, b), x, h, keep)
        if self.integrator in SPLITTINGS:           # q = x[:, :d/2], p = x[:, d/2:]
            m = self.d // 2
            q, p = splitting_layer(self.integrator, lambda p: self.F.fq(p, K, b), lambda q: self.F.fp(q, K, b),
                                   x[:, :m], x[:, m:], h, keep)
            return concat([q, p], axis=1)
        import integrators                          # a general method through integrators.solve
        from integrators.errors import IntegratorError
        try:
            return integrators.solve(self.integrator, lambda t, z: self.F.f(z, K, b), x, 0.0, h, 1)[-1]
        except IntegratorError as exc:
            from ocdl.errors import SolverError
            raise SolverError(f"{self.integrator} layer failed ({exc}); "
                              "try a smaller --T or more --layers") from None

    def forward(self, params, X, keep=None):
        """States ``(N+1, n, d)``: ``x_0 = lift(X)``, ``x_{k+1} = Ψ_h(x_k; K_k, b_k)``; numpy in →
        numpy out, torch in → torch out. ``states[-1]`` is x_N, the input of the head.

        ``keep=True`` returns ``(states, stages)`` where ``stages[k]`` lists what layer k computed
        inside its step (Runge–Kutta stage values Y_i, or the splitting's sub-step ``(q, p)``), the
        values the costate sweep needs; a list passed as ``keep`` is filled with the same."""
        if keep is True:
            stages = []
            return self.forward(params, X, keep=stages), stages
        if keep is False:
            keep = None
        x = self.lift(X)
        states = [x]
        K, b = params["K"], params["b"]
        for k in range(self.layers):
            kk = [] if keep is not None else None
            x = self.step(x, K[k], b[k], kk)
            if keep is not None:
                keep.append(kk)
            states.append(x)
        return stack(states)

    def head(self, params, xT):
        """Logits ``s = x_N Wᵀ + μ`` (n, C'): C' = 1 for two classes, C' = C otherwise."""
        W, mu = params["W"], params["mu"]
        return xT @ (W.T if isinstance(W, np.ndarray) else W.transpose(0, 1)) + mu

    def logits(self, params, X):
        """``s = W x_N + μ`` for inputs X (n, d_in): the forward pass, then the head."""
        return self.head(params, self.forward(params, X)[-1])

    def predict_proba(self, params, X):
        """Class probabilities (n, C), rows summing to 1, the model the loss Φ is the negative
        log-likelihood of: two classes ``P(c=1) = 1/(1 + e^{−s})``, ``P(c=0) = 1 − P(c=1)``;
        C > 2 classes ``P(c) = softmax(s)_c = e^{s_c} / Σ_j e^{s_j}``."""
        s = np.asarray(self.logits(params, np.asarray(X, dtype=float)), dtype=float)
        if s.shape[1] == 1:
            p1 = np.exp(-np.logaddexp(0.0, -s[:, 0]))          # logistic σ(s), overflow-free
            return np.stack([1.0 - p1, p1], axis=1)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, params, X):
        """Class indices 0..C−1 (int64): two classes ``s > 0``, otherwise ``argmax_c s_c`` — the
        argmax of :meth:`predict_proba` (ties at s = 0 go to class 0)."""
        s = self.logits(params, np.asarray(X, dtype=float))
        if s.shape[1] == 1:
            return (s[:, 0] > 0).astype(np.int64)
        return np.argmax(s, axis=1).astype(np.int64)

    def accuracy(self, params, X, y):
        """Fraction of samples with ``predict(params, X) == y``."""
        return float(np.mean(self.predict(params, X) == np.asarray(y)))

    # ------------------------------------------------------------------ cost
    def cost(self, params, X, y):
        """The discrete cost J (numpy → float, torch → 0-d tensor with autograd)."""
        xN = self.forward(params, X)[-1]
        data = mean_loss(self.head(params, xN), y)
        return data + regulariser(params, self.h, self.alpha, self.beta, self.alpha_head)

    def check_data(self, X, y=None):
        """Validate an (n, d_in) float array and labels in 0..C−1; raise InputError otherwise."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[0] == 0:
            raise InputError(f"data must be a non-empty (n, d) array (got shape {X.shape})")
        if X.shape[1] != self.d_in:
            raise InputError(f"data have {X.shape[1]} features, model expects {self.d_in}")
        if not np.all(np.isfinite(X)):
            raise InputError("data contain NaN or inf")
        if y is not None:
            y = np.asarray(y)
            if y.shape != (X.shape[0],):
                raise InputError(f"labels have shape {y.shape}, expected ({X.shape[0]},)")
            if np.any(y < 0) or np.any(y >= self.n_classes) or np.any(y != np.round(y)):
                raise InputError(f"labels must be integers in 0..{self.n_classes - 1}")
            y = y.astype(np.int64)
        return X, y


def to_torch(params, device="cpu", requires_grad=False):
    """numpy params → float64 torch tensors (leaf tensors; ``requires_grad`` as asked)."""
    import torch
    return {k: torch.tensor(np.asarray(v, dtype=float), dtype=torch.float64, device=device,
                            requires_grad=requires_grad) for k, v in params.items()}


def to_numpy(params):
    return {k: (v.detach().cpu().numpy().astype(float) if is_torch(v) else np.asarray(v, dtype=float))
            for k, v in params.items()}
