"""Fokker–Planck vs the exact Ornstein–Uhlenbeck density and vs Euler–Maruyama particles.

dX = −θ(X − m) dt + ν dW  ⇔  ∂ρ/∂t = ∂x(θ(x − m)ρ) + (ν²/2)∂xxρ.
Left: densities at several times (FP lines, exact dashed, particle histograms). Middle: L1 error
vs cells (CN, dt ∝ h): slope 2. Right: particle-vs-FP L1 vs ensemble size: slope −1/2.
Run: python examples/meanfield_fokker_planck.py [OUT.png]   (~5 s)
"""
import sys

import numpy as np

from ocdl.meanfield import euler_maruyama, gaussian_density, make_grid, ou_exact, solve_fokker_planck
from ocdl.plotting import plt, save_figure

TH, M, NU, MU0, S0 = 1.0, 1.0, 0.8, -1.0, 0.4


def drift(p, t):
    return -TH * (p[:, 0] - M)


fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
g = make_grid(-4, 4, 400)
x = g.centres[:, 0]
rng = np.random.default_rng(0)
for i, T in enumerate((0.1, 0.4, 1.5)):
    fp = solve_fokker_planck(g, gaussian_density(g, MU0, S0), drift, NU, T, 200)
    ex = ou_exact(x, T, TH, M, NU, MU0, S0)[0]
    xp = euler_maruyama(lambda y, t: -TH * (y - M), MU0 + S0 * rng.standard_normal(20000), NU, T, 200, rng)
    ax[0].hist(xp, bins=60, range=(-4, 4), density=True, alpha=0.25, color=f"C{i}")
    ax[0].plot(x, fp.rho, color=f"C{i}", label=f"FP t={T}")
    ax[0].plot(x, ex, "k--", lw=0.8)
ax[0].set_title("OU: FP (lines), exact (dashed), particles (bars)")
ax[0].legend()

Ns, errs = (50, 100, 200, 400, 800), []
for N in Ns:
    gN = make_grid(-5, 5, N)
    fp = solve_fokker_planck(gN, gaussian_density(gN, MU0, S0), drift, NU, 1.0, N // 2)
    errs.append(np.sum(np.abs(fp.rho - ou_exact(gN.centres[:, 0], 1.0, TH, M, NU, MU0, S0)[0])) * gN.h[0])
ax[1].loglog(Ns, errs, "o-", label="Crank–Nicolson + Scharfetter–Gummel")
ax[1].loglog(Ns, errs[0] * (np.array(Ns) / Ns[0]) ** -2.0, "k:", label="slope −2")
ax[1].axhline(1e-3, color="r", lw=0.8, label="bar 1e-3")
ax[1].set_xlabel("cells")
ax[1].set_ylabel("L1 error at T = 1")
ax[1].legend()

gF = make_grid(-5, 5, 400)
fp = solve_fokker_planck(gF, gaussian_density(gF, MU0, S0), drift, NU, 1.0, 200)
pb = fp.rho.reshape(40, -1).sum(1) * gF.h[0]
Ps, l1 = np.array([300, 1000, 3000, 10000, 30000, 100000]), []
for P in Ps:
    e = []
    for s in range(5):
        r = np.random.default_rng(100 + s)
        xp = euler_maruyama(lambda y, t: -TH * (y - M), MU0 + S0 * r.standard_normal(P), NU, 1.0, 200, r)
        e.append(np.sum(np.abs(np.histogram(xp, bins=40, range=(-5, 5))[0] / P - pb)))
    l1.append(np.mean(e))
c = np.sqrt(2 / np.pi) * np.sum(np.sqrt(pb * (1 - pb)))
ax[2].loglog(Ps, l1, "o-", label="particles vs FP (40 bins, mean of 5 seeds)")
ax[2].loglog(Ps, c / np.sqrt(Ps), "k:", label="c/√P (multinomial prediction)")
ax[2].set_xlabel("particles P")
ax[2].legend()
out = sys.argv[1] if len(sys.argv) > 1 else "meanfield_fokker_planck.png"
save_figure(fig, out)
print("wrote", out, "L1 errors", np.round(errs, 6))
