"""Real benchmark data sets with a fixed train/test split (float64 inputs, int64 labels 0..C−1).

``load_real(name) → (X_train, y_train, X_test, y_test)``

=================  ========  ========  ========  =======  =========================================
name               features  classes   train     test     source and split
=================  ========  ========  ========  =======  =========================================
``mnist1d``        40        10        4000      1000     ``mnist1d.data.make_dataset`` with the
                                                          generator's default arguments (seed 42,
                                                          5000 samples, its own 80/20 split)
``digits``         64        10        1347      450      scikit-learn ``load_digits`` (8×8 images)
``wine``           13        3         133       45       scikit-learn ``load_wine``
``breast-cancer``  30        2         426       143      scikit-learn ``load_breast_cancer``
``iris``           4         3         112       38       scikit-learn ``load_iris``
=================  ========  ========  ========  =======  =========================================

The scikit-learn sets are split by :func:`stratified_split` with ``TEST_FRACTION = 0.25`` and
``SPLIT_SEED = 0``: in each class, a permutation from ``numpy.random.default_rng(0)`` puts the
first ``round(0.25 · n_c)`` samples into the test set (so both parts keep the class
proportions, and the split does not depend on the scikit-learn version's own splitter).

MNIST-1D is generated offline (never downloaded) and cached as ``mnist1d-<key>.npz`` in
:func:`cache_dir` (``$OCDL_CACHE_DIR``, else ``$XDG_CACHE_HOME/ocdl``, else ``~/.cache/ocdl``),
the key being a hash of the generator's arguments; the file is written atomically (temporary
file, then rename), so concurrent runs never read a half-written cache. The generator seeds
numpy's and Python's global random state; :func:`mnist1d` restores both afterwards.

The optional packages come with ``pip install "ocdl[data]"``; without them the loaders raise an
:class:`~ocdl.errors.InputError` naming the extra.
"""
import hashlib
import json
import os
import random
import tempfile

import numpy as np

from ocdl.errors import InputError, check_choice

TEST_FRACTION = 0.25
SPLIT_SEED = 0
SKLEARN_LOADERS = {"digits": "load_digits", "wine": "load_wine", "breast-cancer": "load_breast_cancer",
                   "iris": "load_iris"}
REAL_DATASETS = ["mnist1d"] + list(SKLEARN_LOADERS)


def _need(module, package):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise InputError(f"this data set needs the '{package}' package: pip install \"ocdl[data]\"") from None


def stratified_split(y, test_fraction=TEST_FRACTION, seed=SPLIT_SEED):
    """``(train_idx, test_idx)``: per class, a seeded permutation; the first ``round(f·n_c)`` go to test.

    Indices are returned sorted, so the parts keep the source's order."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        test.append(rng.permutation(idx)[:int(round(test_fraction * len(idx)))])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(y)), test)
    return train, test


def stratified_subset(y, size, seed=SPLIT_SEED):
    """Sorted indices of a class-stratified subset of ``size`` of the labels ``y``: every class
    keeps its share (largest remainders get the leftover samples, at least one sample per class),
    taken from a permutation by ``numpy.random.default_rng(seed)``. ``size ≥ len(y)``: all."""
    y = np.asarray(y)
    n, size = len(y), int(size)
    if size >= n:
        return np.arange(n)
    classes, counts = np.unique(y, return_counts=True)
    if size < len(classes):
        raise InputError(f"a subset of {size} samples cannot keep all {len(classes)} classes")
    share = counts * size / n
    take = np.maximum(np.floor(share).astype(int), 1)
    for c in np.argsort(-(share - np.floor(share)), kind="stable"):     # largest remainders first
        if take.sum() >= size:
            break
        if take[c] < counts[c]:
            take[c] += 1
    while take.sum() > size:                                        # the floor-1 minimum overshot
        take[np.argmax(take)] -= 1
    rng = np.random.default_rng(seed)
    idx = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(idx))


def sklearn_set(name):
    """A scikit-learn bundled set, split by :func:`stratified_split`: ``(X, y, X_test, y_test)``."""
    check_choice("dataset", name, list(SKLEARN_LOADERS))
    datasets = _need("sklearn.datasets", "scikit-learn")
    X, y = getattr(datasets, SKLEARN_LOADERS[name])(return_X_y=True)
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=np.int64)
    tr, te = stratified_split(y)
    return X[tr], y[tr], X[te], y[te]


def cache_dir():
    """Where generated data sets are cached: ``$OCDL_CACHE_DIR``, ``$XDG_CACHE_HOME/ocdl`` or ``~/.cache/ocdl``."""
    if os.environ.get("OCDL_CACHE_DIR"):
        return os.environ["OCDL_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ocdl")


def _write_atomic(path, arrays):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def mnist1d(cache=True):
    """MNIST-1D with the generator's default arguments: ``(X (4000, 40), y, X_test (1000, 40), y_test)``."""
    data = _need("mnist1d.data", "mnist1d")
    args = data.get_dataset_args(as_dict=True)
    args.pop("url", None)
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir(), f"mnist1d-{key}.npz")
    if cache and os.path.isfile(path):
        try:
            with np.load(path) as z:
                return tuple(np.array(z[k]) for k in ("x", "y", "x_test", "y_test"))
        except (OSError, ValueError, KeyError):
            pass                               # a damaged cache file: generate again
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = data.make_dataset(data.get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    out = (np.asarray(d["x"], dtype=float), np.asarray(d["y"], dtype=np.int64),
           np.asarray(d["x_test"], dtype=float), np.asarray(d["y_test"], dtype=np.int64))
    if cache:
        try:
            _write_atomic(path, dict(zip(("x", "y", "x_test", "y_test"), out)))
        except OSError:
            pass                               # a read-only home: run without the cache
    return out


def load_real(name):
    """``(X_train, y_train, X_test, y_test)`` of a name in ``REAL_DATASETS`` (see the module table)."""
    check_choice("dataset", name, REAL_DATASETS)
    return mnist1d() if name == "mnist1d" else sklearn_set(name)
