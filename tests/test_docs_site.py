"""The API reference site builds with ``mkdocs build --strict`` (mkdocs.yml): every page in the
nav, every link between pages (README and BENCHMARKS.md included) and every mkdocstrings
reference resolves; a warning fails the build. Needs the extra ``docs``."""
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mkdocs_build_strict(tmp_path):
    exe = shutil.which("mkdocs", path=os.path.dirname(sys.executable)) or shutil.which("mkdocs")
    cmd = [exe] if exe else [sys.executable, "-m", "mkdocs"]
    proc = subprocess.run(cmd + ["build", "--strict", "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "residual networks as controlled odes" in index.lower()          # README is the home page
    api = (tmp_path / "site" / "api" / "nn" / "index.html").read_text(encoding="utf-8")
    assert "ConvODEBlock" in api and "exact discrete costate sweep" in api      # from the docstrings
