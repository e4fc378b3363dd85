"""Pictures of a trained ResNet-ODE classifier (matplotlib, Agg).

``plot_classifier(model, params, X, y)`` draws three panels:

1. *input space* — decision regions of the trained network over a grid, with the data; for more
   than two features the grid is the plane of the first two features with every other feature
   held at its mean, and the title says so;
2. *hidden-state trajectories* — every sample's path ``x_0 → x_N`` through the layers,
   projected on the head direction W (horizontal) and the leading principal axis of the hidden
   states orthogonal to W (vertical; for more than two classes: the two leading principal
   axes), coloured by class: how the flow pulls the interleaved classes apart;
3. *output layer* — the final states in coordinates (logit ``s = W x_N + μ``, leading principal
   axis orthogonal to W); the title counts the points on the wrong side of ``s = 0`` (more than two
   classes: the logits' two principal axes, and the count of misclassified points).

Every panel has a class legend (``classes``: the original labels, default 0..C−1).
"""
import numpy as np

from ocdl.plotting import plt

COLORS = np.array(["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"])


def _proj(Z, k=2):
    Z = Z - Z.mean(axis=0)
    _, _, Vt = np.linalg.svd(Z, full_matrices=False)
    V = Vt[:k].T
    if V.shape[1] < k:
        V = np.pad(V, ((0, 0), (0, k - V.shape[1])))
    return V


def _legend(ax, classes, present):
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], ls="", marker="o", color=COLORS[c % len(COLORS)], label=str(classes[c]))
               for c in present]
    ax.legend(handles=handles, title="class", fontsize=8, title_fontsize=8, loc="best", framealpha=0.7)


def plot_classifier(model, params, X, y, title=None, max_paths=300, grid=200, classes=None, features=None):
    """Three-panel figure of ``model`` with ``params`` on inputs X (n, d_in) and class indices y
    (see the module docstring); ``classes[c]`` names class c in the legends, ``features`` the input
    columns on the axes (default x1, x2, ...). Returns the matplotlib Figure."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(int)
    classes = list(range(model.n_classes)) if classes is None else list(classes)
    features = [f"x{j + 1}" for j in range(X.shape[1])] if features is None else list(features)
    present = np.unique(y)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    # 1. decision regions (first two input coordinates; others held at their mean)
    ax = axes[0]
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.1 * (hi - lo) + 1e-9
    g1 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], grid)
    g2 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], grid) if X.shape[1] > 1 else np.array([0.0])
    G1, G2 = np.meshgrid(g1, g2)
    P = np.tile(X.mean(axis=0), (G1.size, 1))
    P[:, 0] = G1.ravel()
    if X.shape[1] > 1:
        P[:, 1] = G2.ravel()
    s = model.logits(params, P)
    if s.shape[1] == 1:
        Z = 1.0 / (1.0 + np.exp(-np.clip(s[:, 0], -50, 50)))
        ax.contourf(G1, G2, Z.reshape(G1.shape), levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.5)
        ax.contour(G1, G2, Z.reshape(G1.shape), levels=[0.5], colors="k", linewidths=1.2)
    else:
        Z = np.argmax(s, axis=1).reshape(G1.shape)
        ax.contourf(G1, G2, Z, levels=np.arange(model.n_classes + 1) - 0.5,
                    colors=list(COLORS[:model.n_classes]), alpha=0.3)
    ax.scatter(X[:, 0], X[:, 1] if X.shape[1] > 1 else np.zeros(len(X)), c=COLORS[y % len(COLORS)],
               s=10, edgecolors="white", linewidths=0.3)
    acc = model.accuracy(params, X, y)
    if X.shape[1] > 2:
        ax.set_title(f"decision regions: {features[0]}–{features[1]} slice, other {X.shape[1] - 2} "
                     f"features at their means\n(accuracy on all {X.shape[1]} features {100 * acc:.1f} %)",
                     fontsize=10)
    else:
        ax.set_title(f"decision regions (accuracy {100 * acc:.1f} %)")
    ax.set_xlabel(features[0])
    ax.set_ylabel(features[1] if X.shape[1] > 1 else "(one feature)")
    span = hi[:2] - lo[:2]
    if X.shape[1] > 1 and np.max(span) <= 3 * np.min(span):   # comparable scales: keep the shapes
        ax.set_aspect("equal", adjustable="box")
    _legend(ax, classes, present)
    # 2. hidden-state trajectories
    states = model.forward(params, X)                  # (N+1, n, d)
    N1, n, d = states.shape
    flat = states.reshape(-1, d)
    if params["W"].shape[0] == 1:                      # axes: head direction W, then the leading
        w = params["W"][0] / (np.linalg.norm(params["W"][0]) + 1e-300)   # principal axis orthogonal to W
        R = flat - np.outer(flat @ w, w)
        V = np.stack([w, _proj(R, 1)[:, 0]], axis=1)
    else:
        V = _proj(flat)
    mean = flat.mean(axis=0)
    Q = (states - mean) @ V                            # (N+1, n, 2)
    ax = axes[1]
    idx = np.random.default_rng(0).permutation(n)[:max_paths]
    for c in np.unique(y):
        sel = idx[y[idx] == c]
        segs = np.transpose(Q[:, sel, :], (1, 0, 2))
        for path in segs:
            ax.plot(path[:, 0], path[:, 1], color=COLORS[c % len(COLORS)], lw=0.4, alpha=0.35)
        ax.scatter(Q[0, sel, 0], Q[0, sel, 1], s=5, color=COLORS[c % len(COLORS)], alpha=0.6, marker="o")
        ax.scatter(Q[-1, sel, 0], Q[-1, sel, 1], s=14, color=COLORS[c % len(COLORS)], marker="x")
    ax.set_title(f"hidden states through {model.layers} layers (d = {d})\no start, x end")
    _legend(ax, classes, present)
    ax.set_xlabel("head direction W" if params["W"].shape[0] == 1 else "principal axis 1")
    ax.set_ylabel("principal axis orthogonal to W" if params["W"].shape[0] == 1 else "principal axis 2")
    # 3. output layer
    ax = axes[2]
    xN = states[-1]
    sN = model.head(params, xN)
    wrong = int(np.sum(model.predict(params, X) != y))
    if sN.shape[1] == 1:
        w = params["W"][0] / (np.linalg.norm(params["W"][0]) + 1e-300)
        R = xN - np.outer(xN @ w, w)
        u = _proj(R, 1)[:, 0]
        ax.scatter(sN[:, 0], R @ u, c=COLORS[y % len(COLORS)], s=10)
        ax.axvline(0.0, color="k", lw=1.2)
        ax.set_xlabel("logit s = W x_N + μ  (decision at s = 0)")
        ax.set_ylabel("orthogonal principal axis")
        ax.set_title("output layer: every point on its class's side of s = 0" if wrong == 0 else
                     f"output layer: {wrong} of {len(y)} points on the wrong side of s = 0")
    else:
        V2 = _proj(sN)
        S2 = (sN - sN.mean(axis=0)) @ V2
        ax.scatter(S2[:, 0], S2[:, 1], c=COLORS[y % len(COLORS)], s=10)
        ax.set_xlabel("logits: principal axis 1")
        ax.set_ylabel("logits: principal axis 2")
        ax.set_title("output logits: every point classified correctly" if wrong == 0 else
                     f"output logits: {wrong} of {len(y)} points misclassified")
    _legend(ax, classes, present)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
