"""Atomic output: write to a temporary file beside the target, then ``os.replace``.

A failed or interrupted run never leaves a half-written file, and an existing file is only
ever replaced whole.
"""
import contextlib
import csv
import io
import json
import math
import os
import tempfile

import numpy as np

from ocdl.errors import InputError

_UMASK = os.umask(0o022)  # read the process umask once, at import (os.umask can only read by setting)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path, mode="w", **kwargs):
    """Context manager yielding a file object; the target appears only if the block succeeds."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"output directory '{directory}' does not exist; create it first")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def to_jsonable(obj):
    """Convert numpy / torch scalars and arrays to plain JSON types (non-finite floats → None)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # torch tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path, obj):
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(to_jsonable(obj), indent=2)
    with atomic_write(path) as fh:
        fh.write(text + "\n")


def write_csv(path, header, rows):
    """Write a CSV with ``header`` and numeric ``rows`` (2-D array or iterable), atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow([_fmt(v) for v in row])
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def _fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(v)


def write_npz(path, **arrays):
    """``np.savez`` to ``path`` (exact name, no extension added), atomically."""
    with atomic_write(path, mode="wb") as fh:
        np.savez(fh, **arrays)
