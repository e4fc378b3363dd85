"""Step rules for :func:`ocdl.optim.minimize`: ``Adam`` and ``GradientDescent`` (Armijo).

A rule has ``start(x, saved, ctx)`` (``saved``: its arrays from a checkpoint, or None),
``step(it, x, f, g, ctx) → x_next`` (may raise :class:`~ocdl.optim.StopRun`: why it stopped),
``state()`` (its arrays for a checkpoint; resuming from them continues bit for bit) and
``certify(f, g, ctx) → (passed, text)``: its convergence test, which the driver applies to the
full objective at the returned x (:mod:`ocdl.optim.certificates`).
"""
import numpy as np

from ocdl.optim import certificates
from ocdl.optim.driver import StopRun
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

    with ``a_t`` from the schedule (see :mod:`ocdl.optim.schedules`) — the update of
    ``torch.optim.Adam(amsgrad=…)``. ``t`` is the driver's iteration, so a resumed run continues
    the bias corrections. AMSGrad keeps the second-moment estimate from decreasing, which
    prevents the late loss spikes plain Adam showed on the spirals.
    """
    name = "adam"

    def __init__(self, lr=0.05, schedule="cosine", betas=(0.9, 0.999), eps=1e-8, amsgrad=True, decay=1e-2):
        self.lr, self.schedule, self.decay = float(lr), schedule, float(decay)
        self.b1, self.b2 = (float(b) for b in betas)
        self.eps, self.amsgrad = float(eps), bool(amsgrad)

    def start(self, x, saved, ctx):
        self.total = ctx.iterations
        xp = _xp(x)
        if saved:
            as_x = (lambda a: xp.as_tensor(np.asarray(a), dtype=x.dtype, device=x.device)) if xp is not np \
                else (lambda a: np.array(a, dtype=float))
            self.m, self.v = as_x(saved["m"]), as_x(saved["v"])
            self.vmax = as_x(saved["vmax"]) if "vmax" in saved else None
        else:
            self.m, self.v = xp.zeros_like(x), xp.zeros_like(x)
            self.vmax = xp.zeros_like(x) if self.amsgrad else None

    def rate(self, it):
        return learning_rate(self.lr, self.schedule, it, self.total, self.decay)

    def step(self, it, x, f, g, ctx):
        xp = _xp(x)
        b1, b2 = self.b1, self.b2
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        if self.amsgrad:
            self.vmax = xp.maximum(self.vmax, self.v)
        vv = self.vmax if self.amsgrad else self.v
        a = self.rate(it)
        return x - (a / (1 - b1 ** it)) * self.m / (xp.sqrt(vv) / np.sqrt(1 - b2 ** it) + self.eps)

    def certify(self, f, g, ctx):
        """The first-order test (:func:`ocdl.optim.certificates.first_order`)."""
        return certificates.first_order(ctx.gtol)(f, g, ctx)

    def state(self):
        out = {"m": self.m, "v": self.v}
        if self.amsgrad:
            out["vmax"] = self.vmax
        return out


class GradientDescent:
    """Gradient descent with Armijo backtracking: the step ``s`` halves until
    ``J(x − s g) ≤ J(x) − armijo · s |g|²``, then grows ×``grow`` for the next iteration.
    ``value(x, batch)`` (optional) is a cheaper cost-only evaluation used for the trial points.
    With a sampler the trial points are evaluated on the iteration's own batch (``ctx.batch``):
    the line search decreases the same sub-cost whose gradient it follows.
    No step in 60 halvings decreases the cost → the run stops as stalled (status 3)."""
    name = "gradient descent"

    def __init__(self, lr=0.5, armijo=1e-4, grow=1.5, value=None):
        self.lr, self.armijo, self.grow, self.value = float(lr), float(armijo), float(grow), value

    def start(self, x, saved, ctx):
        self.s = float(saved["step"]) if saved else self.lr

    def step(self, it, x, f, g, ctx):
        gg = float(np.sum(np.asarray(g) ** 2))
        for _ in range(60):
            trial = x - self.s * g
            batch = getattr(ctx, "batch", None)
            ft = self.value(trial, batch) if self.value is not None else ctx.call(trial, batch)[0]
            if np.isfinite(ft) and ft <= f - self.armijo * self.s * gg:
                self.s *= self.grow
                return trial
            self.s *= 0.5
        raise StopRun("line search found no decrease (gradient at round-off level?)", STALLED)

    def certify(self, f, g, ctx):
        """The first-order test (:func:`ocdl.optim.certificates.first_order`)."""
        return certificates.first_order(ctx.gtol)(f, g, ctx)

    def state(self):
        return {"step": np.array(self.s)}
