import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_ocdl(*args, cwd=None, timeout=600, input=None):
    """Run ``python -m ocdl ARGS`` as a subprocess of this checkout; return CompletedProcess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "2")
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([sys.executable, "-m", "ocdl", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, input=input)


@pytest.fixture
def ocdl_cli():
    return run_ocdl
