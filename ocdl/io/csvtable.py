"""Validated CSV reading.

Every problem with a file becomes one :class:`~ocdl.errors.InputError` line naming the file,
the row or column, and the fix: missing / empty file, header only, missing or duplicate
columns, ragged rows, non-numeric cells, NaN / inf, bad labels.

Classification tables (:func:`read_classification`) take any header names: the label column is
``label_column``, else ``label`` if present, else the last column; every other column is a
numeric feature. Labels may be integers or names; they are mapped to class indices 0..C−1 in
sorted order (``classes[c]`` is the original label of class c).
"""
import collections
import csv
import math
import os
from typing import NamedTuple

import numpy as np

from ocdl.errors import InputError

#: more columns than this is refused (before any per-column work): no ocdl model reads that many
MAX_COLUMNS = 10_000
#: cells larger than this in magnitude are refused: squares (variances, distances) would overflow
MAX_ABS = 1e150


def _read_rows(path):
    from ocdl.io.paths import regular_file
    path = regular_file(path, "CSV")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: a byte-order mark is accepted
            rows = [r for r in csv.reader(fh)]
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text CSV file (could not decode as UTF-8)") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc})") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{path}: file is empty; expected a header line and data rows")
    header = [c.strip() for c in rows[0]]
    _check_width(path, max(len(r) for r in rows))
    if any(h == "" for h in header):
        raise InputError(f"{path}: header has an empty column name")
    dup = sorted(h for h, n in collections.Counter(header).items() if n > 1)
    if dup:
        raise InputError(f"{path}: duplicate column name(s) in header: {', '.join(dup)}")
    if len(rows) == 1:
        raise InputError(f"{path}: header only, no data rows")
    return path, header, rows[1:]


def _numeric(path, header, body, wanted, allow_empty=()):
    """The columns ``wanted`` of the rows ``body`` as a float array (n, len(wanted))."""
    position = {h: k for k, h in enumerate(header)}
    idx = [position[c] for c in wanted]
    data = np.empty((len(body), len(wanted)))
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InputError(f"{path}: line {i} has {len(row)} fields, header has {len(header)}")
        for j, (col, k) in enumerate(zip(wanted, idx)):
            cell = row[k].strip()
            if cell == "" and col in allow_empty:
                data[i - 2, j] = math.nan
                continue
            try:
                v = float(cell)
            except ValueError:
                raise InputError(f"{path}: line {i}, column '{col}': '{cell}' is not a number") from None
            if not math.isfinite(v):
                raise InputError(f"{path}: line {i}, column '{col}': non-finite value '{cell}'")
            if abs(v) > MAX_ABS:
                raise InputError(f"{path}: line {i}, column '{col}': {cell} is too large to compute with "
                                 f"(|value| > {MAX_ABS:g}); rescale the column")
            data[i - 2, j] = v
    return data


def read_table(path, columns=None, optional=(), allow_empty=()):
    """Read a numeric CSV into ``{column: float array}``.

    ``columns``: required column names (exact), or None for all. ``optional``: names that may
    be absent. ``allow_empty``: columns whose cells may be empty (read as NaN); every other
    cell must be a finite number.
    """
    path, header, body = _read_rows(path)
    if columns is not None:
        missing = [c for c in columns if c not in header]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)}; "
                             f"expected header {','.join(columns)} (found {','.join(header)})")
        wanted = list(columns) + [c for c in optional if c in header]
    else:
        wanted = header
    data = _numeric(path, header, body, wanted, allow_empty)
    return {c: data[:, j].copy() for j, c in enumerate(wanted)}


def _parse_labels(path, column, cells):
    """Label cells → values: all integers → int, else (some are names) → the stripped strings.
    A fractional or non-finite number among numeric labels is an error (not a class label)."""
    cells = [c.strip() for c in cells]
    for i, c in enumerate(cells, start=2):
        if c == "":
            raise InputError(f"{path}: line {i}, column '{column}': empty label")
    try:
        vals = [float(c) for c in cells]
    except ValueError:
        return cells                                    # names (or mixed): labels as text
    for i, (c, v) in enumerate(zip(cells, vals), start=2):
        if not math.isfinite(v) or v != round(v):
            raise InputError(f"{path}: line {i}, column '{column}': label '{c}' is not an integer; "
                             f"class labels must be integers or names")
    return [int(v) for v in vals]


class LabelledTable(NamedTuple):
    """A classification table: ``X`` (n, d) float64, ``y`` (n,) int64 class indices or None,
    ``features`` (d column names, input order), ``label_column`` (None when absent) and
    ``classes`` (original labels, ``classes[y[i]]`` is row i's label)."""
    X: np.ndarray
    y: object
    features: list
    label_column: object
    classes: object
    ignored: list = []      # columns of the file neither read as features nor as labels


def read_classification(path, label_column=None, features=None, classes=None, require_labels=True,
                        min_classes=2):
    """Read a classification CSV with any header names.

    * ``label_column``: the label column's name; None: ``label`` if present, else the last
      column (when ``features`` is given or labels are not required: ``label`` if present, else
      no labels).
    * ``features``: the feature columns to take, by name and in this order (extra columns are
      ignored) — how a saved model reads new data; None: every column but the label.
    * ``classes``: the known classes (a model's or the training data's: a list or a
      :class:`~ocdl.data.labels.LabelCodec`); labels are mapped to their index and an unknown label
      is an error. None: the codec fitted on this file (:meth:`LabelCodec.fit`: integers sort
      numerically, names as text) with at least ``min_classes`` classes.

    Returns a :class:`LabelledTable`; ``y`` is None when there is no label column and
    ``require_labels`` is false.
    """
    path, header, body = _read_rows(path)
    if label_column is not None and label_column not in header:
        if require_labels or features is None:
            raise InputError(f"{path}: no column '{label_column}' for the labels (columns: {', '.join(header)})")
        label_column = None
    elif label_column is None:
        if "label" in header:
            label_column = "label"
        elif features is None and require_labels:
            label_column = header[-1]
    if features is None:
        features = [h for h in header if h != label_column]
        if not features:
            raise InputError(f"{path}: no feature columns; need numeric feature columns and a label column")
    else:
        features = [str(f) for f in features]
        columns = set(header)
        missing = [f for f in features if f not in columns]
        if missing:
            raise InputError(f"{path}: missing feature column(s) {', '.join(missing)}; the model reads "
                             f"{', '.join(features)} (found {', '.join(header)})")
        if label_column in features:
            label_column = None
    if label_column is None and require_labels:
        raise InputError(f"{path}: no label column; add a 'label' column or name one with --label-column")
    X = _numeric(path, header, body, features)
    if label_column is None:
        classes = getattr(classes, "classes", classes)
        return LabelledTable(X, None, features, None, None if classes is None else list(classes),
                             [h for h in header if h not in features])
    j = header.index(label_column)
    labels = _parse_labels(path, label_column, [row[j] for row in body])
    from ocdl.data.labels import LabelCodec
    if classes is None:
        codec = LabelCodec.fit(labels, f"{path}: column '{label_column}'", min_classes)
    else:
        codec = classes if isinstance(classes, LabelCodec) else LabelCodec(classes, path)
    y = codec.encode(labels, path, line0=2)
    return LabelledTable(X, y, features, label_column, codec.classes,
                         [h for h in header if h not in features and h != label_column])


def read_labelled(path, require_labels=True, min_classes=2, label_column=None):
    """``(X, y)`` of :func:`read_classification` for callers that index classes by the labels
    themselves (training and test files read separately): integer labels must be ``0..C−1`` with
    every class present and are kept as they are (so a second file with the same labels gets the
    same indices); named labels map to 0..C−1 in sorted order. ``y`` is None when the file has no
    label column and labels are not required."""
    t = read_classification(path, label_column=label_column, require_labels=require_labels,
                            min_classes=min_classes)
    if t.y is None or not all(isinstance(c, int) for c in t.classes):
        return t.X, t.y
    if t.classes != list(range(len(t.classes))):
        raise InputError(f"{os.fspath(path)}: integer labels must be 0..C-1 with every class present "
                         f"(found {', '.join(map(str, t.classes))})")
    return t.X, t.y


def _check_width(path, ncols):
    """Refuse a table wider than :data:`MAX_COLUMNS` before any per-column work."""
    if ncols > MAX_COLUMNS:
        raise InputError(f"{path}: {ncols} columns; at most {MAX_COLUMNS} are supported")
