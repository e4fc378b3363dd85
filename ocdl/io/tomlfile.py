"""Validated TOML reading (config and sweep files)."""
import tomllib

from ocdl.errors import InputError

#: a config or sweep file is a few lines; anything larger is refused before parsing
MAX_BYTES = 1 << 20
#: tables / arrays nested deeper than this are refused (tomllib recurses per level)
MAX_DEPTH = 32


def read_toml(path, what="config"):
    """The TOML file at ``path`` as a dict; missing, unreadable, oversized, too deeply nested or
    malformed files raise one-line InputErrors. A leading UTF-8 byte-order mark is accepted."""
    from ocdl.io.paths import regular_file
    path = regular_file(path, what, MAX_BYTES)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{what} file '{path}' cannot be read ({exc.strerror}); check its permissions") from None
    if len(raw) > MAX_BYTES:                   # (grew since it was checked)
        raise InputError(f"{what} file '{path}' is larger than {MAX_BYTES >> 20} MB; a {what} file is a few lines")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise InputError(f"{what} file '{path}' is not UTF-8 text") from None
    if _depth(text) > MAX_DEPTH:
        raise InputError(f"{what} file '{path}' nests tables or arrays more than {MAX_DEPTH} levels deep")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{what} file '{path}' is not valid TOML ({exc})") from None
    except RecursionError:
        raise InputError(f"{what} file '{path}' nests tables or arrays too deeply") from None


def _depth(text):
    """An upper bound of the bracket nesting depth of ``text`` (brackets inside strings count too,
    which can only over-estimate)."""
    depth = best = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return best
