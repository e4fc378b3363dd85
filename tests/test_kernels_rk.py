"""The compiled explicit Runge–Kutta sweeps (:mod:`ocdl.pmp.kernels_rk`, numba) against
independent references: torch autograd through the generic torch forward of ``ocdl.models``
(value, gradient, with and without additive increments, cost-only forward) and the torch sweeps
of :mod:`ocdl.pmp.torch_sweeps` (a separate implementation: states and costates of every
layer). Besides heun and rk4, a 3-stage tableau with a two-term stage sum (Kutta's third-order
method, registered for the test) checks that the kernels take any explicit tableau.
test_pmp_perf.py runs its rk4/heun checks (costates, workspace reuse, threads) too.
"""
import numpy as np
import pytest
from conftest import assert_costate_equals_autograd, autograd_reference

from integrators import tableaux
from ocdl import pmp
from ocdl.models import ResNetODE, resnet
from ocdl.pmp import compiled, dispatch, forms, kernels, workspace

#: Kutta's third-order method: every b_i ≠ 0 (the adjoint partner exists) and stage 3 sums two
#: earlier stages, which neither heun nor rk4 does.
KUTTA3 = (np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [-1.0, 2.0, 0.0]]),
          np.array([1.0, 4.0, 1.0]) / 6.0, np.array([0.0, 0.5, 1.0]))


@pytest.fixture
def kutta3(monkeypatch):
    monkeypatch.setitem(tableaux.EXPLICIT, "kutta3", KUTTA3)
    monkeypatch.setattr(resnet, "EXPLICIT_METHODS", resnet.EXPLICIT_METHODS + ("kutta3",))


@pytest.fixture(params=[None, 8], ids=["blocks-auto", "blocks-8"])
def blocks(request, monkeypatch):
    """The samples in the kernels' own blocks (one block at these sizes) or in blocks of 8
    columns, the last one zero-padded (n = 37 or 41: 5 or 6 blocks)."""
    if request.param is not None:
        monkeypatch.setattr(kernels, "block_width", lambda d, n: request.param)
    return request.param


_autograd = autograd_reference


def _model(field, integrator, act, width=6, layers=7):
    return ResNetODE(field=field, integrator=integrator, layers=layers, T=2.0, width=width, n_classes=3,
                     alpha=1e-2, beta=0.2, alpha_head=5e-3, activation=act)


@pytest.mark.parametrize("act", ["tanh", "relu", "softplus"])
@pytest.mark.parametrize("field", ["outer", "inner", "hamiltonian"])
@pytest.mark.parametrize("integrator", ["heun", "rk4", "kutta3"])
def test_compiled_rk_gradient_and_cost_equal_autograd(monkeypatch, kutta3, blocks, integrator, field, act):
    # float64, the same discrete network, other order of operations: round-off only (measured
    # ≤ 1e-15 relative); bar 1e-12 relative, with and without additive increments ξ_k.
    rng = np.random.default_rng(11)
    n, N, width = 37, 7, 6
    X, y = rng.standard_normal((n, 2)), np.arange(n) % 3
    model = _model(field, integrator, act, width, N)
    params = model.init(seed=4)
    assert dispatch.backend(model, params, X) == "compiled"              # the compiled path is under test
    pmp.value_and_grad(model, params, X, y)
    stored = workspace._WORKSPACES[model][None].arrays["crkS" if field == "outer" else "crkSg"]
    assert stored.shape[0] == (1 if blocks is None else -(-n // blocks))    # sample blocks
    xi = 0.2 * rng.standard_normal((N, n, width))
    assert_costate_equals_autograd(model, params, X, y, (None, xi))
    Jr, gr = pmp.autograd_value_and_grad(model, params, X, y)          # through model.cost
    assert pmp.rel_error(pmp.value_and_grad(model, params, X, y)[1], gr) <= 1e-12


@pytest.mark.parametrize("act", ["tanh", "softplus"])
@pytest.mark.parametrize("field", ["outer", "inner", "hamiltonian"])
@pytest.mark.parametrize("integrator", ["heun", "rk4", "kutta3"])
def test_compiled_and_torch_rk_sweeps_agree(kutta3, blocks, integrator, field, act):
    # states, costates, gradients (trajectories on and off) and the forward-only states and x_N
    # of the compiled sweeps against the torch sweeps on the CPU (a separate implementation,
    # itself checked against autograd in test_pmp_device.py). Round-off: bar 1e-12 relative per layer.
    rng = np.random.default_rng(5)
    n, N, width = 41, 9, 6
    X, y = rng.standard_normal((n, 2)), np.arange(n) % 3
    xi = 0.1 * rng.standard_normal((N, n, width))
    model = _model(field, integrator, act, width, N)
    params = model.init(seed=7)
    sc, sn = (pmp.sweep(model, params, X, y, increments=xi, device=dv) for dv in (None, "cpu"))
    vc, vn = (pmp.value_and_grad(model, params, X, y, device=dv) for dv in (None, "cpu"))
    assert abs(sc[0] - sn[0]) <= 1e-12 * abs(sn[0]) and abs(vc[0] - vn[0]) <= 1e-12 * abs(vn[0])
    assert pmp.rel_error(sc[1], sn[1]) <= 1e-12 and pmp.rel_error(vc[1], vn[1]) <= 1e-12
    for a, b in ((sc[2], sn[2]), (sc[3], sn[3]), (compiled.states(model, params, X, xi), sn[2])):
        assert a.shape == b.shape == (N + 1, n, width)
        for k in range(N + 1):
            assert np.abs(a[k] - b[k]).max() <= 1e-12 * np.abs(b[k]).max()
    for inc in (None, xi):
        a = pmp.final_state(model, params, X, inc)
        b = pmp.sweep(model, params, X, y, increments=inc, device="cpu")[2][-1]
        assert np.abs(a - b).max() <= 1e-12 * np.abs(b).max()


def test_compiled_rk_releases_and_reuses_the_workspace(monkeypatch):
    # the stored stages live in the model's workspace from the forward to the backward sweep:
    # released afterwards, reused (same arrays) by the next call, reallocated when the data size
    # changes — and results handed back are never views of it (a later call leaves them intact).
    rng = np.random.default_rng(2)
    model = _model("inner", "rk4", "tanh")
    params = model.init(seed=1)
    X1, y1 = rng.standard_normal((30, 2)), np.arange(30) % 3
    X2, y2 = rng.standard_normal((50, 2)), np.arange(50) % 3
    st1, co1 = pmp.costate(model, params, X1, y1)
    J1, g1 = pmp.value_and_grad(model, params, X1, y1)
    keep = (st1.copy(), co1.copy(), {k: v.copy() for k, v in g1.items()})
    ws = workspace._WORKSPACES[model][None]
    assert not ws.busy
    Y = ws.arrays["crkSg"]
    pmp.value_and_grad(model, params, X1, y1)
    assert ws.arrays["crkSg"] is Y and not ws.busy
    J2, g2 = pmp.value_and_grad(model, params, X2, y2)
    assert ws.arrays["crkSg"].shape[-1] >= 50
    Ja, ga = _autograd(model, params, X2, y2)
    assert abs(J2 - Ja) <= 1e-12 * abs(Ja) and pmp.rel_error(g2, ga) <= 1e-12
    assert np.array_equal(st1, keep[0]) and np.array_equal(co1, keep[1])
    assert all(np.array_equal(g1[k], keep[2][k]) for k in g1)


@pytest.mark.parametrize("method", ["heun", "rk4", "kutta3"])
def test_weighted_costate_coefficients_are_the_transposed_tableau(kutta3, method):
    # Ĉ_ij = −b_i C_ij / b_j with C_ij = â_ij − b_j = −b_j a_ji / b_i: analytically Ĉ = Aᵀ
    # (strictly upper for an explicit method); round-off of the two divisions only.
    A, b, C, Ch = forms.rk_coefficients(method)
    assert np.abs(Ch - A.T).max() <= 4e-16 * np.abs(A).max()
    assert np.abs(C + b[None, :] * A.T / b[:, None]).max() <= 4e-16 * np.abs(A).max()
    assert not Ch.flags.writeable and forms.rk_coefficients(method)[3] is Ch          # cached
