"""``ocdl holography simulate|learn``: AdS/DL bulk reconstruction (arXiv:1802.08313).

Thin layer: flags → :class:`ocdl.holography.run.SimulateConfig` / ``LearnConfig`` → library
call → print.
"""
import argparse

from ocdl.cli import common
from ocdl.errors import InputError


def _numbers(text):
    """A number or a comma-separated list of numbers (data at several masses / couplings)."""
    try:
        vals = [common.real(t) for t in text.split(",") if t.strip()]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number or a comma-separated list of numbers") from None
    if not vals:
        raise argparse.ArgumentTypeError("give a number or a comma-separated list")
    return vals[0] if len(vals) == 1 else vals


def register(subparsers):
    p = subparsers.add_parser("holography", help="AdS/DL: learn a bulk metric from boundary data (optimal control)",
                              description="The radial equation of motion of a bulk scalar as a network whose "
                                          "weights are the metric function h(η) (Hashimoto et al. 2018).")
    common.add_global(p)
    sub = p.add_subparsers(dest="holography_command", metavar="{simulate,learn}")

    q = common.add_command(sub, "simulate", "boundary data (phi, pi, label) from a known metric",
                           "ocdl holography simulate --metric '3/tanh(3*eta)' --samples 2000 --seed 0 "
                           "--out holo.csv", _simulate)
    q.add_argument("--metric", default="3/tanh(3*eta)", metavar="EXPR",
                   help="h(η) = ∂_η log √(f g^{d−1}), an expression in eta (default AdS-Schwarzschild d=3: "
                        "3/tanh(3*eta))")
    q.add_argument("--m2", type=_numbers, default=-1.0, help="mass² (default −1); a list gives data at several")
    q.add_argument("--lam", type=_numbers, default=1.0, help="φ⁴ coupling λ (default 1); a list pairs with --m2")
    q.add_argument("--eta-ini", type=common.positive, default=1.0, help="boundary cut-off η_ini (default 1)")
    q.add_argument("--eta-fin", type=common.positive, default=0.1, help="horizon cut-off η_fin (default 0.1)")
    q.add_argument("--layers", type=common.positive_int, default=10, help="network depth N (default 10)")
    q.add_argument("--samples", type=common.positive_int, default=2000, help="data points, half per class "
                                                                           "(default 2000)")
    q.add_argument("--eps", type=common.positive, default=0.1, help="positive when |F| < eps (default 0.1)")
    q.add_argument("--integrator", type=common.choice("integrator", ("euler", "heun", "rk4")), default="euler",
                   help="euler (the paper's network, default) | heun | rk4")
    common.add_outputs(q, json=False, plot=False, out="required", out_help="output CSV (phi,pi,label)")

    q = common.add_command(sub, "learn", "learn h(η) (and m², λ) from labelled boundary data",
                           ["ocdl holography learn --data holo.csv --test holo_test.csv --solver newton "
                            "--json holo.json --plot holo.png",
                            "ocdl holography learn --data holo.csv --solver adam --init random --seed 1"], _learn)
    q.add_argument("--data", required=True, metavar="CSV", help="data file (phi,pi,label[,m2,lam])")
    q.add_argument("--test", metavar="CSV", help="held-out data for test_accuracy")
    q.add_argument("--solver", type=common.choice("solver", ("newton", "pmp-adam", "adam", "pmp-lbfgs")),
                   default="newton", help="newton (Gauss–Newton, default) | pmp-adam | adam | pmp-lbfgs")
    q.add_argument("--integrator", type=common.choice("integrator", ("euler", "heun", "rk4")),
                   help="euler | heun | rk4 (default: the data's, else euler)")
    q.add_argument("--learn-mass", action="store_true", help="learn m² too")
    q.add_argument("--learn-coupling", action="store_true", help="learn λ too")
    q.add_argument("--m2", type=common.real, help="m² (fixed, or the start with --learn-mass; default the data's)")
    q.add_argument("--lam", type=common.real, help="λ (fixed, or the start with --learn-coupling)")
    q.add_argument("--eta-ini", type=common.positive, help="default: the data's, else 1")
    q.add_argument("--eta-fin", type=common.positive, help="default: the data's, else 0.1")
    q.add_argument("--layers", type=common.positive_int, help="default: the data's, else 10")
    q.add_argument("--c-reg", type=common.nonnegative, default=1.0,
                   help="weight of the smoothness regulariser Σ η_k⁴ (h_{k+1} − h_k)² (default 1)")
    q.add_argument("--init", type=common.choice("init", ("constant", "random")), default="constant",
                   help="constant (default: the best constant metric, or --init-value) | random (N(mean, 1))")
    q.add_argument("--init-value", type=common.real, help="the constant / the random mean (default: scan / 1)")
    q.add_argument("--iterations", type=common.positive_int,
                   help="max iterations (newton 100 per stage, adam 3000, pmp-lbfgs 2000)")
    q.add_argument("--lr", type=common.positive, default=0.05, help="Adam learning rate (default 0.05, ×0.01 decay)")
    q.add_argument("--true-metric", metavar="EXPR", help="true h(η): adds metric_rel_l2_error and the curve")
    common.add_outputs(q)


def _simulate(args):
    from ocdl.holography.run import SimulateConfig, simulate_file
    from ocdl.progress import log
    d = simulate_file(SimulateConfig(args.metric, args.m2, args.lam, args.eta_ini, args.eta_fin, args.layers,
                                     args.samples, args.seed, args.eps, args.integrator, args.out))
    log(f"wrote {args.out}: {int((d['label'] == 1).sum())} positive, {int((d['label'] == 0).sum())} negative",
        args.quiet)
    return 0


def _learn(args):
    from ocdl.holography.run import LearnConfig, learn_file
    from ocdl.progress import log
    if args.true_metric:     # validate the expression before any work
        from ocdl.expr import compile_expr
        try:
            compile_expr(args.true_metric, ("eta",))
        except InputError as exc:
            raise InputError(f"--true-metric: {exc}") from None
    cfg = LearnConfig(data=args.data, test=args.test, solver=args.solver, integrator=args.integrator, m2=args.m2,
                      lam=args.lam, eta_ini=args.eta_ini, eta_fin=args.eta_fin, layers=args.layers,
                      learn_mass=args.learn_mass, learn_coupling=args.learn_coupling, c_reg=args.c_reg,
                      init=args.init, init_value=args.init_value, iterations=args.iterations, lr=args.lr,
                      seed=args.seed, true_metric=args.true_metric, quiet=args.quiet)
    problem, res, summary, _ = learn_file(cfg)
    if args.json:
        from ocdl.io import write_json
        write_json(args.json, summary)
    if args.plot:
        from ocdl.holography.plots import plot_learn
        plot_learn(args.plot, problem, dict(summary, x=res.x), summary.get("h_true"))
    from ocdl.holography.learn import describe
    log(describe(summary), args.quiet)
    common.warn_not_converged(args.solver, res.success, res.message)
    return 0
