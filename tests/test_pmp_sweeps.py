"""The costate sweeps of both array backends — compiled (numpy arrays) and torch (tensors on
the CPU) — against independent references.

The sweeps keep σ from the forward pass and reuse a per-model workspace between calls, so
besides the gradient (tested in test_pmp.py) we check every costate against torch autograd,
that reused memory never leaks into returned arrays or across data sizes, that concurrent
threads on one model stay correct, and that the cost-only forward equals the generic forward of
``ocdl.models``. Speed is measured by ``ocdl bench gradient`` and ``python -m ocdl.bench.peers``
(BENCHMARKS.md), never asserted in the test suite.
"""
import threading

import numpy as np
import pytest
import torch

from ocdl import pmp
from ocdl.models import ResNetODE
from ocdl.models.losses import mean_loss
from ocdl.models.resnet import to_torch
from ocdl.pmp import dispatch

CASES = [("outer", "euler"), ("inner", "euler"), ("hamiltonian", "euler"),
         ("outer", "rk4"), ("inner", "heun"), ("hamiltonian", "heun"), ("hamiltonian", "verlet"),
         ("hamiltonian", "yoshida4"), ("hamiltonian", "symplectic_euler")]


@pytest.fixture(params=["compiled", "torch"])
def path(request, monkeypatch):
    """Both backends on numpy inputs: the compiled kernels and (as for an activation without a
    compiled form) the torch sweeps on the CPU."""
    if request.param == "torch":
        monkeypatch.setattr(dispatch.compiled, "supports", lambda act: False)
    return request.param


def _data(n, C=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)), np.arange(n) % C


def _model(field, method, C=2, layers=6):
    return ResNetODE(field=field, integrator=method, layers=layers, T=2.0, width=4, n_classes=C,
                     alpha=1e-2, beta=0.2, alpha_head=5e-3)


def _autograd_costates(model, params, X, y):
    """``∂J/∂x_k`` for every k by torch autograd: the generic torch forward of ``ocdl.models``,
    with each intermediate state made a leaf (the layers after k are rerun from it)."""
    tp = to_torch(params)
    x = model.lift(torch.tensor(X, dtype=torch.float64))
    states, out = [x], []
    for k in range(model.layers):
        x = model.step(x, tp["K"][k], tp["b"][k])
        states.append(x)
    for k in range(model.layers + 1):
        xk = states[k].detach().clone().requires_grad_(True)
        z = xk
        for j in range(k, model.layers):
            z = model.step(z, tp["K"][j], tp["b"][j])
        J = mean_loss(model.head(tp, z), y)
        J.backward()
        out.append(xk.grad.numpy())
    return np.stack([s.detach().numpy() for s in states]), np.stack(out)


@pytest.mark.parametrize("field,method", CASES)
def test_every_costate_is_the_autograd_state_derivative(path, field, method):
    # p_k = ∂J/∂x_k (the regulariser does not depend on x). float64, different order of
    # operations: agreement to round-off (measured ≤ 2.1e-16 states, ≤ 3.4e-16 costates, all
    # cases); bar 1e-13 relative per layer.
    X, y = _data(30, C=3)
    model = _model(field, method, C=3)
    params = model.init(seed=1)
    assert dispatch.backend(model, params, X) == path                       # the backend under test
    states, costates = pmp.costate(model, params, X, y)
    ref_states, ref_costates = _autograd_costates(model, params, X, y)
    assert states.shape == costates.shape == ref_states.shape
    for k in range(model.layers + 1):
        assert np.abs(states[k] - ref_states[k]).max() <= 1e-13 * np.abs(ref_states[k]).max()
        assert (np.linalg.norm(costates[k] - ref_costates[k])
                <= 1e-13 * np.linalg.norm(ref_costates[k]))


@pytest.mark.parametrize("field,method", [("outer", "euler"), ("inner", "euler"), ("hamiltonian", "euler"),
                                          ("hamiltonian", "verlet"), ("outer", "rk4"), ("inner", "heun")])
def test_reused_workspace_never_leaks(path, field, method):
    # Same model, calls with other parameters and other sample counts in between: results of
    # a repeated call are bit-identical, earlier returned arrays are untouched, and a call
    # with a new sample count still equals autograd (1e-13 relative, as in test_pmp.py; measured ≤ 1.3e-16).
    model = _model(field, method)
    p1, p2 = model.init(seed=1), model.init(seed=2)
    X1, y1 = _data(40)
    X2, y2 = _data(17, seed=5)
    J1, g1 = pmp.value_and_grad(model, p1, X1, y1)
    keep = {k: v.copy() for k, v in g1.items()}
    s1, c1 = pmp.costate(model, p1, X1, y1)
    s1c, c1c = s1.copy(), c1.copy()
    J2, g2 = pmp.value_and_grad(model, p2, X2, y2)
    Ja, ga = pmp.autograd_value_and_grad(model, p2, X2, y2)
    assert abs(J2 - Ja) <= 1e-13 * abs(Ja) and pmp.rel_error(g2, ga) <= 1e-13
    pmp.costate(model, p2, X2, y2)
    J1b, g1b = pmp.value_and_grad(model, p1, X1, y1)
    assert J1b == J1
    for k in g1:
        assert np.array_equal(g1[k], keep[k]) and np.array_equal(g1b[k], keep[k])
    assert np.array_equal(s1, s1c) and np.array_equal(c1, c1c)


def test_concurrent_threads_on_one_model(path):
    # Threads share the model: one borrows the workspace, the others get private buffers.
    model = _model("outer", "euler", layers=40)
    X, y = _data(200)
    params = [model.init(seed=s) for s in range(6)]
    serial = [pmp.value_and_grad(model, p, X, y) for p in params]
    got = [None] * len(params)

    def work(i):
        for _ in range(5):
            got[i] = pmp.value_and_grad(model, params[i], X, y)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(params))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (J, g), (Js, gs) in zip(got, serial):
        assert J == Js and all(np.array_equal(g[k], gs[k]) for k in g)


@pytest.mark.parametrize("field,method", CASES)
def test_fused_cost_equals_generic_forward(path, field, method):
    # pmp.cost runs the fused feature-major forward; model.cost the generic one of ocdl.models
    # (and torch autograd's). Same arithmetic in another order: round-off (measured: identical
    # in every case); bar 1e-13 relative.
    X, y = _data(33)
    model = _model(field, method)
    params = model.init(seed=4)
    assert abs(pmp.cost(model, params, X, y) - model.cost(params, X, y)) <= 1e-13 * abs(model.cost(params, X, y))


def test_activation_without_compiled_form_runs_the_torch_sweep():
    # an activation object whose compiled() is None (here tanh without its scalar form) runs
    # the torch sweeps on the CPU for numpy inputs — numpy gradients, equal to autograd to
    # round-off (bar 1e-12 relative, as in test_pmp.py)
    from conftest import autograd_reference

    from ocdl.models.activations import Tanh

    class PlainTanh(Tanh):
        name = "tanh-without-compiled-form"

        @staticmethod
        def compiled():
            return None

    X, y = _data(25)
    model = ResNetODE(field="inner", integrator="rk4", layers=5, T=2.0, width=4, n_classes=2, alpha=1e-2)
    model.F.act = PlainTanh()                  # this model's field object only
    params = model.init(seed=3)
    assert dispatch.backend(model, params, X) == "torch"
    J, g = pmp.value_and_grad(model, params, X, y)
    Ja, ga = autograd_reference(model, params, X, y)
    assert isinstance(g["K"], np.ndarray)
    assert abs(J - Ja) <= 1e-12 * abs(Ja) and pmp.rel_error(g, ga) <= 1e-12
