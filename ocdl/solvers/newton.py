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

    1. warm start: ``warm_iterations`` Adam steps with the exact costate gradient (default), or
       L-BFGS until the KKT residual is below ``warm_tol`` (``warm_start="lbfgs"``);
    2. trust-region Newton–CG (Steihaug–Toint): the step approximately minimises the quadratic
       model ``gᵀs + ½ sᵀ∇²J s`` in ``‖s‖ ≤ Δ`` by conjugate gradients with exact Hessian-vector
       products; negative curvature (a saddle) sends the step to the trust-region boundary;
       the forcing term ``‖∇²J s + g‖ ≤ min(0.5, √‖g‖)‖g‖`` gives superlinear convergence; steps are
       accepted by the ratio of actual to predicted decrease of ``J`` (at round-off level by
       the decrease of ‖g‖).

    While the KKT residual is above ``exact_below`` (1e-5) the products are central differences of
    the exact costate gradient (cheaper); below it, and so for every step that decides the final
    quadratic convergence, they are exact (CasADi forward-over-reverse).
    No matrix is ever formed or factorised (no Cholesky: the reduced Hessian may be
    indefinite); each product ``∇²J v`` costs about two gradients. A dense per-sample SX Hessian
    was measured to cost 56 s to build and 2.6 s per evaluation at width 4 (405 parameters,
    n = 400), which is why it is not used.

``newton(formulation="full")`` — *full-space* Newton on ``F(z) = 0`` with every state and costate
    an unknown (:mod:`ocdl.solvers.newton_full`): sparse KKT Jacobian assembled from CasADi
    per-(sample, layer) blocks, sparse LU (``linear_solver="mumps"`` (CasADi's MUMPS, default) or
    ``"superlu"`` (scipy ``splu``, ~3× slower)), Armijo line search on ``½‖F‖²``. Warm start: L-BFGS with the costate gradient
    until the KKT residual is ≤ ``warm_tol`` (default 1e-6 here); when the line search
    stalls (step < 0.1: far from a regular solution, near-singular KKT matrix) it returns to L-BFGS
    with ``warm_tol/100`` (at most ``max_restarts`` times). ``‖F(z)‖∞`` of the full-space iterate is
    ``kkt`` in every Newton row; ``kkt_reduced`` is the shared residual at its parameters.

``ipopt`` — full-space multiple-shooting NLP ``min J s.t. S_h(x_k, θ_k) − x_{k+1} = 0`` with all
    states as unknowns, solved by IPOPT (exact Hessian of the Lagrangian, MUMPS LDLᵀ with
    inertia correction). The constraint multipliers returned by IPOPT are the costates
    ``p_1..p_N`` (tested against :func:`ocdl.pmp.costate`); they are in ``result.costates``.
"""
import numpy as np

from ocdl.errors import SolverError
from ocdl.progress import Progress
from ocdl.solvers._result import pop_loop_options, History, lifted, make_result


FORMULATIONS = ("reduced", "full")


def lbfgs_phase(vg, z, hist, it, maxiter, tol, stationarity_residual):
    """L-BFGS (scipy) on J with the exact costate gradient ``vg`` until the KKT residual ≤ ``tol``.

    Returns ``(z, J, g, res, it)``; every iteration is a history row (phase "lbfgs").
    """
    from scipy.optimize import minimize

    class _Done(Exception):
        pass

    box = {"z": z, "it": it}

    def fun(zz):
        Jz, gz = vg(zz)
        box["last"] = (zz.copy(), Jz, gz)
        return Jz, gz

    def cb(zz):
        box["it"] += 1
        zl, Jz, gz = box["last"]
        if not np.array_equal(zl, zz):
            Jz, gz = vg(zz)
        rz = stationarity_residual(gz)
        box["z"] = zz.copy()
        hist.add(box["it"], Jz, rz, phase="lbfgs")
        if rz <= tol:
            raise _Done

    try:
        minimize(fun, z, jac=True, method="L-BFGS-B", callback=cb,
                 options={"maxiter": maxiter, "maxcor": 20, "gtol": 0.0, "ftol": 0.0})
    except _Done:
        pass
    z = box["z"]
    J, g = vg(z)
    return z, J, g, stationarity_residual(g), box["it"]


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
           warm_start=None, warm_iterations=None, warm_tol=None, max_restarts=3, lr=0.02, delta0=1.0, cg_maxiter=500,
           exact_below=1e-5, formulation="reduced", linear_solver="mumps",
           threads=1, **unused):
    """Newton on the discrete PMP system (see module docstring): ``formulation="reduced"``
    (default; trust-region Newton–CG on ∇J = 0) or ``"full"`` (full-space Newton, sparse LU).

    ``warm_iterations`` Adam steps with the exact costate gradient, then trust-region Newton
    steps until ``kkt_residual ≤ tol`` or ``iterations`` Newton steps (default 300).
    History rows: iteration, loss, time_s, kkt (= ‖F(z)‖∞), phase ("adam" | "newton" | "reject").
    """
    should_stop = pop_loop_options("newton", unused)
    if unused:
        raise SolverError(f"newton: unknown option(s) {', '.join(sorted(unused))}")
    if formulation not in FORMULATIONS:
        raise SolverError(f"newton: unknown formulation '{formulation}' (valid: {', '.join(FORMULATIONS)})")
    if warm_start is None:
        warm_start = "adam" if formulation == "reduced" else "lbfgs"
    if warm_iterations is None:
        # (full space: an L-BFGS warm start that stops at its iteration cap far above warm_tol
        # wastes a factorisation on a stalled line search; its cap is therefore high)
        warm_iterations = 1000 if formulation == "reduced" else 5000
    if warm_tol is None:
        # full space: every Newton step is a sparse LU of ~10⁵ unknowns (~10 s at width 6, n = 400),
        # so start it close; measured on two spirals (n = 400, width 6): starts at KKT 1.4e-4 and
        # 7e-4 stalled the line search, starts at ≤ 1e-6 converged in two steps
        warm_tol = 1e-4 if formulation == "reduced" else 1e-6
    from ocdl.solvers.casadi_kkt import GradientOnly, spec_from_model
    iterations = (300 if formulation == "reduced" else 50) if iterations is None else int(iterations)
    spec = spec_from_model(model)
    X0 = lifted(model, X)
    progress = Progress(warm_iterations + iterations, "newton", quiet)
    hist = History(callback, progress)
    G = GradientOnly(spec, X0, y, threads=threads)          # CasADi: Hessian-vector products
    build_s = hist.elapsed()
    from ocdl import pmp
    Xn = np.asarray(X, dtype=float)

    def vg(zz):
        """J and ∇J by the numpy costate sweep (the same exact gradient as CasADi's, faster)."""
        Jz, gd = pmp.value_and_grad(model, model.unflatten(zz), Xn, y)
        return Jz, model.flatten(gd)

    z = model.flatten(params0).astype(float)
    m1 = np.zeros_like(z)
    m2 = np.zeros_like(z)
    J, g = vg(z)
    res = G.stationarity_residual(g)
    hist.add(0, J, res, phase="start")
    it = 0
    stopped = False
    # ---------------- warm start: Adam or L-BFGS with the exact costate gradient
    if warm_start not in ("adam", "lbfgs", "none"):
        raise SolverError(f"newton: unknown warm_start '{warm_start}' (valid: adam, lbfgs, none)")
    if warm_start == "lbfgs":
        z, J, g, res, it = lbfgs_phase(vg, z, hist, it, warm_iterations, warm_tol, G.stationarity_residual)
    for t in range(1, (warm_iterations if warm_start == "adam" else 0) + 1):
        m1 = 0.9 * m1 + 0.1 * g
        m2 = 0.999 * m2 + 0.001 * g * g
        z = z - lr * (m1 / (1 - 0.9 ** t)) / (np.sqrt(m2 / (1 - 0.999 ** t)) + 1e-8)
        J, g = vg(z)
        if not np.isfinite(J):
            raise SolverError("newton: the Adam warm start diverged (loss is not finite); lower lr")
        it += 1
        res = G.stationarity_residual(g)
        hist.add(it, J, res, phase="adam")
        if (callback is not None and callback(it, model.unflatten(z), J)) or (should_stop is not None and should_stop()):
            stopped = True
            break
        if res <= tol:
            break
    if formulation == "full" and not stopped and res > tol:
        from ocdl.solvers.newton_full import newton_full
        restarts = 0
        tot = {"newton_steps": 0, "build_time_s": 0.0, "jacobian_time_s": 0.0, "lu_time_s": 0.0}
        while True:
            out = newton_full(model, z, X, y, hist, it, tol=tol, iterations=iterations - tot["newton_steps"],
                              threads=threads, callback=callback, should_stop=should_stop,
                              linear_solver=linear_solver)
            it = out["it"]
            for key in tot:
                tot[key] += out[key]
            if not out["stalled"] or restarts >= max_restarts or tot["newton_steps"] >= iterations:
                break
            # the line search on ½‖F‖² stalled (a near-singular KKT matrix: far from a regular
            # solution). Go back to L-BFGS on J from the last full-space iterate's parameters
            # until the KKT residual is 100× below the one at which Newton was started.
            restarts += 1
            warm_tol = warm_tol / 100
            z = model.flatten(out["params"])
            z, J, g, res, it = lbfgs_phase(vg, z, hist, it, warm_iterations, warm_tol, G.stationarity_residual)
        progress.close()
        params = out["params"]
        J = pmp.cost(model, params, Xn, y)
        ok = out["converged"]
        msg = (f"converged: full-space ‖F(z)‖∞ {out['kkt']:.2e} <= {tol:g}" if ok
               else "stopped by callback" if out["stopped"]
               else f"stopped after {tot['newton_steps']} full-space Newton steps and {restarts} L-BFGS "
                    f"restarts (‖F(z)‖∞ {out['kkt']:.2e})")
        return make_result(model, params, J, ok, msg, out["it"], hist.rows,
                           kkt=pmp.kkt_residual(model, params, Xn, y), kkt_full=float(out["kkt"]),
                           build_time_s=tot["build_time_s"], jacobian_time_s=tot["jacobian_time_s"],
                           lu_time_s=tot["lu_time_s"], unknowns=out["unknowns"], lu_nnz=out["lu_nnz"],
                           newton_steps=tot["newton_steps"], restarts=restarts,
                           formulation=f"full-space Newton on F(z) = 0 (states, costates, θ, head), "
                                       f"sparse LU ({linear_solver}), Armijo line search on ½‖F‖²",
                           solver="newton", wall_time_s=hist.elapsed())
    # ---------------- trust-region Newton–CG with exact Hessian-vector products
    Delta = float(delta0)
    n_hvp = 0
    converged = res <= tol
    k = 0
    n_fd_steps = 0
    while not converged and not stopped and k < iterations:
        gnorm = float(np.linalg.norm(g))
        rtol = min(0.5, np.sqrt(gnorm)) * gnorm            # forcing term: superlinear convergence
        if res > exact_below:
            # far from convergence: Hessian-vector products by central differences of the exact
            # costate gradient (2 sweeps, ~6x cheaper than CasADi's; relative error ~1e-8 only
            # perturbs the inexact Newton step, which the trust region checks with the true J)
            zn = float(np.linalg.norm(z))

            def hvp(v):
                nv = float(np.linalg.norm(v))
                if nv == 0.0:
                    return np.zeros_like(v)
                eps = 1e-5 * (1.0 + zn) / nv
                return (vg(z + eps * v)[1] - vg(z - eps * v)[1]) / (2 * eps)
            n_fd_steps += 1
        else:
            def hvp(v):
                return G.hvp(z, v)                      # exact (forward-over-reverse, CasADi)
        s, nh, why = steihaug_cg(g, hvp, Delta, rtol, cg_maxiter)
        Hs = hvp(s)
        n_hvp += nh + 1
        snorm = float(np.linalg.norm(s))
        pred = -(g @ s + 0.5 * s @ Hs)
        Jn, gn = vg(z + s)
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
            if (callback is not None and callback(it, model.unflatten(z), J)) or (should_stop is not None and should_stop()):
                stopped = True
        else:
            hist.add(it, J, res, phase="reject", step=snorm, cg_iterations=nh, cg_stop=why)
        if Delta < 1e-14:
            break
    progress.close()
    params = model.unflatten(z)
    msg = (f"converged: KKT residual {res:.2e} <= {tol:g}" if converged
           else "stopped by callback" if stopped
           else f"stopped after {k} Newton steps (KKT residual {res:.2e})")
    return make_result(model, params, J, converged, msg, it, hist.rows, kkt=float(res),
                       n_hvp=n_hvp, n_fd_newton_steps=n_fd_steps, build_time_s=build_s,
                       formulation="reduced-space trust-region Newton-CG, exact Hessian-vector products "
                                   "(states/costates eliminated by exact sweeps)",
                       solver="newton", wall_time_s=hist.elapsed())


def ipopt(model, params0, X, y, *, iterations=None, callback=None, quiet=True, tol=1e-10,
          print_level=0, linear_solver="mumps", **unused):
    """IPOPT on the full-space multiple-shooting NLP; ``result.costates`` are its multipliers."""
    import casadi as ca
    from ocdl.solvers.casadi_kkt import GradientOnly, MultipleShootingNLP, spec_from_model
    pop_loop_options("ipopt", unused)
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
                       formulation="full-space multiple-shooting NLP (IPOPT)", solver="ipopt",
                       wall_time_s=hist.elapsed())
