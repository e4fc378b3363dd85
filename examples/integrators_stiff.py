"""Newton stage solves on a stiff problem: Van der Pol (ε = 1e-6, μ = 1000) on its slow manifold.

gauss2, gauss3 and implicit_midpoint with Newton stages at h = 0.02 … 0.00125 against scipy's
Radau IIA; the dotted lines mark the largest step at which fixed-point stages still converge
(≈ 1e-6). Writes integrators_stiff.png and integrators_stiff.json (a few seconds on one core).

    python examples/integrators_stiff.py [out.png]
"""
import sys

from ocdl.cli.main import main

out = sys.argv[1] if len(sys.argv) > 1 else "integrators_stiff.png"
sys.exit(main(["integrators", "--stiff", "--plot", out, "--json", out.rsplit(".", 1)[0] + ".json"]))
