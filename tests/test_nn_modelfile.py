"""ocdl.nn ↔ ocdl model files: a model trained by ocdl runs in PyTorch with the same logits, and a
block trained in PyTorch is saved and run by ``ocdl predict`` with the same predictions."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import ocdl
from ocdl.errors import InputError
from ocdl.models import ResNetODE
from ocdl.nn import ConvODEBlock, ODEBlock, from_model


@pytest.mark.parametrize("kwargs", [
    dict(field="outer", d_in=3, width=5, integrator="rk4", n_classes=2),
    dict(field="hamiltonian", d_in=2, width=6, integrator="verlet", n_classes=3),
    dict(field="conv", d_in=7, channels=2, kernel=3, integrator="heun", n_classes=3),
    dict(field="hamiltonian-conv", d_in=7, channels=2, kernel=3, integrator="yoshida4", n_classes=2),
])
def test_ocdl_model_file_runs_in_torch(tmp_path, kwargs):
    """``ocdl.nn.from_model(path)``: lift (with the model's normalisation), block, head — its
    outputs equal the model's own logits (numpy forward) to round-off, float64."""
    model = ResNetODE(layers=4, T=1.0, input_shift=np.arange(kwargs["d_in"]) * 0.1, input_scale=1.7, **kwargs)
    params = model.init(seed=3)
    path = tmp_path / "m.npz"
    ocdl.save(path, model, params)
    net = from_model(str(path), dtype=torch.float64)
    X = np.random.default_rng(0).standard_normal((6, kwargs["d_in"]))
    with torch.no_grad():
        got = net(torch.as_tensor(X)).numpy()
    want = model.logits(params, X)
    assert np.abs(got - want).max() <= 1e-12 * max(1.0, np.abs(want).max())
    blk = net[2]
    assert isinstance(blk, ConvODEBlock if "channels" in kwargs else ODEBlock)
    assert np.array_equal(blk.K.detach().numpy(), params["K"])


def _predict(model_path, X, tmp_path):
    csv = tmp_path / "x.csv"
    header = ",".join(f"x{j + 1}" for j in range(X.shape[1]))
    np.savetxt(csv, X, delimiter=",", header=header, comments="")
    out = tmp_path / "pred.json"
    subprocess.run([sys.executable, "-m", "ocdl.cli.main", "predict", "--model", str(model_path), "--data", str(csv),
                    "--json", str(out), "--quiet"], check=True, timeout=120)
    return np.array(json.loads(out.read_text())["predictions"])


@pytest.mark.parametrize("conv", [False, True])
def test_torch_block_saved_and_run_by_ocdl_predict(tmp_path, conv):
    """A block and head trained a few steps in PyTorch, saved by ``to_model``: ``ocdl predict``
    gives the torch model's argmax on the flattened block inputs, and ``from_model`` on the file
    gives back the same logits (float64, ≤ 1e-12)."""
    torch.manual_seed(0)
    if conv:
        blk = ConvODEBlock(2, 5, layers=3, T=1.0, kernel=3, field="hamiltonian-conv", integrator="verlet",
                           dtype=torch.float64)
    else:
        blk = ODEBlock(4, layers=5, T=2.0, integrator="heun", dtype=torch.float64)
    d = int(np.prod(blk.state_shape))
    head = torch.nn.Linear(d, 3, dtype=torch.float64)
    net = torch.nn.Sequential(blk, torch.nn.Flatten(), head)
    X = torch.randn((40,) + blk.state_shape, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    model, params = blk.to_model(head=head, path=tmp_path / "block.npz")
    assert model.d_in == model.d == d
    with torch.no_grad():
        logits = net(X).numpy()
    Xflat = X.reshape(40, -1).numpy()
    assert np.abs(model.logits(params, Xflat) - logits).max() <= 1e-12 * np.abs(logits).max()
    assert np.array_equal(_predict(tmp_path / "block.npz", Xflat, tmp_path), logits.argmax(axis=1))
    back = from_model(str(tmp_path / "block.npz"), dtype=torch.float64)
    with torch.no_grad():
        again = back(torch.as_tensor(Xflat)).numpy()
    assert np.abs(again - logits).max() <= 1e-12 * np.abs(logits).max()
    assert type(back[2]) is type(blk)


def test_to_model_checks_the_head():
    blk = ODEBlock(4, layers=2)
    with pytest.raises(InputError, match="Linear"):
        blk.to_model(head=torch.nn.Linear(3, 1))
    with pytest.raises(InputError, match="one logit"):
        blk.to_model(head=torch.nn.Linear(4, 2))
    model, params = blk.to_model()                     # zero two-class head
    assert model.n_classes == 2 and not params["W"].any()
    with pytest.raises(InputError, match="ConvODEBlock"):
        ODEBlock.from_model(*ConvODEBlock(2, 5, layers=2, kernel=3).to_model())
