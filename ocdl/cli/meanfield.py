"""``ocdl meanfield ...`` — flags of the jobs of :mod:`ocdl.jobs.meanfield`; prints their summaries."""
import re

from ocdl.cli import common

# Values such as ``--drift -(x-1)`` start with '-': let argparse read any single-dash token other
# than '-h' as a value (all options of these commands are long '--' options).
_VALUE_WITH_DASH = re.compile(r"^-(?!-|h$)")

COMMANDS = [
    ("fokker-planck", "1-D Fokker–Planck ∂ρ/∂t = −∂x(fρ) + (ν²/2)∂xxρ from a Gaussian; CSV x,rho at T",
     "ocdl meanfield fokker-planck --drift '-(x-1)' --nu 0.8 --mean -1 --std 0.4 --T 1 --out rho.csv"),
    ("particles", "Euler–Maruyama ensemble of dX = f dt + ν dW; CSV x at T",
     "ocdl meanfield particles --drift '-(x-1)' --nu 0.8 --mean -1 --std 0.4 --T 1 --particles 10000 --seed 0 "
     "--out x.csv"),
    ("control", "drift-as-control: min ∫ρ|a|²/2 + (g/2)∫ρ² + ∫Φρ(T) s.t. Fokker–Planck; CSV x,rho at T",
     "ocdl meanfield control --terminal '(x-1.5)**2' --nu 0.6 --mean -1 --std 0.5 --T 1 --method hopf-cole "
     "--out rho.csv --json control.json"),
    ("nls", "split-step Fourier NLS iħψ_t = −(ħ²/2)ψ_xx + Vψ + g|ψ|²ψ (periodic); NPZ + Madelung residuals",
     "ocdl meanfield nls --psi0 soliton --eta 1 --velocity 1 --g -1 --T 1 --dt 0.005 --out psi.npz --json nls.json"),
    ("langevin", "noisy learning: ensemble of one-neuron nets trained by dq = −γ∇L dt + √(2D) dW vs the "
                 "Fokker–Planck law of the parameters and exp(−γL/D)",
     "ocdl meanfield langevin --params 2 --gamma 5 --D 0.1 --T 6 --particles 5000 --plot langevin.png "
     "--json langevin.json"),
    ("limit", "the mean-field limit measured: particles → density as P → ∞ (slope), stochastic optimum → "
              "deterministic PMP optimum as ν → 0 (rate), stationarity residuals; table, JSON, picture",
     "ocdl meanfield limit --json limit.json --plot limit.png"),
    ("train", "train a stochastic ResNet dX = (K tanh X + b) dt + ν dW by particle PMP (--particles), the "
              "Lagrangian density method (--method density) or the Eulerian Fokker–Planck grid (--grid)",
     ["ocdl meanfield train --data spirals --nu 0.05 --particles 1000 --json mf.json --plot mf.png",
      "ocdl meanfield train --data spirals --nu 0.05 --method density --json mfd.json --plot mfd.png",
      "ocdl meanfield train --data spirals --nu 0.05 --grid 64 --json mf.json --plot mf.png"]),
]


def register(subparsers):
    from ocdl.jobs.meanfield import JOBS
    top = common.add_command(subparsers, "meanfield", "stochastic ResNets: Fokker–Planck, particles, "
                             "mean-field control, NLS / Madelung, Langevin learning",
                             "ocdl meanfield fokker-planck --drift '-(x-1)' --nu 0.8 --mean -1 --std 0.4 --T 1 "
                             "--out rho.csv")
    sub = top.add_subparsers(dest="meanfield_command", metavar="SUBCOMMAND")
    for name, help, example in COMMANDS:
        p = common.add_command(sub, name, help, example, run)
        p._negative_number_matcher = _VALUE_WITH_DASH
        common.add_job(p, JOBS[name])
    return top


#: when a summary line is not printed: (with --json, with --quiet)
_SILENT = {"limit": (False, True), "control": (True, True)}


def run(args):
    job = common.job_from_args(args)
    job.run()
    summary = getattr(job, "summary", None)
    if_json, if_quiet = _SILENT.get(args.meanfield_command, (True, False))
    if summary and not (if_json and getattr(args, "json", None)) and not (if_quiet and args.quiet):
        print(summary)
    return 0
