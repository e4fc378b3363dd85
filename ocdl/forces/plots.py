"""Figures in the style of the paper: data fit, the force at several iterations, the truth."""
import numpy as np
import torch

from ocdl.plotting import plt, save_figure


def _force_panel(ax, problem, res, truth, variable):
    lo, hi = problem.covered
    nodes = problem.grid.nodes
    snaps = res.snapshots
    pick = snaps if len(snaps) <= 6 else [snaps[i] for i in np.linspace(0, len(snaps) - 1, 6).astype(int)]
    cmap = plt.get_cmap("viridis")
    for k, (it, th) in enumerate(pick):
        ax.plot(nodes, th, "-", color=cmap(k / max(len(pick) - 1, 1)), lw=1.2,
                alpha=0.5 if k < len(pick) - 1 else 1.0, label=f"iteration {it}")
    if truth is not None:
        fine = np.linspace(nodes[0], nodes[-1], 400)
        ax.plot(fine, np.broadcast_to(truth(fine), fine.shape), color="0.4", lw=4, alpha=0.35, label="truth")
    ax.axvspan(nodes[0], lo, color="0.9")
    ax.axvspan(hi, nodes[-1], color="0.9")
    ax.set_xlabel(variable)
    ax.set_ylabel(f"F({variable})")
    ax.set_title("learned force (grey bands: not covered by data)")
    ax.legend(fontsize=7)


def _history_panel(ax, res):
    it = [h["iteration"] for h in res.history]
    ax.semilogy(it, [h["loss"] for h in res.history], label="cost J")
    dl = [(h["iteration"], h["data_loss"]) for h in res.history if h.get("data_loss") is not None]
    if dl and len(dl) > 1:
        ax.semilogy(*zip(*dl), label="data part")
    ax.set_xlabel("iteration")
    ax.set_title("training")
    ax.legend(fontsize=7)


def plot_drag(path, problem, res, truth=None, title=""):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(problem.v0, problem.vT, "o", color="0.6", ms=7, label="data (solve_ivp)")
    snaps = res.snapshots
    pick = [snaps[0], snaps[len(snaps) // 2], snaps[-1]] if len(snaps) > 2 else snaps
    for it, th in pick:
        with torch.no_grad():
            vT = problem.final_state(torch.as_tensor(th, dtype=torch.float64))[:, 0].numpy()
        ax.plot(problem.v0, vT, ".", ms=5, label=f"network, iteration {it}")
    ax.set_xlabel("v0")
    ax.set_ylabel("vT")
    ax.set_title("data fit")
    ax.legend(fontsize=7)
    _force_panel(axes[1], problem, res, truth, "v")
    _history_panel(axes[2], res)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_position(path, problem, res, truth=None, title=""):
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    out = problem.outputs(res.x)
    pos, mpos = problem.pos, out["kind"] > 0.5
    ax = axes[0]
    ax.plot(problem.x0[pos & ~mpos], problem.v0[pos & ~mpos], ".", color="C0", ms=3, label="positive only")
    ax.plot(problem.x0[mpos & ~pos], problem.v0[mpos & ~pos], ".", color="C1", ms=3, label="model-positive only")
    ax.plot(problem.x0[pos & mpos], problem.v0[pos & mpos], ".", color="C2", ms=3, label="both")
    ax.set_xlabel("x0")
    ax.set_ylabel("v0")
    ax.set_title(f"kinds after learning ({np.mean(pos == mpos):.1%} agree)")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(problem.x0[pos], problem.vT[pos], ".", color="C0", ms=3, label="data vT")
    ax.plot(problem.x0[pos], out["vT"][pos], ".", color="C2", ms=2, label="network vT")
    ax.set_xlabel("x0")
    ax.set_ylabel("vT")
    ax.set_title("final speed of positives")
    ax.legend(fontsize=7)
    _force_panel(axes[2], problem, res, truth, "x")
    _history_panel(axes[3], res)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_oscillator(path, problem, results, truth=None, title=""):
    """``results``: {label: OptimizeResult of solve_oscillator}; draws data, each fitted trajectory,
    and the training curves."""
    from ocdl.forces.oscillator import OscillatorProblem
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    ax = axes[0]
    ax.plot(problem.t, problem.x, "o", color="0.5", label="noisy data")
    tt = np.linspace(0, problem.tmax, 600)
    for k, (label, e) in enumerate(results.items()):
        dense = OscillatorProblem(tt, np.zeros_like(tt), e["x0"], e["v0"], steps=max(problem.steps, 600))
        with torch.no_grad():
            xs = dense.predict_torch(torch.tensor([e["gamma"], e["omega0"]], dtype=torch.float64)).numpy()
        ax.plot(tt, xs, color=f"C{k}", lw=1.5,
                label=f"{label}: γ={e['gamma']:.4f}, ω0={e['omega0']:.4f} ({e.wall_time_s:.1f}s)")
        if "pinn_curve" in e:
            ax.plot(e["pinn_curve"]["t"], e["pinn_curve"]["x"], "--", color=f"C{k}", lw=1, label=f"{label}: MLP x(t)")
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    ax.set_title("damped oscillator: data and fits")
    ax.legend(fontsize=7)
    ax = axes[1]
    for k, (label, res) in enumerate(results.items()):
        h = res.history
        ax.semilogy([q["iteration"] for q in h], [q["loss"] for q in h], color=f"C{k}", label=label)
    ax.set_xlabel("iteration")
    ax.set_title("training loss")
    ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_potential(path, problem, results, truth=None, title=""):
    """``results``: {label: (OptimizeResult, summary) of solve_potential}; draws the data and each
    fitted network trajectory, the learned V(x) against the truth (grey: outside the visited
    range), and the training curves."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.4))
    ax = axes[0]
    ax.plot(problem.t, problem.x, "o", color="0.6", ms=3, label="data")
    for k, (label, (res, _)) in enumerate(results.items()):
        with torch.no_grad():
            xs = problem.predict_torch(torch.as_tensor(res.x, dtype=torch.float64)).numpy()
        ax.plot(problem.t, xs, color=f"C{k}", lw=1.2, label=f"{label}: EOM network")
        if "pinn_curve" in res:
            ax.plot(res["pinn_curve"]["t"], res["pinn_curve"]["x"], "--", color=f"C{k}", lw=1,
                    label=f"{label}: MLP x(t)")
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    ax.set_title("trajectory")
    ax.legend(fontsize=7)
    ax = axes[1]
    nodes = problem.grid.nodes
    for k, (label, (res, s)) in enumerate(results.items()):
        err = f" ({s['rel_l2_error']:.2%})" if "rel_l2_error" in s else ""
        ax.plot(nodes, res.x[:problem.m], "o-", color=f"C{k}", ms=3, lw=1, label=f"{label}{err}")
    if truth is not None:
        fine = np.linspace(nodes[0], nodes[-1], 400)
        ax.plot(fine, np.broadcast_to(truth(fine), fine.shape), color="0.4", lw=4, alpha=0.35, label="truth")
    lo, hi = next(iter(results.values()))[1]["visited_range"]
    ax.axvspan(nodes[0], lo, color="0.9")
    ax.axvspan(hi, nodes[-1], color="0.9")
    ax.set_xlabel("x")
    ax.set_ylabel("V(x)")
    ax.set_title("learned potential (grey: not visited)")
    ax.legend(fontsize=7)
    ax = axes[2]
    for k, (label, (res, _)) in enumerate(results.items()):
        h = res.history
        ax.semilogy([q["time_s"] for q in h], [q["loss"] for q in h], color=f"C{k}", label=label)
    ax.set_xlabel("wall time (s)")
    ax.set_title("training cost")
    ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
