"""Two spirals with the hamiltonian field and every symplectic integrator, trained by pmp-adam.

For verlet, yoshida4, implicit_midpoint, gauss2 and gauss3 (same data, network, iterations and
seed) it prints and plots held-out accuracy, training time and time per iteration, the energy
drift of the hidden-state flow (max over samples of Σ_k |H_k(x_{k+1}) − H_k(x_k)|, H_k the energy
the layer's exact flow conserves) and the reversibility error (forward, then back with −h).
See docs/spirals.md ("Every symplectic integrator") and :mod:`ocdl.bench.symplectic`.

    python examples/spirals_symplectic.py [OUT.png] [--points 50] [--layers 10] [--T 2.5]
        [--iterations 100] [--lr 0.1] [--seed 0] [--json OUT.json] [--timing]

The defaults run in under a minute on 2 cores; ``--timing`` adds the per-iteration time of
pmp-adam vs autograd adam with gauss2 on the same network.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ocdl.bench.symplectic import gradient_timing, plot_study, spiral_data, spiral_study  # noqa: E402
from ocdl.plotting import save_figure  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="spirals_symplectic.png")
    ap.add_argument("--points", type=int, default=50, help="points per class (train; held-out the same)")
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--T", type=float, default=2.5)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--timing", action="store_true")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = spiral_study(points=a.points, layers=a.layers, T=a.T, iterations=a.iterations, lr=a.lr, seed=a.seed)
    print(f"{'method':18s} {'train':>6s} {'test':>6s} {'loss':>7s} {'time s':>7s} {'ms/it':>7s} "
          f"{'drift_sum':>10s} {'drift_max':>10s} {'mean H':>7s} {'reversib.':>10s}")
    for r in rows:
        print(f"{r['method']:18s} {100 * r['train_accuracy']:6.1f} {100 * r['test_accuracy']:6.1f} {r['loss']:7.4f} "
              f"{r['wall_time_s']:7.2f} {1e3 * r['time_per_iteration_s']:7.2f} {r['drift_sum']:10.3e} "
              f"{r['drift_max']:10.3e} {r['energy_mean']:7.3f} {r['reversibility']:10.2e}"
              + (f"  stopped after {r['nit']} iterations: {r['failed']}" if r["failed"] else ""))
    out = {"settings": vars(a), "rows": [{k: v for k, v in r.items() if k not in ("model", "params")} for r in rows]}
    if a.timing:
        out["timing"] = gradient_timing(points=a.points, layers=a.layers, T=a.T)
        tm = out["timing"]
        print(f"gauss2 per iteration: pmp-adam {1e3 * min(tm['pmp-adam']):.1f} ms, "
              f"adam (autograd) {1e3 * min(tm['adam']):.1f} ms, ratio of medians {tm['ratio']:.2f}")
    (X, y), _ = spiral_data(a.points, a.seed)
    title = (f"hamiltonian field, {a.layers} layers, T = {a.T:g}, width 6, {a.iterations} pmp-adam steps, "
             f"{2 * a.points} training / {2 * a.points} held-out spiral points")
    save_figure(plot_study(rows, X, y, title=title), a.out)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)
    print(f"wrote {a.out} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
