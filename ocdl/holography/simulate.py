"""Boundary data from a known metric: ``(φ, π)`` at ``η_ini`` labelled by horizon regularity.

The paper's set-up: pairs drawn uniformly from the box ``φ ∈ [0, 1.5]``, ``π ∈ [−0.2, 0.2]``,
propagated inward by the network with the true ``h(η_k)``; a pair is positive (label 1) when the
output ``|F| < ε`` (``ε = 0.1``), negative (label 0) otherwise. Positives are rare (about 0.1 % of
the box for the default metric: the regular solutions form a thin curve ``π(φ)``), so draws are
repeated until each class has its half of ``samples`` (the paper's balanced 1000 + 1000), in
vectorised batches.

``metric`` is an :mod:`ocdl.expr` expression in ``eta``; it must be finite and real on the layer
nodes and on ``[η_fin, η_ini]`` (checked on a fine grid) — a singular or complex metric is an
:class:`~ocdl.errors.InputError` naming ``--metric``.
"""
import numpy as np
import torch

from ocdl.errors import InputError
from ocdl.holography.network import DTYPE, Layers, Network

BOX = ((0.0, 1.5), (-0.2, 0.2))
MAX_DRAWS = 20_000_000
MAX_SAMPLES = 20_000
EMPTY_AFTER = 400_000        # a class with no member after this many draws is taken as empty (rate < 2.5e-6)


def metric_values(metric, layers, flag="--metric"):
    """``h(η_k)`` on the layer nodes from an expression in ``eta`` (checked on ``[η_fin, η_ini]``)."""
    from ocdl.expr import compile_expr
    try:
        fn = compile_expr(metric, ("eta",))
        fine = np.linspace(layers.eta_fin, layers.eta_ini, 20 * layers.N + 1)
        np.broadcast_to(fn(fine), fine.shape)
        values = np.broadcast_to(np.asarray(fn(layers.eta), dtype=float), layers.eta.shape).copy()
    except InputError as exc:
        raise InputError(f"{flag}: {exc}") from None
    big = np.abs(values).max()
    if big > 1e6:
        raise InputError(f"{flag}: the metric '{metric}' is singular on the grid (|h| = {big:.3g} on "
                         f"[{layers.eta_fin:g}, {layers.eta_ini:g}])")
    return values


def _values(x, n):
    """A number or a list of numbers → an array (one value per data block)."""
    return np.atleast_1d(np.asarray(x, dtype=float)).reshape(-1) if np.ndim(x) else np.full(n, float(x))


def simulate(metric="3/tanh(3*eta)", m2=-1.0, lam=1.0, eta_ini=1.0, eta_fin=0.1, layers=10, samples=2000,
             seed=0, eps=0.1, method="euler", box=BOX):
    """Balanced labelled boundary data. ``m2`` / ``lam`` may be lists (equal length or one of
    them scalar): then the samples are split evenly over the ``(m², λ)`` pairs and the result has
    per-sample ``m2`` / ``lam`` arrays. Returns a dict ``phi, pi, label, m2, lam, h_true, eta``."""
    grid = Layers(eta_ini, eta_fin, layers)
    h = torch.as_tensor(metric_values(metric, grid), dtype=DTYPE)
    k = max(np.size(m2), np.size(lam))
    m2s, lams = _values(m2, k), _values(lam, k)
    if len(m2s) != len(lams):
        raise InputError(f"--m2 and --lam give {len(m2s)} and {len(lams)} values; give one of each or lists of "
                         "equal length")
    if samples > MAX_SAMPLES:
        raise InputError(f"--samples {samples} is too many: at most {MAX_SAMPLES:,} (the regular samples are about "
                         "0.1 % of the box, so n samples take ~1000 n draws)")
    if samples < 2 * k:
        raise InputError(f"--samples must be at least {2 * k} (two per class and (m², λ) pair)")
    net = Network(grid, method, eps)
    rng = np.random.default_rng(seed)
    rows = []
    for b, (mb, lb) in enumerate(zip(m2s, lams)):
        n_b = samples // k + (1 if b < samples % k else 0)
        want = {1: n_b // 2 + n_b % 2, 0: n_b // 2}
        got = {1: [], 0: []}
        have, draws = {1: 0, 0: 0}, 0
        theta = torch.cat([h, torch.tensor([mb, lb], dtype=DTYPE)])
        while any(have[c] < want[c] for c in (0, 1)):
            batch = 200_000
            draws += batch
            if draws > MAX_DRAWS or (draws > EMPTY_AFTER and min(have.values()) == 0):
                c = 1 if have[1] < want[1] else 0
                what = "positive (regular)" if c == 1 else "negative"
                why = "the class is empty" if have[c] == 0 else f"only {have[c]} of {want[c]} found"
                raise InputError(f"{what} samples: {why} in {draws - batch:,} draws from the box phi ∈ {box[0]}, "
                                 f"pi ∈ {box[1]} for m2={mb:g}, lam={lb:g}; change --metric, --m2, --lam, --eps "
                                 "or --eta-fin, or ask for fewer --samples")
            X = np.stack([rng.uniform(*box[0], batch), rng.uniform(*box[1], batch)], axis=1)
            with torch.no_grad():
                F = net.horizon_value(theta, X)
            lab = (F.abs() < eps).numpy().astype(int)
            for c in (0, 1):
                take = X[lab == c][: want[c] - have[c]]
                got[c].append(take)
                have[c] += len(take)
        for c in (1, 0):
            Xc = np.concatenate(got[c])
            rows.append(np.column_stack([Xc, np.full(len(Xc), c), np.full(len(Xc), mb), np.full(len(Xc), lb)]))
    data = np.concatenate(rows)
    data = data[rng.permutation(len(data))]
    return {"phi": data[:, 0], "pi": data[:, 1], "label": data[:, 2].astype(int), "m2": data[:, 3],
            "lam": data[:, 4], "multi": k > 1, "h_true": h.numpy(), "eta": grid.eta}
