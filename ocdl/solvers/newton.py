"""Newton-type solvers of the discrete Pontryagin system (CasADi): ``newton`` and ``ipopt``.

``newton`` — *reduced-space* Newton on the discrete PMP system ``F(z) = 0``.
    The state and costate blocks of ``F`` (``x_{k+1} = S_h(x_k, θ_k)``, ``x_0`` = inputs,
    ``p_k = (∂S_h/∂x)ᵀ p_{k+1}``, ``p_N = (1/n)∇Φ``) are eliminated exactly by a forward and a
    backward sweep, so ``F(z) = 0`` reduces to the stationarity equations in the controls only,

        G(θ, W, μ) = ∇J(θ, W, μ) = 0,   with  ∂J/∂θ_k = h [Σ_i (∂f/∂θ)ᵀ p_{k+1,i} + ∇r(θ_k)] (+β terms),

    whose Jacobian is the exact reduced Hessian ``∇²J`` (the Schur complement of the full-space
    KKT matrix). Both ``∇J`` and ``∇²J`` are built in CasADi per sample and summed over samples
    by ``Function.map`` with reduction (:mod:`ocdl.solvers.casadi_kkt`). The full-space residual
    ``‖F(z)‖∞`` at every iterate equals the scaled stationarity residual
    ``max(‖∂J/∂θ_k‖∞/h, ‖∂J/∂(W, μ)‖∞)`` = :func:`ocdl.pmp.kkt_residual`; it is recorded as
    ``kkt`` in every history row.

    Globalisation (a bare Newton from a random start finds saddles or stalls, DESIGN.md §5):

    1. Adam steps with the exact costate gradient (no autograd) move into a basin — the first
       ``warm_iterations``, then ``probe_every`` more at a time;
    2. a probe evaluates the Hessian; when it is positive definite and the Newton step is short
       (``‖s‖ ≤ probe_radius``) — i.e. inside the region of quadratic convergence — a
       trust-region Newton phase starts (eigen-decomposition of the small dense Hessian; the
       step solves ``(H + λI) s = −g`` with ``λ ≥ max(0, −λ_min)`` chosen so ``‖s‖ ≤ Δ``
       (Moré–Sorensen); acceptance by the ratio actual/predicted decrease of ``J``);
    3. if a Newton phase does not converge within ``newton_phase`` iterations, Adam resumes
       from its best point.

    The linear algebra is the dense symmetric eigen-solve of the ``n_θ × n_θ`` reduced Hessian
    (indefinite-safe; no Cholesky); ``n_θ = N(m² + m) + C'(d + 1)`` (123 for N = 20, d = 2).

``ipopt`` — full-space multiple-shooting NLP ``min J s.t. S_h(x_k, θ_k) − x_{k+1} = 0`` with all
    states as unknowns, solved by IPOPT (exact Hessian of the Lagrangian, MUMPS LDLᵀ with
    inertia correction). The constraint multipliers returned by IPOPT are the costates
    ``p_1..p_N`` (tested against :func:`ocdl.pmp.costate`); they are in ``result.costates``.
"""
import numpy as np

from ocdl.errors import SolverError
from ocdl.progress import Progress
from ocdl.solvers._result import History, lifted, make_result
from ocdl.solvers.casadi_kkt import GradientOnly, MultipleShootingNLP, spec_from_model


def _trust_region_step(g, lam, V, Delta):
    """``s = −(H + σI)⁻¹ g`` with ``σ ≥ max(0, −λ_min)`` minimal such that ``‖s‖ ≤ Δ``."""
    gt = V.T @ g

    def step(shift):
        return -V @ (gt / (lam + shift))

    lo = max(0.0, -lam[0])
    if lam[0] > 0:
        s = step(0.0)
        if np.linalg.norm(s) <= Delta:
            return s, 0.0
    hi = lo + np.linalg.norm(g) / Delta + abs(lam[-1]) + 1.0
    for _ in range(80):                     # bisection on the secular equation ‖s(σ)‖ = Δ
        mid = 0.5 * (lo + hi)
        if np.linalg.norm(step(mid)) > Delta:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return step(hi), hi


def steihaug_cg(g, hvp, Delta, rtol, maxiter):
    """Truncated CG (Steihaug–Toint) for ``min_s gᵀs + ½ sᵀHs, ‖s‖ ≤ Δ`` using ``hvp(v) = Hv``.

    Stops at ``‖Hs + g‖ ≤ rtol``, at the boundary, or along a direction of negative curvature
    (then it steps to the boundary: that is how a saddle is escaped). Returns ``(s, n_hvp, why)``.
    """
    s = np.zeros_like(g)
    r = g.copy()
    d = -r
    rr = float(r @ r)
    if np.sqrt(rr) <= rtol:
        return s, 0, "small"

    def to_boundary(s, d):
        a, b, c = d @ d, 2 * s @ d, s @ s - Delta ** 2
        tau = (-b + np.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)
        return s + tau * d

    for j in range(maxiter):
        Hd = hvp(d)
        dHd = float(d @ Hd)
        if dHd <= 0:
            return to_boundary(s, d), j + 1, "negative curvature"
        a = rr / dHd
        s_new = s + a * d
        if np.linalg.norm(s_new) >= Delta:
            return to_boundary(s, d), j + 1, "boundary"
        r = r + a * Hd
        rr_new = float(r @ r)
        s = s_new
        if np.sqrt(rr_new) <= rtol:
            return s, j + 1, "converged"
        d = -r + (rr_new / rr) * d
        rr = rr_new
    return s, maxiter, "maxiter"


def newton(model, params0, X, y, *, iterations=None, callback=None, quiet=True, tol=1e-10,
           warm_iterations=1000, lr=0.02, delta0=1.0, cg_maxiter=500, threads=1, **unused):
    """Reduced-space trust-region Newton on the discrete PMP system (see module docstring).

    ``warm_iterations`` Adam steps with the exact costate gradient, then trust-region Newton
    steps until ``kkt_residual ≤ tol`` or ``iterations`` Newton steps (default 300).
    History rows: iteration, loss, time_s, kkt (= ‖F(z)‖∞), phase ("adam" | "newton" | "reject").
    """
    if unused:
        raise SolverError(f"newton: unknown option(s) {', '.join(sorted(unused))}")
    iterations = 300 if iterations is None else int(iterations)
    spec = spec_from_model(model)
    X0 = lifted(model, X)
    progress = Progress(warm_iterations + iterations, "newton", quiet)
    hist = History(callback, progress)
    G = GradientOnly(spec, X0, y, threads=threads)
    build_s = hist.elapsed()
    z = model.flatten(params0).astype(float)
    m1 = np.zeros_like(z)
    m2 = np.zeros_like(z)
    J, g = G.evaluate(z)
    res = G.stationarity_residual(g)
    hist.add(0, J, res, phase="start")
    it = 0
    # ---------------- warm start: Adam with the exact costate gradient
    for t in range(1, warm_iterations + 1):
        m1 = 0.9 * m1 + 0.1 * g
        m2 = 0.999 * m2 + 0.001 * g * g
        z = z - lr * (m1 / (1 - 0.9 ** t)) / (np.sqrt(m2 / (1 - 0.999 ** t)) + 1e-8)
        J, g = G.evaluate(z)
        if not np.isfinite(J):
            raise SolverError("newton: the Adam warm start diverged (loss is not finite); lower lr")
        it += 1
        res = G.stationarity_residual(g)
        hist.add(it, J, res, phase="adam")
        if res <= tol:
            break
    # ---------------- trust-region Newton–CG with exact Hessian-vector products
    Delta = float(delta0)
    n_hvp = 0
    converged = res <= tol
    k = 0
    while not converged and k < iterations:
        gnorm = float(np.linalg.norm(g))
        rtol = min(0.5, np.sqrt(gnorm)) * gnorm            # forcing term: superlinear convergence
        s, nh, why = steihaug_cg(g, lambda v: G.hvp(z, v), Delta, rtol, cg_maxiter)
        Hs = G.hvp(z, s)
        n_hvp += nh + 1
        snorm = float(np.linalg.norm(s))
        pred = -(g @ s + 0.5 * s @ Hs)
        Jn, gn = G.evaluate(z + s)
        ared = J - Jn
        if not np.isfinite(Jn):
            rho = -1.0
        elif abs(ared) <= 1e-14 * max(1.0, abs(J)):
            # decrease at round-off level: judge the step by the gradient instead
            rho = 1.0 if np.linalg.norm(gn) < gnorm else -1.0
        else:
            rho = ared / pred if pred > 0 else -1.0
        if rho < 0.25:
            Delta = 0.25 * min(Delta, snorm)
        elif rho > 0.75 and snorm > 0.99 * Delta:
            Delta *= 2.0
        it += 1
        k += 1
        if rho > 1e-4:
            z = z + s
            J, g = Jn, gn
            res = G.stationarity_residual(g)
            hist.add(it, J, res, phase="newton", step=snorm, cg_iterations=nh, cg_stop=why)
            converged = res <= tol
        else:
            hist.add(it, J, res, phase="reject", step=snorm, cg_iterations=nh, cg_stop=why)
        if Delta < 1e-14:
            break
    progress.close()
    params = model.unflatten(z)
    msg = (f"converged: KKT residual {res:.2e} <= {tol:g}" if converged
           else f"stopped after {k} Newton steps (KKT residual {res:.2e})")
    return make_result(model, params, J, converged, msg, it, hist.rows, kkt=float(res),
                       n_hvp=n_hvp, build_time_s=build_s,
                       formulation="reduced-space trust-region Newton-CG, exact Hessian-vector products (states/costates eliminated by exact sweeps)")


def ipopt(model, params0, X, y, *, iterations=None, callback=None, quiet=True, tol=1e-10,
          print_level=0, linear_solver="mumps", **unused):
    """IPOPT on the full-space multiple-shooting NLP; ``result.costates`` are its multipliers."""
    import casadi as ca
    if unused:
        raise SolverError(f"ipopt: unknown option(s) {', '.join(sorted(unused))}")
    iterations = 500 if iterations is None else int(iterations)
    spec = spec_from_model(model)
    X0 = lifted(model, X)
    progress = Progress(iterations, "ipopt", quiet)
    hist = History(callback, progress)
    nlp = MultipleShootingNLP(spec, X0, y)
    G = GradientOnly(spec, X0, y)
    rows = hist

    class _Log(ca.Callback):
        """Records loss and the reduced KKT residual at every IPOPT iteration."""

        def __init__(self):
            ca.Callback.__init__(self)
            self.k = 0
            self.construct("log", {})

        def get_n_in(self):
            return ca.nlpsol_n_out()

        def get_n_out(self):
            return 1

        def get_name_in(self, i):
            return ca.nlpsol_out(i)

        def get_name_out(self, i):
            return "ret"

        def get_sparsity_in(self, i):
            name = ca.nlpsol_out(i)
            if name == "f":
                return ca.Sparsity.scalar()
            if name in ("x", "lam_x"):
                return ca.Sparsity.dense(nlp.w.numel(), 1)
            if name in ("g", "lam_g"):
                return ca.Sparsity.dense(nlp.nlp["g"].numel(), 1)
            return ca.Sparsity(0, 0)

        def eval(self, arg):
            zk = np.asarray(arg[0]).ravel()[:spec.n_params]
            Jr, gr = G.evaluate(zk)
            rows.add(self.k, Jr, G.stationarity_residual(gr), phase="ipopt")
            self.k += 1
            return [0]

    log = _Log()
    opts = {"ipopt.print_level": int(print_level), "print_time": False, "ipopt.tol": float(tol),
            "ipopt.max_iter": iterations, "ipopt.linear_solver": linear_solver,
            "iteration_callback": log, "ipopt.sb": "yes"}
    solver = ca.nlpsol("pmp_ipopt", "ipopt", nlp.nlp, opts)
    z0 = model.flatten(params0)
    states0 = model.forward(params0, np.asarray(X, dtype=float))
    sol = solver(x0=nlp.initial_guess(z0, np.asarray(states0)), lbg=0, ubg=0)
    progress.close()
    stats = solver.stats()
    w = np.asarray(sol["x"]).ravel()
    params = nlp.params(w)
    Jr, gr = G.evaluate(w[:spec.n_params])
    res = G.stationarity_residual(gr)
    return make_result(model, params, Jr, bool(stats["success"]), str(stats["return_status"]),
                       int(stats["iter_count"]), hist.rows, kkt=float(res),
                       costates=nlp.costates(sol["lam_g"]),
                       formulation="full-space multiple-shooting NLP (IPOPT)")
