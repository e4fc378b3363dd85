"""The schema of the metadata of model files and checkpoints, checked on load.

A file is read only after its metadata passed: JSON text of at most :data:`MAX_META_BYTES`
nested at most :data:`MAX_DEPTH` levels (checked on the text, before ``json.loads`` could
recurse), then every field's type and size, and — where the reader knows the model — the arrays'
shapes. Any violation is one :class:`~ocdl.errors.InputError` naming the file and the field::

    model file 'm.npz': field 'info' must be an object (got list)

=========================  =====================================================================
model file                 ``format`` "ocdl-model", ``version`` integer 1, ``model`` object (the
                           ResNetODE's arguments), ``info`` object, ``data`` object or null with
                           ``features`` [str] | null, ``label_column`` str | null, ``classes``
                           [str | int | float | bool] | null
checkpoint                 ``format`` "ocdl-checkpoint", ``version`` 1, ``iteration`` integer ≥ 0,
                           ``history`` [object], ``settings`` object | null, ``opt_keys`` [str],
                           ``extra`` object (optional)
=========================  =====================================================================
"""
import json

from ocdl.errors import InputError

MAX_META_BYTES = 16 << 20
#: JSON objects / arrays nested deeper than this are refused (ocdl writes at most ~5 levels)
MAX_DEPTH = 64
#: longest list of feature names / classes / history rows accepted
MAX_ITEMS = 10_000_000


def _depth(text):
    """The nesting depth of JSON ``text`` (brackets inside strings skipped)."""
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > best:
                best = depth
                if best > MAX_DEPTH:
                    return best
        elif ch in "]}":
            depth -= 1
    return best


def parse_meta(raw, where):
    """The metadata dict of the UTF-8 JSON bytes ``raw``; InputError when too large, too deep,
    not JSON or not an object."""
    if len(raw) > MAX_META_BYTES:
        raise InputError(f"{where}: metadata of {len(raw) >> 20} MB; at most {MAX_META_BYTES >> 20} MB")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{where} has corrupt metadata (not UTF-8)") from None
    if _depth(text) > MAX_DEPTH:
        raise InputError(f"{where}: metadata nested more than {MAX_DEPTH} levels deep; not an ocdl file")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):
        raise InputError(f"{where} has corrupt metadata (not JSON)") from None
    if not isinstance(meta, dict):
        raise InputError(f"{where}: metadata must be an object (got {type(meta).__name__})")
    return meta


def _type_name(v):
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), type(v).__name__)


def field(meta, key, types, where, required=True, default=None):
    """``meta[key]`` after checking its type (``types``: tuple of dict, list, str, int, float, bool,
    type(None)); a bool is not an int here."""
    if key not in meta:
        if required:
            raise InputError(f"{where}: missing field '{key}'")
        return default
    v = meta[key]
    ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
    if not ok:
        want = " or ".join(_type_name(t()) if t is not type(None) else "null" for t in types)
        shown = f" {v!r}" if isinstance(v, (str, int, float)) and len(repr(v)) < 40 else ""
        raise InputError(f"{where}: field '{key}' must be {want} (got {_type_name(v)}{shown})")
    if isinstance(v, (list, dict)) and len(v) > MAX_ITEMS:
        raise InputError(f"{where}: field '{key}' has {len(v)} entries; at most {MAX_ITEMS}")
    return v


def check_header(meta, fmt, version, path, what):
    """``format`` and ``version`` (the integer ``version``, not the string "1")."""
    found = meta.get("format")
    if found != fmt:
        shown = found if isinstance(found, str) and len(found) < 40 else _type_name(found)
        raise InputError(f"'{path}' is not an ocdl {what} file (format '{shown}', expected '{fmt}')")
    v = field(meta, "version", (int,), f"{what} file '{path}'")
    if v != version:
        raise InputError(f"{what} file '{path}' has format version {v}; this ocdl reads version {version} — "
                         f"retrain and save it with this version")


def _scalar_list(meta, key, types, where):
    v = field(meta, key, (list, type(None)), where, required=False)
    if v is not None:
        for i, item in enumerate(v):
            if not isinstance(item, types) or (isinstance(item, float) and item != item):
                raise InputError(f"{where}: field '{key}[{i}]' must be "
                                 f"{' or '.join(_type_name(t()) for t in types)} (got {_type_name(item)})")
    return v


def check_model_meta(meta, where):
    """The model file's fields (module docstring); returns ``(model_args, info, data)``."""
    model = field(meta, "model", (dict,), where)
    info = field(meta, "info", (dict,), where, required=False, default={})
    data = field(meta, "data", (dict, type(None)), where, required=False) or {}
    _scalar_list(data, "features", (str,), f"{where} data")
    _scalar_list(data, "classes", (str, int, float, bool), f"{where} data")
    field(data, "label_column", (str, type(None)), f"{where} data", required=False)
    for key, value in model.items():
        if isinstance(value, (dict, list)) and key not in ("shape", "input_shift", "input_scale"):
            raise InputError(f"{where}: field 'model.{key}' must be a plain value (got {_type_name(value)})")
    return model, info, data


def check_checkpoint_meta(meta, where):
    """The checkpoint's fields (module docstring); returns them in a dict."""
    out = {"iteration": field(meta, "iteration", (int,), where),
           "history": field(meta, "history", (list,), where),
           "settings": field(meta, "settings", (dict, type(None)), where, required=False),
           "opt_keys": field(meta, "opt_keys", (list,), where, required=False, default=[]),
           "extra": field(meta, "extra", (dict,), where, required=False, default={})}
    if out["iteration"] < 0:
        raise InputError(f"{where}: field 'iteration' must be ≥ 0 (got {out['iteration']})")
    for i, row in enumerate(out["history"]):
        if not isinstance(row, dict):
            raise InputError(f"{where}: field 'history[{i}]' must be an object (got {_type_name(row)})")
    return out


def check_checkpoint_arrays(arrays, size, where):
    """Every ``param_*`` array holds ``size`` numbers, every ``opt_*`` array 1 or a multiple of ``size``
    (``size``: the run's parameter count; None skips the check) — a checkpoint of another model."""
    if size is None:
        return
    for name, a in arrays.items():
        if name.startswith("param_") and a.size != size:
            raise InputError(f"{where}: array '{name}' holds {a.size} numbers but this run has {size} parameters; "
                             f"the checkpoint is of another model — use another --checkpoint directory")
        if name.startswith("opt_") and a.size not in (0, 1) and a.size % size:
            raise InputError(f"{where}: optimiser array '{name}' holds {a.size} numbers, not a multiple of this "
                             f"run's {size} parameters; use another --checkpoint directory")
