"""Learn a drag law F(v) from 50 (v0, vT) pairs, as in Song–Oh et al. §3, by three solvers.

Data: v' = g − F(v) integrated by solve_ivp (DOP853, rtol 1e-10) from v0 evenly spaced in
[0, 40], T = 1, g = 10. Network: 20 RK4 layers, F a table on integer speeds (grid step 1).
Writes examples/forces_drag.png: (a) data and network outputs, (b) the learned force at several
Adam iterations and the Gauss–Newton result against the truth, (c) cost against wall time,
(d) the λ rule: held-out data error and force error against λ.

Run from the repository root:  python examples/forces_drag.py [--out PNG] [--adam-iterations N]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ocdl.expr import compile_expr  # noqa: E402
from ocdl.forces.learn import learn_table, rel_l2  # noqa: E402
from ocdl.forces.problems import DragProblem  # noqa: E402
from ocdl.forces.simulate import simulate_drag  # noqa: E402
from ocdl.forces.solvers import choose_lambda  # noqa: E402
from ocdl.plotting import plt, save_figure  # noqa: E402

LAW = "0.008*v**2 + 2*v*exp(-(v-20)**2/20)/20"   # quadratic drag with a bump near v = 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "forces_drag.png"))
    ap.add_argument("--adam-iterations", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    F = compile_expr(LAW, ("v",))
    v0, vT = simulate_drag(F, T=1.0, g=10.0, samples=50, vmin=0.0, vmax=40.0)
    make = lambda: DragProblem(v0, vT, T=1.0, g=10.0, steps=20, method="rk4")  # noqa: E731
    runs = {}
    for solver, kw in (("newton", {}), ("pmp-lbfgs", {"iterations": 400, "continuation": False}),
                       ("adam", {"iterations": args.adam_iterations, "lr": 0.5})):
        p = make()
        res, s = learn_table(p, solver, 1e-6, truth=F, **kw)
        runs[solver] = (p, res, s)
        print(f"{solver:10s} rel. L2 error {s['rel_l2_error']:.3%}  iterations {s['iterations']:5d}  "
              f"{s['wall_time_s']:.2f}s  final loss {s['final_loss']:.3e}")
    p = make()
    t0 = time.perf_counter()
    lam, sweep = choose_lambda(p, "newton", candidates=[10.0 ** k for k in range(0, -9, -1)])
    print(f"lambda auto: {lam:g} ({time.perf_counter() - t0:.1f}s)")

    fig, ax = plt.subplots(1, 4, figsize=(21, 4.6))
    pn, rn, sn = runs["newton"]
    pa, ra, _ = runs["adam"]
    ax[0].plot(v0, vT, "o", color="0.6", ms=8, label="data (solve_ivp)")
    for it, th in [ra.snapshots[1], ra.snapshots[len(ra.snapshots) // 2], ra.snapshots[-1]]:
        with torch.no_grad():
            out = pa.final_state(torch.as_tensor(th))[:, 0].numpy()
        ax[0].plot(v0, out, ".", label=f"Adam, iteration {it}")
    ax[0].set(xlabel="v0", ylabel="vT", title="(a) data and network outputs")
    ax[0].legend(fontsize=8)
    nodes = pn.grid.nodes
    fine = np.linspace(0, 40, 400)
    ax[1].plot(fine, F(fine), color="0.5", lw=6, alpha=0.4, label="truth")
    cmap = plt.get_cmap("autumn")
    snaps = [s for s in ra.snapshots if s[0] in (10, 100, 300, 1000)] + [ra.snapshots[-1]]
    for k, (it, th) in enumerate(snaps):
        ax[1].plot(nodes, th, color=cmap(k / len(snaps)), lw=1,
                   label=f"Adam it. {it} ({rel_l2(pa.profile(th)[1], F(pa.profile(th)[0])):.1%})")
    ax[1].plot(nodes, rn.x, "k--", lw=1.5, label=f"Gauss–Newton ({sn['rel_l2_error']:.2%}, {sn['wall_time_s']:.1f}s)")
    ax[1].set(xlabel="v", ylabel="F(v)", title="(b) learned drag force", ylim=(-2, 20))
    ax[1].legend(fontsize=8)
    for solver, (_, res, s) in runs.items():
        h = res.history
        ax[2].semilogy([q["time_s"] for q in h], [q["loss"] for q in h], label=f"{solver} ({s['iterations']} it.)")
    ax[2].set(xlabel="wall time [s]", ylabel="cost J", title="(c) cost against time")
    ax[2].legend(fontsize=8)
    lams = [s["lambda"] for s in sweep]
    ax[3].loglog(lams, [s["heldout_data_loss"] for s in sweep], "o-", label="held-out data error")
    ax[3].loglog(lams, [s["train_data_loss"] for s in sweep], "s--", label="training data error")
    errs = [rel_l2(p.profile(s["table"])[1], F(p.profile(s["table"])[0])) for s in sweep]
    ax[3].loglog(lams, errs, "^:", label="rel. L2 force error")
    ax[3].axvline(lam, color="k", lw=0.8)
    ax[3].set(xlabel="λ", title=f"(d) λ rule: picks λ = {lam:g}")
    ax[3].legend(fontsize=8)
    fig.suptitle(f"drag F(v) = {LAW}: 50 pairs, T = 1, g = 10, 20 RK4 layers, grid step 1")
    save_figure(fig, args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
