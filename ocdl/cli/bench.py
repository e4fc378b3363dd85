"""``ocdl bench gradient`` and ``ocdl bench train`` (thin over ocdl.bench)."""
import sys

from ocdl.cli import common
from ocdl.jobs.train import DATA_METAVAR

METHODS = ("autograd", "costate", "costate-torch", "costate-reversible", "torchdiffeq-adjoint",
           "torchdiffeq-direct", "jax", "diffrax", "diffrax-backsolve")


def register(sub):
    p = sub.add_parser("bench", help="benchmarks: gradient methods against depth; solvers' time to target",
                       description="Benchmarks. 'ocdl bench gradient': time, memory and error of the gradient "
                                   "methods (ocdl's, torch's and the JAX/diffrax peers) against depth. "
                                   "'ocdl bench train': time-to-target per solver.")
    common.add_global(p)
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK")

    g = common.add_command(
        bsub, "gradient", "gradient time, peak memory and error against depth, for autograd, costate, "
        "costate-torch (the costate sweep on --device), costate-reversible, torchdiffeq-adjoint, "
        "torchdiffeq-direct and the peers jax, diffrax, "
        "diffrax-backsolve (optional extra peers; skipped with a note when not installed)",
        ["ocdl bench gradient --depths 16,64,256 --json grad.json --plot grad.png",
         "ocdl bench gradient --fields hamiltonian --methods autograd,costate-reversible --repeats 5",
         "ocdl bench gradient --fields outer --methods costate,jax,diffrax --depths 16,256"],
        func=run_gradient)
    g.add_argument("--fields", type=common.choice_list("field", ["outer", "hamiltonian", "inner"]),
                   default=["outer", "hamiltonian"], help="fields (default outer,hamiltonian)")
    g.add_argument("--depths", type=common.int_list, default=[16, 64, 256, 1024, 4096],
                   help="numbers of layers N (default 16,64,256,1024,4096)")
    g.add_argument("--samples", type=common.positive_int, default=512, help="data points n (default 512)")
    g.add_argument("--width", type=common.positive_int, default=8, help="state width d (default 8)")
    g.add_argument("--repeats", type=common.positive_int, default=3,
                   help="timing repeats; the best is reported (default 3)")
    g.add_argument("--methods", type=common.choice_list("method", METHODS), default=list(METHODS),
                   help="methods to run (default: all nine; jax and diffrax* need the extra peers)")
    g.add_argument("--T", type=common.positive, default=5.0, help="final time T (default 5)")
    common.add_outputs(g, device=True)

    t = common.add_command(
        bsub, "train", "time-to-target loss per solver over a few seeds (ocdl compare once per seed)",
        ["ocdl bench train --solvers adam,pmp-lbfgs,msa,newton --seeds 0,1,2 --target 0.02 --json train.json"],
        func=run_train)
    t.add_argument("--solvers", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                   default=["adam", "lbfgs", "pmp-lbfgs", "msa", "shooting", "newton"],
                   help="comma-separated solver names (default adam,lbfgs,pmp-lbfgs,msa,shooting,newton)")
    t.add_argument("--seeds", type=lambda s: [common.seed_int(x) for x in s.split(",") if x.strip()],
                   default=[0, 1, 2], help="comma-separated seeds (default 0,1,2)")
    t.add_argument("--target", type=common.positive, default=0.02, help="target loss J (default 0.02)")
    t.add_argument("--data", default="spirals", metavar=DATA_METAVAR,
                   help="a built-in data set (synthetic: drawn per seed; real: its fixed training split) or a CSV "
                        "(default spirals)")
    t.add_argument("--field", default="outer", help="field (default outer)")
    t.add_argument("--integrator", default="euler", help="integrator (default euler)")
    t.add_argument("--layers", type=common.positive_int, default=20, help="layers N (default 20)")
    t.add_argument("--T", type=common.positive, default=5.0, help="final time (default 5)")
    t.add_argument("--alpha", type=common.nonnegative, default=1e-3, help="weight regularisation (default 1e-3)")
    t.add_argument("--iterations", type=common.positive_int, default=None, help="iterations per run")
    common.add_outputs(t, seed=False, device=True)

    # --- ocdl bench block (ocdl.nn.ODEBlock against autograd / torchdiffeq; ocdl.bench.block) ---
    b = common.add_command(
        bsub, "block", "ocdl.nn.ODEBlock's forward + backward against plain autograd, torchdiffeq odeint_adjoint "
        "and odeint (same Euler steps): time, peak memory, gradient error against depth and width",
        ["ocdl bench block --depths 16,64,256,1024 --widths 8,64 --json block.json --plot block.png"],
        func=run_block)
    b.add_argument("--depths", type=common.int_list, default=[16, 64, 256, 1024],
                   help="numbers of layers N (default 16,64,256,1024)")
    b.add_argument("--widths", type=common.int_list, default=[8, 64], help="state widths (default 8,64)")
    b.add_argument("--samples", type=common.positive_int, default=256, help="batch size n (default 256)")
    b.add_argument("--repeats", type=common.positive_int, default=3, help="timing repeats; the best is reported")
    b.add_argument("--methods", type=common.choice_list("method", ["odeblock", "autograd", "torchdiffeq-adjoint",
                                                                   "torchdiffeq-direct"]),
                   default=["odeblock", "autograd", "torchdiffeq-adjoint", "torchdiffeq-direct"],
                   help="methods (default all four)")
    b.add_argument("--field", choices=["outer", "inner", "hamiltonian"], default="outer", help="field (default outer)")
    b.add_argument("--T", type=common.positive, default=5.0, help="final time T (default 5)")
    common.add_outputs(b)


def _print_table(header, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))


def _g(v, fmt=".3g"):
    return "-" if v is None else format(v, fmt)


def run_gradient(args):
    from ocdl.bench.gradient import plot_gradient_bench, run_gradient_bench, skip_note
    from ocdl.io import write_json
    device = common.resolve_device(args.device, args.quiet)
    result = run_gradient_bench(fields=args.fields, depths=args.depths, samples=args.samples, width=args.width,
                                repeats=args.repeats, device=device, methods=args.methods, T=args.T,
                                seed=args.seed, quiet=args.quiet)
    if result["skipped"]:
        print("ocdl: note: " + skip_note(result["skipped"]), file=sys.stderr)
    if args.json:
        write_json(args.json, result)
    if args.plot:
        plot_gradient_bench(result, args.plot)
    _print_table(["method", "field", "depth", "forward_s", "gradient_s", "compile_s", "peak_mib", "rel_error"],
                 [[r["method"], r["field"], r["depth"], _g(r["forward_s"]), _g(r["gradient_s"]),
                   _g(r.get("compile_s")), _g(r["peak_mib"], ".1f"), _g(r["rel_error"], ".2e")]
                  for r in result["runs"]])
    return 0


def run_train(args):
    from ocdl.bench.train import plot_train_bench, run_train_bench
    from ocdl.io import write_json
    device = common.resolve_device(args.device, args.quiet)
    result = run_train_bench(args.solvers, args.seeds, args.target, data=args.data, field=args.field,
                             integrator=args.integrator, layers=args.layers, T=args.T, alpha=args.alpha,
                             iterations=args.iterations, device=device, quiet=args.quiet)
    if args.json:
        write_json(args.json, result)
    if args.plot:
        plot_train_bench(result, args.plot)
    _print_table(["solver", "reached", "median_time_to_target_s", "median_final_loss", "median_wall_time_s"],
                 [[s["solver"], f"{s['reached']}/{s['runs']}", _g(s["median_time_to_target_s"]),
                   _g(s["median_final_loss"], ".4g"), _g(s["median_wall_time_s"])] for s in result["summary"]])
    return 0


def run_block(args):
    from ocdl.bench.block import format_table, plot_block_bench, run_block_bench
    from ocdl.io import write_json
    result = run_block_bench(depths=args.depths, widths=args.widths, samples=args.samples, repeats=args.repeats,
                             methods=args.methods, field=args.field, T=args.T, seed=args.seed, quiet=args.quiet,
                             partial=(lambda r: write_json(args.json, r)) if args.json else None)
    if args.json:
        write_json(args.json, result)
    if args.plot:
        plot_block_bench(result, args.plot)
    print(format_table(result))
    return 0
