"""Gradient accuracy and time against depth, in one process (a quick look; the full
measurement with memory is ``ocdl bench gradient``, see BENCHMARKS.md).

For the hamiltonian field (width 8, 128 two-spiral points, float64) and depths 8…512:
relative error of each method's gradient against float64 autograd through the same discrete
network, its time, and the reversible sweep's state-reconstruction error. Writes
examples/bench_gradient.png. Runs in ~15 s on 2 cores.

    OMP_NUM_THREADS=1 python examples/bench_gradient.py
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ocdl.bench.gradient import METHODS, integrator_of, prepare, reference_gradient  # noqa: E402
from ocdl.bench.problem import Problem  # noqa: E402
from ocdl.plotting import plt, save_figure  # noqa: E402

DEPTHS = [8, 32, 128, 512]


OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_gradient.png")


def main(out=OUT):
    import torch
    torch.set_num_threads(1)
    err = {m: [] for m in METHODS}
    secs = {m: [] for m in METHODS}
    recon = []
    for depth in DEPTHS:
        for m in METHODS:
            pr = Problem("hamiltonian", depth, samples=128, width=8, integrator=integrator_of(m))
            _, g_ref = reference_gradient(pr)
            _, vg = prepare(m, pr)
            vg()  # warm-up
            t0 = time.perf_counter()
            _, g, info = vg()
            secs[m].append(time.perf_counter() - t0)
            err[m].append(np.linalg.norm(g - g_ref) / np.linalg.norm(g_ref))
            if "reconstruction_error" in info:
                recon.append(info["reconstruction_error"])
        print(f"depth {depth:4d}: " + "  ".join(f"{m} {err[m][-1]:.1e}" for m in METHODS))
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, m in enumerate(METHODS):
        ax[0].loglog(DEPTHS, np.maximum(err[m], 1e-17), "o-", color=f"C{i}", label=m)
        ax[1].loglog(DEPTHS, secs[m], "o-", color=f"C{i}", label=m)
    ax[0].loglog(DEPTHS, np.maximum(recon, 1e-17), "k:", label="reversible: state reconstruction error")
    ax[0].set_title("relative gradient error vs float64 autograd\n"
                    "(autograd and torchdiffeq-direct: exactly 0, drawn at 1e-17)", fontsize=9)
    ax[1].set_title("value-and-gradient time (one call, in-process)", fontsize=9)
    for a in ax:
        a.set_xlabel("depth N")
        a.grid(True, which="both", alpha=0.3)
    ax[0].legend(fontsize=7)
    fig.suptitle("hamiltonian field, width 8, n = 128; Euler (Verlet for costate-reversible)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
