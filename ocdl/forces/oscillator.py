"""Damped oscillator ``x'' + 2γ x' + ω0² x = 0``: recover ``(γ, ω0)`` (and ``x(0), x'(0)`` when
not given) from noisy samples ``(t_i, x_i)`` of one trajectory.

The EOM network: ``y = (x, v)``, ``ẏ = A y`` with ``A = [[0, 1], [−ω0², −2γ]]``. An explicit
Runge–Kutta layer of a linear ODE is the matrix ``M(h) = Σ_{k=0}^{p} (hA)^k / k!`` (its stability
polynomial; ``p = 1`` euler, ``2`` heun, ``4`` rk4), so the network is ``y_k = M(h)^k y_0`` on the
uniform grid ``h = t_max/N`` and a last partial layer ``y(t_i) = M(t_i − k_i h) y_{k_i}`` reaches
each sample time. Cost ``J = (1/n) Σ_i (x̄(t_i) − x_i)²``.

Solvers: ``newton`` (Levenberg–Marquardt on the exact CasADi Jacobian; also returns standard
errors from ``σ̂² (JᵀJ)⁻¹``), ``adam`` (autograd), ``pinn`` (:mod:`ocdl.forces.pinn`). All start
from the same initial guess, :func:`initial_guess` — a grid search of damped sinusoids.
"""
import math
import time

import numpy as np
import torch

from ocdl.errors import InputError, SolverError
from ocdl.forces.solvers import ForceResult, levenberg_marquardt
from ocdl.progress import Progress

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

    def initial_guess(self):
        g, w, a, b = initial_guess(self.t, self.x)
        guess = {"gamma": g, "omega0": w, "x0": a, "v0": b}
        return np.array([guess[k] for k in self.names])

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


def solve_oscillator(problem, method="newton", iterations=None, lr=0.01, quiet=True, seed=0, state0=None,
                     checkpoint=None, checkpoint_every=None, should_stop=None, **pinn_kw):
    """Fit the oscillator by ``newton`` | ``adam`` | ``pinn``; returns a :class:`ForceResult` whose
    ``x`` holds the unknowns in ``problem.names`` order and ``extra`` gamma/omega0 (+ stderr).

    ``adam`` and ``pinn`` take the checkpoint options of :mod:`ocdl.checkpoint` (``state0``,
    ``checkpoint``, ``checkpoint_every``, ``should_stop``; Adam's moments are saved, so a resumed run
    ends bit for bit where an uninterrupted one does); ``newton`` (seconds) ignores them."""
    from ocdl.checkpoint import Checkpointer, load_torch_adam_state, torch_adam_state
    t0 = time.perf_counter()
    theta0 = problem.initial_guess()
    ck = Checkpointer(checkpoint, checkpoint_every, should_stop)
    if method == "newton":
        rf, jf = problem.casadi_functions()
        residual = lambda th: np.asarray(rf(th)).ravel()  # noqa: E731
        jacobian = lambda th: np.asarray(jf(th))          # noqa: E731
        x, cost, nit, message, success, history = levenberg_marquardt(
            residual, jacobian, theta0, iterations or 100, quiet, "newton")
        J = jacobian(x) * math.sqrt(problem.n)     # Jacobian of the unscaled residuals x̄ − x
        dof = max(problem.n - len(x), 1)
        sigma2 = cost * problem.n / dof
        try:
            cov = sigma2 * np.linalg.inv(J.T @ J)
            stderr = np.sqrt(np.maximum(np.diag(cov), 0))
        except np.linalg.LinAlgError:
            stderr = np.full(len(x), np.nan)
        for h in history:
            h["data_loss"] = h["loss"]
        extra = {f"{k}_stderr": float(s) for k, s in zip(problem.names, stderr)}
        res = ForceResult(x, success, message, nit, cost, cost, time.perf_counter() - t0, history, [], extra)
    elif method == "adam":
        iterations = iterations or 3000
        theta = torch.tensor(theta0, dtype=DTYPE, requires_grad=True)
        opt = torch.optim.Adam([theta], lr=lr)
        history, best, start = [], (math.inf, theta0), 0
        if state0 is not None:
            start, history = int(state0["iteration"]), list(state0["history"])
            with torch.no_grad():
                theta.copy_(torch.as_tensor(state0["params"]["theta"], dtype=DTYPE))
            load_torch_adam_state(opt, [theta], state0["opt"])
            best = (float(state0["opt"]["best_loss"]), np.array(state0["params"]["best"], float))
            t0 -= history[-1]["time_s"] if history else 0.0
        prog = Progress(iterations, "adam", quiet)

        def state(n):
            return {"iteration": n, "history": list(history), "meta": {},
                    "params": {"theta": theta.detach().numpy().copy(), "best": np.array(best[1], float)},
                    "opt": {**torch_adam_state(opt, [theta]), "best_loss": np.array(best[0])}}

        for it in range(start, iterations + 1):
            opt.zero_grad()
            r = problem.residual_torch(theta)
            loss = (r * r).sum()
            lv = float(loss.detach())
            if not math.isfinite(lv):
                last = ", ".join(f"{k} {v:.6g}" for k, v in zip(problem.names, best[1]))
                prog.close()
                err = SolverError(f"loss became non-finite at iteration {it} (diverged); try a smaller --lr "
                                  f"(last good: {last})")
                err.last_good = best[1]
                raise err
            if lv < best[0]:
                best = (lv, theta.detach().numpy().copy())
            history.append({"iteration": it, "loss": lv, "data_loss": lv, "time_s": time.perf_counter() - t0})
            prog.update(it, loss=lv)
            if it == iterations:
                break
            loss.backward()
            opt.step()
            ck.after_step(it + 1, lambda: state(it + 1), prog, "adam")
        prog.close()
        res = ForceResult(best[1], True, f"{iterations} Adam steps (lr {lr:g})", iterations, best[0], best[0],
                          time.perf_counter() - t0, history, [])
    elif method == "pinn":
        from ocdl.forces.pinn import fit_pinn
        res = fit_pinn(problem, theta0, quiet=quiet, seed=seed, state0=state0, ck=ck, **pinn_kw)
    else:
        from ocdl.errors import unknown_name
        raise unknown_name("solver", method, ("newton", "adam", "pinn"))
    g, w, x0, v0 = problem.unpack(res.x)
    res.extra.update({"gamma": float(g), "omega0": float(w), "x0": float(x0), "v0": float(v0),
                      "initial_guess": dict(zip(problem.names, map(float, theta0)))})
    return res


def summarize(problem, res, solver, true_gamma=None, true_omega0=None):
    """The JSON-ready summary of an oscillator fit (the keys the command line writes), with
    relative errors against the true parameters when given."""
    from ocdl.forces.learn import thin_history
    e = res.extra
    summary = {"problem": "oscillator", "solver": solver,
               "integrator": "pinn-autograd" if solver == "pinn" else problem.method,
               "final_loss": res.final_loss, "iterations": res.nit, "wall_time_s": res.wall_time_s,
               "success": res.success, "message": res.message, "gamma": e["gamma"], "omega0": e["omega0"],
               "x0": e["x0"], "v0": e["v0"], "steps": problem.steps, "n_samples": problem.n,
               "initial_guess": e["initial_guess"], "history": thin_history(res.history)}
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
