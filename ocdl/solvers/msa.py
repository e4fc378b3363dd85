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
"""
import numpy as np

from ocdl import pmp
from ocdl.errors import SolverError
from ocdl.progress import Progress
from ocdl.solvers._result import pop_loop_options, History, make_result


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


def msa(model, params0, X, y, *, iterations=None, callback=None, quiet=True, rho=1.0, rho_min=1e-6,
        tol=1e-10, max_retries=40, **unused):
    """E-MSA with the closed-form per-layer step (``outer`` field, ``euler``); see module docstring."""
    should_stop = pop_loop_options("msa", unused)
    if unused:
        raise SolverError(f"msa: unknown option(s) {', '.join(sorted(unused))}")
    if model.field != "outer" or model.integrator != "euler":
        raise SolverError(f"msa has the closed-form layer step for field 'outer' with integrator 'euler' "
                          f"only (got field '{model.field}', integrator '{model.integrator}')")
    iterations = 200 if iterations is None else int(iterations)
    X = np.asarray(X, dtype=float)
    N, m = model.layers, model.m
    params = {k: np.array(v, dtype=float) for k, v in params0.items()}
    progress = Progress(iterations, "msa", quiet)
    hist = History(callback, progress)
    J, grads = pmp.value_and_grad(model, params, X, y)
    res = pmp.kkt_residual(model, params, X, y, grads=grads)
    hist.add(0, J, res, rho=rho)
    it = 0
    converged = res <= tol
    message = ""
    while it < iterations and not converged:
        states, costates = pmp.costate(model, params, X, y)
        gh = np.concatenate([grads["W"].ravel(), grads["mu"]])
        Hh = _head_hessian(model, params, states[-1], y)
        lam_bar = np.trace(Hh) / Hh.shape[0]
        for _ in range(max_retries):
            K_new, b_new = layer_step(model, params, states, costates, grads, rho)
            dh = -np.linalg.solve(Hh + rho * lam_bar * np.eye(Hh.shape[0]), gh)
            C, d = params["W"].shape
            trial = {"K": K_new, "b": b_new,
                     "W": params["W"] + dh[:C * d].reshape(C, d),
                     "mu": params["mu"] + dh[C * d:]}
            Jt = pmp.cost(model, trial, X, y)
            if np.isfinite(Jt) and Jt < J:
                break
            rho *= 4.0
        else:
            message = f"no decrease found with rho up to {rho:.1e} (stationary to round-off?)"
            break
        params = trial
        rho = max(rho / 2.0, rho_min)
        it += 1
        J, grads = pmp.value_and_grad(model, params, X, y)
        res = pmp.kkt_residual(model, params, X, y, grads=grads)
        hist.add(it, J, res, rho=rho, params=None)
        if (callback is not None and callback(it, params, J)) or (should_stop is not None and should_stop()):
            message = "stopped by callback"
            break
        converged = res <= tol
    progress.close()
    if not message:
        message = (f"converged: KKT residual {res:.2e} <= {tol:g}" if converged
                   else f"iteration limit {iterations} reached (KKT residual {res:.2e})")
    return make_result(model, params, J, converged, message, it, hist.rows, kkt=float(res), rho=rho,
                       solver="msa", wall_time_s=hist.elapsed())
