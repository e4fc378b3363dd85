"""Finding potentials: learn the restoring function ``V(x)`` of

    x'' + 2γ x' + ω0² V(x) = 0      (γ, ω0 known; the slides' inverse problem, true V(x) = x)

from one trajectory sampled at evenly spaced times ``t_i = iΔ`` (``i = 0..n−1``).

``V`` is a piecewise-linear table (:class:`~ocdl.forces.table.ForceGrid`: nodes ``u_j``, values
``V_j``, linear between nodes, held constant outside) over the range the data visit, padded by
1.5 cells on each side (so the extremes, e.g. ``x(0)``, are mid-cell, not on a kink where the
derivative of ``V`` is undefined); ``x(0), x'(0)`` are fixed when given and estimated otherwise. The EOM
network: ``y = (x, v)``, ``ẏ = f(y) = (v, −2γv − ω0² V(x))``, ``N = (n − 1)·substeps`` layers of an
explicit Runge–Kutta method (``euler``, ``heun``, ``rk4``; step ``h = Δ/substeps``), so sample ``i``
is layer ``i·substeps``. Cost (a sum of squares, bars are network outputs)::

    J = (1/n) Σ_i (x̄(t_i) − x_i)² + λ Σ_j (V_{j+1} − V_j)²

Solvers: ``newton`` (Levenberg–Marquardt on the exact Jacobian of the network — CasADi layer
Jacobians chained by the tangent recursion — with a *time continuation*: it fits the first 10 %,
20 %, 40 %, 70 % and then all samples, each warm-started from the last. Fitting the whole
trajectory from a zero table locks onto a wrong frequency (a local minimum, rel. error ~100 %);
a short window holds less than a period, where the fit is nearly convex, and each longer window
starts within the basin of the next),
``adam`` (the one :class:`~ocdl.optim.Adam` on the exact gradient ``2 Jᵀr`` of the same network —
equal to autograd through the torch network to round-off, tested — because the Python loop of the
torch network costs ~10× more per step; the same time windows share the ``--iterations`` budget
and one learning-rate schedule ``lr → lr·0.01``), ``pinn`` (:mod:`ocdl.forces.pinn`: an MLP
``x_φ(t)`` with the residual ``(x_φ'' + 2γx_φ' + ω0² V(x_φ))/ω0²``, the same table ``V`` as its
unknowns).

``V`` is identified only where the trajectory goes: the JSON's ``potential`` lists the nodes
inside the visited range ``[min x̄, max x̄]`` of the fitted network trajectory.
"""
import math
import time

import numpy as np
import torch

import integrators
from integrators import IntegratorError
from ocdl.errors import InputError, SolverError
from ocdl.forces.table import ForceGrid, difference_matrix
from ocdl.optim import Adam, Checkpointing, Divergence, KeepBest, LevenbergMarquardt, ProgressBar, minimize

DTYPE = torch.float64
METHODS = ("euler", "heun", "rk4")
SOLVERS = ("newton", "adam", "pinn")
INITS = ("zero", "linear", "random")
WINDOWS = (0.1, 0.2, 0.4, 0.7, 1.0)   # newton's time continuation: fractions of the samples fitted


def _finite(name, value, positive=False):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and (value > 0 if positive else value >= 0)):
        raise InputError(f"{name} must be a finite number {'>' if positive else '≥'} 0 (got {value})")


class PotentialProblem:
    """``x'' + 2γx' + ω0² V(x) = 0`` with ``V`` a table; data: one trajectory ``(t_i, x_i)``."""
    name = "potential"
    variable = "x"

    def __init__(self, t, x, gamma, omega0, x0=None, v0=None, grid_step=None, cells=40, substeps=1,
                 method="rk4"):
        _finite("--gamma", gamma)
        _finite("--omega0", omega0, positive=True)
        t, x = np.asarray(t, float), np.asarray(x, float)
        if len(t) < 8:
            raise InputError("learning a potential needs at least 8 samples (t, x)")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(x))):
            raise InputError("the data hold non-finite values")
        if method not in METHODS:
            raise InputError(f"integrator '{method}' is not available for potential (valid: {', '.join(METHODS)})")
        if not (isinstance(substeps, int) and substeps >= 1):
            raise InputError(f"--substeps must be an integer ≥ 1 (got {substeps})")
        order = np.argsort(t, kind="stable")
        t, x = t[order], x[order]
        dt = t[1] - t[0]
        if abs(t[0]) > 1e-9 * max(t[-1], 1) or not dt > 0 or np.max(np.abs(np.diff(t) - dt)) > 1e-6 * dt:
            raise InputError("sample times must be evenly spaced and start at t = 0 (t_i = iΔ)")
        lo, hi = float(x.min()), float(x.max())
        if not hi > lo:
            raise InputError("the trajectory does not move (all x equal): no potential can be learned")
        step = grid_step if grid_step is not None else (hi - lo) / cells
        _finite("--grid-step", step, positive=True)
        if (hi - lo) / step < 3:
            raise InputError(f"grid too coarse for the data: x covers [{lo:g}, {hi:g}], only {(hi - lo) / step:.2g} "
                             f"cells of --grid-step {step:g}; use --grid-step ≤ {(hi - lo) / 4:.3g}")
        # the extremes (turning points, x(0)) sit mid-cell, not on a kink of the table
        self.grid = ForceGrid.covering(lo - 1.5 * step, hi + 1.5 * step, step)
        self.t, self.x, self.n, self.dt = t, x, len(t), float(dt)
        self.tmax = float(t[-1])
        self.gamma, self.omega0 = float(gamma), float(omega0)
        self.fixed = {"x0": x0, "v0": v0}
        self.m = self.grid.size
        self.names = [f"V{j}" for j in range(self.m)] + [k for k in ("x0", "v0") if self.fixed[k] is None]
        self.method, self.substeps = method, int(substeps)
        self.steps = (self.n - 1) * self.substeps
        self.h = self.dt / self.substeps
        self.data_range = (lo, hi)

    # parameters ----------------------------------------------------------------------------
    def split(self, theta):
        """``(table, x0, v0)`` from the parameter vector (table first, then the estimated ICs)."""
        table, rest = theta[:self.m], list(theta[self.m:])
        x0 = self.fixed["x0"] if self.fixed["x0"] is not None else rest.pop(0)
        v0 = self.fixed["v0"] if self.fixed["v0"] is not None else rest.pop(0)
        return table, x0, v0

    def initial_ics(self):
        """Starting ``x0, v0`` when estimated: the first sample and a one-sided difference."""
        return float(self.x[0]), float((self.x[1] - self.x[0]) / self.dt)

    def initial_theta(self, init="zero", seed=0, scale=None):
        """Starting table: ``zero``; ``linear`` — ``V(x) = k x`` with ``k = (ω² + γ²)/ω0²`` from the
        best damped sinusoid of the data (:func:`ocdl.forces.oscillator.initial_guess`: the linearised
        potential, a data-driven start); ``random`` — uniform in ``[−A, A]``, ``A = scale`` (default
        the data's largest ``|x|``), drawn with ``seed``."""
        nodes = self.grid.nodes
        if init == "zero":
            table = np.zeros(self.m)
        elif init == "linear":
            from ocdl.forces.oscillator import initial_guess
            g, w0, _, _ = initial_guess(self.t, self.x)
            w2 = max(w0 * w0 - g * g, 0.0)
            table = (w2 + self.gamma ** 2) / self.omega0 ** 2 * nodes
        elif init == "random":
            A = scale if scale is not None else float(np.max(np.abs(self.x)))
            table = np.random.default_rng(seed).uniform(-A, A, self.m)
        else:
            from ocdl.errors import unknown_name
            raise unknown_name("init", init, INITS)
        ics = [v for k, v in zip(("x0", "v0"), self.initial_ics()) if self.fixed[k] is None]
        return np.concatenate([table, ics])

    # torch network ---------------------------------------------------------------------------
    def trajectory_torch(self, theta):
        """All layers ``y_k = (x_k, v_k)``, shape ``(N + 1, 2)``; a blow-up raises SolverError."""
        table, x0, v0 = self.split(theta)
        g, w2, grid = self.gamma, self.omega0 ** 2, self.grid

        def rhs(t, y):
            return torch.stack([y[..., 1], -2 * g * y[..., 1] - w2 * grid.value(table, y[..., 0])], dim=-1)

        y0 = torch.stack([torch.as_tensor(x0, dtype=DTYPE), torch.as_tensor(v0, dtype=DTYPE)])[None]
        try:
            Y = integrators.solve(self.method, rhs, y0, 0.0, self.steps * self.h, self.steps)
        except IntegratorError as err:
            raise SolverError(f"the EOM network failed: {err}") from None
        return Y[:, 0, :]

    def predict_torch(self, theta):
        return self.trajectory_torch(theta)[::self.substeps, 0]

    def reg_torch(self, theta, lam):
        d = theta[1:self.m] - theta[:self.m - 1]
        return lam * (d * d).sum()

    def loss_torch(self, theta, lam):
        r = (self.predict_torch(theta) - torch.as_tensor(self.x, dtype=DTYPE)) / math.sqrt(self.n)
        data = (r * r).sum()
        return data + self.reg_torch(theta, lam), data

    # CasADi network --------------------------------------------------------------------------
    def casadi_functions(self):
        """``r(θ)`` (the data residuals ``(x̄(t_i) − x_i)/√n``) and its exact Jacobian ``∂r/∂θ``.

        CasADi builds *one* layer ``y ↦ Ψ_h(y; V)`` with its Jacobians ``A = ∂Ψ/∂y`` (2×2) and
        ``B = ∂Ψ/∂V`` (2×m); the network's sensitivities follow by the tangent recursion
        ``S_{k+1} = A_k S_k + B_k`` (``S_0`` = the unit columns of the estimated ``x0, v0``) — forward
        mode, exact, and a graph of one layer instead of ``N`` (seconds of CasADi build saved).
        """
        import casadi as ca
        from ocdl.forces.network import casadi_step
        ys, tab = ca.SX.sym("y", 2), ca.SX.sym("V", self.m)
        g, w2 = self.gamma, self.omega0 ** 2

        def f(y):
            return ca.vertcat(y[1], -2 * g * y[1] - w2 * self.grid.value_casadi(tab, y[0]))

        yn = casadi_step(ca, f, ys, self.h, self.method)
        layer = ca.Function("layer", [ys, tab], [yn, ca.jacobian(yn, ys), ca.jacobian(yn, tab)])
        P, m, sub, scale = len(self.names), self.m, self.substeps, 1 / math.sqrt(self.n)
        ic_cols = {k: m + i for i, k in enumerate(k for k in ("x0", "v0") if self.fixed[k] is None)}
        last = {}

        def evaluate(theta):
            theta = np.asarray(theta, float)
            if "theta" in last and np.array_equal(last["theta"], theta):
                return last
            table, x0, v0 = self.split(theta)
            table = np.asarray(table, float)
            y = np.array([x0, v0], float)
            S = np.zeros((2, P))
            for i, k in enumerate(("x0", "v0")):
                if k in ic_cols:
                    S[i, ic_cols[k]] = 1.0
            xs, J = [y[0]], [S[0].copy()]
            for k in range(1, self.steps + 1):
                yn_, A, B = layer(y, table)
                y = np.asarray(yn_).ravel()
                S = np.asarray(A) @ S
                S[:, :m] += np.asarray(B)
                if not np.all(np.isfinite(y)):
                    y = np.full(2, np.nan)
                if k % sub == 0:
                    xs.append(y[0])
                    J.append(S[0].copy())
            last.update(theta=theta.copy(), r=(np.array(xs) - self.x) * scale, J=np.array(J) * scale)
            return last

        return (lambda th: evaluate(th)["r"]), (lambda th: evaluate(th)["J"])

    def reg_matrix(self, lam):
        """``R`` with ``|Rθ|² = λ Σ (V_{j+1} − V_j)²`` (zero columns for the estimated ICs)."""
        R = np.zeros((self.m - 1, len(self.names)))
        R[:, :self.m] = math.sqrt(lam) * difference_matrix(self.m)
        return R

    # PINN (ocdl.forces.pinn) -----------------------------------------------------------------
    @property
    def pinn_velocity_scale(self):
        return self.omega0

    def pinn_residual(self, theta0):
        """``r = (x'' + 2γx' + ω0² V(x))/ω0²``, ``V`` the table (first ``m`` unknowns)."""
        g, w2, grid, m = self.gamma, self.omega0 ** 2, self.grid, self.m

        def residual(p, x, dx, ddx):
            return (ddx + 2 * g * dx + w2 * grid.value(p[:m], x)) / w2
        return residual

    # results ---------------------------------------------------------------------------------
    def visited_range(self, theta):
        """``[min x̄, max x̄]`` over every layer of the fitted network trajectory."""
        with torch.no_grad():
            xs = self.trajectory_torch(torch.as_tensor(np.asarray(theta, float), dtype=DTYPE))[:, 0].numpy()
        return float(xs.min()), float(xs.max())

    def potential(self, theta, lo, hi):
        """Table nodes in ``[lo, hi]`` and their values."""
        nodes = self.grid.nodes
        keep = (nodes >= lo - 1e-9 * self.grid.step) & (nodes <= hi + 1e-9 * self.grid.step)
        return nodes[keep], np.asarray(theta, float)[:self.m][keep]


# ----------------------------------------------------------------------------------------------
#: learning rates when ``lr`` is None (adam: decaying ×0.01 over the run; pinn: the PINN's Adam phase)
DEFAULT_LR = {"adam": 0.05, "pinn": 2e-3}
#: the PINN's phases here (one trajectory: half of :func:`ocdl.forces.pinn.fit_pinn`'s defaults)
PINN_STEPS = {"adam_steps": 3000, "lbfgs_steps": 300}


class _Windows:
    """The time-window continuation: the fractions :data:`WINDOWS` of the samples (at least 8;
    all of them without ``continuation``) as ``(fraction, k)``, and the bookkeeping that makes the
    windows' runs one run — one history (rows tagged ``window=k``), iteration count and clock —
    plus the ``continuation`` path (samples, t_end, iterations, final_loss of each window)."""

    def __init__(self, problem, continuation):
        self.problem, self.fracs = problem, (WINDOWS if continuation else (1.0,))
        self.hist, self.path, self.nit, self.time = [], [], 0, 0.0

    def __len__(self):
        return len(self.fracs)

    def __iter__(self):
        n = self.problem.n
        return iter([(frac, min(max(int(round(frac * n)), 8), n)) for frac in self.fracs])

    def add(self, res, k):
        """Append window ``k``'s run; returns its end point (the next window's start)."""
        self.hist += [dict(h, iteration=h["iteration"] + self.nit, time_s=h["time_s"] + self.time, window=k)
                      for h in res.history]
        self.nit, self.time = self.nit + res.nit, self.time + res.wall_time_s
        self.path.append({"samples": k, "t_end": float(self.problem.t[k - 1]), "iterations": res.nit,
                          "final_loss": res.fun})
        return res.x

    def finish(self, res):
        """The last window's result carries the whole run's history, count and path."""
        res.history, res.nit = self.hist, self.nit
        res["continuation"] = self.path


def solve_potential(problem, method="newton", lam=1e-6, init="zero", iterations=None, lr=None, seed=0,
                    quiet=True, continuation=True, state0=None, checkpoint=None, checkpoint_every=None,
                    should_stop=None, **pinn_kw):
    """Learn the table; returns an :class:`~ocdl.optim.OptimizeResult` (``x`` = all unknowns in
    ``problem.names`` order) with extras ``data_loss``, ``theta0`` (the start) and, for newton, the
    time-window ``continuation`` path (``continuation=False``: all samples at once).
    ``iterations``: Gauss–Newton steps per window (default 100) / Adam steps over all windows
    (default 2000, ``lr`` decaying ×0.01; None: :data:`DEFAULT_LR`, also for the PINN's Adam phase).
    ``pinn_kw`` go to :func:`ocdl.forces.pinn.fit_pinn` (Adam / L-BFGS steps: :data:`PINN_STEPS` unless given)."""
    lr = DEFAULT_LR.get(method) if lr is None else lr
    if method not in SOLVERS:
        from ocdl.errors import unknown_name
        raise unknown_name("solver", method, SOLVERS)
    _finite("--lambda", lam)
    t0 = time.perf_counter()
    theta0 = problem.initial_theta(init, seed)
    ck = {"state0": state0, "checkpoint": checkpoint, "checkpoint_every": checkpoint_every,
          "should_stop": should_stop, "quiet": quiet}                  # fit_pinn's options
    progress = ProgressBar(quiet)
    if method == "newton":
        rf, jf = problem.casadi_functions()
        theta, windows = theta0, _Windows(problem, continuation)
        R = problem.reg_matrix(lam)
        for _, k in windows:
            rule = LevenbergMarquardt(lambda th, k=k: np.concatenate([rf(th)[:k], R @ th]),
                                      lambda th, k=k: np.vstack([jf(th)[:k], R]))

            def objective(x, batch=None, rule=rule):
                f, g = rule.objective(x)
                r = rf(x)
                return f, g, {"data_loss": float(r @ r)}

            res = minimize(objective, theta, rule, iterations or 100, name=f"newton t ≤ {problem.t[k - 1]:.3g}",
                           progress=progress, divergence=Divergence(hint="try a larger --lambda or another --init"))
            theta = windows.add(res, k)
        windows.finish(res)
    elif method == "adam":
        rf, jf = problem.casadi_functions()
        R = problem.reg_matrix(lam)
        theta, windows = theta0, _Windows(problem, continuation)
        per = max((iterations or 2000) // len(windows), 1)
        for w, (frac, k) in enumerate(windows):

            def objective(x, batch=None, k=k):
                r_all, reg = rf(x), R @ x
                if not np.all(np.isfinite(r_all)):
                    return math.nan, np.full(len(x), math.nan), {}
                r = r_all[:k]
                g = 2 * (jf(x)[:k].T @ r + R.T @ reg)
                return float(r @ r + reg @ reg), g, {"data_loss": float(r_all @ r_all)}

            # the w-th stretch of one exponential schedule lr → lr·0.01 over all windows
            rule = Adam(lr=lr * 1e-2 ** (w / len(windows)), schedule="exponential",
                        decay=1e-2 ** (1 / len(windows)), amsgrad=False)
            # the last window (all samples) checkpoints and resumes; the earlier ones only stop on an interrupt
            last = frac == 1.0
            res = minimize(objective, theta, rule, per, name=f"adam t ≤ {problem.t[k - 1]:.3g}", keep_best=KeepBest(),
                           progress=progress, divergence=Divergence(hint="try a smaller --lr"),
                           state0=state0 if last else None,
                           checkpointing=Checkpointing(checkpoint, checkpoint_every, should_stop) if last
                           else Checkpointing(should_stop=should_stop))
            theta = windows.add(res, k)
        windows.finish(res)
    else:
        from ocdl.forces.pinn import fit_pinn
        res = fit_pinn(problem, theta0, seed=seed, lr=lr, **ck, **{**PINN_STEPS, **pinn_kw})
        # the PINN has no initial-condition unknowns of its own: read them off the MLP
        if problem.fixed["x0"] is None or problem.fixed["v0"] is None:
            xs = res.predict(np.array([0.0, 1e-6 * problem.dt]))
            est = {"x0": float(xs[0]), "v0": float((xs[1] - xs[0]) / (1e-6 * problem.dt))}
            res.x = np.concatenate([res.x[:problem.m], [est[k] for k in ("x0", "v0") if problem.fixed[k] is None]])
        with torch.no_grad():
            try:
                _, data = problem.loss_torch(torch.as_tensor(res.x, dtype=DTYPE), 0.0)
                res["network_data_loss"] = float(data)   # the EOM network with the PINN's table
            except SolverError:
                res["network_data_loss"] = math.inf
    res.wall_time_s = time.perf_counter() - t0
    res["theta0"] = theta0
    return res


def rel_l2(a, b):
    den = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / (den if den > 0 else 1.0))


def summarize(problem, res, solver, lam, init, truth=None):
    """The JSON-ready summary: the keys the command line writes."""
    from ocdl.forces.learn import thin_history
    table, x0, v0 = problem.split(res.x)
    lo, hi = problem.visited_range(res.x)
    nodes, V = problem.potential(res.x, lo, hi)
    out = {"problem": "potential", "solver": solver,
           "integrator": "pinn-autograd" if solver == "pinn" else problem.method,
           "final_loss": res.fun, "data_loss": res.get("data_loss"), "iterations": res.nit,
           "wall_time_s": res.wall_time_s, "success": res.success, "message": res.message, "lambda": lam,
           "init": init, "gamma": problem.gamma, "omega0": problem.omega0, "x0": float(x0), "v0": float(v0),
           "steps": problem.steps, "substeps": problem.substeps, "n_samples": problem.n,
           "grid": [problem.grid.lo, problem.grid.hi, problem.grid.size], "grid_step": problem.grid.step,
           "visited_range": [lo, hi], "potential": {"x": nodes, "V": V}, "history": thin_history(res.history)}
    for k in ("continuation", "network_data_loss"):
        if k in res:
            out[k] = res[k]
    if truth is not None:
        true = np.broadcast_to(truth(nodes), nodes.shape).astype(float)
        out["rel_l2_error"] = rel_l2(V, true)
        w = hi - lo
        c_lo, c_hi = lo + 0.05 * w, hi - 0.05 * w
        keep = (nodes >= c_lo) & (nodes <= c_hi)
        out["central90_range"] = [c_lo, c_hi]
        out["rel_l2_error_central90"] = rel_l2(V[keep], true[keep])
    return out


def describe(summary):
    msg = (f"potential: {summary['solver']} final loss {summary['final_loss']:.3e} after {summary['iterations']} "
           f"iterations, {summary['wall_time_s']:.2f}s")
    if "rel_l2_error" in summary:
        lo, hi = summary["visited_range"]
        msg += (f"; rel. L2 error {summary['rel_l2_error']:.3%} on x ∈ [{lo:.3g}, {hi:.3g}] "
                f"({summary['rel_l2_error_central90']:.3%} on the central 90 %)")
    return msg
