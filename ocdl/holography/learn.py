"""Solve the bulk reconstruction (scipy.optimize-like: ``solve(problem, method=...)``), summarise,
and analyse what the data determine.

Every solver runs on the one optimisation core :func:`ocdl.optim.minimize`:

* ``adam``      — autograd through the network + :class:`~ocdl.optim.Adam` on the paper's loss
  (the paper's optimiser; full batch, learning rate decaying exponentially ×``decay``);
* ``pmp-adam``  — the same Adam on the exact costate gradient (backward sweep, no tape);
* ``pmp-lbfgs`` — :class:`~ocdl.optim.TorchLBFGS` (strong Wolfe) on the costate gradient;
* ``newton``    — :class:`~ocdl.optim.LevenbergMarquardt` (Gauss–Newton) on the sum of squares
  ``(1/n) Σ (t − ȳ)² + c_reg Σ η_k⁴ Δh_k²`` with the exact Jacobian rows from one vectorised
  per-sample costate sweep, continued along ``NEWTON_PATH``: first a stiff regulariser
  (``STIFF × c_reg``) with a wide output layer ``σ = 1``, then ``c_reg`` with ``σ`` down to the
  paper's 0.01 (globalisation: a sharp ``t(F)`` has no gradient away from the decision band, and
  from a random start the flat directions of the data term lead Gauss–Newton astray; the stiff
  stage first pulls ``h`` onto a smooth metric).

:func:`identifiability` is the Gauss–Newton Hessian ``JᵀJ`` of the data term at a solution: its
eigenvalues say how many combinations of the layer values ``h_k`` the data fix, and how well.
"""
import math
import time

import numpy as np
import torch

from ocdl.errors import InputError, SolverError
from ocdl.holography.network import DTYPE
from ocdl.optim import (Adam, Callback, Checkpointing, Divergence, KeepBest, LevenbergMarquardt, ProgressBar,
                        Snapshots, TorchLBFGS, minimize)

SOLVERS = ("newton", "pmp-adam", "adam", "pmp-lbfgs")
SIGMA_PATH = (1.0, 0.1)          # then the problem's own σ (the paper's 0.01)
STIFF = 100.0                    # the first stage's regulariser factor (σ = SIGMA_PATH[0])
LBFGS_CHUNK = 20
HINT = "try a smaller --lr or another --init"


def initial_h(layers, init="constant", value=None, seed=0, spread=1.0):
    """The starting metric: ``constant`` (``value``, default 1) or ``random`` (the paper's random
    start: ``h_k ~ N(value, spread²)`` i.i.d., default mean 1, spread 1)."""
    mean = 1.0 if value is None else float(value)
    if init == "constant":
        return np.full(layers.N, mean)
    if init == "random":
        return np.random.default_rng(seed).normal(mean, spread, layers.N)
    raise InputError(f"unknown --init '{init}' (valid: constant, random)")


def _objective(problem, costate):
    def objective(x, batch=None):
        try:
            if costate:
                E, data, g = problem.loss_costate(x)
            else:
                xt = torch.tensor(np.asarray(x, float), dtype=DTYPE, requires_grad=True)
                E, data = problem.loss_torch(xt)
                (g,) = torch.autograd.grad(E, xt)
        except SolverError:
            return math.nan, np.full(len(x), math.nan), {}
        return float(E.detach()), g.detach().numpy(), {"data_loss": float(data.detach())}
    return objective


def solve(problem, method="newton", x0=None, iterations=None, lr=0.05, decay=1e-2, quiet=True, callback=None,
          snapshots=(), label="", control=None):
    """Minimise the problem's loss; returns an :class:`~ocdl.optim.OptimizeResult` (``x`` the free
    parameters). ``iterations``: Adam steps (default 3000), L-BFGS iterations (default 2000),
    Gauss–Newton steps per stage of the σ path (default 100). ``control``: the checkpoint options
    of :func:`ocdl.optim.minimize` (``state0``, ``checkpoint``, ``checkpoint_every``,
    ``should_stop``) for the one-stage solvers (adam, pmp-adam, pmp-lbfgs); newton (a few
    seconds, several stages) takes none."""
    if method not in SOLVERS:
        from ocdl.errors import unknown_name
        raise unknown_name("solver", method, SOLVERS)
    x0 = problem.x0(1.0) if x0 is None else np.asarray(x0, float)
    ck = {"progress": ProgressBar(quiet), "divergence": Divergence(hint=HINT),
          "snapshots": Snapshots(snapshots) if len(snapshots) else None,
          "callback": None if callback is None else Callback(callback)}
    control = control or {}
    if method == "newton":
        if any(control.get(k) is not None for k in ("state0", "checkpoint")):
            raise InputError("checkpoints apply to adam, pmp-adam and pmp-lbfgs; newton runs in seconds")
        return _newton(problem, x0, iterations or 100, label or "newton", ck, callback)
    ck.update(state0=control.get("state0"), checkpointing=Checkpointing(
        control.get("checkpoint"), control.get("checkpoint_every"), control.get("should_stop")))
    objective = _objective(problem, costate=method != "adam")
    if method == "pmp-lbfgs":
        rule = TorchLBFGS(max_iter=LBFGS_CHUNK, history_size=30, max_eval=3 * LBFGS_CHUNK)
        return minimize(objective, x0, rule, math.ceil((iterations or 2000) / LBFGS_CHUNK), name=label or method,
                        **ck)
    rule = Adam(lr=lr, schedule="exponential", decay=decay, amsgrad=False)
    return minimize(objective, x0, rule, iterations or 3000, name=label or method, keep_best=KeepBest(), **ck)


def _newton(problem, x0, iterations, label, ck, cb):
    """Levenberg–Marquardt down the σ path; one history over all stages."""
    t0 = time.perf_counter()
    sigmas = [s for s in SIGMA_PATH if s > problem.net.output.sigma] + [problem.net.output.sigma]
    c_reg = problem.c_reg
    stages = ([(sigmas[0], STIFF * c_reg)] if STIFF > 1 and c_reg > 0 else []) + [(s, c_reg) for s in sigmas]
    x, hist, snaps, it0, res = x0, [], [], 0, None
    for s, c in stages:
        problem.set_c_reg(c)
        cache = {}

        def rj(x, s=s, cache=cache):
            key = np.asarray(x, float).tobytes()
            if key not in cache:
                cache.clear()
                cache[key] = problem.residual_jacobian(x, sigma=s)
            return cache[key]

        rule = LevenbergMarquardt(lambda x: rj(x)[0], lambda x: rj(x)[1], gtol=1e-10, ftol=1e-9)

        def objective(x, batch=None, rule=rule, s=s, c=c):
            f, g = rule.objective(x)
            return f, g, {"sigma": s, "c_reg": c}

        res = minimize(objective, x, rule, iterations, name=f"{label} σ={s:g} c_reg={c:g}", progress=ck["progress"],
                       divergence=ck["divergence"], snapshots=ck["snapshots"],
                       callback=None if cb is None else Callback(lambda it, xx, f, it0=it0: cb(it + it0, xx, f)))
        hist += [dict(h, iteration=h["iteration"] + it0) for h in res.history]
        snaps += [(i + it0, v) for i, v in res.get("snapshots", [])]
        it0 += res.nit
        x = res.x
        if res.status == 2:      # stopped by the callback
            break
    problem.set_c_reg(c_reg)
    res.history, res.nit, res.wall_time_s = hist, it0, time.perf_counter() - t0
    if snaps:
        res["snapshots"] = snaps
    res["path"] = [{"sigma": s, "c_reg": c} for s, c in stages]
    res.fun = float(np.sum(problem.residual_jacobian(res.x, sigma=sigmas[-1])[0] ** 2))
    return res


def metric_error(h, h_true, eta, eta_min=0.2):
    """Relative L2 error of ``h`` over the layers with ``η ≥ eta_min``."""
    keep = np.asarray(eta) >= eta_min - 1e-12
    h, h_true = np.asarray(h)[keep], np.asarray(h_true)[keep]
    return float(np.linalg.norm(h - h_true) / np.linalg.norm(h_true))


def identifiability(problem, x, threshold=0.05):
    """The Gauss–Newton Hessian of the *data* term at ``x`` (``H = 2 JᵀJ`` of
    ``(1/n) Σ (t − ȳ)²`` in the layer values), its spectrum and eigenvectors.

    ``resolution_j = √(E_data / μ_j) / ‖h‖``: the relative size of a change of ``h`` along the
    eigenvector ``v_j`` that raises the data term by its own value — the combinations with
    resolution below ``threshold`` are fixed by the data, the rest by the regulariser.
    """
    th = problem.theta(x).detach()
    r, J = problem.net.residual_jacobian(th, problem.X, problem.target, 1 / math.sqrt(problem.n),
                                         problem.m2_data, problem.lam_data)
    J = J[:, :problem.layers.N].numpy()
    E = float(r @ r)
    mu, V = np.linalg.eigh(2 * J.T @ J)
    mu, V = mu[::-1], V[:, ::-1]
    hn = float(np.linalg.norm(np.asarray(x)[:problem.layers.N]))
    res = np.sqrt(max(E, 1e-300) / np.maximum(mu, 1e-300)) / hn
    return {"eigenvalues": mu.tolist(), "relative_eigenvalues": (mu / mu[0]).tolist(),
            "eigenvectors": V.T.tolist(), "resolution": res.tolist(), "data_loss_l2": E,
            "determined": int(np.sum(res < threshold)), "threshold": threshold}


def summarize(problem, res, solver, h_true=None, test=None):
    """The JSON-ready summary: ``metric {eta, h}``, learned ``m2`` / ``lam``, accuracies, loss,
    ``success``, ``message``, and with a true metric its relative L2 error over ``η ≥ 0.2``."""
    x = np.asarray(res.x, float)
    th = problem.theta(x).numpy()
    N = problem.layers.N
    out = {"solver": solver, "integrator": problem.net.method, "layers": N,
           "eta_ini": problem.layers.eta_ini, "eta_fin": problem.layers.eta_fin,
           "metric": {"eta": problem.layers.eta.tolist(), "h": th[:N].tolist()},
           "final_loss": float(res.fun), "train_accuracy": problem.accuracy(x),
           "iterations": int(res.nit), "wall_time_s": float(res.wall_time_s),
           "success": bool(res.success), "message": str(res.message), "c_reg": problem.c_reg,
           "eps": problem.net.output.eps, "sigma": problem.net.output.sigma, "n_samples": problem.n}
    with torch.no_grad():
        E, data = problem.loss_torch(torch.as_tensor(x, dtype=DTYPE)) if problem.loss == "l1" else (None, None)
    if E is None:
        from ocdl.holography.problem import HolographyProblem
        paper = HolographyProblem.__new__(HolographyProblem)
        paper.__dict__.update(problem.__dict__, loss="l1")
        with torch.no_grad():
            E, data = paper.loss_torch(torch.as_tensor(x, dtype=DTYPE))
    out["paper_loss"], out["paper_data_loss"] = float(E), float(data)
    if problem.learn_mass:
        out["m2"] = float(th[N])
    if problem.learn_coupling:
        out["lam"] = float(th[N + 1])
    if test is not None:
        out["test_accuracy"] = problem.accuracy(x, *test)
    if h_true is not None:
        out["h_true"] = np.asarray(h_true, float).tolist()
        out["metric_rel_l2_error"] = metric_error(th[:N], h_true, problem.layers.eta)
    out["history"] = _thin(res.history)
    return out


def _thin(history, keep=300):
    if len(history) <= keep:
        return list(history)
    idx = np.unique(np.r_[np.linspace(0, len(history) - 1, keep).astype(int), len(history) - 1])
    return [history[i] for i in idx]


def describe(summary):
    msg = (f"holography: {summary['solver']} ({summary['integrator']}, N={summary['layers']}) loss "
           f"{summary['final_loss']:.3e} after {summary['iterations']} iterations, {summary['wall_time_s']:.2f}s; "
           f"train accuracy {summary['train_accuracy']:.2%}")
    if "test_accuracy" in summary:
        msg += f", test accuracy {summary['test_accuracy']:.2%}"
    if "metric_rel_l2_error" in summary:
        msg += f"; metric rel. L2 error {summary['metric_rel_l2_error']:.2%} (η ≥ 0.2)"
    return msg
