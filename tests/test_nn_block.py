"""ocdl.nn.ODEBlock / ConvODEBlock: the costate-sweep backward against torch autograd through the
same explicit steps, written out here independently of ocdl (Butcher tableaux, splittings and the
fields in plain torch ops; conv fields with ``torch.nn.functional.conv1d`` / ``conv_transpose1d``).

Tolerances: float64 ≤ 1e-12 relative (both sides are exact up to round-off of O(N) operations
on O(1) numbers, observed ~1e-15); float32 ≤ 1e-5 relative (autograd's float32 round-off over
the layers, ~1e-6, against the sweep's float64 result rounded to float32).
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as tf

from ocdl.errors import InputError
from ocdl.nn import ConvODEBlock, ODEBlock

RK = {"euler": ([[0.0]], [1.0]),
      "heun": ([[0.0, 0.0], [1.0, 0.0]], [0.5, 0.5]),
      "rk4": ([[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1.0, 0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6])}
_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
_W0 = 1.0 - 2.0 * _W1
SPLIT = {"symplectic_euler": [("kick", 1.0), ("drift", 1.0)],
         "symplectic_euler_b": [("drift", 1.0), ("kick", 1.0)],
         "verlet": [("drift", 0.5), ("kick", 1.0), ("drift", 0.5)],
         "yoshida4": [("drift", _W1 / 2), ("kick", _W1), ("drift", (_W1 + _W0) / 2), ("kick", _W0),
                      ("drift", (_W0 + _W1) / 2), ("kick", _W1), ("drift", _W1 / 2)]}
ACT = {"tanh": torch.tanh, "softplus": tf.softplus, "relu": torch.relu}


def halves(field, K, b, act):
    """(F_q(p), F_p(q)) of the hamiltonian fields."""
    if field == "hamiltonian":
        return (lambda p: act(p @ K.T + b)), (lambda q: -act(q @ K + b))
    r = (K.shape[-1] - 1) // 2
    return (lambda p: act(tf.conv1d(p, K, b, padding=r))), (lambda q: -act(tf.conv_transpose1d(q, K, b, padding=r)))


def field_fn(field, K, b, act):
    if field == "outer":
        return lambda x: act(x) @ K.T + b
    if field == "inner":
        return lambda x: act(x @ K.T + b)
    if field == "conv":
        return lambda x: act(tf.conv1d(x, K, b, padding=(K.shape[-1] - 1) // 2))
    fq, fp = halves(field, K, b, act)
    m = K.shape[0] if field == "hamiltonian" else None

    def f(x):
        if field == "hamiltonian":
            return torch.cat([fq(x[:, m:]), fp(x[:, :m])], dim=1)
        C = x.shape[1] // 2
        return torch.cat([fq(x[:, C:]), fp(x[:, :C])], dim=1)
    return f


def reference(field, integrator, x, K, b, T, activation="tanh"):
    """x_N by plain torch ops (autograd records every step)."""
    act = ACT[activation]
    N = K.shape[0]
    h = T / N
    for k in range(N):
        if integrator in RK:
            A, w = RK[integrator]
            f = field_fn(field, K[k], b[k], act)
            ks = []
            for i in range(len(w)):
                y = x
                for j in range(i):
                    if A[i][j]:
                        y = y + h * A[i][j] * ks[j]
                ks.append(f(y))
            x = x + sum(h * wi * ki for wi, ki in zip(w, ks))
        else:
            fq, fp = halves(field, K[k], b[k], act)
            split = x.shape[1] // 2
            q, p = x[:, :split], x[:, split:]
            for kind, c in SPLIT[integrator]:
                if kind == "drift":
                    q = q + c * h * fq(p)
                else:
                    p = p + c * h * fp(q)
            x = torch.cat([q, p], dim=1)
    return x


def rel(a, b):
    return float((a - b).norm() / b.norm())


def grads_both(block, x, T, activation="tanh"):
    """(sweep grads, autograd grads) of ⟨w, x_N⟩ for a fixed random w: (∂/∂x, ∂/∂K, ∂/∂b)."""
    x1 = x.clone().requires_grad_(True)
    y = block(x1)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(y.dtype)
    (y * w).sum().backward()
    mine = (x1.grad, block.K.grad, block.b.grad)
    x2 = x.clone().requires_grad_(True)
    K2 = block.K.detach().clone().requires_grad_(True)
    b2 = block.b.detach().clone().requires_grad_(True)
    y2 = reference(block.field, block.integrator, x2, K2, b2, T, activation)
    assert rel(y.detach(), y2.detach()) < (1e-12 if x.dtype == torch.float64 else 1e-5)
    ref = torch.autograd.grad((y2 * w).sum(), [x2, K2, b2])
    return mine, ref


DENSE = [(f, i) for f in ("outer", "inner", "hamiltonian") for i in RK] + \
        [("hamiltonian", s) for s in SPLIT]
CONV = [("conv", i) for i in RK] + [("hamiltonian-conv", i) for i in list(RK) + list(SPLIT)]


def make(field, integrator, dtype, activation="tanh"):
    if field in ("conv", "hamiltonian-conv"):
        blk = ConvODEBlock(3, 7, layers=5, T=2.0, field=field, integrator=integrator, activation=activation,
                           kernel=3, seed=1, dtype=dtype)
    else:
        blk = ODEBlock(6, layers=6, T=2.0, field=field, integrator=integrator, activation=activation,
                       seed=1, dtype=dtype)
    x = torch.randn((5,) + blk.state_shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return blk, x.to(dtype)


@pytest.mark.parametrize("field,integrator", DENSE + CONV)
def test_gradients_equal_autograd_float64(field, integrator):
    blk, x = make(field, integrator, torch.float64)
    mine, ref = grads_both(blk, x, 2.0)
    for a, r in zip(mine, ref):
        assert a.dtype == torch.float64 and a.shape == r.shape
        assert rel(a, r) <= 1e-12


@pytest.mark.parametrize("field,integrator", [("outer", "euler"), ("inner", "rk4"), ("hamiltonian", "verlet"),
                                              ("conv", "heun"), ("hamiltonian-conv", "verlet")])
def test_gradients_equal_autograd_float32(field, integrator):
    blk, x = make(field, integrator, torch.float32)
    assert blk.K.dtype == torch.float32
    mine, ref = grads_both(blk, x, 2.0)
    for a, r in zip(mine, ref):
        assert a.dtype == torch.float32
        assert rel(a, r) <= 1e-5


@pytest.mark.parametrize("activation", ["softplus", "relu"])
def test_other_activations(activation):
    blk, x = make("inner", "heun", torch.float64, activation)
    mine, ref = grads_both(blk, x, 2.0, activation)
    for a, r in zip(mine, ref):
        assert rel(a, r) <= 1e-12


def test_in_sequential_with_a_loss():
    """Encoder → block → head, a cross-entropy loss: every parameter's gradient equals autograd's
    through the reference steps (the block's backward composes with torch's own)."""
    torch.manual_seed(0)
    enc, head = torch.nn.Linear(3, 6).double(), torch.nn.Linear(6, 4).double()
    blk = ODEBlock(6, layers=8, T=1.5, integrator="rk4", dtype=torch.float64)
    net = torch.nn.Sequential(enc, blk, head)
    X, y = torch.randn(9, 3, dtype=torch.float64), torch.randint(0, 4, (9,))
    tf.cross_entropy(net(X), y).backward()
    got = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    K = blk.K.detach().clone().requires_grad_(True)
    b = blk.b.detach().clone().requires_grad_(True)
    loss = tf.cross_entropy(head(reference("outer", "rk4", enc(X), K, b, 1.5)), y)
    loss.backward()
    want = [enc.weight.grad, enc.bias.grad, None, None, head.weight.grad, head.bias.grad]
    want[2:4] = torch.autograd.grad(tf.cross_entropy(head(reference("outer", "rk4", enc(X), K, b, 1.5)), y), [K, b])
    for g, w in zip(got, want):
        assert rel(g, w) <= 1e-12


def test_no_grad_forward_and_shapes():
    blk = ODEBlock(4, layers=5, dtype=torch.float64, seed=0)
    x = torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        y = blk(x)
    assert not y.requires_grad and y.shape == (3, 4)
    ref = reference("outer", "euler", x, blk.K.detach(), blk.b.detach(), 5.0)
    assert rel(y, ref) <= 1e-12
    with pytest.raises(InputError):
        blk(torch.randn(3, 5, dtype=torch.float64))
    with pytest.raises(InputError):
        ODEBlock(4, field="conv")
    with pytest.raises(InputError):
        ODEBlock(4, field="outer", integrator="verlet")        # a splitting needs the hamiltonian field
    assert tuple(ODEBlock(6, layers=3, field="hamiltonian").K.shape) == (3, 3, 3)
    assert tuple(ConvODEBlock(2, 9, layers=4, kernel=3).K.shape) == (4, 2, 2, 3)


def test_torch_func_grad_refused_clearly():
    blk = ODEBlock(4, layers=3, dtype=torch.float64, seed=0)
    x = torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(NotImplementedError, match="torch.func"):
        torch.func.grad(lambda z: blk(z).sum())(x)


OPTIMISERS = [name for name in dir(torch.optim)
              if isinstance(getattr(torch.optim, name), type)
              and issubclass(getattr(torch.optim, name), torch.optim.Optimizer) and name != "Optimizer"]


@pytest.mark.parametrize("name", OPTIMISERS)
def test_every_torch_optimiser_takes_a_step(name):
    """Each optimiser in torch.optim changes K and b (and LBFGS, with its closure, lowers the loss)."""
    torch.manual_seed(0)
    blk = ODEBlock(4, layers=4, T=1.0, dtype=torch.float64)
    X, target = torch.randn(16, 4, dtype=torch.float64), torch.randn(16, 4, dtype=torch.float64)
    opt_cls = getattr(torch.optim, name)
    kwargs = {"lr": 0.01}
    if name == "SparseAdam":
        pytest.skip("SparseAdam takes sparse gradients only (dense nn.Parameters are refused by torch itself)")
    # Muon takes 2-D parameters only (torch's own rule): it gets b (layers, width); K is 3-D
    opt = opt_cls([blk.b] if name == "Muon" else blk.parameters(), **kwargs)
    K0, b0 = blk.K.detach().clone(), blk.b.detach().clone()

    def closure():
        opt.zero_grad()
        loss = ((blk(X) - target) ** 2).mean()
        loss.backward()
        return loss
    loss0 = float(closure().detach())
    opt.step(closure)
    assert (name == "Muon" or not torch.equal(K0, blk.K.detach())) and not torch.equal(b0, blk.b.detach())
    assert math.isfinite(float(closure().detach()))
    if name == "LBFGS":
        assert float(closure().detach()) < loss0


def test_state_dict_round_trip():
    blk = ConvODEBlock(2, 6, layers=3, kernel=3, field="hamiltonian-conv", integrator="verlet", seed=4,
                       dtype=torch.float64)
    other = ConvODEBlock(2, 6, layers=3, kernel=3, field="hamiltonian-conv", integrator="verlet", seed=5,
                         dtype=torch.float64)
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    assert not torch.equal(blk(x), other(x))
    other.load_state_dict(blk.state_dict())
    assert torch.equal(blk(x), other(x))
    assert set(blk.state_dict()) == {"K", "b"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():                                          # pragma: no cover - needs a GPU
    for field, integ in [("outer", "rk4"), ("hamiltonian", "verlet")]:
        blk, x = make(field, integ, torch.float64)
        mine, _ = grads_both(blk, x, 2.0)
        gpu = blk.to("cuda")
        gpu.zero_grad()
        xg = x.to("cuda").requires_grad_(True)
        y = gpu(xg)
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to("cuda")
        (y * w).sum().backward()
        for a, r in zip((xg.grad, gpu.K.grad, gpu.b.grad), mine):
            assert rel(a.cpu(), r) <= 1e-12


def test_implicit_integrator_gradient_against_finite_differences():
    """The implicit midpoint block (CPU Newton stages): directional derivative of ⟨w, x_N⟩ in x
    against a central difference (step 1e-6: truncation ~1e-12, round-off ~1e-10 relative)."""
    blk = ODEBlock(4, layers=3, T=1.0, integrator="implicit_midpoint", dtype=torch.float64, seed=2)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w, u = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    (blk(x) * w).sum().backward()
    e = 1e-6
    with torch.no_grad():
        fd = ((blk(x + e * u) * w).sum() - (blk(x - e * u) * w).sum()) / (2 * e)
    assert abs(float((x.grad * u).sum()) - float(fd)) <= 1e-7 * abs(float(fd))
    assert np.isfinite(blk.K.grad.numpy()).all()


def test_parameter_gradients_without_input_gradient():
    """An input that does not require grad (data): the sweep runs without trajectories and K, b
    get the same gradients as with the input's gradient (float64, ≤ 1e-12)."""
    blk, x = make("hamiltonian", "verlet", torch.float64)
    mine, ref = grads_both(blk, x, 2.0)
    blk.zero_grad()
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    (blk(x) * w).sum().backward()
    assert rel(blk.K.grad, ref[1]) <= 1e-12 and rel(blk.b.grad, ref[2]) <= 1e-12


def _count(monkeypatch, ns, name, calls, note=None):
    """Wrap ``ns.name`` so each call appends ``name`` (or ``note(*args)``) to ``calls``."""
    f = getattr(ns, name)

    def counted(*args, **kwargs):
        calls.append(name if note is None else note(*args))
        return f(*args, **kwargs)
    monkeypatch.setattr(ns, name, counted)


def test_backward_does_not_rerun_the_forward_compiled(monkeypatch):
    """Forward + backward run the compiled forward kernel once, storing σ (its S argument has one
    block per sample block), and the backward kernel once; under no_grad the forward kernel runs
    once storing nothing (S of zero blocks) and no backward kernel runs."""
    from ocdl.pmp import kernels_rk
    blk = ODEBlock(5, layers=7, T=1.0, dtype=torch.float64, seed=0)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    blk(x.detach())                                     # (no grad needed: warm the kernels)
    ek = kernels_rk.rk(blk.model.F.act)
    calls = []
    _count(monkeypatch, ek, "outer_forward", calls, lambda *a: ("forward", a[6].shape[0]))
    _count(monkeypatch, ek, "outer_backward", calls, lambda *a: ("backward",))
    blk(x).sum().backward()
    assert calls == [("forward", 1), ("backward",)]
    calls.clear()
    with torch.no_grad():
        blk(x)
    assert calls == [("forward", 0)]
    ref = torch.autograd.grad(reference("outer", "euler", x, blk.K.detach(), blk.b.detach(), 1.0).sum(), x)[0]
    assert rel(x.grad, ref) <= 1e-12


@pytest.mark.parametrize("field,integrator,evals", [("outer", "euler", 1), ("inner", "rk4", 4),
                                                    ("hamiltonian", "verlet", 3)])
def test_torch_sweeps_backward_does_not_rerun_the_forward(monkeypatch, field, integrator, evals):
    """The torch sweeps (forced on the CPU, as for an activation without a compiled form): one
    forward + backward evaluates σ once per layer and stage (``evals`` a layer) — the backward
    reads σ' off the stored σ — and the gradients equal autograd's (float64, ≤ 1e-12)."""
    from ocdl.pmp import dispatch
    monkeypatch.setattr(dispatch.compiled, "supports", lambda act: False)
    blk = ODEBlock(6, layers=5, T=2.0, field=field, integrator=integrator, dtype=torch.float64, seed=1)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    calls = []
    _count(monkeypatch, blk.model.F.act, "apply_torch", calls)
    mine, ref = grads_both(blk, x, 2.0)
    assert len(calls) == 5 * evals
    for a, r in zip(mine, ref):
        assert rel(a, r) <= 1e-12


def test_block_applied_twice_keeps_both_forwards():
    """The same block twice in one graph (weight tying): two forwards are pending before either
    backward, each holding its own stored stages; the gradients equal autograd's (≤ 1e-12)."""
    for field, integrator in (("outer", "euler"), ("inner", "heun"), ("hamiltonian", "verlet")):
        blk, x = make(field, integrator, torch.float64)
        x1 = x.clone().requires_grad_(True)
        (blk(torch.tanh(blk(x1))) ** 2).sum().backward()
        x2 = x.clone().requires_grad_(True)
        K2 = blk.K.detach().clone().requires_grad_(True)
        b2 = blk.b.detach().clone().requires_grad_(True)
        y2 = reference(field, integrator, torch.tanh(reference(field, integrator, x2, K2, b2, 2.0)), K2, b2, 2.0)
        ref = torch.autograd.grad((y2 ** 2).sum(), [x2, K2, b2])
        for a, r in zip((x1.grad, blk.K.grad, blk.b.grad), ref):
            assert rel(a, r) <= 1e-12


def test_second_backward_through_one_forward_is_refused():
    blk = ODEBlock(4, layers=3, dtype=torch.float64, seed=0)
    x = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    y = blk(x).sum()
    y.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="second backward"):
        y.backward()
