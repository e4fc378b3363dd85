"""Convolutional fields (``conv``, ``hamiltonian-conv``, :mod:`ocdl.models.conv`): the numpy
convolution kernels against torch's ``conv1d`` / ``conv_transpose1d`` / autograd, the exact
costate gradient against torch autograd for every integrator with an exact sweep, the
reversible sweep's memory independent of depth, and the CLI."""
import json
import tracemalloc

import numpy as np
import pytest
import torch

from ocdl import pmp
from ocdl.errors import InputError
from ocdl.models import ResNetODE, exact_integrators
from ocdl.models.activations import ACTIVATIONS
from ocdl.models.conv import corr, corr_T, corr_grad, flip_swap

CONV = ["conv", "hamiltonian-conv"]


def _signals(n=9, L=11, C=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, L)), np.arange(n) % C


# ---------------------------------------------------------------- the kernels

@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_corr_kernels_match_torch(k):
    # K ∗ x vs torch conv1d (same-size zero padding); Kᵀ ∗ u vs conv_transpose1d; the kernel
    # correlation vs autograd of Σ ⟨u, K ∗ x⟩. float64, different summation orders: 1e-13.
    rng = np.random.default_rng(k)
    n, Ci, Co, L = 5, 3, 4, 9
    x, u, K = rng.standard_normal((n, Ci, L)), rng.standard_normal((n, Co, L)), rng.standard_normal((Co, Ci, k))
    xt, Kt = torch.tensor(x, requires_grad=True), torch.tensor(K, requires_grad=True)
    yt = torch.nn.functional.conv1d(xt, Kt, padding=(k - 1) // 2)
    (yt * torch.tensor(u)).sum().backward()
    fm = lambda a: np.ascontiguousarray(a.transpose(1, 2, 0))      # noqa: E731  (n, C, L) → (C, L, n)
    np.testing.assert_allclose(corr(K, fm(x)), fm(yt.detach().numpy()), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(corr_T(K, fm(u)), fm(xt.grad.numpy()), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(corr_grad(fm(u), fm(x), k), Kt.grad.numpy(), rtol=1e-13, atol=1e-13)
    tT = torch.nn.functional.conv_transpose1d(torch.tensor(u), torch.tensor(K), padding=(k - 1) // 2)
    np.testing.assert_allclose(corr_T(K, fm(u)), fm(tT.numpy()), rtol=1e-13, atol=1e-13)
    # the transposed convolution is the convolution with the flipped, channel-swapped kernel
    np.testing.assert_allclose(corr_T(K, fm(u)), corr(flip_swap(K), fm(u)), rtol=1e-13, atol=1e-13)


def test_corr_kernels_2d_match_torch():
    # images: K ∗ x vs conv2d, Kᵀ ∗ u vs conv_transpose2d and autograd, kernel gradient vs autograd
    rng = np.random.default_rng(7)
    n, Ci, Co, H, W, k = 3, 2, 3, 5, 4, 3
    x, u = rng.standard_normal((n, Ci, H, W)), rng.standard_normal((n, Co, H, W))
    K = rng.standard_normal((Co, Ci, k, k))
    xt, Kt = torch.tensor(x, requires_grad=True), torch.tensor(K, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, Kt, padding=1)
    (yt * torch.tensor(u)).sum().backward()
    fm = lambda a: np.ascontiguousarray(np.moveaxis(a, 0, -1))      # noqa: E731
    np.testing.assert_allclose(corr(K, fm(x)), fm(yt.detach().numpy()), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(corr_T(K, fm(u)), fm(xt.grad.numpy()), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(corr_grad(fm(u), fm(x), k), Kt.grad.numpy(), rtol=1e-13, atol=1e-13)
    tT = torch.nn.functional.conv_transpose2d(torch.tensor(u), torch.tensor(K), padding=1)
    np.testing.assert_allclose(corr_T(K, fm(u)), fm(tT.numpy()), rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------- costate vs autograd

COMBOS = [(f, m) for f in CONV for m in exact_integrators(f)]


@pytest.mark.parametrize("field,method", COMBOS)
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_conv_costate_equals_autograd(field, method, act):
    # the exact discrete gradient (numpy sweep: transposed convolutions, kernel correlations)
    # vs torch autograd through torch conv1d / conv_transpose1d: the same discrete cost in a
    # different order of operations, so agreement to round-off (≲ 3e-16 observed); bar 1e-12.
    X, y = _signals()
    model = ResNetODE(field=field, d_in=X.shape[1], n_classes=3, integrator=method, activation=act,
                      layers=4, T=1.5, channels=3, kernel=3, alpha=1e-2, beta=0.2)
    params = model.init(seed=3)
    J, g = pmp.value_and_grad(model, params, X, y)
    Ja, ga = pmp.autograd_value_and_grad(model, params, X, y)
    assert abs(J - Ja) <= 1e-12 * abs(Ja)
    assert abs(pmp.cost(model, params, X, y) - Ja) <= 1e-12 * abs(Ja)
    for k in ga:
        assert np.linalg.norm(g[k] - ga[k]) <= 1e-12 * np.linalg.norm(ga[k]), k


@pytest.mark.parametrize("field,method", [("conv", "euler"), ("conv", "heun"), ("hamiltonian-conv", "verlet"),
                                          ("hamiltonian-conv", "yoshida4")])
def test_conv_2d_costate_equals_autograd(field, method):
    # 2-D images (--shape H,W): 12 features as 4 × 3 images; same bar as the 1-D case
    X, y = _signals(n=8, L=12)
    model = ResNetODE(field=field, d_in=12, n_classes=3, integrator=method, layers=3, T=1.0,
                      channels=2, kernel=3, shape=(4, 3), alpha=1e-2, beta=0.1)
    assert model.shapes()["K"] == (3, 2, 2, 3, 3)
    params = model.init(seed=4)
    J, g = pmp.value_and_grad(model, params, X, y)
    Ja, ga = pmp.autograd_value_and_grad(model, params, X, y)
    assert abs(J - Ja) <= 1e-12 * abs(Ja)
    for k in ga:
        assert np.linalg.norm(g[k] - ga[k]) <= 1e-12 * np.linalg.norm(ga[k]), k


@pytest.mark.parametrize("field,method", [("conv", "rk4"), ("hamiltonian-conv", "verlet")])
def test_conv_costates_are_state_gradients(field, method):
    # pmp.costate: states equal the model's forward; costates[k] = ∂J/∂x_k by autograd (k = 0:
    # the lifted input, a leaf tensor; the rest through retained intermediate states)
    X, y = _signals(n=6, L=7)
    model = ResNetODE(field=field, d_in=7, n_classes=3, integrator=method, layers=3, T=1.0,
                      channels=2, kernel=3)
    params = model.init(seed=1)
    states, costates = pmp.costate(model, params, X, y)
    np.testing.assert_allclose(states, model.forward(params, X), rtol=1e-13, atol=1e-14)
    from ocdl.models.resnet import to_torch
    from ocdl.models.losses import mean_loss
    pt = to_torch(params)
    x0 = torch.tensor(model.lift(X), requires_grad=True)
    x, xs = x0, [x0]
    for k in range(model.layers):
        x = model.step(x, pt["K"][k], pt["b"][k])
        x.retain_grad()
        xs.append(x)
    mean_loss(model.head(pt, x), torch.tensor(y)).backward()
    for k in (0, 1, model.layers):
        np.testing.assert_allclose(costates[k], xs[k].grad.numpy(), rtol=1e-12, atol=1e-15)


def test_reversible_sweep_memory_independent_of_depth():
    # hamiltonian-conv + Verlet keeps no per-layer states: the peak of traced allocations during
    # the gradient grows by at most the O(N C² k) gradient arrays, not by N × (n C L) states
    # (each state here is 2·4·16·200·8 B = 102 kB; 60 extra layers would add ≥ 6 MB).
    X, y = _signals(n=200, L=16)

    def peak(layers):
        model = ResNetODE(field="hamiltonian-conv", d_in=16, n_classes=3, integrator="verlet", layers=layers,
                          T=1.0, channels=4, kernel=3)
        params = model.init(seed=0)
        pmp.value_and_grad(model, params, X, y)
        tracemalloc.start()
        pmp.value_and_grad(model, params, X, y)
        out = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out

    shallow, deep = peak(4), peak(64)
    assert deep < shallow + 0.5e6, (shallow, deep)
    # and the Euler sweep (which stores its stages) does grow: the measurement can tell
    model = ResNetODE(field="conv", d_in=16, n_classes=3, layers=64, T=1.0, channels=4, kernel=3)
    params = model.init(seed=0)
    tracemalloc.start()
    pmp.value_and_grad(model, params, X, y)
    stored = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert stored > shallow + 3e6


@pytest.mark.parametrize("field", CONV)
@pytest.mark.parametrize("shape", [(7,), (3, 4)])
def test_conv_reference_vjps_match_autograd(field, shape):
    # the row-layout (∂f/∂x)ᵀp and (∂f/∂θ)ᵀp of the field objects (used by the continuous adjoint)
    from ocdl.models.fields import FIELDS
    rng = np.random.default_rng(2)
    F = FIELDS[field]("softplus", channels=2, kernel=3, shape=shape)
    d = F.state_width()
    x, p = rng.standard_normal((5, d)), rng.standard_normal((5, d))
    K, b = rng.standard_normal(F.param_shapes(1, F.C)["K"][1:]), rng.standard_normal(F.C)
    xt, Kt, bt = (torch.tensor(v, requires_grad=True) for v in (x, K, b))
    (F.f(xt, Kt, bt) * torch.tensor(p)).sum().backward()
    np.testing.assert_allclose(F.f(x, K, b), F.f(xt, Kt, bt).detach().numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(F.vjp_x(x, K, b, p), xt.grad.numpy(), rtol=1e-13, atol=1e-14)
    gK, gb = F.vjp_theta(x, K, b, p)
    np.testing.assert_allclose(gK, Kt.grad.numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(gb, bt.grad.numpy(), rtol=1e-13, atol=1e-14)


def test_conv_model_shapes_and_lift():
    X, y = _signals(n=4, L=10)
    model = ResNetODE(field="hamiltonian-conv", d_in=10, n_classes=3, channels=3, kernel=5, layers=2)
    assert model.d == 2 * 3 * 10 and model.shapes()["K"] == (2, 3, 3, 5) and model.shapes()["b"] == (2, 3)
    x0 = model.lift(X).reshape(4, 6, 10)
    np.testing.assert_array_equal(x0[:, 0], X)          # the signal is channel 0 of q
    assert not x0[:, 1:].any()
    again = ResNetODE(**model.config())
    assert again.F.C == 3 and again.F.k == 5 and again.d == model.d


@pytest.mark.parametrize("kw,match", [({"kernel": 4}, "odd"), ({"channels": 0}, "channels"),
                                      ({"width": 7}, "--width"), ({"shape": (3, 4)}, "positions"),
                                      ({"shape": (2, 1, 5)}, "one or two")])
def test_conv_bad_shapes_are_input_errors(kw, match):
    with pytest.raises(InputError, match=match):
        ResNetODE(field="conv", d_in=10, n_classes=2, **kw)


def test_channels_on_a_fully_connected_field_is_input_error():
    with pytest.raises(InputError, match="conv fields only"):
        ResNetODE(field="outer", d_in=2, channels=4)


def test_pmp_adam_and_adam_agree_on_conv():
    # the same Adam rule on the costate gradient and on the autograd gradient: the parameters
    # after 5 steps agree to round-off amplified by 5 Adam steps
    from ocdl.solvers import make_model, train
    X, y = _signals(n=30, L=8)
    model = make_model(X, y, field="conv", layers=3, T=1.0, channels=3, kernel=3)
    a = train(X, y, solver="pmp-adam", model=model, iterations=5, seed=0)
    b = train(X, y, solver="adam", model=model, iterations=5, seed=0)
    for k in a.x:
        np.testing.assert_allclose(a.x[k], b.x[k], rtol=1e-9, atol=1e-12)
    assert a.fun < pmp.cost(model, model.init(seed=0), X, y)


# ---------------------------------------------------------------- CLI

@pytest.mark.parametrize("field,method,extra", [("conv", "euler", []), ("hamiltonian-conv", "verlet", []),
                                                ("conv", "rk4", ["--shape", "3,4"])])
def test_cli_gradcheck_conv(ocdl_cli, field, method, extra):
    r = ocdl_cli("gradcheck", "--field", field, "--integrator", method, "--layers", "4", "--points", "10", "--quiet",
                 *extra)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rel_error_costate_vs_autograd"] <= 1e-12
    assert out["rel_error_autograd_vs_finite_difference"] <= 1e-6


@pytest.mark.parametrize("extra,match", [
    (["--field", "conv", "--kernel", "4"], "odd"),
    (["--field", "conv", "--channels", "0"], "channels"),
    (["--field", "conv", "--solver", "msa"], "does not support field 'conv'"),
    (["--field", "conv", "--solver", "newton", "--newton-formulation", "full"], "formulation='full'"),
    (["--field", "conv", "--width", "9"], "--width"),
    (["--field", "outer", "--channels", "4"], "conv fields only"),
    (["--field", "conv", "--shape", "4,2"], "positions"),
])
def test_cli_conv_bad_flags_exit_2(ocdl_cli, tmp_path, extra, match):
    data = tmp_path / "sig.csv"
    X, y = _signals(n=8, L=6, C=2)
    np.savetxt(data, np.column_stack([X, y]), delimiter=",", comments="",
               header=",".join([f"x{i + 1}" for i in range(6)] + ["label"]), fmt="%.6f")
    r = ocdl_cli("train", "--data", data, "--iterations", "2", "--quiet", *extra)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and match in r.stderr, r.stderr


def test_cli_conv_model_saves_and_predicts(ocdl_cli, tmp_path):
    # the saved configuration carries channels/kernel: predict rebuilds the same network
    data = tmp_path / "sig.csv"
    X, y = _signals(n=12, L=6, C=2)
    np.savetxt(data, np.column_stack([X, y]), delimiter=",", comments="",
               header=",".join([f"x{i + 1}" for i in range(6)] + ["label"]), fmt="%.6f")
    r = ocdl_cli("train", "--data", data, "--field", "conv", "--channels", "3", "--kernel", "3", "--layers", "2",
                 "--solver", "pmp-adam", "--iterations", "3", "--save", tmp_path / "m.npz", "--quiet")
    assert r.returncode == 0, r.stderr
    train_acc = json.loads(r.stdout)["train_accuracy"]
    r = ocdl_cli("predict", "--model", tmp_path / "m.npz", "--data", data, "--json", tmp_path / "p.json", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "p.json").read_text())["accuracy"] == train_acc
