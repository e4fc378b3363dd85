"""Costate shooting on the reduced Hamiltonian boundary-value problem (``outer`` field, r = α/2 |θ|²).

For ``f = K σ(x) + b`` the stationarity ``∂J/∂θ_k = h[Σ_i p_{k+1,i} σ(x_{k,i})ᵀ + α K_k] = 0`` is
explicit, ``K_k = −(1/α) Σ_i p_{k+1,i} σ(x_{k,i})ᵀ``, ``b_k = −(1/α) Σ_i p_{k+1,i}``, and
eliminating θ leaves the canonical system of the reduced Hamiltonian (DESIGN.md §3)

    H̃(X, P) = −(1/2α)(‖Σ_i p_i σ(x_i)ᵀ‖²_F + |Σ_i p_i|²),   ∂H̃/∂p_i = K σ(x_i) + b,
    ∂H̃/∂x_i = σ'(x_i) ⊙ (Kᵀ p_i).

Consistency with the contract's *discrete* cost (euler): the discrete PMP equations

    x_{k+1} = x_k + h ∂H̃/∂p(x_k, p_{k+1}),    p_k = p_{k+1} + h ∂H̃/∂x(x_k, p_{k+1})

are exactly the symplectic Euler method for H̃ (state explicit, costate implicit), so the BVP
solved here has the same solutions as ``F(z) = 0`` of :mod:`ocdl.solvers.newton` and the
shared :func:`ocdl.pmp.kkt_residual` vanishes at them. One step from ``(x_k, p_k)`` solves the
small implicit equation ``θ = Stat(x_k, p_{k+1}(θ))`` with ``p_{k+1,i} = (I + h D_i Kᵀ)⁻¹ p_{k,i}``
(``D_i = diag σ'(x_{k,i})``) for the ``m² + m`` numbers θ_k by Newton (CasADi ``rootfinder``,
whose derivatives follow from the implicit-function theorem: the shooting Jacobian is exact).

Unknowns: ``P(0) = p_0`` (all samples) and the head ``(W, μ)``; with ``segments = M > 1`` also
``(x, p)`` at the interior segment starts (multiple shooting). Residuals: the matching
conditions, ``p_N − (1/n)∇_xΦ(W x_N + μ)``, and the head stationarity
``(1/n) Σ_i ∇_sΦ_i x_{N,i}ᵀ + α_head W = 0``, ``(1/n) Σ_i ∇_sΦ_i = 0``. Costates are scaled,
``q = n p``, so all unknowns are O(1); ``boundary_residual`` is ``‖residual‖∞`` in these units.
Solved by Levenberg–Marquardt with the exact (sparse) Jacobian. The initial guess (``p_0`` and the
interior ``(x, p)`` from the costate sweep) comes from ``warm_start="newton"`` — the reduced Newton
solver stopped at the loose tolerance ``warm_tol`` — or ``"adam"``: ``warm_iterations`` Adam steps.
From a point far from stationarity (e.g. a few hundred Adam steps) LM stalls in a local minimum of
``‖residual‖²`` at T = 5 even with 20 segments (measured; docs/compare.md).
"""
import numpy as np

from ocdl import pmp
from ocdl.errors import SolverError
from ocdl.progress import Progress
from ocdl.solvers._result import History, lifted, make_result, pop_loop_options


def _build(model, X0, y, segments):
    import casadi as ca
    from ocdl.solvers.casadi_kkt import labels_matrix, loss_sym, spec_from_model
    spec = spec_from_model(model)
    n, d, m, N, h, alpha = X0.shape[0], spec.d, spec.m, spec.N, spec.h, spec.alpha
    C = spec.C
    # ---- per-sample costate update q_{k+1} = (I + h D Kᵀ)^{-1} q_k  (SX)
    th = ca.SX.sym("th", m * m + m)
    xi = ca.SX.sym("x", d)
    qi = ca.SX.sym("q", d)
    K = ca.reshape(th[:m * m], m, m).T
    D = ca.diag(1 - ca.tanh(xi) ** 2)
    qn = ca.solve(ca.SX.eye(d) + h * ca.mtimes(D, K.T), qi)
    qnext = ca.Function("qnext", [th, xi, qi], [qn]).map(n, "serial")
    # ---- implicit layer equation R(θ; x, q) = θ − Stat(x, q_{k+1}(θ)) (MX)
    thm = ca.MX.sym("th", m * m + m)
    xm = ca.MX.sym("X", d, n)
    qm = ca.MX.sym("Q", d, n)
    Qn = qnext(thm, xm, qm)
    Kst = -ca.mtimes(Qn, ca.tanh(xm).T) / (n * alpha)
    bst = -ca.sum2(Qn) / (n * alpha)
    R = thm - ca.vertcat(ca.vec(Kst.T), bst)
    Rf = ca.Function("R", [thm, xm, qm], [R])
    root = ca.rootfinder("layer", "newton", Rf, {"abstol": 1e-14, "max_iter": 60, "error_on_fail": False})
    # the initial guess of the inner Newton iteration is an input (the previous outer iterate's θ_k):
    # Stat amplifies errors by 1/α, so a guess built from q_k instead of q_{k+1} is far too crude
    guess = ca.MX.sym("guess", m * m + m)
    thk = root(guess, xm, qm)
    Qn_k = qnext(thk, xm, qm)
    Kk = ca.reshape(thk[:m * m], m, m).T
    Xn_k = xm + h * (ca.mtimes(Kk, ca.tanh(xm)) + ca.repmat(thk[m * m:], 1, n))
    layer = ca.Function("layer", [xm, qm, guess], [Xn_k, Qn_k, thk])
    # ---- terminal: ∇_x Φ per sample (scaled q) and head stationarity
    xs = ca.SX.sym("x", d)
    Wf = ca.SX.sym("W", C * d)
    mus = ca.SX.sym("mu", C)
    labs = ca.SX.sym("lab", 1 if C == 1 else C)
    Li = loss_sym(spec, ca.mtimes(ca.reshape(Wf, d, C).T, xs) + mus, labs)
    term = ca.Function("term", [xs, Wf, mus, labs],
                       [ca.gradient(Li, xs), ca.gradient(Li, ca.vertcat(Wf, mus))])
    term_q = term.map("term_q", "serial", n, [1, 2], [1])
    # ---- unknowns
    bounds = [round(j * N / segments) for j in range(segments + 1)]
    q0 = ca.MX.sym("q0", d, n)
    inner = [(ca.MX.sym(f"xs{j}", d, n), ca.MX.sym(f"qs{j}", d, n)) for j in range(1, segments)]
    Wm = ca.MX.sym("W", C * d)
    mum = ca.MX.sym("mu", C)
    u = ca.vertcat(ca.vec(q0), *[ca.vertcat(ca.vec(a), ca.vec(b)) for a, b in inner], Wm, mum)
    starts = [(ca.DM(X0.T), q0)] + inner
    res, thetas = [], []
    Th = ca.MX.sym("theta_guess", m * m + m, N)
    for j in range(segments):
        x, q = starts[j]
        for k in range(bounds[j], bounds[j + 1]):
            x, q, t = layer(x, q, Th[:, k])
            thetas.append(t)
        if j < segments - 1:
            res += [ca.vec(x - inner[j][0]), ca.vec(q - inner[j][1])]
    lab = ca.DM(labels_matrix(spec, y))
    gx, gh = term_q(x, Wm, mum, lab)
    headres = gh / n + ca.vertcat(spec.alpha_head * Wm, ca.DM.zeros(C))
    res += [ca.vec(q - gx), headres]
    r = ca.vertcat(*res)
    F = ca.Function("shoot", [u, Th], [r, ca.horzcat(*thetas)])
    Jf = ca.Function("shoot_jac", [u, Th], [ca.jacobian(r, u)])
    return spec, F, Jf, bounds, u.numel()


def shooting(model, params0, X, y, *, iterations=None, callback=None, quiet=True, segments=1, tol=1e-8,
             warm_start="newton", warm_tol=1e-10, warm_iterations=300, lr=0.02, lm_lambda=1e-10, **unused):
    """Levenberg–Marquardt shooting on the reduced Hamiltonian BVP (see module docstring)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla
    pop_loop_options("shooting", unused)
    if unused:
        raise SolverError(f"shooting: unknown option(s) {', '.join(sorted(unused))}")
    if model.field != "outer" or model.integrator != "euler" or model.beta != 0 or model.alpha <= 0:
        raise SolverError("shooting needs field 'outer', integrator 'euler', beta = 0 and alpha > 0 "
                          f"(got field '{model.field}', integrator '{model.integrator}', beta {model.beta}, "
                          f"alpha {model.alpha})")
    segments = int(segments)
    if not 1 <= segments <= model.layers:
        raise SolverError(f"--segments must be between 1 and the number of layers {model.layers} (got {segments})")
    iterations = 100 if iterations is None else int(iterations)
    X = np.asarray(X, dtype=float)
    X0 = lifted(model, X)
    n, N = X0.shape[0], model.layers
    progress = Progress(iterations, "shooting", quiet)
    hist = History(callback, progress)
    params = {k: np.array(v, dtype=float) for k, v in params0.items()}
    if warm_start == "newton":
        # homotopy start: the reduced Newton solver to a loose tolerance, then shooting polishes
        from ocdl.solvers.newton import newton
        params = newton(model, params, X, y, tol=warm_tol, quiet=True).x
        warm_iterations = 0
    elif warm_start != "adam":
        raise SolverError(f"shooting: unknown warm_start '{warm_start}' (valid: newton, adam)")
    # ---- warm start: Adam with the exact costate gradient
    mom = {k: np.zeros_like(v) for k, v in params.items()}
    sec = {k: np.zeros_like(v) for k, v in params.items()}
    for t in range(1, warm_iterations + 1):
        J, g = pmp.value_and_grad(model, params, X, y)
        for key in params:
            mom[key] = 0.9 * mom[key] + 0.1 * g[key]
            sec[key] = 0.999 * sec[key] + 0.001 * g[key] ** 2
            params[key] = params[key] - lr * (mom[key] / (1 - 0.9 ** t)) / (
                np.sqrt(sec[key] / (1 - 0.999 ** t)) + 1e-8)
    spec, F, Jf, bounds, nu = _build(model, X0, y, segments)
    build_s = hist.elapsed()
    states, costates = pmp.costate(model, params, X, y)
    q = n * costates
    parts = [q[0].T.ravel(order="F")]
    for j in range(1, segments):
        k = bounds[j]
        parts += [states[k].T.ravel(order="F"), q[k].T.ravel(order="F")]
    parts += [params["W"].ravel(), params["mu"]]
    u = np.concatenate(parts)

    th = np.stack([np.concatenate([params["K"][k].ravel(), params["b"][k]]) for k in range(N)], axis=1)

    def residual(u, guess):
        r, th = F(u, guess)
        return np.asarray(r).ravel(), np.asarray(th)

    r, th = residual(u, th)
    rn = float(np.max(np.abs(r))) if np.all(np.isfinite(r)) else np.inf
    if not np.isfinite(rn):
        raise SolverError("shooting: the initial trajectory is not finite (try --segments or more warm-up)")
    lam = float(lm_lambda)
    it = 0
    converged = rn <= tol

    def to_params(u, th):
        m, C, d = spec.m, spec.C, spec.d
        th = np.asarray(th)
        K = np.stack([th[:m * m, k].reshape(m, m) for k in range(N)])
        b = np.stack([th[m * m:, k] for k in range(N)])
        return {"K": K, "b": b, "W": u[nu - C - C * d:nu - C].reshape(C, d), "mu": u[nu - C:].copy()}

    cur = to_params(u, th)
    hist.add(0, pmp.cost(model, cur, X, y), pmp.kkt_residual(model, cur, X, y), boundary_residual=rn)
    while it < iterations and not converged:
        Jd = Jf(u, th)
        Jm = sp.csc_matrix(Jd.sparse()) if segments > 1 else np.asarray(Jd)
        JtJ = Jm.T @ Jm
        Jtr = Jm.T @ r
        scale = float(JtJ.diagonal().mean())           # λ is relative to the mean curvature
        accepted = False
        for _ in range(30):
            if segments > 1:
                du = -spla.spsolve(sp.csc_matrix(JtJ + lam * scale * sp.identity(nu)), Jtr)
            else:
                du = -np.linalg.solve(JtJ + lam * scale * np.eye(nu), Jtr)
            rt, tht = residual(u + du, th)
            if np.all(np.isfinite(rt)) and np.linalg.norm(rt) < np.linalg.norm(r):
                accepted = True
                break
            lam = max(lam * 10.0, 1e-14)
        it += 1
        if not accepted:
            break
        u, r, th = u + du, rt, tht
        lam = lam / 10.0
        rn = float(np.max(np.abs(r)))
        cur = to_params(u, th)
        hist.add(it, pmp.cost(model, cur, X, y), pmp.kkt_residual(model, cur, X, y), boundary_residual=rn,
                 lm_lambda=lam)
        converged = rn <= tol
    progress.close()
    params = to_params(u, th)
    J = pmp.cost(model, params, X, y)
    msg = (f"converged: boundary residual {rn:.2e} <= {tol:g}" if converged
           else f"stopped after {it} Levenberg–Marquardt steps (boundary residual {rn:.2e})")
    return make_result(model, params, J, converged, msg, it, hist.rows, boundary_residual=rn,
                       kkt=pmp.kkt_residual(model, params, X, y), segments=segments, build_time_s=build_s,
                       solver="shooting", wall_time_s=hist.elapsed())
