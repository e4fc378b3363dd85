"""MNIST-1D study behind docs/benchmarks-real.md: one pmp-adam run of the outer field with given
width, α, batch size, epochs, learning rate and input map; held-out accuracy after every epoch.

    OMP_NUM_THREADS=1 python examples/mnist1d_study.py --width 120 --alpha 3e-3 --batch 128 --epochs 60 --lr 0.02

Prints one JSON line (and appends it to --out): the settings, the final and best held-out
accuracy, the training accuracy and the wall time. Needs ``pip install -e ".[data]"``.
"""
import argparse
import json
import time


from ocdl import optim
from ocdl.data import load_real
from ocdl.solvers import make_model
from ocdl.solvers.gradient import costate_objective


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=120)
    ap.add_argument("--layers", type=int, default=20)
    ap.add_argument("--T", type=float, default=5.0)
    ap.add_argument("--alpha", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--norm", choices=["standard", "range"], default="standard")
    ap.add_argument("--seed", type=int, default=0, help="initial parameters and batch order")
    ap.add_argument("--out", default=None, help="append the JSON line to this file")
    a = ap.parse_args()
    X, y, Xt, yt = load_real("mnist1d")
    if a.norm == "standard":                      # per-feature map from the training data
        mu, sd = X.mean(0), X.std(0)
        X, Xt = (X - mu) / sd, (Xt - mu) / sd
    model = make_model(X, y, width=a.width, layers=a.layers, T=a.T, alpha=a.alpha, normalize=a.norm == "range")
    rows, t0 = [], time.time()

    def per_epoch(epoch, x):
        p = model.unflatten(x)
        rows.append((epoch, time.time() - t0, model.accuracy(p, X, y), model.accuracy(p, Xt, yt)))
        return {"test_accuracy": rows[-1][3]}

    iterations = a.epochs * -(-len(y) // a.batch)
    res = optim.minimize(costate_objective(model, X, y), model.flatten(model.init(a.seed)), optim.Adam(a.lr),
                         iterations, sampler=optim.Batches(len(y), a.batch, seed=a.seed),
                         early_stopping=optim.EarlyStopping(epoch_callback=per_epoch))
    p = model.unflatten(res.x)
    best = max(rows, key=lambda r: r[3])
    out = dict(vars(a), final_test=model.accuracy(p, Xt, yt), final_train=model.accuracy(p, X, y),
               time=time.time() - t0, best_test=best[3], best_epoch=best[0])
    print(json.dumps(out))
    if a.out:
        with open(a.out, "a") as fh:
            fh.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
