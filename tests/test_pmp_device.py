"""The torch sweeps (ocdl.pmp.torch_sweeps) against the compiled sweeps and torch autograd.

References: the compiled sweeps of ocdl.pmp.compiled (a separate implementation on numpy arrays) and
torch reverse-mode autograd through ``model.cost`` (the network written out layer by layer in
ocdl.models.resnet) — neither shares the device code. Tolerance 1e-12 relative: both sides are
float64 evaluations of the same finite computation on shallow networks (depth ≤ 9, |h K| ≲ 1),
so they differ by accumulated round-off (a few 1e-16 per operation, measured ≤ 2e-15); 1e-12
leaves room for other BLAS builds but would catch any wrong term (a missing stage, sign,
transpose or factor h changes the gradient at the 1e-3 level or more).
"""
import numpy as np
import pytest
import torch

from ocdl import pmp
from ocdl.errors import InputError
from ocdl.models import ResNetODE
from ocdl.models.activations import ACTIVATIONS
from ocdl.pmp import dispatch
from ocdl.solvers import train

from conftest import run_ocdl_inprocess

TOL = 1e-12
CASES = [(f, i) for f in ("outer", "inner", "hamiltonian") for i in ("euler", "heun", "rk4")] + \
        [("hamiltonian", i) for i in ("verlet", "yoshida4", "symplectic_euler", "symplectic_euler_b")]


def rel(a, b):
    a = a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def data(n=40, d_in=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d_in)), rng.integers(0, classes, n)


def make(field, integ, activation="tanh", classes=3, layers=7, **kw):
    return ResNetODE(field=field, d_in=3, width=6, n_classes=classes, layers=layers, T=2.0, integrator=integ,
                     alpha=1e-2, beta=0.05, activation=activation, input_shift=[0.1, -0.2, 0.0],
                     input_scale=[1.5, 0.7, 1.0], **kw)


def autograd(model, params, X, y):
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    J = model.cost(tp, torch.tensor(X), y)
    J.backward()
    return J.item(), {k: v.grad.numpy() for k, v in tp.items()}


@pytest.mark.parametrize("field,integ", CASES)
def test_device_sweep_equals_numpy_sweep_and_autograd(field, integ):
    X, y = data()
    model = make(field, integ)
    params = model.init(seed=3)
    J0, g0, S0, P0 = pmp.sweep(model, params, X, y)                       # numpy fused
    tp = {k: torch.tensor(v) for k, v in params.items()}
    J1, g1, S1, P1 = pmp.sweep(model, tp, torch.tensor(X), y)              # torch, CPU
    Ja, ga = autograd(model, params, X, y)
    assert isinstance(g1["K"], torch.Tensor) and g1["K"].dtype == torch.float64
    assert abs(J1 - J0) <= TOL * abs(J0) and abs(J1 - Ja) <= TOL * abs(Ja)
    for k in g0:
        assert rel(g1[k], g0[k]) <= TOL, k
        assert rel(g1[k], ga[k]) <= TOL, k
    assert S1.shape == S0.shape and P1.shape == P0.shape
    assert rel(S1, S0) <= TOL and rel(P1, P0) <= TOL
    assert abs(pmp.cost(model, tp, torch.tensor(X), y) - J0) <= TOL * abs(J0)


@pytest.mark.parametrize("activation", ["softplus", "relu"])
@pytest.mark.parametrize("field,integ", [("outer", "rk4"), ("inner", "euler"), ("hamiltonian", "verlet")])
def test_other_activations_and_two_classes(field, integ, activation):
    X, y = data(classes=2, seed=1)
    model = make(field, integ, activation, classes=2)
    params = model.init(seed=4)
    J0, g0 = pmp.value_and_grad(model, params, X, y)
    J1, g1 = pmp.value_and_grad(model, params, X, y, device="cpu")       # numpy in → numpy out
    Ja, ga = autograd(model, params, X, y)
    assert isinstance(g1["K"], np.ndarray)
    assert abs(J1 - J0) <= TOL * J0 and abs(J1 - Ja) <= TOL * Ja
    for k in g0:
        assert rel(g1[k], g0[k]) <= TOL and rel(g1[k], ga[k]) <= TOL, k


@pytest.mark.parametrize("field,integ", [("outer", "euler"), ("outer", "heun"), ("inner", "euler"),
                                         ("hamiltonian", "rk4")])
def test_increments_on_device(field, integ):
    X, y = data()
    model = make(field, integ)
    params = model.init(seed=5)
    xi = 0.05 * np.random.default_rng(2).standard_normal((model.layers, len(X), model.d))
    J0, g0 = pmp.value_and_grad(model, params, X, y, increments=xi)
    J1, g1 = pmp.value_and_grad(model, params, X, y, increments=xi, device="cpu")
    assert abs(J1 - J0) <= TOL * J0 and all(rel(g1[k], g0[k]) <= TOL for k in g0)
    assert abs(pmp.cost(model, params, X, y, increments=xi, device="cpu") - J0) <= TOL * J0
    assert abs(pmp.value_and_grad(model, params, X, y)[0] - J0) > 1e-6       # ξ does enter


def test_activation_kernels_match_autograd():
    z = torch.linspace(-3, 3, 60, dtype=torch.float64).reshape(3, 20)
    v = torch.cos(7 * z)
    for act in ACTIVATIONS.values():
        zz = z.clone().requires_grad_(True)
        s_ref = act.torch(zz)
        (dv_ref,) = torch.autograd.grad(s_ref, zz, v)
        s = torch.empty_like(z)
        act.apply_torch(z, s)
        assert torch.allclose(s, s_ref.detach(), rtol=0, atol=1e-15), act.name
        d = s.clone()
        act.deriv_inplace_torch(d)
        assert torch.allclose(d * v, dv_ref, rtol=0, atol=1e-14), act.name


def test_workspace_reuse_and_fresh_trajectories():
    X, y = data()
    model = make("inner", "euler")
    p1, p2 = model.init(seed=1), model.init(seed=2)
    _, g_a, S_a, _ = pmp.sweep(model, p1, X, y, device="cpu")
    keep = S_a.copy()
    pmp.value_and_grad(model, p2, X, y, device="cpu")                      # reuses the workspace
    _, g_b, _, _ = pmp.sweep(model, p1, X, y, device="cpu")
    assert np.array_equal(S_a, keep)                                        # handed-back states are fresh
    assert all(np.array_equal(g_a[k], g_b[k]) for k in g_a)


def test_no_device_sweep_is_one_clear_error():
    X, y = data(d_in=3)
    model = make("outer", "gauss2")
    with pytest.raises(InputError, match="no device sweep for integrator 'gauss2'"):
        pmp.value_and_grad(model, model.init(), X, y, device="cpu")
    conv = ResNetODE(field="conv", d_in=8, n_classes=2, layers=2, channels=2, kernel=3)
    with pytest.raises(InputError, match="no device sweep for the conv field"):
        pmp.cost(conv, conv.init(), np.zeros((4, 8)), np.zeros(4, int), device="cpu")
    with pytest.raises(InputError, match="no device sweep"):
        train(X, y, solver="pmp-adam", field="outer", integrator="gauss2", iterations=1, device="cpu")
    with pytest.raises(InputError, match="applies to the solvers"):
        train(X, y, solver="msa", iterations=1, device="cuda")


def test_increments_on_a_splitting_are_refused_by_sweep_and_cost():
    """A splitting takes no additive increments: refused with one InputError on every path
    (the torch cost-only forward used to drop tensor increments without a word)."""
    X, y = data()
    model = make("hamiltonian", "verlet")
    params = model.init(seed=1)
    xi = torch.zeros((model.layers, len(X), model.d), dtype=torch.float64)
    for f in (pmp.cost, pmp.value_and_grad):
        for inc, dev in ((xi, "cpu"), (xi.numpy(), "cpu"), (xi.numpy(), None)):
            with pytest.raises(InputError, match="increments need an explicit Runge–Kutta"):
                f(model, params, X, y, increments=inc, device=dev)


@pytest.mark.parametrize("solver,options", [("pmp-adam", {}), ("pmp-adam", {"batch_size": 16}),
                                            ("pmp-gd", {}), ("pmp-lbfgs", {})])
def test_training_on_device_cpu_follows_the_numpy_run(solver, options, monkeypatch):
    X, y = data(n=60, d_in=2, classes=2, seed=7)
    calls = []
    parts = dispatch.SWEEPS["torch", "rk"]
    monkeypatch.setitem(dispatch.SWEEPS, ("torch", "rk"), lambda *a, **k: calls.append(1) or parts(*a, **k))
    kw = dict(solver=solver, field="hamiltonian", integrator="rk4", layers=6, iterations=6, seed=1, **options)
    ref = train(X, y, **kw)
    assert not calls
    res = train(X, y, device="cpu", **kw)
    assert len(calls) >= 6                                                  # the torch sweep ran
    h0, h1 = [r["loss"] for r in ref.history], [r["loss"] for r in res.history]
    assert len(h0) == len(h1) >= 6
    np.testing.assert_allclose(h1, h0, rtol=1e-12, atol=0)
    for k in ref.x:
        np.testing.assert_allclose(res.x[k], ref.x[k], rtol=0, atol=1e-12)


def test_cli_device_cpu_trains_like_numpy_and_cuda_is_refused(tmp_path, monkeypatch):
    import json
    base = ["train", "--data", "spirals", "--points", "40", "--solver", "pmp-adam", "--iterations", "4",
            "--layers", "5", "--quiet"]
    rc0, _, err0 = run_ocdl_inprocess(*base, "--json", tmp_path / "a.json")
    rc1, _, err1 = run_ocdl_inprocess(*base, "--device", "cpu", "--json", tmp_path / "b.json")
    assert rc0 == 0 and rc1 == 0, err0 + err1
    h0 = [r["loss"] for r in json.loads((tmp_path / "a.json").read_text())["history"]]
    h1 = [r["loss"] for r in json.loads((tmp_path / "b.json").read_text())["history"]]
    np.testing.assert_allclose(h1, h0, rtol=1e-12, atol=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for cmd in (base, ["bench", "gradient", "--depths", "2", "--methods", "costate-torch", "--quiet"]):
        rc, out, err = run_ocdl_inprocess(*cmd, "--device", "cuda")
        assert rc == 2 and out == "" and "Traceback" not in err
        assert err.strip().count("\n") == 0 and "no CUDA device" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("field,integ", [("outer", "euler"), ("inner", "rk4"), ("hamiltonian", "yoshida4")])
def test_cuda_sweep_equals_numpy(field, integ):
    X, y = data()
    model = make(field, integ)
    params = model.init(seed=3)
    J0, g0 = pmp.value_and_grad(model, params, X, y)
    J1, g1 = pmp.value_and_grad(model, params, X, y, device="cuda")
    assert abs(J1 - J0) <= TOL * J0 and all(rel(g1[k], g0[k]) <= TOL for k in g0)


def test_bench_train_passes_the_device_to_the_costate_solvers():
    from ocdl.bench.train import run_train_bench
    seen = {}

    def fake_compare(X, y, solvers, seed, target, options=None, log=None, **kw):
        seen.update(options)
        hist = [{"iteration": 1, "loss": 0.1, "time_s": 0.1}]
        return {"solvers": {s: {"history": hist, "final_loss": 0.1, "iterations": 1, "wall_time_s": 0.1,
                                "converged": True, "message": ""} for s in solvers}}

    solvers = ["adam", "pmp-adam", "pmp-lbfgs", "msa"]
    run_train_bench(solvers, [0], 0.2, device="cuda:1", compare_fn=fake_compare,
                    load_fn=lambda name, seed, opts: (None, None), quiet=True)
    assert seen == {"adam": {"device": "cuda:1"}, "pmp-adam": {"device": "cuda:1"},
                    "pmp-lbfgs": {"device": "cuda:1"}}
    seen.clear()
    run_train_bench(solvers, [0], 0.2, device="cpu", compare_fn=fake_compare,
                    load_fn=lambda name, seed, opts: (None, None), quiet=True)
    assert seen == {}                                   # cpu: autograd on the CPU, numpy sweeps
