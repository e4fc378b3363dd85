"""Solvers driven by the costate gradient (``ocdl.pmp.value_and_grad``; no autograd tape).

* ``pmp-adam``  — Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8, AMSGrad by default: the second-moment
  estimate never decreases, which prevents the catastrophic late loss spikes plain Adam showed
  on the spirals) on the exact discrete gradient, cosine learning-rate decay by default —
  the same update as ``torch.optim.Adam(amsgrad=True)``; its moments are part of the checkpoint state, so a resumed
  run reproduces an uninterrupted one exactly.
* ``pmp-gd``    — gradient descent with Armijo backtracking (step halves until
  ``J(θ − s g) ≤ J(θ) − 1e-4 s |g|²``, then grows ×1.5 for the next iteration).
* ``pmp-lbfgs`` — scipy's L-BFGS-B fed the costate gradient (checkpoints hold parameters only:
  a resumed run restarts the L-BFGS memory).
"""
import numpy as np

from ocdl import pmp
from ocdl.solvers.base import Loop, learning_rate

KEYS = ("K", "b", "W", "mu")


def _evaluate(model, params, X, y, loop, it):
    J, grads, states, _ = pmp.sweep(model, params, X, y)
    loop.check(it, J, params, grads, state_max=float(np.abs(states[-1]).max()))
    return J, grads


def pmp_adam(model, params0, X, y, *, iterations=3000, callback=None, quiet=True, lr=0.05,
             schedule="cosine", betas=(0.9, 0.999), eps=1e-8, amsgrad=True, state0=None, checkpoint=None,
             checkpoint_every=None, should_stop=None, **_):
    loop = Loop("pmp-adam", model, iterations, quiet, callback, state0, checkpoint, checkpoint_every, should_stop)
    b1, b2 = betas
    if state0:
        params = {k: np.array(v, dtype=float) for k, v in state0["params"].items()}
        m = {k: np.array(state0["opt"]["m_" + k], dtype=float) for k in KEYS}
        v = {k: np.array(state0["opt"]["v_" + k], dtype=float) for k in KEYS}
        vmax = {k: np.array(state0["opt"].get("vmax_" + k, v[k]), dtype=float) for k in KEYS}
    else:
        params = {k: np.array(p, dtype=float) for k, p in params0.items()}
        m = {k: np.zeros_like(params[k]) for k in KEYS}
        v = {k: np.zeros_like(params[k]) for k in KEYS}
        vmax = {k: np.zeros_like(params[k]) for k in KEYS}
    for it in range(loop.start_iteration + 1, iterations + 1):
        J, g = _evaluate(model, params, X, y, loop, it)
        loop.record(it, J, params, kkt=pmp.kkt_residual(model, params, X, y, grads=g))
        if loop.stopped_by_callback:
            break
        a = learning_rate(lr, schedule, it, iterations)
        for k in KEYS:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k]
            if amsgrad:
                vmax[k] = np.maximum(vmax[k], v[k])
            vv = vmax[k] if amsgrad else v[k]
            params[k] = params[k] - (a / (1 - b1 ** it)) * m[k] / (np.sqrt(vv) / np.sqrt(1 - b2 ** it) + eps)
        loop.after_step(it, params, lambda: {**{"m_" + k: m[k] for k in KEYS}, **{"v_" + k: v[k] for k in KEYS},
                                             **{"vmax_" + k: vmax[k] for k in KEYS}})
    return _finish(loop, model, params, X, y)


def pmp_gd(model, params0, X, y, *, iterations=4000, callback=None, quiet=True, lr=0.5, armijo=1e-4,
           state0=None, checkpoint=None, checkpoint_every=None, should_stop=None, **_):
    loop = Loop("pmp-gd", model, iterations, quiet, callback, state0, checkpoint, checkpoint_every, should_stop)
    if state0:
        params = {k: np.array(v, dtype=float) for k, v in state0["params"].items()}
        step = float(state0["opt"]["step"])
    else:
        params = {k: np.array(p, dtype=float) for k, p in params0.items()}
        step = float(lr)
    for it in range(loop.start_iteration + 1, iterations + 1):
        J, g = _evaluate(model, params, X, y, loop, it)
        loop.record(it, J, params, kkt=pmp.kkt_residual(model, params, X, y, grads=g), lr=step)
        if loop.stopped_by_callback:
            break
        gg = sum(float(np.sum(g[k] ** 2)) for k in KEYS)
        for _ in range(60):
            trial = {k: params[k] - step * g[k] for k in KEYS}
            Jt = pmp.cost(model, trial, X, y)
            if np.isfinite(Jt) and Jt <= J - armijo * step * gg:
                break
            step *= 0.5
        else:
            loop.close()
            return loop.result(params, J, success=True, nit=it,
                               message="line search found no decrease (gradient at round-off level)")
        params = trial
        step *= 1.5
        loop.after_step(it, params, lambda: {"step": np.array(step)})
    return _finish(loop, model, params, X, y)


def pmp_lbfgs(model, params0, X, y, *, iterations=1000, callback=None, quiet=True, gtol=1e-9,
              state0=None, checkpoint=None, checkpoint_every=None, should_stop=None, **_):
    from scipy.optimize import minimize
    loop = Loop("pmp-lbfgs", model, iterations, quiet, callback, state0, checkpoint, checkpoint_every, should_stop)
    params = state0["params"] if state0 else params0
    x0 = model.flatten(params)
    counter = {"it": loop.start_iteration, "last": None}

    def fun(vec):
        p = model.unflatten(vec)
        J, g = _evaluate(model, p, X, y, loop, counter["it"] + 1)
        counter["last"] = (vec.copy(), J, g)
        return J, model.flatten(g)

    def cb(intermediate_result):
        counter["it"] += 1
        it = counter["it"]
        vec = intermediate_result.x
        p = model.unflatten(vec)
        J = float(intermediate_result.fun)
        loop.record(it, J, p)
        if loop.stopped_by_callback:
            raise StopIteration
        loop.after_step(it, p, {})

    remaining = iterations - loop.start_iteration
    if remaining <= 0:
        return _finish(loop, model, model.unflatten(x0), X, y)
    r = minimize(fun, x0, jac=True, method="L-BFGS-B", callback=cb,
                 options={"maxiter": remaining, "gtol": gtol, "ftol": 1e-15, "maxcor": 20})
    return _finish(loop, model, model.unflatten(r.x), X, y, message=str(r.message))


def _finish(loop, model, params, X, y, message=None):
    J, g, states, _ = pmp.sweep(model, params, X, y)
    if not np.isfinite(J):
        loop.check(loop.history[-1]["iteration"] + 1 if loop.history else 1, J, params)
    loop.close()
    res = loop.result(params, J, success=True, message=message or
                      ("stopped by callback" if loop.stopped_by_callback else "finished all iterations"))
    res.kkt = pmp.kkt_residual(model, params, X, y, grads=g)
    return res

