"""Property-based fuzzing of the whole command line (issue 12).

Hypothesis builds argument vectors for every command — random flags in random order, each with
a valid small value or a hostile one (0, negatives, NaN, inf, 1e400, text, empty, huge sizes) —
and input files: malformed CSV (ragged, text cells, NaN, huge labels, byte-order marks, binary
junk), TOML (unknown or mistyped keys, deep nesting, junk), ``.npz`` (a real model file, a
truncated one, a changed array, random bytes) and hostile expressions (a random arithmetic
grammar plus known attacks). For every case it asserts:

* the exit code is 0, 2 or 3 (never 1, the internal-error code);
* no traceback is printed;
* every input file (a value of ``--data``, ``--test``, ``--model`` or ``--config``) is unchanged,
  and no ``.tmp-*`` file is left anywhere;
* the process's peak resident memory stays below :data:`PEAK_MB`, and a wall-clock alarm of
  :data:`CASE_SECONDS` catches hangs; the slow run also bounds each case's CPU time
  (:data:`CASE_CPU_SECONDS`) — a timing assertion that belongs to a study, not to the default
  suite on a loaded machine.

Model files include hostile metadata and checkpoints (``train --checkpoint DIR --resume`` with a
hostile ``DIR/checkpoint.npz``) from the strategies of tests/hostile.py; the library API
(``ocdl.train``, ``ocdl.save``/``load``, the estimator) is fuzzed in tests/test_hostile.py.

Sizes are drawn small (or absurd, which the size guards must refuse at once): medium sizes such
as ``--points 10**7`` are legitimate long runs, not bugs. The commands run in-process
(``ocdl.cli.main.main``). The default suite runs :data:`DEFAULT_CASES` cases; ``-m slow`` runs
:data:`SLOW_CASES`.
"""
import hashlib
import io
import json
import os
import resource
import signal
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile
from conftest import run_ocdl_inprocess

DEFAULT_CASES = int(os.environ.get("OCDL_FUZZ_CASES", 60))
SLOW_CASES = int(os.environ.get("OCDL_FUZZ_SLOW_CASES", 5000))
CASE_SECONDS = 180
CASE_CPU_SECONDS = 20
INPUT_FLAGS = ("--data", "--test", "--model", "--config")
PEAK_MB = 6000

# ---- values -------------------------------------------------------------------------------------
HOSTILE_NUMBERS = ["0", "-1", "-0", "nan", "inf", "-inf", "1e400", "abc", "", "1e-300", "0x10", "1_0", " 2",
                   "-1e308", "2.5", "١"]
HUGE = ["1000000000000000", str(2 ** 63), "99999999999999999999999"]


def number(*valid):
    return st.one_of(st.sampled_from([str(v) for v in valid]), st.sampled_from(HOSTILE_NUMBERS))


def size(*valid):
    """A small valid size, a hostile number, or an absurd size (which must be refused at once)."""
    return st.one_of(st.sampled_from([str(v) for v in valid]), st.sampled_from(HOSTILE_NUMBERS + HUGE))


def name(*valid):
    return st.one_of(st.sampled_from(list(valid)),
                     st.sampled_from(["", "xyz", valid[0][:-1] or "q", valid[0].upper(), "../etc", "a,b"]))


ATTACKS = ["__import__('os').system('true')", "x.__class__", "().__class__", "[x for x in x]", "lambda: 1",
           "1/0", "9**9**9**9", "(-8)**(1/3)", "sin(x, x)", "max(x)", "exp(1000)", "log(0)", "sqrt(-1)",
           "x" * 1200, "(" * 200 + "x" + ")" * 200, "-" * 500 + "x", "1e999", "9" * 400, "x if x else x",
           "x[0]", "'a'", "True", "open", "x @ x", "x // 2", "x == 1", "*x", "sin(*x)", "sin(x=1)", "\x00",
           "x; 1", "", " ", "-(x-1)", "-0.1*v", "0.01*v**2", "2*sin(x)-0.3*(x-5)"]


def expr_grammar(var):
    leaf = st.one_of(st.sampled_from([var, var, "pi", "e", "t"]),
                     st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: repr(v)),
                     st.integers(-9, 99).map(str))
    funcs = ["sin", "exp", "log", "sqrt", "tanh", "abs", "arctan2", "maximum", "heaviside", "cbrt", "arccos"]

    def grow(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**", "%"]), inner)
              .map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
            st.tuples(st.sampled_from(["-", "+"]), inner).map("".join),
            st.tuples(st.sampled_from(funcs), st.lists(inner, min_size=0, max_size=3))
              .map(lambda t: f"{t[0]}({', '.join(t[1])})"))
    return st.recursive(leaf, grow, max_leaves=8)


def expression(var):
    return st.one_of(expr_grammar(var), st.sampled_from(ATTACKS))


# ---- files --------------------------------------------------------------------------------------
CELLS = ["0", "1", "-1", "0.5", "2", "nan", "inf", "abc", "", "1e400", "100000000", " 3 ", "1e-300", "-0"]


@st.composite
def csv_text(draw):
    kind = draw(st.sampled_from(["good", "good", "cells", "header", "junk", "forces"]))
    if kind == "junk":
        return draw(st.binary(max_size=200))
    d = draw(st.integers(1, 3))
    if kind == "forces":
        header = draw(st.sampled_from([["v0", "vT"], ["x0", "v0", "kind", "vT"], ["t", "x"]]))
    else:
        header = [f"x{j + 1}" for j in range(d)] + ["label"]
        if kind == "header":
            header = draw(st.lists(st.sampled_from(["x1", "x2", "label", "x3", "", "y", "x1 "]), max_size=5))
    n = draw(st.integers(0, 12))
    rows = []
    for i in range(n):
        if kind == "cells":
            rows.append(draw(st.lists(st.sampled_from(CELLS), min_size=max(len(header) - 1, 0),
                                      max_size=len(header) + 1)))
        else:
            rows.append([f"{np.cos(i + j):.3f}" for j in range(len(header) - 1)] + [str(i % 2)])
    text = "\n".join(",".join(r) for r in [header] + rows) + "\n"
    if draw(st.booleans()) and draw(st.booleans()):
        text = "\ufeff" + text
    return text.encode()


FLAG_KEYS = ["layers", "iterations", "T", "width", "solver", "field", "seed", "lr", "debug", "quiet", "layres",
             "json", "data", "config", "help", "alpha"]
TOML_VALUES = ["2", "1", "0", "-1", "1.5", "nan", "inf", "\"adam\"", "\"abc\"", "true", "false", "[1, 2]",
               "[]", "{a = 1}", "\"\"", "1e400", "2026-01-01"]


@st.composite
def toml_text(draw):
    kind = draw(st.sampled_from(["flags", "flags", "sweep", "junk", "deep"]))
    if kind == "junk":
        return draw(st.binary(max_size=200))
    if kind == "deep":
        k = draw(st.sampled_from([10, 40, 3000]))
        return ("a = " + "[" * k + "]" * k + "\n").encode()
    lines = []
    if kind == "sweep":
        grid_solver = draw(st.sampled_from(["\"adam\"", "\"pmp-adam\"", "\"adma\"", "1"]))
        lines += ["[grid]", f"solver = [{grid_solver}]", "layers = [2]",
                  "data = [{}]".format(draw(st.sampled_from(['"spirals"', '"moons"', '"nope.csv"', '"spirls"']))),
                  "[settings]", "iterations = 1"]
        for _ in range(draw(st.integers(0, 3))):
            key = draw(st.sampled_from(["T", "lr", "alpha", "iteratons", "width", "amsgrad", "schedule", "betas",
                                        "layers", "beta"]))
            if key != "iterations":
                lines.append(f"{key} = {draw(st.sampled_from(TOML_VALUES))}")
        if draw(st.booleans()):
            per_class = draw(st.sampled_from(["5", "0", "-1", "nan", '"x"']))
            lines += ["[data]", f"points_per_class = {per_class}"]
    else:
        for key in draw(st.lists(st.sampled_from(FLAG_KEYS), max_size=4, unique=True)):
            lines.append(f"{key} = {draw(st.sampled_from(TOML_VALUES))}")
    text = "\n".join(lines) + "\n"
    if draw(st.booleans()) and draw(st.booleans()):
        text = "\ufeff" + text
    return text.encode()


_MODEL = None


def model_bytes():
    """The bytes of a real, small model file (made once)."""
    global _MODEL
    if _MODEL is None:
        from ocdl.data import save_model
        from ocdl.solvers import make_model
        import tempfile
        X = np.array([[0.0, 0.0], [1.0, 1.0]])
        model = make_model(X, np.array([0, 1]), layers=2)
        with tempfile.TemporaryDirectory() as d:
            save_model(os.path.join(d, "m.npz"), model, model.init(seed=0))
            with open(os.path.join(d, "m.npz"), "rb") as fh:
                _MODEL = fh.read()
    return _MODEL


@st.composite
def npz_bytes(draw):
    kind = draw(st.sampled_from(["good", "truncated", "array", "junk", "bomb", "meta", "meta"]))
    good = model_bytes()
    if kind == "good":
        return good
    if kind == "meta":
        meta = json.loads(bytes(np.load(io.BytesIO(good))["__meta__"]))
        return hostile.with_meta(good, draw(hostile.model_meta(meta)))
    if kind == "truncated":
        return good[:draw(st.integers(0, len(good) - 1))]
    if kind == "junk":
        return draw(st.binary(max_size=300))
    z = dict(np.load(io.BytesIO(good)))
    if kind == "bomb":
        z["extra"] = np.zeros(2 ** 22)
        buf = io.BytesIO()
        np.savez_compressed(buf, **z)
        return buf.getvalue()
    key = draw(st.sampled_from(["K", "b", "W", "mu", "__meta__"]))
    change = draw(st.sampled_from(["complex", "short", "text", "nan", "drop", "int"]))
    if change == "complex":
        z[key] = z[key].astype(complex)
    elif change == "short":
        z[key] = z[key].reshape(-1)[:1]
    elif change == "text":
        z[key] = np.array(["a"])
    elif change == "nan":
        z[key] = np.full(z[key].shape, np.nan)
    elif change == "drop":
        del z[key]
    else:
        z[key] = z[key].astype(np.int64)
    buf = io.BytesIO()
    np.savez(buf, **z)
    return buf.getvalue()


_CHECKPOINT = None


def _good_checkpoint():
    """The bytes of a real checkpoint (made once)."""
    global _CHECKPOINT
    if _CHECKPOINT is None:
        import tempfile

        from ocdl.data import save_checkpoint
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(d, {"iteration": 2, "params": {"x": np.zeros(5)}, "opt": {"m": np.zeros(5)},
                                "history": [{"iteration": 0, "loss": 1.0}], "meta": {"rng": [1]}}, {"solver": "adam"})
            with open(os.path.join(d, "checkpoint.npz"), "rb") as fh:
                _CHECKPOINT = fh.read()
    return _CHECKPOINT


@st.composite
def checkpoint_bytes(draw):
    """A checkpoint file: real, with hostile metadata, truncated or junk."""
    good = _good_checkpoint()
    kind = draw(st.sampled_from(["meta", "meta", "good", "truncated", "junk"]))
    if kind == "good":
        return good
    if kind == "truncated":
        return good[:draw(st.integers(0, len(good) - 1))]
    if kind == "junk":
        return draw(st.binary(max_size=300))
    meta = json.loads(bytes(np.load(io.BytesIO(good))["__meta__"]))
    return hostile.with_meta(good, draw(hostile.checkpoint_meta(meta)))


# ---- argument vectors ---------------------------------------------------------------------------
def optional(flags):
    """A random subset of ``flags`` (dict flag -> value strategy) in random order, as tokens."""
    @st.composite
    def build(draw):
        chosen = draw(st.lists(st.sampled_from(sorted(flags)), max_size=min(6, len(flags)), unique=True))
        tokens = []
        for f in chosen:
            v = flags[f]
            if v is None:
                tokens.append(f)
            else:
                value = draw(v)
                tokens += [f"{f}={value}"] if draw(st.integers(0, 4)) == 0 else [f, value]
        return tokens
    return build()


OUT = st.sampled_from(["{o}/r.json", "{o}/r.json", "{i}/data.csv", "{i}/config.toml", "{i}/model.npz",
                       "{o}/nodir/r.json", "{o}", "{o}/p.xyz", "{o}/same"])
PLOT = st.sampled_from(["{o}/p.png", "{o}/p.svg", "{o}/p.xyz", "{o}/p", "{i}/data.csv", "{o}/same"])
DATA = st.sampled_from(["{i}/data.csv", "{i}/data.csv", "spirals", "moons", "circles", "spirls", "{i}/nope.csv",
                        "{i}", "{i}/config.toml"])
COMMON = {"--quiet": None, "--config": st.just("{i}/config.toml"), "--seed": size(0, 1, 7)}
TRAIN_SIZES = {"--layers": size(1, 2, 3), "--T": number(0.5, 1, 5), "--width": size(2, 4, 6),
               "--alpha": number(0, 1e-3), "--points": size(3, 10)}


def command():
    """(argv template, flags that take an EXPR) for every command."""
    train = st.tuples(st.just(["train", "--iterations"]), st.sampled_from(["1", "2", "0", "-1", "x"]),
                      st.just(["--data"]), DATA,
                      optional({**COMMON, **TRAIN_SIZES,
                                "--solver": name("adam", "pmp-adam", "pmp-gd", "lbfgs", "pmp-lbfgs", "msa"),
                                "--field": name("outer", "inner", "hamiltonian"),
                                "--integrator": name("euler", "rk4", "verlet", "heun"),
                                "--activation": name("tanh", "relu", "softplus"),
                                "--lr": number(0.01, 0.1), "--beta": number(0, 0.1), "--noise": number(0, 0.1),
                                "--turns": number(1, 1.5), "--normalize": name("range", "none"),
                                "--test": DATA, "--json": OUT, "--save": OUT, "--plot": PLOT,
                                "--checkpoint": st.sampled_from(["{o}/ck", "{i}/data.csv", "{o}/r.json", "{i}/ck"]),
                                "--resume": None, "--device": name("cpu", "cuda"),
                                "--segments": size(1, 2)}))
    predict = st.tuples(st.just(["predict", "--model"]),
                        st.sampled_from(["{i}/model.npz", "{i}/model.npz", "{i}/nope.npz", "{i}/data.csv"]),
                        st.just(["--data"]), st.sampled_from(["{i}/data.csv", "{i}/model.npz", "spirals"]),
                        optional({**COMMON, "--json": OUT}))
    gradcheck = st.tuples(st.just(["gradcheck", "--layers"]), size(1, 2, 3), st.just(["--points"]), size(2, 4),
                          optional({**COMMON, "--T": number(1), "--width": size(2, 4),
                                    "--field": name("outer", "inner", "hamiltonian"),
                                    "--integrator": name("euler", "rk4", "verlet"), "--json": OUT}))
    compare = st.tuples(st.just(["compare", "--iterations", "2", "--points"]), size(3, 5),
                        st.just(["--solvers"]), st.sampled_from(["adam,pmp-adam", "pmp-gd", "adam,adma", ",", ""]),
                        st.just(["--data"]), DATA,
                        optional({**COMMON, **TRAIN_SIZES, "--json": OUT, "--plot": PLOT,
                                  "--target": number(0.5), "--test": DATA}))
    integrators = st.tuples(st.just(["integrators", "--steps"]), size(10, 50), st.just(["--periods"]),
                            number(0.5, 1),
                            optional({**COMMON, "--problem": name("kepler", "pendulum", "harmonic"),
                                      "--methods": st.sampled_from(["euler,verlet", "rk4", "verlet,xx", ""]),
                                      "--json": OUT, "--plot": PLOT}))
    forces_sim = st.tuples(st.sampled_from([["forces", "simulate", "drag"], ["forces", "simulate", "position"],
                                            ["forces", "simulate", "oscillator"]]),
                           st.just(["--force"]), expression("v"), st.just(["--samples"]), size(3, 5),
                           optional({**COMMON, "--T": number(0.5, 1), "--g": number(9.8), "--noise": number(0, 0.01),
                                     "--vmin": number(0, 1), "--vmax": number(2, 5), "--out": OUT,
                                     "--target": number(1)}))
    forces_learn = st.tuples(st.sampled_from([["forces", "learn", "drag"], ["forces", "learn", "position"]]),
                             st.just(["--data", "{i}/data.csv", "--iterations", "2", "--steps"]), size(2, 4),
                             optional({**COMMON, "--T": number(1), "--g": number(9.8), "--truth": expression("v"),
                                       "--solver": name("adam", "pmp-adam", "newton"), "--json": OUT,
                                       "--profile": OUT, "--plot": PLOT, "--lambda": number(0, 1e-3)}))
    mf = st.tuples(st.sampled_from([["meanfield", "fokker-planck", "--cells", "20"],
                                    ["meanfield", "particles", "--particles", "20"]]),
                   st.just(["--drift"]), expression("x"), st.just(["--steps"]), size(5, 10),
                   st.just(["--nu"]), number(0.5, 1), st.just(["--mean", "0", "--std"]), number(1, 0.5),
                   st.just(["--T"]), number(0.5, 1), optional({**COMMON, "--out": OUT, "--xmin": number(-3),
                                                               "--xmax": number(3)}))
    control = st.tuples(st.just(["meanfield", "control", "--cells", "20", "--steps", "10", "--maxiter", "3",
                                 "--terminal"]), expression("x"),
                        st.just(["--nu", "0.5", "--mean", "0", "--std", "1", "--T"]), number(0.5),
                        optional({**COMMON, "--out": OUT, "--json": OUT, "--g": number(0, 1)}))
    sweep = st.tuples(st.just(["sweep", "--config", "{i}/config.toml", "--out"]),
                      st.sampled_from(["{o}/sw", "{i}/data.csv", "{o}/a/b"]), optional({"--quiet": None}))
    bench = st.tuples(st.just(["bench", "gradient", "--repeats", "1", "--methods", "costate", "--fields", "outer",
                               "--depths"]), st.sampled_from(["2", "2,4", "0", "x", "100000000000"]),
                      st.just(["--samples"]), size(4), st.just(["--width"]), size(2),
                      optional({**COMMON, "--json": OUT}))
    holo_sim = st.tuples(st.just(["holography", "simulate", "--metric"]),
                         st.sampled_from(["3/tanh(3*eta)", "1/(eta-1)", "eta +", "sqrt(eta-0.5)", "1e9/eta"]),
                         st.just(["--samples"]), size(2, 6),
                         optional({**COMMON, "--m2": number(-1), "--lam": number(1), "--eta-fin": number(0.1, 2),
                                   "--layers": size(2, 5), "--out": OUT}))
    holo_learn = st.tuples(st.just(["holography", "learn", "--data", "{i}/data.csv", "--iterations", "2"]),
                           optional({**COMMON, "--solver": name("adam", "pmp-adam", "newton", "pmp-lbfgs"),
                                     "--layers": size(2, 4), "--c-reg": number(0, 1),
                                     "--true-metric": expression("eta"), "--json": OUT, "--plot": PLOT,
                                     "--test": DATA}))
    return st.one_of(train, predict, gradcheck, compare, integrators, forces_sim, forces_learn, mf, control,
                     sweep, bench, holo_sim, holo_learn)


def flatten(parts):
    out = []
    for p in parts:
        out += p if isinstance(p, list) else [p]
    return out


# ---- the property -------------------------------------------------------------------------------
def digest(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


class CaseTimeout(BaseException):
    pass


def _cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _alarm(signum, frame):
    raise CaseTimeout


def check_case(tmp_path_factory, parts, csv, toml, npz, ckpt, timed=False):
    base = tmp_path_factory.mktemp("fuzz")
    i, o = base / "in", base / "out"
    i.mkdir()
    o.mkdir()
    (i / "data.csv").write_bytes(csv)
    (i / "config.toml").write_bytes(toml)
    (i / "model.npz").write_bytes(npz)
    (i / "ck").mkdir()
    (i / "ck" / "checkpoint.npz").write_bytes(ckpt)
    argv = [a.replace("{i}", str(i)).replace("{o}", str(o)) for a in flatten(parts)]
    named = {v for f, v in zip(argv, argv[1:]) if f in INPUT_FLAGS}
    named |= {a.split("=", 1)[1] for a in argv if a.split("=", 1)[0] in INPUT_FLAGS and "=" in a}
    before = {p: digest(i / p) for p in os.listdir(i) if str(i / p) in named}
    cwd = os.getcwd()
    os.chdir(o)  # relative outputs (none expected) land in the scratch directory
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    start, cpu0 = time.perf_counter(), _cpu()
    try:
        rc, out, err = run_ocdl_inprocess(*argv)
    except CaseTimeout:
        pytest.fail(f"case took more than {CASE_SECONDS} s: ocdl {' '.join(argv)}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(cwd)
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu0
    where = f"ocdl {' '.join(argv)}\n(exit {rc}, {elapsed:.1f} s, CPU {cpu:.1f} s)\nstderr: {err[-2000:]}"
    if timed:
        assert cpu < CASE_CPU_SECONDS, f"too slow: {where}"
    assert rc in (0, 2, 3), where
    assert "Traceback" not in err and "Traceback" not in out, where
    assert "internal error" not in err, where
    if rc == 2:
        assert err.strip().count("\n") == 0 or "usage" in err or "error:" in err.splitlines()[-1], where
    assert {p: digest(i / p) for p in before} == before, f"an input changed: {where}"
    temps = [os.path.join(r, f) for r, _, fs in os.walk(base) for f in fs if f.startswith(".tmp-")]
    assert not temps, f"temporary files left: {temps}: {where}"
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert peak_mb < PEAK_MB, f"peak memory {peak_mb:.0f} MB: {where}"


FUZZ = dict(deadline=None, derandomize=True, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
STRATEGY = dict(parts=command(), csv=csv_text(), toml=toml_text(), npz=npz_bytes(), ckpt=checkpoint_bytes())


@settings(max_examples=DEFAULT_CASES, **FUZZ)
@given(**STRATEGY)
def test_fuzz_cli(tmp_path_factory, parts, csv, toml, npz, ckpt):
    check_case(tmp_path_factory, parts, csv, toml, npz, ckpt)


@pytest.mark.slow
@settings(max_examples=SLOW_CASES, **{**FUZZ, "derandomize": False})
@given(**STRATEGY)
def test_fuzz_cli_long(tmp_path_factory, parts, csv, toml, npz, ckpt):
    check_case(tmp_path_factory, parts, csv, toml, npz, ckpt, timed=True)


# ---- the library API: the same properties as exceptions --------------------------------------------
ESTIMATOR_VALUES = st.sampled_from([None, -1, 0, 1, 2, 0.5, 1e-3, float("nan"), float("inf"), 10 ** 12, "2", "abc",
                                    True, [1], "cuda", "cpu", "none", "range", "outer", "hamiltonian", "rk4"])


@st.composite
def estimator_params(draw):
    keys = ["solver", "field", "integrator", "activation", "layers", "T", "width", "alpha", "beta", "normalize",
            "lr", "seed", "device"]
    return {k: draw(ESTIMATOR_VALUES) for k in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True))}


def check_estimator(params, y_kind):
    """``ResNetODEClassifier(**params).fit`` returns a fitted estimator or raises one clean
    ValueError/TypeError (InputError is a ValueError) or, for a run that diverges (e.g. T = 1e12),
    the documented SolverError — never another exception."""
    from ocdl.errors import SolverError
    pytest.importorskip("sklearn")
    from ocdl import ResNetODEClassifier
    X = np.cos(np.arange(24.0)).reshape(12, 2)
    y = {"int": np.arange(12) % 2, "str": np.array(["a", "b"] * 6), "float": np.arange(12) % 2 + 0.5,
         "one": np.zeros(12)}[y_kind]
    clf = ResNetODEClassifier(**{"iterations": 2, "layers": 2, **params})
    try:
        clf.fit(X, y)
    except (ValueError, TypeError, SolverError) as exc:
        assert "\n" not in str(exc).strip()
        return
    assert set(clf.predict(X)) <= set(clf.classes_)


@settings(max_examples=max(DEFAULT_CASES // 4, 5), **FUZZ)
@given(params=estimator_params(), y_kind=st.sampled_from(["int", "str", "float", "one"]))
def test_fuzz_estimator(params, y_kind):
    check_estimator(params, y_kind)


@pytest.mark.slow
@settings(max_examples=SLOW_CASES // 2, **{**FUZZ, "derandomize": False})
@given(params=estimator_params(), y_kind=st.sampled_from(["int", "str", "float", "one"]))
def test_fuzz_estimator_long(params, y_kind):
    check_estimator(params, y_kind)
