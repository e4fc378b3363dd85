"""Benchmarks and parameter sweeps.

* :mod:`ocdl.bench.sweep`       grid sweeps over ``ocdl.solvers.train`` (local or dask.distributed);
* :mod:`ocdl.bench.gradient`    gradient time / memory / accuracy against autograd and torchdiffeq;
* :mod:`ocdl.bench.reversible`  the constant-memory costate sweep of the reversible Verlet network;
* :mod:`ocdl.bench.train`       time-to-target of the training solvers over seeds.
"""


def text_table(header, rows):
    """``rows`` under ``header`` as left-aligned plain-text columns (the bench commands' tables)."""
    widths = [max([len(str(h))] + [len(str(r[i])) for r in rows]) for i, h in enumerate(header)]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in [header, *rows])


def number(v, fmt=".3g"):
    """``v`` formatted, ``-`` for None."""
    return "-" if v is None else format(v, fmt)
