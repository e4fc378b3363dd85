"""Extended method of successive approximations (E-MSA; Li, Chen, Tai, E, JMLR 18 (2018)).

One iteration at the current controls ``θ⁰``:

1. forward sweep   ``x_{k+1} = x_k + h f(x_k, θ⁰_k)``            (states)
2. backward sweep  ``p_k = p_{k+1} + h (∂f/∂x)ᵀ p_{k+1}``, ``p_N = (1/n)∇Φ``  (costates)
3. for every layer ``k`` (all layers at once) minimise the augmented discrete Hamiltonian

       H̃_k(θ) = Σ_i p_{k+1,i}ᵀ (x_{k,i} + h f(x_{k,i}, θ)) + h r(θ)
                + (ρ/2) (1/n) Σ_i |x_{k+1,i} − x_{k,i} − h f(x_{k,i}, θ)|²
                + (ρ/2) n Σ_i |p_{k,i} − p_{k+1,i} − h (∂f/∂x(x_{k,i}, θ))ᵀ p_{k+1,i}|²

   (the penalty terms are Li et al.'s feasibility errors of the state and costate equations;
   the factors ``1/n`` and ``n`` make both O(1) since ``p = O(1/n)``).

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
performs steps 1–3 and the acceptance test on one shuffled mini-batch (the iterate's
``ctx.batch``), i.e. E-MSA on the batch cost ``J_B``; the ρ rule then adapts to the batch
sequence. ``epochs``, ``validation``, ``patience`` and ``test`` as for the gradient solvers
(:class:`ocdl.solvers.gradient.Batching`).
"""
import numpy as np

from ocdl import pmp
from ocdl.errors import SolverError
from ocdl.optim import CONVERGED, ITERATION_CAP, STALLED, Step, Stop
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
    """The E-MSA iteration as a rule of :func:`ocdl.optim.minimize` (flat parameters ``x``).

    ``update``: converged (``Stop``, status 0) when the shared KKT residual of the iterate is
    ≤ ``tol``; else the closed-form layer step and the head's LM step with penalty ρ, retried with
    ``ρ ← 4ρ`` until the cost decreases (then ``ρ ← max(ρ/2, ρ_min)``); no decrease after
    ``max_retries`` → stalled (status 3). Its state (for checkpoints) is ``rho`` (and the heavy-ball
    ``velocity``, the averaged ``metric``); ``self.rho`` mirrors it for the objective's ``rho`` key.
    """
    name = "msa"

    def __init__(self, model, X, y, rho=1.0, rho_min=1e-6, tol=1e-10, max_retries=40, cg_rtol=CG_RTOL,
                 cg_maxiter=CG_MAXITER, momentum=0.0, metric_average=0.0, damping=0.0, head_rho=None):
        self.model, self.X, self.y = model, X, y
        self.rho0, self.rho_min, self.tol, self.max_retries = float(rho), float(rho_min), float(tol), int(max_retries)
        self.cg_rtol, self.cg_maxiter = float(cg_rtol), int(cg_maxiter)
        self.momentum, self.metric_average, self.damping = float(momentum), float(metric_average), float(damping)
        self.head_rho = None if head_rho is None else float(head_rho)

    def init(self, x, saved, run):
        return self._load(saved or {"rho": self.rho0})

    def _load(self, state):
        """The state's ρ, velocity and metric as the step's working values (``self.rho`` is also the
        objective's ``rho``)."""
        self.rho = float(state["rho"])
        self.velocity = np.asarray(state["velocity"]) if "velocity" in state else None
        self.S = np.asarray(state["metric"]) if "metric" in state else None
        return self._state()

    def _state(self):
        out = {"rho": np.array(self.rho)}
        if self.velocity is not None:
            out["velocity"] = self.velocity
        if self.S is not None:
            out["metric"] = self.S
        return out

    def _metric(self, states):
        """The state-penalty metric S_k of this step: the batch's, or (``metric_average`` = a > 0)
        its exponential average over the batches, ``S ← a S + (1 − a) S_batch`` (K-FAC's running
        estimate of the layer's input second moment, Martens & Grosse 2015)."""
        if not self.metric_average:
            return None
        N, n = self.model.layers, states.shape[1]
        a = np.concatenate([self.model.F.act(states[:-1]), np.ones((N, n, 1))], axis=2)
        Sb = np.matmul(a.transpose(0, 2, 1), a) / n
        self.S = Sb if self.S is None else self.metric_average * self.S + (1.0 - self.metric_average) * Sb
        return self.S

    def data(self, batch):
        """The rows of ``batch`` (None: all data)."""
        return (self.X, self.y) if batch is None else (self.X[batch], self.y[batch])

    def objective(self, x, batch=None):
        """``(J, ∇J, {"kkt", "rho"})`` by the costate sweep (on ``batch``'s rows); ``rho`` is the
        penalty the next step starts from."""
        model = self.model
        params = model.unflatten(x)
        X, y = self.data(batch)
        J, grads = pmp.value_and_grad(model, params, X, y)
        return J, model.flatten(grads), {"kkt": pmp.kkt_residual(model, params, X, y, grads=grads),
                                         "rho": self.rho}

    def update(self, state, p, run):
        model, x, f, g = self.model, p.x, p.f, p.g
        self._load(state)
        X, y = self.data(p.batch)
        params, grads = model.unflatten(x), model.unflatten(g)
        res = pmp.kkt_residual(model, params, X, y, grads=grads)
        if res <= self.tol:
            return Step(None, state, stop=Stop(f"converged: KKT residual {res:.2e} <= {self.tol:g}", CONVERGED))
        states, costates = pmp.costate(model, params, X, y)
        gh = np.concatenate([grads["W"].ravel(), grads["mu"]])
        Hh = _head_hessian(model, params, states[-1], y)
        lam_bar = np.trace(Hh) / Hh.shape[0]
        C, d = params["W"].shape
        cg_its, info = 0, {}
        S = self._metric(states)
        for _ in range(self.max_retries):
            K_new, b_new = layer_step(model, params, states, costates, grads, self.rho, self.cg_rtol,
                                      self.cg_maxiter, info, S, self.damping)
            cg_its += info["cg_iterations"]
            rh = self.rho if self.head_rho is None else self.head_rho
            dh = -np.linalg.solve(Hh + rh * lam_bar * np.eye(Hh.shape[0]), gh)
            trial = {"K": K_new, "b": b_new, "W": params["W"] + dh[:C * d].reshape(C, d),
                     "mu": params["mu"] + dh[C * d:]}
            if self.momentum:
                # heavy ball on the E-MSA step: v ← β v + δ, θ ← θ + v (Polyak 1964)
                step = model.flatten(trial) - x
                v = step if self.velocity is None else self.momentum * self.velocity + step
                trial = model.unflatten(x + v)
            Jt = pmp.cost(model, trial, X, y)
            if np.isfinite(Jt) and Jt < f:
                break
            self.rho *= 4.0
        else:
            return Step(None, self._state(), stop=Stop(f"no decrease found with rho up to {self.rho:.1e} (KKT residual "
                                                       f"{res:.2e}: stationary to round-off?)", STALLED))
        self.rho = max(self.rho / 2.0, self.rho_min)
        xn = model.flatten(trial)
        if self.momentum:
            self.velocity = xn - x
        return Step(xn, self._state(), {"cg_iterations": cg_its, "cg_residual": info["cg_residual"]})


#: ρ of stochastic E-MSA (mini-batches), held as the floor: with the full-batch rule (ρ halves after
#: every accepted step, floor 1e-6) each step fits its batch almost exactly and the next batch's
#: cost rises — MNIST-1D, batches of 128: 14.9 % held-out after 3 epochs; ρ held at 1 / 10 / 100:
#: 19.9 / 33.1 / 27.5 % after 2 epochs; ρ ≥ 10 for 30 epochs: best epoch 52.4 % (docs/benchmarks-real.md)
BATCH_RHO = 10.0


#: 1000 E-MSA steps by default — on the built-in spirals (200 points per class, range input map,
#: width 6) 200 steps gave 82.5 % training accuracy, 1000 steps 100 % / 99.75 % held-out in 9.1 s CPU
@supports(fields=("outer",), integrators=("euler",), iterations=1000)
def msa(model, params0, X, y, *, iterations=None, callback=None, quiet=True, rho=None, rho_min=None,
        tol=1e-10, max_retries=40, cg_rtol=CG_RTOL, cg_maxiter=CG_MAXITER, momentum=0.0, metric_average=0.0,
        damping=0.0, head_rho=None, state0=None, checkpoint=None,
        checkpoint_every=None, should_stop=None,
        batch_size=None, epochs=None, validation=None, patience=PATIENCE, test=None, batch_seed=0, **unknown):
    """E-MSA with the closed-form per-layer step (``outer`` field, ``euler``); see module docstring.

    ``iterations`` MSA steps at most (default 1000, its declaration);
    converged (``success``) when the shared KKT
    residual is ≤ ``tol``. ``rho``/``rho_min``: the penalty's start and floor (default 1 and 1e-6;
    with mini-batches both :data:`BATCH_RHO`). ``cg_rtol``, ``cg_maxiter``: the layer step's CG
    stopping rule (:func:`batched_cg`); rows also hold ``cg_iterations`` (summed over the ρ retries)
    and ``cg_residual``. History rows: iteration, loss, time_s, kkt, rho; ``result.kkt`` and
    ``result.rho`` are those of the final iterate. Checkpoints hold the parameters and ρ, so
    ``state0`` resumes bit for bit.
    """
    check_options("msa", unknown)
    if model.field != "outer" or model.integrator != "euler":
        raise SolverError(f"msa has the closed-form layer step for field 'outer' with integrator 'euler' "
                          f"only (got field '{model.field}', integrator '{model.integrator}')")
    iterations = msa.supports.iterations if iterations is None else int(iterations)
    bt = Batching(model, np.asarray(X, dtype=float), y, batch_size, epochs, validation, patience, test, batch_seed)
    stochastic = bt.size < bt.n
    rho = (BATCH_RHO if stochastic else 1.0) if rho is None else rho
    rho_min = (rho if stochastic else 1e-6) if rho_min is None else rho_min
    rule = MSARule(model, bt.X, bt.y, rho, rho_min, tol, max_retries, cg_rtol, cg_maxiter, momentum, metric_average,
                   damping, head_rho)
    res = _run("msa", model, params0, rule.objective, rule, iterations, callback, quiet, None, state0, checkpoint,
               checkpoint_every, should_stop, bt)
    if res.status == ITERATION_CAP:
        res.message = (f"iteration limit reached ({bt.iterations(iterations)}) before convergence "
                       f"(KKT residual {res.kkt:.2e} > tol {tol:g})")
    return res
