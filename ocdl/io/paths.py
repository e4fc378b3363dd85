"""Paths a command reads and writes, checked once before any work.

* :func:`regular_file` — every input file is opened through it: it must exist, be a regular
  file (not a directory, FIFO, device such as ``/dev/zero`` or socket) and be at most
  ``max_bytes`` long.
* :func:`check_paths` — the one up-front check of a run's paths: every file it will write
  (``--json``, ``--save``, ``--plot``, the checkpoint's ``DIR/checkpoint.npz`` and
  ``DIR/last_good.*``, a sweep's ``OUT/summary.csv`` …) must be creatable — probed by creating
  the temporary file in the target directory, as the atomic write will (``os.access`` is no
  proof: root passes it for ``/sys``) — must not be an input (``--data``, ``--test``,
  ``--model``, the config or sweep file and the files it names) and must not be another output.
"""
import contextlib
import os
import stat
import tempfile

from ocdl.errors import InputError

#: largest input file read (bytes): a CSV of this size already takes minutes and gigabytes to parse
MAX_INPUT_BYTES = 256 << 20
#: picture formats ``--plot`` accepts (matplotlib's Agg/PDF/SVG/PS writers)
PLOT_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp", "pgf",
                "raw", "rgba")


def regular_file(path, what="input", max_bytes=MAX_INPUT_BYTES):
    """``path`` as a string after checking it names a readable regular file of at most ``max_bytes``
    bytes (``os.stat`` only: a FIFO is refused without opening it, so nothing blocks)."""
    if isinstance(path, bytes):
        raise InputError(f"{what} path {path!r} is bytes; give a str or os.PathLike path")
    try:
        path = os.fspath(path)
    except TypeError:
        raise InputError(f"{what} path must be a str or os.PathLike, not {type(path).__name__}") from None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{what} file '{path}' not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{what} file '{path}' cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what} file '{path}' is a directory; give a file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} file '{path}' is not a regular file (a device, FIFO or socket); give a file")
    if st.st_size > max_bytes:
        raise InputError(f"{what} file '{path}' is {st.st_size / 2**20:.0f} MB; at most {max_bytes >> 20} MB "
                         f"is read")
    return path


def same_file(a, b):
    """True when paths ``a`` and ``b`` name the same file (hard links and symlinks included)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)


def _existing_ancestor(path):
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def probe_directory(directory, name, flag):
    """InputError unless a file can be created in ``directory`` (or, if it does not exist yet, its
    nearest existing ancestor): create the temporary file the atomic write would, then remove it."""
    where = _existing_ancestor(directory)
    if not os.path.isdir(where):
        raise InputError(f"{flag}: '{where}' is not a directory; cannot write '{os.path.join(directory, name)}'")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix="-probe", dir=where)
    except OSError as exc:
        raise InputError(f"{flag}: cannot create files in '{where}' ({exc.strerror or exc}); "
                         f"choose a writable location") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def check_paths(inputs=(), outputs=(), directories=()):
    """Check a run's paths before any work; InputError (exit 2) naming the flag(s) otherwise.

    ``inputs``: ``(flag, path)`` of files the run reads. ``outputs``: ``(flag, path)`` of every
    file it will write, derived ones included (``("--checkpoint", "DIR/checkpoint.npz")``).
    ``directories``: ``(flag, path)`` of directories it writes into (created when missing).
    Each output file must not be a directory, must be creatable (probed), must not be an input
    and must differ from every other output; ``--plot`` needs a picture extension."""
    inputs = [(f, p) for f, p in inputs if p is not None and os.path.exists(p)]
    outputs = [(f, os.fspath(p)) for f, p in outputs if p is not None]
    for flag, path in directories:
        if path is None:
            continue
        if not str(path).strip():
            raise InputError(f"{flag}: empty path")
        if os.path.exists(path) and not os.path.isdir(path):
            raise InputError(f"{flag} '{path}' exists and is not a directory")
        for iflag, ipath in inputs:
            if same_file(path, ipath):
                raise InputError(f"{flag} '{path}' is the {iflag} input; choose another directory")
        probe_directory(path, "", flag)
    for flag, path in outputs:
        if not path.strip():
            raise InputError(f"{flag}: empty path")
        if os.path.isdir(path):
            raise InputError(f"{flag} '{path}' is a directory; give a file name")
        for dflag, dpath in directories:
            if dpath is not None and os.path.abspath(dpath) == os.path.abspath(path):
                raise InputError(f"{flag} '{path}' is also the {dflag} directory; give each output its own name")
        for iflag, ipath in inputs:
            if same_file(path, ipath):
                what = f"'{path}'" if iflag == flag else f"'{path}' ({flag})"
                raise InputError(f"{flag.split()[0]} would write {what}, which is the {iflag} input; "
                                 f"writing it would replace the input — choose another name")
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise InputError(f"{flag}: '{path}' exists and is read-only; choose another name")
        probe_directory(os.path.dirname(os.path.abspath(path)), os.path.basename(path), flag)
        if flag == "--plot":
            ext = os.path.splitext(path)[1].lstrip(".").lower()
            if ext and ext not in PLOT_FORMATS:
                raise InputError(f"--plot '{path}': unsupported picture format '.{ext}' "
                                 f"(use one of: {', '.join('.' + e for e in PLOT_FORMATS[:6])})")
    for i, (fa, pa) in enumerate(outputs):
        for fb, pb in outputs[i + 1:]:
            if same_file(pa, pb) or os.path.abspath(pa) == os.path.abspath(pb):
                raise InputError(f"{fa} and {fb} are the same file '{pa}'; give each output its own name")
