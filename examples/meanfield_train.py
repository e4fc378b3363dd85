"""Stochastic-ResNet gradients: (left) the density-method gradient tends to the deterministic
PMP gradient as ν → 0 (O(ν²) down to the grid's numerical-diffusion floor); (right) particle-PMP
gradients tend to the density-method gradient at the Monte-Carlo rate P^{-1/2}.
Run: python examples/meanfield_train.py [OUT.png]   (~15 s)
"""
import sys

import numpy as np

from ocdl.meanfield.gradient_study import density_vs_deterministic, particles_vs_density
from ocdl.plotting import plt, save_figure

nus = np.array([0.4, 0.2, 0.1, 0.05, 0.025])
fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
for cells, spl in ((500, 20), (1000, 20), (2000, 40)):
    err = density_vs_deterministic(tuple(nus) + (0.0,), cells, spl)
    ax[0].loglog(nus, err[:-1], "o-", label=f"{cells} cells (ν = 0 floor {err[-1]:.1e})")
ax[0].loglog(nus, 0.27 * nus**2, "k:", label="∝ ν²")
ax[0].set_xlabel("ν")
ax[0].set_ylabel("max |∇J_density(ν) − ∇J_PMP(ν = 0)|")
ax[0].legend(fontsize=8)
sizes = np.array([100, 400, 1600, 6400, 25600])
rms = particles_vs_density(0.3, tuple(sizes), seeds=8, substeps=50)
ax[1].loglog(sizes, rms, "o-", label="particle PMP vs density gradient (ν = 0.3, RMS of 8 seeds)")
ax[1].loglog(sizes, rms[0] * np.sqrt(sizes[0] / sizes), "k:", label="∝ P^{-1/2}")
ax[1].set_xlabel("particles P")
ax[1].legend(fontsize=8)
out = sys.argv[1] if len(sys.argv) > 1 else "meanfield_train.png"
save_figure(fig, out)
print("wrote", out, "particle RMS", rms)
