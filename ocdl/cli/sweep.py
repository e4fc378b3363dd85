"""``ocdl sweep``: a grid of training runs from a TOML sweep file (see ocdl.bench.sweep)."""
from ocdl.cli import common


def register(sub):
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
    p.add_argument("--backend", type=common.choice("backend", ["local", "dask"]), default="local",
                   help="local: one run after another in this process (default); dask: dask.distributed")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask scheduler address (e.g. tcp://host:8786); default: a LocalCluster")
    p.add_argument("--workers", type=common.positive_int, default=2,
                   help="workers of the LocalCluster when no --scheduler is given (default 2)")
    p.add_argument("--out", metavar="DIR", required=True, help="output directory (created if missing)")


def run(args):
    from ocdl.bench.sweep import load_sweep, run_sweep, validate_names, validate_settings
    from ocdl.errors import InputError, SolverError
    if not args.config:
        raise InputError("ocdl sweep needs --config SWEEP.toml (the sweep file; see docs/sweep.md)")
    sweep = load_sweep(args.config)
    validate_names(sweep)
    validate_settings(sweep)  # typos and bad values stop the sweep before any run
    result = run_sweep(sweep, args.out, backend=args.backend, scheduler=args.scheduler,
                       workers=args.workers, quiet=args.quiet)
    print(f"{len(result['records'])} runs ({result['ran']} run now, {result['skipped']} skipped, "
          f"{result['failed']} failed); summary: {args.out}/summary.csv, {args.out}/summary.md")
    if result["failed"]:
        first = next(r for r in result["records"] if r["status"] != "ok")
        raise SolverError(f"{result['failed']} of {len(result['records'])} sweep runs failed (first: "
                          f"{first['name']}: {first.get('message', '')}); rerun the same command to retry them")
    return 0
