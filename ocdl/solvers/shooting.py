"""Costate shooting on the reduced Hamiltonian boundary-value problem (``outer`` field, r = α/2 |θ|²,
any activation of :mod:`ocdl.models.activations`).

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
(``D_i = diag σ'(x_{k,i})``) for the ``m²`` numbers ``K_k`` by Newton (``b_k`` is then explicit).

Unknowns: ``P(0) = p_0`` (all samples) and the head ``(W, μ)``; with ``segments = M > 1`` also
``(x, p)`` at the interior segment starts (multiple shooting). Residuals: the matching
conditions, ``p_N − (1/n)∇_xΦ(W x_N + μ)``, and the head stationarity
``(1/n) Σ_i ∇_sΦ_i x_{N,i}ᵀ + α_head W = 0``, ``(1/n) Σ_i ∇_sΦ_i = 0``. Costates are scaled,
``q = n p``, so all unknowns are O(1); ``boundary_residual`` is ``‖residual‖∞`` in these units.

The Jacobian is never formed densely: the unknowns of sample ``i`` enter only sample ``i``'s
residuals and the layers' θ, so the system with θ as extra unknowns is bordered block-diagonal
(per-sample blocks plus a coupling of rank ≤ N(m² + m) through θ; the shooting Jacobian is its
Schur complement with respect to θ). :mod:`ocdl.solvers.shooting_blocks` builds the blocks by
forward tangent sweeps (exact; tested against CasADi's dense Jacobian) and solves by block
elimination (Woodbury): cost ``O(n b² G + n b G² + G³)`` with ``G = N(m² + m) + C'(d + 1)`` instead
of the dense ``O((n b)³)``. Solved by Levenberg–Marquardt (:class:`ShootingLM`, converged when the
boundary and the shared KKT residual are ≤ ``tol``) on :func:`ocdl.optim.minimize`. The initial
guess (``p_0`` and the interior ``(x, p)`` from the costate sweep) comes from
``warm_start="newton"`` — the reduced Newton solver stopped at the loose tolerance ``warm_tol`` —
or ``"adam"``: ``warm_iterations`` steps of the adam solver's rule (AMSGrad, cosine decay;
:func:`ocdl.solvers.pontryagin.adam_phase`, as newton's warm start). From a point far from stationarity (e.g. a few
hundred Adam steps) LM stalls in a local minimum of ``‖residual‖²`` at T = 5 even with 20
segments (measured; docs/compare.md).
"""
import time

import numpy as np

from ocdl import pmp
from ocdl.errors import SolverError
from ocdl.optim import CONVERGED, ITERATION_CAP, Step, Stop
from ocdl.optim.lm import Damping
from ocdl.solvers.newton import newton
from ocdl.solvers.pontryagin import KKTObjective, Phases, adam_phase, check_options, refuse_checkpoints
from ocdl.solvers.shooting_blocks import ShootingSystem, bordered_solve
from ocdl.solvers.support import supports


#: the damping rule of :class:`ShootingLM` (:class:`ocdl.optim.lm.Damping`, accept/reject by decrease):
#: λ/10 on acceptance (0 below 1e-12: back to the Gauss–Newton step), max(10λ, 1e-10) on rejection, 30 tries
SHOOTING_DAMPING = Damping("decrease", increase=10.0, decrease=10.0, tries=30, least=1e-10, zero_below=1e-12)


class ShootingLM:
    """Levenberg–Marquardt on the shooting residual ``r(u)`` as a rule of :func:`ocdl.optim.minimize`::

        (JᵀJ + λ s I) δ = −Jᵀ r,   accepted if ‖r(u + δ)‖ < ‖r(u)‖ (then λ ← λ/10, and 0 below 1e-12),
        else λ ← max(10 λ, 1e-10) and solve again (at most 30 times: :data:`SHOOTING_DAMPING`)

    with ``s`` the mean squared column norm of the bordered Jacobian's unknowns ``(P(0), segment
    starts, W, μ)`` (Levenberg's isotropic damping relative to the curvature). ``λ = 0`` is the
    Gauss–Newton step, i.e. Newton's (J is square): one bordered solve
    (:func:`ocdl.solvers.shooting_blocks.bordered_solve`). ``λ > 0`` solves the damped normal
    equations in their augmented form ``J δ − w = −r``, ``Jᵀ w + λ s δ = 0`` — again per-sample
    blocks (δ_i, w_i) bordered by (δθ, δ(W, μ), and two multipliers), so the same elimination
    applies (a Schur complement of twice the size). Converged (status 0) when the boundary residual
    ``‖r‖∞`` and the shared KKT residual of the iterate (both in its history row) are ≤ ``tol``;
    no decrease of ‖r‖ in 30 tries → stalled (status 3). (The core's
    :class:`ocdl.optim.LevenbergMarquardt` solves densely and damps with ``diag(JᵀJ)``; on this
    badly conditioned Jacobian (cond ~1e11 at T = 1) it needed > 30 steps where this rule needs 6.)"""
    name = "shooting"

    def __init__(self, problem, tol, lam0=0.0):
        self.problem, self.tol, self.lam0 = problem, float(tol), float(lam0)

    def init(self, x, saved, run):
        return {"lm_lambda": np.array(float(saved["lm_lambda"]) if saved else self.lam0)}

    def update(self, state, p, run):
        u, row, lam = p.x, p.info, float(state["lm_lambda"])
        if row["boundary_residual"] <= self.tol and row["kkt"] <= self.tol:
            return Step(None, state, stop=Stop(f"converged: boundary residual {row['boundary_residual']:.2e} and "
                                               f"KKT residual {row['kkt']:.2e} <= {self.tol:g}", CONVERGED))
        pb = self.problem
        r, theta, blocks = pb.linearise(u)
        nr = np.linalg.norm(r)

        def trial(lam):                     # a singular system (relu's dead units) raises: damped more
            with np.errstate(over="ignore", invalid="ignore"):      # an overflowing trial is rejected
                du, dtheta = pb.step(blocks, r, lam)
                rt = pb.residual(u + du, theta + dtheta)
            return u + du, bool(np.all(np.isfinite(rt)) and np.linalg.norm(rt) < nr)
        d = SHOOTING_DAMPING.search(lam, trial)
        if not d.accepted:
            return Step(None, {"lm_lambda": np.array(d.next)}, stop=SHOOTING_DAMPING.gives_up(
                "‖r‖", f"boundary residual {row['boundary_residual']:.2e}, KKT residual {row['kkt']:.2e}"))
        return Step(d.payload, {"lm_lambda": np.array(d.next)}, {"lm_lambda": d.lam})


class ShootingProblem:
    """The shooting residual ``r(u)`` and its structured exact Jacobian for ``u`` = (P(0), interior
    (x, p), head) (:class:`ocdl.solvers.shooting_blocks.ShootingSystem`).

    The inner layer solves start from a guess of θ: the θ of the accepted iterate, or for a trial
    point ``u + δ`` that θ plus the linearised change δθ of the same bordered solve. Every
    evaluation remembers the θ it found. ``params(u)`` are the network parameters at ``u``
    (θ from the layer solves, head from ``u``)."""

    def __init__(self, model, X, y, segments):
        self.model, self.X, self.y = model, X, y
        self.system = ShootingSystem(model, model.lift(X), y, segments)
        self.segments, self.nu = segments, self.system.size
        self._seen = []                                  # [(u, r, θ, trajectory)] of the last evaluations

    def start(self, params):
        """``u`` from parameters (costates of the sweep, scaled q = n p) and θ as the first guess."""
        model, N, segments = self.model, self.model.layers, self.segments
        n = self.X.shape[0]
        states, costates = pmp.costate(model, params, self.X, self.y)
        q = n * costates
        parts = [q[0].T.ravel(order="F")]
        for j in range(1, segments):
            k = self.system.bounds[j]
            parts += [states[k].T.ravel(order="F"), q[k].T.ravel(order="F")]
        parts += [params["W"].ravel(), params["mu"]]
        self.guess = np.stack([np.concatenate([params["K"][k].ravel(), params["b"][k]]) for k in range(N)])
        return np.concatenate(parts)

    def _eval(self, u, guess=None):
        for item in self._seen:
            if np.array_equal(item[0], u):
                return item
        r, theta, traj = self.system.evaluate(u, self.guess if guess is None else guess)
        item = (np.array(u, dtype=float, copy=True), r, theta, traj)
        self._seen = [item] + self._seen[:3]
        return item

    def residual(self, u, guess=None):
        return self._eval(u, guess)[1]

    def linearise(self, u):
        """``(r, θ, blocks)`` at ``u``; its θ becomes the guess of later layer solves."""
        _, r, theta, traj = self._eval(u)
        self.guess = theta
        return r, theta, self.system.jacobian_blocks(traj)

    def step(self, blocks, r, lam):
        """The LM step ``(δu, δθ)`` for the relative damping ``lam`` (:class:`ShootingLM`)."""
        sy = self.system
        A, E, F, D = blocks
        n, b, NP, Ph = sy.n, sy.b, sy.N * sy.P, sy.Ph
        Z, _, _ = sy.split(r)
        e, hr = Z, r[n * b:]
        rg = np.concatenate([np.zeros(NP), -hr])
        if lam == 0.0:
            y, g = bordered_solve(A, E, F, D, -e, rg)
            return sy.join(y, g[NP:]), g[:NP].reshape(sy.N, sy.P)
        # damping relative to the mean squared column norm of the free unknowns (z, W, μ)
        colz = (A ** 2).sum(axis=1) + (F ** 2).sum(axis=0)
        colh = (E[:, :, NP:] ** 2).sum(axis=(0, 1)) + (D[:, NP:] ** 2).sum(axis=0)
        mu = lam * float((colz.sum() + colh.sum()) / (colz.size + colh.size))
        Et, Eh, Fs, Fh = E[:, :, :NP], E[:, :, NP:], F[:NP], F[NP:]
        Ds, Dht, Dhh = D[:NP, :NP], D[NP:, :NP], D[NP:, NP:]
        Ga = 2 * NP + 2 * Ph
        th, hd, wh, v = slice(0, NP), slice(NP, NP + Ph), slice(NP + Ph, NP + 2 * Ph), slice(NP + 2 * Ph, Ga)
        Ma = np.zeros((n, 2 * b, 2 * b))
        Ma[:, :b, :b] = A
        Ma[:, :b, b:] = -np.eye(b)
        Ma[:, b:, :b] = mu * np.eye(b)
        Ma[:, b:, b:] = A.transpose(0, 2, 1)
        Ea = np.zeros((n, 2 * b, Ga))
        Ea[:, :b, th], Ea[:, :b, hd] = Et, Eh
        Ea[:, b:, wh], Ea[:, b:, v] = Fh.transpose(1, 2, 0), Fs.transpose(1, 2, 0)
        Fa = np.zeros((Ga, n, 2 * b))
        Fa[th, :, :b], Fa[hd, :, :b] = Fs, Fh                   # rows: s, hr
        Fa[wh, :, b:], Fa[v, :, b:] = Eh.transpose(2, 0, 1), Et.transpose(2, 0, 1)   # rows: δh-, δθ-duals
        Da = np.zeros((Ga, Ga))
        Da[th, th] = Ds
        Da[hd, th], Da[hd, hd], Da[hd, wh] = Dht, Dhh, -np.eye(Ph)
        Da[wh, hd], Da[wh, wh] = mu * np.eye(Ph), Dhh.T
        Da[v, wh], Da[v, v] = Dht.T, Ds.T
        r1 = np.concatenate([-e, np.zeros((n, b))], axis=1)
        r2 = np.concatenate([np.zeros(NP), -hr, np.zeros(Ph + NP)])
        y, g = bordered_solve(Ma, Ea, Fa, Da, r1, r2)
        return sy.join(y[:, :b], g[hd]), g[th].reshape(sy.N, sy.P)

    def params(self, u):
        sy = self.system
        m, N = sy.m, sy.N
        theta = self._eval(u)[2]
        _, W, mu = sy.split(np.asarray(u, dtype=float))
        return {"K": theta[:, :m * m].reshape(N, m, m).copy(), "b": theta[:, m * m:].copy(),
                "W": W.copy(), "mu": np.array(mu, dtype=float)}

    def objective(self, u, batch=None):
        """``(J, None, {"boundary_residual", "kkt"})`` at the parameters of ``u`` (the history's loss is J)."""
        r = self.residual(u)
        rn = float(np.max(np.abs(r))) if np.all(np.isfinite(r)) else np.inf
        if not np.isfinite(rn):
            return np.inf, None, {}
        p = self.params(u)
        J, grads = pmp.value_and_grad(self.model, p, self.X, self.y)
        return J, None, {"boundary_residual": rn, "kkt": pmp.kkt_residual(self.model, p, self.X, self.y, grads)}


@supports(fields=("outer",), integrators=("euler",), iterations=50)
def shooting(model, params0, X, y, *, iterations=None, callback=None, quiet=True, segments=1, tol=1e-8,
             warm_start="newton", warm_tol=1e-10, warm_iterations=300, lr=0.02, lm_lambda=0.0, state0=None,
             checkpoint=None, checkpoint_every=None, should_stop=None, **unknown):
    """Levenberg–Marquardt shooting on the reduced Hamiltonian BVP (see module docstring).

    ``success``: boundary residual and shared KKT residual ≤ ``tol`` (the KKT residual is
    included because it is the certificate: the θ block amplifies a boundary mismatch through the
    layers, measured 1.1e-8 at boundary residual 5.7e-9, T = 1). ``lm_lambda``: the initial
    relative LM damping (0: start with the Gauss–Newton step). ``iterations``: LM steps (default 50).
    Every activation of the model is supported (σ, σ', σ'' from ``Activation.derivatives``).
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
    iterations = shooting.supports.iterations if iterations is None else int(iterations)
    X = np.asarray(X, dtype=float)
    phases = Phases("shooting", model, callback, quiet, should_stop)
    params = {k: np.array(v, dtype=float) for k, v in params0.items()}
    if warm_start == "newton":
        # homotopy start: the reduced Newton solver to a loose tolerance, then shooting polishes
        params = newton(model, params, X, y, tol=warm_tol, quiet=True, should_stop=should_stop).x
    elif warm_iterations > 0:
        # the adam solver's rule (AMSGrad, cosine) with the exact costate gradient, the lowest-J
        # iterate handed over; its rows are the history's first
        res = adam_phase(phases, KKTObjective(model, X, y), model.flatten(params), warm_iterations, lr, tol)
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
