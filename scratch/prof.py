import time, sys, numpy as np
sys.path.insert(0, "scratch")
from ggn_proto import ggn, model, X, y, z, tparams
import torch
from ocdl import pmp
rng = np.random.default_rng(0)
S = rng.choice(len(y), 128, replace=False); B = rng.choice(len(y), 512, replace=False)
v = rng.standard_normal(z.size)
def tm(f, k=10):
    t = time.perf_counter()
    for _ in range(k): f()
    return (time.perf_counter() - t) / k * 1e3
print("ggn", tm(lambda: ggn(z, v, X[S], y[S])))
P, V = tparams(z), tparams(v); Xs = torch.as_tensor(X[S])
fK = lambda K, b: model.forward({"K": K, "b": b, "W": P["W"], "mu": P["mu"]}, Xs)[-1]
print("jvp", tm(lambda: torch.func.jvp(fK, (P["K"], P["b"]), (V["K"], V["b"]))))
print("fwd torch", tm(lambda: fK(P["K"], P["b"])))
params = model.unflatten(z); U = rng.standard_normal((128, 120))
print("sweep", tm(lambda: pmp.sweep(model, params, X[S], y[S], trajectories=False, terminal_costate=U)))
print("grad512", tm(lambda: pmp.value_and_grad(model, params, X[B], y[B])))
print("grad128", tm(lambda: pmp.value_and_grad(model, params, X[S], y[S])))
print("cost512", tm(lambda: pmp.cost(model, params, X[B], y[B])))
print("unflatten/flatten", tm(lambda: model.flatten(model.unflatten(z))))
print("ggn", tm(lambda: ggn(z, v, X[S], y[S])))
import cProfile, pstats
cProfile.run("for _ in range(5): ggn(z, v, X[S], y[S])", "/tmp/newton_prof.out")
pstats.Stats("/tmp/newton_prof.out").sort_stats("cumtime").print_stats(15)
