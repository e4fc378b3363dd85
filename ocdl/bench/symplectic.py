"""The spiral study with every symplectic integrator: accuracy, time, energy drift, reversibility.

The ``hamiltonian`` field on ``x = (q, p)``, ``q̇ = σ(K p + b)``, ``ṗ = −σ(Kᵀ q + b)``, with θ_k
held constant on layer k conserves ``H_k(q, p) = 1ᵀA(K_k p + b_k) + 1ᵀA(K_kᵀ q + b_k)`` (A' = σ;
:meth:`ocdl.models.fields.HamiltonianField.energy`, which derives it). A network layer is one
step ``x_{k+1} = Ψ_h(x_k; θ_k)`` of a symplectic method (:data:`METHODS`); measured here:

* **energy drift** — per layer and sample ``ΔH_{k,i} = H_k(x_{k+1,i}) − H_k(x_{k,i})`` (zero for
  the exact flow of the layer; the method's local energy error, O(h^{p+1}) per step).
  :func:`energy_drift` reports ``drift_sum = max_i Σ_k |ΔH_{k,i}|`` (the worst sample's total
  energy error through the network), ``drift_max = max_{k,i} |ΔH_{k,i}|`` and, for scale,
  ``energy_mean = mean_{k,i} H_k(x_{k,i})``;
* **reversibility** — every method here is symmetric, ``Ψ_h⁻¹ = Ψ_{−h}``: run the network forward,
  then the layers in reverse order with step −h (:func:`reversibility_error`) and report
  ``max_i ‖x̂_{0,i} − x_{0,i}‖₂ / max_i ‖x_{0,i}‖₂`` (round-off for the splittings; for the
  implicit methods also the stage-solve tolerance).

:func:`layer_step` is one step of any of the methods with any (also negative) h: the splittings
of :data:`ocdl.models.resnet.SPLITTINGS` on the field's halves, the implicit Runge–Kutta methods
through the batched Newton stage solve of :func:`ocdl.pmp.implicit.layer_forward` (the one the
costate sweep stores its stages from). :func:`spiral_study` trains one classifier per method by
pmp-adam on the same data, size, iterations and seed.
"""
import time

import numpy as np

from ocdl.models.resnet import SPLITTINGS

#: the symplectic integrators of the study and their classical orders
METHODS = ("verlet", "yoshida4", "implicit_midpoint", "gauss2", "gauss3")
ORDERS = {"verlet": 2, "yoshida4": 4, "implicit_midpoint": 2, "gauss2": 4, "gauss3": 6}


def layer_step(F, integrator, x, K, b, h, stage_tol=1e-14):
    """One step ``Ψ_h(x; K, b)`` of ``integrator`` for ``ẋ = F.f(x, K, b)`` (rows = samples); h may
    be negative (the inverse step of a symmetric method)."""
    if integrator in SPLITTINGS:
        m = x.shape[1] // 2
        q, p = x[:, :m], x[:, m:]
        for kind, c in SPLITTINGS[integrator]:
            if kind == "drift":
                q = q + c * h * F.fq(p, K, b)
            else:
                p = p + c * h * F.fp(q, K, b)
        return np.concatenate([q, p], axis=1)
    from ocdl.pmp.implicit import coefficients, layer_forward
    A, bw = coefficients(integrator, x.shape[1])
    Y = layer_forward(F, A, h, x, K, b, "newton", stage_tol)
    return x + h * sum(bw[j] * F.f(Y[:, j], K, b) for j in range(len(bw)))


def flow(F, integrator, x, K, b, h, steps):
    """States ``(steps + 1, n, d)`` of ``steps`` steps of size h with θ = (K, b) held constant."""
    out = [x]
    for _ in range(steps):
        out.append(layer_step(F, integrator, out[-1], K, b, h))
    return np.stack(out)


def states(model, params, X):
    """States ``(N+1, n, d)`` of the trained network through :func:`layer_step`."""
    x = model.lift(np.asarray(X, dtype=float))
    out = [x]
    for k in range(model.layers):
        out.append(layer_step(model.F, model.integrator, out[-1], params["K"][k], params["b"][k], model.h))
    return np.stack(out)


def logits(model, params, X):
    """``W x_N + μ`` with x_N from :func:`states` (batched Newton stage solves; the model's own
    forward pass takes the ``integrators`` package's general path for the implicit methods)."""
    return model.head(params, states(model, params, X)[-1])


def accuracy(model, params, X, y):
    """Fraction of two-class predictions ``s > 0`` (as ``ResNetODE.predict``) equal to y, by :func:`logits`."""
    return float(np.mean((logits(model, params, X)[:, 0] > 0) == np.asarray(y)))


def energy_drift(model, params, X):
    """``{drift_sum, drift_max, energy_mean, dH}`` of the module docstring (``dH`` (N, n))."""
    xs = states(model, params, X)
    dH = np.stack([model.F.energy(xs[k + 1], params["K"][k], params["b"][k])
                   - model.F.energy(xs[k], params["K"][k], params["b"][k]) for k in range(model.layers)])
    H = np.stack([model.F.energy(xs[k], params["K"][k], params["b"][k]) for k in range(model.layers)])
    return {"drift_sum": float(np.abs(dH).sum(axis=0).max()), "drift_max": float(np.abs(dH).max()),
            "energy_mean": float(H.mean()), "dH": dH}


def reversibility_error(model, params, X):
    """``max_i ‖x̂_0 − x_0‖ / max_i ‖x_0‖``: x_N by the network, then ``x̂_k = Ψ_{−h}(x̂_{k+1}; θ_k)``."""
    xs = states(model, params, X)
    x = xs[-1]
    for k in reversed(range(model.layers)):
        x = layer_step(model.F, model.integrator, x, params["K"][k], params["b"][k], -model.h)
    return float(np.linalg.norm(x - xs[0], axis=1).max() / np.linalg.norm(xs[0], axis=1).max())


def spiral_data(points=100, seed=0, noise=0.03, turns=1.5):
    """Train and held-out sets: ``spirals(points, turns, noise, seed)`` and the same with ``seed + 1000``."""
    from ocdl.data import spirals
    return spirals(points, turns, noise, seed=seed), spirals(points, turns, noise, seed=seed + 1000)


def spiral_study(methods=METHODS, points=50, layers=10, T=2.5, width=6, iterations=100, seed=0,
                 alpha=3e-3, lr=0.1):
    """Train the hamiltonian classifier with every method by pmp-adam (same data, size, iterations,
    seed; range normalisation) and measure it. Returns one dict per method: ``method, order,
    train_accuracy, test_accuracy, loss, nit, failed, wall_time_s, time_per_iteration_s, drift_sum,
    drift_max, energy_mean, reversibility, model, params``. A run that stops with a SolverError
    (the implicit stage solve not converging once the weights have grown) is measured at its last
    good iterate, with the message in ``failed`` (None otherwise)."""
    from ocdl.errors import SolverError
    from ocdl.solvers import make_model, train
    (X, y), (Xt, yt) = spiral_data(points, seed)
    rows = []
    for method in methods:
        model = make_model(X, y, field="hamiltonian", integrator=method, layers=layers, T=T, width=width,
                           alpha=alpha, normalize="range")
        t0 = time.perf_counter()
        failed = None
        try:
            res = train(X, y, solver="pmp-adam", model=model, iterations=iterations, seed=seed, lr=lr)
        except SolverError as err:          # e.g. the implicit stage solve gives up: keep the last iterate
            res, failed = err.result, str(err)
        wall = time.perf_counter() - t0
        drift = energy_drift(model, res.x, X)
        rows.append({"method": method, "order": ORDERS.get(method), "loss": float(res.fun), "nit": int(res.nit),
                     "failed": failed,
                     "train_accuracy": accuracy(model, res.x, X, y), "test_accuracy": accuracy(model, res.x, Xt, yt),
                     "wall_time_s": wall, "time_per_iteration_s": wall / max(res.nit, 1),
                     "drift_sum": drift["drift_sum"], "drift_max": drift["drift_max"],
                     "energy_mean": drift["energy_mean"], "reversibility": reversibility_error(model, res.x, X),
                     "model": model, "params": res.x})
    return rows


def gradient_timing(method="gauss2", points=50, layers=10, T=2.5, width=6, iterations=20, repeats=3, seed=0):
    """Per-iteration time of ``pmp-adam`` (exact costate sweep) and ``adam`` (torch autograd through
    the same forward) on the same network and data, ``repeats`` interleaved runs of ``iterations``
    Adam steps each after one warm-up run per solver (torch imported, caches filled); per-iteration
    time = the optimiser's ``wall_time_s / nit``. Returns ``{"pmp-adam": [...], "adam": [...],
    "ratio": median pmp-adam / median adam}``."""
    from ocdl.solvers import make_model, train
    (X, y), _ = spiral_data(points, seed)
    model = make_model(X, y, field="hamiltonian", integrator=method, layers=layers, T=T, width=width,
                       alpha=3e-3, normalize="range")
    out = {"pmp-adam": [], "adam": []}
    for rep in range(repeats + 1):
        for solver in out:
            res = train(X, y, solver=solver, model=model, iterations=iterations if rep else 2, seed=seed)
            if rep:
                out[solver].append(res.wall_time_s / res.nit)
    out["ratio"] = float(np.median(out["pmp-adam"]) / np.median(out["adam"]))
    return out


def plot_study(rows, X, y, title=None, grid=70):
    """Figure: the decision regions of every method's classifier on the training points (top row),
    and bars of held-out accuracy, time per iteration, energy drift and reversibility error."""
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec
    n = len(rows)
    fig = plt.figure(figsize=(3.2 * max(n, 4), 6.6))
    gs = GridSpec(2, max(n, 4), figure=fig, height_ratios=[1.0, 0.7], hspace=0.3, wspace=0.3)
    lo, hi = X.min(axis=0) - 0.1, X.max(axis=0) + 0.1
    G1, G2 = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
    P = np.stack([G1.ravel(), G2.ravel()], axis=1)
    colors = np.array(["tab:blue", "tab:red"])
    for j, r in enumerate(rows):
        ax = fig.add_subplot(gs[0, j])
        s = logits(r["model"], r["params"], P)[:, 0]
        Z = (1.0 / (1.0 + np.exp(-np.clip(s, -50, 50)))).reshape(G1.shape)
        ax.contourf(G1, G2, Z, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.5)
        ax.contour(G1, G2, Z, levels=[0.5], colors="k", linewidths=1.0)
        ax.scatter(X[:, 0], X[:, 1], c=colors[np.asarray(y, dtype=int)], s=6, edgecolors="white", linewidths=0.2)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{r['method']} (order {r['order']})\nheld-out {100 * r['test_accuracy']:.1f} %", fontsize=10)
    names = [r["method"].replace("implicit_midpoint", "midpoint") for r in rows]
    bars = [("held-out accuracy (%)", [100 * r["test_accuracy"] for r in rows], None),
            ("time per iteration (ms)", [1e3 * r["time_per_iteration_s"] for r in rows], "log"),
            ("energy drift\nmax over samples of Σ_k |ΔH_k|", [r["drift_sum"] for r in rows], "log"),
            ("energy drift\nmax over layers, samples |ΔH_k|", [r["drift_max"] for r in rows], "log"),
            ("reversibility error\nmax‖x̂₀ − x₀‖ / max‖x₀‖", [max(r["reversibility"], 1e-17) for r in rows], "rev")]
    for j, (label, vals, scale) in enumerate(bars[:max(n, 4)]):
        ax = fig.add_subplot(gs[1, j])
        ax.barh(range(n), vals, color="tab:gray")
        ax.set_yticks(range(n))
        ax.set_yticklabels(names if j == 0 else [""] * n, fontsize=9)
        ax.invert_yaxis()
        ax.set_title(label, fontsize=9)
        if scale is None:
            ax.set_xlim(min(90.0, min(vals) - 2), 100.0)
        else:
            ax.set_xscale("log")
            lo_, hi_ = np.log10(min(vals)), np.log10(max(vals))
            ax.set_xlim(10 ** np.floor(lo_ - 0.3), 10 ** np.ceil(hi_ + 0.7))
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.3g}", ha="left", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
