"""Every example runs and writes its picture (slow: about ten minutes in all; run with -m slow)."""
import importlib.util
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("make_pictures", os.path.join(HERE, "..", "examples", "make_pictures.py"))
make_pictures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_pictures)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(make_pictures.EXAMPLES))
def test_example_writes_png(name, tmp_path):
    proc, out, seconds = make_pictures.run(name, str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
