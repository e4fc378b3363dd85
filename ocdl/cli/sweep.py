"""``ocdl sweep`` — flags of :class:`ocdl.jobs.sweep.SweepJob`; prints the tally."""
from ocdl.cli import common


def register(sub):
    from ocdl.jobs.sweep import SweepJob
    p = common.add_command(
        sub, "sweep", "run a grid of training runs (datasets × solvers × fields × integrators × depths × seeds)",
        ["ocdl sweep --config sweep.toml --out runs/",
         "ocdl sweep --config sweep.toml --backend dask --scheduler tcp://10.0.0.5:8786 --out runs/"],
        func=run,
        description="Run every combination of the [grid] lists of a sweep file (TOML: tables [grid], "
                    "[settings], [data]; see docs/sweep.md) with ocdl.solvers.train. Each run writes "
                    "OUT/runs/<name>.json atomically; a rerun skips finished runs; OUT/summary.csv and "
                    "OUT/summary.md tabulate all runs. Here --config is the sweep file itself.")
    # ocdl sweep reads its --config file itself (it is not a file of flags); main.apply_config
    # must leave it alone when this default is set.
    p.set_defaults(own_config=True)
    common.add_job(p, SweepJob)


def run(args):
    from ocdl.errors import SolverError
    result = common.run_job(args)
    print(f"{len(result['records'])} runs ({result['ran']} run now, {result['skipped']} skipped, "
          f"{result['failed']} failed); summary: {args.out}/summary.csv, {args.out}/summary.md")
    if result["failed"]:
        first = next(r for r in result["records"] if r["status"] != "ok")
        raise SolverError(f"{result['failed']} of {len(result['records'])} sweep runs failed (first: "
                          f"{first['name']}: {first.get('message', '')}); rerun the same command to retry them")
    return 0
