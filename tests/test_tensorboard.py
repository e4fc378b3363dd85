"""TensorBoard scalars (ocdl.optim.tensorboard): ``ocdl.train(tensorboard_dir=)`` and ``--tensorboard DIR``
on train, compare, forces learn and meanfield train write event files holding the scalars.

The event files are read back with TensorBoard's own reader (EventAccumulator). Values are
stored as float32, so they are compared to 1e-6 relative. The gradient norm is checked against
an independent evaluation of the costate gradient at the initial parameters."""
import glob
import os

import numpy as np
import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

import ocdl  # noqa: E402
from ocdl import pmp  # noqa: E402
from ocdl.cli.main import main  # noqa: E402
from ocdl.data.datasets import spirals  # noqa: E402


def scalars(run_dir):
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def test_train_writes_every_iteration(tmp_path):
    X, y = spirals(40, turns=1.0, noise=0.03, seed=0)
    res = ocdl.train(X, y, solver="pmp-adam", iterations=12, layers=4, lr=0.05, tensorboard_dir=tmp_path)
    s = scalars(tmp_path / "pmp-adam")
    assert {"loss", "grad_norm", "lr", "wall_time_s"} <= set(s)
    assert [st for st, _ in s["loss"]] == list(range(1, 13))
    np.testing.assert_allclose([v for _, v in s["loss"]], [r["loss"] for r in res.history], rtol=1e-6)
    # the gradient norm at iteration 1 is that of the exact gradient at the initial parameters
    params0 = res.model.init(seed=0)
    _, g = pmp.value_and_grad(res.model, params0, X, y)
    gnorm = np.linalg.norm(np.concatenate([np.ravel(g[k]) for k in ("K", "b", "W", "mu")]))
    assert abs(s["grad_norm"][0][1] - gnorm) <= 1e-6 * gnorm
    assert abs(s["lr"][0][1] - 0.05) <= 1e-7                       # cosine schedule starts at lr
    assert s["lr"][-1][1] < s["lr"][0][1]
    times = [v for _, v in s["wall_time_s"]]
    assert all(b >= a for a, b in zip(times, times[1:]))


def test_train_minibatch_epochs_hold_accuracy(tmp_path):
    X, y = spirals(60, turns=1.0, noise=0.03, seed=1)
    ocdl.train(X, y, solver="adam", layers=3, batch_size=40, epochs=3, validation=0.25, tensorboard_dir=tmp_path)
    s = scalars(tmp_path / "adam")
    assert "val_accuracy" in s and "epoch" in s and len(s["val_accuracy"]) == 3
    assert all(0.0 <= v <= 1.0 for _, v in s["val_accuracy"])


def test_cli_compare_one_run_per_solver(tmp_path):
    code = main(["compare", "--data", "spirals", "--points", "30", "--solvers", "adam,pmp-lbfgs,newton",
                 "--layers", "3", "--iterations", "8", "--tensorboard", str(tmp_path / "tb"), "--quiet"])
    assert code == 0
    runs = sorted(os.listdir(tmp_path / "tb"))
    assert runs == ["adam", "newton", "pmp-lbfgs"]
    for r in runs:
        s = scalars(tmp_path / "tb" / r)
        assert "loss" in s and len(s["loss"]) >= 1
    assert "grad_norm" in scalars(tmp_path / "tb" / "adam")


def test_cli_train_forces_meanfield(tmp_path, ocdl_cli):
    assert main(["train", "--data", "spirals", "--points", "30", "--solver", "pmp-adam", "--iterations", "5",
                 "--layers", "3", "--tensorboard", str(tmp_path / "t"), "--quiet"]) == 0
    assert len(scalars(tmp_path / "t" / "pmp-adam")["loss"]) == 5
    data = tmp_path / "d.csv"
    assert main(["forces", "simulate", "drag", "--force", "0.01*v**2", "--samples", "20", "--vmax", "30",
                 "--out", str(data), "--quiet"]) == 0
    assert main(["forces", "learn", "drag", "--data", str(data), "--T", "1", "--g", "10", "--steps", "10",
                 "--solver", "pmp-adam", "--iterations", "6", "--tensorboard", str(tmp_path / "f"), "--quiet"]) == 0
    assert "loss" in scalars(glob.glob(str(tmp_path / "f" / "drag-pmp-adam"))[0])
    assert main(["meanfield", "train", "--data", "spirals", "--nu", "0.05", "--particles", "50", "--iterations", "4",
                 "--layers", "2", "--points", "20", "--tensorboard", str(tmp_path / "m"), "--quiet"]) == 0
    s = scalars(tmp_path / "m" / "meanfield-particles")
    assert len(s["loss"]) == 4
