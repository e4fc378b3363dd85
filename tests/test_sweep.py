"""ocdl sweep: grid expansion, resumability, summaries, bad sweep files, the dask backend.

The training itself is replaced by a stand-in run function (``fake_run``) whose result is a
known function of the settings, so the machinery is checked against values we can predict.
"""
import csv
import json
import os

import pytest

from ocdl.bench import sweep as sw
from ocdl.errors import InputError

SWEEP = """
[grid]
data = ["spirals"]
solver = ["adam", "pmp-adam"]
layers = [4, 8]
seed = [0, 1]

[settings]
T = 5.0
iterations = 3
"""


def fake_run(run):
    """Stand-in for training: loss = layers/10 + seed (+1 for pmp-adam); 'boom' fails."""
    if run["solver"] == "boom":
        raise RuntimeError("diverged\nbadly")
    loss = run["layers"] / 10 + run["seed"] + (1.0 if run["solver"] == "pmp-adam" else 0.0)
    return {"train_loss": loss, "train_accuracy": 0.5, "iterations": run["settings"]["iterations"]}


def write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def expected_loss(rec):
    return rec["layers"] / 10 + rec["seed"] + (1.0 if rec["solver"] == "pmp-adam" else 0.0)


def test_grid_runs_summary_and_resume(tmp_path):
    sweep = sw.load_sweep(write(tmp_path, SWEEP))
    runs = sweep.runs()
    assert len(runs) == 2 * 2 * 2  # solvers × layers × seeds
    assert len({r["name"] for r in runs}) == len(runs)
    assert all(r["field"] == "outer" and r["integrator"] == "euler" for r in runs)  # defaults
    out = tmp_path / "out"
    res = sw.run_sweep(sweep, str(out), run_fn=fake_run, quiet=True)
    assert (res["ran"], res["skipped"], res["failed"]) == (8, 0, 0)
    files = sorted(os.listdir(out / "runs"))
    assert files == sorted(r["name"] + ".json" for r in runs)
    for f in files:
        rec = json.loads((out / "runs" / f).read_text())
        assert rec["status"] == "ok" and rec["train_loss"] == expected_loss(rec)
        assert rec["settings"] == {"T": 5.0, "iterations": 3}
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["name"] for r in rows] == [r["name"] for r in runs]
    assert all(float(r["train_loss"]) == expected_loss({k: (int(r[k]) if k in ("layers", "seed") else r[k])
                                                        for k in ("layers", "seed", "solver")}) for r in rows)
    md = (out / "summary.md").read_text().splitlines()
    assert len(md) == 2 + 8 and md[0].startswith("| name | status |")
    # rerun: nothing runs again, files untouched
    mtimes = {f: os.stat(out / "runs" / f).st_mtime_ns for f in files}

    def must_not_run(run):
        raise AssertionError("finished run executed again")
    res2 = sw.run_sweep(sweep, str(out), run_fn=must_not_run, quiet=True)
    assert (res2["ran"], res2["skipped"]) == (0, 8)
    assert mtimes == {f: os.stat(out / "runs" / f).st_mtime_ns for f in files}


def test_names_stable_and_sensitive_to_settings(tmp_path):
    a = sw.load_sweep(write(tmp_path, SWEEP)).runs()
    b = sw.load_sweep(write(tmp_path, SWEEP, "again.toml")).runs()
    c = sw.load_sweep(write(tmp_path, SWEEP.replace("iterations = 3", "iterations = 4"), "c.toml")).runs()
    assert [r["name"] for r in a] == [r["name"] for r in b]
    assert not {r["name"] for r in a} & {r["name"] for r in c}
    assert a[0]["name"].startswith("spirals-adam-outer-euler-L4-s0-")


def test_failed_runs_recorded_and_retried(tmp_path):
    sweep = sw.load_sweep(write(tmp_path, '[grid]\nsolver = ["adam", "boom"]\n[settings]\niterations = 2\n'))
    out = str(tmp_path / "out")
    res = sw.run_sweep(sweep, out, run_fn=fake_run, quiet=True)
    assert res["failed"] == 1
    bad = next(r for r in res["records"] if r["solver"] == "boom")
    assert bad["status"] == "failed" and bad["message"] == "RuntimeError: diverged badly"
    res2 = sw.run_sweep(sweep, out, run_fn=fake_run, quiet=True)
    assert (res2["ran"], res2["skipped"], res2["failed"]) == (1, 1, 1)


@pytest.mark.parametrize("text, words", [
    ("[grid]\nsolvers = ['adam']\n", ["unknown [grid] key 'solvers'", "valid: data, solver"]),
    ("grid = 3\n", ["'grid' must be a table"]),
    ("[settings]\nT = 1.0\n", ["no [grid] table"]),
    ("[grid]\nsolver = []\n", ["empty list"]),
    ("[grid]\nlayers = [0]\n", ["layers value 0 must be a positive integer"]),
    ("[grid]\nseed = ['a']\n", ["seed value 'a'"]),
    ("[grid]\nsolver = ['adam']\n[settings]\nlayers = 3\n", ["may not set 'layers'", "[grid]"]),
    ("[grid]\nsolver = ['adam']\n[extra]\nx = 1\n", ["unknown key 'extra' at top level"]),
    ("[grid\nsolver = 1\n", ["not valid TOML"]),
])
def test_bad_sweep_files(tmp_path, text, words):
    with pytest.raises(InputError) as exc:
        sw.load_sweep(write(tmp_path, text))
    msg = str(exc.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_missing_file_and_bad_backend(tmp_path):
    with pytest.raises(InputError, match="not found"):
        sw.load_sweep(str(tmp_path / "nope.toml"))
    sweep = sw.load_sweep(write(tmp_path, SWEEP))
    with pytest.raises(InputError, match="needs --backend dask"):
        sw.run_sweep(sweep, str(tmp_path / "o"), scheduler="tcp://x:1", run_fn=fake_run, quiet=True)


def test_dask_backend_local_cluster_two_workers(tmp_path):
    pytest.importorskip("dask.distributed")
    sweep = sw.load_sweep(write(tmp_path, SWEEP))
    out = tmp_path / "dask"
    res = sw.run_sweep(sweep, str(out), backend="dask", workers=2, processes=False, run_fn=fake_run, quiet=True)
    assert (res["ran"], res["failed"]) == (8, 0)
    # same records as the local backend, in grid order
    assert [r["name"] for r in res["records"]] == [r["name"] for r in sweep.runs()]
    assert all(r["train_loss"] == expected_loss(r) for r in res["records"])
    assert len(os.listdir(out / "runs")) == 8
    res2 = sw.run_sweep(sweep, str(out), backend="dask", workers=2, processes=False, run_fn=fake_run, quiet=True)
    assert (res2["ran"], res2["skipped"]) == (0, 8)


def test_cli_bad_sweep_file_one_line(tmp_path, capsys):
    """The command function itself (bypassing main's generic --config handling, see docs/sweep.md)."""
    from ocdl.cli.main import build_parser
    path = write(tmp_path, "[grid]\nfield = ['outre']\n[settings]\nlayers = 2\n")
    args = build_parser().parse_args(["sweep", "--config", path, "--out", str(tmp_path / "o")])
    with pytest.raises(InputError) as exc:
        args.func(args)
    assert "may not set 'layers'" in str(exc.value)


def test_names_checked_against_the_library(tmp_path):
    for text, words in [("[grid]\nsolver = ['adma']\n", "unknown solver 'adma'"),
                        ("[grid]\nfield = ['outer']\nintegrator = ['verlet']\n", "'verlet' does not apply"),
                        ("[grid]\ndata = ['spiral']\n", "unknown dataset 'spiral'"),
                        ("[grid]\ndata = ['nope.csv']\n", "'nope.csv' not found")]:
        with pytest.raises(InputError, match=words):
            sw.validate_names(sw.load_sweep(write(tmp_path, text)))
    sw.validate_names(sw.load_sweep(write(tmp_path, SWEEP)))  # the good file passes


def test_cli_end_to_end(tmp_path, ocdl_cli):
    path = write(tmp_path, "[grid]\nsolver = ['adam']\nlayers = [3]\nseed = [0, 1]\n[settings]\niterations = 3\n")
    out = tmp_path / "o"
    r = ocdl_cli("sweep", "--config", path, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(out / "runs")) == 2
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert all(r["status"] == "ok" and float(r["train_loss"]) > 0 for r in rows)
    r = ocdl_cli("sweep", "--config", write(tmp_path, "[grid]\nbad = 1\n", "bad.toml"), "--out", out)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "unknown [grid] key 'bad'" in r.stderr
