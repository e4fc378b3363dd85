"""Learn a non-monotone position-dependent force F(x) from 2,000 shots (half positive), as in
Song–Oh et al. §4, with a Störmer–Verlet network and an Euler network of equal depth.

Data: x' = v, v' = F(x) by solve_ivp (DOP853, rtol 1e-10) from (x0, v0) uniform in
[0, 10] × [−5, 5]; T = 2; positive when |x(T) − 5| < 0.5 (then vT is recorded). Network:
20 layers, F a table with grid step 0.5; Gauss–Newton with λ-continuation (1e-1 → 1e-3 → 1e-5).
Writes examples/forces_position.png: (a) the data, (b) vT of the positives, data vs network,
(c) the learned force of both networks against the truth, with Verlet iterates, (d) cost.

Run from the repository root:  python examples/forces_position.py [--out PNG] [--steps N]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ocdl.expr import compile_expr  # noqa: E402
from ocdl.forces.learn import learn_table  # noqa: E402
from ocdl.forces.problems import PositionProblem  # noqa: E402
from ocdl.forces.simulate import simulate_position  # noqa: E402
from ocdl.plotting import plt, save_figure  # noqa: E402

LAW = "2*sin(x) - 0.3*(x-5)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "forces_position.png"))
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    F = compile_expr(LAW, ("x",))
    x0, v0, kind, vT = simulate_position(F, T=2.0, target=5.0, eps=0.5, samples=2000)
    runs = {}
    for method in ("verlet", "euler"):
        p = PositionProblem(x0, v0, kind, vT, T=2.0, target=5.0, eps=0.5, grid_step=0.5, steps=args.steps,
                            method=method)
        res, s = learn_table(p, "newton", 1e-5, truth=F, continuation=True)
        runs[method] = (p, res, s)
        print(f"{method:7s} N={args.steps}: rel. L2 error {s['rel_l2_error']:.2%} on x ∈ "
              f"[{s['covered_range'][0]:.2f}, {s['covered_range'][1]:.2f}], {s['iterations']} Gauss–Newton "
              f"iterations, {s['wall_time_s']:.1f}s")
    pv, rv, sv = runs["verlet"]
    pos = kind == 1
    fig, ax = plt.subplots(1, 4, figsize=(21, 4.6))
    ax[0].plot(x0[~pos], v0[~pos], ".", color="C1", ms=2, label="negative (kind 0)")
    ax[0].plot(x0[pos], v0[pos], ".", color="C0", ms=2, label="positive (kind 1)")
    ax[0].set(xlabel="x0", ylabel="v0", title="(a) data: 1,000 positive, 1,000 negative")
    ax[0].legend(fontsize=8, loc="upper right")
    out = pv.outputs(rv.x)
    ax[1].plot(x0[pos], vT[pos], ".", color="C0", ms=3, label="data vT")
    ax[1].plot(x0[pos], out["vT"][pos], ".", color="C2", ms=2, label="Verlet network vT")
    agree = np.mean((out["kind"] > 0.5) == pos)
    ax[1].set(xlabel="x0", ylabel="vT", title=f"(b) positives' final speed; kinds agree {agree:.1%}")
    ax[1].legend(fontsize=8)
    nodes = pv.grid.nodes
    fine = np.linspace(nodes[0], nodes[-1], 400)
    ax[2].plot(fine, F(fine), color="0.5", lw=6, alpha=0.4, label="truth")
    for _, th in [s for s in rv.snapshots if s[0] in (1, 3, 10)]:
        ax[2].plot(nodes, th, color="C0", lw=0.8, alpha=0.35)
    ax[2].plot(nodes, rv.x, "C0-", lw=1.8, label=f"Verlet, N={args.steps} ({sv['rel_l2_error']:.1%})")
    pe, re_, se = runs["euler"]
    ax[2].plot(nodes, re_.x, "C3--", lw=1.5, label=f"Euler, N={args.steps} ({se['rel_l2_error']:.1%})")
    lo, hi = sv["covered_range"]
    ax[2].axvspan(nodes[0], lo, color="0.9")
    ax[2].axvspan(hi, nodes[-1], color="0.9")
    ax[2].set(xlabel="x", ylabel="F(x)", title="(c) learned force (faint: Verlet iterates)", ylim=(-4, 5))
    ax[2].legend(fontsize=8)
    for method, (_, res, _) in runs.items():
        ax[3].semilogy([q["iteration"] for q in res.history], [q["loss"] for q in res.history], label=method)
    ax[3].set(xlabel="Gauss–Newton iteration (λ path 1e-1 → 1e-3 → 1e-5)", ylabel="cost J",
              title="(d) cost (drops at each λ switch)")
    ax[3].legend(fontsize=8)
    fig.suptitle(f"position: F(x) = {LAW}; T = 2, x* = 5, ε = 0.5, grid step 0.5")
    save_figure(fig, args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
