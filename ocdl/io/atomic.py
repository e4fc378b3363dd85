"""Atomic output: write to a temporary file beside the target, then ``os.replace``.

A failed or interrupted run never leaves a half-written file, and an existing file is only
ever replaced whole. The temporary file is named ``.tmp-<pid>-<random>-<name>``; one left
behind by a process that no longer exists (killed with SIGKILL) is removed by the next write of
the same target.
"""
import contextlib
import csv
import glob
import io
import json
import math
import os
import re
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
    remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix="-" + os.path.basename(path),
                                   dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write '{path}' ({exc.strerror}); choose a writable location") from None
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, InputError):
            raise InputError(f"cannot write '{path}' ({exc.strerror or exc})") from None
        raise


_TEMP = re.compile(r"\.tmp-(\d+)-")


def remove_stale_temporaries(path):
    """Delete ``.tmp-<pid>-*-<name>`` files beside ``path`` whose writing process has exited."""
    directory, name = os.path.split(os.path.abspath(path))
    for tmp in glob.glob(os.path.join(glob.escape(directory), ".tmp-*-" + glob.escape(name))):
        m = _TEMP.match(os.path.basename(tmp))
        if m is None or _alive(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


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
