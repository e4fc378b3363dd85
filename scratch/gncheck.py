import os, time, numpy as np, torch
from ocdl.data import load_real
from ocdl.solvers import make_model
from ocdl.solvers.trust_region import GaussNewtonProduct
import sys; sys.path.insert(0, "scratch")
field = os.environ.get("FIELD", "outer")
X, y, Xt, yt = load_real("mnist1d")
model = make_model(X, y, field=field, normalize="standard", alpha=3e-3)
print(field, model.n_params(), model.d, model.layers, model.integrator)
z = model.flatten(model.init(0))
gp = GaussNewtonProduct(model, X, y)
rng = np.random.default_rng(1); rows = np.sort(rng.choice(len(y), 128, replace=False)); v = rng.standard_normal(z.size)
t = time.perf_counter(); a = gp(z, v, rows); print("first", time.perf_counter() - t)
t = time.perf_counter(); a = gp(z, v, rows); print("second", time.perf_counter() - t)
import cProfile, pstats
cProfile.run("for _ in range(3): gp(z, v, rows)", "/tmp/newton_prof2.out")
pstats.Stats("/tmp/newton_prof2.out").sort_stats("tottime").print_stats(12)
from ocdl import pmp
B = np.sort(rng.choice(len(y), 512, replace=False))
t = time.perf_counter(); pmp.value_and_grad(model, model.unflatten(z), X[B], y[B]); print("grad512", time.perf_counter() - t)
t = time.perf_counter(); pmp.value_and_grad(model, model.unflatten(z), X[B], y[B]); print("grad512", time.perf_counter() - t)
t = time.perf_counter(); pmp.value_and_grad(model, model.unflatten(z), X[rows], y[rows]); print("grad128", time.perf_counter() - t)
