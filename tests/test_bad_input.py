"""Table-driven bad-input test (issue 8): every case exits 2 with one line on stderr, no
traceback, and leaves no output file behind."""
import json

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
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    for name, text in FILES.items():
        (d / name).write_text(text)
    meta = {"format": "ocdl-model", "version": 99, "model": {}, "info": {}}
    np.savez(d / "v99.npz", __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
             K=np.zeros((1, 2, 2)), b=np.zeros((1, 2)), W=np.zeros((1, 2)), mu=np.zeros(1))
    return d


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, inputs, tmp_path, ocdl_cli):
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(d=inputs, out=out) for a in CASES[case]]
    r = ocdl_cli(*args, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, f"{case}: exit {r.returncode}, stderr: {r.stderr[-500:]}"
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1, f"{case}: expected one line, got:\n{r.stderr}"
    assert "error" in lines[0]
    assert list(out.iterdir()) == [], f"{case}: left {list(out.iterdir())}"


def test_unknown_name_suggests_closest(ocdl_cli, tmp_path):
    r = ocdl_cli("train", "--data", "spirals", "--solver", "adma", "--json", tmp_path / "o.json")
    assert r.returncode == 2 and "adam" in r.stderr and "pmp-adam" in r.stderr
    r = ocdl_cli("forces", "simulate", "drug", "--force", "v", "--out", tmp_path / "f.csv")
    assert r.returncode == 2 and "did you mean 'drag'" in r.stderr
