"""Kronecker-factored curvature of the layers from the Pontryagin sweeps (K-FAC; Martens & Grosse,
"Optimizing neural networks with Kronecker-factored approximate curvature", ICML 2015).

For the ``outer`` field with the Euler step, ``x_{k+1} = x_k + h (K_k σ(x_k) + b_k)``, the
per-sample gradient of the loss Φ_i with respect to layer k's controls ``D_k = [K_k | b_k]``
((m, m+1)) is the outer product of the per-sample costate and the layer's input,

    ∂Φ_i/∂D_k = h q_{k+1,i} a_{k,i}ᵀ,   a_{k,i} = [σ(x_{k,i}); 1],  q_{k+1,i} = ∂Φ_i/∂x_{k+1,i},

(the costate of the sample's own loss: ``n p_{k+1,i}`` in ocdl's convention ``p_N = (1/n)∇Φ``).
The field says what its two sides are (``Field.layer_io(x, K, b, q) → (U, A)``): ``inner``
(``σ(K x + b)``) has ``u = σ'(K x + b) ⊙ q``, ``a = [x; 1]``; ``conv`` (``σ(K ∗ x + b)``, K flattened
to (C, C k^D)) has one pair per position, ``u_l = σ'(·)_l ⊙ q_l`` and ``a_l`` the zero-padded
window at l, ``∂Φ_i/∂D_k = h Σ_l u_l a_lᵀ`` — its factors are K-FAC's for convolutions (Grosse &
Martens 2016): ``Γ_k = h² E_i[Σ_l u_l u_lᵀ]``, ``S_k = E_{i,l}[a_l a_lᵀ]``.
The Gauss–Newton block of layer k, ``G_k = E_i[(∂s_i/∂D_k)ᵀ ∇²_sΦ_i (∂s_i/∂D_k)]``, equals
``E_i E_ŷ[vec(h q̂ aᵀ) vec(h q̂ aᵀ)ᵀ]`` when ``q̂`` is the costate of a label ``ŷ`` drawn from the
model's own predictive distribution (``E_ŷ[(p − e_ŷ)(p − e_ŷ)ᵀ] = diag p − p pᵀ = ∇²_sΦ``). K-FAC
approximates the expectation of the Kronecker product by the product of the expectations:

    G_k ≈ Γ_k ⊗ S_k,   Γ_k = h² E[q̂_{k+1} q̂_{k+1}ᵀ]  (m×m),   S_k = E[a_k a_kᵀ]  ((m+1)×(m+1)),

i.e. ``G_k vec(D) ≈ vec(Γ_k D S_k)``. The head ``(W, μ)`` (``E = [W | μ]``, logits ``s = W x_N + μ``)
has the exact factor of its output side, ``A = E_i[∇²_sΦ_i]`` (C'×C'), so ``G_head ≈ A ⊗ S_N`` with
``S_N = E[[x_N; 1][x_N; 1]ᵀ]``. ``S_k`` is the state-penalty metric of stochastic E-MSA
(:mod:`ocdl.solvers.msa`, ``metric="state"``, which uses it alone, with the costate side Γ_k ∝ I).

:class:`KroneckerMetric` keeps exponential averages of the factors over the steps (K-FAC's
running estimates; each step one forward and one costate sweep on a few rows, with labels drawn
from the model), damps each factor relative to its mean eigenvalue,
``Γ̃ = Γ + ε tr(Γ)/m I``, ``S̃ = S + ε tr(S)/(m+1) I`` (factored Tikhonov damping, Martens &
Grosse §6.3, with π = the ratio of the mean eigenvalues), and defines the block-diagonal metric
``M = blockdiag_k(Γ̃_k ⊗ S̃_k, Ã ⊗ S̃_N)``: ``M v`` and ``M⁻¹ v`` cost two small matrix products per
layer (the factors' inverses are refreshed every ``refresh`` observations). It serves as the
preconditioner and the damping metric of the Gauss–Newton CG in :mod:`ocdl.solvers.trust_region`.
"""
import numpy as np

from ocdl import pmp
from ocdl.errors import InputError, SolverError


def input_moments(states, act=None):
    """``(1/n) Σ_i a_i a_iᵀ`` per layer, ``a_i = [act(x_i); 1]`` (states (L, n, m) → (L, m+1, m+1))."""
    L, n = states.shape[:2]
    a = np.concatenate([states if act is None else act(states), np.ones((L, n, 1))], axis=2)
    return np.matmul(a.transpose(0, 2, 1), a) / n


def sample_labels(prob, rng):
    """One label per row drawn from the class probabilities ``prob`` (n, C) (inverse CDF)."""
    u = rng.random((prob.shape[0], 1))
    return np.minimum((u > np.cumsum(prob, axis=1)).sum(axis=1), prob.shape[1] - 1)


def _damped_inverse(F, eps):
    """``(F̃, F̃⁻¹)`` with ``F̃ = F + ε tr(F)/q I`` for a stack of SPD factors F (L, q, q)."""
    q = F.shape[-1]
    tr = np.trace(F, axis1=1, axis2=2)[:, None, None] / q
    Fd = F + eps * np.maximum(tr, 1e-300) * np.eye(q)
    return Fd, np.linalg.inv(Fd)


class KroneckerMetric:
    """The Kronecker-factored Gauss–Newton metric ``M`` of the module docstring, on flat parameter
    vectors of ``model`` (fields with ``layer_io`` — outer, inner, conv — and the ``euler``
    integrator, where a layer's step is ``h`` times one field evaluation; others are refused).

    ``observe(z, rows)``: one forward and one costate sweep at the parameters ``z`` on the rows
    ``rows`` of ``X`` (None: all) with labels drawn from the model (``numpy.random.default_rng(seed)``),
    the factors' exponential averages
    ``F ← a F + (1 − a) F_batch`` (``average`` = a; the first observation sets them), and every
    ``refresh``-th observation the damped factors and their inverses (``damping`` = ε).
    ``apply(v)`` = ``M v``, ``solve(v)`` = ``M⁻¹ v`` with the factors of the last refresh (the pair
    is exactly inverse: ``M`` is SPD and fixed between refreshes)."""

    @staticmethod
    def applies(model):
        """Whether the metric is defined for ``model``: a field with ``layer_io`` and ``euler``."""
        return getattr(model.F, "layer_io", None) is not None and model.integrator == "euler"

    def __init__(self, model, X, average=0.95, damping=1.0, refresh=10, seed=0):
        if not self.applies(model):
            raise InputError(f"newton: the Kronecker-factored preconditioner needs a field whose layer is one affine "
                             f"map of the state or its activation (outer, inner, conv) with integrator 'euler' (got "
                             f"field '{model.field}', integrator '{model.integrator}'); use preconditioner='none'")
        if not 0 <= average < 1:
            raise InputError(f"newton: the Kronecker factors' average must be in [0, 1) (got {average})")
        if not damping > 0:
            raise InputError(f"newton: the Kronecker factors' damping must be > 0 (got {damping})")
        self.model, self.average, self.damping, self.refresh = model, float(average), float(damping), int(refresh)
        self.X, self.rng = np.asarray(X, dtype=float), np.random.default_rng(seed)
        self.factors = None          # averaged (Γ, S, A, S_N)
        self.inverses = None         # damped (Γ̃, S̃, Ã, S̃_N) and their inverses
        self.n_observed = 0

    def batch_factors(self, z, X, yhat=None):
        """``(Γ, S, A, S_N)`` of one batch of rows ``X`` at the flat parameters ``z``: the costate
        sweep of the loss of the labels ``yhat`` (None: drawn from the model's predictive
        distribution, :func:`sample_labels`), ``q̂ = n p``, and the input moments of the same sweep's
        states; ``A`` is the exact mean of ``∇²_sΦ`` over the rows."""
        model = self.model
        params = model.unflatten(z)
        n = X.shape[0]
        prob = model.predict_proba(params, X)                              # (n, C)
        if yhat is None:
            yhat = sample_labels(prob, self.rng)
        if model.n_out == 1:                      # one logit: ∇²_sΦ = λ(s)(1 − λ(s))
            A = np.array([[np.mean(prob[:, 0] * prob[:, 1])]])
        else:
            A = np.diag(prob.mean(axis=0)) - prob.T @ prob / n
        _, _, states, costates = pmp.sweep(model, params, X, np.asarray(yhat))
        h, K, b = model.h, params["K"], params["b"]
        Gam, S = [], []
        for k in range(model.layers):               # (per layer: the sides over samples × positions)
            U, a = model.F.layer_io(states[k], K[k], b[k], n * costates[k + 1])
            Gam.append(h * h * (U @ U.T) / n)
            S.append(a @ a.T / a.shape[1])
        Gam, S = np.array(Gam), np.array(S)
        SN = input_moments(states[-1:])[0]                                     # (d+1, d+1)
        return Gam, S, A, SN

    def observe(self, z, rows=None):
        new = self.batch_factors(z, self.X if rows is None else self.X[rows])
        a = self.average
        self.factors = new if self.factors is None else tuple(a * o + (1.0 - a) * f for o, f in zip(self.factors, new))
        if self.inverses is None or self.n_observed % self.refresh == 0:
            Gam, S, A, SN = self.factors
            eps = self.damping
            self.inverses = (_damped_inverse(Gam, eps), _damped_inverse(S, eps), _damped_inverse(A[None], eps),
                             _damped_inverse(SN[None], eps))
        self.n_observed += 1

    def _blocks(self, v):
        p = self.model.unflatten(v)
        N, r = p["b"].shape
        D = np.concatenate([p["K"].reshape(N, r, -1), p["b"][:, :, None]], axis=2)   # (N, r, q): [K_k | b_k]
        E = np.concatenate([p["W"], p["mu"][:, None]], axis=1)[None]                 # (1, C', d+1)
        return D, E

    def _flat(self, D, E):
        d = E.shape[2] - 1
        shape = self.model.shapes()["K"]
        return self.model.flatten({"K": D[:, :, :-1].reshape(shape), "b": D[:, :, -1], "W": E[0, :, :d],
                                   "mu": E[0, :, d]})

    def _kron(self, v, which):
        if self.inverses is None:
            raise SolverError("newton: the Kronecker metric has observed no batch yet")
        (G, Gi), (S, Si), (A, Ai), (SN, SNi) = self.inverses
        D, E = self._blocks(v)
        if which == "apply":
            return self._flat(np.matmul(np.matmul(G, D), S), np.matmul(np.matmul(A, E), SN))
        return self._flat(np.matmul(np.matmul(Gi, D), Si), np.matmul(np.matmul(Ai, E), SNi))

    def apply(self, v):
        """``M v`` (flat)."""
        return self._kron(v, "apply")

    def solve(self, v):
        """``M⁻¹ v`` (flat)."""
        return self._kron(v, "solve")
