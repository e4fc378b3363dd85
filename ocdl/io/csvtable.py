"""Validated CSV reading.

Every problem with a file becomes one :class:`~ocdl.errors.InputError` line naming the file,
the row or column, and the fix: missing / empty file, header only, missing or duplicate
columns, ragged rows, non-numeric cells, NaN / inf, bad labels.

Classification tables (:func:`read_classification`) take any header names: the label column is
``label_column``, else ``label`` if present, else the last column; every other column is a
numeric feature. Labels may be integers or names; they are mapped to class indices 0..C−1 in
sorted order (``classes[c]`` is the original label of class c).
"""
import csv
import math
import os
from typing import NamedTuple

import numpy as np

from ocdl.errors import InputError


def _read_rows(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, expected a CSV file")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh)]
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text CSV file (could not decode as UTF-8)") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc})") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{path}: file is empty; expected a header line and data rows")
    header = [c.strip() for c in rows[0]]
    if any(h == "" for h in header):
        raise InputError(f"{path}: header has an empty column name")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InputError(f"{path}: duplicate column name(s) in header: {', '.join(dup)}")
    if len(rows) == 1:
        raise InputError(f"{path}: header only, no data rows")
    return path, header, rows[1:]


def _numeric(path, header, body, wanted, allow_empty=()):
    """The columns ``wanted`` of the rows ``body`` as a float array (n, len(wanted))."""
    idx = [header.index(c) for c in wanted]
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


def label_key(value):
    """The text a label is matched by: integer-valued numbers as ``str(int)`` (so ``1``, ``1.0``
    and ``"1"`` are one class), other values as ``str``."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value).strip()
    if math.isfinite(v) and v == round(v):
        return str(int(v))
    return str(value).strip()


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


def read_classification(path, label_column=None, features=None, classes=None, require_labels=True,
                        min_classes=2):
    """Read a classification CSV with any header names.

    * ``label_column``: the label column's name; None: ``label`` if present, else the last
      column (when ``features`` is given or labels are not required: ``label`` if present, else
      no labels).
    * ``features``: the feature columns to take, by name and in this order (extra columns are
      ignored) — how a saved model reads new data; None: every column but the label.
    * ``classes``: the known classes (a model's); labels are mapped to their index and an unknown
      label is an error. None: ``classes = sorted(set(labels))`` (integers sort numerically,
      names as text) and at least ``min_classes`` of them.

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
        missing = [f for f in features if f not in header]
        if missing:
            raise InputError(f"{path}: missing feature column(s) {', '.join(missing)}; the model reads "
                             f"{', '.join(features)} (found {', '.join(header)})")
        if label_column in features:
            label_column = None
    if label_column is None and require_labels:
        raise InputError(f"{path}: no label column; add a 'label' column or name one with --label-column")
    X = _numeric(path, header, body, features)
    if label_column is None:
        return LabelledTable(X, None, features, None, None if classes is None else list(classes))
    j = header.index(label_column)
    labels = _parse_labels(path, label_column, [row[j] for row in body])
    if classes is None:
        classes = sorted(set(labels), key=lambda v: (isinstance(v, str), v))
        if len(classes) < min_classes:
            raise InputError(f"{path}: only one class present ({classes[0]!r}); classification needs at least "
                             f"{min_classes}")
    index = {label_key(c): i for i, c in enumerate(classes)}
    y = np.empty(len(labels), dtype=np.int64)
    for i, v in enumerate(labels):
        k = index.get(label_key(v))
        if k is None:
            shown = ", ".join(repr(c) for c in classes[:10]) + (", ..." if len(classes) > 10 else "")
            raise InputError(f"{path}: line {i + 2}: label {v!r} is not one of the classes the model knows ({shown})")
        y[i] = k
    return LabelledTable(X, y, features, label_column, list(classes))


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
