"""Extended method of successive approximations (E-MSA; Li, Chen, Tai, E, JMLR 18 (2018)).

One iteration at the current controls ``θ⁰``:

1. forward sweep   ``x_{k+1} = x_k + h f(x_k, θ⁰_k)``            (states)
2. backward sweep  ``p_k = p_{k+1} + h (∂f/∂x)ᵀ p_{k+1}``, ``p_N = (1/n)∇Φ``  (costates)
3. for every layer ``k`` (all layers at once) minimise the augmented discrete Hamiltonian

       H̃_k(θ) = Σ_i p_{k+1,i}ᵀ (x_{k,i} + h f(x_{k,i}, θ)) + h r(θ)
                + (ρ/2) (1/n) Σ_i |x_{k+1,i} − x_{k,i} − h f(x_{k,i}, θ)|²
                + (ρ/2) n Σ_i |p_{k,i} − p_{k+1,i} − h (∂f/∂x(x_{k,i}, θ))ᵀ p_{k+1,i}|²

   (the penalty terms are Li et al.'s feasibility errors of the state and costate equations;
   the factors ``1/n`` and ``n`` make both O(1) since ``p = O(1/n)``). Signs: Li et al.
   maximise ``H − penalties`` with the costate ``−∂J/∂x``; ocdl's costate is ``p = +∂J/∂x``
   (``p_N = (1/n)∇Φ``), so the same step *minimises* ``H̃_k = H_k + penalties`` as written.

For ``outer`` (``f = K σ(x) + b``, affine in θ) and ``r = (α/2)|θ|²`` every term is quadratic in
``δ = θ − θ⁰``: the first two terms give the exact gradient ``G_k = ∂J/∂θ_k`` (linear part) and
``hα`` (curvature); the state penalty gives ``ρh² (1/n) Σ_i [σ_i; 1][σ_i; 1]ᵀ`` on each row of
``(δK, δb)``; the costate penalty ``ρh² n Σ_i σ'(x_{ic})² p_{ir} p_{ir'}`` couples column ``c`` of
``δK``. The minimiser is ``δ_k = −M_k⁻¹ G_k``. ``M_k`` has (m² + m)² entries (10.7 GB for 20
layers at width 90), so it is never formed: :class:`LayerMetric` applies it in O(n m²) per layer
and :func:`batched_cg` solves all layers' SPD systems by preconditioned CG in lockstep (stopping
rule: relative residual ≤ ``cg_rtol`` per layer, default 1e-8, at most ``cg_maxiter`` iterations;
measured 10–25 iterations per step on breast-cancer, width 90). β-smoothness terms enter with the
neighbours frozen (Jacobi).
The head ``(W, μ)`` takes a Levenberg–Marquardt step ``−(H_head + ρ λ̄ I)⁻¹ ∇_{W,μ} J`` (dense:
``(C'd + C')²`` entries, 12 MB for 10 classes at width 120).

ρ rule: a trial step is accepted only if ``J`` decreases; then ``ρ ← max(ρ/2, ρ_min)``;
otherwise ``ρ ← 4ρ`` and the step is recomputed from the same sweeps. Since ``ρ → ∞`` turns the
step into an ever shorter preconditioned gradient step, a decrease is always found at a
non-stationary point: the loss decreases monotonically (tested on spirals).

The iteration is :class:`MSARule`, stepped by :func:`ocdl.optim.minimize` (history, progress,
callback, divergence, checkpoints with ρ in the rule state).

Stochastic E-MSA (Li et al. 2018 §5 trained MNIST this way): with ``batch_size=B`` each iteration
performs steps 1–3 on one shuffled mini-batch (the evaluated point's ``batch``). Two forms of step 3:

* ``metric="exact"`` (the full-batch default): the augmented Hamiltonian above on the batch,
  solved by CG, with the acceptance test and the ρ rule on the batch cost ``J_B``.
* ``metric="state"`` (the mini-batch default; issue 26): every layer ``k`` minimises

      H̄_k(θ) = ⟨Ḡ_k, θ − θ⁰_k⟩ + (hα/2)|θ − θ⁰_k|²
               + (ρ_t/2) (1/n) Σ_i |h (f(x_{k,i}, θ) − f(x_{k,i}, θ⁰_k))|²  (averaged: S̄_k)
               + (ρ_t h²/2) γ (tr S̄_k/(m+1)) |θ − θ⁰_k|²

  With ``Ḡ_k = G_k = ∂J_B/∂θ_k = h Σ_i p_{k+1,i} [σ(x_{k,i}); 1]ᵀ + hαθ⁰_k`` (the costate term of
  the Hamiltonian plus the regulariser's gradient), ``S̄_k = S_k = (1/n) Σ_i a_i a_iᵀ``,
  ``a_i = [σ(x_{k,i}); 1]``, and γ = 0 this is exactly ``H̃_k`` above without its
  costate-feasibility penalty: ``H(θ) + h r(θ)`` is quadratic in θ for ``outer``, and at the
  current iterate ``x_{k+1} − x_k = h f(x_k, θ⁰_k)``, so the state-feasibility error of θ is
  ``h (f(x_k, θ⁰_k) − f(x_k, θ)) = −h (θ − θ⁰_k) a_i``. γ (``damping``) is a Levenberg term.
  Two stochastic-approximation estimates replace the batch quantities: ``Ḡ_k ← β₁ Ḡ_k +
  (1 − β₁) G_k`` (``costate_average`` = β₁: the Hamiltonian's linear coefficient averaged over
  the recent batches, an estimate of the expected Hamiltonian's — momentum averaging) and
  ``S̄_k ← β₂ S̄_k + (1 − β₂) S_k`` (``metric_average`` = β₂: K-FAC's running estimate of the
  layer input's second moment, Martens & Grosse 2015). The minimiser, on the rows of
  ``δ_k = [δK_k | δb_k]``,

      δ_k = −Ḡ_k [ρ_t h² (S̄_k + γ tr(S̄_k)/(m+1) I) + c_k I]⁻¹    (c_k = hα, + Jacobi β term),

  costs one (m+1)×(m+1) solve per layer (no CG, no m³ costate tensor): about an Adam step.
  The head ``(W, μ)`` takes the same step with the logits ``s = W x_N + μ`` as its state:
  it minimises ``⟨Ḡ_head, δ⟩ + (α_head/2)|δW|² + (ρ_head,t/2)(1/n) Σ_i |δW x_{N,i} + δμ|²``
  plus the γ term, ``δ_head = −Ḡ_head [ρ_head,t (S̄_N + γ tr(S̄_N)/(d+1) I) + α_head
  diag(1,…,1,0)]⁻¹`` (``Ḡ_head`` the averaged ``∂J_B/∂[W | μ]``, ``S̄_N`` the averaged
  ``(1/n) Σ_i [x_{N,i}; 1][x_{N,i}; 1]ᵀ``). The penalty follows a schedule instead of the
  acceptance test: ``ρ_t = ρ / s_t`` (and ``ρ_head,t = ρ_head / s_t``) with ``s_t`` the cosine
  schedule of :mod:`ocdl.optim.schedules`, from 1 to ≈ 0 over the run (``rho_schedule``;
  "constant": s_t = 1): the penalty grows as the steps must shrink against the batch noise.
  Measured on MNIST-1D: docs/compare.md.

``epochs``, ``validation``, ``patience`` and ``test`` as for the gradient solvers
(:class:`ocdl.solvers.gradient.Batching`).
"""
import numpy as np

from ocdl import pmp
from ocdl.errors import InputError, SolverError
from ocdl.optim import CONVERGED, ITERATION_CAP, Step, Stop
from ocdl.optim.lm import Damping
from ocdl.optim.schedules import learning_rate
from ocdl.solvers.gradient import PATIENCE, Batching, _run
from ocdl.solvers.pontryagin import check_options
from ocdl.solvers.support import supports

#: CG stopping rule of the layer step: relative residual ``‖M_k δ_k + G_k‖ ≤ CG_RTOL ‖G_k‖`` per
#: layer, at most ``CG_MAXITER`` iterations (a layer that stops early is frozen while the others go on)
CG_RTOL = 1e-8
CG_MAXITER = 500


class LayerMetric:
    """The curvature ``M_k`` of the augmented Hamiltonian of every layer k, applied matrix-free.

    ``δ_k`` is stored as the (m, m+1) matrix ``D_k = [δK_k | δb_k]`` (all layers: (N, m, m+1)).
    With ``a_i = [σ(x_{k,i}); 1]``, ``P = (p_{k+1,i})_i`` (n, m) and ``w_{ic} = n σ'(x_{k,ic})²``:

        M_k D = ρh² D S_k  +  ρh² [Pᵀ (w ⊙ (P δK)) | 0]  +  c_k D,
        S_k = (1/n) Σ_i a_i a_iᵀ  ((m+1)², the state penalty, acting on each row of D),
        c_k = hα (+ (β/h)·#neighbours of layer k, the Jacobi β term).

    The middle term is the costate penalty ``(T δK)_{rc} = n Σ_i p_{ir} σ'(x_{ic})² Σ_{r'} p_{ir'} δK_{r'c}``,
    applied in O(n m²) per layer without forming its m³ tensor. Memory: S, its preconditioner
    factors (≈ 3 N (m+1)²), P and w (2 N n m) besides the sweeps' trajectories.
    """

    def __init__(self, model, states, costates, rho, S=None, damping=0.0):
        N, m, h = model.layers, model.m, model.h
        n = states.shape[1]
        act = model.F.act
        sig = act(states[:-1])                                     # (N, n, m)
        dsig = act.deriv(states[:-1])
        self.P = costates[1:]                                      # p_{k+1}  (N, n, m)
        self.w = n * dsig * dsig
        a = np.concatenate([sig, np.ones((N, n, 1))], axis=2)      # (N, n, m+1)
        self.S = np.matmul(a.transpose(0, 2, 1), a) / n if S is None else S     # (N, m+1, m+1)
        if damping:
            # Levenberg damping of the state-penalty metric, relative to its mean eigenvalue
            tr = np.trace(self.S, axis1=1, axis2=2) / (m + 1)
            self.S = self.S + damping * tr[:, None, None] * np.eye(m + 1)[None]
        self.c2 = rho * h * h
        c = np.full(N, h * model.alpha)
        if model.beta and N > 1:
            nb = np.full(N, 2.0)
            nb[0] = nb[-1] = 1.0
            c = c + (model.beta / h) * nb
        self.c, self.m = c, m
        # preconditioner: the separable approximation w_ic ≈ ω_i = mean_c w_ic of the costate
        # weights (and the costate term also on the δb column) makes the metric
        # ρh² (T̄ D + D S) + c D with T̄ = Pᵀ diag(ω) P, inverted exactly through the
        # eigen-decompositions T̄ = V μ Vᵀ, S = U λ Uᵀ: D = V [(Vᵀ R U) / (ρh²(μ_r + λ_c) + c)] Uᵀ
        Tbar = np.matmul(self.P.transpose(0, 2, 1) * self.w.mean(axis=2)[:, None, :], self.P)   # (N, m, m)
        mu, self.V = np.linalg.eigh(Tbar)
        lam, self.U = np.linalg.eigh(self.S)
        self.denom = self.c2 * (mu[:, :, None] + lam[:, None, :]) + c[:, None, None]             # (N, m, m+1)

    def apply(self, D):
        """``M_k D_k`` for all layers (D: (N, m, m+1))."""
        m = self.m
        out = self.c2 * np.matmul(D, self.S) + self.c[:, None, None] * D
        Q = np.matmul(self.P, D[:, :, :m])                        # (N, n, m): P δK
        Q *= self.w
        out[:, :, :m] += self.c2 * np.matmul(self.P.transpose(0, 2, 1), Q)
        return out

    def precondition(self, R):
        """The inverse of the separable approximation of ``M_k`` (see ``__init__``), SPD."""
        Z = np.matmul(np.matmul(self.V.transpose(0, 2, 1), R), self.U) / self.denom
        return np.matmul(np.matmul(self.V, Z), self.U.transpose(0, 2, 1))


def batched_cg(apply, precondition, B, rtol=CG_RTOL, maxiter=CG_MAXITER):
    """Preconditioned CG for the SPD systems ``M_k X_k = B_k`` of all layers in lockstep (arrays
    (N, …); per-layer inner products). Stopping rule: layer k stops when ``‖B_k − M_k X_k‖ ≤ rtol ‖B_k‖``
    (its iterate is then frozen), all stop after ``maxiter`` iterations. Returns ``(X, iterations,
    max relative residual)``."""
    axes = tuple(range(1, B.ndim))
    X = np.zeros_like(B)
    R = B.copy()
    bnorm = np.sqrt(np.sum(B * B, axis=axes))
    tol = rtol * bnorm
    Z = precondition(R)
    Pd = Z.copy()
    rz = np.sum(R * Z, axis=axes)
    active = np.sqrt(np.sum(R * R, axis=axes)) > tol
    it = 0
    shape = (-1,) + (1,) * (B.ndim - 1)
    while active.any() and it < maxiter:
        it += 1
        AP = apply(Pd)
        pAp = np.sum(Pd * AP, axis=axes)
        a = np.where(active, rz / np.where(active, pAp, 1.0), 0.0).reshape(shape)
        X += a * Pd
        R -= a * AP
        active &= np.sqrt(np.sum(R * R, axis=axes)) > tol
        Z = precondition(R)
        rz_new = np.sum(R * Z, axis=axes)
        beta = np.where(active, rz_new / np.where(rz != 0, rz, 1.0), 0.0).reshape(shape)
        Pd = Z + beta * Pd
        rz = rz_new
    res = np.sqrt(np.sum(R * R, axis=axes)) / np.where(bnorm > 0, bnorm, 1.0)
    return X, it, float(res.max())


def layer_step(model, params, states, costates, grads, rho, rtol=CG_RTOL, maxiter=CG_MAXITER, info=None, S=None,
               damping=0.0):
    """Minimiser ``(K_k, b_k) = θ⁰_k + δ_k`` of the augmented Hamiltonian for every layer (β = 0
    or neighbours frozen): ``M_k δ_k = −G_k`` solved matrix-free by batched preconditioned CG
    (:class:`LayerMetric`, :func:`batched_cg`); ``grads`` are the exact ∂J/∂θ from the same sweep.
    ``info`` (a dict) receives ``cg_iterations`` and ``cg_residual``; ``S`` replaces the batch's
    state-penalty metric (an average over batches), ``damping`` adds ``damping · tr(S)/(m+1) · I``."""
    m = model.m
    G = np.concatenate([grads["K"], grads["b"][:, :, None]], axis=2)     # (N, m, m+1)
    M = LayerMetric(model, states, costates, rho, S, damping)
    D, it, res = batched_cg(M.apply, M.precondition, -G, rtol, maxiter)
    if info is not None:
        info.update(cg_iterations=it, cg_residual=res)
    return params["K"] + D[:, :, :m], params["b"] + D[:, :, m]


def input_moments(states, act=None):
    """``(1/n) Σ_i a_i a_iᵀ`` per layer, ``a_i = [act(x_i); 1]`` (states (L, n, m) → (L, m+1, m+1))."""
    L, n = states.shape[:2]
    a = np.concatenate([states if act is None else act(states), np.ones((L, n, 1))], axis=2)
    return np.matmul(a.transpose(0, 2, 1), a) / n


def state_metric_step(G, S, curvature, rho, damping=0.0):
    """``δ = −G [ρ (S + γ tr(S)/(m+1) I) + C]⁻¹`` for a stack of layers: G (L, r, m+1), S (L, m+1, m+1),
    ``curvature`` C (L, m+1, m+1), ρ a number, γ = ``damping`` — the minimiser of
    ``⟨G, δ⟩ + ½ tr(δ [ρ(S + γ…) + C] δᵀ)`` row by row (module docstring, ``metric="state"``)."""
    q = S.shape[-1]
    tr = np.trace(S, axis1=1, axis2=2)[:, None, None] / q
    M = rho * (S + damping * tr * np.eye(q)) + curvature
    return -np.linalg.solve(M, G.transpose(0, 2, 1)).transpose(0, 2, 1)


def _head_hessian(model, params, xN, y):
    """Hessian of ``(1/n) Σ Φ(W x + μ) + (α_head/2)‖W‖²`` in ``(vec W, μ)`` ((C·d + C)², dense:
    1.2·10⁶ entries for C = 10, d = 120).

    The Hessian of Φ in the logits is ``A_i = diag(u_i) − v_i v_iᵀ`` (logistic on one logit:
    u = q(1 − q), v = 0; softmax: u = v = q, the probabilities), so with ``U_i = v_i ⊗ x_i``

        H_WW = blockdiag_a(Σ_i u_ia x_i x_iᵀ)/n − UᵀU/n,   H_Wμ = [Σ_i u_ia x_i δ_ab]/n − UᵀV/n,
        H_μμ = diag(Σ_i u_i)/n − VᵀV/n,

    assembled by matrix products (no (n, C, C, d) intermediate)."""
    n, d = xN.shape
    s = xN @ params["W"].T + params["mu"]
    C = s.shape[1]
    if C == 1:
        q = 1.0 / (1.0 + np.exp(-s))
        u, v = q * (1 - q), np.zeros_like(q)
    else:
        e = np.exp(s - s.max(axis=1, keepdims=True))
        u = v = e / e.sum(axis=1, keepdims=True)
    U = (v[:, :, None] * xN[:, None, :]).reshape(n, C * d)        # ordering: W row-major (C, d), then μ
    H = np.zeros((C * d + C, C * d + C))
    blocks = np.matmul((xN.T[None] * u.T[:, None, :]), xN[None])     # (C, d, d): Σ_i u_ia x_i x_iᵀ
    for a in range(C):                                              # C ≤ 10 diagonal blocks
        H[a * d:(a + 1) * d, a * d:(a + 1) * d] = blocks[a]
        H[a * d:(a + 1) * d, C * d + a] = xN.T @ u[:, a]
    H[C * d:, C * d:] = np.diag(u.sum(axis=0))
    H[:C * d, C * d:] -= U.T @ v
    H[:C * d, :C * d] -= U.T @ U
    H[C * d:, C * d:] -= v.T @ v
    H[C * d:, :C * d] = H[:C * d, C * d:].T
    H /= n
    H[:C * d, :C * d] += model.alpha_head * np.eye(C * d)
    return H


class MSARule:
    """The E-MSA iteration as a rule of :func:`ocdl.optim.minimize` (flat parameters ``x``), pure
    ``init``/``update``: all it changes lives in the driver's state (and so in checkpoints).

    ``update``: converged (``Stop``, status 0) when the shared KKT residual of the iterate is
    ≤ ``tol``; else, ``metric="exact"``: the closed-form layer step and the head's LM step with
    penalty ρ, retried with ``ρ ← 4ρ`` until the cost decreases (then ``ρ ← max(ρ/2, ρ_min)``); no
    decrease after ``max_retries`` → stalled (status 3) — the accept/reject-by-decrease rule of
    :class:`ocdl.optim.lm.Damping` (ρ is the damping). ``metric="state"``: the averaged
    state-penalty step of the module docstring with ρ_t on its schedule. State: ``rho`` (the penalty
    the next step starts from; the row of each iterate a step leaves gets it as ``rho``), the
    heavy-ball ``velocity``, the averaged ``metric`` S̄_k; with ``metric="state"`` also
    ``head_metric`` S̄_N and ``costate_average`` Ḡ. (``objective`` keeps the last sweep's
    trajectories for the step at the same point: a cache, not state.)
    """
    name = "msa"

    def __init__(self, model, X, y, rho=1.0, rho_min=1e-6, tol=1e-10, max_retries=40, cg_rtol=CG_RTOL,
                 cg_maxiter=CG_MAXITER, momentum=0.0, metric_average=0.0, damping=0.0, head_rho=None,
                 metric="exact", costate_average=0.0, rho_schedule="cosine"):
        self.model, self.X, self.y = model, X, y
        self.rho0, self.rho_min, self.tol, self.max_retries = float(rho), float(rho_min), float(tol), int(max_retries)
        self.cg_rtol, self.cg_maxiter = float(cg_rtol), int(cg_maxiter)
        self.momentum, self.metric_average, self.damping = float(momentum), float(metric_average), float(damping)
        self.head_rho = None if head_rho is None else float(head_rho)
        self.metric, self.costate_average, self.rho_schedule = metric, float(costate_average), rho_schedule
        #: the ρ rule of ``metric="exact"``: ×4 on rejection, max(ρ/2, ρ_min) on acceptance
        self.penalty_rule = Damping("decrease", increase=4.0, decrease=2.0, tries=self.max_retries,
                                    floor=self.rho_min)
        self._sweep = None

    def init(self, x, saved, run):
        return {k: np.array(v) for k, v in (saved or {"rho": self.rho0}).items()}

    @staticmethod
    def _average(old, new, a):
        return new if old is None or not a else a * old + (1.0 - a) * new

    def data(self, batch):
        """The rows of ``batch`` (None: all data)."""
        return (self.X, self.y) if batch is None else (self.X[batch], self.y[batch])

    def objective(self, x, batch=None):
        """``(J, ∇J, {"kkt"})`` by the costate sweep (on ``batch``'s rows). ``metric="state"`` keeps
        the sweep's trajectories for the step at the same ``x`` and batch (one sweep per iteration)."""
        model = self.model
        params = model.unflatten(x)
        X, y = self.data(batch)
        if self.metric == "state":
            J, grads, states, costates = pmp.sweep(model, params, X, y)
            self._sweep = (x, batch, states, costates)
        else:
            J, grads = pmp.value_and_grad(model, params, X, y)
        return J, model.flatten(grads), {"kkt": pmp.kkt_residual(model, params, X, y, grads=grads)}

    def update(self, state, p, run):
        model, x, f, g = self.model, p.x, p.f, p.g
        X, y = self.data(p.batch)
        params, grads = model.unflatten(x), model.unflatten(g)
        res = pmp.kkt_residual(model, params, X, y, grads=grads)
        row = {"rho": float(state["rho"])}
        if res <= self.tol:
            return Step(None, state, row, Stop(f"converged: KKT residual {res:.2e} <= {self.tol:g}", CONVERGED))
        if self.metric == "state":
            xn, new = self._state_step(state, p.it, run.iterations, x, g, params, X, y, p.batch)
            return Step(xn, new, row)
        states, costates = pmp.costate(model, params, X, y)
        gh = np.concatenate([grads["W"].ravel(), grads["mu"]])
        Hh = _head_hessian(model, params, states[-1], y)
        lam_bar = np.trace(Hh) / Hh.shape[0]
        C, d = params["W"].shape
        info, cg_its = {}, [0]
        new = dict(state)
        if self.metric_average:
            # the state-penalty metric S_k averaged over the batches, S ← a S + (1 − a) S_batch
            # (K-FAC's running estimate of the layer input's second moment, Martens & Grosse 2015)
            new["metric"] = self._average(state.get("metric"), input_moments(states[:-1], model.F.act),
                                          self.metric_average)
        S, velocity = new.get("metric"), state.get("velocity")

        def trial(rho):
            K_new, b_new = layer_step(model, params, states, costates, grads, rho, self.cg_rtol, self.cg_maxiter,
                                      info, S, self.damping)
            cg_its[0] += info["cg_iterations"]
            rh = rho if self.head_rho is None else self.head_rho
            dh = -np.linalg.solve(Hh + rh * lam_bar * np.eye(Hh.shape[0]), gh)
            xt = model.flatten({"K": K_new, "b": b_new, "W": params["W"] + dh[:C * d].reshape(C, d),
                                "mu": params["mu"] + dh[C * d:]})
            if self.momentum:
                # heavy ball on the E-MSA step: v ← β v + δ, θ ← θ + v (Polyak 1964)
                step = xt - x
                xt = x + (step if velocity is None else self.momentum * velocity + step)
            Jt = pmp.cost(model, model.unflatten(xt), X, y)
            return xt, bool(np.isfinite(Jt) and Jt < f)
        dm = self.penalty_rule.search(float(state["rho"]), trial)
        new["rho"] = np.array(dm.next)
        if not dm.accepted:
            return Step(None, new, row, self.penalty_rule.gives_up(
                "J", f"rho up to {dm.next:.1e}, KKT residual {res:.2e}: stationary to round-off?"))
        xn = dm.payload
        if self.momentum:
            new["velocity"] = xn - x
        return Step(xn, new, {**row, "cg_iterations": cg_its[0], "cg_residual": info["cg_residual"]})

    def penalty(self, it, total):
        """``(ρ_t, ρ_head,t)`` of iteration ``it`` of ``total`` (``metric="state"``): ``ρ / s_t`` with
        ``s_t`` the schedule's factor (:func:`ocdl.optim.schedules.learning_rate` with rate 1)."""
        s = learning_rate(1.0, self.rho_schedule, it, total)
        head = self.rho0 if self.head_rho is None else self.head_rho
        return self.rho0 / s, head / s

    def _state_step(self, state, it, total, x, g, params, X, y, batch):
        """The averaged state-penalty step (module docstring, ``metric="state"``) for all layers
        and the head at once → ``(x_next, state)``."""
        model = self.model
        N, m, h = model.layers, model.m, model.h
        cached = self._sweep
        if cached is not None and cached[0] is x and cached[1] is batch:
            states, costates = cached[2], cached[3]
        else:                                     # (the driver evaluated another point or batch)
            states, costates = pmp.costate(model, params, X, y)
        self._sweep = None
        rho, rho_head = self.penalty(it, total)
        a = self.metric_average
        new = {"rho": np.array(rho), "costate_average": self._average(state.get("costate_average"), g,
                                                                      self.costate_average),
               "metric": self._average(state.get("metric"), input_moments(states[:-1], model.F.act), a),
               "head_metric": self._average(state.get("head_metric"), input_moments(states[-1:])[0], a)}
        Gb = model.unflatten(new["costate_average"])
        c = np.full(N, h * model.alpha)
        if model.beta and N > 1:                  # the β smoothness term, neighbours frozen (Jacobi)
            nb = np.full(N, 2.0)
            nb[0] = nb[-1] = 1.0
            c = c + (model.beta / h) * nb
        G = np.concatenate([Gb["K"], Gb["b"][:, :, None]], axis=2)                  # (N, m, m+1)
        D = state_metric_step(G, new["metric"], c[:, None, None] * np.eye(m + 1), rho * h * h, self.damping)
        d = params["W"].shape[1]
        ch = model.alpha_head * np.eye(d + 1)
        ch[d, d] = 0.0                                                             # μ is not regularised
        GH = np.concatenate([Gb["W"], Gb["mu"][:, None]], axis=1)[None]
        DH = state_metric_step(GH, new["head_metric"][None], ch[None], rho_head, self.damping)[0]
        return model.flatten({"K": params["K"] + D[:, :, :m], "b": params["b"] + D[:, :, m],
                              "W": params["W"] + DH[:, :d], "mu": params["mu"] + DH[:, d]}), new


#: ρ of stochastic E-MSA (mini-batches), held as the floor: with the full-batch rule (ρ halves after
#: every accepted step, floor 1e-6) each step fits its batch almost exactly and the next batch's
#: cost rises — MNIST-1D, batches of 128: 14.9 % held-out after 3 epochs; ρ held at 1 / 10 / 100:
#: 19.9 / 33.1 / 27.5 % after 2 epochs; ρ ≥ 10 for 30 epochs: best epoch 52.4 % (docs/benchmarks-real.md)
BATCH_RHO = 10.0


#: the defaults of ``metric="state"`` (the mini-batch default): ρ and ρ_head (their values at the
#: start of the cosine schedule), γ, β₁ (``costate_average``), β₂ (``metric_average``) —
#: measured on MNIST-1D, batches of 128 (docs/compare.md, "MNIST-1D … stochastic E-MSA")
STATE_RHO, STATE_HEAD_RHO, STATE_DAMPING, STATE_COSTATE_AVERAGE, STATE_METRIC_AVERAGE = 3.0, 30.0, 1.0, 0.9, 0.95
METRICS = ("exact", "state")


#: 1000 E-MSA steps by default — on the built-in spirals (200 points per class, range input map,
#: width 6) 200 steps gave 82.5 % training accuracy, 1000 steps 100 % / 99.75 % held-out in 9.1 s CPU
@supports(fields=("outer",), integrators=("euler",), iterations=1000)
def msa(model, params0, X, y, *, iterations=None, callback=None, quiet=True, rho=None, rho_min=None,
        tol=1e-10, max_retries=40, cg_rtol=CG_RTOL, cg_maxiter=CG_MAXITER, momentum=0.0, metric_average=None,
        damping=None, head_rho=None, metric=None, costate_average=None, rho_schedule="cosine", state0=None,
        checkpoint=None,
        checkpoint_every=None, should_stop=None,
        batch_size=None, epochs=None, validation=None, patience=PATIENCE, test=None, batch_seed=0, **unknown):
    """E-MSA with the closed-form per-layer step (``outer`` field, ``euler``); see module docstring.

    ``iterations`` MSA steps at most (default 1000, its declaration);
    converged (``success``) when the shared KKT
    residual is ≤ ``tol``. ``metric``: the layer step, "exact" (the augmented Hamiltonian with
    both penalties, by CG; the full-batch default) or "state" (the averaged state-penalty step,
    one small solve per layer; the default with mini-batches) — see the module docstring.

    ``metric="exact"``: ``rho``/``rho_min``: the penalty's start and floor (default 1 and 1e-6;
    with mini-batches both :data:`BATCH_RHO`). ``cg_rtol``, ``cg_maxiter``: the layer step's CG
    stopping rule (:func:`batched_cg`); rows also hold ``cg_iterations`` (summed over the ρ retries)
    and ``cg_residual``. ``momentum`` (heavy ball on the step), ``metric_average``, ``damping``,
    ``head_rho`` (the head's LM damping instead of ρ): off by default.

    ``metric="state"``: ``rho``, ``head_rho`` (default :data:`STATE_RHO`, :data:`STATE_HEAD_RHO`),
    their ``rho_schedule`` ("cosine" or "constant"), ``damping`` γ (:data:`STATE_DAMPING`),
    ``costate_average`` β₁ (:data:`STATE_COSTATE_AVERAGE`), ``metric_average`` β₂
    (:data:`STATE_METRIC_AVERAGE`); the acceptance test is not made (``rho_min``, ``max_retries``,
    ``cg_*`` and ``momentum`` do not apply).

    History rows: iteration, loss, time_s, kkt, rho (the penalty the step from that iterate started
    with); ``result.kkt`` is that of the final iterate. Checkpoints hold the parameters, ρ and the averages (the rule's
    whole state), so ``state0`` resumes bit for bit.
    """
    check_options("msa", unknown)
    if model.field != "outer" or model.integrator != "euler":
        raise SolverError(f"msa has the closed-form layer step for field 'outer' with integrator 'euler' "
                          f"only (got field '{model.field}', integrator '{model.integrator}')")
    iterations = msa.supports.iterations if iterations is None else int(iterations)
    bt = Batching(model, np.asarray(X, dtype=float), y, batch_size, epochs, validation, patience, test, batch_seed)
    stochastic = bt.size < bt.n
    metric = ("state" if stochastic else "exact") if metric is None else metric
    if metric not in METRICS:
        from ocdl.errors import unknown_name
        raise unknown_name("msa metric", metric, list(METRICS))
    if metric == "state":
        if momentum:
            raise InputError("msa: momentum is the heavy ball of metric 'exact'; metric 'state' averages the "
                             "Hamiltonian's costate coefficient instead (costate_average)")
        learning_rate(1.0, rho_schedule, 1, 1)                  # an unknown schedule: one clear error
        rho = STATE_RHO if rho is None else rho
        head_rho = STATE_HEAD_RHO if head_rho is None else head_rho
        damping = STATE_DAMPING if damping is None else damping
        costate_average = STATE_COSTATE_AVERAGE if costate_average is None else costate_average
        metric_average = STATE_METRIC_AVERAGE if metric_average is None else metric_average
        for name, v in (("rho", rho), ("head_rho", head_rho)):
            if not v > 0:
                raise InputError(f"msa: {name} must be > 0 (got {v})")
        for name, v in (("costate_average", costate_average), ("metric_average", metric_average)):
            if not 0 <= v < 1:
                raise InputError(f"msa: {name} must be in [0, 1) (got {v})")
    else:
        if costate_average:
            raise InputError("msa: costate_average applies to metric 'state' only")
        damping = 0.0 if damping is None else damping
        metric_average = 0.0 if metric_average is None else metric_average
    rho = (BATCH_RHO if stochastic else 1.0) if rho is None else rho
    rho_min = (rho if stochastic else 1e-6) if rho_min is None else rho_min
    rule = MSARule(model, bt.X, bt.y, rho, rho_min, tol, max_retries, cg_rtol, cg_maxiter, momentum, metric_average,
                   damping, head_rho, metric, costate_average or 0.0, rho_schedule)
    res = _run("msa", model, params0, rule.objective, rule, iterations, callback, quiet, None, state0, checkpoint,
               checkpoint_every, should_stop, bt)
    if res.status == ITERATION_CAP:
        res.message = (f"iteration limit reached ({bt.iterations(iterations)}) before convergence "
                       f"(KKT residual {res.kkt:.2e} > tol {tol:g})")
    return res
