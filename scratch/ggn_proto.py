import time, numpy as np, torch
from ocdl.data import load_real
from ocdl.solvers import make_model
from ocdl import pmp
from ocdl.models.regularisers import regulariser_grad
torch.set_num_threads(1)
import sys
import os; field = os.environ.get("FIELD", "outer")
X, y, Xt, yt = load_real("mnist1d")
model = make_model(X, y, field=field, normalize="standard", alpha=3e-3)
print(model.n_params(), model.d, model.layers)
p0 = model.init(0)
z = model.flatten(p0)

def tparams(vec):
    return {k: torch.as_tensor(v) for k, v in model.unflatten(vec).items()}

def ggn(z, v, Xs, ys):
    P, V = tparams(z), tparams(v)
    Xt_ = torch.as_tensor(Xs)
    fK = lambda K, b: model.forward({"K": K, "b": b, "W": P["W"], "mu": P["mu"]}, Xt_)[-1]
    xN, dxN = torch.func.jvp(fK, (P["K"], P["b"]), (V["K"], V["b"]))
    s = xN @ P["W"].T + P["mu"]
    ds = dxN @ P["W"].T + xN @ V["W"].T + V["mu"]
    n = s.shape[0]
    if s.shape[1] == 1:
        lam = torch.sigmoid(s)
        u = lam * (1 - lam) * ds / n
    else:
        pr = torch.softmax(s, dim=1)
        u = (pr * ds - pr * (pr * ds).sum(1, keepdim=True)) / n
    u_np, xN_np = u.numpy(), xN.numpy()
    params = model.unflatten(z)
    _, g, _, _ = pmp.sweep(model, params, Xs, ys, trajectories=False, terminal_costate=u_np @ params["W"])
    rth = regulariser_grad(params, model.h, model.alpha, model.beta, model.alpha_head)
    rv = regulariser_grad(model.unflatten(v), model.h, model.alpha, model.beta, model.alpha_head)
    out = {"K": g["K"] - rth["K"] + rv["K"], "b": g["b"] - rth["b"] + rv["b"],
           "W": u_np.T @ xN_np + rv["W"], "mu": u_np.sum(0) + rv["mu"]}
    return model.flatten(out)

def ggn_ref(z, v, Xs, ys):
    Xt_ = torch.as_tensor(Xs)
    def logits(vec):
        i, P = 0, {}
        for k, shp in model.shapes().items():
            sz = int(np.prod(shp)); P[k] = vec[i:i+sz].reshape(shp); i += sz
        return model.head(P, model.forward(P, Xt_)[-1])
    def reg(vec):
        i, P = 0, {}
        for k, shp in model.shapes().items():
            sz = int(np.prod(shp)); P[k] = vec[i:i+sz].reshape(shp); i += sz
        from ocdl.models.regularisers import regulariser
        return regulariser(P, model.h, model.alpha, model.beta, model.alpha_head)
    zt, vt = torch.as_tensor(z), torch.as_tensor(v)
    s, Jv = torch.func.jvp(logits, (zt,), (vt,))
    from ocdl.models.losses import mean_loss
    _, HJv = torch.func.jvp(torch.func.grad(lambda s_: mean_loss(s_, ys)), (s,), (Jv,))
    _, vjp = torch.func.vjp(logits, zt)
    out, = vjp(HJv)
    _, Rv = torch.func.jvp(torch.func.grad(reg), (zt,), (vt,))
    return (out + Rv).numpy()

if __name__ == '__main__':
    rng = np.random.default_rng(1)
    rows = rng.choice(len(y), 128, replace=False)
    v = rng.standard_normal(z.size)
    a = ggn(z, v, X[rows], y[rows]); b = ggn_ref(z, v, X[rows], y[rows])
    print("rel err", np.abs(a - b).max() / np.abs(b).max())
    t = time.perf_counter()
    for _ in range(10): ggn(z, v, X[rows], y[rows])
    print("ggn ms", (time.perf_counter() - t) * 100)
    t = time.perf_counter()
    for _ in range(10): ggn_ref(z, v, X[rows], y[rows])
    print("ref ms", (time.perf_counter() - t) * 100)
    rows5 = rng.choice(len(y), 512, replace=False)
    t = time.perf_counter()
    for _ in range(10): pmp.value_and_grad(model, p0, X[rows5], y[rows5])
    print("grad512 ms", (time.perf_counter() - t) * 100)
