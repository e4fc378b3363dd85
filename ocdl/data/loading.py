"""The one data loader of the training commands and the sweep: ``--data`` / ``--test`` → arrays.

:func:`load_dataset` takes a built-in name (synthetic: drawn with ``seed``; real: its fixed
split) or a CSV path, and an optional test CSV, and returns a :class:`Dataset` whose labels are
class indices of ONE :class:`~ocdl.data.labels.LabelCodec` — the training data's. A test file is
encoded with that codec: it may hold a subset of the training classes (any number, one
included), and a label the training data do not have is an error naming the file and line.
Built-in sets have the integer classes 0..C−1, so a named-label test file beside them is refused.

Synthetic test draws: :func:`synthetic_test_seed` — the one rule (``seed + 1000``).
"""
import os
from dataclasses import dataclass, field

import numpy as np

from ocdl.errors import InputError

#: a synthetic set's held-out draw uses seed + TEST_SEED_OFFSET
TEST_SEED_OFFSET = 1000


def synthetic_test_seed(seed):
    """The seed of a synthetic data set's held-out draw."""
    return int(seed) + TEST_SEED_OFFSET


@dataclass
class Dataset:
    """Training (``X``, ``y``) and optional test (``X_test``, ``y_test``) arrays, the codec of the
    labels, and the CSV's column names (None for built-in sets)."""
    X: np.ndarray
    y: np.ndarray
    X_test: object = None
    y_test: object = None
    codec: object = None
    features: object = None
    label_column: object = None
    from_table: bool = False
    notes: list = field(default_factory=list)

    @property
    def classes(self):
        return self.codec.classes

    def meta(self):
        """The model file's ``data`` entry (None for built-in sets)."""
        if not self.from_table:
            return None
        return {"features": self.features, "label_column": self.label_column, "classes": self.codec.classes}


def is_csv(name):
    return os.path.splitext(str(name))[1].lower() == ".csv" or os.path.exists(str(name))


def load_dataset(data, test=None, label_column=None, seed=0, points=None, noise=None, turns=None,
                 test_seed=None, options=None):
    """A :class:`Dataset` from a built-in name or a CSV ``data`` and an optional CSV ``test``.

    ``points``/``noise``/``turns``: options of the synthetic generators (None: theirs).
    ``options``: further generator keywords (a sweep's ``[data]`` table).
    ``test_seed``: a synthetic set's held-out draw when no ``test`` file is given (None: none).
    ``label_column``: the CSV's label column (default ``label``, else the last column)."""
    from ocdl.data.datasets import ALL_DATASETS, DATASETS, named_dataset
    from ocdl.data.labels import LabelCodec
    from ocdl.io import read_classification
    if not isinstance(data, (str, os.PathLike)) or isinstance(data, bytes):
        raise InputError(f"data must be a data set name or a CSV path (got {type(data).__name__})")
    notes = []
    if data in ALL_DATASETS:
        if label_column is not None:
            raise InputError("label_column (--label-column) applies to CSV data only")
        opts = dict(options or {})
        if data in DATASETS:
            opts.update({k: v for k, v in (("points_per_class", points), ("noise", noise)) if v is not None})
            if data == "spirals" and turns is not None:
                opts["turns"] = turns
        try:
            X, y, Xt, yt = named_dataset(data, seed=seed, test_seed=None if test else test_seed, **opts)
        except TypeError as exc:  # an option the generator does not take
            raise InputError(f"data set '{data}': bad option ({exc})") from None
        codec = LabelCodec(range(int(np.max(y)) + 1))
        ds = Dataset(X, y, Xt, yt, codec)
        if test:
            t = read_classification(test, label_column=label_column, classes=codec, min_classes=1)
            ds.X_test, ds.y_test = t.X, t.y
    elif is_csv(data):
        t = read_classification(data, label_column=label_column)
        codec = LabelCodec(t.classes, str(data))
        ds = Dataset(t.X, t.y, codec=codec, features=t.features, label_column=t.label_column, from_table=True)
        if test:
            tt = read_classification(test, label_column=t.label_column, features=t.features, classes=codec,
                                     min_classes=1)
            ds.X_test, ds.y_test = tt.X, tt.y
            if tt.ignored:
                notes.append(f"{test}: column(s) {', '.join(tt.ignored)} not used by the model (it reads "
                             f"{', '.join(t.features)})")
    else:
        raise InputError(f"data '{data}' is neither a built-in data set ({', '.join(ALL_DATASETS)}) "
                         f"nor an existing CSV file")
    if ds.X_test is not None and ds.X_test.shape[1] != ds.X.shape[1]:
        raise InputError(f"test data have {ds.X_test.shape[1]} features but the training data have "
                         f"{ds.X.shape[1]}; both need the same columns")
    ds.notes = notes
    return ds
