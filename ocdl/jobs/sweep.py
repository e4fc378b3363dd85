"""``ocdl sweep`` as a library call: :class:`SweepJob` runs the grid of a sweep file
(:mod:`ocdl.bench.sweep`). Before any run: the file and every name and setting in it are
validated, every path the sweep reads (the sweep file, ``[grid] data`` and ``[data] test`` CSVs)
and writes (``OUT/summary.csv``, ``OUT/summary.md``, ``OUT/runs/<name>.json``) goes through the
one :func:`ocdl.io.paths.check_paths`, and the number of runs is printed and refused above
``max_runs`` (default :data:`MAX_RUNS`)."""
import dataclasses
import os

from ocdl.errors import InputError
from ocdl.jobs.base import Job, option

#: largest grid a sweep runs without ``max_runs`` / ``--max-runs`` (each run is a training run)
MAX_RUNS = 1000


@dataclasses.dataclass
class SweepJob(Job):
    """``ocdl sweep --config SWEEP.toml --out DIR``."""
    config: str = option(None, "the sweep file (TOML, see docs/sweep.md)", "path", role="input", cli=False)
    out: str = option(None, "output directory (created if missing)", "path", role="directory", required=True,
                      metavar="DIR")
    backend: str = option("local", "local: one run after another in this process (default); dask: "
                                   "dask.distributed", "choice", choices=["local", "dask"])
    scheduler: str = option(None, "dask scheduler address (e.g. tcp://host:8786); default: a LocalCluster", "text",
                            metavar="ADDRESS")
    workers: int = option(2, "workers of the LocalCluster when no --scheduler is given (default 2)", "count")
    max_runs: int = option(None, f"run grids of more than {MAX_RUNS} runs (default: refuse them)", "count",
                           metavar="N")

    def check(self):
        from ocdl.bench.sweep import load_sweep, validate_names, validate_settings
        if not self.config:
            raise InputError("ocdl sweep needs --config SWEEP.toml (the sweep file; see docs/sweep.md)")
        if self.out is None:
            raise InputError("ocdl sweep needs --out DIR")
        self.sweep = load_sweep(self.config)
        validate_names(self.sweep)
        validate_settings(self.sweep)  # typos and bad values stop the sweep before any run
        self.runs = self.sweep.runs()
        bound = self.max_runs or MAX_RUNS
        if len(self.runs) > bound:
            raise InputError(f"sweep file '{self.config}' makes {len(self.runs)} runs (the product of its [grid] "
                             f"lists); at most {bound} run without --max-runs {len(self.runs)}")
        self.log(f"sweep: {len(self.runs)} runs")

    def inputs(self):
        files = [("--config", self.config)]
        files += [("[grid] data", d) for d in self.sweep.grid["data"] if str(d).lower().endswith(".csv")]
        test = self.sweep.data_options.get("test")
        if isinstance(test, str):
            files.append(("[data] test", test))
        return files

    def outputs(self):
        out = [("--out", os.path.join(self.out, "summary.csv")), ("--out", os.path.join(self.out, "summary.md"))]
        return out + [("--out", os.path.join(self.out, "runs", r["name"] + ".json")) for r in self.runs]

    def execute(self):
        from ocdl.bench.sweep import run_sweep
        result = run_sweep(self.sweep, self.out, backend=self.backend, scheduler=self.scheduler,
                           workers=self.workers, quiet=self.quiet)
        return result
