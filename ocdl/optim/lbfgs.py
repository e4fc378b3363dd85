"""Quasi-Newton rules: scipy's L-BFGS-B (``LBFGS``) and torch's L-BFGS with a strong-Wolfe line
search (``TorchLBFGS``). Both take the objective's gradient whatever computes it (costate,
autograd, CasADi); neither keeps its curvature memory across a resume (checkpoints hold x).
They say why they stopped; the driver's certificate at the returned x (``certify``) decides
whether that is convergence.
"""
import numpy as np

from ocdl.optim import certificates
from ocdl.optim.driver import Step, Stop
from ocdl.optim.result import CONVERGED, ITERATION_CAP, STALLED, STOPPED


class LBFGS:
    """scipy.optimize L-BFGS-B on ``(f, ∇f)``; scipy drives the loop and reports each iterate to
    the driver (history, progress, divergence, checkpoints). Certificate (``certify``, at the
    returned x): ``max |∇J| ≤ gtol``, or scipy's own stalled-loss test — it stopped because the
    relative decrease of J in its last iteration was ≤ ``ftol`` (``(f_k − f_{k+1})/max(|f_k|,
    |f_{k+1}|, 1) ≤ ftol``; with the default 1e-15 that is the minimum to round-off)."""
    name = "L-BFGS-B"

    def __init__(self, gtol=1e-9, ftol=1e-15, maxcor=20, maxls=20):
        self.options = {"gtol": float(gtol), "ftol": float(ftol), "maxcor": int(maxcor), "maxls": int(maxls)}

    def init(self, x, saved, run):
        return {"_reduction_stop": False}       # scipy's memory is not checkpointed: a resume restarts it

    def certify(self, state, p, run):
        ok, text = certificates.gradient(self.options["gtol"])(p.f, p.g, run)
        if not ok and state["_reduction_stop"]:
            return True, f"relative decrease of J ≤ ftol {self.options['ftol']:g} (L-BFGS-B); {text}"
        return ok, text

    def run(self, state, x0, ctx):
        """scipy drives the loop; each of its iterates is recorded and checkpointed through ``ctx``."""
        from scipy.optimize import minimize as scipy_minimize
        start, iterations = ctx.start, ctx.iterations
        counter = {"it": start, "last": None, "stopped": False}

        def fun(v):
            f, g, info = ctx.evaluate(counter["it"] + 1, v)
            counter["last"] = (v.copy(), f, info)
            return f, np.asarray(g, dtype=float)

        def callback(intermediate_result):
            counter["it"] += 1
            it, v, f = counter["it"], intermediate_result.x, float(intermediate_result.fun)
            last = counter["last"]
            info = last[2] if last is not None and np.array_equal(last[0], v) else {}
            if ctx.record(it, v, f, info):
                counter["stopped"] = True
                raise StopIteration
            ctx.after_step(it, v, state)

        if iterations - start <= 0:
            return x0, state, ITERATION_CAP, f"iteration limit reached ({iterations})"
        r = scipy_minimize(fun, np.asarray(x0, dtype=float), jac=True, method="L-BFGS-B", callback=callback,
                           options={**self.options, "maxiter": iterations - start})
        if counter["stopped"]:
            return r.x, state, STOPPED, f"stopped by the callback at iteration {counter['it']}"
        if r.success:
            state = {"_reduction_stop": "REDUCTION" in str(r.message).upper()}
            return r.x, state, CONVERGED, f"converged: {r.message}"
        if r.nit >= iterations - start:
            return r.x, state, ITERATION_CAP, f"iteration limit reached ({iterations}) before convergence " \
                                              f"(L-BFGS-B: {r.message})"
        return r.x, state, STALLED, f"not converged: {r.message}"


class TorchLBFGS:
    """torch.optim.LBFGS (strong-Wolfe line search) fed the objective's gradient; ``max_iter``
    L-BFGS iterations per driver iteration, at most ``max_eval`` evaluations in them (default
    ``max(25, 3 max_iter)``: torch's own default, ``1.25 max_iter``, starves the line search).
    A driver iteration that ends early (torch's gradient or change tolerance, or its evaluation
    budget) or leaves x unchanged stops the run; whether it converged is the certificate
    ``max |∇J(x)| ≤ gtol`` at the returned x (``gtol``: the driver's if given, else this rule's,
    default 1e-6 — the classifier solvers' default). An exhausted evaluation budget or an
    unchanged x is not convergence by itself."""
    name = "L-BFGS"

    def __init__(self, max_iter=1, history_size=20, max_eval=None, lr=1.0, line_search_fn="strong_wolfe",
                 tolerance_grad=1e-12, tolerance_change=1e-16, gtol=1e-6):
        self.gtol = float(gtol)
        max_eval = max(25, 3 * int(max_iter)) if max_eval is None else int(max_eval)
        self.options = dict(lr=lr, max_iter=int(max_iter), history_size=int(history_size),
                            max_eval=max_eval, line_search_fn=line_search_fn,
                            tolerance_grad=tolerance_grad, tolerance_change=tolerance_change)

    def init(self, x, saved, run):
        import torch
        param = torch.tensor(np.asarray(x, dtype=float), dtype=torch.float64, requires_grad=True)
        return {"_param": param, "_opt": torch.optim.LBFGS([param], **self.options)}   # not checkpointed

    def certify(self, state, p, run):
        return certificates.gradient(run.gtol if run.gtol is not None else self.gtol)(p.f, p.g, run)

    def update(self, state, p, run):
        import torch
        param, opt, f, g, x = state["_param"], state["_opt"], p.f, p.g, p.x
        with torch.no_grad():
            param.copy_(torch.as_tensor(np.asarray(x, dtype=float)))
        first = [True]

        def closure():
            if first[0]:                         # the driver already evaluated the objective at x
                first[0] = False
                fv, gv = f, g
            else:
                fv, gv, _ = run.call(param.detach().numpy().copy())
            param.grad = torch.as_tensor(np.array(gv, dtype=float))
            return torch.tensor(fv, dtype=torch.float64)

        st = opt.state[param]
        before, evals_before = st.get("n_iter", 0), st.get("func_evals", 0)
        opt.step(closure)
        done = st.get("n_iter", 0) - before
        evals = st.get("func_evals", 0) - evals_before
        x_new = param.detach().numpy().copy()
        if np.array_equal(x_new, np.asarray(x)):
            return Step(None, state, stop=Stop("L-BFGS made no progress (x unchanged)", STALLED))
        if done < self.options["max_iter"]:         # ended early: x_new is recorded, then the run stops
            why = (f"L-BFGS used its evaluation budget (max_eval {self.options['max_eval']})"
                   if evals >= self.options["max_eval"] else
                   "L-BFGS ended its iterations early (gradient or change at tolerance)")
            return Step(x_new, state, stop=Stop(why, STALLED))
        return Step(x_new, state)
