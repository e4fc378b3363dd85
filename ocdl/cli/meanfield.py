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
    _register_studies(sub)
    return top


def _command(sub, *a, **k):
    p = common.add_command(sub, *a, **k)
    p._negative_number_matcher = _VALUE_WITH_DASH
    return p


def _register_studies(sub):
    """``thermo`` and ``eliminate``: the jobs of :mod:`ocdl.jobs.meanfield_thermo`."""
    from ocdl.jobs.meanfield_thermo import EliminateJob, ThermoJob
    p = _command(sub, "thermo", "learning thermodynamics (Vanchurin §2–6): Z of the hidden variables by quadrature, "
                 "Monte Carlo and the Gaussian approximation; U, F, S0, C, Sx along training; first and second "
                 "laws; Langevin ensemble vs Fokker–Planck (20) and eq. (22); the action's equations",
                 "ocdl meanfield thermo --beta 2 --json thermo.json --plot thermo.png", cmd_thermo)
    common.add_job(p, ThermoJob)

    p = _command(sub, "eliminate", "weights read off the Schrödinger form: solve the imaginary-time Schrödinger "
                 "(Hopf–Cole) pair of the LQ drift-as-control problem, read θ = ∇Σ + (ν²/2)∇log ρ from phase and "
                 "amplitude, compare with the sweep, the closed form and a density-trained ResNet",
                 "ocdl meanfield eliminate --json elim.json --plot elim.png", cmd_eliminate)
    common.add_job(p, EliminateJob)


#: when a summary line is not printed: (with --json, with --quiet)
_SILENT = {"limit": (False, True), "control": (True, True)}


def run(args):
    job = common.job_from_args(args)
    job.run()
    for name, success, message in getattr(job, "outcomes", ()):     # runs that can end unconverged
        common.not_converged(args, name, success, message)
    summary = getattr(job, "summary", None)
    if_json, if_quiet = _SILENT.get(args.meanfield_command, (True, False))
    if summary and not (if_json and getattr(args, "json", None)) and not (if_quiet and args.quiet):
        print(summary)
    return 0


def cmd_thermo(args):
    from ocdl.progress import log
    out = common.run_job(args)
    lz = out["log_Z"]
    log(f"log Z: exact {lz['exact']:.6f}  eq.(7) {lz['gaussian']:.6f}  Laplace {lz['laplace']:.6f}  "
        f"Monte Carlo {lz['monte_carlo']:.6f} ± {lz['monte_carlo_stderr']:.1e}", args.quiet)
    law = out["second_law"]
    log(f"trained: U {out['U']:.5f} F {out['F']:.5f} S0 {out['S0']:.5f} C {out['C']:.5f} Sx {out['Sx']:.5f}; "
        f"first-law residual {out['first_law_residual']:.2e}; second law {'holds' if law['holds'] else 'fails'} "
        f"(S_x rose on {law['increasing_steps']}/{law['steps']} steps, by {law['total_increase']:.3g} in total)",
        args.quiet)
    ep = out["entropy_production"]
    ens = out["ensemble"]
    log(f"ensemble vs FP L1 {ens['histogram_fp_l1']:.4f} (MC level {ens['mc_expected_l1']:.4f}); "
        f"stationary L1 {out['stationary_l1']:.4f}; entropy production at t = {ep['at_time']:g}: measured "
        f"{ep['measured']:.5f}, eq. (22) {ep['predicted']:.5f}", args.quiet)
    return 0


def cmd_eliminate(args):
    from ocdl.progress import log
    out = common.run_job(args)
    for r in out["rows"]:
        log(f"cells {r['cells']:4d}: |θ_read − θ_sweep| {r['control_l2_sweep']:.3e}  |θ_read − θ*| "
            f"{r['control_l2_closed_form']:.3e}  quantum-Euler residual {r['residual']:.3e} "
            f"(ħ² = +ν⁴: {r['residual_real_hbar']:.3e})", args.quiet)
    return 0
