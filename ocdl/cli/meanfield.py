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
    """``thermo`` and ``eliminate``: studies with their own config dataclasses
    (:class:`ocdl.meanfield.thermo.study.ThermoConfig`, :class:`ocdl.meanfield.eliminate.EliminateConfig`)."""
    p = _command(sub, "thermo", "learning thermodynamics (Vanchurin §2–6): Z of the hidden variables by quadrature, "
                 "Monte Carlo and the Gaussian approximation; U, F, S0, C, Sx along training; first and second "
                 "laws; Langevin ensemble vs Fokker–Planck (20) and eq. (22); the action's equations",
                 "ocdl meanfield thermo --beta 2 --json thermo.json --plot thermo.png", cmd_thermo)
    p.add_argument("--beta", type=common.positive, help="inverse temperature β > 0 of the hidden variables (default 2)")
    p.add_argument("--neurons", type=common.positive_int, help="neurons of the quadrature network, ≤ 3 (default 2)")
    p.add_argument("--mc-neurons", type=common.positive_int, help="neurons of the Monte-Carlo network (default 6)")
    p.add_argument("--mass", type=common.real, help="mass term m < 1 in V(x) = −(m/2)x² (default 0.2)")
    p.add_argument("--points", type=common.positive_int, help="quadrature nodes per axis (default 101)")
    p.add_argument("--samples", type=common.positive_int, help="Monte-Carlo samples (default 200000)")
    p.add_argument("--objective", type=common.choice("objective", ["free-energy", "loss"]),
                   help="training: gradient descent on F (free-energy, default) or on U (loss)")
    p.add_argument("--iterations", type=common.positive_int, help="gradient-descent iterations (default 40)")
    p.add_argument("--gamma", type=common.real, help="γ of eq. (20), drift γ∂F/∂q (default 1; < 0: descent on F)")
    p.add_argument("--D", type=common.nonnegative, help="noise D ≥ 0 of eq. (20) (default 0.25)")
    p.add_argument("--T", type=common.positive, help="ensemble time (default 8)")
    p.add_argument("--particles", type=common.positive_int, help="ensemble size (default 20000)")
    p.add_argument("--steps", type=common.positive_int, help="time steps, a multiple of 8 (default 2000)")
    p.add_argument("--cells", type=common.positive_int, help="Fokker–Planck cells on the circle (default 128)")
    common.add_outputs(p, json=True, plot=True, out=False, seed=True)

    p = _command(sub, "eliminate", "weights read off the Schrödinger form: solve the imaginary-time Schrödinger "
                 "(Hopf–Cole) pair of the LQ drift-as-control problem, read θ = ∇Σ + (ν²/2)∇log ρ from phase and "
                 "amplitude, compare with the sweep, the closed form and a density-trained ResNet",
                 "ocdl meanfield eliminate --json elim.json --plot elim.png", cmd_eliminate)
    p.add_argument("--dim", type=int, choices=[1, 2], help="1 (default) or 2")
    p.add_argument("--nu", type=common.positive, help="noise ν > 0 (default 0.6)")
    p.add_argument("--T", type=common.positive, help="horizon (default 1)")
    p.add_argument("--c", type=common.positive, help="Φ = (c/2)|x − z|² (default 2)")
    p.add_argument("--std", type=common.positive, help="std of the Gaussian ρ0 (default 0.5)")
    p.add_argument("--cells", type=common.positive_int, nargs="+",
                   help="refinement levels, cells per axis (default 100 200 400; 2-D 40 80); steps = cells/2")
    p.add_argument("--density-layers", type=common.positive_int, help="layers of the density-trained ResNet (40)")
    p.add_argument("--density-rate", action="store_true", default=None,
                   help="also train 10/20/40/80 layers and report the rate in the layer count")
    common.add_outputs(p, json=True, plot=True, out=False, seed=False)



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


def cmd_thermo(args):
    from ocdl.io import write_json
    from ocdl.meanfield.thermo.study import ThermoConfig, thermo_study
    cfg = ThermoConfig(**{k: getattr(args, k) for k in ThermoConfig.__dataclass_fields__
                          if getattr(args, k, None) is not None})
    out, extra = thermo_study(cfg, quiet=args.quiet)
    if args.json:
        write_json(args.json, out)
    if args.plot:
        from ocdl.meanfield.thermo.plots import plot_thermo
        plot_thermo(out, extra, args.plot)
    if not args.quiet:
        lz = out["log_Z"]
        print(f"log Z: exact {lz['exact']:.6f}  eq.(7) {lz['gaussian']:.6f}  Laplace {lz['laplace']:.6f}  "
              f"Monte Carlo {lz['monte_carlo']:.6f} ± {lz['monte_carlo_stderr']:.1e}")
        print(f"trained: U {out['U']:.5f} F {out['F']:.5f} S0 {out['S0']:.5f} C {out['C']:.5f} Sx {out['Sx']:.5f}; "
              f"first-law residual {out['first_law_residual']:.2e}; second law "
              f"{'holds' if out['second_law']['holds'] else 'fails'} (S_x rose on "
              f"{out['second_law']['increasing_steps']}/{out['second_law']['steps']} steps, by "
              f"{out['second_law']['total_increase']:.3g} in total)")
        ep = out["entropy_production"]
        print(f"ensemble vs FP L1 {out['ensemble']['histogram_fp_l1']:.4f} (MC level "
              f"{out['ensemble']['mc_expected_l1']:.4f}); stationary L1 {out['stationary_l1']:.4f}; "
              f"entropy production at t = {ep['at_time']:g}: measured {ep['measured']:.5f}, eq. (22) "
              f"{ep['predicted']:.5f}")
    return 0


def cmd_eliminate(args):
    from ocdl.io import write_json
    from ocdl.meanfield.eliminate import EliminateConfig, eliminate, plot_eliminate
    cfg = EliminateConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(args).items()
                             if k in EliminateConfig.__dataclass_fields__ and v is not None})
    out, last = eliminate(cfg, quiet=args.quiet)
    if args.json:
        write_json(args.json, out)
    if args.plot:
        plot_eliminate(out, last, args.plot)
    if not args.quiet:
        for r in out["rows"]:
            print(f"cells {r['cells']:4d}: |θ_read − θ_sweep| {r['control_l2_sweep']:.3e}  "
                  f"|θ_read − θ*| {r['control_l2_closed_form']:.3e}  quantum-Euler residual {r['residual']:.3e} "
                  f"(ħ² = +ν⁴: {r['residual_real_hbar']:.3e})")
    return 0
