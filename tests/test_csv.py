"""CSVs as people have them (issue 13): any header names, --label-column, string labels mapped to
classes and back, feature columns matched by name at predict time, ``predict --proba``, and
--normalize standard against scikit-learn's StandardScaler (an independent implementation)."""
import json

import numpy as np
import pytest

from ocdl.data import load_model, save_model
from ocdl.errors import InputError
from ocdl.io import read_classification, read_labelled
from ocdl.models import ResNetODE

SPECIES = ["setosa", "versicolor", "virginica"]


def _table(n=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3)) * [1.0, 100.0, 0.01] + [0.0, 500.0, 3.0]
    c = np.arange(n) % 3
    X[:, 0] += 3.0 * c                                        # feature 0 separates the classes
    return X, c


def _write(path, header, X, labels, label_first=False):
    rows = []
    for x, lab in zip(X, labels):
        cells = [repr(float(v)) for v in x]
        rows.append(",".join([str(lab)] + cells if label_first else cells + [str(lab)]))
    path.write_text(",".join(header) + "\n" + "\n".join(rows) + "\n")


def test_named_columns_string_labels_last_column(tmp_path):
    X, c = _table()
    _write(tmp_path / "t.csv", ["sepal length", "width_mm", "ratio", "species"], X, np.array(SPECIES)[c])
    t = read_classification(tmp_path / "t.csv")
    assert t.features == ["sepal length", "width_mm", "ratio"] and t.label_column == "species"
    assert t.classes == SPECIES
    np.testing.assert_array_equal(t.y, c)
    np.testing.assert_allclose(t.X, X, rtol=1e-15)


def test_label_column_by_name_and_integer_labels_sorted_numerically(tmp_path):
    X, c = _table()
    labels = np.array([10, -2, 3])[c]
    _write(tmp_path / "t.csv", ["target", "a", "b", "cc"], X, labels, label_first=True)
    with pytest.raises(InputError, match="not an integer"):   # default: the last column 'cc' (fractional)
        read_classification(tmp_path / "t.csv")
    t = read_classification(tmp_path / "t.csv", label_column="target")
    assert t.classes == [-2, 3, 10] and t.features == ["a", "b", "cc"]
    np.testing.assert_array_equal(np.array(t.classes)[t.y], labels)
    with pytest.raises(InputError, match="no column 'nope'"):
        read_classification(tmp_path / "t.csv", label_column="nope")


def test_label_column_default_prefers_label(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("label,u,v\nb,1,2\na,3,4\n")
    t = read_classification(p)
    assert t.label_column == "label" and t.features == ["u", "v"] and t.classes == ["a", "b"]
    np.testing.assert_array_equal(t.y, [1, 0])


def test_known_classes_and_features_by_name(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("v,extra,u,species\n2,9,1,virginica\n4,9,3,setosa\n")
    t = read_classification(p, features=["u", "v"], classes=SPECIES, label_column="species")
    np.testing.assert_array_equal(t.X, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(t.y, [2, 0])
    p.write_text("u,v,species\n1,2,daisy\n")
    with pytest.raises(InputError, match="daisy"):
        read_classification(p, features=["u", "v"], classes=SPECIES, label_column="species")
    with pytest.raises(InputError, match="missing feature column"):
        read_classification(p, features=["u", "w"], classes=SPECIES)


def test_old_x_label_files_read_as_before(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("x1,x2,label\n0.5,1.0,0\n-1,2,1\n1,1,1\n")
    X, y = read_labelled(p)
    np.testing.assert_array_equal(X, [[0.5, 1.0], [-1, 2], [1, 1]])
    np.testing.assert_array_equal(y, [0, 1, 1])
    p.write_text("x1,x2,label\n1,2,0.5\n3,4,1\n")
    with pytest.raises(InputError, match="not an integer"):
        read_labelled(p)


def test_model_file_data_metadata_round_trip_and_old_files_load(tmp_path):
    m = ResNetODE(d_in=2, n_classes=3, layers=2)
    p = m.init(seed=0)
    save_model(tmp_path / "new.npz", m, p, data={"features": ["a", "b"], "label_column": "y",
                                                  "classes": ["x", 2, np.int64(5)]})
    _, _, _, data = load_model(tmp_path / "new.npz", full=True)
    assert data == {"features": ["a", "b"], "label_column": "y", "classes": ["x", 2, 5]}
    # a version-1 file written before the "data" entry existed (no key at all) still loads
    import io
    import zipfile
    raw = dict(np.load(tmp_path / "new.npz"))
    meta = json.loads(bytes(raw["__meta__"]))
    del meta["data"]
    raw["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **raw)
    (tmp_path / "old.npz").write_bytes(buf.getvalue())
    assert zipfile.is_zipfile(tmp_path / "old.npz")
    _, p2, _, data = load_model(tmp_path / "old.npz", full=True)
    assert data == {"features": None, "label_column": None, "classes": None}
    np.testing.assert_array_equal(p2["K"], p["K"])
    with pytest.raises(InputError, match="class labels"):
        save_model(tmp_path / "bad.npz", m, p, data={"classes": ["a", "b"]})


def test_cli_train_predict_with_names_string_labels_and_proba(tmp_path, ocdl_cli):
    X, c = _table(n=60)
    _write(tmp_path / "train.csv", ["f0", "f1", "f2", "species"], X, np.array(SPECIES)[c])
    # predict file: columns in another order, an extra column, no label
    cols = ["f2", "id", "f0", "f1"]
    rows = [f"{float(x[2])!r},{i},{float(x[0])!r},{float(x[1])!r}" for i, x in enumerate(X[:7])]
    (tmp_path / "new.csv").write_text(",".join(cols) + "\n" + "\n".join(rows) + "\n")
    r = ocdl_cli("train", "--data", tmp_path / "train.csv", "--iterations", "150", "--layers", "4",
                 "--save", tmp_path / "m.npz", "--json", tmp_path / "t.json", "--quiet")
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "t.json").read_text())
    assert out["normalize"] == "standard" and out["train_accuracy"] > 0.9
    r = ocdl_cli("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "new.csv", "--proba")
    assert r.returncode == 0, r.stderr
    pred = json.loads(r.stdout)
    assert pred["classes"] == SPECIES and pred["accuracy"] is None
    P = np.array(pred["probabilities"])
    assert P.shape == (7, 3)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert pred["predictions"] == [SPECIES[k] for k in np.argmax(P, axis=1)]
    # the library model on the same rows (columns in the training order) agrees
    model, params, _, data = load_model(tmp_path / "m.npz", full=True)
    assert data["features"] == ["f0", "f1", "f2"] and data["label_column"] == "species"
    np.testing.assert_allclose(model.predict_proba(params, X[:7]), P, rtol=1e-12, atol=1e-15)
    # a labelled predict file gives the accuracy against the original labels
    r = ocdl_cli("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "train.csv")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accuracy"] == pytest.approx(out["train_accuracy"], abs=1e-12)


def test_cli_standard_normalisation_equals_standardscaler(tmp_path, ocdl_cli):
    sklearn_pre = pytest.importorskip("sklearn.preprocessing")
    X, c = _table(n=30)
    _write(tmp_path / "t.csv", ["a", "b", "c", "label"], X, c)
    r = ocdl_cli("train", "--data", tmp_path / "t.csv", "--iterations", "1", "--layers", "2",
                 "--save", tmp_path / "m.npz", "--quiet")
    assert r.returncode == 0, r.stderr
    model, _, _ = load_model(tmp_path / "m.npz")
    ref = sklearn_pre.StandardScaler().fit(X)
    np.testing.assert_allclose(model.input_shift, ref.mean_, rtol=1e-13)
    np.testing.assert_allclose(model.input_scale, ref.scale_, rtol=1e-13)
    np.testing.assert_allclose(model.lift(X)[:, :3], ref.transform(X), rtol=0, atol=1e-12)


def test_classifier_picture_titles_are_true_and_legends_name_classes():
    from ocdl.models.plotting import plot_classifier
    from ocdl.plotting import plt
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(int)
    m = ResNetODE(d_in=3, n_classes=2, layers=2)
    p = m.init(seed=1)                                 # untrained: some points are on the wrong side
    s = m.logits(p, X)[:, 0]
    wrong = int(np.sum((s > 0).astype(int) != y))
    assert wrong > 0
    fig = plot_classifier(m, p, X, y, classes=["neg", "pos"], features=["a", "b", "c"])
    titles = [ax.get_title() for ax in fig.axes]
    assert f"{wrong} of 40 points on the wrong side" in titles[2]
    assert "a–b slice" in titles[0] and "other 1 features at their means" in titles[0]
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["neg", "pos"]
    plt.close(fig)


def test_untangle_ticks_removes_overlap():
    from ocdl.plotting import _overlap, plt, untangle_ticks
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([1e6, 1.00002e6], [0, 1])
    ax.xaxis.set_major_locator(__import__("matplotlib.ticker").ticker.MaxNLocator(nbins=12))
    ax.ticklabel_format(useOffset=False, style="plain")
    fig.canvas.draw()
    assert _overlap(ax.get_xticklabels(), fig.canvas.get_renderer())
    assert untangle_ticks(fig) == 1
    fig.canvas.draw()
    labels = ax.get_xticklabels()
    assert not _overlap(labels, fig.canvas.get_renderer()) or labels[0].get_rotation() == 35
    plt.close(fig)


def test_known_integer_classes_keep_their_index_when_some_are_absent(tmp_path):
    # a test file holding only class 1 of a two-class model: y must be 1, not re-indexed to 0
    p = tmp_path / "t.csv"
    p.write_text("x1,x2,label\n0.1,0.2,1\n0.3,0.1,1\n")
    np.testing.assert_array_equal(read_classification(p, classes=[0, 1]).y, [1, 1])
    p.write_text("x1,x2,label\n0.1,0.2,5\n")
    with pytest.raises(InputError, match="label 5 is not one of the classes"):
        read_classification(p, classes=[0, 1])


def test_read_labelled_keeps_integer_labels_as_indices(tmp_path):
    # the (X, y) reader of meanfield/sweep reads train and test files separately: integer labels are
    # indices (0..C-1, all present), never re-numbered per file; names map in sorted order
    p = tmp_path / "t.csv"
    p.write_text("u,v,label\n1,2,0\n3,4,2\n")
    with pytest.raises(InputError, match="0..C-1"):
        read_labelled(p)
    p.write_text("u,v,kind\n1,2,b\n3,4,a\n")
    np.testing.assert_array_equal(read_labelled(p)[1], [1, 0])


def test_untangle_ticks_on_a_log_axis_spanning_less_than_a_decade():
    # a log axis over [2.5e-3, 4e-2] labels minor ticks in 10^x notation that collide
    # (the NLS order plot); afterwards no two drawn labels, major or minor, overlap
    from ocdl.plotting import _labels, _overlap, plt, untangle_ticks
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.loglog([2.5e-3, 5e-3, 1e-2, 2e-2, 4e-2], [1e-6, 4e-6, 1.6e-5, 6.4e-5, 2.6e-4], "o-")
    fig.canvas.draw()
    assert _overlap(_labels(ax), fig.canvas.get_renderer())
    assert untangle_ticks(fig) == 1
    fig.canvas.draw()
    labels = [t for t in _labels(ax) if t.get_visible() and t.get_text()]
    assert len(labels) >= 2
    assert not _overlap(labels, fig.canvas.get_renderer())
    assert all(t.get_rotation() == 0 for t in labels)      # solved without rotating
    plt.close(fig)
