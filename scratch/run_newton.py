import os, sys, time, json, numpy as np
from ocdl.data import load_real
from ocdl.solvers import make_model
from ocdl.solvers.newton import newton
import argparse
ap = argparse.ArgumentParser()
ap.add_argument("--field", default="outer"); ap.add_argument("--B", type=int, default=512); ap.add_argument("--S", type=float, default=128)
ap.add_argument("--cg", type=int, default=10); ap.add_argument("--lam", type=float, default=1.0); ap.add_argument("--rtol", type=float, default=1e-3)
ap.add_argument("--epochs", type=int, default=8); ap.add_argument("--curv", default="gauss-newton"); ap.add_argument("--delta0", type=float, default=1.0)
a = ap.parse_args()
X, y, Xt, yt = load_real("mnist1d")
model = make_model(X, y, field=a.field, normalize="standard", alpha=3e-3)
t = time.perf_counter()
def cb(it, p, f):
    return False
r = newton(model, model.init(0), X, y, warm_start="none", curvature=a.curv, batch_size=a.B, hessian_sample=a.S,
           epochs=a.epochs, gn_cg_maxiter=a.cg, gn_cg_rtol=a.rtol, damping=a.lam, test=(Xt, yt), delta0=a.delta0)
w = time.perf_counter() - t
for row in r.history:
    if "test_accuracy" in row or "epoch" in row and row.get("epoch_end"):
        print({k: row[k] for k in row if k in ("iteration", "time_s", "loss", "test_accuracy", "epoch", "damping", "cg_iterations")})
print("final test", model.accuracy(r.x, Xt, yt), "train", model.accuracy(r.x, X, y), "wall", round(w, 1), "nhvp", r.n_hvp, "cg", r.cg_iterations, "steps", r.n_gauss_newton_steps, r.message)
print(sorted(r.history[-1].keys()))
