"""Pictures of a trained ResNet-ODE classifier (matplotlib, Agg).

``plot_classifier(model, params, X, y)`` draws three panels:

1. *input space* — decision regions of the trained network over a grid, with the data;
2. *hidden-state trajectories* — every sample's path ``x_0 → x_N`` through the layers,
   projected on the head direction W (horizontal) and the leading principal axis of the hidden
   states orthogonal to W (vertical; for more than two classes: the two leading principal
   axes), coloured by class: how the flow pulls the interleaved classes apart;
3. *output layer* — the final states in coordinates (logit ``s = W x_N + μ``, leading principal
   axis orthogonal to W): the classes end linearly separable, on either side of ``s = 0``.
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


def plot_classifier(model, params, X, y, title=None, max_paths=300, grid=200):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(int)
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
    ax.set_title(f"decision regions (accuracy {100 * acc:.1f} %)")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_aspect("equal", adjustable="box")
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
    ax.set_xlabel("head direction W" if params["W"].shape[0] == 1 else "principal axis 1")
    ax.set_ylabel("principal axis orthogonal to W" if params["W"].shape[0] == 1 else "principal axis 2")
    # 3. output layer
    ax = axes[2]
    xN = states[-1]
    sN = model.head(params, xN)
    if sN.shape[1] == 1:
        w = params["W"][0] / (np.linalg.norm(params["W"][0]) + 1e-300)
        R = xN - np.outer(xN @ w, w)
        u = _proj(R, 1)[:, 0]
        ax.scatter(sN[:, 0], R @ u, c=COLORS[y % len(COLORS)], s=10)
        ax.axvline(0.0, color="k", lw=1.2)
        ax.set_xlabel("logit s = W x_N + μ  (decision at s = 0)")
        ax.set_ylabel("orthogonal principal axis")
    else:
        V2 = _proj(sN)
        S2 = (sN - sN.mean(axis=0)) @ V2
        ax.scatter(S2[:, 0], S2[:, 1], c=COLORS[y % len(COLORS)], s=10)
        ax.set_xlabel("logits: principal axis 1")
        ax.set_ylabel("logits: principal axis 2")
    ax.set_title("output layer: linearly separable")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
