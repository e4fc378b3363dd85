"""Step rules for :func:`ocdl.optim.minimize`: ``Adam`` and ``GradientDescent`` (Armijo).

The rule protocol (:mod:`ocdl.optim.driver`): ``init(x, saved, run) → state`` (``saved``: the
state's arrays from a checkpoint, or None; resuming from them continues bit for bit),
``update(state, point, run) → Step(x_next, state, info, stop)`` and
``certify(state, point, run) → (passed, text)``: its convergence test, which the driver applies to
the full objective at the returned x (:mod:`ocdl.optim.certificates`).
"""
import numpy as np

from ocdl.optim import certificates
from ocdl.optim.driver import Step, Stop
from ocdl.optim.result import STALLED
from ocdl.optim.schedules import learning_rate


def _xp(x):
    if hasattr(x, "detach"):
        import torch
        return torch
    return np


class Adam:
    """Adam (Kingma & Ba), AMSGrad by default, on numpy arrays or torch tensors::

        m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²,   v̂ ← max(v̂, v)  (AMSGrad; else v̂ = v)
        x ← x − (a_t / (1 − β₁^t)) · m / (√v̂ / √(1 − β₂^t) + ε)

    with ``a_t`` from the schedule (see :mod:`ocdl.optim.schedules`) over the run's iterations — the
    update of ``torch.optim.Adam(amsgrad=…)``. ``t`` is the driver's iteration, so a resumed run
    continues the bias corrections. State: ``m``, ``v`` (and ``vmax``). AMSGrad keeps the
    second-moment estimate from decreasing, which prevents the late loss spikes plain Adam showed
    on the spirals.
    """
    name = "adam"
    certifies_minibatch = True       # the epoch form of the first-order test (certificates.first_order)

    def __init__(self, lr=0.05, schedule="cosine", betas=(0.9, 0.999), eps=1e-8, amsgrad=True, decay=1e-2):
        self.lr, self.schedule, self.decay = float(lr), schedule, float(decay)
        self.b1, self.b2 = (float(b) for b in betas)
        self.eps, self.amsgrad = float(eps), bool(amsgrad)

    def init(self, x, saved, run):
        xp = _xp(x)
        if saved:
            as_x = (lambda a: xp.as_tensor(np.asarray(a), dtype=x.dtype, device=x.device)) if xp is not np \
                else (lambda a: np.array(a, dtype=float))
            state = {"m": as_x(saved["m"]), "v": as_x(saved["v"])}
            if "vmax" in saved:
                state["vmax"] = as_x(saved["vmax"])
            return state
        state = {"m": xp.zeros_like(x), "v": xp.zeros_like(x)}
        if self.amsgrad:
            state["vmax"] = xp.zeros_like(x)
        return state

    def rate(self, it, total):
        """The learning rate ``a_t`` of iteration ``it`` of ``total``."""
        return learning_rate(self.lr, self.schedule, it, total, self.decay)

    def update(self, state, p, run):
        xp = _xp(p.x)
        b1, b2, g, it = self.b1, self.b2, p.g, p.it
        m = b1 * state["m"] + (1 - b1) * g
        v = b2 * state["v"] + (1 - b2) * g * g
        new = {"m": m, "v": v}
        if self.amsgrad:
            new["vmax"] = vv = xp.maximum(state["vmax"], v)
        else:
            vv = v
        a = self.rate(it, run.iterations)
        return Step(p.x - (a / (1 - b1 ** it)) * m / (xp.sqrt(vv) / np.sqrt(1 - b2 ** it) + self.eps), new)

    def certify(self, state, p, run):
        """The first-order test (:func:`ocdl.optim.certificates.first_order`)."""
        return certificates.first_order(run.gtol)(p.f, p.g, run)


class GradientDescent:
    """Gradient descent with Armijo backtracking: the step ``s`` halves until
    ``J(x − s g) ≤ J(x) − armijo · s |g|²``, then grows ×``grow`` for the next iteration.
    ``value(x, batch)`` (optional) is a cheaper cost-only evaluation used for the trial points.
    With a sampler the trial points are evaluated on the iteration's own batch (``point.batch``):
    the line search decreases the same sub-cost whose gradient it follows.
    No step in 60 halvings decreases the cost → the run stops as stalled (status 3). State: ``step``."""
    name = "gradient descent"
    certifies_minibatch = True

    def __init__(self, lr=0.5, armijo=1e-4, grow=1.5, value=None):
        self.lr, self.armijo, self.grow, self.value = float(lr), float(armijo), float(grow), value

    def init(self, x, saved, run):
        return {"step": np.array(float(saved["step"]) if saved else self.lr)}

    def update(self, state, p, run):
        x, f, g = p.x, p.f, p.g
        s = float(state["step"])
        gg = float(np.sum(np.asarray(g) ** 2))
        for _ in range(60):
            trial = x - s * g
            ft = self.value(trial, p.batch) if self.value is not None else run.call(trial, p.batch)[0]
            if np.isfinite(ft) and ft <= f - self.armijo * s * gg:
                return Step(trial, {"step": np.array(s * self.grow)})
            s *= 0.5
        return Step(None, {"step": np.array(s)},
                    stop=Stop("line search found no decrease (gradient at round-off level?)", STALLED))

    def certify(self, state, p, run):
        """The first-order test (:func:`ocdl.optim.certificates.first_order`)."""
        return certificates.first_order(run.gtol)(p.f, p.g, run)
