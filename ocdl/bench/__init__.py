"""Benchmarks and parameter sweeps.

* :mod:`ocdl.bench.sweep`       grid sweeps over ``ocdl.solvers.train`` (local or dask.distributed);
* :mod:`ocdl.bench.gradient`    gradient time / memory / accuracy against autograd and torchdiffeq;
* :mod:`ocdl.bench.reversible`  the constant-memory costate sweep of the reversible Verlet network;
* :mod:`ocdl.bench.train`       time-to-target of the training solvers over seeds;
* :mod:`ocdl.bench.block`       ``ocdl.nn.ODEBlock`` against autograd and torchdiffeq;
* :mod:`ocdl.bench.fresh`       one case in a fresh process (the runner of bench gradient and
  block: :func:`~ocdl.bench.fresh.run`, peak memory, best-of times), with :func:`worker_main`.
"""


def text_table(header, rows):
    """``rows`` under ``header`` as left-aligned plain-text columns (the bench commands' tables)."""
    widths = [max([len(str(h))] + [len(str(r[i])) for r in rows]) for i, h in enumerate(header)]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in [header, *rows])


def number(v, fmt=".3g"):
    """``v`` formatted, ``-`` for None."""
    return "-" if v is None else format(v, fmt)


RESULT_PREFIX = "OCDL-BENCH-RESULT "


def worker_main(argv, measure, prog):
    """The entry point of a benchmark's worker process, ``python -m PROG SPEC`` (the parent starts
    one per case so every case gets a fresh process and its own peak memory): ``measure(spec)`` of
    the JSON object SPEC, printed on one line after :data:`RESULT_PREFIX`. Returns the exit code:
    without one JSON object argument a usage line (exit 2); an ocdl error one line (its code)."""
    import json
    import sys

    from ocdl.errors import OcdlError
    usage = f"usage: python -m {prog} SPEC (one benchmark case as a JSON object; started by 'ocdl bench')"
    try:
        spec = json.loads(argv[0]) if len(argv) == 1 else None
    except ValueError:
        spec = None
    if not isinstance(spec, dict):
        print(usage, file=sys.stderr)
        return 2
    try:
        out = measure(spec)
    except OcdlError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    sys.stdout.write(RESULT_PREFIX + json.dumps(out) + "\n")
    return 0
