"""Newton-type solvers of the discrete Pontryagin system (CasADi): ``newton`` and ``ipopt``.

``newton`` — *reduced-space* Newton on the discrete PMP system ``F(z) = 0``.
    The state and costate blocks of ``F`` (``x_{k+1} = S_h(x_k, θ_k)``, ``x_0`` = inputs,
    ``p_k = (∂S_h/∂x)ᵀ p_{k+1}``, ``p_N = (1/n)∇Φ``) are eliminated exactly by a forward and a
    backward sweep, so ``F(z) = 0`` reduces to the stationarity equations in the controls only,

        G(θ, W, μ) = ∇J(θ, W, μ) = 0,   with  ∂J/∂θ_k = h [Σ_i (∂f/∂θ)ᵀ p_{k+1,i} + ∇r(θ_k)] (+β terms),

    whose Jacobian is the exact reduced Hessian ``∇²J`` (the Schur complement of the full-space
    KKT matrix). ``∇J`` is the fused costate sweep (:func:`ocdl.pmp.value_and_grad`); products
    ``∇²J v`` come from torch double backward (:class:`TorchHVP`). The full-space residual
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
    quadratic convergence, they are exact (torch reverse-over-reverse, :class:`TorchHVP`; it
    replaced CasADi's per-sample forward-over-reverse, 25× slower and 2.4 s to build at width 39).
    No matrix is ever formed or factorised (no Cholesky: the reduced Hessian may be
    indefinite); each product ``∇²J v`` costs about two gradients. A dense per-sample SX Hessian
    was measured to cost 56 s to build and 2.6 s per evaluation at width 4 (405 parameters,
    n = 400), which is why it is not used.

    Subsampled Hessians and mini-batches (Byrd, Chin, Neveitt, Nocedal 2011): ``hessian_sample``
    takes the products on a fresh random subsample ``S`` of the gradient's rows every step
    (``∇²J_S``, regulariser in full); ``batch_size`` makes every step (gradient, products, the
    trust-region ratio) one of the mini-batch cost ``J_B``. The same :class:`TrustRegionNewtonCG`
    and :func:`steihaug_cg` run in every mode.

``newton(formulation="full")`` — *full-space* Newton on ``F(z) = 0`` with every state and costate
    an unknown (:mod:`ocdl.solvers.newton_full`): sparse KKT Jacobian assembled from CasADi
    per-(sample, layer) blocks, sparse LU (``linear_solver="mumps"`` (CasADi's MUMPS, default) or
    ``"superlu"`` (scipy ``splu``, ~3× slower)), Armijo line search on ``½‖F‖²``. Warm start: L-BFGS
    with the costate gradient until the KKT residual is ≤ ``warm_tol`` (default 1e-6 here); when the line search
    stalls (step < 0.1: far from a regular solution, near-singular KKT matrix) it returns to L-BFGS
    with ``warm_tol/100`` (at most ``max_restarts`` times). ``‖F(z)‖∞`` of the full-space iterate is
    ``kkt`` in every Newton row; ``kkt_reduced`` is the shared residual at its parameters.

``ipopt`` — full-space multiple-shooting NLP ``min J s.t. S_h(x_k, θ_k) − x_{k+1} = 0`` with all
    states as unknowns, solved by IPOPT (exact Hessian of the Lagrangian, MUMPS LDLᵀ with
    inertia correction). The constraint multipliers returned by IPOPT are the costates
    ``p_1..p_N`` (tested against :func:`ocdl.pmp.costate`); they are in ``result.costates``.
"""
import time

import numpy as np

from ocdl import optim, pmp
from ocdl.errors import SolverError
from ocdl.optim import CONVERGED, ITERATION_CAP, STALLED, STOPPED, StopRun
from ocdl.solvers.gradient import HINT, PATIENCE, STATE_LIMIT, Batching
from ocdl.solvers.support import (CASADI_ACTIVATIONS, EXACT_COSTATE, EXPLICIT_RK, FULLY_CONNECTED, WITH_CASADI_FORM,
                                  supports)

FORMULATIONS = ("reduced", "full")
WARM_STARTS = ("adam", "lbfgs", "none")


def check_options(name, unknown):
    """One-line error for options a solver does not have (``ocdl train --lr`` with ``--solver msa``)."""
    if unknown:
        raise SolverError(f"{name}: unknown option(s) {', '.join(sorted(unknown))}")


def refuse_checkpoints(name, state0, checkpoint):
    """The multi-phase CasADi solvers do not resume: a one-line error for ``--resume``/``--checkpoint``."""
    if state0 is not None:
        raise SolverError(f"{name} cannot resume from a checkpoint (--resume); rerun it from the start")
    if checkpoint is not None:
        raise SolverError(f"{name} does not write checkpoints; drop --checkpoint for this solver")


class KKTObjective:
    """``objective(x, batch) → (J, ∇J, {"kkt", "phase"})`` for :func:`ocdl.optim.minimize` on the flat
    parameters: the exact costate gradient (:func:`ocdl.pmp.value_and_grad`) and the shared KKT
    residual :func:`ocdl.pmp.kkt_residual`, of the rows ``batch`` (None: all data; a mini-batch:
    the batch cost ``J_B``). ``phase`` (set by the solver) labels the history rows.
    The last two evaluations are remembered: a trust-region step evaluates its trial point, which
    the driver evaluates again as the next iterate."""

    def __init__(self, model, X, y, phase=""):
        self.model, self.X, self.y, self.phase = model, X, y, phase
        self._cache = []

    def data(self, rows):
        return (self.X, self.y) if rows is None else (self.X[rows], self.y[rows])

    def grad(self, x, rows=None):
        """∇J of the rows ``rows`` (None: all) only (not remembered: finite-difference
        Hessian-vector products)."""
        return self.model.flatten(pmp.value_and_grad(self.model, self.model.unflatten(x), *self.data(rows))[1])

    def __call__(self, x, batch=None):
        for xc, bc, cached in self._cache:
            if np.array_equal(xc, x) and (bc is batch or (bc is not None and batch is not None
                                                          and np.array_equal(bc, batch))):
                out = cached
                break
        else:
            params = self.model.unflatten(x)
            X, y = self.data(batch)
            J, grads = pmp.value_and_grad(self.model, params, X, y)
            out = (J, self.model.flatten(grads), pmp.kkt_residual(self.model, params, X, y, grads=grads))
            self._cache = [(np.array(x, dtype=float, copy=True), None if batch is None else np.array(batch), out)] \
                + self._cache[:1]
        return out[0], out[1], {"kkt": out[2], "phase": self.phase}


class TorchHVP:
    """Exact Hessian-vector products ``∇²J_S(z) v`` by torch reverse-over-reverse (double backward,
    float64) through :meth:`ResNetODE.cost` on the rows ``S``:
    ``J_S = (1/|S|) Σ_{i∈S} Φ_i + R(θ)`` (the regulariser's curvature in full — the subsampled
    Hessian of Byrd, Chin, Neveitt, Nocedal 2011). The graph of ``∇J_S`` at ``z`` is kept while
    the products at the same ``(z, S)`` go on (one CG solve), so each product is one backward
    pass. Measured on wine (width 39, 31 320 parameters, n = 133, one thread): 12 ms per product,
    against 0.3 s for CasADi's per-sample forward-over-reverse (``GradientOnly.hvp``) and 4.6 ms
    for a central difference of the costate gradient. No Hessian is formed."""

    def __init__(self, model, X, y):
        import torch
        self.torch, self.model = torch, model
        self.X = torch.tensor(np.asarray(X, dtype=float), dtype=torch.float64)
        self.y = np.asarray(y)
        self._key = self._graph = None

    def _gradient_graph(self, z, rows):
        torch = self.torch
        x = torch.tensor(np.asarray(z, dtype=float), dtype=torch.float64, requires_grad=True)
        params, i = {}, 0
        for k, shp in self.model.shapes().items():
            size = int(np.prod(shp))
            params[k] = x[i:i + size].reshape(shp)
            i += size
        X, y = (self.X, self.y) if rows is None else (self.X[torch.as_tensor(rows)], self.y[rows])
        g, = torch.autograd.grad(self.model.cost(params, X, y), x, create_graph=True)
        return x, g

    def __call__(self, z, v, rows=None):
        key = self._key
        if key is None or not (np.array_equal(key[0], z) and (key[1] is rows or (
                key[1] is not None and rows is not None and np.array_equal(key[1], rows)))):
            self._graph = self._gradient_graph(z, rows)
            self._key = (np.array(z, dtype=float, copy=True), None if rows is None else np.array(rows))
        x, g = self._graph
        hv, = self.torch.autograd.grad(g, x, grad_outputs=self.torch.as_tensor(np.asarray(v, dtype=float)),
                                       retain_graph=True)
        return hv.numpy()

    def release(self):
        self._key = self._graph = None


class HessianSample:
    """The subsample ``S`` of the Hessian-vector products (Byrd et al. 2011): ``sample`` a fraction
    in (0, 1] or a count ≥ 1 (a float ≤ 1 is a fraction, otherwise a count) of the rows the
    gradient uses (all data, or the iterate's mini-batch); None: those rows themselves. A fresh
    subsample is drawn for every Newton step (``numpy.random.default_rng(seed)``)."""

    def __init__(self, sample, n, seed=0):
        self.sample, self.n = sample, int(n)
        self.rng = np.random.default_rng(seed)
        if sample is not None and not (float(sample) > 0):
            raise SolverError(f"newton: hessian_sample must be a fraction in (0, 1] or a count ≥ 1 (got {sample})")

    def size(self, rows_available):
        if self.sample is None:
            return rows_available
        s = float(self.sample)
        k = int(round(s * rows_available)) if s <= 1 else int(s)
        return max(1, min(k, rows_available))

    def __call__(self, batch):
        rows = np.arange(self.n) if batch is None else np.asarray(batch)
        k = self.size(rows.size)
        if k >= rows.size:
            return batch
        return np.sort(self.rng.choice(rows, size=k, replace=False))


class UntilKKT:
    """A stepping rule that also stops the run, converged (status 0), once the iterate's recorded
    ``kkt`` is ≤ ``tol``."""

    def __init__(self, rule, tol):
        self.rule, self.tol, self.name = rule, float(tol), rule.name

    def start(self, x, saved, ctx):
        self.rule.start(x, saved, ctx)

    def state(self):
        return self.rule.state()

    def step(self, it, x, f, g, ctx):
        kkt = ctx.history[-1]["kkt"]
        if kkt <= self.tol:
            raise StopRun(f"converged: KKT residual {kkt:.2e} <= {self.tol:g}", CONVERGED)
        return self.rule.step(it, x, f, g, ctx)


class Phases:
    """The phases of one multi-phase solve (warm start, Newton, restarts) on :func:`ocdl.optim.minimize`:
    each phase continues the previous one's iteration count, history and clock (it is started from
    that phase's state), so the result has one history whose ``time_s`` is measured from the
    solver's start (time between phases included). ``to_params`` maps the phase's flat ``x``
    to the parameter dict (for the callback and for ``err.result`` of a divergence)."""

    def __init__(self, name, model, callback, quiet, should_stop):
        self.name, self.model, self.callback, self.quiet, self.should_stop = name, model, callback, quiet, should_stop
        self.last, self.user_stopped, self.t0 = None, False, time.perf_counter()

    def run(self, objective, x, rule, iterations, to_params, stop_test=None, extra=None):
        """``iterations`` more iterations of ``rule`` from ``x``; ``stop_test(x)`` True ends the phase
        (status 2, like a callback) — used for the L-BFGS warm start's KKT target. ``extra``: more
        keywords of :func:`ocdl.optim.minimize` (mini-batches: sampler, epoch_callback, monitor)."""
        prev = self.last
        state0 = None if prev is None else {"iteration": prev.nit, "params": {"x": np.asarray(x, dtype=float)},
                                            "history": prev.history, "meta": {}}

        def cb(it, xx, f):
            if self.callback is not None and self.callback(it, to_params(xx), f):
                self.user_stopped = True
                return True
            return bool(stop_test is not None and stop_test(xx))

        start = 0 if prev is None else prev.nit
        # the driver's clock continues from the last row's time; the time spent outside the
        # phases (CasADi builds, a warm start by another solver) is added to this phase's rows
        before = prev.history if prev is not None else []
        gap = time.perf_counter() - self.t0 - (before[-1]["time_s"] if before else 0.0)

        def shift(history):
            for row in history[len(before):]:
                row["time_s"] += gap
        try:
            res = optim.minimize(objective, x, rule, start + int(iterations), name=self.name, callback=cb,
                                 quiet=self.quiet, state0=state0, should_stop=self.should_stop,
                                 state_limit=STATE_LIMIT, hint=HINT, **(extra or {}))
        except SolverError as err:
            if getattr(err, "result", None) is not None:
                shift(err.result.history)
                if err.result.x is not None:
                    err.result.x = to_params(np.asarray(err.result.x, dtype=float))
                err.result.update(model=self.model, solver=self.name)
            raise
        shift(res.history)
        self.last = res
        return res

    def finish(self, params, **extra):
        res = self.last
        res.x = params
        res.update(model=self.model, solver=self.name, wall_time_s=time.perf_counter() - self.t0, **extra)
        return res


def lbfgs_phase(phases, objective, z, iterations, warm_tol):
    """scipy L-BFGS-B on J with the exact costate gradient until the KKT residual is ≤ ``warm_tol``
    (rows: phase "lbfgs"); status 0 when it got there."""
    objective.phase = "lbfgs"
    res = phases.run(objective, z, optim.LBFGS(gtol=0.0, ftol=0.0, maxcor=20), iterations, phases.model.unflatten,
                     stop_test=lambda x: objective(x)[2]["kkt"] <= warm_tol)
    if res.status == STOPPED and not phases.user_stopped:
        res.update(status=CONVERGED, success=True,
                   message=f"warm start converged: KKT residual {res.kkt:.2e} <= {warm_tol:g}")
    return res


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


class TrustRegionNewtonCG:
    """Trust-region Newton–CG on ``∇J = 0`` as a rule of :func:`ocdl.optim.minimize` (module docstring).

    ``step`` at the iterate ``z`` (its ``kkt`` recorded by the driver): converged (status 0) when
    ``kkt ≤ tol``; stalled (status 3) when the radius has collapsed below 1e-14. Otherwise the
    Steihaug–Toint step ``s`` with forcing term ``min(0.5, √‖g‖)‖g‖``, the trial ``J(z + s)``
    (``ctx.call``), the ratio ρ of actual to predicted decrease (at round-off level: the decrease of
    ‖g‖), ``Δ ← Δ/4·min(1, ‖s‖/Δ)`` if ρ < 0.25, ``2Δ`` if ρ > 0.75 at the boundary; the step is
    taken if ρ > 1e-4. The iterate's history row gets ``step``, ``cg_iterations``, ``cg_stop``,
    ``accepted``. Hessian-vector products: central differences of ``grad(x, rows)`` while kkt >
    ``exact_below``, else ``hvp_exact(z, v, rows)``.

    Mini-batches and subsampled Hessians (Byrd et al. 2011): the iterate's ``g``, ``J`` and the
    trial cost are those of the driver's batch (``ctx.batch``; None: all data); the products use
    the rows ``sample(ctx.batch)`` (default: the same rows), drawn afresh every step.
    """
    name = "newton"

    def __init__(self, grad, hvp_exact, tol=1e-10, delta0=1.0, cg_maxiter=500, exact_below=1e-5, sample=None):
        self.grad, self.hvp_exact, self.sample = grad, hvp_exact, sample
        self.tol, self.delta0, self.cg_maxiter, self.exact_below = float(tol), float(delta0), int(cg_maxiter), \
            float(exact_below)
        self.n_hvp = self.n_fd_steps = 0

    def start(self, x, saved, ctx):
        self.Delta = float(saved["delta"]) if saved else self.delta0

    def state(self):
        return {"delta": np.array(self.Delta)}

    def step(self, it, z, J, g, ctx):
        res = ctx.history[-1]["kkt"]
        if res <= self.tol:
            raise StopRun(f"converged: KKT residual {res:.2e} <= {self.tol:g}", CONVERGED)
        if self.Delta < 1e-14:
            raise StopRun(f"trust region collapsed (radius < 1e-14) at KKT residual {res:.2e}", STALLED)
        gnorm = float(np.linalg.norm(g))
        rtol = min(0.5, np.sqrt(gnorm)) * gnorm            # forcing term: superlinear convergence
        batch = getattr(ctx, "batch", None)
        rows = batch if self.sample is None else self.sample(batch)
        if res > self.exact_below:
            # far from convergence: Hessian-vector products by central differences of the exact
            # costate gradient (2 sweeps, ~6x cheaper than CasADi's; relative error ~1e-8 only
            # perturbs the inexact Newton step, which the trust region checks with the true J)
            zn = float(np.linalg.norm(z))

            def hvp(v):
                nv = float(np.linalg.norm(v))
                if nv == 0.0:
                    return np.zeros_like(v)
                eps = 1e-5 * (1.0 + zn) / nv
                return (self.grad(z + eps * v, rows) - self.grad(z - eps * v, rows)) / (2 * eps)
            self.n_fd_steps += 1
        else:
            def hvp(v):
                return self.hvp_exact(z, v, rows)           # exact (torch double backward)
        s, nh, why = steihaug_cg(g, hvp, self.Delta, rtol, self.cg_maxiter)
        Hs = hvp(s)
        self.n_hvp += nh + 1
        snorm = float(np.linalg.norm(s))
        pred = -(g @ s + 0.5 * s @ Hs)
        Jn, gn, _ = ctx.call(z + s, batch)
        ared = J - Jn
        if not np.isfinite(Jn):
            rho = -1.0
        elif abs(ared) <= 1e-14 * max(1.0, abs(J)):
            # decrease at round-off level: judge the step by the gradient instead
            rho = 1.0 if np.linalg.norm(gn) < gnorm else -1.0
        else:
            rho = ared / pred if pred > 0 else -1.0
        if rho < 0.25:
            self.Delta = 0.25 * min(self.Delta, snorm)
        elif rho > 0.75 and snorm > 0.99 * self.Delta:
            self.Delta *= 2.0
        accepted = bool(rho > 1e-4)
        ctx.history[-1].update(step=snorm, cg_iterations=nh, cg_stop=why, accepted=accepted)
        return z + s if accepted else z


def _cap_message(res, what, n, tol, key="kkt"):
    if res.status == ITERATION_CAP:
        res.message = f"iteration limit reached ({n} {what}) before convergence ({key} {res[key]:.2e} > tol {tol:g})"


@supports(fields=FULLY_CONNECTED, integrators=EXACT_COSTATE, iterations=300)
def newton(model, params0, X, y, *, iterations=None, callback=None, quiet=True, tol=1e-10,
           warm_start=None, warm_iterations=None, warm_tol=None, max_restarts=3, lr=0.02, delta0=1.0, cg_maxiter=500,
           exact_below=1e-5, formulation="reduced", linear_solver="mumps", threads=1, hessian_sample=None,
           state0=None, checkpoint=None, checkpoint_every=None, should_stop=None, batch_size=None, epochs=None,
           validation=None, patience=PATIENCE, test=None, batch_seed=0, **unknown):
    """Newton on the discrete PMP system (see module docstring): ``formulation="reduced"``
    (default; trust-region Newton–CG on ∇J = 0) or ``"full"`` (full-space Newton, sparse LU).

    Reduced formulation only: ``hessian_sample`` (a fraction in (0, 1] or a count) — Hessian-vector
    products on a fresh random subsample of the gradient's rows every step (Byrd et al. 2011;
    :class:`HessianSample`); ``batch_size``, ``epochs``, ``validation``, ``patience``, ``test`` as
    for the gradient solvers (:class:`ocdl.solvers.gradient.Batching`): the Adam warm start and
    every Newton–CG step work on one shuffled mini-batch (gradient, trust-region ratio and — unless
    ``hessian_sample`` takes a part of it — Hessian-vector products of the batch cost ``J_B``);
    ``epochs`` counts the Newton steps (``iterations = epochs · ⌈n/B⌉``).
    The full formulation refuses these (``test``, only per-epoch held-out accuracy, it ignores).

    Warm start ``warm_iterations`` Adam steps (constant ``lr``, plain Adam) with the exact costate
    gradient, or L-BFGS to KKT ≤ ``warm_tol``; then trust-region Newton steps until
    ``kkt_residual ≤ tol`` (``success``) or ``iterations`` Newton steps (default 300). Every
    phase runs on :func:`ocdl.optim.minimize`; one history: iteration, loss, time_s, kkt
    (= ‖F(z)‖∞), phase ("adam" | "lbfgs" | "newton" | "newton-full"), and for Newton rows the step
    taken from that iterate.
    """
    check_options("newton", unknown)
    refuse_checkpoints("newton", state0, checkpoint)
    if formulation not in FORMULATIONS:
        raise SolverError(f"newton: unknown formulation '{formulation}' (valid: {', '.join(FORMULATIONS)})")
    if formulation == "full":
        given = [k for k, v in (("hessian_sample", hessian_sample), ("batch_size", batch_size), ("epochs", epochs),
                                ("validation", validation)) if v is not None]
        if given:
            raise SolverError(f"newton: {', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to "
                              f"formulation='reduced' only")
    if warm_start is None:
        warm_start = "adam" if formulation == "reduced" else "lbfgs"
    if warm_start not in WARM_STARTS:
        raise SolverError(f"newton: unknown warm_start '{warm_start}' (valid: {', '.join(WARM_STARTS)})")
    if formulation == "full":
        test = None
        from ocdl.solvers.newton_full import LINEAR_SOLVERS
        if linear_solver not in LINEAR_SOLVERS:
            raise SolverError(f"newton: unknown linear_solver '{linear_solver}' (valid: {', '.join(LINEAR_SOLVERS)})")
    if warm_iterations is None:
        # (full space: an L-BFGS warm start that stops at its iteration cap far above warm_tol
        # wastes a factorisation on a stalled line search; its cap is therefore high)
        warm_iterations = 1000 if formulation == "reduced" else 5000
    if warm_tol is None:
        # full space: every Newton step is a sparse LU of ~10⁵ unknowns (~10 s at width 6, n = 400),
        # so start it close; measured on two spirals (n = 400, width 6): starts at KKT 1.4e-4 and
        # 7e-4 stalled the line search, starts at ≤ 1e-6 converged in two steps
        warm_tol = 1e-4 if formulation == "reduced" else 1e-6
    if iterations is None:
        iterations = newton.supports.iterations if formulation == "reduced" else 50
    iterations = int(iterations)
    X = np.asarray(X, dtype=float)
    bt = Batching(model, X, np.asarray(y), batch_size, epochs, validation, patience, test, batch_seed)
    X, y = bt.X, bt.y
    phases = Phases("newton", model, callback, quiet, should_stop)
    objective = KKTObjective(model, X, y)
    z = model.flatten(params0).astype(float)
    # ---------------- warm start: Adam or L-BFGS with the exact costate gradient
    if warm_start == "adam":
        objective.phase = "adam"
        rule = UntilKKT(optim.Adam(lr, "constant", amsgrad=False), tol)
        sampler = {k: v for k, v in bt.minimize_options().items() if k == "sampler"}
        res = phases.run(objective, z, rule, warm_iterations, model.unflatten, extra=sampler)
    elif warm_start == "lbfgs":
        res = lbfgs_phase(phases, objective, z, warm_iterations, warm_tol)
    else:
        res = None
    if res is not None:
        z = res.x
        if phases.user_stopped or res.kkt <= tol:
            _cap_message(res, "warm-start steps", warm_iterations, tol)
            return phases.finish(model.unflatten(z), formulation=f"{warm_start} warm start only")
    if formulation == "full":
        return _full_space(phases, objective, z, model, X, y, tol, iterations, warm_iterations, warm_tol,
                           max_restarts, threads, linear_solver)
    # ---------------- trust-region Newton–CG with exact Hessian-vector products
    objective.phase = "newton"
    hvp = TorchHVP(model, X, y)
    sample = None if hessian_sample is None else HessianSample(hessian_sample, len(y), batch_seed)
    rule = TrustRegionNewtonCG(objective.grad, hvp, tol, delta0, cg_maxiter, exact_below, sample)
    steps = bt.iterations(iterations)
    res = phases.run(objective, z, rule, steps, model.unflatten, extra=bt.minimize_options())
    hvp.release()
    _cap_message(res, "Newton steps", steps, tol)
    params = model.unflatten(res.x)
    extra = {}
    if bt.size < bt.n or bt.val is not None:
        extra["fun"] = pmp.cost(model, params, X, y)          # the full training cost
    return phases.finish(params, n_hvp=rule.n_hvp, n_fd_newton_steps=rule.n_fd_steps,
                         hessian_sample=None if sample is None else sample.size(bt.size),
                         formulation="reduced-space trust-region Newton-CG, exact Hessian-vector products "
                                     "(states/costates eliminated by exact sweeps)", **extra)


def _full_space(phases, objective, z, model, X, y, tol, iterations, warm_iterations, warm_tol, max_restarts,
                threads, linear_solver):
    """Full-space Newton phases (:class:`ocdl.solvers.newton_full.FullSpaceNewton`); when its line
    search stalls (a near-singular KKT matrix: far from a regular solution), back to L-BFGS on J
    from the last iterate's parameters until the KKT residual is 100× below the one at which
    Newton was started (at most ``max_restarts`` times)."""
    from ocdl.solvers.newton_full import FullSpaceKKT, FullSpaceNewton
    tb = time.perf_counter()
    system = FullSpaceKKT(model, X, y, threads=threads)
    build_s = time.perf_counter() - tb
    rule = FullSpaceNewton(system, tol, linear_solver)
    restarts = 0
    while True:
        res = phases.run(rule.objective, system.from_params(model.unflatten(z)), rule, iterations - rule.steps,
                         system.params)
        if res.status != STALLED or restarts >= max_restarts or rule.steps >= iterations:
            break
        restarts += 1
        warm_tol = warm_tol / 100
        z = model.flatten(system.params(res.x))
        res = lbfgs_phase(phases, objective, z, warm_iterations, warm_tol)
        if phases.user_stopped:
            break
        z = res.x
    params = system.params(res.x) if res.x.size == system.size else model.unflatten(res.x)
    kkt_full = float(res.kkt)
    if res.status == CONVERGED:
        res.message = f"converged: full-space ‖F(z)‖∞ {kkt_full:.2e} <= {tol:g}"
    elif res.status == STALLED:
        res.message = (f"{res.message}; stopped after {rule.steps} full-space Newton steps and {restarts} "
                       f"L-BFGS restarts")
    _cap_message(res, "full-space Newton steps", iterations, tol)
    return phases.finish(params, kkt=pmp.kkt_residual(model, params, X, y), kkt_full=kkt_full,
                         build_time_s=build_s, jacobian_time_s=rule.jacobian_s, lu_time_s=rule.lu_s,
                         unknowns=system.size, lu_nnz=rule.lu_nnz, newton_steps=rule.steps, restarts=restarts,
                         formulation=f"full-space Newton on F(z) = 0 (states, costates, θ, head), sparse LU "
                                     f"({linear_solver}), Armijo line search on ½‖F‖²")


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

    def start(self, x, saved, ctx):
        pass

    def state(self):
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

    def run(self, ctx, x0, start, iterations):
        """``iterations`` = IPOPT's ``max_iter`` + 1 (its starting point is a row)."""
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
        return w[:self.n_params], None, {}, code, message


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
