"""Pictures: the learned metric against the true one, and the data with the learned decision
boundary (the curves ``|F| = ε`` of the learned network in the boundary plane)."""
import numpy as np
import torch

from ocdl.holography.network import DTYPE


def decision_field(problem, x, n=240, box=((0.0, 1.5), (-0.2, 0.2)), m2=None, lam=None):
    """``|F|`` of the learned network on an ``n × n`` grid of the boundary box."""
    P, Q = np.meshgrid(np.linspace(*box[0], n), np.linspace(*box[1], n))
    X = np.column_stack([P.ravel(), Q.ravel()])
    theta = problem.theta(x)
    if m2 is not None:
        theta = theta.clone()
        theta[problem.layers.N] = m2
    if lam is not None:
        theta = theta.clone()
        theta[problem.layers.N + 1] = lam
    with torch.no_grad():
        F = problem.net.horizon_value(torch.as_tensor(theta, dtype=DTYPE), X)
    return P, Q, np.abs(F.numpy()).reshape(P.shape)


def plot_learn(path, problem, summary, h_true=None, title=""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ocdl.plotting import save_figure
    x = np.asarray(summary["x"] if "x" in summary else problem.x0(summary["metric"]["h"]), float)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    eta = np.asarray(summary["metric"]["eta"])
    a.plot(eta, summary["metric"]["h"], "o-", label="learned h(η_k)")
    if h_true is not None:
        a.plot(eta, h_true, "k--", lw=1, label="true h(η_k)")
        a.axvspan(problem.layers.eta_fin, 0.2, color="0.9", lw=0)
    if "h_initial" in summary:
        a.plot(eta, summary["h_initial"], ":", color="0.5", label="initial")
    a.set_xlabel("η (boundary at right, horizon at left)")
    a.set_ylabel("h(η)")
    err = summary.get("metric_rel_l2_error")
    a.set_title("metric" + (f": rel. L2 error {err:.1%} (η ≥ 0.2)" if err is not None else ""))
    a.legend(fontsize=8)
    X, lab = problem.X, problem.labels
    b.scatter(X[lab == 0, 0], X[lab == 0, 1], s=2, c="tab:green", alpha=0.4, label="negative (0)")
    b.scatter(X[lab == 1, 0], X[lab == 1, 1], s=3, c="tab:blue", label="positive (1, regular)")
    single = problem.m2_data is None and problem.lam_data is None
    if single:
        P, Q, F = decision_field(problem, x)
        b.contour(P, Q, F, levels=[problem.net.output.eps], colors="tab:red", linewidths=1)
        b.plot([], [], color="tab:red", label="learned |F| = ε")
    b.set_xlabel("φ(η_ini)")
    b.set_ylabel("π(η_ini)")
    acc = summary.get("test_accuracy", summary.get("train_accuracy"))
    b.set_title(f"data and learned decision boundary (accuracy {acc:.1%})")
    b.legend(fontsize=8, loc="upper left")
    fig.suptitle(title or f"AdS/DL: {summary['solver']}, {summary['integrator']}, N={summary['layers']}")
    fig.tight_layout()
    save_figure(fig, path)
