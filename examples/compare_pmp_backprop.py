"""Pontryagin solvers against backprop on two spirals: loss and KKT residual against wall time.

Runs ``adam``, ``pmp-lbfgs``, ``msa`` and ``newton`` on the same data, model (outer field, euler,
N = 20, T = 5, α = 1e-3, width 4), initialisation and cost, prints the table and writes
``compare_pmp_backprop.png`` (and ``.json``). Takes well under a minute on 2 idle cores.

    python examples/compare_pmp_backprop.py [OUT.png]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from ocdl.data import make_dataset  # noqa: E402
from ocdl.io import write_json  # noqa: E402
from ocdl.solvers.compare import compare, plot, table  # noqa: E402


def main(out="compare_pmp_backprop.png"):
    X, y = make_dataset("spirals", seed=0, points_per_class=100)
    Xt, yt = make_dataset("spirals", seed=1000, points_per_class=100)
    result = compare(X, y, ["adam", "pmp-lbfgs", "msa", "newton"], X_test=Xt, y_test=yt,
                     layers=20, T=5.0, alpha=1e-3, width=4, seed=0,
                     iterations={"adam": 2000, "pmp-lbfgs": 1000, "msa": 300, "newton": 300})
    print(table(result))
    plot(result, out)
    write_json(os.path.splitext(out)[0] + ".json", result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
