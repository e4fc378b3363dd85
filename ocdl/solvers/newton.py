"""Newton on the discrete Pontryagin system: ``newton`` (reduced or full space).

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

    Globalisation (a bare Newton from a random start finds saddles or stalls):

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

The trust-region pieces (Steihaug–Toint CG, the rule, exact and subsampled Hessian-vector
products) are in :mod:`ocdl.solvers.trust_region`; the pieces every Pontryagin solver shares
(KKT objective, phases, option checks) in :mod:`ocdl.solvers.pontryagin`; IPOPT in
:mod:`ocdl.solvers.ipopt`.
"""
import time

import numpy as np

from ocdl import pmp
from ocdl.errors import InputError, SolverError
from ocdl.optim import CONVERGED, STALLED
from ocdl.solvers.defaults import (NEWTON_GN_CG_MAXITER, NEWTON_GN_CG_RTOL, NEWTON_KFAC_AVERAGE, NEWTON_KFAC_DAMPING,
                                   NEWTON_KFAC_CG_MAXITER, NEWTON_KFAC_CONV_CG_MAXITER, NEWTON_KFAC_REFRESH)
from ocdl.solvers.kronecker import KroneckerMetric
from ocdl.solvers.gradient import PATIENCE, Batching
from ocdl.solvers.pontryagin import (KKTObjective, Phases, adam_phase, cap_message, check_options, lbfgs_phase,
                                     refuse_checkpoints)
from ocdl.solvers.support import EXACT_COSTATE, Rule, supports
from ocdl.solvers.trust_region import GaussNewtonProduct, HessianSample, TorchHVP, TrustRegionNewtonCG

__all__ = ["newton", "FORMULATIONS", "WARM_STARTS", "CURVATURES", "PRECONDITIONERS", "GaussNewtonProduct",
           "HessianSample", "TorchHVP", "TrustRegionNewtonCG"]

FORMULATIONS = ("reduced", "full")
WARM_STARTS = ("adam", "lbfgs", "none")
CURVATURES = ("hessian", "gauss-newton")
PRECONDITIONERS = ("none", "kfac")


#: newton's fields: the fully connected ones, and ``conv`` (reduced formulation: its Gauss–Newton
#: step with the Kronecker metric reaches 95–96 % held-out on MNIST-1D, docs/compare.md)
FIELDS = Rule("fully connected fields with a fused form, and conv (reduced formulation)",
              lambda F: F.form is not None and (not getattr(F, "conv", False) or F.name == "conv"))


@supports(fields=FIELDS, integrators=EXACT_COSTATE, iterations=300)
def newton(model, params0, X, y, *, iterations=None, callback=None, quiet=True, tol=1e-10,
           warm_start=None, warm_iterations=None, warm_tol=None, max_restarts=3, lr=0.02, delta0=1.0, cg_maxiter=500,
           exact_below=1e-5, formulation="reduced", linear_solver="mumps", threads=1, hessian_sample=None,
           state0=None, checkpoint=None, checkpoint_every=None, should_stop=None, batch_size=None, epochs=None,
           validation=None, patience=PATIENCE, test=None, batch_seed=0, curvature=None, damping=1.0,
           gn_cg_rtol=None, gn_cg_maxiter=None, gauss_newton_above=1e-3, preconditioner=None,
           **unknown):
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

    ``curvature="gauss-newton"`` (reduced formulation): while the KKT residual is above
    ``gauss_newton_above`` (1e-3) the steps are Levenberg–Marquardt on the generalised Gauss–Newton matrix
    (:class:`GaussNewtonProduct`, positive semidefinite; Martens 2010), damping λ from ``damping``
    adapted by the reduction ratio, CG to ``gn_cg_rtol``·‖g‖ or ``gn_cg_maxiter`` iterations (None:
    ``NEWTON_GN_CG_RTOL``, ``NEWTON_GN_CG_MAXITER`` of :mod:`ocdl.solvers.defaults`); below it the
    exact-Hessian trust-region steps (``cg_maxiter``). ``curvature="hessian"``: the trust-region
    Newton–CG steps throughout. None (default): "gauss-newton" for mini-batches without a warm start
    (``warm_start="none"``, ``batch_size`` given), else "hessian".

    ``preconditioner="kfac"`` (Gauss–Newton steps; fields with ``layer_io`` — outer, inner, conv —
    and ``euler``): the damping and the CG preconditioner in the Kronecker-factored metric ``M ≈ G``
    of :class:`ocdl.solvers.kronecker.KroneckerMetric` (K-FAC, Martens & Grosse 2015, from the
    costate sweeps with labels drawn from the model, on the products' rows): ``(G + λM)s = −g`` by
    :func:`ocdl.solvers.trust_region.damped_pcg`, CG ≤ ``NEWTON_KFAC_CG_MAXITER`` (1; conv:
    ``NEWTON_KFAC_CONV_CG_MAXITER``, 3) unless ``gn_cg_maxiter``. ``"none"``: ``(G + λI)s = −g``,
    unpreconditioned. None (default): "kfac" for mini-batches without a warm start on those fields
    with euler, else "none".

    Fields: the fully connected ones and ``conv`` (reduced formulation; the full-space one builds
    its KKT system in CasADi, which has no conv form).

    Warm start ``warm_iterations`` Adam steps (AMSGrad, ``lr`` with cosine decay, the best full-batch
    iterate handed over: :func:`ocdl.solvers.pontryagin.adam_phase`) with the exact costate gradient, or L-BFGS to
    KKT ≤ ``warm_tol``; then trust-region Newton steps until
    ``kkt_residual ≤ tol`` (``success``) or ``iterations`` Newton steps (default 300). Every
    phase runs on :func:`ocdl.optim.minimize`; one history: iteration, loss, time_s, kkt
    (= ‖F(z)‖∞), phase ("adam" | "lbfgs" | "newton" | "newton-full"), and for Newton rows the step
    taken from that iterate.
    """
    check_options("newton", unknown)
    refuse_checkpoints("newton", state0, checkpoint)
    if formulation not in FORMULATIONS:
        raise SolverError(f"newton: unknown formulation '{formulation}' (valid: {', '.join(FORMULATIONS)})")
    if formulation == "full" and getattr(model.F, "conv", False):
        raise InputError("newton: formulation='full' needs a fully connected field (its KKT system is built in "
                         "CasADi, which has no conv form); use formulation='reduced'")
    if formulation == "full":
        given = [k for k, v in (("hessian_sample", hessian_sample), ("batch_size", batch_size), ("epochs", epochs),
                                ("validation", validation)) if v is not None]
        if given:
            raise SolverError(f"newton: {', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to "
                              f"formulation='reduced' only")
    if warm_start is None:
        warm_start = "adam" if formulation == "reduced" else "lbfgs"
    cold_batches = warm_start == "none" and formulation == "reduced" and batch_size is not None
    if curvature is None:
        curvature = "gauss-newton" if cold_batches else "hessian"
    if preconditioner is None:
        preconditioner = "kfac" if cold_batches and curvature == "gauss-newton" and KroneckerMetric.applies(model) \
            else "none"
    if curvature not in CURVATURES:
        raise SolverError(f"newton: unknown curvature '{curvature}' (valid: {', '.join(CURVATURES)})")
    if formulation == "full" and curvature != "hessian":
        raise SolverError("newton: curvature='gauss-newton' applies to formulation='reduced' only")
    if preconditioner not in PRECONDITIONERS:
        raise InputError(f"newton: unknown preconditioner '{preconditioner}' (valid: {', '.join(PRECONDITIONERS)})")
    if preconditioner != "none" and curvature != "gauss-newton":
        raise InputError(f"newton: preconditioner='{preconditioner}' applies to curvature='gauss-newton' only")
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
        res = adam_phase(phases, objective, z, warm_iterations, lr, tol, bt.minimize_options().get("sampler"))
    elif warm_start == "lbfgs":
        res = lbfgs_phase(phases, objective, z, warm_iterations, warm_tol)
    else:
        res = None
    if res is not None:
        z = res.x
        if phases.user_stopped or res.kkt <= tol:
            cap_message(res, "warm-start steps", warm_iterations, tol)
            return phases.finish(model.unflatten(z), formulation=f"{warm_start} warm start only")
    if formulation == "full":
        return _full_space(phases, objective, z, model, X, y, tol, iterations, warm_iterations, warm_tol,
                           max_restarts, threads, linear_solver)
    # ---------------- trust-region Newton–CG with exact Hessian-vector products
    objective.phase = "newton"
    hvp = TorchHVP(model, X, y)
    sample = None if hessian_sample is None else HessianSample(hessian_sample, len(y), batch_seed)
    gn = GaussNewtonProduct(model, X, y) if curvature == "gauss-newton" else None
    metric = None
    if preconditioner == "kfac":
        metric = KroneckerMetric(model, X, NEWTON_KFAC_AVERAGE, NEWTON_KFAC_DAMPING, NEWTON_KFAC_REFRESH, batch_seed)
    if gn_cg_maxiter is None:
        gn_cg_maxiter = (NEWTON_GN_CG_MAXITER if metric is None else
                         NEWTON_KFAC_CONV_CG_MAXITER if getattr(model.F, "conv", False) else NEWTON_KFAC_CG_MAXITER)
    rule = TrustRegionNewtonCG(objective.grad, hvp, tol, delta0, cg_maxiter, exact_below, sample, gn, damping,
                               NEWTON_GN_CG_RTOL if gn_cg_rtol is None else gn_cg_rtol, gn_cg_maxiter,
                               gauss_newton_above, metric, objective.cost)
    steps = bt.iterations(iterations)
    res = phases.run(objective, z, rule, steps, model.unflatten, extra=bt.minimize_options())
    hvp.release()
    if gn is not None:
        gn.release()
    cap_message(res, "Newton steps", steps, tol)
    params = model.unflatten(res.x)
    extra = {}
    if bt.size < bt.n or bt.val is not None:
        extra["fun"] = pmp.cost(model, params, X, y)          # the full training cost
    return phases.finish(params, n_hvp=rule.n_hvp, n_fd_newton_steps=rule.n_fd_steps,
                         n_gauss_newton_steps=rule.n_gn_steps, cg_iterations=rule.n_cg, curvature=curvature,
                         preconditioner=preconditioner,
                         hessian_sample=None if sample is None else sample.size(bt.size),
                         formulation=("reduced-space Levenberg–Marquardt Gauss–Newton-CG, then " if gn is not None
                                      else "reduced-space ") +
                         "trust-region Newton-CG, exact Hessian-vector products "
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
    cap_message(res, "full-space Newton steps", iterations, tol)
    return phases.finish(params, kkt=pmp.kkt_residual(model, params, X, y), kkt_full=kkt_full,
                         build_time_s=build_s, jacobian_time_s=rule.jacobian_s, lu_time_s=rule.lu_s,
                         unknowns=system.size, lu_nnz=rule.lu_nnz, newton_steps=rule.steps, restarts=restarts,
                         formulation=f"full-space Newton on F(z) = 0 (states, costates, θ, head), sparse LU "
                                     f"({linear_solver}), Armijo line search on ½‖F‖²")
