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

from ocdl.errors import InputError
from ocdl.io import write_npz

MODEL_FORMAT = "ocdl-model"
CHECKPOINT_FORMAT = "ocdl-checkpoint"
VERSION = 1
PARAM_KEYS = ("K", "b", "W", "mu")


def _meta_array(meta):
    return np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)


def _read_container(path, fmt, what):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{what} file '{path}' not found; give the path written by --save")
    if os.path.isdir(path):
        raise InputError(f"{what} file '{path}' is a directory")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        z = np.load(io.BytesIO(raw), allow_pickle=False)
        arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InputError(f"{what} file '{path}' is corrupt or not an ocdl {what} file ({type(exc).__name__})") from None
    if "__meta__" not in arrays:
        raise InputError(f"{what} file '{path}' has no ocdl metadata; it is not an ocdl {what} file")
    try:
        meta = json.loads(bytes(arrays.pop("__meta__").astype(np.uint8)).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{what} file '{path}' has corrupt metadata") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise InputError(f"'{path}' is not an ocdl {what} file (format '{found}', expected '{fmt}')")
    if meta.get("version") != VERSION:
        raise InputError(f"{what} file '{path}' has format version {meta.get('version')}; this ocdl reads "
                         f"version {VERSION} — retrain and save it with this version")
    return arrays, meta


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
        out["classes"] = list(out["classes"])
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
    data = _check_data(data, model, f"save_model('{os.fspath(path)}')")
    if data["classes"] is not None:
        data["classes"] = [_plain(c) for c in data["classes"]]
    meta = {"format": MODEL_FORMAT, "version": VERSION, "model": model.config(), "info": info or {},
            "data": data}
    write_npz(path, __meta__=_meta_array(meta), **{k: np.asarray(params[k], dtype=float) for k in PARAM_KEYS})


def load_model(path, full=False):
    """``(model, params, info)`` from a model file — with ``full=True`` ``(model, params, info,
    data)``, ``data`` the table metadata above (entries None when the file predates them);
    InputError for missing/corrupt/other-version files."""
    from ocdl.models import ResNetODE
    arrays, meta = _read_container(path, MODEL_FORMAT, "model")
    where = f"model file '{os.fspath(path)}'"
    try:
        model = ResNetODE(**meta["model"])
        params = {k: np.asarray(arrays[k], dtype=float) for k in PARAM_KEYS}
        model.check_params(params)
        data = _check_data(meta.get("data"), model, where)
    except (KeyError, TypeError, InputError) as exc:
        raise InputError(f"{where} is inconsistent ({exc}); re-save it") from None
    if not all(np.all(np.isfinite(v)) for v in params.values()):
        raise InputError(f"{where} holds non-finite parameters")
    if full:
        return model, params, meta.get("info", {}), data
    return model, params, meta.get("info", {})


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


def load_checkpoint(directory, settings=None):
    """The saved solver state, or None when ``DIR`` has no checkpoint; InputError when it was made
    with different ``settings``."""
    path = checkpoint_path(directory)
    if not os.path.exists(path):
        return None
    arrays, meta = _read_container(path, CHECKPOINT_FORMAT, "checkpoint")
    if settings is not None and meta.get("settings") != settings:
        old = meta.get("settings") or {}
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        raise InputError(f"checkpoint in '{directory}' was made with different settings ({', '.join(diff)}); "
                         f"use the same flags, or another --checkpoint directory")
    return {"iteration": meta["iteration"], "history": meta["history"],
            "params": {k[6:]: v for k, v in arrays.items() if k.startswith("param_")},
            "opt": {k[4:]: v for k, v in arrays.items() if k.startswith("opt_")},
            "meta": meta.get("extra", {})}
