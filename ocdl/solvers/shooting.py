"""Costate shooting on the reduced Hamiltonian boundary-value problem (``outer`` field, r = α/2 |θ|²).

For ``f = K σ(x) + b`` the stationarity ``∂J/∂θ_k = h[Σ_i p_{k+1,i} σ(x_{k,i})ᵀ + α K_k] = 0`` is
explicit, ``K_k = −(1/α) Σ_i p_{k+1,i} σ(x_{k,i})ᵀ``, ``b_k = −(1/α) Σ_i p_{k+1,i}``, and
eliminating θ leaves the canonical system of the reduced Hamiltonian

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
Solved by Levenberg–Marquardt (:class:`ShootingLM`, converged when the boundary and the shared KKT
residual are ≤ ``tol``) with the exact Jacobian, on :func:`ocdl.optim.minimize`. The initial guess (``p_0`` and the
interior ``(x, p)`` from the costate sweep) comes from ``warm_start="newton"`` — the reduced Newton
solver stopped at the loose tolerance ``warm_tol`` — or ``"adam"``: ``warm_iterations`` Adam steps.
From a point far from stationarity (e.g. a few hundred Adam steps) LM stalls in a local minimum of
``‖residual‖²`` at T = 5 even with 20 segments (measured; docs/compare.md).
"""
import time

import numpy as np
import scipy.sparse as sp

from ocdl import optim, pmp
from ocdl.errors import SolverError
from ocdl.optim import CONVERGED, ITERATION_CAP, STALLED, StopRun
from ocdl.solvers.newton import newton
from ocdl.solvers.pontryagin import KKTObjective, Phases, check_options, refuse_checkpoints


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


class ShootingLM:
    """Levenberg–Marquardt on the shooting residual ``r(u)`` as a rule of :func:`ocdl.optim.minimize`::

        (JᵀJ + λ · mean(diag JᵀJ) · I) δ = −Jᵀ r,   accepted if ‖r(u + δ)‖ < ‖r(u)‖ (then λ ← λ/10),
        else λ ← max(10 λ, 1e-14) and solve again (at most 30 times)

    (Levenberg's isotropic damping relative to the mean curvature, dense solve for one segment,
    sparse for several). Converged (status 0) when the boundary residual ``‖r‖∞`` and the shared
    KKT residual of the iterate (both in its history row) are ≤ ``tol``; no decrease of ‖r‖ in 30
    tries → stalled (status 3). The core's :class:`ocdl.optim.LevenbergMarquardt` damps with
    ``diag(JᵀJ)`` (factors 1/3 and 4, μ ≥ 1e-12) and solves densely: on this badly conditioned
    Jacobian (cond ~1e11 at T = 1, one segment, n = 40, from ``newton`` at KKT 1e-8) it had not
    converged after 30 steps where this rule needs 6 (measured), hence this rule."""
    name = "shooting"

    def __init__(self, problem, tol, lam0=1e-10):
        self.problem, self.tol, self.lam0 = problem, float(tol), float(lam0)

    def start(self, x, saved, ctx):
        self.lam = float(saved["lm_lambda"]) if saved else self.lam0

    def state(self):
        return {"lm_lambda": np.array(self.lam)}

    def step(self, it, u, f, g, ctx):
        import scipy.sparse.linalg as spla
        row = ctx.history[-1]
        if row["boundary_residual"] <= self.tol and row["kkt"] <= self.tol:
            raise StopRun(f"converged: boundary residual {row['boundary_residual']:.2e} and KKT residual "
                          f"{row['kkt']:.2e} <= {self.tol:g}", CONVERGED)
        r = self.problem.residual(u)
        Jm = self.problem.jacobian(u)
        JtJ = Jm.T @ Jm
        Jtr = Jm.T @ r
        scale = float(JtJ.diagonal().mean())           # λ is relative to the mean curvature
        nr = np.linalg.norm(r)
        for _ in range(30):
            if sp.issparse(JtJ):
                du = -spla.spsolve(sp.csc_matrix(JtJ + self.lam * scale * sp.identity(u.size)), Jtr)
            else:
                du = -np.linalg.solve(JtJ + self.lam * scale * np.eye(u.size), Jtr)
            rt = self.problem.residual(u + du)
            if np.all(np.isfinite(rt)) and np.linalg.norm(rt) < nr:
                break
            self.lam = max(self.lam * 10.0, 1e-14)
        else:
            raise StopRun(f"stalled: no Levenberg–Marquardt step lowers ‖r‖ (boundary residual "
                          f"{row['boundary_residual']:.2e}, KKT residual {row['kkt']:.2e})", STALLED)
        self.lam = self.lam / 10.0
        row["lm_lambda"] = self.lam
        return u + du


class ShootingProblem:
    """The shooting residual ``r(u)`` and its exact Jacobian for ``u`` = (P(0), interior (x, p), head).

    The inner layer solves start from the θ of the accepted iterate (``guess``); every residual
    evaluation remembers the θ it found, and the Jacobian at an evaluated ``u`` makes its θ the new
    guess (LM evaluates the Jacobian only at accepted iterates). ``params(u)`` are the network
    parameters at ``u`` (θ from the layer solves, head from ``u``)."""

    def __init__(self, model, X, y, segments):
        self.model, self.X, self.y = model, X, y
        self.spec, self.F, self.Jf, self.bounds, self.nu = _build(model, model.lift(X), y, segments)
        self.segments = segments
        self._seen = []                                  # [(u, r, θ)] of the last evaluations

    def start(self, params):
        """``u`` from parameters (costates of the sweep, scaled q = n p) and θ as the first guess."""
        model, N, segments = self.model, self.model.layers, self.segments
        n = self.X.shape[0]
        states, costates = pmp.costate(model, params, self.X, self.y)
        q = n * costates
        parts = [q[0].T.ravel(order="F")]
        for j in range(1, segments):
            k = self.bounds[j]
            parts += [states[k].T.ravel(order="F"), q[k].T.ravel(order="F")]
        parts += [params["W"].ravel(), params["mu"]]
        self.guess = np.stack([np.concatenate([params["K"][k].ravel(), params["b"][k]]) for k in range(N)], axis=1)
        return np.concatenate(parts)

    def _eval(self, u):
        for item in self._seen:
            if np.array_equal(item[0], u):
                return item
        r, th = self.F(u, self.guess)
        item = (np.array(u, dtype=float, copy=True), np.asarray(r).ravel(), np.asarray(th))
        self._seen = [item] + self._seen[:3]
        return item

    def residual(self, u):
        return self._eval(u)[1]

    def jacobian(self, u):
        self.guess = self._eval(u)[2]
        Jd = self.Jf(u, self.guess)
        return sp.csc_matrix(Jd.sparse()) if self.segments > 1 else np.asarray(Jd)

    def params(self, u):
        m, C, d, N, nu = self.spec.m, self.spec.C, self.spec.d, self.model.layers, self.nu
        th = self._eval(u)[2]
        K = np.stack([th[:m * m, k].reshape(m, m) for k in range(N)])
        b = np.stack([th[m * m:, k] for k in range(N)])
        return {"K": K, "b": b, "W": u[nu - C - C * d:nu - C].reshape(C, d), "mu": u[nu - C:].copy()}

    def objective(self, u, batch=None):
        """``(J, None, {"boundary_residual", "kkt"})`` at the parameters of ``u`` (the history's loss is J)."""
        r = self.residual(u)
        rn = float(np.max(np.abs(r))) if np.all(np.isfinite(r)) else np.inf
        if not np.isfinite(rn):
            return np.inf, None, {}
        p = self.params(u)
        J, grads = pmp.value_and_grad(self.model, p, self.X, self.y)
        return J, None, {"boundary_residual": rn, "kkt": pmp.kkt_residual(self.model, p, self.X, self.y, grads)}


def shooting(model, params0, X, y, *, iterations=None, callback=None, quiet=True, segments=1, tol=1e-8,
             warm_start="newton", warm_tol=1e-10, warm_iterations=300, lr=0.02, lm_lambda=1e-10, state0=None,
             checkpoint=None, checkpoint_every=None, should_stop=None, **unknown):
    """Levenberg–Marquardt shooting on the reduced Hamiltonian BVP (see module docstring).

    ``success``: boundary residual and shared KKT residual ≤ ``tol`` (the KKT residual is
    included because it is the certificate: the θ block amplifies a boundary mismatch through the
    layers, measured 1.1e-8 at boundary residual 5.7e-9, T = 1).
    """
    check_options("shooting", unknown)
    refuse_checkpoints("shooting", state0, checkpoint)
    if model.field != "outer" or model.integrator != "euler" or model.beta != 0 or model.alpha <= 0:
        raise SolverError("shooting needs field 'outer', integrator 'euler', beta = 0 and alpha > 0 "
                          f"(got field '{model.field}', integrator '{model.integrator}', beta {model.beta}, "
                          f"alpha {model.alpha})")
    segments = int(segments)
    if not 1 <= segments <= model.layers:
        raise SolverError(f"--segments must be between 1 and the number of layers {model.layers} (got {segments})")
    if warm_start not in ("newton", "adam"):
        raise SolverError(f"shooting: unknown warm_start '{warm_start}' (valid: newton, adam)")
    iterations = 100 if iterations is None else int(iterations)
    X = np.asarray(X, dtype=float)
    phases = Phases("shooting", model, callback, quiet, should_stop)
    params = {k: np.array(v, dtype=float) for k, v in params0.items()}
    if warm_start == "newton":
        # homotopy start: the reduced Newton solver to a loose tolerance, then shooting polishes
        params = newton(model, params, X, y, tol=warm_tol, quiet=True, should_stop=should_stop).x
    elif warm_iterations > 0:
        # Adam (constant lr, plain) with the exact costate gradient; its rows are the history's first
        objective = KKTObjective(model, X, y, "adam")
        res = phases.run(objective, model.flatten(params), optim.Adam(lr, "constant", amsgrad=False),
                         warm_iterations, model.unflatten)
        if phases.user_stopped:
            return phases.finish(model.unflatten(res.x))
        params = model.unflatten(res.x)
    tb = time.perf_counter()
    problem = ShootingProblem(model, X, y, segments)
    build_s = time.perf_counter() - tb
    u0 = problem.start(params)
    if not np.all(np.isfinite(problem.residual(u0))):
        raise SolverError("shooting: the initial trajectory is not finite (try --segments or more warm-up)")
    rule = ShootingLM(problem, tol, lm_lambda)
    res = phases.run(problem.objective, u0, rule, iterations, problem.params)
    if res.status == ITERATION_CAP:
        res.message = (f"iteration limit reached ({iterations} Levenberg–Marquardt steps) before convergence "
                       f"(boundary residual {res.boundary_residual:.2e}, KKT residual {res.kkt:.2e}, tol {tol:g})")
    return phases.finish(problem.params(res.x), segments=segments, build_time_s=build_s)
