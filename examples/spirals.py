"""Two spirals, trained through the Pontryagin costate: writes spirals.png (the README picture).

Same as ``ocdl train --data spirals --solver pmp-adam --plot spirals.png`` (default settings:
outer field, explicit Euler = classic ResNet, 20 layers, T = 5, width 6, α = 3e-3, 3000 Adam steps on the
exact costate gradient), plus a held-out test set. Runs in a few seconds.

    python examples/spirals.py [OUT.png]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ocdl.data import spirals  # noqa: E402
from ocdl.models.plotting import plot_classifier  # noqa: E402
from ocdl.plotting import save_figure  # noqa: E402
from ocdl.solvers import CLI_ALPHA, make_model, train  # noqa: E402


def main(out="spirals.png"):
    X, y = spirals(200, turns=1.5, noise=0.02, seed=0)          # what `--data spirals` uses (seed 0)
    Xt, yt = spirals(200, turns=1.5, noise=0.02, seed=1)
    t0 = time.perf_counter()
    model = make_model(X, y, normalize=True, alpha=CLI_ALPHA)       # the CLI's defaults (--normalize range, --alpha)
    res = train(X, y, solver="pmp-adam", seed=0, model=model)
    wall = time.perf_counter() - t0
    m = res.model
    acc, test = m.accuracy(res.x, X, y), m.accuracy(res.x, Xt, yt)
    title = (f"ocdl train --data spirals --solver pmp-adam: loss {res.fun:.4f}, train {100 * acc:.1f} %, "
             f"held-out {100 * test:.1f} %, {res.nit} iterations in {wall:.1f} s")
    save_figure(plot_classifier(m, res.x, X, y, title=title), out)
    print(f"wrote {out}: {title}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
