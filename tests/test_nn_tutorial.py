"""examples/torch_block_mnist1d.py (docs/torch.md): a user's PyTorch loop around ConvODEBlock.

Default suite: a reduced run (2 epochs on 512 training signals) — it trains (held-out accuracy
well above the 10 % of chance: with 1000 test signals chance has a standard deviation of ~1 %),
and ``ocdl predict`` on the saved block gives the torch model's accuracy (float64 against the
float32 torch model: at most one of 1000 borderline predictions may differ). Slow suite: the
full tutorial reaches ≥ 95 % in under 10 minutes of training.
"""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("mnist1d")
EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "torch_block_mnist1d.py")


def _run(tmp_path, *args, timeout):
    proc = subprocess.run([sys.executable, EXAMPLE, "--out", str(tmp_path), *args], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(tmp_path / "torch_block_mnist1d.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    return json.loads((tmp_path / "summary.json").read_text())


def test_tutorial_reduced(tmp_path):
    s = _run(tmp_path, "--epochs", "2", "--train-size", "512", timeout=600)
    assert s["test_accuracy"] > 0.2
    assert abs(s["ocdl_predict_accuracy"] - s["test_accuracy"]) <= 0.001
    assert s["history"][1]["loss"] < s["history"][0]["loss"]


@pytest.mark.slow
def test_tutorial_full(tmp_path):
    s = _run(tmp_path, timeout=3000)
    assert s["test_accuracy"] >= 0.95
    assert s["train_seconds"] < 600
    assert abs(s["ocdl_predict_accuracy"] - s["test_accuracy"]) <= 0.001
