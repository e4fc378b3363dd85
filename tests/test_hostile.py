"""Issue 25's failure classes, generated (strategies in tests/hostile.py):

1. hostile model and checkpoint files → one InputError naming the file and the field (exit 2);
2. outputs that collide with inputs, other outputs or the checkpoint's files → refused before any
   work, inputs unchanged;
3. labels: one codec — spellings of one integer are one class, test files keep the training
   indices, unseen labels are refused — checked against an independent reference;
4. every count flag of every command at 10⁶–10¹² → exit 0/2/3 without traceback, and a run that
   is accepted under ``--max-seconds 20`` finishes within 3× that CPU time (the estimates are
   honest upper bounds);
6. the library API (``ocdl.train``, ``ocdl.save``/``load``, the estimator) → a result or one clean
   InputError/ValueError/TypeError, never another exception.

The default suite runs :data:`CASES` examples per property; ``-m slow`` runs :data:`SLOW_CASES`.
"""
import hashlib
import json
import os
import resource

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import hostile
from conftest import run_ocdl_inprocess
from ocdl.errors import InputError

CASES = int(os.environ.get("OCDL_HOSTILE_CASES", 12))
SLOW_CASES = int(os.environ.get("OCDL_HOSTILE_SLOW_CASES", 2000))
FAST = dict(max_examples=CASES, deadline=None, derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                   HealthCheck.data_too_large, HealthCheck.filter_too_much])
SLOW = {**FAST, "max_examples": SLOW_CASES, "derandomize": False}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A real model file and checkpoint: their bytes, metadata and arrays."""
    from ocdl.data import save_checkpoint, save_model
    from ocdl.solvers import make_model
    d = tmp_path_factory.mktemp("good")
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    model = make_model(X, np.array([0, 1]), layers=2)
    params = model.init(seed=0)
    save_model(d / "m.npz", model, params, data={"features": ["x1", "x2"], "label_column": "label",
                                                 "classes": ["a", "b"]})
    n = int(model.n_params())
    save_checkpoint(d / "ck", {"iteration": 3, "params": {"x": np.arange(n, dtype=float)},
                               "opt": {"m": np.zeros(n), "v": np.ones(n), "step": np.array(0.1)},
                               "history": [{"iteration": 0, "loss": 1.0}], "meta": {"rng": [1, 2]}}, {"a": 1})
    out = {"n": n, "dir": d}
    for name, path in (("model", d / "m.npz"), ("checkpoint", d / "ck" / "checkpoint.npz")):
        raw = path.read_bytes()
        z = dict(np.load(path))
        out[name] = (raw, json.loads(bytes(z.pop("__meta__"))), z)
    return out


def _npz(arrays, meta_text):
    import io
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(meta_text.encode(), dtype=np.uint8), **arrays)
    return buf.getvalue()


# ---- 1. model and checkpoint files -----------------------------------------------------------------
def check_model_file(tmp_path, files, data):
    from ocdl.data import load_model
    raw, meta, arrays = files["model"]
    path = tmp_path / "m.npz"
    path.write_bytes(_npz(arrays, data.draw(hostile.model_meta(meta))))
    try:
        model, params, info, extra = load_model(path, full=True)
    except InputError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    # accepted: every field has the schema's type and the parameters fit the model
    assert isinstance(info, dict) and set(extra) == {"features", "label_column", "classes"}
    model.check_params(params)
    assert extra["classes"] is None or len(extra["classes"]) == model.n_classes


@settings(**FAST)
@given(data=st.data())
def test_model_metadata_class(tmp_path, files, data):
    check_model_file(tmp_path, files, data)


@pytest.mark.slow
@settings(**SLOW)
@given(data=st.data())
def test_model_metadata_class_long(tmp_path, files, data):
    check_model_file(tmp_path, files, data)


def check_checkpoint_file(tmp_path, files, data):
    from ocdl.data import load_checkpoint
    raw, meta, arrays = files["checkpoint"]
    d = tmp_path / "ck"
    d.mkdir(exist_ok=True)
    arrays = data.draw(hostile.checkpoint_arrays(arrays))
    (d / "checkpoint.npz").write_bytes(_npz(arrays, data.draw(hostile.checkpoint_meta(meta))))
    try:
        state = load_checkpoint(d, None, size=files["n"])
    except InputError as exc:
        assert "checkpoint" in str(exc) and "\n" not in str(exc)
        return
    assert isinstance(state["iteration"], int) and state["iteration"] >= 0
    assert all(isinstance(h, dict) for h in state["history"]) and isinstance(state["meta"], dict)
    assert all(v.size == files["n"] and np.all(np.isfinite(v)) for v in state["params"].values())
    assert all(v.size in (0, 1) or v.size % files["n"] == 0 for v in state["opt"].values())


@settings(**FAST)
@given(data=st.data())
def test_checkpoint_class(tmp_path, files, data):
    check_checkpoint_file(tmp_path, files, data)


@pytest.mark.slow
@settings(**SLOW)
@given(data=st.data())
def test_checkpoint_class_long(tmp_path, files, data):
    check_checkpoint_file(tmp_path, files, data)


def test_named_examples_of_class_1(tmp_path, files):
    """The issue's examples, one by one: each is exit 2 naming the file and the field."""
    from ocdl.data import load_checkpoint, load_model
    raw, meta, arrays = files["model"]
    cases = {"info": ([1], "field 'info'"), "version": ("1", "field 'version'")}
    for key, (value, words) in cases.items():
        p = tmp_path / f"{key}.npz"
        p.write_bytes(_npz(arrays, json.dumps({**meta, key: value})))
        with pytest.raises(InputError, match=words):
            load_model(p)
    p = tmp_path / "deep.npz"
    p.write_bytes(_npz(arrays, json.dumps({**meta, "info": "@"}).replace('"@"', hostile.deep(100_000))))
    with pytest.raises(InputError, match="nested more than"):
        load_model(p)
    raw, meta, arrays = files["checkpoint"]
    for key, value, words in (("history", 3, "field 'history'"), ("extra", [1], "field 'extra'")):
        (tmp_path / key).mkdir()
        (tmp_path / key / "checkpoint.npz").write_bytes(_npz(arrays, json.dumps({**meta, key: value})))
        with pytest.raises(InputError, match=words):
            load_checkpoint(tmp_path / key)
    (tmp_path / "size").mkdir()
    (tmp_path / "size" / "checkpoint.npz").write_bytes(_npz({**arrays, "param_x": np.zeros(3)}, json.dumps(meta)))
    with pytest.raises(InputError, match="param_x"):
        load_checkpoint(tmp_path / "size", size=files["n"])


# ---- 2. path collisions ------------------------------------------------------------------------------
def _digests(directory):
    return {p: hashlib.sha256((directory / p).read_bytes()).hexdigest() for p in os.listdir(directory)
            if (directory / p).is_file()}


def _flags(words):
    """(input flags, output flags) of a command, from its parser."""
    from ocdl.cli.main import build_parser
    p = build_parser()
    for w in words:
        p = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction").choices[w]
    opts = {s for a in p._actions for s in a.option_strings}
    return ([f for f in ("--data", "--test", "--model", "--config") if f in opts],
            [f for f in ("--json", "--plot", "--save", "--out", "--profile", "--checkpoint") if f in opts])


def _spell(draw, path):
    """``path`` spelled another way: as is, through ``.``/``..``, a symlink or a hard link."""
    d, name = os.path.split(path)
    how = draw(st.sampled_from(["same", "dots", "symlink", "hardlink"]))
    if how == "dots":
        return os.path.join(d, ".", "..", os.path.basename(d), name)
    if how in ("symlink", "hardlink") and os.path.exists(path):
        link = os.path.join(d, f"link-{how}-{name}")
        if not os.path.lexists(link):
            (os.symlink if how == "symlink" else os.link)(path, link)
        return link
    return path


@st.composite
def collisions(draw):
    """(command words, argv) where one output flag names an input or another output's file."""
    words = draw(st.sampled_from([w for w in hostile.MINIMAL if w != ("sweep",)]))
    inputs, outputs = _flags(words)
    outputs = [f for f in outputs if f != "--checkpoint" or words in (("train",), ("meanfield", "train"))]
    flag = draw(st.sampled_from(outputs))
    argv = list(hostile.MINIMAL[words])
    given = dict(zip(argv[::1], argv[1::1]))
    targets = [("input", f) for f in inputs if f in given and given[f].startswith("{i}")]
    targets += [("output", f) for f in outputs if f != flag]
    assume(targets)
    kind, other = draw(st.sampled_from(targets))
    return words, flag, kind, other, draw(st.data())


def check_collision(tmp_path, case):
    words, flag, kind, other, data = case
    i, o = tmp_path / "in", tmp_path / "out"
    i.mkdir()
    o.mkdir()
    hostile.write_inputs(i)
    argv = [a.replace("{i}", str(i)) for a in hostile.MINIMAL[words]]
    if kind == "input":
        target = argv[argv.index(other) + 1]
    elif other == "--checkpoint" or flag == "--checkpoint":
        target = str(o / "ck" / "checkpoint.npz") if flag != "--checkpoint" else None
    else:
        target = str(o / "same.png")
    if flag == "--checkpoint" and kind == "input":   # the checkpoint directory is an input file
        argv += ["--checkpoint", _spell(data.draw, target)]
    elif flag == "--checkpoint":                     # ... or the other output's path
        argv += ["--checkpoint", str(o / "same.png"), other, str(o / "same.png")]
    elif other == "--checkpoint":                    # an output is the checkpoint's own file
        argv += ["--checkpoint", str(o / "ck"), flag, target]
    else:
        argv += [flag, _spell(data.draw, target)]
        if kind == "output":
            argv += [other, target]
    need = hostile.REQUIRED_OUT.get(words)
    if need and need not in argv:
        argv += [need, str(o / "required.out")]
    before = _digests(i)
    rc, out, err = run_ocdl_inprocess(*words, *argv, "--quiet")
    where = f"ocdl {' '.join(words)} {' '.join(argv)}: exit {rc}: {err[-500:]}"
    assert rc == 2, where
    assert "Traceback" not in err and err.strip().count("\n") == 0, where
    assert _digests(i) == before, where
    written = [f for f in os.listdir(o) if f != "ck"]
    assert not any(f.startswith(".tmp-") for f in written), where


@settings(**FAST)
@given(case=collisions())
def test_path_collision_class(tmp_path_factory, case):
    check_collision(tmp_path_factory.mktemp("c"), case)


@pytest.mark.slow
@settings(**{**SLOW, "max_examples": SLOW_CASES // 4})
@given(case=collisions())
def test_path_collision_class_long(tmp_path_factory, case):
    check_collision(tmp_path_factory.mktemp("c"), case)


@pytest.mark.parametrize("where", ["config", "data", "test"])
def test_sweep_outputs_never_overwrite_its_inputs(tmp_path, where):
    """``--config OUT/summary.md``, a ``[grid] data`` or ``[data] test`` CSV named OUT/summary.csv."""
    out = tmp_path / "out"
    out.mkdir()
    csv = "x1,x2,label\n0.1,0.2,0\n0.5,0.1,1\n0.3,0.3,0\n0.9,0.8,1\n"
    config = out / "summary.md" if where == "config" else tmp_path / "sweep.toml"
    text = '[grid]\nsolver = ["adam"]\nlayers = [2]\n[settings]\niterations = 1\n'
    if where == "data":
        (out / "summary.csv").write_text(csv)
        text = text.replace("[grid]\n", f'[grid]\ndata = ["{out}/summary.csv"]\n')
    if where == "test":
        (out / "summary.csv").write_text(csv)
        text += f'[data]\ntest = "{out}/summary.csv"\npoints_per_class = 4\n'
    config.write_text(text)
    before = _digests(out)
    rc, _, err = run_ocdl_inprocess("sweep", "--config", config, "--out", out, "--quiet")
    assert rc == 2 and "input" in err, err
    assert _digests(out) == before


def test_output_into_a_directory_that_refuses_new_files_is_refused_before_any_work(tmp_path):
    """Writability is probed by creating the temporary file, not by os.access (which root passes)."""
    target = "/sys/kernel/ocdl-probe.json" if os.path.isdir("/sys/kernel") else None
    if target is None:
        pytest.skip("no /sys")
    rc, _, err = run_ocdl_inprocess("train", "--data", "spirals", "--iterations", "100000", "--json", target,
                                    "--quiet")
    assert rc == 2 and "cannot create files" in err


# ---- 3. labels -------------------------------------------------------------------------------------
def check_labels(tmp_path, case):
    from ocdl.data.loading import load_dataset
    train, test, unseen = case
    rows = lambda cells: "x1,label\n" + "".join(f"{k * 0.1},{c}\n" for k, c in enumerate(cells))  # noqa: E731
    (tmp_path / "train.csv").write_text(rows(train))
    (tmp_path / "test.csv").write_text(rows(test))
    ref_train = [hostile.reference_class(c) for c in train]
    known = sorted(set(ref_train), key=lambda r: (r[0] == "name", r[1]))
    try:
        ds = load_dataset(str(tmp_path / "train.csv"), str(tmp_path / "test.csv"))
    except InputError as exc:
        assert unseen and "test.csv" in str(exc), exc
        return
    assert not unseen
    assert len(ds.classes) == len(known)                                # no phantom class
    codec_ref = [hostile.reference_class(str(c)) for c in ds.classes]
    assert codec_ref == known                                           # ints numerically, then names
    assert [codec_ref[k] for k in ds.y] == ref_train
    assert [codec_ref[k] for k in ds.y_test] == [hostile.reference_class(c) for c in test]


@settings(**{**FAST, "max_examples": 4 * CASES})
@given(case=hostile.label_columns())
def test_label_class(tmp_path_factory, case):
    check_labels(tmp_path_factory.mktemp("l"), case)


@pytest.mark.slow
@settings(**SLOW)
@given(case=hostile.label_columns())
def test_label_class_long(tmp_path_factory, case):
    check_labels(tmp_path_factory.mktemp("l"), case)


def test_builtin_data_with_named_test_labels_is_refused_and_one_class_test_files_accepted(tmp_path):
    from ocdl.data.loading import load_dataset
    (tmp_path / "t.csv").write_text("x1,x2,label\n0.1,0.2,cat\n")
    with pytest.raises(InputError, match="'cat' is not one of the classes"):
        load_dataset("spirals", str(tmp_path / "t.csv"), points=5)
    (tmp_path / "one.csv").write_text("x1,x2,label\n0.1,0.2,1\n0.2,0.2,1.0\n")
    ds = load_dataset("spirals", str(tmp_path / "one.csv"), points=5)
    assert list(ds.y_test) == [1, 1]


# ---- 4. sizes ---------------------------------------------------------------------------------------
def _count_flags():
    from ocdl.cli import common
    from ocdl.cli.main import build_parser
    out = []
    for words in hostile.MINIMAL:
        p = build_parser()
        for w in words:
            p = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction").choices[w]
        for a in p._actions:
            if a.type in (common.positive_int, common.int_list) and a.option_strings:
                out.append((words, a.option_strings[-1]))
    return out


COUNT_FLAGS = _count_flags()


def check_size(tmp_path, words, flag, value):
    i, o = tmp_path / "in", tmp_path / "out"
    i.mkdir()
    o.mkdir()
    hostile.write_inputs(i)
    argv = [a.replace("{i}", str(i)) for a in hostile.MINIMAL[words]]
    if flag in argv:
        argv[argv.index(flag) + 1] = str(value)
    else:
        argv += [flag, str(value)]
    if words in hostile.REQUIRED_OUT:
        argv += [hostile.REQUIRED_OUT[words], str(o / ("r.npz" if words[-1] == "nls" else "r.csv"))]
    if words == ("sweep",):
        argv += ["--out", str(o / "sw")]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    rc, out, err = run_ocdl_inprocess(*words, *argv, "--max-seconds", "20", "--quiet")
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
    where = f"ocdl {' '.join(words)} {' '.join(argv)}: exit {rc}, CPU {cpu:.1f} s: {err[-400:]}"
    assert rc in (0, 2, 3), where
    assert "Traceback" not in err and "internal error" not in err, where
    assert cpu < 60, where
    assert ru1.ru_maxrss / 1024 < 6000, where


@settings(**{**FAST, "max_examples": 2 * CASES})
@given(case=st.sampled_from(COUNT_FLAGS), value=st.integers(10 ** 6, 10 ** 12))
def test_count_flag_size_class(tmp_path_factory, case, value):
    check_size(tmp_path_factory.mktemp("s"), *case, value)


@pytest.mark.slow
@settings(**{**SLOW, "max_examples": len(COUNT_FLAGS) * 4})
@given(case=st.sampled_from(COUNT_FLAGS), value=st.integers(10 ** 6, 10 ** 12))
def test_count_flag_size_class_long(tmp_path_factory, case, value):
    check_size(tmp_path_factory.mktemp("s"), *case, value)


# ---- 6. the library API -----------------------------------------------------------------------------
CLEAN = (InputError, ValueError, TypeError)


@st.composite
def api_calls(draw):
    n = draw(st.sampled_from([0, 1, 6, 12]))
    d = draw(st.sampled_from([0, 1, 2]))
    kind = draw(st.sampled_from(["ok", "complex", "nan", "huge", "text", "int", "ragged"]))
    X = np.cos(np.arange(n * d, dtype=float)).reshape(n, d)
    X = {"ok": X, "complex": X + 1j, "nan": X * np.nan, "huge": X * 1e300, "text": X.astype(str), "int": (X * 3)
         .astype(int), "ragged": [[1.0], [1.0, 2.0]]}[kind]
    ykind = draw(st.sampled_from(["ok", "str", "nan", "neg", "short", "float"]))
    y = np.arange(n) % 2
    y = {"ok": y, "str": y.astype(str), "nan": np.where(y == 1, np.nan, 0.0), "neg": y - 1, "short": y[:-1],
         "float": y + 0.5}[ykind]
    opts = draw(st.dictionaries(st.sampled_from(["lr", "layers", "T", "width", "alpha", "iterations", "seed"]),
                                st.sampled_from([-1, 0, 0.5, 1, 2, float("nan"), float("inf"), 10 ** 12, "2", None,
                                                 True]), max_size=3))
    return X, y, opts


def check_api(tmp_path, call):
    import ocdl
    X, y, opts = call
    opts = {"iterations": 2, "layers": 2, **opts}
    try:
        res = ocdl.train(X, y, **opts)
    except CLEAN as exc:
        assert "\n" not in str(exc).strip()
        return
    assert np.isfinite(res.fun)
    path = tmp_path / "m.npz"
    ocdl.save(path, res.model, res.x)
    model, params, _ = ocdl.load(path)
    assert all(np.array_equal(params[k], res.x[k]) for k in params)


@settings(**{**FAST, "max_examples": 2 * CASES})
@given(call=api_calls())
def test_library_api_class(tmp_path_factory, call):
    check_api(tmp_path_factory.mktemp("a"), call)


@pytest.mark.slow
@settings(**SLOW)
@given(call=api_calls())
def test_library_api_class_long(tmp_path_factory, call):
    check_api(tmp_path_factory.mktemp("a"), call)


def test_estimator_refuses_bad_parameters_with_one_clean_error():
    pytest.importorskip("sklearn")
    from ocdl import ResNetODEClassifier
    X, y = np.random.default_rng(0).normal(size=(10, 2)), np.arange(10) % 2
    import torch
    bad = [{"lr": -0.1}, {"layers": 0}, {"T": float("nan")}, {"iterations": 2.5}]
    if not torch.cuda.is_available():
        bad.append({"device": "cuda"})
    for kw in bad:
        with pytest.raises(InputError):
            ResNetODEClassifier(**{"iterations": 2, **kw}).fit(X, y)


@pytest.mark.parametrize("module", ["oscillator", "potential"])
def test_forces_pinn_learning_rate_is_not_ignored(monkeypatch, module):
    """``forces learn oscillator|potential --solver pinn --lr X`` used to bind X to the adam rate and
    train the PINN with its own default: the library now passes it on (class 6, ignored settings)."""
    import importlib

    import ocdl.forces.pinn as pinn
    mod = importlib.import_module(f"ocdl.forces.{module}")
    seen = []

    def fake(problem, theta0, lr=None, **kw):
        seen.append(lr)
        raise InputError("stop")
    monkeypatch.setattr(pinn, "fit_pinn", fake)

    class P:                                       # just enough of a problem for the dispatch
        fixed = {"x0": 0.0, "v0": 0.0}

        def initial_guess(self, *a):
            return np.zeros(2)
        initial_theta = initial_guess
    fn = mod.solve_oscillator if module == "oscillator" else mod.solve_potential
    for lr in (0.123, None):
        with pytest.raises(InputError, match="stop"):
            fn(P(), "pinn", lr=lr)
    assert seen == [0.123, mod.DEFAULT_LR["pinn"]]


# ---- 5. SIGTERM ------------------------------------------------------------------------------------
def _terminate_after_start(argv, marker, tmp_path):
    """Start ``ocdl ARGV``, wait for ``marker`` on its stderr (the work has begun), send SIGTERM;
    return (exit code, stderr)."""
    import signal
    import subprocess
    import sys
    import time
    from conftest import ROOT
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    proc = subprocess.Popen([sys.executable, "-m", "ocdl", *map(str, argv)], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    err, deadline = "", time.time() + 300
    while marker not in err and time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        err += line
    assert marker in err, err
    proc.send_signal(signal.SIGTERM)
    err += proc.stderr.read()
    return proc.wait(timeout=120), err


SIGTERM_CASES = {
    "integrators": (["integrators", "--steps", "3000000", "--periods", "10", "--max-seconds", "1e9"],
                    "ocdl integrators:"),
    "sweep": (["sweep", "--config", "{t}/s.toml", "--out", "{t}/out"], "to run"),
    "fokker-planck": (["meanfield", "fokker-planck", "--drift", "-x", "--nu", "0.5", "--mean", "0", "--std", "1",
                       "--T", "1", "--cells", "200", "--steps", "20000000", "--max-seconds", "1e9", "--out",
                       "{t}/rho.csv"], "fokker-planck"),
}


@pytest.mark.parametrize("case", ["integrators", "sweep"])
def test_sigterm_exits_130_keeping_what_finished(tmp_path, case):
    check_sigterm(tmp_path, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["fokker-planck"])
def test_sigterm_exits_130_long(tmp_path, case):
    check_sigterm(tmp_path, case)


def check_sigterm(tmp_path, case):
    (tmp_path / "s.toml").write_text('[grid]\nseed = [0, 1, 2, 3]\nlayers = [2]\n[settings]\niterations = 100000\n'
                                     '[data]\npoints_per_class = 20\n')
    argv, marker = SIGTERM_CASES[case]
    rc, err = _terminate_after_start([a.replace("{t}", str(tmp_path)) for a in argv], marker, tmp_path)
    assert rc == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    if case == "sweep":                                    # the summary of the finished runs is written
        assert (tmp_path / "out" / "summary.csv").exists()
    assert not [f for r, _, fs in os.walk(tmp_path) for f in fs if f.startswith(".tmp-")]


def test_sigterm_compare_keeps_the_finished_solvers_rows(tmp_path):
    """``ocdl compare`` killed while its second solver runs writes the first solver's row (the JSON
    a full run writes, marked ``"partial": true`` with the unfinished solvers) and exits 130 with
    one line saying so. The kept row equals the row of an uninterrupted run of that solver alone
    (compare is deterministic for a seed), times aside."""
    import json
    import subprocess
    import sys
    from conftest import ROOT
    common = ["compare", "--data", "spirals", "--points", "20", "--layers", "3", "--iterations", "1000000",
              "--max-seconds", "1e9"]
    # pmp-lbfgs stops at its own convergence test (~3400 iterations, seconds); adam then runs 10⁶ steps
    rc, err = _terminate_after_start(common + ["--solvers", "pmp-lbfgs,adam", "--json", tmp_path / "cmp.json"],
                                     "compare: running adam", tmp_path)
    assert rc == 130, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("ocdl: interrupted; 1 of 2 solvers finished (stopped during adam); their rows "
                           f"written to {tmp_path / 'cmp.json'}"), err
    partial = json.loads((tmp_path / "cmp.json").read_text())
    assert partial["partial"] is True and partial["unfinished"] == ["adam"]
    assert list(partial["solvers"]) == ["pmp-lbfgs"] and partial["settings"]["solvers"] == ["pmp-lbfgs", "adam"]
    assert not [f for r, _, fs in os.walk(tmp_path) for f in fs if f.startswith(".tmp-")]

    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, "-m", "ocdl", *map(str, common), "--solvers", "pmp-lbfgs", "--json",
                           tmp_path / "one.json", "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    full = json.loads((tmp_path / "one.json").read_text())
    assert "partial" not in full

    def untimed(row):
        return {k: v for k, v in row.items() if "time" not in k and k != "history"}
    assert untimed(partial["solvers"]["pmp-lbfgs"]) == untimed(full["solvers"]["pmp-lbfgs"])
    assert [h["loss"] for h in partial["solvers"]["pmp-lbfgs"]["history"]] == \
        [h["loss"] for h in full["solvers"]["pmp-lbfgs"]["history"]]
