"""Benchmark: Newton / PMP against the paper's Adam on the AdS/DL bulk reconstruction.

The default data set of ``ocdl holography simulate`` (2000 samples, seed 0; held-out seed 1),
solvers newton, pmp-adam and adam from the paper's random start h_k ~ N(3, 1) over seeds, and
from the best constant metric; writes docs/holography_compare.json, a markdown table on stdout
and docs/img/holography_compare.png (metric error against time). Slow (minutes); run as

    OMP_NUM_THREADS=1 taskset -c 0 python examples/holography_compare.py [--samples 2000] [--seeds 0,1,2]
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ocdl.holography import HolographyProblem, simulate  # noqa: E402
from ocdl.holography.compare import compare, table  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--adam-iterations", type=int, default=2000)
    ap.add_argument("--c-reg", type=float, default=1.0)
    ap.add_argument("--out", default="docs/holography_compare.json")
    ap.add_argument("--plot", default="docs/img/holography_compare.png")
    a = ap.parse_args(argv)
    d, t = simulate(samples=a.samples, seed=0), simulate(samples=a.samples, seed=1)
    X, Xt = np.column_stack([d["phi"], d["pi"]]), np.column_stack([t["phi"], t["pi"]])

    def make(solver):
        return HolographyProblem(X, d["label"], c_reg=a.c_reg, loss="l2" if solver == "newton" else "l1")

    runs = compare(make, d["h_true"], seeds=[int(s) for s in a.seeds.split(",")], test=(Xt, t["label"], None, None),
                   iterations={"adam": a.adam_iterations, "pmp-adam": a.adam_iterations}, quiet=False)
    from ocdl.io import write_json
    write_json(a.out, {"samples": a.samples, "c_reg": a.c_reg, "runs": runs})
    print(table(runs))
    if a.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ocdl.plotting import save_figure
        fig, ax = plt.subplots(figsize=(7, 4.2))
        colors = {"newton": "tab:red", "pmp-adam": "tab:blue", "adam": "tab:green"}
        for r in runs:
            tr = r["trace"]
            ax.plot([p["time_s"] for p in tr], [p["metric_error"] for p in tr], color=colors.get(r["solver"], "k"),
                    ls="-" if r["start"] == "random" else "--", lw=1, alpha=0.8)
        for s, c in colors.items():
            ax.plot([], [], color=c, label=s)
        ax.plot([], [], "k--", label="best-constant start")
        ax.axhline(0.05, color="0.5", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("metric rel. L2 error (η ≥ 0.2)")
        ax.legend(fontsize=8)
        save_figure(fig, a.plot)
    return json.dumps({"runs": len(runs)})


if __name__ == "__main__":
    print(main())
