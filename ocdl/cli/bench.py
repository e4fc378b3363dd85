"""``ocdl bench gradient|train|block`` — flags of the jobs of :mod:`ocdl.jobs.bench`; prints their tables."""
import sys

from ocdl.cli import common


def register(sub):
    from ocdl.jobs.bench import BenchBlockJob, BenchGradientJob, BenchTrainJob
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
         "ocdl bench gradient --fields outer --methods costate,jax,diffrax --depths 16,256"], run_gradient)
    common.add_job(g, BenchGradientJob)
    t = common.add_command(
        bsub, "train", "time-to-target loss per solver over a few seeds (ocdl compare once per seed)",
        ["ocdl bench train --solvers adam,pmp-lbfgs,msa,newton --seeds 0,1,2 --target 0.02 --json train.json"],
        run_train)
    common.add_job(t, BenchTrainJob)
    b = common.add_command(
        bsub, "block", "ocdl.nn.ODEBlock's forward + backward against plain autograd, torchdiffeq odeint_adjoint "
        "and odeint (same Euler steps): time, peak memory, gradient error against depth and width",
        ["ocdl bench block --depths 16,64,256,1024 --widths 8,64 --json block.json --plot block.png"], run_block)
    common.add_job(b, BenchBlockJob)


def run_gradient(args):
    from ocdl.bench.gradient import format_table, skip_note
    result = common.run_job(args)
    if result["skipped"]:
        print("ocdl: note: " + skip_note(result["skipped"]), file=sys.stderr)
    print(format_table(result))
    return 0


def run_train(args):
    from ocdl.bench.train import format_table
    print(format_table(common.run_job(args)))
    return 0


def run_block(args):
    from ocdl.bench.block import format_table
    print(format_table(common.run_job(args)))
    return 0
