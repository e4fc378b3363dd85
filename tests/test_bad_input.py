"""Table-driven bad-input test (issues 8 and 12): every case exits 2 with one line on stderr, no
traceback, leaves no output file behind and every input file unchanged. The cases run in-process
(``ocdl.cli.main.main``); ``test_cli_basics`` covers the real subprocess entry point."""
import hashlib
import json
import os
import zipfile

import io

import numpy as np
import pytest

GOOD = "x1,x2,label\n" + "".join(f"{np.cos(i):.3f},{np.sin(i):.3f},{i % 2}\n" for i in range(12))
FILES = {
    "good.csv": GOOD,
    "empty.csv": "",
    "header.csv": "x1,x2,label\n",
    "misnamed.csv": "a,b,label\n1,2,0\n3,4,1\n",
    "nolabel_col.csv": "x1,x2,class\n1,2,0\n3,4,1\n",
    "ragged.csv": "x1,x2,label\n1,2,0\n3,1\n",
    "text.csv": "x1,x2,label\n1,abc,0\n3,4,1\n",
    "nan.csv": "x1,x2,label\n1,nan,0\n3,4,1\n",
    "inf.csv": "x1,x2,label\n1,inf,0\n3,4,1\n",
    "frac.csv": "x1,x2,label\n1,2,0.5\n3,4,1\n",
    "gap.csv": "x1,x2,label\n1,2,0\n3,4,2\n",
    "neg.csv": "x1,x2,label\n1,2,-1\n3,4,1\n",
    "single.csv": "x1,x2,label\n1,2,0\n3,4,0\n",
    "dup.csv": "x1,x1,label\n1,2,0\n3,4,1\n",
    "three.csv": "x1,x2,x3,label\n1,2,3,0\n3,4,5,1\n",
    "unlabelled.csv": "x1,x2\n1,2\n3,4\n",
    "corrupt.npz": "this is not a zip file",
    "bad.toml": "layers = [unclosed\n",
    "unknown_key.toml": "layres = 5\n",
    "drag_bad.csv": "v0,vT\n1,2\n3,x\n",
    "sweep.toml": "[grid]\nsolver = [\"adam\"]\n[settings]\niterations = 2\n",
    "sweep_bad.toml": "[grid]\nsolverz = [\"adam\"]\n",
    # issue 12
    "huge_label.csv": "x1,x2,label\n1,2,0\n3,4,1\n5,6,100000000\n",
    "wide.csv": ",".join(f"x{j + 1}" for j in range(20_000)) + ",label\n" + ",".join(["1"] * 20_001) + "\n",
    "deep.toml": "layers = " + "[" * 5000 + "]" * 5000 + "\n",
    "sweep_typo.toml": "[grid]\nsolver = [\"adam\"]\n[settings]\niteratons = 5\n",
    "sweep_lr.toml": "[grid]\nsolver = [\"adam\"]\n[settings]\nlr = \"abc\"\n",
    "sweep_T.toml": "[grid]\nsolver = [\"adam\"]\n[settings]\nT = -1\n",
    # issue 25
    "big.csv": "x1,x2,label\n1,1e308,0\n3,4,1\n",
    "names.csv": "x1,x2,label\n1,2,cat\n3,4,dog\n",
    "quiet_yes.toml": "quiet = \"yes\"\n",
    "resume_1.toml": "resume = 1\n",
    "classes.csv": "x1,label\n" + "".join(f"{i},{i}\n" for i in range(2000)),
    "sweep_big.toml": "[grid]\nseed = [" + ", ".join(map(str, range(1001))) + "]\n",
}

TRAIN = ["train", "--iterations", "2", "--json", "{out}/o.json", "--save", "{out}/m.npz"]
CASES = {
    # CSV problems
    "missing file": TRAIN + ["--data", "{d}/nope.csv"],
    "empty file": TRAIN + ["--data", "{d}/empty.csv"],
    "header only": TRAIN + ["--data", "{d}/header.csv"],
    "missing label column": TRAIN + ["--data", "{d}/good.csv", "--label-column", "class"],
    "ragged rows": TRAIN + ["--data", "{d}/ragged.csv"],
    "non-numeric cell": TRAIN + ["--data", "{d}/text.csv"],
    "nan cell": TRAIN + ["--data", "{d}/nan.csv"],
    "inf cell": TRAIN + ["--data", "{d}/inf.csv"],
    "fractional label": TRAIN + ["--data", "{d}/frac.csv"],
    "test label unseen in training": TRAIN + ["--data", "{d}/good.csv", "--test", "{d}/gap.csv"],
    "single class": TRAIN + ["--data", "{d}/single.csv"],
    # issue 25
    "huge finite cell": TRAIN + ["--data", "{d}/big.csv"],
    "named test labels beside built-in data": TRAIN + ["--data", "spirals", "--test", "{d}/names.csv"],
    "toml switch given as text": TRAIN + ["--data", "spirals", "--config", "{d}/quiet_yes.toml"],
    "toml switch given as a number": TRAIN + ["--data", "spirals", "--config", "{d}/resume_1.toml"],
    "more classes than supported": TRAIN + ["--data", "{d}/classes.csv"],
    "data from a device": TRAIN + ["--data", "/dev/zero"],
    "json is the checkpoint directory": ["train", "--data", "spirals", "--iterations", "2", "--json", "{out}/x",
                                         "--checkpoint", "{out}/x"],
    "save is the checkpoint file": ["train", "--data", "spirals", "--iterations", "2", "--save",
                                    "{out}/ck/checkpoint.npz", "--checkpoint", "{out}/ck"],
    "data is the checkpoint file": ["train", "--data", "{d}/good.csv", "--iterations", "2", "--checkpoint", "{d}",
                                    "--save", "{d}/checkpoint.npz"],
    "sweep above the run limit": ["sweep", "--config", "{d}/sweep_big.toml", "--out", "{out}/sw"],
    "negative learning rate": TRAIN + ["--data", "spirals", "--lr=-0.1"],
    "too many threads": TRAIN + ["--data", "spirals", "--threads", "100000"],
    "duplicate header": TRAIN + ["--data", "{d}/dup.csv"],
    "test lacks a feature column": TRAIN + ["--data", "{d}/three.csv", "--test", "{d}/good.csv"],
    "test without labels": TRAIN + ["--data", "{d}/good.csv", "--test", "{d}/unlabelled.csv"],
    # model files
    "missing model": ["predict", "--model", "{d}/nope.npz", "--data", "{d}/good.csv", "--json", "{out}/p.json"],
    "corrupt model": ["predict", "--model", "{d}/corrupt.npz", "--data", "{d}/good.csv", "--json", "{out}/p.json"],
    "other format version": ["predict", "--model", "{d}/v99.npz", "--data", "{d}/good.csv", "--json", "{out}/p.json"],
    # unknown names
    "unknown solver": TRAIN + ["--data", "spirals", "--solver", "adma"],
    "unknown field": TRAIN + ["--data", "spirals", "--field", "outter"],
    "unknown integrator": TRAIN + ["--data", "spirals", "--integrator", "rk5"],
    "unknown dataset": TRAIN + ["--data", "spirls"],
    "unknown problem": ["integrators", "--problem", "kepplr", "--json", "{out}/i.json"],
    "unknown backend": ["sweep", "--config", "{d}/sweep.toml", "--backend", "mpi", "--out", "{out}/sweep"],
    "unknown forces problem": ["forces", "simulate", "drug", "--force", "v", "--out", "{out}/f.csv"],
    # impossible numbers
    "layers zero": TRAIN + ["--data", "spirals", "--layers", "0"],
    "layers negative": TRAIN + ["--data", "spirals", "--layers", "-3"],
    "T zero": TRAIN + ["--data", "spirals", "--T", "0"],
    "T nan": TRAIN + ["--data", "spirals", "--T", "nan"],
    "alpha inf": TRAIN + ["--data", "spirals", "--alpha", "inf"],
    "negative nu": ["meanfield", "fokker-planck", "--drift", "-x", "--nu", "-1", "--mean", "0", "--std", "1",
                    "--T", "1", "--out", "{out}/rho.csv"],
    "zero std": ["meanfield", "particles", "--drift", "-x", "--nu", "1", "--mean", "0", "--std", "0",
                 "--T", "1", "--particles", "100", "--seed", "0", "--out", "{out}/x.csv"],
    "zero eps": ["forces", "learn", "position", "--data", "{d}/good.csv", "--T", "1", "--target", "0",
                 "--eps", "0", "--json", "{out}/f.json"],
    "non-numeric drag data": ["forces", "learn", "drag", "--data", "{d}/drag_bad.csv", "--T", "1", "--g", "9.8",
                              "--json", "{out}/f.json"],
    # unsafe expressions, never evaluated
    "unsafe expr import": ["forces", "simulate", "drag", "--force", "__import__('os').system('touch {out}/pwned')",
                           "--out", "{out}/f.csv"],
    "unsafe expr attribute": ["meanfield", "fokker-planck", "--drift", "x.__class__", "--nu", "1", "--mean", "0",
                              "--std", "1", "--T", "1", "--out", "{out}/rho.csv"],
    "malformed expr": ["meanfield", "particles", "--drift", "x +* 2", "--nu", "1", "--mean", "0", "--std", "1",
                       "--T", "1", "--particles", "10", "--seed", "0", "--out", "{out}/x.csv"],
    "unknown sweep key": ["sweep", "--config", "{d}/sweep_bad.toml", "--out", "{out}/sweep"],
    # config files
    "missing config": TRAIN + ["--data", "spirals", "--config", "{d}/nope.toml"],
    "malformed config": TRAIN + ["--data", "spirals", "--config", "{d}/bad.toml"],
    "unknown config key": TRAIN + ["--data", "spirals", "--config", "{d}/unknown_key.toml"],
    # issue 12 — resource exhaustion from tiny inputs: refused before allocating
    "too many columns": TRAIN + ["--data", "{d}/wide.csv"],
    "zip-bomb model": ["predict", "--model", "{d}/bomb.npz", "--data", "{d}/good.csv"],
    "npy header lies about its shape": ["predict", "--model", "{d}/lie.npz", "--data", "{d}/good.csv"],
    "absurd layers": TRAIN + ["--data", "spirals", "--layers", "100000000"],
    "absurd width": TRAIN + ["--data", "spirals", "--width", "10000000"],
    # issue 22: the bench and forces commands as jobs
    "bench unknown solver": ["bench", "train", "--solvers", "adam,foo", "--json", "{out}/b.json"],
    "bench unknown field": ["bench", "train", "--field", "foo", "--json", "{out}/b.json"],
    "bench unknown integrator": ["bench", "train", "--integrator", "foo", "--json", "{out}/b.json"],
    "bench negative seed": ["bench", "train", "--seeds", "0,-1", "--json", "{out}/b.json"],
    "bench gradient unknown field": ["bench", "gradient", "--fields", "foo", "--json", "{out}/b.json"],
    "forces lambda not a number": ["forces", "learn", "drag", "--data", "{d}/good.csv", "--T", "1", "--g", "9.8",
                                   "--lambda", "lots", "--json", "{out}/f.json"],
    "forces negative lbfgs steps": ["forces", "learn", "oscillator", "--data", "{d}/good.csv", "--solver", "pinn",
                                    "--lbfgs-steps", "-1", "--json", "{out}/f.json"],
    "forces truth in the wrong variable": ["forces", "learn", "drag", "--data", "{d}/good.csv", "--T", "1", "--g",
                                           "9.8", "--truth", "x", "--json", "{out}/f.json"],
    "absurd bench depth": ["bench", "gradient", "--depths", "100000000", "--width", "1000", "--json", "{out}/b.json"],
    # outputs checked before any work
    "json is the data file": ["train", "--iterations", "2", "--data", "{d}/good.csv", "--json", "{d}/good.csv"],
    "save is the test file": ["train", "--iterations", "2", "--data", "{d}/good.csv", "--test", "{d}/good.csv",
                              "--save", "{d}/good.csv"],
    "predict json is the model": ["predict", "--model", "{d}/model.npz", "--data", "{d}/good.csv",
                                  "--json", "{d}/model.npz"],
    "json equals save": ["train", "--iterations", "2", "--data", "spirals", "--json", "{out}/r", "--save", "{out}/r"],
    "json is the config": TRAIN + ["--data", "spirals", "--config", "{d}/empty.toml", "--json", "{d}/empty.toml"],
    "plot extension unknown": TRAIN + ["--data", "spirals", "--plot", "{out}/p.xyz"],
    "output directory missing": ["train", "--iterations", "2", "--data", "spirals", "--json", "{out}/no/o.json"],
    "output under a file": ["train", "--iterations", "2", "--data", "spirals", "--save", "{d}/good.csv/m.npz"],
    "output is a directory": ["train", "--iterations", "2", "--data", "spirals", "--json", "{out}"],
    "checkpoint is a file": TRAIN + ["--data", "spirals", "--checkpoint", "{d}/good.csv"],
    "forces out is the data": ["forces", "learn", "drag", "--data", "{d}/good.csv", "--T", "1", "--g", "9.8",
                               "--profile", "{d}/good.csv"],
    # user mistakes that were exit 1
    "negative seed": TRAIN + ["--data", "spirals", "--seed", "-1"],
    "deeply nested TOML": TRAIN + ["--data", "spirals", "--config", "{d}/deep.toml"],
    "complex model array": ["predict", "--model", "{d}/complex.npz", "--data", "{d}/good.csv"],
    "model array of strings": ["predict", "--model", "{d}/strings.npz", "--data", "{d}/good.csv"],
    "model array wrong shape": ["predict", "--model", "{d}/shape.npz", "--data", "{d}/good.csv"],
    "model metadata wrong type": ["predict", "--model", "{d}/metatype.npz", "--data", "{d}/good.csv"],
    "expr wrong argument count": ["meanfield", "particles", "--drift", "sin(x, x)", "--nu", "1", "--mean", "0",
                                  "--std", "1", "--T", "1", "--particles", "10", "--out", "{out}/x.csv"],
    "expr too few arguments": ["forces", "simulate", "drag", "--force", "max(v)", "--out", "{out}/f.csv"],
    # expression arithmetic: numpy semantics, checked results
    "expr division by zero": ["forces", "simulate", "drag", "--force", "1/0", "--out", "{out}/f.csv"],
    "expr overflow": ["forces", "simulate", "drag", "--force", "9**9**9**9", "--out", "{out}/f.csv"],
    "expr complex": ["meanfield", "particles", "--drift", "(-8)**(1/3)", "--nu", "1", "--mean", "0", "--std", "1",
                     "--T", "1", "--particles", "10", "--out", "{out}/x.csv"],
    "expr outside domain": ["meanfield", "fokker-planck", "--drift", "sqrt(x - 1e6)", "--nu", "1", "--mean", "0",
                            "--std", "1", "--T", "1", "--out", "{out}/rho.csv"],
    "expr huge literal": ["forces", "simulate", "drag", "--force", "9" * 400 + "*v", "--out", "{out}/f.csv"],
    # sweeps: found before the first run
    "sweep settings typo": ["sweep", "--config", "{d}/sweep_typo.toml", "--out", "{out}/sweep"],
    "sweep lr not a number": ["sweep", "--config", "{d}/sweep_lr.toml", "--out", "{out}/sweep"],
    "sweep negative T": ["sweep", "--config", "{d}/sweep_T.toml", "--out", "{out}/sweep"],
}
# (an unreadable --data / --config cannot be made with chmod when the tests run as root; the
# PermissionError branch of read_toml / read_table is exercised in test_unreadable_files)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    for name, text in FILES.items():
        (d / name).write_text(text)
    meta = {"format": "ocdl-model", "version": 99, "model": {}, "info": {}}
    np.savez(d / "v99.npz", __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
             K=np.zeros((1, 2, 2)), b=np.zeros((1, 2)), W=np.zeros((1, 2)), mu=np.zeros(1))
    (d / "empty.toml").write_text("")
    write_model_variants(d)
    return d


def write_model_variants(d):
    """A real model file ``model.npz`` and broken variants of it (written with numpy, not ocdl)."""
    from ocdl.data import save_model
    from ocdl.solvers import make_model
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    model = make_model(X, np.array([0, 1]), layers=2)
    save_model(d / "model.npz", model, model.init(seed=0))
    z = dict(np.load(d / "model.npz"))
    np.savez(d / "complex.npz", **{**z, "K": z["K"].astype(complex)})
    np.savez(d / "strings.npz", **{**z, "mu": np.array(["a", "b"])})
    np.savez(d / "shape.npz", **{**z, "K": z["K"][:1]})
    meta = json.loads(bytes(z["__meta__"]))
    meta["model"]["layers"] = "two"
    np.savez(d / "metatype.npz", **{**z, "__meta__": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)})
    # 2**24 zeros declare 128 MB and compress to ~130 KB
    np.savez_compressed(d / "bomb.npz", **z, extra=np.zeros(2 ** 24))
    with zipfile.ZipFile(d / "lie.npz", "w") as zf:
        for k, v in z.items():
            buf = io.BytesIO()
            np.save(buf, v)
            zf.writestr(k + ".npy", buf.getvalue())
        buf = io.BytesIO()
        np.save(buf, np.zeros(3))
        zf.writestr("x.npy", buf.getvalue().replace(b"(3,)", b"(999999999999,)"))


def digests(directory):
    return {p: hashlib.sha256(open(os.path.join(directory, p), "rb").read()).hexdigest()
            for p in sorted(os.listdir(directory))}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, inputs, tmp_path, ocdl_main):
    out = tmp_path / "out"
    out.mkdir()
    before = digests(inputs)
    args = [a.format(d=inputs, out=out) for a in CASES[case]]
    rc, _, stderr = ocdl_main(*args)
    lines = stderr.strip().splitlines()
    assert rc == 2, f"{case}: exit {rc}, stderr: {stderr[-500:]}"
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"{case}: expected one line, got:\n{stderr}"
    assert "error" in lines[0]
    assert len(lines[0]) < 1500, f"{case}: {len(lines[0])}-character message"
    assert list(out.iterdir()) == [], f"{case}: left {list(out.iterdir())}"
    assert digests(inputs) == before, f"{case}: an input file changed"


def test_unknown_name_suggests_closest(ocdl_cli, tmp_path):
    r = ocdl_cli("train", "--data", "spirals", "--solver", "adma", "--json", tmp_path / "o.json")
    assert r.returncode == 2 and "adam" in r.stderr and "pmp-adam" in r.stderr
    r = ocdl_cli("forces", "simulate", "drug", "--force", "v", "--out", tmp_path / "f.csv")
    assert r.returncode == 2 and "did you mean 'drag'" in r.stderr


# ---- issue 12: what must work, and the leftovers ------------------------------------------------

def test_byte_order_mark_accepted(tmp_path, ocdl_main):
    """A UTF-8 byte-order mark at the start of a CSV or TOML file is accepted (not an invisible
    character in an error message)."""
    data, cfg = tmp_path / "bom.csv", tmp_path / "bom.toml"
    data.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    cfg.write_bytes(b"\xef\xbb\xbflayers = 2\niterations = 1\n")
    rc, out, err = ocdl_main("train", "--data", data, "--config", cfg, "--quiet")
    assert rc == 0, err
    assert json.loads(out)["layers"] == 2


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_expression_with_leading_minus(form, tmp_path, ocdl_main):
    """``--force -0.1*v`` is a value in every command, as ``--force=-0.1*v`` is."""
    out = tmp_path / "f.csv"
    force = ["--force", "-0.1*v"] if form == "separate" else ["--force=-0.1*v"]
    rc, _, err = ocdl_main("forces", "simulate", "drag", *force, "--T", "1", "--g", "9.8", "--samples", "3",
                           "--noise", "0", "--out", out, "--quiet")
    assert rc == 0, err
    v0, vT = np.loadtxt(out, delimiter=",", skiprows=1).T
    # v' = g + 0.1 v has the solution v(T) = (v0 + g/0.1) e^{0.1 T} − g/0.1 (independent reference)
    assert np.allclose(vT, (v0 + 98.0) * np.exp(0.1) - 98.0, rtol=1e-8)


def test_debug_in_config_shows_traceback(tmp_path, ocdl_main):
    cfg = tmp_path / "c.toml"
    cfg.write_text("debug = true\n")
    rc, _, err = ocdl_main("train", "--data", tmp_path / "nope.csv", "--config", cfg)
    assert rc == 2 and "Traceback" in err


def test_predict_warns_about_diverged_model(tmp_path, ocdl_main):
    from ocdl.data import save_model
    from ocdl.solvers import make_model
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    model = make_model(X, np.array([0, 1]), layers=2)
    save_model(tmp_path / "m.npz", model, model.init(seed=0), info={"status": "diverged", "message": "loss nan"})
    (tmp_path / "d.csv").write_text(GOOD)
    rc, _, err = ocdl_main("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "d.csv")
    assert rc == 0 and "warning" in err and "diverged" in err


def test_stale_temporaries_removed(tmp_path):
    """A ``.tmp-<pid>-*`` file of a dead process (SIGKILL during a write) goes at the next write of
    the same target; one of a live process stays."""
    import subprocess
    import sys

    from ocdl.io import write_json
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".tmp-{dead}-abc-checkpoint.npz"
    live = tmp_path / f".tmp-{os.getpid()}-abc-checkpoint.npz"
    other = tmp_path / f".tmp-{dead}-abc-other.json"
    for p in (stale, live, other):
        p.write_text("partial")
    write_json(tmp_path / "checkpoint.npz", {})
    assert not stale.exists() and live.exists() and other.exists()


def test_unreadable_files(tmp_path, monkeypatch, ocdl_main):
    """Unreadable --data / --config (PermissionError) are exit 2 (simulated: the tests run as root)."""
    import builtins
    real_open = builtins.open

    def denying_open(path, *a, **k):
        if str(path).endswith(("locked.csv", "locked.toml")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    for name in ("locked.csv", "locked.toml"):
        (tmp_path / name).write_text(GOOD if name.endswith("csv") else "layers = 2\n")
    monkeypatch.setattr(builtins, "open", denying_open)
    for args in (["--data", tmp_path / "locked.csv"], ["--data", "spirals", "--config", tmp_path / "locked.toml"]):
        rc, _, err = ocdl_main("train", "--iterations", "1", *args)
        assert rc == 2 and "cannot be read" in err and "Traceback" not in err, err


def test_atomic_write_failure_names_target(tmp_path, monkeypatch):
    """A failing write (disk full) is one InputError naming the target, and leaves no temporary."""
    from ocdl.errors import InputError
    from ocdl.io import write_json

    def full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(InputError, match="o.json"):
        write_json(tmp_path / "o.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


# ---- issue 25: what must work -----------------------------------------------------------------------

def test_predict_takes_the_label_column_and_reports_accuracy(tmp_path, ocdl_main):
    data = tmp_path / "t.csv"
    data.write_text("u,v,species\n" + "".join(f"{np.cos(i):.3f},{np.sin(i):.3f},{'ab'[i % 2]}\n" for i in range(12)))
    model = tmp_path / "m.npz"
    rc, _, err = ocdl_main("train", "--data", data, "--label-column", "species", "--iterations", "5", "--save",
                           model, "--quiet")
    assert rc == 0, err
    rc, out, err = ocdl_main("predict", "--model", model, "--data", data, "--label-column", "species")
    assert rc == 0, err
    res = json.loads(out)
    pred = res["predictions"]
    truth = ["ab"[i % 2] for i in range(12)]
    assert res["accuracy"] == pytest.approx(np.mean([p == t for p, t in zip(pred, truth)]))


def test_test_file_extra_columns_are_named(tmp_path, ocdl_main):
    (tmp_path / "train.csv").write_text(GOOD)
    (tmp_path / "test.csv").write_text("x2,x1,extra,label\n0.1,0.2,9,0\n0.3,0.4,9,1\n")
    rc, _, err = ocdl_main("train", "--data", tmp_path / "train.csv", "--test", tmp_path / "test.csv",
                           "--iterations", "2")
    assert rc == 0 and "extra" in err and "not used" in err, err


def test_one_class_test_file_is_accepted_beside_builtin_and_csv_data(tmp_path, ocdl_main):
    """One rule: a test file may hold any subset of the training classes."""
    (tmp_path / "train.csv").write_text(GOOD)
    (tmp_path / "one.csv").write_text("x1,x2,label\n0.1,0.2,1\n0.3,0.4,1\n")
    for data in ("spirals", tmp_path / "train.csv"):
        rc, out, err = ocdl_main("train", "--data", data, "--test", tmp_path / "one.csv", "--iterations", "2",
                                 "--quiet")
        assert rc == 0, err
        assert json.loads(out)["test_accuracy"] in (0.0, 0.5, 1.0)


def test_model_whose_outputs_overflow_is_refused_by_predict(tmp_path, ocdl_main):
    from ocdl.data import save_model
    from ocdl.solvers import make_model
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    model = make_model(X, np.array([0, 1]), layers=2, T=1e308)
    params = model.init(seed=0)
    params["K"] = params["K"] + 1.0
    save_model(tmp_path / "m.npz", model, params)
    (tmp_path / "d.csv").write_text(GOOD)
    rc, out, err = ocdl_main("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "d.csv")
    assert rc == 2 and "non-finite" in err and out == "", err
    assert "RuntimeWarning" not in err


def test_sweep_test_file_with_a_subset_of_named_classes_keeps_the_training_indices(tmp_path, ocdl_main):
    """[data] test holding only some of the training classes: test accuracy as ocdl train reports it."""
    rows = "".join(f"{np.cos(i):.3f},{np.sin(i):.3f},{'ab'[int(np.cos(i) > 0)]}\n" for i in range(40))
    (tmp_path / "train.csv").write_text("x1,x2,label\n" + rows)
    test = "".join(r + "\n" for r in rows.splitlines() if r.endswith(",b"))
    (tmp_path / "test.csv").write_text("x1,x2,label\n" + test)
    (tmp_path / "sweep.toml").write_text(f'[grid]\ndata = ["{tmp_path}/train.csv"]\nlayers = [3]\n'
                                         f'[settings]\niterations = 300\n[data]\ntest = "{tmp_path}/test.csv"\n')
    rc, _, err = ocdl_main("sweep", "--config", tmp_path / "sweep.toml", "--out", tmp_path / "out", "--quiet")
    assert rc == 0, err
    run = json.loads(next((tmp_path / "out" / "runs").iterdir()).read_text())
    rc, out, err = ocdl_main("train", "--data", tmp_path / "train.csv", "--test", tmp_path / "test.csv", "--layers",
                             "3", "--iterations", "300", "--normalize", "standard", "--quiet")
    assert rc == 0, err
    assert run["test_accuracy"] == json.loads(out)["test_accuracy"] > 0.5


def test_data_that_is_the_checkpoint_file_is_never_overwritten(tmp_path, ocdl_main):
    (tmp_path / "ck").mkdir()
    data = tmp_path / "ck" / "checkpoint.npz"
    data.write_text(GOOD)
    rc, _, err = ocdl_main("train", "--data", data, "--checkpoint", tmp_path / "ck", "--iterations", "300",
                           "--checkpoint-every", "1", "--quiet")
    assert rc == 2 and "--checkpoint" in err and "input" in err, err
    assert data.read_text() == GOOD


# ---- issue 22: the benchmark entry points outside the ``ocdl`` command ------------------------
PEERS_CASES = {
    "no arguments": [],
    "not six parts": ["outer:euler:8:512"],
    "malformed": ["foo"],
    "unknown field": ["outr:euler:8:64:4:1"],
    "unknown integrator": ["outer:eulr:8:64:4:1"],
    "negative width": ["outer:euler:-8:64:4:1"],
    "non-integer depth": ["outer:euler:8:64:x:1"],
    "one sample": ["outer:euler:8:1:4:1"],
    "splitting on a non-hamiltonian field": ["outer:verlet:8:64:4:1"],
    "implicit integrator": ["outer:gauss2:8:64:4:1"],     # was run, stepping only A's lower triangle
    "conv field": ["conv:euler:8:64:4:1"],
}


@pytest.mark.parametrize("case", sorted(PEERS_CASES))
def test_bench_peers_bad_arguments(case, capsys):
    """``python -m ocdl.bench.peers`` used to print a traceback (or, for an implicit integrator,
    time a different network); now one line on stderr and exit 2, before any timing."""
    from ocdl.bench.peers import main
    assert main(PEERS_CASES[case]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("usage:" if not PEERS_CASES[case] else "ocdl.bench.peers: error:"), err


@pytest.mark.parametrize("module", ["gradient", "block"])
@pytest.mark.parametrize("argv", [[], ["{not json"], ["[1, 2]"], ["{}", "{}"]])
def test_bench_worker_bad_arguments(module, argv, capsys):
    """The per-case worker processes of ``ocdl bench gradient|block`` take one JSON object."""
    import importlib

    from ocdl.bench import worker_main
    measure = importlib.import_module(f"ocdl.bench.{module}").measure
    assert worker_main(argv, measure, f"ocdl.bench.{module}") == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"usage: python -m ocdl.bench.{module} SPEC") and len(err.splitlines()) == 1


def test_bench_peers_entry_point_without_arguments():
    """The real entry point: ``python -m ocdl.bench.peers`` exits 2 with its usage line."""
    import subprocess
    import sys
    from conftest import ROOT
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "ocdl.bench.peers"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith("usage: python -m ocdl.bench.peers"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_list_flag_error_names_the_item(ocdl_main):
    """``--fields foo`` (a job field named ``fields_``) said "unknown fields  'foo'"."""
    rc, _, err = ocdl_main("bench", "gradient", "--fields", "foo")
    assert rc == 2 and "unknown field 'foo' (valid: outer, hamiltonian, inner)" in err, err
