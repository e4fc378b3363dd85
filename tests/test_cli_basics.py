"""The command-line conventions every command shares."""
import json

import numpy as np
import pytest

from ocdl.errors import InputError
from ocdl.expr import compile_expr
from ocdl.io import read_labelled, read_table, write_json


def test_version_and_help(ocdl_cli):
    r = ocdl_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("ocdl ")
    r = ocdl_cli("--help")
    assert r.returncode == 0 and "COMMAND" in r.stdout


def test_unknown_command_is_one_line(ocdl_cli):
    r = ocdl_cli("trian")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_expr_matches_numpy():
    f = compile_expr("0.1*v**2 + sin(v) - exp(-v/3)", ("v",))
    v = np.linspace(0.0, 5.0, 11)
    np.testing.assert_allclose(f(v), 0.1 * v**2 + np.sin(v) - np.exp(-v / 3), rtol=1e-15)


@pytest.mark.parametrize("bad", ["__import__('os')", "x.real", "x[0]", "'a'", "lambda: 1", "y",
                                 "open(1)", "[x for x in x]", "", "x +", "True"])
def test_expr_rejects_unsafe(bad):
    with pytest.raises(InputError):
        compile_expr(bad, ("x",))


def test_csv_roundtrip_and_errors(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("x1,x2,label\n0.5,1.0,0\n-1,2,1\n")
    X, y = read_labelled(p)
    np.testing.assert_array_equal(X, [[0.5, 1.0], [-1, 2]])
    np.testing.assert_array_equal(y, [0, 1])
    for text in ["", "x1,x2,label\n", "x1,x2,label\n1,2\n", "x1,x2,label\n1,a,0\n",
                 "x1,x2,label\n1,nan,0\n", "x1,x2,label\n1,2,0.5\n", "x1,x1,label\n1,2,0\n",
                 "x1,x2,label\n1,2,0\n3,4,0\n", "x1,x3,label\n1,2,0\n"]:
        p.write_text(text)
        with pytest.raises(InputError):
            read_labelled(p)
    with pytest.raises(InputError):
        read_table(tmp_path / "missing.csv", ["v0", "vT"])


def test_write_json_is_plain(tmp_path):
    p = tmp_path / "o.json"
    write_json(p, {"a": np.float64(1.5), "b": np.arange(3), "c": float("nan")})
    assert json.loads(p.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": None}
    assert [f.name for f in tmp_path.iterdir()] == ["o.json"]
