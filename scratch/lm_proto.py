import time, sys, numpy as np, torch
sys.path.insert(0, "scratch")
from ggn_proto import ggn, model, X, y, Xt, yt, z as z0
from ocdl import pmp
import argparse
ap = argparse.ArgumentParser()
ap.add_argument("--B", type=int, default=512); ap.add_argument("--S", type=int, default=128)
ap.add_argument("--cg", type=int, default=10); ap.add_argument("--lam", type=float, default=1.0)
ap.add_argument("--epochs", type=int, default=10); ap.add_argument("--rtol", type=float, default=-1); ap.add_argument("--pre", type=float, default=0.0); ap.add_argument("--lr0", type=float, default=0); ap.add_argument("--warmcg", type=float, default=0.0)
a = ap.parse_args()
rng = np.random.default_rng(0)
z = z0.copy(); lam = a.lam; n = len(y); t0 = time.perf_counter(); nprod = 0; ncg = []
sprev = np.zeros_like(z); vsq = np.zeros_like(z); nst = 0
for ep in range(a.epochs):
    perm = rng.permutation(n)
    for i in range(0, n - a.B + 1, a.B):
        B = np.sort(perm[i:i+a.B]); S = np.sort(rng.choice(B, a.S, replace=False)) if a.S < a.B else B
        J, gd = pmp.value_and_grad(model, model.unflatten(z), X[B], y[B]); g = model.flatten(gd)
        Gv = lambda v: ggn(z, v, X[S], y[S])
        # CG on (G + lam I) s = -g
        nst += 1; vsq = 0.9 * vsq + 0.1 * g * g; vh = vsq / (1 - 0.9 ** nst)
        Minv = 1.0 / (vh / vh.mean() + 1e-2) ** a.pre if a.pre else np.ones_like(z)
        s = a.warmcg * sprev; r = g + (Gv(s) + lam * s if a.warmcg else 0); y_ = Minv * r; d = -y_; rr = r @ y_; k = 0
        if a.warmcg: nprod += 1
        rtol = (min(0.5, np.sqrt(np.linalg.norm(g))) if a.rtol < 0 else a.rtol) * np.linalg.norm(g)
        for k in range(1, a.cg + 1):
            Hd = Gv(d) + lam * d; nprod += 1
            al = rr / (d @ Hd); s = s + al * d; r = r + al * Hd; y_ = Minv * r; rn = r @ y_
            if np.linalg.norm(r) <= rtol: break
            d = -y_ + rn / rr * d; rr = rn
        ncg.append(k)
        Gs = Gv(s); nprod += 1
        pred = -(g @ s + 0.5 * s @ Gs)
        Jn = pmp.cost(model, model.unflatten(z + s), X[B], y[B])
        rho = (J - Jn) / pred if pred > 0 else -1
        if rho < 0.25: lam *= 1.5
        elif rho > 0.75: lam *= 2 / 3
        if rho > 1e-4: z = z + s; sprev = s
    acc = model.accuracy(model.unflatten(z), Xt, yt); tr = model.accuracy(model.unflatten(z), X, y)
    print(f"ep {ep+1} t {time.perf_counter()-t0:.1f} J {J:.4f} lam {lam:.3g} rho {rho:.2f} cg {np.mean(ncg):.1f} prods {nprod} test {acc:.3f} train {tr:.3f}", flush=True)
