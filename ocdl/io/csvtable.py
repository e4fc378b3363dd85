"""Validated CSV reading.

Every problem with a file becomes one :class:`~ocdl.errors.InputError` line naming the file,
the row or column, and the fix: missing / empty file, header only, missing or duplicate
columns, ragged rows, non-numeric cells, NaN / inf, bad labels.
"""
import collections
import csv
import math
import os

import numpy as np

from ocdl.errors import InputError

#: more columns than this is refused (before any per-column work): no ocdl model reads that many
MAX_COLUMNS = 10_000


def _read_rows(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, expected a CSV file")
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
            data[i - 2, j] = v
    return {c: data[:, j].copy() for j, c in enumerate(wanted)}


def read_labelled(path, require_labels=True, min_classes=2):
    """Read a classification CSV with header ``x1,...,xd,label``.

    Returns ``(X, y)`` with ``X`` float64 of shape (n, d) and ``y`` int64 labels in
    ``0..C-1`` (``y`` is None when the file has no ``label`` column and labels are not
    required).
    """
    path, header, _ = _read_rows(path)
    feats = [h for h in header if h != "label"]
    expected = [f"x{j + 1}" for j in range(len(feats))]
    if feats != expected:
        raise InputError(f"{path}: columns must be x1,...,xd,label (found {','.join(header)})")
    if not feats:
        raise InputError(f"{path}: no feature columns; expected header x1,...,xd,label")
    has_label = "label" in header
    if not has_label and require_labels:
        raise InputError(f"{path}: missing column 'label'; expected header {','.join(expected)},label")
    table = read_table(path, feats + (["label"] if has_label else []))
    X = np.stack([table[f] for f in feats], axis=1)
    if not has_label:
        return X, None
    lab = table["label"]
    if np.any(lab != np.round(lab)) or np.any(lab < 0):
        bad = lab[(lab != np.round(lab)) | (lab < 0)][0]
        raise InputError(f"{path}: label {bad:g} is not a non-negative integer; labels must be 0..C-1")
    _check_label_range(path, lab)
    y = lab.astype(np.int64)
    C = int(y.max()) + 1
    present = np.unique(y)
    if len(present) != C:
        missing = np.setdiff1d(np.arange(C), present)
        shown = ", ".join(map(str, missing[:10].tolist())) + (", ..." if len(missing) > 10 else "")
        raise InputError(f"{path}: labels must be 0..C-1 with every class present; missing {shown}")
    if C < min_classes:
        raise InputError(f"{path}: only one class present; classification needs at least {min_classes}")
    return X, y


def _check_width(path, ncols):
    """Refuse a table wider than :data:`MAX_COLUMNS` before any per-column work."""
    if ncols > MAX_COLUMNS:
        raise InputError(f"{path}: {ncols} columns; at most {MAX_COLUMNS} are supported")


def _check_label_range(path, lab):
    """Labels 0..C-1 with every class present need C ≤ number of rows: refuse a larger label at
    once (before building anything of size C)."""
    if len(lab) and lab.max() >= len(lab):
        top = lab.max()
        raise InputError(f"{path}: label {int(top) if top == round(top) else top} but only {len(lab)} rows; "
                         f"labels must be 0..C-1 with every class present")
