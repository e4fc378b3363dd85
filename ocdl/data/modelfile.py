"""Model files and checkpoints: one ``.npz`` (zip) file holding arrays + JSON metadata.

Model file format, version 1 (the file is written at exactly the path given, whatever its
extension, and read back from that same path):

* arrays ``K`` (N, m, m), ``b`` (N, m), ``W`` (C', d), ``mu`` (C',) — float64;
* ``__meta__``: a uint8 array holding UTF-8 JSON
  ``{"format": "ocdl-model", "version": 1, "model": {ResNetODE constructor arguments},
  "info": {...free-form: solver, train_loss, train_accuracy, iterations, status...},
  "data": {"features": [column names in input order] | null, "label_column": name | null,
  "classes": [original label values, class index order] | null}}``.

``data`` (added compatibly within version 1: files without it still load, with every entry null)
describes the table the model was trained on: ``predict`` matches a CSV's columns to
``features`` by name, and maps class index c back to ``classes[c]``. Absent / null: columns
``x1..xd`` in that order and labels ``0..C−1``.

Read it without ocdl: ``z = numpy.load(path); json.loads(bytes(z["__meta__"]))``.

Checkpoints (``--checkpoint DIR``) are ``DIR/checkpoint.npz`` in the same container with
``format = "ocdl-checkpoint"``: parameter arrays ``param_*``, optimiser-state arrays ``opt_*``
(e.g. Adam's moments), and in the metadata the iteration, the loss history, the run's
settings (a resumed run must use the same ones) and optional JSON extras ``extra`` (e.g. the
state of a random generator; ``state["meta"]`` on save and load).
"""
import io
import json
import os
import zipfile

import numpy as np

from ocdl.data import schema
from ocdl.errors import InputError
from ocdl.io import write_npz

MODEL_FORMAT = "ocdl-model"
CHECKPOINT_FORMAT = "ocdl-checkpoint"
VERSION = 1
PARAM_KEYS = ("K", "b", "W", "mu")


def _meta_array(meta):
    from ocdl.io import to_jsonable
    return np.frombuffer(json.dumps(to_jsonable(meta)).encode("utf-8"), dtype=np.uint8)


#: largest model or checkpoint file read (bytes)
MAX_FILE_BYTES = 4 << 30


def _read_container(path, fmt, what, hint="give the path written by --save"):
    """``(arrays, meta)`` of a container after the checks of :mod:`ocdl.data.schema` (header)."""
    from ocdl.io.paths import regular_file
    try:
        path = regular_file(path, what, MAX_FILE_BYTES)
    except InputError as exc:
        raise InputError(f"{exc}; {hint}" if "not found" in str(exc) else str(exc)) from None
    where = f"{what} file '{path}'"
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        _check_members(raw, path, what)
        z = np.load(io.BytesIO(raw), allow_pickle=False)
        arrays = {k: z[k] for k in z.files}
    except InputError:
        raise
    except PermissionError as exc:
        raise InputError(f"{where} cannot be read ({exc.strerror}); check its permissions") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InputError(f"{where} is corrupt or not an ocdl {what} file ({type(exc).__name__})") from None
    if "__meta__" not in arrays:
        raise InputError(f"{where} has no ocdl metadata; it is not an ocdl {what} file")
    if arrays["__meta__"].dtype != np.uint8 or arrays["__meta__"].ndim != 1:
        raise InputError(f"{where} has corrupt metadata (not bytes)")
    meta = schema.parse_meta(arrays.pop("__meta__").tobytes(), where)
    schema.check_header(meta, fmt, VERSION, path, what)
    return arrays, meta


#: declared uncompressed size allowed per byte of file (np.savez stores arrays uncompressed, so
#: an honest file is ≈ 1×; a zip bomb declares thousands)
MAX_INFLATION = 16


def _check_members(raw, path, what):
    """Before anything is inflated: refuse members whose declared uncompressed sizes add up to
    more than ``MAX_INFLATION`` × the file size (+1 MB), and ``.npy`` members whose header
    declares a non-numeric dtype or more data than the member holds (numpy would allocate the
    declared shape before reading)."""
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        infos = zf.infolist()
        declared = sum(i.file_size for i in infos)
        if declared > MAX_INFLATION * len(raw) + (1 << 20):
            raise InputError(f"{what} file '{path}' declares {declared / 2**20:.0f} MB of uncompressed data in "
                             f"{len(raw) / 2**10:.0f} KB; refusing it (not an ocdl {what} file)")
        for info in infos:
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(fh)
            name = info.filename.removesuffix(".npy")
            if dtype.kind not in "biuf" or dtype.hasobject:
                raise InputError(f"{what} file '{path}': array '{name}' has dtype {dtype}; expected real numbers")
            if int(np.prod(shape, dtype=object)) * dtype.itemsize > info.file_size:
                raise InputError(f"{what} file '{path}': array '{name}' declares shape {shape} but holds less data")


DATA_KEYS = ("features", "label_column", "classes")


def _check_data(data, model, where):
    """The ``data`` metadata with every key present (None when unknown), checked against ``model``."""
    data = dict(data or {})
    extra = sorted(set(data) - set(DATA_KEYS))
    if extra:
        raise InputError(f"{where}: unknown model data key(s) {', '.join(extra)} (valid: {', '.join(DATA_KEYS)})")
    out = {k: data.get(k) for k in DATA_KEYS}
    if out["features"] is not None:
        out["features"] = [str(f) for f in out["features"]]
        if len(out["features"]) != model.d_in:
            raise InputError(f"{where}: {len(out['features'])} feature names for a model with {model.d_in} inputs")
    if out["classes"] is not None:
        from ocdl.data.labels import LabelCodec
        out["classes"] = LabelCodec(list(out["classes"]), where).classes   # (two spellings of one class: error)
        if len(out["classes"]) != model.n_classes:
            raise InputError(f"{where}: {len(out['classes'])} class labels for a model with {model.n_classes} classes")
    return out


def _plain(v):
    """numpy scalars → Python values (class labels must survive JSON as given)."""
    return v.item() if isinstance(v, np.generic) else v


def save_model(path, model, params, info=None, data=None):
    """Write ``model`` + ``params`` to ``path`` atomically (format above).

    ``data`` (optional): ``{"features": [...], "label_column": str, "classes": [...]}`` — the
    training table's feature names (input order), label column and original class labels
    (class index order; JSON values: str, int, float or bool)."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise InputError(f"save_model: path must be a str or os.PathLike (got {type(path).__name__})")
    where = f"save_model('{os.fspath(path)}')"
    if not isinstance(params, dict):
        raise InputError(f"{where}: params must be a dict with keys {', '.join(PARAM_KEYS)} "
                         f"(got {type(params).__name__})")
    missing = [k for k in PARAM_KEYS if k not in params]
    if missing:
        raise InputError(f"{where}: params is missing {', '.join(missing)} (needs {', '.join(PARAM_KEYS)})")
    try:
        arrays = {k: np.asarray(params[k], dtype=float) for k in PARAM_KEYS}
        model.check_params(arrays)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: params do not fit the model ({' '.join(str(exc).split())[:200]})") from None
    bad = [k for k, v in arrays.items() if not np.all(np.isfinite(v))]
    if bad:
        raise InputError(f"{where}: params {', '.join(bad)} hold non-finite numbers; nothing was written")
    if info is not None and not isinstance(info, dict):
        raise InputError(f"{where}: info must be a dict (got {type(info).__name__})")
    data = _check_data(data, model, where)
    if data["classes"] is not None:
        data["classes"] = [_plain(c) for c in data["classes"]]
    meta = {"format": MODEL_FORMAT, "version": VERSION, "model": model.config(), "info": info or {},
            "data": data}
    write_npz(path, __meta__=_meta_array(meta), **arrays)


def load_model(path, full=False):
    """``(model, params, info)`` from a model file — with ``full=True`` ``(model, params, info,
    data)``, ``data`` the table metadata above (entries None when the file predates them);
    InputError for missing/corrupt/other-version files."""
    from ocdl.models import ResNetODE
    arrays, meta = _read_container(path, MODEL_FORMAT, "model")
    where = f"model file '{os.fspath(path)}'"
    model_args, info, data = schema.check_model_meta(meta, where)
    missing = [k for k in PARAM_KEYS if k not in arrays]
    if missing:
        raise InputError(f"{where}: missing array(s) {', '.join(missing)}")
    try:
        model = ResNetODE(**model_args)
        params = {k: np.asarray(arrays[k], dtype=float) for k in PARAM_KEYS}
        model.check_params(params)
        data = _check_data(data, model, where)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{where} is inconsistent ({' '.join(str(exc).split())[:200]}); re-save it") from None
    if not all(np.all(np.isfinite(v)) for v in params.values()):
        raise InputError(f"{where} holds non-finite parameters")
    if full:
        return model, params, info, data
    return model, params, info


CHECKPOINT_NAME = "checkpoint.npz"


def checkpoint_path(directory):
    return os.path.join(os.fspath(directory), CHECKPOINT_NAME)


def save_checkpoint(directory, state, settings):
    """Write the solver ``state`` (iteration, params, opt, history) and run ``settings`` atomically."""
    os.makedirs(directory, exist_ok=True)
    meta = {"format": CHECKPOINT_FORMAT, "version": VERSION, "iteration": int(state["iteration"]),
            "history": state["history"], "settings": settings, "opt_keys": sorted(state["opt"])}
    arrays = {"param_" + k: np.asarray(v, dtype=float) for k, v in state["params"].items()}
    arrays.update({"opt_" + k: np.asarray(v, dtype=float) for k, v in state["opt"].items()})
    if state.get("meta"):
        meta["extra"] = state["meta"]          # JSON-able extras (e.g. a random generator's state)
    write_npz(checkpoint_path(directory), __meta__=_meta_array(meta), **arrays)


def load_checkpoint(directory, settings=None, size=None):
    """The saved solver state, or None when ``DIR`` has no checkpoint; InputError when it was made
    with different ``settings``, holds arrays of another size than the run's ``size`` parameters
    (when given) or breaks the schema of :mod:`ocdl.data.schema`."""
    path = checkpoint_path(directory)
    if not os.path.lexists(path):
        return None
    arrays, meta = _read_container(path, CHECKPOINT_FORMAT, "checkpoint", hint="check --checkpoint")
    where = f"checkpoint '{path}'"
    fields = schema.check_checkpoint_meta(meta, where)
    if settings is not None and fields["settings"] != settings:
        old = fields["settings"] or {}
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        raise InputError(f"checkpoint in '{directory}' was made with different settings ({', '.join(diff)}); "
                         f"use the same flags, or another --checkpoint directory")
    schema.check_checkpoint_arrays(arrays, size, where)
    for name, a in arrays.items():
        if name.startswith("param_") and not np.all(np.isfinite(a)):
            raise InputError(f"{where}: array '{name}' holds non-finite numbers; use another --checkpoint directory")
    return {"iteration": fields["iteration"], "history": fields["history"],
            "params": {k[6:]: v for k, v in arrays.items() if k.startswith("param_")},
            "opt": {k[4:]: v for k, v in arrays.items() if k.startswith("opt_")},
            "meta": fields["extra"]}
