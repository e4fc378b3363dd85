r"""Drift-as-control (Schrödinger-bridge-like) problem, solved two independent ways.

Problem. Minimise over drifts ``a(x, t)``

    J(a) = ∫_0^T ∫ ρ |a|²/2 dx dt + (g/2) ∫_0^T ∫ ρ² dx dt + ∫ Φ ρ(·, T) dx,
    ∂ρ/∂t = −∇·(a ρ) + (ν²/2) Δρ,   ρ(0) = ρ_0.

Optimality (derived and checked symbolically in tests/test_meanfield_signs.py). With the value
(cost-to-go) ``V``:  ``−∂V/∂t = −|∇V|²/2 + (ν²/2)ΔV + gρ``, ``V(T) = Φ``, ``a = −∇V``.
Equivalently, with ``S = −V`` (the convention of docs/theory.md §7, whose signs are right):
``∂S/∂t + |∇S|²/2 + (ν²/2)ΔS = gρ``, ``S(T) = −Φ``, ``a = ∇S``.

1. :func:`solve_forward_backward` — forward Fokker–Planck / backward HJB sweep (policy iteration): given
   face drifts ``a^n``, solve FP forward for ``ρ``, solve the *linear* backward equation
   ``−∂V/∂t = a·∇V + (ν²/2)ΔV + |a|²/2 + gρ`` (the discrete transpose of the FP step plus the
   running cost: the cost-to-go of the current policy), set ``a ← (1−ω)a − ω∇V``; repeat.
2. :func:`solve_hopf_cole` — for ``g = 0``: ``φ = e^{S/ν²} = e^{−V/ν²}`` solves the backward heat
   equation ``∂φ/∂t = −(ν²/2)Δφ``, ``φ(T) = e^{−Φ/ν²}``, and ``φ̂ = ρ/φ`` the forward heat
   equation ``∂φ̂/∂t = +(ν²/2)Δφ̂``, ``φ̂(0) = ρ_0/φ(0)``; then ``ρ = φ φ̂``, ``a = ν²∇log φ``.
   This is the Schrödinger system in *imaginary* time (linear). With ``g ≠ 0`` it becomes
   ``∂φ/∂t = −(ν²/2)Δφ + (g/ν²)ρφ``, ``∂φ̂/∂t = (ν²/2)Δφ̂ − (g/ν²)ρφ̂``, ``ρ = φφ̂`` (a cubic
   imaginary-time NLS in ``(φ, φ̂)``), solved by a damped fixed point on the density path ``ρ``:
   with ``ρ`` frozen both equations are linear (heat equations with potential ``(g/ν²)ρ``).

The expected cost is ``∫ ρ_0 V(·, 0)``; Hopf–Cole gives it as ``−ν² ∫ ρ_0 log φ(·, 0)``.
"""
from dataclasses import dataclass, field as dc_field

import numpy as np

from ocdl.errors import InputError, SolverError
from ocdl.meanfield.fokker_planck import MASS_TOL, SCHEMES, TridiagonalStepper, flux_coefficients, stepper_for_drift
from ocdl.meanfield.grid import Grid


@dataclass
class HopfColeResult:
    """Result of :func:`solve_hopf_cole` (a solve of the optimality system, not an optimisation run)."""
    rho: np.ndarray          # density at T
    value0: np.ndarray       # V(·, 0)
    drift: list              # face drifts a^n, n = 0..steps−1
    cost: float
    nit: int
    residual: float
    success: bool
    message: str
    history: list = dc_field(default_factory=list)
    rho_path: list = dc_field(default_factory=list)


def _face_grad(grid, V):
    return (V[grid.right] - V[grid.left]) / grid.spacing


def _cell_kinetic(grid, a):
    """Cell value of ``|a|²/2`` from face drifts: the mean over a cell's faces per axis, summed."""
    acc = np.zeros(grid.ncells)
    np.add.at(acc, grid.left, 0.25 * a * a)
    np.add.at(acc, grid.right, 0.25 * a * a)
    return acc


def _check(grid, rho0, terminal, nu, T, steps):
    if grid.dim not in (1, 2):
        raise InputError("the drift-as-control solvers are 1-D or 2-D")
    if not nu > 0:
        raise InputError("--nu must be > 0 for the drift-as-control problem")
    if not T > 0 or steps < 1:
        raise InputError("need --T > 0 and --steps ≥ 1")
    Phi = np.asarray(terminal, dtype=float)
    if Phi.shape != (grid.ncells,) or not np.all(np.isfinite(Phi)):
        raise InputError("terminal cost is not finite on the grid; check --terminal and the domain")
    return Phi


def _policy_sweep(grid, rho0, Phi, a, nu, dt, th, g, split=True):
    """Evaluate the policy ``a`` (face drifts per step): Fokker–Planck forward, the cost-to-go
    ``V`` of the policy backward (exact discrete transpose + running cost), the discrete cost, and
    the improved policy ``−∇V`` at the scheme's time level. Returns ``(cost, ρ path, V path, new)``."""
    steps = len(a)
    steppers = [stepper_for_drift(grid, a[n], nu, dt, th, split) for n in range(steps)]
    rho = [np.asarray(rho0, dtype=float)]
    for n in range(steps):
        rho.append(steppers[n].forward(rho[-1]))
    vol = grid.volume
    V = [None] * (steps + 1)
    V[steps] = Phi.copy()
    cost = vol * Phi @ rho[-1]
    for n in range(steps - 1, -1, -1):
        st = steppers[n]
        rbar = (1 - th) * rho[n] + th * rho[n + 1]
        c = _cell_kinetic(grid, a[n]) + g * rbar
        V[n] = st.backward(V[n + 1] + th * dt * c) + (1 - th) * dt * c     # V^n = ∂J/∂ρ^n
        cost += dt * vol * (_cell_kinetic(grid, a[n]) + 0.5 * g * rbar) @ rbar
    new = [-_face_grad(grid, (1 - th) * V[n] + th * V[n + 1] if th < 1 else V[n]) for n in range(steps)]
    return float(cost), rho, V, new


def policy_cost(grid: Grid, rho0, terminal, drift, nu, T, g=0.0, scheme="cn", split=True):
    """The discrete cost ``J`` of the given policy ``drift`` (list of face drifts, one per step)."""
    Phi = _check(grid, rho0, terminal, nu, T, len(drift))
    a = [np.asarray(d, dtype=float) for d in drift]
    return _policy_sweep(grid, rho0, Phi, a, nu, T / len(a), SCHEMES[scheme], g, split)[0]


class PolicyImprovement:
    """Rule for :func:`ocdl.optim.minimize`: the damped policy update ``a ← (1−ω) a + ω (−∇V)``,
    written as the fixed step ``a ← a − ω r`` on the residual ``r = a + ∇V`` the objective returns
    in the gradient slot (``r = 0`` at the fixed point; ``ρ r`` is ``∂H/∂a``).

    Stall guard: the update ``−∇V`` is the continuum optimality condition, not the exact minimiser of
    the discrete cost, so the iteration is a contraction only up to a floor; on fine 2-D grids a mode
    where ``ρ`` is negligible (e.g. ~1e-22 in a far corner at 160², Péclet ≈ 2) then grows ×3 per
    iteration. When ``max|r|`` exceeds ``growth`` × its smallest value so far, the run stops
    (status ``STALLED``); :func:`solve_forward_backward` returns the policy with the smallest residual."""
    name = "FP–HJB sweep"

    def __init__(self, omega, growth=100.0):
        self.omega, self.growth = float(omega), float(growth)

    def init(self, x, saved, run):
        return {"_best": np.inf}         # the smallest max|r| so far (not checkpointed)

    def update(self, state, p, run):
        from ocdl.optim import STALLED, Step, Stop
        x, g = p.x, p.g
        r = float(np.max(np.abs(g)))
        best = min(state["_best"], r)
        if r > self.growth * best:
            return Step(None, {"_best": best}, stop=Stop(f"stalled: max |a + ∇V| grew from {best:.2e} to {r:.2e}; "
                                                         "returning the policy with the smallest residual", STALLED))
        return Step((1 - self.omega) * x + self.omega * (x - g), {"_best": best})


def solve_forward_backward(grid: Grid, rho0, terminal, nu, T, steps=200, g=0.0, scheme="cn", damping=None,
                           maxiter=200, tol=1e-9, quiet=True, initial_drift=None, split=True):
    """FP forward / HJB backward policy iteration (see module docstring) through
    :func:`ocdl.optim.minimize` with the :class:`PolicyImprovement` rule.

    Converged (``success``) when the max change of the face drift ``max |a + ∇V| ≤ tol``; stopped
    (status ``STALLED``, the best policy returned) when it grows 100× above its minimum. Returns an
    :class:`ocdl.optim.OptimizeResult`: ``x`` = ``drift`` (face drifts per step) of the last
    evaluated policy, ``fun`` = ``cost`` its discrete cost, ``residual`` its max |a + ∇V|, and
    ``rho`` (density at T), ``rho_path``, ``value0`` (V(·, 0)) of that policy.
    """
    from ocdl.optim import STALLED, Divergence, ProgressBar, minimize
    Phi = _check(grid, rho0, terminal, nu, T, steps)
    th = SCHEMES[scheme]
    dt = T / steps
    omega = (1.0 if g == 0 else 0.5) if damping is None else float(damping)
    nf = grid.left.size
    a0 = (np.zeros((steps, nf)) if initial_drift is None
          else np.array([np.asarray(d, dtype=float) for d in initial_drift]))
    last, best = {}, {"residual": np.inf}

    def objective(v, batch):
        a = v.reshape(steps, nf)
        cost, rho, V, new = _policy_sweep(grid, rho0, Phi, a, nu, dt, th, g, split)
        r = a - np.array(new)
        res = float(np.max(np.abs(r)))
        last.update(x=v.copy(), cost=cost, rho=rho, V=V, residual=res)
        if res < best["residual"]:
            best.update(last)
        return cost, r.ravel(), {"residual": res}
    res = minimize(objective, a0.ravel(), PolicyImprovement(omega), maxiter, gtol=tol, name="control sweep",
                   progress=ProgressBar(quiet), divergence=Divergence(hint="raise --nu, lower --g or use more --steps"))
    if res.status == STALLED:
        last = best
        res.x, res.fun, res.residual = last["x"], last["cost"], last["residual"]
    res.x = list(res.x.reshape(steps, nf))
    res.drift, res.cost, res.rho, res.rho_path, res.value0 = res.x, res.fun, last["rho"][-1], last["rho"], last["V"][0]
    return res


def solve_hopf_cole(grid: Grid, rho0, terminal, nu, T, steps=200, g=0.0, scheme="cn", damping=0.5,
                    maxiter=200, tol=1e-9, progress=None, split=True):
    """Hopf–Cole / imaginary-time Schrödinger system (see module docstring).

    ``g = 0``: two linear heat solves (``nit = 1``, ``residual`` = mass defect of ``φφ̂``; ``success``
    when it is ≤ ``MASS_TOL`` of :mod:`ocdl.meanfield.fokker_planck` — the discrete forward and
    backward steps are transposes, so the mass is exact up to round-off).
    ``g > 0``: damped fixed point on the density path; ``residual`` = max change of ``ρ``.
    """
    Phi = _check(grid, rho0, terminal, nu, T, steps)
    if g < 0:
        raise InputError("--g must be ≥ 0")
    if g != 0 and grid.boundary != "noflux":
        raise InputError("Hopf–Cole with congestion is implemented for no-flux 1-D grids only")
    th = SCHEMES[scheme]
    dt = T / steps
    zero = np.zeros(grid.left.size)
    cL, cR = flux_coefficients(zero, 0.5 * nu * nu, grid.spacing)
    shift = Phi.min()
    rho0 = np.asarray(rho0, dtype=float)
    path = [rho0.copy() for _ in range(steps + 1)]          # initial guess of ρ(t)
    hist = []
    for it in range(1, (maxiter if g != 0 else 1) + 1):
        if g == 0:
            steppers = [stepper_for_drift(grid, zero, nu, dt, th, split)] * steps
        else:                                               # potential −(g/ν²)ρ on the diagonal
            steppers = [TridiagonalStepper(cL, cR, grid.spacing, dt, th,
                                           -(g / nu**2) * ((1 - th) * path[n] + th * path[n + 1]))
                        if grid.dim == 1 and grid.boundary == "noflux" else None for n in range(steps)]
        phi = [None] * (steps + 1)
        phi[steps] = np.exp(-(Phi - shift) / nu**2)         # φ(T) = e^{−Φ/ν²} (scaled)
        for n in range(steps - 1, -1, -1):                  # ∂φ/∂t = −(ν²/2)Δφ + (g/ν²)ρφ, backward
            phi[n] = steppers[n].backward(phi[n + 1])
        if np.any((phi[0] <= 0) & (rho0 > 0)) or not np.all(np.isfinite(phi[0])):
            raise SolverError("Hopf–Cole underflow: e^{−Φ/ν²} vanishes where ρ0 > 0; "
                              "use --method sweep or a larger --nu")
        phihat = np.where(rho0 > 0, rho0 / np.where(phi[0] > 0, phi[0], 1.0), 0.0)
        new = [rho0]
        for n in range(steps):                              # ∂φ̂/∂t = (ν²/2)Δφ̂ − (g/ν²)ρφ̂, forward
            phihat = steppers[n].forward(phihat)
            new.append(phi[n + 1] * phihat)
        res = max(float(np.max(np.abs(a - b))) for a, b in zip(new, path))
        path = new if g == 0 else [(1 - damping) * a + damping * b for a, b in zip(path, new)]
        hist.append({"iteration": it, "residual": res})
        if progress is not None:
            progress.update(it, kkt=res)
        if not np.isfinite(res):
            raise SolverError("Hopf–Cole fixed point diverged; lower --g or use --method sweep")
        if g != 0 and res < tol:
            break
    rho = path[-1]
    mass = grid.mass(rho)
    with np.errstate(divide="ignore"):
        V0 = -nu**2 * np.log(phi[0]) + shift                # V = −ν² log φ
    drift = [nu**2 * _face_grad(grid, np.log(np.maximum(0.5 * (phi[n] + phi[n + 1]), 1e-300)))
             for n in range(steps)]
    if g == 0:      # two linear solves: the check is the mass of ρ = φφ̂ (Σ φⁿ·φ̂ⁿ is conserved exactly)
        cost = grid.volume * float(np.sum(np.where(rho0 > 0, rho0 * V0, 0.0)))
        residual = abs(mass - 1.0)
        success = residual <= MASS_TOL
        msg = f"mass defect of ρ = φφ̂ {residual:.1e} {'≤' if success else '>'} {MASS_TOL:g}"
    else:                                                   # evaluate the cost of the drift directly
        cost = policy_cost(grid, rho0, Phi, drift, nu, T, g=g, scheme=scheme)
        residual, success = res, res < tol
        msg = "converged" if success else "maximum iterations reached"
    return HopfColeResult(rho=rho / mass, value0=V0, drift=drift, cost=cost, nit=it,
                         residual=residual, success=success, message=msg, history=hist, rho_path=path)


def lq_gaussian(mean0, std0, nu, T, c, z):
    """Closed form for ``Φ = (c/2)(x − z)²`` from ``N(mean0, std0²)``: ``(mean_T, var_T, cost)``.

    ``V = (P/2)(x − z)² + (ν²/2) log(1 + c(T − t))``, ``P = 1/(1/c + T − t)``, ``a = −P(x − z)``;
    mean ``z + (m0 − z)/(1 + cT)``; variance ``ν² w + A w²`` with ``w = 1/c + T − t``.
    """
    w0 = 1.0 / c + T
    meanT = z + (mean0 - z) / (1 + c * T)
    A = (std0**2 - nu**2 * w0) / w0**2
    varT = nu**2 / c + A / c**2
    cost = 0.5 / w0 * ((mean0 - z) ** 2 + std0**2) + 0.5 * nu**2 * np.log(1 + c * T)
    return meanT, varT, cost


def control_domain(terminal, mean, std, nu, T, xmin=None, xmax=None, spreads=6.0):
    """A 1-D domain ``(lo, hi)`` for the drift-as-control problem from ``N(mean, std²)``.

    A given wall is kept; a missing one is placed ``spreads · max(std, ν√T)`` beyond both the
    initial mean and ``z = argmin Φ`` (``terminal`` a callable Φ(x), minimised over 4001 probe points
    within ``±30 (spread + 1)`` of the mean; non-finite values are skipped)."""
    spread = max(std, nu * np.sqrt(T))
    if xmin is None or xmax is None:
        probe = np.linspace(mean - 30 * (spread + 1), mean + 30 * (spread + 1), 4001)
        with np.errstate(all="ignore"):
            vals = np.broadcast_to(np.asarray(terminal(probe), dtype=float), probe.shape)
        z = probe[np.nanargmin(np.where(np.isfinite(vals), vals, np.inf))]
        lo = min(mean, z) - spreads * spread if xmin is None else xmin
        hi = max(mean, z) + spreads * spread if xmax is None else xmax
    else:
        lo, hi = xmin, xmax
    if not hi > lo:
        raise InputError(f"--xmax ({hi:g}) must be greater than --xmin ({lo:g})")
    return lo, hi


def control_box_2d(terminal, mean, std, nu, T, cells, xmin=None, xmax=None, spreads=4.0):
    """A square ``cells × cells`` grid for the 2-D problem from ``N(mean, std² I)`` and ``Φ(x, y)``:
    per axis, :func:`control_domain` of Φ on the line through the initial mean; ``xmin``/``xmax``
    (both axes) override."""
    from ocdl.meanfield.grid import make_grid
    mean = np.asarray(mean, dtype=float)
    lx = control_domain(lambda x: terminal(x, np.full_like(x, mean[1])), mean[0], std, nu, T, xmin, xmax, spreads)
    ly = control_domain(lambda y: terminal(np.full_like(y, mean[0]), y), mean[1], std, nu, T, xmin, xmax, spreads)
    return make_grid([lx[0], ly[0]], [lx[1], ly[1]], [cells, cells])
