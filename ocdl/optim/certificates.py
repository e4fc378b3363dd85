"""Convergence certificates: what makes ``success`` true (docs/optim.md, "When is a run converged").

The driver, not the rule, decides convergence: when a run ends it evaluates the **full**
objective at the point it returns (never one mini-batch's) and applies the rule's test there.
A test is ``test(f, g, ctx) → (passed, text)``; ``text`` says what was measured either way.

* :func:`gradient` — ``max |∇J(x)| ≤ gtol``: quasi-Newton and Newton-type rules, and any run
  given a ``gtol``.
* :func:`kkt` — the KKT residual ``‖F(z)‖∞`` of the discrete Pontryagin system (the objective's
  ``info["kkt"]``, :func:`ocdl.pmp.kkt_residual`) ≤ tol: the Newton-type Pontryagin rules.
* :func:`first_order` — for Adam and gradient descent, whose gradient at a finite learning rate
  rarely falls to a fixed 1e-6: converged when ``max |∇J| ≤ gtol``, **or** when the loss has
  stalled and the gradient has fallen. Full-batch runs, every value on the full objective:

      J(x_{k−w}) − J(x_k) ≤ ftol · max(|J(x_k)|, 1e-300)     (w = ``window`` iterations)
      max |∇J(x_k)| ≤ reduction · max |∇J(x_1)|

  Defaults w = 100, ftol = 1e-4, reduction = 0.05: another 100 steps at the current rate would
  lower J by less than 0.01 %, and the run has removed 95 % of the initial gradient (this part
  keeps a run whose rate is too small to move from being called converged). Measured on the
  README's spirals run (pmp-adam, 3000 iterations, seeds 0/1/2): relative decrease over the last
  100 iterations 1.1e-5 / 2.9e-5 / 3.6e-6, gradient reduction 3e-3 / 1.2e-2 / 1.8e-3 — both
  tests pass with a margin of 3× or more.

  **Mini-batch runs** (a :class:`~ocdl.optim.Batches` sampler with batches smaller than the data)
  record batch losses only. Each epoch visits every sample once, so the epoch's mean batch loss
  L̄(E) (weighted by batch size: :func:`epoch_means`) is the full loss averaged along that epoch's
  trajectory; the stalled test reads it over ``epoch_window`` epochs, the gradient test stays on
  the full objective::

      L̄(E − W) − L̄(E) ≤ epoch_ftol · max(|L̄(E)|, 1e-300)      (W = ``epoch_window`` epochs)
      max |∇J(x_end)| ≤ reduction · max |∇J(x_0)|

  ``max |∇J(x_0)|`` costs one full gradient, computed once by the driver at the start of the
  run (``first_gmax`` in the checkpoint's meta, so a resumed run reads it); ``∇J(x_end)`` is the
  certificate's own full evaluation. A run of fewer than W + 1 epochs is not certified, and says
  so. Defaults W = EPOCH_WINDOW, epoch_ftol = EPOCH_FTOL (docs/optim.md: the measurements).
"""
import numpy as np

WINDOW, FTOL, REDUCTION = 100, 1e-4, 0.05
EPOCH_WINDOW, EPOCH_FTOL = 10, 5e-2


def maxabs(g):
    if hasattr(g, "detach"):
        return float(g.detach().abs().max()) if g.numel() else 0.0
    return float(np.max(np.abs(g))) if np.size(g) else 0.0


def epoch_means(history, n, size):
    """``[(epoch, L̄)]``: the mean batch loss of each completed epoch in ``history`` (rows carrying
    ``epoch`` close one), each batch loss weighted by its batch's size — ``size``, the last of the
    epoch ``n − (k − 1)·size`` — so that L̄ = Σ_B |B| J_B / n is the full loss's data average
    along the epoch (an epoch whose rows are not the ``⌈n/size⌉`` batches, e.g. one resumed from
    an older layout, is averaged unweighted)."""
    k = -(-int(n) // int(size))
    weights = np.full(k, float(size))
    weights[-1] = n - (k - 1) * size
    out, losses = [], []
    for row in history:
        losses.append(float(row["loss"]))
        if "epoch" in row:
            w = weights if len(losses) == k else np.ones(len(losses))
            out.append((int(row["epoch"]), float(np.dot(w, losses) / w.sum())))
            losses = []
    return out


def gradient(gtol):
    """``max |∇J| ≤ gtol``."""
    def test(f, g, ctx):
        gm = maxabs(g)
        ok = gm <= gtol
        return ok, f"max |gradient| {gm:.2e} {'≤' if ok else '>'} gtol {gtol:g}"
    return test


def kkt(tol):
    """``info["kkt"] ≤ tol`` at the full-objective evaluation of the returned point (``info`` what
    the objective measured there, the certified point's; an objective that reports no ``kkt`` fails)."""
    def test(f, g, ctx, info):
        res = (info or {}).get("kkt")
        if res is None:
            return False, "the objective reports no KKT residual"
        ok = float(res) <= tol
        return ok, f"KKT residual {float(res):.2e} {'≤' if ok else '>'} tol {tol:g}"
    return test


def first_order(gtol=None, window=WINDOW, ftol=FTOL, reduction=REDUCTION, epoch_window=EPOCH_WINDOW,
                epoch_ftol=EPOCH_FTOL):
    """The first-order rules' test (module docstring); mini-batch runs (``ctx.minibatch``) take
    the epoch form."""
    def test(f, g, ctx):
        gm = maxabs(g)
        if gtol is not None and gm <= gtol:
            return True, f"max |gradient| {gm:.2e} ≤ gtol {gtol:g}"
        head = f"max |gradient| {gm:.2e}" + (f" > gtol {gtol:g}" if gtol is not None else "")
        g0 = ctx.first_gmax
        if getattr(ctx, "minibatch", False):
            means = ctx.epoch_losses()
            if len(means) < epoch_window + 1:
                return False, (f"{head}; {len(means)} epochs, fewer than the {epoch_window + 1} needed to "
                               f"test a stalled epoch loss over {epoch_window} epochs")
            if g0 is None:
                return False, f"{head}; no full gradient at the start of the run to measure its reduction"
            before, last = means[-1 - epoch_window][1], means[-1][1]
            drop = (before - last) / max(abs(last), 1e-300)
            stalled, fell = drop <= epoch_ftol, gm <= reduction * g0
            text = (f"relative decrease of the epoch-mean batch loss over the last {epoch_window} epochs "
                    f"{drop:.1e} {'≤' if stalled else '>'} {epoch_ftol:g}, max |gradient| {gm:.2e} "
                    f"{'≤' if fell else '>'} {reduction:g} × its value at the start {g0:.2e} (full objective)")
            return stalled and fell, text
        losses = ctx.full_losses()
        it = losses[-1][0] if losses else 0
        before = [fl for i, fl in losses if i <= it - window]
        if not before or g0 is None:
            return False, f"{head}; fewer than {window} full-objective iterations to test a stalled loss"
        drop = (before[-1] - f) / max(abs(f), 1e-300)
        stalled, fell = drop <= ftol, gm <= reduction * g0
        text = (f"relative loss decrease over the last {window} iterations {drop:.1e} "
                f"{'≤' if stalled else '>'} {ftol:g}, max |gradient| {gm:.2e} "
                f"{'≤' if fell else '>'} {reduction:g} × its first value {g0:.2e}")
        return stalled and fell, text
    return test
