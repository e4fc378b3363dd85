"""Grid sweeps over ``ocdl.solvers.train``: one JSON per run, resumable, local or dask.distributed.

A sweep file (TOML) has three tables::

    [grid]                       # every combination of these lists is one run
    data = ["spirals"]           # dataset names (spirals, circles, moons) or CSV paths
    solver = ["adam", "pmp-adam"]
    field = ["outer"]
    integrator = ["euler"]
    layers = [20]
    seed = [0, 1, 2]

    [settings]                   # fixed keyword arguments of ocdl.solvers.train, for every run
    T = 5.0
    iterations = 300
    alpha = 1e-3

    [data]                       # optional: options of the dataset generator (e.g. noise),
    noise = 0.03                 # and test = "PATH.csv" or test = true (held-out set, seed + 10000)
    test = true

Every grid key is optional (defaults: data "spirals", solver "adam", field "outer",
integrator "euler", layers 20, seed 0); a scalar counts as a one-element list. A run is named
``<data>-<solver>-<field>-<integrator>-L<layers>-s<seed>-<hash>`` where ``hash`` is the first
10 hex digits of the SHA-256 of the run's complete settings (grid values, [settings], [data]),
so changing any setting gives new runs and a rerun with the same file skips finished ones.

Each finished run is written atomically to ``OUT/runs/<name>.json`` as soon as it completes
(by the process that drives the sweep, so a remote dask cluster needs no shared disk); a
failed run is recorded with ``"status": "failed"`` and retried on the next invocation. At the
end ``OUT/summary.csv`` and ``OUT/summary.md`` tabulate every run of the grid.
"""
import hashlib
import inspect
import itertools
import json
import logging
import os
import re
import time
import traceback

from ocdl.errors import InputError, interrupt_cause
from ocdl.io import read_toml, write_csv, write_json
from ocdl.progress import Progress, log

GRID_KEYS = ("data", "solver", "field", "integrator", "layers", "seed")
GRID_DEFAULTS = {"data": "spirals", "solver": "adam", "field": "outer", "integrator": "euler",
                 "layers": 20, "seed": 0}
TABLES = ("grid", "settings", "data")
# keyword arguments of ocdl.solvers.train that [settings] may not set (they belong to [grid]
# or are objects that cannot live in a TOML file)
RESERVED_SETTINGS = set(GRID_KEYS) | {"params0", "callback", "quiet", "X", "y"}
SUMMARY_COLUMNS = ("name", "status", "data", "solver", "field", "integrator", "layers", "seed",
                   "train_loss", "train_accuracy", "test_accuracy", "iterations", "wall_time_s",
                   "message")
FORMAT = "ocdl-sweep-run/1"


class Sweep:
    """A validated sweep: ``grid`` (key -> list), ``settings`` and ``data_options`` (dicts)."""

    def __init__(self, grid, settings=None, data_options=None, source="<sweep>"):
        self.source = source
        self.grid = _check_grid(grid, source)
        self.settings = _check_settings(settings or {}, source)
        self.data_options = _check_plain(data_options or {}, source, "data")

    def runs(self):
        """The list of run dicts, in a deterministic order (grid keys vary last-fastest)."""
        lists = [self.grid[k] for k in GRID_KEYS]
        out = []
        for combo in itertools.product(*lists):
            run = dict(zip(GRID_KEYS, combo))
            run["settings"] = dict(self.settings)
            run["data_options"] = dict(self.data_options)
            run["name"] = run_name(run)
            out.append(run)
        return out


def load_sweep(path):
    """Read and validate a sweep TOML file (see the module docstring); raise InputError if bad."""
    cfg = read_toml(path, "sweep")
    unknown = [k for k in cfg if k not in TABLES]
    if unknown:
        raise InputError(f"sweep file '{path}': unknown key '{unknown[0]}' at top level "
                         f"(valid tables: {', '.join('[' + t + ']' for t in TABLES)})")
    for t in TABLES:
        if t in cfg and not isinstance(cfg[t], dict):
            raise InputError(f"sweep file '{path}': '{t}' must be a table [{t}], not a value")
    if "grid" not in cfg:
        raise InputError(f"sweep file '{path}' has no [grid] table; add e.g. [grid] solver = [\"adam\"]")
    return Sweep(cfg["grid"], cfg.get("settings"), cfg.get("data"), source=path)


def _check_grid(grid, source):
    out = {}
    for key, value in grid.items():
        if key not in GRID_KEYS:
            raise InputError(f"sweep file '{source}': unknown [grid] key '{key}' "
                             f"(valid: {', '.join(GRID_KEYS)}; fixed options go in [settings])")
        values = value if isinstance(value, list) else [value]
        if not values:
            raise InputError(f"sweep file '{source}': [grid] {key} is an empty list; give at least one value")
        for v in values:
            if key in ("layers", "seed"):
                if not isinstance(v, int) or isinstance(v, bool) or (key == "layers" and v <= 0) or v < 0:
                    raise InputError(f"sweep file '{source}': [grid] {key} value {v!r} must be a "
                                     f"{'positive' if key == 'layers' else 'non-negative'} integer")
            elif not isinstance(v, str) or not v:
                raise InputError(f"sweep file '{source}': [grid] {key} value {v!r} must be a non-empty string")
        if len(set(map(repr, values))) != len(values):
            raise InputError(f"sweep file '{source}': [grid] {key} lists a value twice")
        out[key] = values
    for key in GRID_KEYS:
        out.setdefault(key, [GRID_DEFAULTS[key]])
    return out


def _check_settings(settings, source):
    for key in settings:
        if key in RESERVED_SETTINGS:
            where = "[grid]" if key in GRID_KEYS else "nowhere (not settable from a file)"
            raise InputError(f"sweep file '{source}': [settings] may not set '{key}'; it belongs in {where}")
    return _check_plain(settings, source, "settings")


def _check_plain(table, source, name):
    for key, value in table.items():
        if isinstance(value, dict):
            raise InputError(f"sweep file '{source}': [{name}] {key} is a table; give a plain value")
        if isinstance(value, float) and value != value:
            raise InputError(f"sweep file '{source}': [{name}] {key} is NaN; give a finite number")
    return dict(table)


def validate_names(sweep):
    """Check the grid's solver, field, integrator and dataset names against the library
    (InputError naming the first bad one), so a typo stops the sweep before any run."""
    from ocdl.data.datasets import ALL_DATASETS
    from ocdl.errors import check_choice
    from ocdl.models import FIELDS
    from ocdl.models.resnet import integrators_for
    from ocdl.solvers import SOLVERS
    for s in sweep.grid["solver"]:
        check_choice("solver", s, list(SOLVERS))
    for f in sweep.grid["field"]:
        check_choice("field", f, list(FIELDS))
        for m in sweep.grid["integrator"]:
            if m not in integrators_for(f):
                raise InputError(f"sweep file '{sweep.source}': integrator '{m}' does not apply to field '{f}' "
                                 f"(valid: {', '.join(integrators_for(f))})")
    for d in sweep.grid["data"]:
        if str(d).lower().endswith(".csv"):
            if not os.path.isfile(d):
                raise InputError(f"sweep file '{sweep.source}': data file '{d}' not found")
        else:
            check_choice("dataset", d, ALL_DATASETS)


#: solver keywords the CLI plumbing passes (objects, not settable from a file)
_PLUMBING = {"model", "params0", "X", "y", "callback", "quiet", "state0", "checkpoint", "checkpoint_every",
             "should_stop", "options", "unused", "kwargs"}
#: train's own keywords whose default (None) says nothing about their type
_INT_SETTINGS = {"width": 1, "iterations": 0}


def settable(solver):
    """``{name: default}`` of the [settings] keys a run of ``solver`` accepts: the named keyword
    arguments of ``ocdl.solvers.train`` and of the solver function (their real signatures), minus
    the grid keys and the objects the CLI passes."""
    from ocdl.solvers import SOLVERS, train
    out = {}
    for fn in (train, SOLVERS[solver]):
        for name, par in inspect.signature(fn).parameters.items():
            if par.kind in (par.POSITIONAL_OR_KEYWORD, par.KEYWORD_ONLY) and name not in _PLUMBING \
                    and name not in RESERVED_SETTINGS:
                out.setdefault(name, par.default)
    return out


def validate_settings(sweep):
    """Check every [settings] key against the real signatures of ``train`` and of each grid solver
    (a typo is an InputError with did-you-mean), each value against its default's type and sign
    (a number whose default is > 0 must be > 0, ≥ 0 must be ≥ 0), and build each grid point's
    model once on a two-point data set — all before any run, so a bad value is not retried."""
    import numpy as np

    from ocdl.errors import unknown_name
    from ocdl.solvers import make_model
    src = sweep.source
    for solver in sweep.grid["solver"]:
        accepted = settable(solver)
        for key, value in sweep.settings.items():
            if key not in accepted:
                err = unknown_name(f"[settings] key for solver '{solver}'", key, sorted(accepted))
                raise InputError(f"sweep file '{src}': {err}")
            _check_value(src, key, value, _INT_SETTINGS.get(key, accepted[key]))
    model_keys = {k: v for k, v in sweep.settings.items() if k in ("T", "width", "alpha", "beta")}
    X, y = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([0, 1])
    for field in sweep.grid["field"]:
        for integrator in sweep.grid["integrator"]:
            for layers in sweep.grid["layers"]:
                try:
                    make_model(X, y, field=field, integrator=integrator, layers=layers, **model_keys)
                except InputError as exc:
                    raise InputError(f"sweep file '{src}': [settings]/[grid] give an invalid model ({exc})") from None


def _check_value(src, key, value, default):
    where = f"sweep file '{src}': [settings] {key} = {value!r}"
    if default is None or default is inspect.Parameter.empty:
        return
    number = isinstance(default, (int, float)) and not isinstance(default, bool)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise InputError(f"{where} must be true or false")
    elif number:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{where} must be a number (like the default {default!r})")
        if isinstance(default, int) and not isinstance(value, int):
            raise InputError(f"{where} must be an integer")
        if value != value or value in (float("inf"), float("-inf")):
            raise InputError(f"{where} must be finite")
        if default > 0 and value <= 0:
            raise InputError(f"{where} must be > 0")
        if default >= 0 and value < 0:
            raise InputError(f"{where} must be ≥ 0")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise InputError(f"{where} must be a string (like the default {default!r})")
    elif isinstance(default, tuple):
        if not isinstance(value, list) or len(value) != len(default) or \
                any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
            raise InputError(f"{where} must be a list of {len(default)} numbers")


def run_name(run):
    """Stable, readable file name of a run: ``data-solver-field-integrator-L<layers>-s<seed>-<hash>``."""
    key = {k: run[k] for k in GRID_KEYS}
    key["settings"] = run.get("settings", {})
    key["data_options"] = run.get("data_options", {})
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    data = os.path.splitext(os.path.basename(str(run["data"])))[0]
    parts = [data, run["solver"], run["field"], run["integrator"], f"L{run['layers']}", f"s{run['seed']}"]
    slug = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)) for p in parts)
    return f"{slug}-{digest}"


# --------------------------------------------------------------------------------------------
# executing one run

TEST_SEED_OFFSET = 10_000


def run_data(run):
    """``(X, y, test)`` of a run through the one loader (:func:`ocdl.data.loading.load_dataset`):
    the training data (a dataset name — synthetic: generated with the run's seed and the [data]
    options; real: its training split — or a CSV path) and the held-out ``(X_test, y_test)`` or
    None: ``[data] test = "PATH.csv"`` (encoded with the training data's classes) or ``test = true``
    (synthetic sets: the same generator with seed + :data:`TEST_SEED_OFFSET`; real sets: their
    fixed test split)."""
    from ocdl.data.loading import load_dataset
    options = {k: v for k, v in run["data_options"].items() if k != "test"}
    test = run["data_options"].get("test")
    csv = str(run["data"]).lower().endswith(".csv")
    if csv and options:
        raise InputError(f"[data] options {', '.join(sorted(options))} apply to generated data sets, not to "
                         f"'{run['data']}'")
    ds = load_dataset(run["data"], test if isinstance(test, str) else None, seed=run["seed"],
                      options=None if csv else options, test_seed=run["seed"] + TEST_SEED_OFFSET)
    return ds.X, ds.y, ((ds.X_test, ds.y_test) if test and ds.X_test is not None else None)


def train_run(run):
    """Default run function: ``ocdl.solvers.train`` on the run's data; returns the metrics dict."""
    import numpy as np

    from ocdl.solvers import train
    X, y, test = run_data(run)
    res = train(X, y, solver=run["solver"], field=run["field"], integrator=run["integrator"],
                layers=run["layers"], seed=run["seed"], quiet=True, **run["settings"])
    model = res.model
    out = {"train_loss": float(res.fun), "iterations": int(res.nit), "success": bool(res.success),
           "message": str(res.message), "train_accuracy": float(np.mean(model.predict(res.x, X) == y)),
           "test_accuracy": None if test is None else float(np.mean(model.predict(res.x, test[0]) == test[1])),
           "history": [{k: h[k] for k in ("iteration", "loss", "time_s") if k in h} for h in res.history]}
    return out


def execute(run, run_fn=None):
    """Run one grid point and return its record (never raises: failures are recorded)."""
    run_fn = run_fn or train_run
    start = time.perf_counter()
    record = {"format": FORMAT, "name": run["name"], **{k: run[k] for k in GRID_KEYS},
              "settings": run["settings"], "data_options": run["data_options"]}
    try:
        result = run_fn(run)
        record.update(result)
        record["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
        interrupt = interrupt_cause(exc)
        if interrupt is not None:       # a signal wrapped on its way up: stop, do not record a failure
            raise interrupt from None
        record["status"] = "failed"
        record["message"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]
        record["traceback"] = traceback.format_exc()[-4000:]
    record.setdefault("wall_time_s", time.perf_counter() - start)
    return record


def _finished(path):
    try:
        with open(path) as fh:
            rec = json.load(fh)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("status") == "ok" else None


# --------------------------------------------------------------------------------------------
# the sweep driver

def run_sweep(sweep, out, backend="local", scheduler=None, workers=2, run_fn=None, quiet=False,
              processes=True):
    """Run every unfinished grid point of ``sweep``; write ``out/runs/*.json`` and the summary.

    ``backend="local"`` runs in this process, one after another; ``backend="dask"`` submits them
    to ``dask.distributed`` — ``Client(scheduler)`` when an address is given, else a
    ``LocalCluster`` of ``workers`` single-threaded workers. Records are written by this process
    as results arrive. Returns ``{"records": [...], "ran": n, "skipped": n, "failed": n}``.
    """
    if backend not in ("local", "dask"):
        raise InputError(f"unknown backend '{backend}' (valid: local, dask)")
    if scheduler and backend != "dask":
        raise InputError("--scheduler needs --backend dask")
    runs_dir = os.path.join(out, "runs")
    try:
        os.makedirs(runs_dir, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output directory '{out}' ({exc.strerror})") from None
    runs = sweep.runs()
    records, todo = {}, []
    for run in runs:
        done = _finished(os.path.join(runs_dir, run["name"] + ".json"))
        if done is not None:
            records[run["name"]] = done
        else:
            todo.append(run)
    skipped = len(runs) - len(todo)
    bar = Progress(len(todo), "sweep", quiet)

    def store(rec, i):
        write_json(os.path.join(runs_dir, rec["name"] + ".json"), rec)
        records[rec["name"]] = rec
        bar.update(i, force=True, failed=sum(r["status"] != "ok" for r in records.values()))

    try:
        log(f"sweep: {len(runs)} runs, {skipped} already finished, {len(todo)} to run ({backend})", quiet)
        if todo and backend == "local":
            for i, run in enumerate(todo, 1):
                store(execute(run, run_fn), i)
        elif todo:
            _run_dask(todo, store, scheduler, workers, run_fn, processes)
    except KeyboardInterrupt:              # SIGINT/SIGTERM: the finished runs are kept and tabulated
        bar.close()
        write_summary(out, [records[r["name"]] for r in runs if r["name"] in records])
        raise
    bar.close()
    ordered = [records[r["name"]] for r in runs if r["name"] in records]
    write_summary(out, ordered)
    failed = sum(r["status"] != "ok" for r in ordered)
    return {"records": ordered, "ran": len(todo), "skipped": skipped, "failed": failed}


def _run_dask(todo, store, scheduler, workers, run_fn, processes):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError("the dask backend needs dask[distributed]: pip install 'dask[distributed]'") from None
    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout=30)
            except (OSError, TimeoutError, ValueError) as exc:
                raise InputError(f"cannot connect to dask scheduler '{scheduler}' ({exc})") from None
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
        with client:
            futures = [client.submit(execute, run, run_fn, key=f"ocdl-sweep-{run['name']}", pure=False)
                       for run in todo]
            for i, fut in enumerate(as_completed(futures), 1):
                store(fut.result(), i)
    finally:
        if cluster is not None:
            cluster.close()


def write_summary(out, records):
    """``out/summary.csv`` and ``out/summary.md``: one row per run, columns SUMMARY_COLUMNS."""
    rows = [[_cell(r.get(c)) for c in SUMMARY_COLUMNS] for r in records]
    write_csv(os.path.join(out, "summary.csv"), SUMMARY_COLUMNS, rows)
    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * len(SUMMARY_COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_md(v) for v in row) + " |")
    from ocdl.io import atomic_write
    with atomic_write(os.path.join(out, "summary.md")) as fh:
        fh.write("\n".join(lines) + "\n")


def _cell(v):
    return "" if v is None else v


def _md(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v).replace("|", "\\|").replace("\n", " ")
