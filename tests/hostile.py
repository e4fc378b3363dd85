"""Hypothesis strategies that generate the failure classes of issue 25 (shared by
tests/test_hostile.py and tests/test_fuzz_cli.py).

* :func:`json_values` / :func:`model_meta` / :func:`checkpoint_meta` — metadata of model files and
  checkpoints with wrong types, deep nesting, wrong versions and sizes;
* :func:`label_columns` — label spellings (``1``, ``1.0``, ``+1``, ``1e0``, names), subsets and
  unseen classes;
* :data:`MINIMAL` — a small valid command line of every command, for the path-collision and size
  strategies over every flag of every command.
"""
import io
import json

import numpy as np
from hypothesis import strategies as st

# ---- metadata ------------------------------------------------------------------------------------
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.sampled_from([2 ** 70, -2 ** 64]),
                    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["", "1", "a", "x" * 200]))


def json_values(max_leaves=6):
    """Any JSON value: scalars, lists and objects, small."""
    return st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=4), inner, max_size=4)),
                        max_leaves=max_leaves)


def deep(k):
    """JSON text of a list nested ``k`` deep (json.loads recurses per level)."""
    return "[" * k + "]" * k


@st.composite
def model_meta(draw, good):
    """The metadata of a real model file ``good`` (a dict) with one field replaced, dropped or nested
    deep; returns JSON text."""
    meta = json.loads(json.dumps(good))
    where = draw(st.sampled_from(["format", "version", "model", "info", "data", "data.classes", "data.features",
                                  "data.label_column", "model.T", "model.layers", "model.width", "model.field",
                                  "extra"]))
    change = draw(st.sampled_from(["value", "drop", "deep", "keep"]))
    target, key = (meta, where) if "." not in where else (meta.setdefault(where.split(".")[0], {}) or {},
                                                          where.split(".")[1])
    if not isinstance(target, dict):
        return json.dumps(meta)
    if change == "drop":
        target.pop(key, None)
        return json.dumps(meta)
    if change == "deep":
        k = draw(st.sampled_from([2, 63, 64, 65, 1000, 100_000]))
        target[key] = "@@DEEP@@"
        return json.dumps(meta).replace('"@@DEEP@@"', deep(k))
    if change == "value":
        target[key] = draw(st.one_of(json_values(), st.sampled_from(["1", 1.0, 2, [1], {"a": 1}, 1e308, -1])))
    return json.dumps(meta)


def with_meta(container, meta_text):
    """The bytes of npz ``container`` with ``__meta__`` replaced by ``meta_text``."""
    z = dict(np.load(io.BytesIO(container)))
    z["__meta__"] = np.frombuffer(meta_text.encode("utf-8"), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **z)
    return buf.getvalue()


@st.composite
def checkpoint_meta(draw, good):
    """A checkpoint's metadata with one field replaced, dropped or nested deep (JSON text)."""
    meta = json.loads(json.dumps(good))
    key = draw(st.sampled_from(["iteration", "history", "settings", "opt_keys", "extra", "format", "version"]))
    change = draw(st.sampled_from(["value", "drop", "deep", "keep"]))
    if change == "drop":
        meta.pop(key, None)
    elif change == "deep":
        meta[key] = "@@DEEP@@"
        return json.dumps(meta).replace('"@@DEEP@@"', deep(draw(st.sampled_from([65, 5000, 100_000]))))
    elif change == "value":
        meta[key] = draw(st.one_of(json_values(), st.sampled_from([3, -1, "7", [1, 2], [[]], {"a": []}, 1.5])))
    return json.dumps(meta)


@st.composite
def checkpoint_arrays(draw, good):
    """A checkpoint's arrays with one resized, emptied or made non-finite."""
    z = dict(good)
    names = sorted(k for k in z if k != "__meta__")
    if not names or draw(st.booleans()):
        return z
    k = draw(st.sampled_from(names))
    change = draw(st.sampled_from(["short", "long", "nan", "empty", "2d"]))
    a = z[k].reshape(-1)
    z[k] = {"short": a[:max(0, a.size - 1)], "long": np.concatenate([a, a[:1] + 1.0]), "nan": a * np.nan,
            "empty": a[:0], "2d": np.tile(a, (2, 1))}[change]
    return z


# ---- labels --------------------------------------------------------------------------------------
def spellings(k):
    """Ways a CSV may write the integer class ``k``."""
    return [str(k), f"{k}.0", f"+{k}" if k >= 0 else str(k), f"{k}e0", f" {k} ", f"{float(k):.1f}"]


@st.composite
def label_columns(draw):
    """``(train, test)`` label cells: classes are integers (in several spellings) and names; the
    test column holds a subset of the classes, and maybe one unseen class."""
    ints = draw(st.lists(st.integers(-3, 12), min_size=0, max_size=4, unique=True))
    names = draw(st.lists(st.sampled_from(["a", "b", "cat", "dog", "1x", "nan_", "é"]), max_size=3, unique=True))
    classes = [("int", k) for k in ints] + [("name", n) for n in names]
    if len(classes) < 2:
        classes += [("name", "zz"), ("name", "yy")][:2 - len(classes)]

    def cell(c):
        kind, v = c
        return draw(st.sampled_from(spellings(v))) if kind == "int" else v
    train = [cell(c) for c in classes] + [cell(draw(st.sampled_from(classes))) for _ in range(draw(st.integers(0, 6)))]
    sub = draw(st.lists(st.sampled_from(classes), min_size=1, max_size=len(classes)))
    test = [cell(c) for c in sub]
    unseen = draw(st.booleans())
    if unseen:
        test.append(draw(st.sampled_from(["unseen", "99", "-7.0"])))
    return train, test, unseen


def reference_class(cell):
    """An independent reference of the class of a label cell: integer-valued numbers (however
    written) by their integer value, anything else by its stripped text."""
    text = cell.strip()
    try:
        v = float(text)
    except ValueError:
        return ("name", text)
    return ("int", int(v)) if v == int(v) else ("name", text)


# ---- command lines -------------------------------------------------------------------------------
#: a small valid command line of every command; {i} = an input directory holding data.csv
#: (x1,x2,label), forces CSVs, osc.csv, model.npz, sweep.toml; {o} = an empty output directory
MINIMAL = {
    ("train",): ["--data", "spirals", "--points", "5", "--layers", "2", "--iterations", "1"],
    ("predict",): ["--model", "{i}/model.npz", "--data", "{i}/data.csv"],
    ("gradcheck",): ["--layers", "2", "--points", "3"],
    ("compare",): ["--data", "spirals", "--points", "5", "--layers", "2", "--iterations", "1", "--solvers", "adam"],
    ("integrators",): ["--steps", "20", "--periods", "1", "--methods", "euler"],
    ("forces", "simulate", "drag"): ["--force", "-0.1*v", "--T", "1", "--g", "9.8", "--samples", "5"],
    ("forces", "simulate", "position"): ["--force", "-x", "--T", "1", "--target", "1", "--eps", "0.5",
                                         "--samples", "5"],
    ("forces", "simulate", "oscillator"): ["--samples", "5"],
    ("forces", "learn", "drag"): ["--data", "{i}/drag.csv", "--T", "1", "--g", "9.8", "--solver", "adam",
                                  "--iterations", "1", "--steps", "2", "--grid-step", "0.5"],
    ("forces", "learn", "oscillator"): ["--data", "{i}/osc.csv", "--solver", "adam", "--iterations", "1",
                                        "--steps", "5"],
    ("meanfield", "fokker-planck"): ["--drift", "-x", "--nu", "0.5", "--mean", "0", "--std", "1", "--T", "0.1",
                                     "--cells", "20", "--steps", "5", "--xmin", "-4", "--xmax", "4"],
    ("meanfield", "particles"): ["--drift", "-x", "--nu", "0.5", "--mean", "0", "--std", "1", "--T", "0.1",
                                 "--particles", "10", "--steps", "5"],
    ("meanfield", "control"): ["--terminal", "x**2", "--nu", "0.5", "--mean", "0", "--std", "1", "--T", "0.5",
                               "--cells", "20", "--steps", "5", "--maxiter", "2"],
    ("meanfield", "nls"): ["--psi0", "gaussian", "--T", "0.01", "--points", "32"],
    ("meanfield", "train"): ["--nu", "0.1", "--points", "5", "--layers", "2", "--iterations", "1", "--particles",
                             "4"],
    ("meanfield", "langevin"): ["--particles", "50", "--steps", "10", "--cells", "20", "--T", "0.1"],
    ("meanfield", "thermo"): ["--points", "27", "--samples", "500", "--iterations", "2", "--particles", "50",
                              "--steps", "16", "--cells", "16", "--mc-neurons", "2"],
    ("forces", "simulate", "potential"): ["--potential", "x", "--samples", "5"],
    ("forces", "learn", "potential"): ["--data", "{i}/osc.csv", "--gamma", "1", "--omega0", "20", "--solver",
                                       "adam", "--iterations", "1"],
    ("bench", "block"): ["--depths", "2", "--widths", "2", "--samples", "4", "--repeats", "1", "--methods",
                         "odeblock"],
    ("sweep",): ["--config", "{i}/sweep.toml"],
    ("bench", "gradient"): ["--depths", "2", "--samples", "4", "--width", "2", "--repeats", "1", "--methods",
                            "costate", "--fields", "outer"],
}
#: the output flag each command needs (required ones first)
REQUIRED_OUT = {("forces", "simulate", "drag"): "--out", ("forces", "simulate", "position"): "--out",
                ("forces", "simulate", "oscillator"): "--out", ("meanfield", "fokker-planck"): "--out",
                ("meanfield", "particles"): "--out", ("meanfield", "control"): "--out",
                ("meanfield", "nls"): "--out", ("sweep",): "--out", ("forces", "simulate", "potential"): "--out"}


def write_inputs(i):
    """The input files of :data:`MINIMAL` in directory ``i``."""
    from ocdl.data import save_model
    from ocdl.solvers import make_model
    (i / "data.csv").write_text("x1,x2,label\n0.1,0.2,0\n0.5,0.1,1\n0.3,0.3,0\n0.9,0.8,1\n")
    (i / "drag.csv").write_text("v0,vT\n1.0,0.5\n2.0,1.2\n3.0,2.0\n")
    (i / "osc.csv").write_text("t,x\n" + "".join(f"{0.05 * k:.2f},{np.exp(-0.2 * k) * np.cos(k):.4f}\n"
                                                  for k in range(12)))
    (i / "sweep.toml").write_text('[grid]\nsolver = ["adam"]\nlayers = [2]\n[settings]\niterations = 1\n'
                                  '[data]\npoints_per_class = 4\n')
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    model = make_model(X, np.array([0, 1]), layers=2)
    save_model(i / "model.npz", model, model.init(seed=0))
