"""Validated TOML reading (config and sweep files)."""
import os
import tomllib

from ocdl.errors import InputError


def read_toml(path, what="config"):
    """The TOML file at ``path`` as a dict; missing or malformed files raise one-line InputErrors."""
    if not os.path.isfile(path):
        raise InputError(f"{what} file '{path}' not found")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} file '{path}' is not valid TOML ({exc})") from None
