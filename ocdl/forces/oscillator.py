"""Damped oscillator ``x'' + 2γ x' + ω0² x = 0``: recover ``(γ, ω0)`` (and ``x(0), x'(0)`` when
not given) from noisy samples ``(t_i, x_i)`` of one trajectory.

The EOM network: ``y = (x, v)``, ``ẏ = A y`` with ``A = [[0, 1], [−ω0², −2γ]]``. An explicit
Runge–Kutta layer of a linear ODE is the matrix ``M(h) = Σ_{k=0}^{p} (hA)^k / k!`` (its stability
polynomial; ``p = 1`` euler, ``2`` heun, ``4`` rk4), so the network is ``y_k = M(h)^k y_0`` on the
uniform grid ``h = t_max/N`` and a last partial layer ``y(t_i) = M(t_i − k_i h) y_{k_i}`` reaches
each sample time. Cost ``J = (1/n) Σ_i (x̄(t_i) − x_i)²``.

Solvers: ``newton`` (Levenberg–Marquardt on the exact CasADi Jacobian; also returns standard
errors from ``σ̂² (JᵀJ)⁻¹``), ``adam`` (autograd), ``pinn`` (:mod:`ocdl.forces.pinn`). All start
from the same initial guess: :func:`initial_guess` — a grid search of damped sinusoids — or, with
``init="random"``, an arbitrary point of the same box.
"""
import math
import time

import numpy as np
import torch

from ocdl.errors import InputError
from ocdl.optim import Adam, Checkpointing, Divergence, KeepBest, LevenbergMarquardt, ProgressBar, minimize

ORDER = {"euler": 1, "heun": 2, "rk4": 4}
DTYPE = torch.float64


def initial_guess(t, x, gamma_max=None):
    """``(γ, ω0, x0, v0)`` of the best damped sinusoid ``e^{−γt}(a cos ωt + b sin ωt)`` on a grid
    of ``ω`` (up to the Nyquist rate of the mean spacing) and ``γ`` (amplitudes by least squares)."""
    T = t.max() - t.min()
    dt = T / max(len(t) - 1, 1)
    omegas = np.linspace(0.25 * np.pi / T, np.pi / dt, 400)
    gamma_max = gamma_max or 5.0 / T
    gammas = np.linspace(0.0, gamma_max, 41)
    best = (np.inf, None)
    for g in gammas:
        env = np.exp(-g * t)
        C = env[None, :] * np.cos(np.outer(omegas, t))
        S = env[None, :] * np.sin(np.outer(omegas, t))
        # 2x2 normal equations per ω, vectorised
        cc, ss, cs = (C * C).sum(1), (S * S).sum(1), (C * S).sum(1)
        cx, sx = C @ x, S @ x
        det = cc * ss - cs * cs
        det = np.where(np.abs(det) < 1e-300, np.inf, det)
        a = (ss * cx - cs * sx) / det
        b = (cc * sx - cs * cx) / det
        rss = ((x[None, :] - a[:, None] * C - b[:, None] * S) ** 2).sum(1)
        k = int(np.argmin(rss))
        if rss[k] < best[0]:
            best = (rss[k], (g, omegas[k], a[k], b[k]))
    g, w, a, b = best[1]
    return g, math.sqrt(w * w + g * g), a, -g * a + w * b


class OscillatorProblem:
    name = "oscillator"

    def __init__(self, t, x, x0=None, v0=None, steps=200, method="rk4"):
        t, x = np.asarray(t, float), np.asarray(x, float)
        if len(t) < 4:
            raise InputError("the oscillator needs at least 4 samples (t, x)")
        if np.any(t < 0):
            raise InputError("sample times t must be ≥ 0 (the trajectory starts at t = 0)")
        if method not in ORDER:
            raise InputError(f"integrator '{method}' is not available for oscillator (valid: {', '.join(ORDER)})")
        order = np.argsort(t, kind="stable")
        self.t, self.x = t[order], x[order]
        self.tmax = float(self.t.max())
        if self.tmax <= 0:
            raise InputError("sample times must span a positive interval")
        self.fixed = {"x0": x0, "v0": v0}
        self.names = ["gamma", "omega0"] + [k for k in ("x0", "v0") if self.fixed[k] is None]
        self.steps, self.method, self.order = int(steps), method, ORDER[method]
        self.h = self.tmax / self.steps
        k = np.minimum(np.floor(self.t / self.h + 1e-12).astype(int), self.steps)
        self.k, self.delta = k, self.t - k * self.h
        self.n = len(t)

    def unpack(self, theta):
        vals = dict(zip(self.names, theta))
        x0 = vals.get("x0", self.fixed["x0"])
        v0 = vals.get("v0", self.fixed["v0"])
        return vals["gamma"], vals["omega0"], x0, v0

    def initial_guess(self, init="grid", seed=0):
        """The starting point of every solver. ``grid``: the best damped sinusoid of
        :func:`initial_guess` (a search that lands next to the answer on clean data). ``random``: an
        arbitrary point of the same search box — γ uniform in ``[0, 5/t_max]``, ω0 uniform in
        ``[0.25π/t_max, π/Δt]`` (up to the Nyquist rate), ``x0`` the first sample, ``v0 = 0``."""
        if init == "grid":
            g, w, a, b = initial_guess(self.t, self.x)
        elif init == "random":
            rng = np.random.default_rng(seed)
            T = self.t.max() - self.t.min()
            dt = T / max(self.n - 1, 1)
            g, w = rng.uniform(0.0, 5.0 / T), rng.uniform(0.25 * np.pi / T, np.pi / dt)
            a, b = float(self.x[0]), 0.0
        else:
            from ocdl.errors import unknown_name
            raise unknown_name("init", init, ("grid", "random"))
        guess = {"gamma": g, "omega0": w, "x0": a, "v0": b}
        return np.array([guess[k] for k in self.names])

    # PINN residual (ocdl.forces.pinn) --------------------------------------------------------------
    def pinn_residual(self, theta0):
        """``r = (x'' + 2γx' + ω0²x)/ω_ref²`` with ``ω_ref`` = the starting ω0 (fixed: r is O(x))."""
        omega_ref = float(theta0[1])
        self.pinn_velocity_scale = omega_ref

        def residual(p, x, dx, ddx):
            return (ddx + 2 * p[0] * dx + p[1] ** 2 * x) / omega_ref ** 2
        return residual

    def pinn_info(self, p):
        return {"gamma": float(p[0]), "omega0": float(p[1])}

    # torch network -----------------------------------------------------------------------------
    def _layer_matrix(self, hA):
        """``Σ_{k≤p} (hA)^k/k!`` for a batch of 2×2 matrices ``hA``."""
        eye = torch.eye(2, dtype=DTYPE).expand_as(hA)
        M, term = eye, eye
        for k in range(1, self.order + 1):
            term = term @ hA / k
            M = M + term
        return M

    def predict_torch(self, theta):
        gamma, omega0, x0, v0 = self.unpack(theta)
        A = torch.stack([torch.stack([torch.zeros((), dtype=DTYPE), torch.ones((), dtype=DTYPE)]),
                         torch.stack([-omega0 ** 2, -2 * gamma])])
        x0 = torch.as_tensor(x0, dtype=DTYPE)
        v0 = torch.as_tensor(v0, dtype=DTYPE)
        M = self._layer_matrix((self.h * A)[None])[0]
        # all layers at once by doubling: [y_0..y_{2^j−1}] → append M^{2^j}·(that block)
        Y, P = torch.stack([x0, v0])[None], M
        while Y.shape[0] < self.steps + 1:
            Y = torch.cat([Y, Y @ P.T])
            P = P @ P
        Y = Y[torch.as_tensor(self.k)]                                          # (n, 2)
        Md = self._layer_matrix(torch.as_tensor(self.delta, dtype=DTYPE)[:, None, None] * A[None])
        return (Md @ Y[:, :, None])[:, 0, 0]

    def residual_torch(self, theta):
        return (self.predict_torch(theta) - torch.as_tensor(self.x)) / math.sqrt(self.n)

    # CasADi network ----------------------------------------------------------------------------
    def casadi_functions(self):
        import casadi as ca
        th = ca.SX.sym("theta", len(self.names))
        gamma, omega0, x0, v0 = self.unpack([th[i] for i in range(len(self.names))])
        A = ca.vertcat(ca.horzcat(0, 1), ca.horzcat(-omega0 ** 2, -2 * gamma))

        def layer(h):
            M, term = ca.SX.eye(2), ca.SX.eye(2)
            for k in range(1, self.order + 1):
                term = ca.mtimes(term, h * A) / k
                M = M + term
            return M

        M = layer(self.h)
        y = ca.vertcat(x0, v0)
        states = [y]
        for _ in range(self.steps):
            y = ca.mtimes(M, y)
            states.append(y)
        xs = [ca.mtimes(layer(float(d)), states[k])[0] for k, d in zip(self.k, self.delta)]
        r = (ca.vertcat(*xs) - ca.DM(self.x)) / math.sqrt(self.n)
        return ca.Function("residual", [th], [r]), ca.Function("residual_jacobian", [th], [ca.jacobian(r, th)])


#: learning rates when ``lr`` is None (adam: constant; pinn: :func:`ocdl.forces.pinn.fit_pinn`'s Adam phase)
DEFAULT_LR = {"adam": 0.01, "pinn": 2e-3}


def solve_oscillator(problem, method="newton", iterations=None, lr=None, quiet=True, seed=0, state0=None,
                     checkpoint=None, checkpoint_every=None, should_stop=None, init="grid", **pinn_kw):
    """Fit the oscillator by ``newton`` | ``adam`` | ``pinn``; returns an :class:`~ocdl.optim.OptimizeResult`
    whose ``x`` holds the unknowns in ``problem.names`` order, with extras ``gamma, omega0, x0, v0,
    initial_guess`` (+ ``*_stderr`` for newton, ``pinn_curve`` for pinn) and ``data_loss``.

    ``newton``: Levenberg–Marquardt (converges by its own test). ``adam``: constant learning rate,
    the best iterate returned (no convergence test: ``success`` is False). The checkpoint options
    are those of :func:`ocdl.optim.minimize` (Adam resumes bit for bit). ``init``: ``grid`` (the
    damped-sinusoid search) or ``random`` (an arbitrary start, drawn with ``seed``; see
    :meth:`OscillatorProblem.initial_guess`). ``lr``: the learning rate of adam, or of the PINN's
    Adam phase (None: :data:`DEFAULT_LR`)."""
    t0 = time.perf_counter()
    lr = DEFAULT_LR.get(method) if lr is None else lr
    theta0 = problem.initial_guess(init, seed)
    ck = {"state0": state0, "checkpoint": checkpoint, "checkpoint_every": checkpoint_every,
          "should_stop": should_stop, "quiet": quiet}                  # fit_pinn's options
    hooks = {"state0": state0, "progress": ProgressBar(quiet),
             "checkpointing": Checkpointing(checkpoint, checkpoint_every, should_stop)}
    if method == "newton":
        rf, jf = problem.casadi_functions()
        rule = LevenbergMarquardt(lambda th: np.asarray(rf(th)).ravel(), lambda th: np.asarray(jf(th)))

        def objective(x, batch=None):
            f, g = rule.objective(x)
            return f, g, {"data_loss": f}

        res = minimize(objective, theta0, rule, iterations or 100, name="newton", **hooks)
        x = res.x
        J = np.asarray(jf(x)) * math.sqrt(problem.n)     # Jacobian of the unscaled residuals x̄ − x
        dof = max(problem.n - len(x), 1)
        sigma2 = res.fun * problem.n / dof
        try:
            cov = sigma2 * np.linalg.inv(J.T @ J)
            stderr = np.sqrt(np.maximum(np.diag(cov), 0))
        except np.linalg.LinAlgError:
            stderr = np.full(len(x), np.nan)
        res.update({f"{k}_stderr": float(s) for k, s in zip(problem.names, stderr)})
        res.wall_time_s = time.perf_counter() - t0          # including CasADi's graph construction
    elif method == "adam":
        def objective(x, batch=None):
            th = torch.tensor(x, dtype=DTYPE, requires_grad=True)
            r = problem.residual_torch(th)
            loss = (r * r).sum()
            (g,) = torch.autograd.grad(loss, th)
            f = float(loss.detach())
            return f, g.numpy(), {"data_loss": f}

        res = minimize(objective, theta0, Adam(lr=lr, schedule="constant", amsgrad=False), iterations or 3000,
                       name="adam", keep_best=KeepBest(), divergence=Divergence(hint="try a smaller --lr"), **hooks)
    elif method == "pinn":
        from ocdl.forces.pinn import fit_pinn
        res = fit_pinn(problem, theta0, seed=seed, lr=lr, **ck, **pinn_kw)
    else:
        from ocdl.errors import unknown_name
        raise unknown_name("solver", method, ("newton", "adam", "pinn"))
    g, w, x0, v0 = problem.unpack(res.x)
    res.update({"gamma": float(g), "omega0": float(w), "x0": float(x0), "v0": float(v0),
                "initial_guess": dict(zip(problem.names, map(float, theta0))), "init": init})
    return res


def summarize(problem, res, solver, true_gamma=None, true_omega0=None):
    """The JSON-ready summary of an oscillator fit (the keys the command line writes), with
    relative errors against the true parameters when given."""
    from ocdl.forces.learn import thin_history
    e = res
    summary = {"problem": "oscillator", "solver": solver,
               "integrator": "pinn-autograd" if solver == "pinn" else problem.method,
               "final_loss": res.fun, "iterations": res.nit, "wall_time_s": res.wall_time_s,
               "success": res.success, "message": res.message, "gamma": e["gamma"], "omega0": e["omega0"],
               "x0": e["x0"], "v0": e["v0"], "steps": problem.steps, "n_samples": problem.n,
               "initial_guess": e["initial_guess"], "init": e.get("init", "grid"), "history": thin_history(res.history)}
    for k in ("gamma_stderr", "omega0_stderr", "x0_stderr", "v0_stderr"):
        if k in e:
            summary[k] = e[k]
    if true_gamma is not None:
        summary["gamma_rel_error"] = abs(e["gamma"] - true_gamma) / max(abs(true_gamma), 1e-300)
    if true_omega0 is not None:
        summary["omega0_rel_error"] = abs(e["omega0"] - true_omega0) / max(abs(true_omega0), 1e-300)
    return summary


def describe(summary):
    return (f"oscillator: {summary['solver']} γ = {summary['gamma']:.6g}, ω0 = {summary['omega0']:.6g} "
            f"({summary['iterations']} iterations, {summary['wall_time_s']:.2f}s)")


def last_good_record(problem, x, message):
    """The JSON record of the last good parameters after a divergence."""
    return {"status": "diverged", "message": message, **{k: float(v) for k, v in zip(problem.names, x)}}
