"""The compiled Euler sweeps (:mod:`ocdl.pmp.kernels`, numba) against independent references.

Checked here against torch autograd (every activation, every Euler form, additive increments),
the torch sweeps of :mod:`ocdl.pmp.torch_sweeps` (trajectories; a separate implementation) and
the kernels' own tanh against numpy's.
"""
import numpy as np
import pytest
import torch
from conftest import assert_costate_equals_autograd, autograd_reference

from ocdl import pmp
from ocdl.models import ResNetODE
from ocdl.models import fastmath
from ocdl.models.activations import ACTIVATIONS
from ocdl.pmp import dispatch, kernels


def test_compiled_tanh_matches_numpy_to_4_ulp():
    # the kernels' branch-free tanh (expm1 by Cody–Waite reduction + a degree-9 polynomial) against
    # numpy's on a dense grid, tiny and large magnitudes and the special values; measured max
    # 4.4e-16 relative, bar 6e-16 (≈ 5 ulp near 1, where both are rounded results).
    grid = np.concatenate([np.linspace(-30.0, 30.0, 600001), np.logspace(-300, 1.5, 20000),
                           -np.logspace(-300, 1.5, 20000), [0.0, -0.0, 5e-324, 19.99, 20.0, 20.01, 710.0, -1e308]])
    z = grid[None, :]
    apply = kernels.apply(ACTIVATIONS["tanh"])                # the compiled sweeps' σ
    got = apply(z, np.empty_like(z))[0]
    ref = np.tanh(grid)
    assert np.all(np.abs(got - ref) <= 6e-16 * np.abs(ref))
    assert np.array_equal(np.signbit(got), np.signbit(ref))             # tanh(−0) = −0
    special = np.array([[np.nan, np.inf, -np.inf]])
    out = apply(special, np.empty_like(special))[0]
    assert np.isnan(out[0]) and out[1] == 1.0 and out[2] == -1.0        # NaN propagates


def test_expm1_polynomial_within_5e_17_of_mpmath():
    # the coefficients of the tanh's expm1 kernel, r + r² p(r) on |r| ≤ ln2/2, checked in 40-digit
    # arithmetic (each coefficient taken as the double it is) on 801 points including the ends:
    # fit error 4.1e-17 relative, bar 5e-17 (what the tanh's 4-ulp bound leaves room for).
    import mpmath as mp
    mp.mp.dps = 40
    a = mp.log(2) / 2
    worst = 0
    for k in range(801):
        r = -a + 2 * a * k / 800
        if r == 0:
            continue
        p = mp.mpf(0)
        for c in fastmath.EXPM1_P:
            p = p * r + mp.mpf(c)
        worst = max(worst, abs((r + r * r * p) / mp.expm1(r) - 1))
    assert worst <= 5e-17


_autograd = autograd_reference


@pytest.mark.parametrize("act", ["tanh", "relu", "softplus"])
@pytest.mark.parametrize("field", ["outer", "inner", "hamiltonian"])
@pytest.mark.parametrize("width", [4, 20])
def test_euler_gradient_equals_autograd(act, field, width):
    # float64, same discrete network, other order of operations: round-off (measured ~1e-16
    # against autograd); bar 1e-12 relative, with and without additive increments ξ_k.
    rng = np.random.default_rng(3)
    n, N = 37, 9
    X, y = rng.standard_normal((n, 2)), np.arange(n) % 3
    model = ResNetODE(field=field, integrator="euler", layers=N, T=2.0, width=width, n_classes=3,
                      alpha=1e-2, beta=0.2, alpha_head=5e-3, activation=act)
    params = model.init(seed=2)
    assert dispatch.backend(model, params, X) == "compiled"                  # the path under test
    xi = 0.2 * rng.standard_normal((N, n, width))
    assert_costate_equals_autograd(model, params, X, y, (None, xi))


@pytest.mark.parametrize("act", ["tanh", "softplus"])
def test_sample_blocks_with_padding_equal_autograd(monkeypatch, act):
    # the outer kernels run the samples in blocks of nb columns (kernels.block_width), the last
    # block padded with zero states and zero costates; with 64 floats per block, width 4 and
    # 37 samples that is blocks of 16, 16 and 5 (+ 11 padding). Gradient, cost, states and
    # costates against torch autograd and the torch sweep; bar 1e-12 relative as above.
    monkeypatch.setattr(kernels, "BLOCK_FLOATS", 64)
    assert kernels.block_width(4, 37) == 16
    rng = np.random.default_rng(5)
    n, N = 37, 7
    X, y = rng.standard_normal((n, 2)), np.arange(n) % 2
    model = ResNetODE(field="outer", integrator="euler", layers=N, T=1.5, width=4, n_classes=2,
                      alpha=1e-2, beta=0.1, activation=act)
    params = model.init(seed=4)
    assert dispatch.backend(model, params, X) == "compiled"                  # the path under test
    xi = 0.1 * rng.standard_normal((N, n, 4))
    for inc in (None, xi):
        J, g = pmp.value_and_grad(model, params, X, y, increments=inc)
        Ja, ga = _autograd(model, params, X, y, inc)
        assert abs(J - Ja) <= 1e-12 * abs(Ja) and pmp.rel_error(g, ga) <= 1e-12
        assert abs(pmp.cost(model, params, X, y, increments=inc) - Ja) <= 1e-12 * abs(Ja)
        states, costates = pmp.costate(model, params, X, y, increments=inc)
        ref_states, ref_costates = pmp.costate(model, params, X, y, increments=inc, device="cpu")
        assert np.abs(states - ref_states).max() <= 1e-12 * np.abs(ref_states).max()
        assert np.abs(costates - ref_costates).max() <= 1e-12 * np.abs(ref_costates).max()


@pytest.mark.parametrize("field", ["outer", "inner", "hamiltonian"])
def test_compiled_and_torch_trajectories_agree(field):
    # states and costates (trajectories=True) of the compiled and the torch sweeps; both are
    # checked against autograd costates in test_pmp_perf.py. Round-off: bar 1e-12 relative per layer.
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((41, 2)), np.arange(41) % 2
    model = ResNetODE(field=field, integrator="euler", layers=11, T=3.0, width=6, alpha=1e-2)
    params = model.init(seed=7)
    out = [pmp.costate(model, params, X, y, device=dv) for dv in (None, "cpu")]
    for a, b in zip(*out):
        assert a.shape == b.shape
        for k in range(len(b)):
            assert np.abs(a[k] - b[k]).max() <= 1e-12 * np.abs(b[k]).max()


@pytest.mark.parametrize("layout", ["rows", "feature-major"])
def test_compiled_logistic_terminal_equals_torch_on_extreme_logits(layout):
    # the compiled two-class terminal (loss, ∇_s, p_N = ∇_s wᵀ) against torch's logaddexp and
    # autograd through the head, logits from ~1e-3 to ±800, x_N given as rows (n, d) or as the
    # transposed view of a feature-major (d, n) array; bar 1e-14 relative (a few roundings).
    rng = np.random.default_rng(11)
    d, n = 6, 301
    X = rng.standard_normal((n, d)) * np.logspace(-3, 2.5, n)[:, None]
    XN = X if layout == "rows" else np.ascontiguousarray(X.T).T
    w, mu, y = rng.standard_normal(d), 0.3, rng.integers(0, 2, n)
    lam, g = (np.empty((n, d)) if layout == "rows" else np.empty((d, n)).T), np.empty(n)
    val = kernels.logistic_terminal(XN, w, mu, y, lam, g)
    st = (torch.tensor(X) @ torch.tensor(w) + mu).requires_grad_(True)
    z = -(2.0 * torch.tensor(y, dtype=torch.float64) - 1.0) * st
    ref = torch.logaddexp(torch.zeros_like(z), z).mean()
    ref.backward()
    gref = st.grad.numpy()
    assert abs(val - float(ref.detach())) <= 1e-14 * abs(float(ref.detach()))
    assert np.abs(g - gref).max() <= 1e-14 * np.abs(gref).max()
    assert np.abs(lam - np.outer(gref, w)).max() <= 1e-14 * np.abs(lam).max()


@pytest.mark.parametrize("integrator", ["euler", "rk4"])
@pytest.mark.parametrize("field", ["outer", "inner", "hamiltonian"])
def test_returned_gradients_do_not_share_the_workspace(field, integrator):
    # the compiled sweeps reuse their workspace from call to call; the gradients they hand back
    # must be fresh arrays even where a slice of the workspace is contiguous (one layer, width 1:
    # a size-1 slice), so a later call leaves an earlier result unchanged, bit for bit
    model = ResNetODE(field=field, integrator=integrator, layers=1, T=1.0, width=2 if field == "hamiltonian" else 1,
                      n_classes=2, d_in=1)
    params = model.init(seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((5, 1)), np.arange(5) % 2
    _, g = pmp.value_and_grad(model, params, X, y)
    snapshot = {k: v.copy() for k, v in g.items()}
    pmp.value_and_grad(model, {k: 1.5 * v + 0.3 for k, v in params.items()}, X, y)
    assert all(np.array_equal(g[k], snapshot[k]) for k in g)
