"""ResNetODE: shapes, lifting, numpy/torch agreement, flatten round trip, validation, fields."""
import numpy as np
import pytest
import torch

from ocdl.errors import InputError
from ocdl.models import ResNetODE, to_torch


def test_shapes_and_flatten_roundtrip():
    m = ResNetODE(field="hamiltonian", d_in=2, n_classes=3, layers=7)
    assert m.d == 4 and m.m == 2 and m.h == pytest.approx(5.0 / 7)
    p = m.init(seed=0)
    assert p["K"].shape == (7, 2, 2) and p["b"].shape == (7, 2)
    assert p["W"].shape == (3, 4) and p["mu"].shape == (3,)
    v = m.flatten(p)
    assert v.size == m.n_params()
    q = m.unflatten(v)
    for k in p:
        np.testing.assert_array_equal(p[k], q[k])


def test_lift_zero_padding():
    X = np.arange(6.0).reshape(3, 2)
    m = ResNetODE(field="outer", width=4)
    L = m.lift(X)
    np.testing.assert_array_equal(L[:, :2], X)
    np.testing.assert_array_equal(L[:, 2:], 0.0)
    mh = ResNetODE(field="hamiltonian", width=6)
    Lh = mh.lift(X)
    np.testing.assert_array_equal(Lh[:, :2], X)     # q = (x, 0), p = 0
    np.testing.assert_array_equal(Lh[:, 2:], 0.0)


def test_euler_is_classic_resnet():
    # x_{k+1} = x_k + h σ(K_k x_k + b_k) written out by hand
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 2))
    m = ResNetODE(field="inner", layers=3, T=1.5)
    p = m.init(seed=4)
    x = X.copy()
    for k in range(3):
        x = x + 0.5 * np.tanh(x @ p["K"][k].T + p["b"][k])
    np.testing.assert_allclose(m.forward(p, X)[-1], x, rtol=0, atol=1e-14)


def test_rk4_converges_to_ode_solution():
    # one layer, constant θ: rk4 with N layers vs scipy DOP853 — error falls ~16x per halving
    from scipy.integrate import solve_ivp
    rng = np.random.default_rng(1)
    X = rng.standard_normal((5, 2))
    K = rng.standard_normal((2, 2))
    b = rng.standard_normal(2)
    ref = np.array([solve_ivp(lambda t, z: K @ np.tanh(z) + b, (0, 2.0), x0, method="DOP853",
                              rtol=1e-13, atol=1e-13).y[:, -1] for x0 in X])
    errs = []
    for N in (4, 8, 16):
        m = ResNetODE(field="outer", layers=N, T=2.0, integrator="rk4")
        p = {"K": np.repeat(K[None], N, 0), "b": np.repeat(b[None], N, 0), "W": np.ones((1, 2)), "mu": np.zeros(1)}
        errs.append(np.abs(m.forward(p, X)[-1] - ref).max())
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(rates > 3.6), (errs, rates)


@pytest.mark.parametrize("field,method", [("inner", "rk4"), ("outer", "heun"), ("hamiltonian", "verlet")])
def test_numpy_and_torch_forward_agree(field, method):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((8, 2))
    m = ResNetODE(field=field, integrator=method, layers=4)
    p = m.init(seed=1)
    a = m.forward(p, X)
    t = m.forward(to_torch(p), torch.tensor(X))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), a, rtol=0, atol=1e-13)


def test_verlet_is_time_reversible():
    # hamiltonian + verlet is reversible: the same step with h -> -h undoes it exactly
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 2))
    m = ResNetODE(field="hamiltonian", integrator="verlet", layers=1, T=0.3)
    p = m.init(seed=0)
    x1 = m.forward(p, X)[-1]
    back = ResNetODE(field="hamiltonian", integrator="verlet", layers=1, T=0.3)
    back.T = -0.3
    x0 = back.step(x1, p["K"][0], p["b"][0])
    np.testing.assert_allclose(x0, m.lift(X), atol=1e-14)


def test_predict_accuracy_and_multiclass():
    X = np.array([[1.0, 0.0], [-1.0, 0.0]])
    m = ResNetODE(layers=1, n_classes=2)
    p = {"K": np.zeros((1, 2, 2)), "b": np.zeros((1, 2)), "W": np.array([[1.0, 0.0]]), "mu": np.zeros(1)}
    np.testing.assert_array_equal(m.predict(p, X), [1, 0])
    assert m.accuracy(p, X, [1, 1]) == 0.5
    m3 = ResNetODE(layers=1, n_classes=3)
    p3 = m3.init(seed=0)
    assert set(m3.predict(p3, X)) <= {0, 1, 2}


@pytest.mark.parametrize("kwargs,needle", [
    (dict(field="outter"), "did you mean 'outer'"),
    (dict(integrator="verlet", field="outer"), "unknown integrator"),
    (dict(layers=0), "--layers"),
    (dict(T=-1.0), "--T"),
    (dict(T=float("nan")), "--T"),
    (dict(field="hamiltonian", width=3), "even --width"),
    (dict(width=1), "--width"),
    (dict(alpha=-1.0), "--alpha"),
])
def test_bad_model_arguments(kwargs, needle):
    with pytest.raises(InputError, match=needle):
        ResNetODE(**kwargs)


@pytest.mark.parametrize("field,method", [("outer", "rk4"), ("inner", "heun"), ("hamiltonian", "verlet"),
                                          ("hamiltonian", "yoshida4"), ("hamiltonian", "symplectic_euler"),
                                          ("hamiltonian", "symplectic_euler_b")])
def test_layer_map_equals_integrators_package(field, method):
    # the network's own stepping (needed for the costate sweep) against the integrators package
    import integrators
    rng = np.random.default_rng(4)
    X = rng.standard_normal((7, 2))
    m = ResNetODE(field=field, integrator=method, layers=3, T=1.2)
    p = m.init(seed=5)
    x = m.lift(X)
    for k in range(3):
        K, b = p["K"][k], p["b"][k]
        if method in integrators.EXPLICIT:
            x = integrators.solve(method, lambda t, z: m.F.f(z, K, b), x, 0.0, m.h, 1)[-1]
        else:
            q, pp = integrators.solve_partitioned(method, lambda t, q, pp: m.F.fq(pp, K, b),
                                                  lambda t, q, pp: m.F.fp(q, K, b), x[:, :2], x[:, 2:], 0.0, m.h, 1,
                                                  separable=True)
            x = np.concatenate([q[-1], pp[-1]], axis=1)
    np.testing.assert_allclose(m.forward(p, X)[-1], x, rtol=0, atol=1e-13)


def test_input_normalisation_is_part_of_the_model():
    # (X − shift)/scale before the lift: a model on scaled/shifted data with the matching map
    # computes exactly what the plain model computes on the original data
    rng = np.random.default_rng(6)
    X = rng.standard_normal((9, 2))
    m = ResNetODE(layers=3)
    p = m.init(seed=0)
    shift, scale = np.array([3.0, -2.0]), 7.0
    ms = ResNetODE(layers=3, input_shift=shift, input_scale=scale)
    np.testing.assert_allclose(ms.forward(p, X * scale + shift), m.forward(p, X), atol=1e-14)
    t = ms.forward(to_torch(p), torch.tensor(X * scale + shift))
    np.testing.assert_allclose(t.numpy(), m.forward(p, X), atol=1e-13)
    assert ResNetODE(**ms.config()).config() == ms.config()


@pytest.mark.parametrize("classes", [2, 4])
def test_numpy_loss_and_gradient_equal_torch_autograd_on_extreme_logits(classes):
    # mean_loss / mean_loss_grad / mean_loss_and_grad on numpy logits (one shared formula,
    # exp(−|z|) and max-shifted softmax) against torch's logaddexp / cross_entropy and autograd, on
    # logits from 1e-3 to ±800 (where a naive exp overflows). Bar 1e-14 relative: both are
    # float64 evaluations of the same functions, a few roundings apart.
    import torch

    from ocdl.models.losses import mean_loss, mean_loss_and_grad, mean_loss_grad
    rng = np.random.default_rng(7)
    n, C = 64, (1 if classes == 2 else classes)
    s = rng.standard_normal((n, C)) * np.logspace(-3, np.log10(800.0), n)[:, None]
    y = rng.integers(0, classes, n)
    st = torch.tensor(s, requires_grad=True)
    if C == 1:
        z = -(2.0 * torch.tensor(y, dtype=torch.float64) - 1.0) * st[:, 0]
        ref = torch.logaddexp(torch.zeros_like(z), z).mean()      # (softplus cuts off at 20)
    else:
        ref = torch.nn.functional.cross_entropy(st, torch.tensor(y))
    ref.backward()
    val, grad = mean_loss_and_grad(s, y)
    ref_val = float(ref.detach())
    assert abs(val - ref_val) <= 1e-14 * abs(ref_val)
    assert abs(mean_loss(s, y) - val) == 0.0
    gref = st.grad.numpy()
    assert np.abs(grad - gref).max() <= 1e-14 * np.abs(gref).max()
    assert np.array_equal(mean_loss_grad(s, y), grad)
