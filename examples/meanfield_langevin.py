"""Noisy learning: 2-parameter Langevin ensemble vs parameter Fokker–Planck vs exp(−γL/D).
Run: python examples/meanfield_langevin.py [OUT.png]   (~5 s)
"""
import sys

from ocdl.meanfield.langevin import langevin_study
from ocdl.meanfield.plots import plot_langevin

r = langevin_study(params=2, gamma=5.0, D=0.1, T=6.0, particles=5000, steps=600)
out = sys.argv[1] if len(sys.argv) > 1 else "meanfield_langevin.png"
plot_langevin(r, out)
print("wrote", out, {k: round(r[k], 4) for k in ("histogram_fp_l1", "mc_expected_l1", "fp_stationary_l1")})
