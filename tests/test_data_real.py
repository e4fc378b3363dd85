"""Real data sets (ocdl.data.real): documented shapes, splits and determinism, the cache, and the
command-line names. The loaders need the optional packages of ``ocdl[data]``."""
import os

import numpy as np
import pytest

from ocdl.data import ALL_DATASETS, REAL_DATASETS, load_real, named_dataset
from ocdl.data.real import TEST_FRACTION, stratified_split

# (features, classes, train, test) as documented in ocdl/data/real.py
SHAPES = {"digits": (64, 10, 1347, 450), "wine": (13, 3, 133, 45), "breast-cancer": (30, 2, 427, 142),
          "iris": (4, 3, 114, 36), "mnist1d": (40, 10, 4000, 1000)}


def _check(name, X, y, Xt, yt):
    d, C, n, m = SHAPES[name]
    assert X.shape == (n, d) and Xt.shape == (m, d) and y.shape == (n,) and yt.shape == (m,)
    assert X.dtype == Xt.dtype == np.float64 and y.dtype == yt.dtype == np.int64
    assert sorted(set(y.tolist())) == list(range(C)) and set(yt.tolist()) <= set(range(C))
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(Xt))


@pytest.mark.parametrize("name", ["digits", "wine", "breast-cancer", "iris"])
def test_sklearn_sets_shapes_and_stratified_split(name):
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn (pip install 'ocdl[data]') is missing")
    X, y, Xt, yt = load_real(name)
    _check(name, X, y, Xt, yt)
    # the split is a partition of the bundled set, with class proportions kept to within one sample
    Xa, ya = datasets.__dict__[{"digits": "load_digits", "wine": "load_wine", "iris": "load_iris",
                                "breast-cancer": "load_breast_cancer"}[name]](return_X_y=True)
    assert len(y) + len(yt) == len(ya)
    rows = {r.tobytes() for r in np.asarray(Xa, dtype=float)}
    assert all(r.tobytes() in rows for r in np.concatenate([X, Xt]))
    for c in np.unique(ya):
        assert abs(np.sum(yt == c) - TEST_FRACTION * np.sum(ya == c)) <= 0.5
    again = load_real(name)
    assert all(np.array_equal(a, b) for a, b in zip((X, y, Xt, yt), again))


def test_stratified_split_is_a_seeded_partition():
    y = np.repeat([0, 1, 2], [10, 20, 7])
    tr, te = stratified_split(y, 0.25, seed=0)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(len(y)))
    assert [int(np.sum(y[te] == c)) for c in range(3)] == [round(2.5), 5, round(1.75)]
    assert np.array_equal(te, stratified_split(y, 0.25, seed=0)[1])
    assert not np.array_equal(te, stratified_split(y, 0.25, seed=1)[1])


def test_mnist1d_is_the_generator_default_and_is_cached(tmp_path, monkeypatch):
    data = pytest.importorskip("mnist1d.data", reason="mnist1d (pip install 'ocdl[data]') is missing")
    monkeypatch.setenv("OCDL_CACHE_DIR", str(tmp_path))
    state = np.random.get_state()
    X, y, Xt, yt = load_real("mnist1d")
    _check("mnist1d", X, y, Xt, yt)
    assert np.array_equal(np.random.get_state()[1], state[1])       # global random state restored
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].startswith("mnist1d-") and files[0].endswith(".npz")
    # the package's own generator with its default arguments gives the same arrays
    ref = data.make_dataset(data.get_dataset_args())
    np.random.set_state(state)
    assert np.array_equal(X, ref["x"]) and np.array_equal(yt, ref["y_test"])
    # the second call reads the cache (a generator that fails proves it is not called)
    monkeypatch.setattr(data, "make_dataset", lambda *a, **k: 1 / 0)
    again = load_real("mnist1d")
    assert all(np.array_equal(a, b) for a, b in zip((X, y, Xt, yt), again))


def test_named_dataset_synthetic_and_real():
    X, y, Xt, yt = named_dataset("moons", seed=1, test_seed=2, points_per_class=10)
    assert X.shape == Xt.shape == (20, 2) and not np.array_equal(X, Xt)
    assert named_dataset("moons", seed=1, points_per_class=10)[2] is None
    assert set(REAL_DATASETS) <= set(ALL_DATASETS)
    from ocdl.errors import InputError
    with pytest.raises(InputError, match="takes no generator options"):
        named_dataset("iris", points_per_class=3)
    with pytest.raises(InputError, match="did you mean 'digits'"):
        named_dataset("digit")


def test_missing_package_is_one_line_naming_the_extra(ocdl_cli, tmp_path):
    # a sitecustomize that hides scikit-learn: the CLI says which extra to install, exit 2
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nclass _Hide:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sklearn' or name.startswith('sklearn.'):\n"
        "            raise ImportError('hidden')\n"
        "sys.meta_path.insert(0, _Hide())\n")
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = str(tmp_path) + os.pathsep + env_path
    try:
        r = ocdl_cli("train", "--data", "wine", "--iterations", "2", "--quiet")
    finally:
        os.environ["PYTHONPATH"] = env_path
    assert r.returncode == 2 and "ocdl[data]" in r.stderr and "scikit-learn" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_train_on_a_real_set_records_test_accuracy_each_epoch(ocdl_cli, tmp_path):
    pytest.importorskip("sklearn.datasets", reason="scikit-learn (pip install 'ocdl[data]') is missing")
    out = tmp_path / "o.json"
    r = ocdl_cli("train", "--data", "iris", "--solver", "pmp-adam", "--batch-size", "32", "--epochs", "4",
                 "--layers", "4", "--quiet", "--json", out)
    assert r.returncode == 0, r.stderr
    import json
    d = json.loads(out.read_text())
    rows = [h for h in d["history"] if "epoch" in h]
    assert [h["epoch"] for h in rows] == [1, 2, 3, 4] and d["iterations"] == 4 * 4      # ⌈114/32⌉ = 4
    assert all(0 <= h["test_accuracy"] <= 1 for h in rows) and d["test_accuracy"] is not None


def test_sweep_and_bench_take_the_real_names():
    pytest.importorskip("sklearn.datasets", reason="scikit-learn (pip install 'ocdl[data]') is missing")
    from ocdl.bench.sweep import run_data
    X, y, (Xt, yt) = run_data({"data": "iris", "seed": 5, "data_options": {"test": True}})
    ref = load_real("iris")
    assert np.array_equal(X, ref[0]) and np.array_equal(Xt, ref[2]) and np.array_equal(yt, ref[3])
