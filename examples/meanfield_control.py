"""Drift-as-control solved twice — FP+HJB sweep and Hopf–Cole (imaginary-time Schrödinger) —
against the closed-form Gaussian answer for Φ = (c/2)(x − z)².
Run: python examples/meanfield_control.py [OUT.png]   (~10 s)
"""
import sys

import numpy as np

from ocdl.meanfield import gaussian_density, make_grid
from ocdl.meanfield.control import lq_gaussian, solve_hopf_cole, solve_forward_backward
from ocdl.plotting import plt, save_figure

M0, S0, NU, T, C, Z = -1.0, 0.5, 0.6, 1.0, 2.0, 1.5
g = make_grid(-4, 4, 640)
x = g.centres[:, 0]
rho0 = gaussian_density(g, M0, S0)
Phi = C / 2 * (x - Z) ** 2
sw = solve_forward_backward(g, rho0, Phi, NU, T, steps=320)
hc = solve_hopf_cole(g, rho0, Phi, NU, T, steps=320)
sw_g = solve_forward_backward(g, rho0, Phi, NU, T, steps=320, g=1.0)
hc_g = solve_hopf_cole(g, rho0, Phi, NU, T, steps=320, g=1.0)
mT, vT, cost = lq_gaussian(M0, S0, NU, T, C, Z)
exact = np.exp(-(x - mT) ** 2 / (2 * vT)) / np.sqrt(2 * np.pi * vT)
l1 = lambda a, b: np.sum(np.abs(a - b)) * g.h[0]  # noqa: E731

fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
ax[0].plot(x, rho0, "k:", label="ρ(0)")
ax[0].plot(x, sw.rho, lw=3, alpha=0.5, label="sweep ρ(T)")
ax[0].plot(x, hc.rho, "--", label="Hopf–Cole ρ(T)")
ax[0].plot(x, exact, "k-", lw=0.8, label="closed form")
ax[0].plot(x, sw_g.rho, lw=3, alpha=0.5, label="sweep, congestion g = 1")
ax[0].plot(x, hc_g.rho, "--", label=f"Hopf–Cole fixed point, g = 1 (L1 {l1(sw_g.rho, hc_g.rho):.1e})")
ax[0].axvline(Z, color="grey", lw=0.5)
ax[0].set_title(f"L1: sweep–HC {l1(sw.rho, hc.rho):.1e}, sweep–exact {l1(sw.rho, exact):.1e}", fontsize=9)
ax[0].legend(fontsize=8)
ax[1].imshow(np.array(sw.rho_path).T, origin="lower", aspect="auto", extent=[0, T, x[0], x[-1]])
ax[1].set_xlabel("t")
ax[1].set_ylabel("x")
ax[1].set_title("ρ(x, t), sweep")
ax[2].semilogy([h["residual"] for h in sw.history], "o-", label="g = 0")
ax[2].semilogy([h["residual"] for h in sw_g.history], "s-", label="sweep, g = 1 (damped)")
ax[2].semilogy([h["residual"] for h in hc_g.history], "^-", label="Hopf–Cole fixed point, g = 1 (max |Δρ|)")
ax[2].set_xlabel("iteration")
ax[2].set_ylabel("residual")
ax[2].set_title(f"cost: sweep {sw.cost:.4f}, HC {hc.cost:.4f}, exact {cost:.4f}", fontsize=9)
ax[2].legend()
out = sys.argv[1] if len(sys.argv) > 1 else "meanfield_control.png"
save_figure(fig, out)
print("wrote", out)
