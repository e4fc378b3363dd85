"""``ipopt`` — full-space multiple-shooting NLP ``min J s.t. S_h(x_k, θ_k) − x_{k+1} = 0`` with all
states as unknowns, solved by IPOPT (exact Hessian of the Lagrangian, MUMPS LDLᵀ with inertia
correction). The constraint multipliers returned by IPOPT are the costates ``p_1..p_N`` (tested
against :func:`ocdl.pmp.costate`); they are in ``result.costates``.
"""
import numpy as np

from ocdl.errors import SolverError
from ocdl.optim import CONVERGED, ITERATION_CAP, STALLED, STOPPED
from ocdl.solvers.pontryagin import Phases, check_options, refuse_checkpoints
from ocdl.solvers.support import CASADI_ACTIVATIONS, EXPLICIT_RK, WITH_CASADI_FORM, supports


class IpoptRun:
    """IPOPT as a rule that drives its own loop (``run``): its iteration callback evaluates the
    reduced cost and KKT residual at the iterate's parameters through the driver's context
    (history row, progress, divergence test, callback); a requested stop ends IPOPT
    (``User_Requested_Stop``)."""
    name = "ipopt"

    def __init__(self, nlp, solver, x0_full, n_params, should_stop):
        self.nlp, self.solver, self.x0_full, self.n_params, self.should_stop = nlp, solver, x0_full, n_params, \
            should_stop
        self.sol = None

    def init(self, x, saved, run):
        return {}

    def iterate(self, ctx, k, w):
        """Called by the CasADi iteration callback with IPOPT's iterate ``w``; True asks IPOPT to stop."""
        if self.error is not None:
            return True
        zk = np.asarray(w).ravel()[:self.n_params]
        try:
            f, _, info = ctx.evaluate(k, zk)
            self.stopped = ctx.record(k, zk, f, info) or self.stopped
        except (SolverError, KeyboardInterrupt) as exc:        # raised again once IPOPT has returned
            self.error = exc
            return True
        self.interrupted = bool(self.should_stop is not None and self.should_stop())
        return self.stopped or self.interrupted

    def run(self, state, x0, ctx):
        """``ctx.iterations`` = IPOPT's ``max_iter`` + 1 (its starting point is a row)."""
        iterations = ctx.iterations
        self.error, self.stopped, self.interrupted, self.ctx = None, False, False, ctx
        self.sol = self.solver(x0=self.x0_full, lbg=0, ubg=0)
        if self.error is not None:
            raise self.error
        if self.interrupted:
            ctx.progress.close("ipopt: interrupted")
            raise KeyboardInterrupt
        stats = self.solver.stats()
        self.stats = stats
        w = np.asarray(self.sol["x"]).ravel()
        status = str(stats["return_status"])
        if self.stopped:
            code, message = STOPPED, "stopped by the callback"
        elif stats["success"]:
            code, message = CONVERGED, f"converged: {status}"
        elif status == "Maximum_Iterations_Exceeded":
            code, message = ITERATION_CAP, (f"iteration limit reached ({iterations - 1} IPOPT iterations) before "
                                            f"convergence ({status})")
        else:
            code, message = STALLED, f"not converged: {status}"
        return w[:self.n_params], state, code, message


@supports(fields=WITH_CASADI_FORM, activations=CASADI_ACTIVATIONS, integrators=EXPLICIT_RK, iterations=500)
def ipopt(model, params0, X, y, *, iterations=None, callback=None, quiet=True, tol=1e-10,
          print_level=0, linear_solver="mumps", state0=None, checkpoint=None, checkpoint_every=None,
          should_stop=None, **unknown):
    """IPOPT on the full-space multiple-shooting NLP; ``result.costates`` are its multipliers.
    ``success`` is IPOPT's own (``Solve_Succeeded``: scaled NLP error ≤ ``tol``)."""
    check_options("ipopt", unknown)
    import casadi as ca
    from ocdl.solvers.casadi_kkt import GradientOnly, MultipleShootingNLP, spec_from_model
    refuse_checkpoints("ipopt", state0, checkpoint)
    iterations = ipopt.supports.iterations if iterations is None else int(iterations)
    spec = spec_from_model(model)
    X = np.asarray(X, dtype=float)
    X0 = model.lift(X)
    nlp = MultipleShootingNLP(spec, X0, y)
    G = GradientOnly(spec, X0, y)

    def objective(z, batch=None):
        J, g = G.evaluate(z)
        return J, g, {"kkt": G.stationarity_residual(g), "phase": "ipopt"}

    holder = {}

    class _Log(ca.Callback):
        """IPOPT's iteration callback: hands every iterate to :meth:`IpoptRun.iterate`."""

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
            self.k += 1
            run = holder["run"]
            return [1 if run.iterate(run.ctx, self.k, arg[0]) else 0]

    log = _Log()
    opts = {"ipopt.print_level": int(print_level), "print_time": False, "ipopt.tol": float(tol),
            "ipopt.max_iter": iterations, "ipopt.linear_solver": linear_solver,
            "iteration_callback": log, "ipopt.sb": "yes"}
    solver = ca.nlpsol("pmp_ipopt", "ipopt", nlp.nlp, opts)
    z0 = model.flatten(params0)
    states0 = model.forward(params0, X)
    run = holder["run"] = IpoptRun(nlp, solver, nlp.initial_guess(z0, np.asarray(states0)), spec.n_params,
                                   should_stop)
    phases = Phases("ipopt", model, callback, quiet, None)
    # IPOPT counts its starting point as iteration 0: the history has iter_count + 1 rows
    phases.run(objective, z0, run, iterations + 1, model.unflatten)
    params = nlp.params(np.asarray(run.sol["x"]).ravel())
    return phases.finish(params, costates=nlp.costates(run.sol["lam_g"]), ipopt_iterations=int(run.stats["iter_count"]),
                         formulation="full-space multiple-shooting NLP (IPOPT)")
