import time, sys, numpy as np
from ocdl.data import load_real
from ocdl.solvers import make_model
from ocdl.solvers.newton import newton
name = sys.argv[1]; curv = sys.argv[2]
X, y, Xt, yt = load_real(name)
model = make_model(X, y, normalize="standard", alpha=3e-3)
t = time.perf_counter()
r = newton(model, model.init(0), X, y, warm_start="none", curvature=curv)
print(name, curv, r.success, r.message, r.nit, f"{time.perf_counter()-t:.1f}s", r.n_hvp, r.cg_iterations, r.n_gauss_newton_steps,
      "test", model.accuracy(r.x, Xt, yt), "train", model.accuracy(r.x, X, y), model.n_params())
