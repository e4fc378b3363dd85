"""``ocdl compare`` — flags of :class:`ocdl.jobs.compare.CompareJob`; prints the table."""
from ocdl.cli import common


def register(sub):
    from ocdl.jobs.compare import CompareJob
    p = common.add_command(
        sub, "compare", "run several solvers (backprop and Pontryagin) on the same problem and compare them",
        ["ocdl compare --data spirals --solvers adam,pmp-lbfgs,msa,newton --json cmp.json --plot cmp.png",
         "ocdl compare --data train.csv --test test.csv --solvers adam,newton --layers 10 --T 2"],
        run)
    common.add_job(p, CompareJob)
    return p


def run(args):
    from ocdl.solvers.compare import table
    result = common.run_job(args)
    print(table(result))
    for name, r in result["solvers"].items():
        if not r.get("error"):                   # failures are listed under the table already
            common.not_converged(args, name, r["converged"], r["message"])
    return 0
