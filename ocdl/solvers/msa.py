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
``δK``. The minimiser is the closed form ``δ_k = −M_k⁻¹ G_k`` (one small SPD solve per layer,
batched over layers). β-smoothness terms enter with the neighbours frozen (Jacobi).
The head ``(W, μ)`` takes a Levenberg–Marquardt step ``−(H_head + ρ λ̄ I)⁻¹ ∇_{W,μ} J``.

ρ rule: a trial step is accepted only if ``J`` decreases; then ``ρ ← max(ρ/2, ρ_min)``;
otherwise ``ρ ← 4ρ`` and the step is recomputed from the same sweeps. Since ``ρ → ∞`` turns the
step into an ever shorter preconditioned gradient step, a decrease is always found at a
non-stationary point: the loss decreases monotonically (tested on spirals).

The iteration is :class:`MSARule`, stepped by :func:`ocdl.optim.minimize` (history, progress,
callback, divergence, checkpoints with ρ in the rule state).
"""
import numpy as np

from ocdl import pmp
from ocdl.errors import SolverError
from ocdl.optim import CONVERGED, ITERATION_CAP, STALLED, StopRun
from ocdl.solvers.gradient import _run
from ocdl.solvers.newton import check_options


def _layer_metrics(model, states, costates, rho):
    """Per-layer curvature matrices ``M_k`` of the augmented Hamiltonian in ``δ = (vec δK, δb)``."""
    N, m, h = model.layers, model.m, model.h
    n = states.shape[1]
    x = states[:-1]                                   # (N, n, m)
    p = costates[1:]                                  # (N, n, m)  p_{k+1}
    sig = np.tanh(x)
    dsig2 = (1.0 - sig * sig) ** 2
    a = np.concatenate([sig, np.ones((N, n, 1))], axis=2)     # [σ_i; 1]  (N, n, m+1)
    S = np.einsum("kia,kib->kab", a, a) / n                     # (N, m+1, m+1)
    # costate penalty: T[k, c, r, r'] = n Σ_i σ'(x_ic)² p_ir p_ir'
    T = n * np.einsum("kic,kir,kis->kcrs", dsig2, p, p)
    dim = m * m + m
    M = np.zeros((N, dim, dim))
    # state penalty: for each row r of (δK, δb): indices r*m + c (c < m) and m*m + r (the b entry)
    for r in range(m):
        idx = [r * m + c for c in range(m)] + [m * m + r]
        M[:, np.ix_(idx, idx)[0], np.ix_(idx, idx)[1]] += rho * h * h * S
    for c in range(m):
        idx = [r * m + c for r in range(m)]
        M[:, np.ix_(idx, idx)[0], np.ix_(idx, idx)[1]] += rho * h * h * T[:, c]
    M += h * model.alpha * np.eye(dim)[None]
    if model.beta and N > 1:
        nb = np.full(N, 2.0)
        nb[0] = nb[-1] = 1.0
        M += (model.beta / h) * nb[:, None, None] * np.eye(dim)[None]
    return M


def _head_hessian(model, params, xN, y):
    """Hessian of ``(1/n) Σ Φ(W x + μ) + (α_head/2)‖W‖²`` in ``(vec W, μ)``."""
    n = xN.shape[0]
    s = xN @ params["W"].T + params["mu"]
    C = s.shape[1]
    if C == 1:
        q = 1.0 / (1.0 + np.exp(-s[:, 0]))
        A = (q * (1 - q))[:, None, None]                         # (n, 1, 1)
    else:
        e = np.exp(s - s.max(axis=1, keepdims=True))
        q = e / e.sum(axis=1, keepdims=True)
        A = q[:, :, None] * np.eye(C)[None] - q[:, :, None] * q[:, None, :]
    d = xN.shape[1]
    # ordering (W row-major (C, d), then μ (C))
    HWW = np.einsum("iab,ic,ie->acbe", A, xN, xN).reshape(C * d, C * d) / n
    HWm = np.einsum("iab,ic->acb", A, xN).reshape(C * d, C) / n
    Hmm = A.sum(axis=0) / n
    H = np.block([[HWW, HWm], [HWm.T, Hmm]])
    H[:C * d, :C * d] += model.alpha_head * np.eye(C * d)
    return H


def layer_step(model, params, states, costates, grads, rho):
    """Closed-form minimiser ``(K_k, b_k)`` of the augmented Hamiltonian for every layer (β = 0
    or neighbours frozen); ``grads`` are the exact ∂J/∂θ from the same sweep."""
    N, m = model.layers, model.m
    G = np.concatenate([grads["K"].reshape(N, m * m), grads["b"]], axis=1)
    M = _layer_metrics(model, states, costates, rho)
    delta = -np.linalg.solve(M, G[:, :, None])[:, :, 0]
    return params["K"] + delta[:, :m * m].reshape(N, m, m), params["b"] + delta[:, m * m:]


class MSARule:
    """The E-MSA iteration as a rule of :func:`ocdl.optim.minimize` (flat parameters ``x``).

    ``step``: converged (``StopRun``, status 0) when the shared KKT residual of the iterate is
    ≤ ``tol``; else the closed-form layer step and the head's LM step with penalty ρ, retried with
    ``ρ ← 4ρ`` until the cost decreases (then ``ρ ← max(ρ/2, ρ_min)``); no decrease after
    ``max_retries`` → stalled (status 3). Its state (for checkpoints) is ρ.
    """
    name = "msa"

    def __init__(self, model, X, y, rho=1.0, rho_min=1e-6, tol=1e-10, max_retries=40):
        self.model, self.X, self.y = model, X, y
        self.rho0, self.rho_min, self.tol, self.max_retries = float(rho), float(rho_min), float(tol), int(max_retries)

    def start(self, x, saved, ctx):
        self.rho = float(saved["rho"]) if saved else self.rho0

    def state(self):
        return {"rho": np.array(self.rho)}

    def objective(self, x, batch=None):
        """``(J, ∇J, {"kkt", "rho"})`` by the costate sweep; ``rho`` is the penalty the next step starts from."""
        model = self.model
        params = model.unflatten(x)
        J, grads = pmp.value_and_grad(model, params, self.X, self.y)
        return J, model.flatten(grads), {"kkt": pmp.kkt_residual(model, params, self.X, self.y, grads=grads),
                                         "rho": self.rho}

    def step(self, it, x, f, g, ctx):
        model, X, y = self.model, self.X, self.y
        params, grads = model.unflatten(x), model.unflatten(g)
        res = pmp.kkt_residual(model, params, X, y, grads=grads)
        if res <= self.tol:
            raise StopRun(f"converged: KKT residual {res:.2e} <= {self.tol:g}", CONVERGED)
        states, costates = pmp.costate(model, params, X, y)
        gh = np.concatenate([grads["W"].ravel(), grads["mu"]])
        Hh = _head_hessian(model, params, states[-1], y)
        lam_bar = np.trace(Hh) / Hh.shape[0]
        C, d = params["W"].shape
        for _ in range(self.max_retries):
            K_new, b_new = layer_step(model, params, states, costates, grads, self.rho)
            dh = -np.linalg.solve(Hh + self.rho * lam_bar * np.eye(Hh.shape[0]), gh)
            trial = {"K": K_new, "b": b_new, "W": params["W"] + dh[:C * d].reshape(C, d),
                     "mu": params["mu"] + dh[C * d:]}
            Jt = pmp.cost(model, trial, X, y)
            if np.isfinite(Jt) and Jt < f:
                break
            self.rho *= 4.0
        else:
            raise StopRun(f"no decrease found with rho up to {self.rho:.1e} (KKT residual {res:.2e}: "
                          f"stationary to round-off?)", STALLED)
        self.rho = max(self.rho / 2.0, self.rho_min)
        return model.flatten(trial)


def msa(model, params0, X, y, *, iterations=None, callback=None, quiet=True, rho=1.0, rho_min=1e-6,
        tol=1e-10, max_retries=40, state0=None, checkpoint=None, checkpoint_every=None, should_stop=None, **unknown):
    """E-MSA with the closed-form per-layer step (``outer`` field, ``euler``); see module docstring.

    ``iterations`` MSA steps at most (default 200); converged (``success``) when the shared KKT
    residual is ≤ ``tol``. History rows: iteration, loss, time_s, kkt, rho; ``result.kkt`` and
    ``result.rho`` are those of the final iterate. Checkpoints hold the parameters and ρ, so
    ``state0`` resumes bit for bit.
    """
    check_options("msa", unknown)
    if model.field != "outer" or model.integrator != "euler":
        raise SolverError(f"msa has the closed-form layer step for field 'outer' with integrator 'euler' "
                          f"only (got field '{model.field}', integrator '{model.integrator}')")
    iterations = 200 if iterations is None else int(iterations)
    X = np.asarray(X, dtype=float)
    rule = MSARule(model, X, y, rho, rho_min, tol, max_retries)
    res = _run("msa", model, params0, rule.objective, rule, iterations, callback, quiet, None, state0, checkpoint,
               checkpoint_every, should_stop)
    if res.status == ITERATION_CAP:
        res.message = (f"iteration limit reached ({iterations}) before convergence "
                       f"(KKT residual {res.kkt:.2e} > tol {tol:g})")
    return res
