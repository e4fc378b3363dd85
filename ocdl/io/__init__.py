"""File formats: atomic writes, JSON results, validated CSV tables."""
from ocdl.io.atomic import atomic_write, write_json, write_csv, write_npz, to_jsonable  # noqa: F401
from ocdl.io.csvtable import LabelledTable, read_classification, read_labelled, read_table  # noqa: F401
from ocdl.io.tomlfile import read_toml  # noqa: F401
