"""A tiny grid sweep through the library (what `ocdl sweep --config FILE --out DIR` runs):
two solvers (costate-gradient Adam and L-BFGS, the fast ones on a CPU) × two fields ×
two seeds on two spirals, then the loss histories from the run
files. Rerunning skips the finished runs. Writes examples/bench_sweep.png (the run files go
to $TMPDIR/ocdl-bench-sweep/). ~30 s on 2 cores.

    OMP_NUM_THREADS=1 python examples/bench_sweep.py [--backend dask]
"""
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from ocdl.bench.sweep import Sweep, run_sweep  # noqa: E402
from ocdl.plotting import plt, save_figure  # noqa: E402

GRID = {"data": ["spirals"], "solver": ["pmp-adam", "pmp-lbfgs"], "field": ["outer", "hamiltonian"],
        "layers": [20], "seed": [0, 1]}
SETTINGS = {"iterations": 300}
DATA = {"points_per_class": 100, "test": True}


def main(backend="local"):
    out = os.path.join(tempfile.gettempdir(), "ocdl-bench-sweep")
    sweep = Sweep(GRID, SETTINGS, DATA, source="examples/bench_sweep.py")
    res = run_sweep(sweep, out, backend=backend, workers=2)
    print(f"{res['ran']} ran, {res['skipped']} skipped, {res['failed']} failed; summary in {out}/summary.md")
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for rec in res["records"]:
        if rec["status"] != "ok":
            continue
        color = {"pmp-adam": "C0", "pmp-lbfgs": "C1"}[rec["solver"]]
        ls = "-" if rec["field"] == "outer" else "--"
        h = rec["history"]
        label = f"{rec['solver']} {rec['field']} s{rec['seed']}"
        ax[0].semilogy([r["iteration"] for r in h], [r["loss"] for r in h], ls=ls, color=color, label=label)
        ax[1].bar(len(ax[1].patches), rec["test_accuracy"], color=color, hatch="" if ls == "-" else "//")
    names = [f"{r['solver']}\n{r['field'][:3]} s{r['seed']}" for r in res["records"] if r["status"] == "ok"]
    ax[1].set_xticks(range(len(names)), names, fontsize=7, rotation=30)
    ax[1].set_ylim(0.5, 1.0)
    ax[1].set_ylabel("held-out accuracy")
    ax[0].set_xlabel("iteration")
    ax[0].set_ylabel("loss J")
    ax[0].legend(fontsize=7)
    ax[0].set_title("loss histories of the sweep's runs (from OUT/runs/*.json)", fontsize=9)
    ax[1].set_title("test accuracy per run (solid: outer, hatched: hamiltonian)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, os.path.join(HERE, "bench_sweep.png"))
    with open(os.path.join(out, "summary.md")) as fh:
        print(fh.read())
    return json.dumps({"ran": res["ran"]})


if __name__ == "__main__":
    main("dask" if "--backend" in sys.argv and sys.argv[-1] == "dask" else "local")
