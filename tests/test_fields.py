"""Fields and activations as objects: costate gradients vs torch autograd for every field ×
activation × exact integrator, CasADi forms vs the numpy forward, and the torch-module field."""
import weakref

import casadi as ca
import numpy as np
import pytest
import torch

from ocdl import pmp
from ocdl.errors import InputError
from ocdl.models import ResNetODE, exact_integrators
from ocdl.models.activations import ACTIVATIONS, get_activation
from ocdl.models.fields import FIELDS, get_field

# the fully connected fields (the conv fields take shapes from the data: tests/test_conv.py)
FIELDS = {name: cls for name, cls in FIELDS.items() if not getattr(cls, "conv", False)}

ACTS = list(ACTIVATIONS)
COMBOS = [(f, a, m) for f in FIELDS for a in ACTS for m in exact_integrators(f)]


def _data(n=30, d_in=2, C=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d_in)), np.arange(n) % C


# ---------------------------------------------------------------- activations

@pytest.mark.parametrize("name", ACTS)
def test_activation_value_and_derivative(name):
    # σ against torch's own functions, σ' (read off σ(z)) against torch autograd; z avoids 0 for
    # relu's kink and covers large |z| (softplus overflow, tanh saturation). σ' ∈ [0, 1] read off
    # σ carries an absolute round-off of a few ε (tanh: 1 − σ² where σ² rounds near 1), hence
    # atol = 1e-15 on top of rtol = 1e-15.
    act = get_activation(name)
    z = np.concatenate([np.linspace(-30, 30, 601) + 1e-3, [-700.0, 700.0]])
    zt = torch.tensor(z, requires_grad=True)
    ref = {"tanh": torch.tanh, "softplus": lambda u: torch.nn.functional.softplus(u, threshold=1e9),
           "relu": torch.relu}[name](zt)
    np.testing.assert_allclose(act(z), ref.detach().numpy(), rtol=1e-15, atol=0)
    ref.sum().backward()
    dref = zt.grad.numpy()
    np.testing.assert_allclose(act.deriv(z), dref, rtol=1e-15, atol=1e-15)
    s, v = act(z), np.random.default_rng(0).standard_normal(z.size)
    np.testing.assert_allclose(act.mul_deriv(s, v, np.empty_like(v), np.empty_like(v)), dref * v,
                               rtol=1e-15, atol=1e-15 * np.abs(v).max())
    # the torch form and the numpy form agree, and so does autograd through the torch form
    zt2 = torch.tensor(z, requires_grad=True)
    act(zt2).sum().backward()
    np.testing.assert_allclose(zt2.grad.numpy(), dref, rtol=1e-15, atol=1e-15)


def test_relu_derivative_at_zero_is_zero():
    relu = get_activation("relu")
    assert relu.deriv(np.array([0.0, -0.0]))[0] == 0.0
    zt = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    relu(zt).sum().backward()
    assert zt.grad.item() == 0.0                       # the same convention as torch autograd
    f = ca.Function("r", [x := ca.SX.sym("x")], [ca.jacobian(relu.casadi(x), x)])
    assert float(f(0.0)) == 0.0


def test_unknown_activation_is_input_error():
    with pytest.raises(InputError, match="valid: tanh, softplus, relu"):
        ResNetODE(activation="sigmoid")
    with pytest.raises(InputError, match="unknown activation"):
        get_field("outer", "swish")


# ---------------------------------------------------------------- costate vs autograd

@pytest.mark.parametrize("field,act,method", COMBOS)
def test_costate_equals_autograd(field, act, method):
    # float64, the gradient of the same discrete cost evaluated in a different order of
    # operations: agreement to round-off (≲1e-15 observed); bar 1e-13 relative per block.
    X, y = _data()
    model = ResNetODE(field=field, integrator=method, activation=act, layers=6, T=2.0, width=4,
                      alpha=1e-2, beta=0.2)
    params = model.init(seed=3)
    J, g = pmp.value_and_grad(model, params, X, y)
    Ja, ga = pmp.autograd_value_and_grad(model, params, X, y)
    assert abs(J - Ja) <= 1e-13 * abs(Ja)
    assert abs(pmp.cost(model, params, X, y) - Ja) <= 1e-13 * abs(Ja)
    for k in ga:
        assert np.linalg.norm(g[k] - ga[k]) <= 1e-13 * np.linalg.norm(ga[k]), k
    # the activation really changes the problem
    if act != "tanh":
        other = ResNetODE(**{**model.config(), "activation": "tanh"})
        assert abs(pmp.cost(other, params, X, y) - J) > 1e-6


@pytest.mark.parametrize("field", list(FIELDS))
def test_reference_vjps_match_autograd(field):
    # the numpy (∂f/∂x)ᵀp and (∂f/∂θ)ᵀp of each field object (used by the continuous adjoint)
    rng = np.random.default_rng(1)
    for act in ACTS:
        F = get_field(field, act)
        d = 4
        m = F.param_width(d)
        x, p = rng.standard_normal((7, d)), rng.standard_normal((7, d))
        K, b = rng.standard_normal((m, m)), rng.standard_normal(m)
        xt, Kt, bt = (torch.tensor(v, requires_grad=True) for v in (x, K, b))
        (F.f(xt, Kt, bt) * torch.tensor(p)).sum().backward()
        np.testing.assert_allclose(F.vjp_x(x, K, b, p), xt.grad.numpy(), rtol=1e-13, atol=1e-15)
        gK, gb = F.vjp_theta(x, K, b, p)
        np.testing.assert_allclose(gK, Kt.grad.numpy(), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(gb, bt.grad.numpy(), rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------- CasADi forms

@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize("act", ACTS)
def test_casadi_form_equals_numpy_forward(field, act):
    rng = np.random.default_rng(2)
    F = get_field(field, act)
    d = 6
    m = F.param_width(d)
    x = rng.standard_normal((5, d))
    x[0] = 0.0                                  # the zero-padded lift's exact zeros
    K, b = rng.standard_normal((m, m)), rng.standard_normal(m)
    xs = ca.SX.sym("x", d)
    fun = ca.Function("f", [xs], [F.casadi(xs, ca.DM(K), ca.DM(b))])
    got = np.stack([np.asarray(fun(row)).ravel() for row in x])
    np.testing.assert_allclose(got, F.f(x, K, b), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize("act", ["softplus", "relu"])
def test_casadi_problem_gradient_equals_costate(field, act):
    # the CasADi reduced problem built from the activation objects: cost and gradient against the
    # costate sweep (independent algebra: CasADi's own AD through its own graph)
    from ocdl.solvers.casadi_kkt import ReducedProblem, pack, spec_from_model
    X, y = _data(n=12)
    model = ResNetODE(field=field, activation=act, integrator="rk4", layers=3, T=1.0, width=4)
    params = model.init(seed=5)
    spec = spec_from_model(model)
    prob = ReducedProblem(spec, model.lift(X), y, hessian=False)
    J, g = prob.evaluate(pack(spec, params))
    Jp, gp = pmp.value_and_grad(model, params, X, y)
    assert abs(J - Jp) <= 1e-13 * abs(Jp)
    assert np.linalg.norm(g - model.flatten(gp)) <= 1e-13 * np.linalg.norm(g)


# ---------------------------------------------------------------- fused forms

def test_field_without_fused_form_is_input_error():
    class Custom(FIELDS["outer"]):
        name, form = "custom", None
    model = ResNetODE(field="outer", layers=2)
    model.F = Custom()
    X, y = _data(n=4)
    with pytest.raises(InputError, match="no fused form"):
        pmp.value_and_grad(model, model.init(), X, y)


# ---------------------------------------------------------------- torch-module field

def _mlp_layers(N, d, seed, act=torch.nn.Tanh):
    torch.manual_seed(seed)
    return torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(d, 8), act(), torch.nn.Linear(8, d))
                                for _ in range(N)]).double()


def _head_loss(d, y):
    class Loss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(d, 1).double()

        def forward(self, x):
            return torch.nn.functional.binary_cross_entropy_with_logits(
                self.head(x)[:, 0], torch.tensor(y, dtype=torch.float64))
    return Loss()


def _whole_tape(layers, loss, x0, h, increments=None, method="euler"):
    x = x0
    for k, f in enumerate(layers):
        if method == "euler":
            x = x + h * f(x)
        else:                                   # rk4, written out
            k1 = f(x)
            k2 = f(x + 0.5 * h * k1)
            k3 = f(x + 0.5 * h * k2)
            k4 = f(x + h * k3)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if increments is not None:
            x = x + increments[k]
    J = loss(x)
    J.backward()
    return float(J.detach())


@pytest.mark.parametrize("method,noise", [("euler", False), ("euler", True), ("rk4", False)])
def test_module_field_gradient_equals_whole_network_autograd(method, noise):
    # float64; same cost, costate (layer-by-layer vjp) vs one whole-network tape: round-off only
    N, n, d, h = 10, 40, 3, 0.3
    X, y = _data(n=n, d_in=d)
    layers, loss = _mlp_layers(N, d, seed=1), _head_loss(d, y)
    x0 = torch.tensor(X)
    xi = 0.1 * torch.randn(N, n, d, dtype=torch.float64) if noise else None
    J, grads, lgrads = pmp.module_value_and_grad(layers, x0, loss, h, integrator=method, increments=xi)
    Ja = _whole_tape(layers, loss, x0, h, xi, method)
    assert abs(J - Ja) <= 1e-13 * abs(Ja)
    ref = np.concatenate([v.grad.numpy().ravel() for f in layers for v in f.parameters()])
    got = np.concatenate([g.numpy().ravel() for gd in grads for g in gd.values()])
    assert np.linalg.norm(got - ref) <= 1e-12 * np.linalg.norm(ref)
    for name, v in loss.named_parameters():
        assert torch.linalg.norm(lgrads[name] - v.grad) <= 1e-12 * torch.linalg.norm(v.grad)


def test_module_field_stores_states_only():
    # Each layer passes its input through an identity autograd.Function whose context holds a
    # marker object; a context lives exactly as long as the graph holding it. A whole-network
    # tape keeps N of them alive at the end of the forward; the costate sweep never holds more
    # than one layer's graph (and the forward records none: it runs without a tape).
    N, n, d, h = 12, 30, 3, 0.2
    X, y = _data(n=n, d_in=d)
    alive, peak = [0], [0]

    class Marker:
        def __init__(self):
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
            weakref.finalize(self, lambda: alive.__setitem__(0, alive[0] - 1))

    class Tap(torch.autograd.Function):
        @staticmethod
        def forward(x):
            return x.clone()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.marker = Marker()

        @staticmethod
        def backward(ctx, g):
            return g

    class Layer(torch.nn.Module):
        def __init__(self, k):
            super().__init__()
            torch.manual_seed(k)
            self.lin = torch.nn.Linear(d, d).double()

        def forward(self, x):
            return torch.tanh(self.lin(Tap.apply(x)))

    layers = torch.nn.ModuleList([Layer(k) for k in range(N)])
    loss = _head_loss(d, y)
    x0 = torch.tensor(X)

    def run(fn):
        alive[0] = peak[0] = 0
        fn()
        return peak[0]

    full = run(lambda: pmp.module_value_and_grad(layers, x0, loss, h))
    tape = run(lambda: _whole_tape(layers, loss, x0, h))
    assert full == 1                             # one layer's graph at a time
    assert tape == N - 1        # the whole tape holds every layer (but the first: x0 needs no grad)
    _, _, _, states = pmp.module_value_and_grad(layers, x0, loss, h, states=True)
    assert states.shape == (N + 1, n, d)
    assert not states.requires_grad and states.grad_fn is None


def test_module_field_reproduces_outer_field():
    # a module implementing f(x) = K tanh(x) + b gives the fused costate gradient of ResNetODE
    X, y = _data(n=25)
    model = ResNetODE(field="outer", integrator="heun", layers=5, T=2.0, alpha=0.0, beta=0.0,
                      alpha_head=0.0)
    params = model.init(seed=4)

    class Outer(torch.nn.Module):
        def __init__(self, K, b):
            super().__init__()
            self.K, self.b = torch.nn.Parameter(torch.tensor(K)), torch.nn.Parameter(torch.tensor(b))

        def forward(self, x):
            return torch.tanh(x) @ self.K.T + self.b

    layers = [Outer(params["K"][k], params["b"][k]) for k in range(model.layers)]
    W, mu = torch.tensor(params["W"]), torch.tensor(params["mu"])

    def loss(x):
        s = (x @ W.T + mu)[:, 0]
        return torch.nn.functional.softplus(-(2.0 * torch.tensor(y) - 1.0) * s).mean()

    J, grads, _ = pmp.module_value_and_grad(layers, torch.tensor(X), loss, model.h, integrator="heun")
    Jp, gp = pmp.value_and_grad(model, params, X, y)
    assert abs(J - Jp) <= 1e-13 * abs(Jp)
    gK = np.stack([g["K"].numpy() for g in grads])
    assert np.linalg.norm(gK - gp["K"]) <= 1e-13 * np.linalg.norm(gp["K"])


def test_module_field_bad_input():
    layers = _mlp_layers(2, 2, seed=0)
    with pytest.raises(InputError, match="explicit Runge"):
        pmp.module_value_and_grad(layers, torch.zeros(3, 2, dtype=torch.float64), lambda x: x.sum(), 0.1,
                                  integrator="verlet")
    with pytest.raises(InputError, match="increments"):
        pmp.module_value_and_grad(layers, torch.zeros(3, 2, dtype=torch.float64), lambda x: x.sum(), 0.1,
                                  increments=torch.zeros(2, 3, 3))


# ---------------------------------------------------------------- CLI

def test_cli_activation_flag(ocdl_cli, tmp_path):
    r = ocdl_cli("train", "--data", "spirals", "--activation", "swish", "--json", tmp_path / "o.json")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "valid: tanh, softplus, relu" in lines[0]
    assert not (tmp_path / "o.json").exists()
    r = ocdl_cli("train", "--data", "spirals", "--points", "20", "--activation", "softplus", "--solver",
                 "pmp-adam", "--iterations", "3", "--layers", "4", "--quiet", "--save", tmp_path / "m.npz")
    assert r.returncode == 0, r.stderr
    from ocdl.data import load_model
    model, _, _ = load_model(tmp_path / "m.npz")
    assert model.activation == "softplus" and model.F.act.name == "softplus"


def test_module_objective_flat_gradient_matches_finite_differences():
    # the flat objective for a vector optimiser: its gradient against central differences of
    # its own value (O(ε²) truncation + O(1e-16/ε) round-off ≈ 1e-10 at ε = 1e-5)
    X, y = _data(n=20, d_in=2)
    layers, loss = _mlp_layers(4, 2, seed=3), _head_loss(2, y)
    objective, theta0 = pmp.module_objective(layers, torch.tensor(X), loss, 0.25)
    assert theta0.size == sum(v.numel() for m in list(layers) + [loss] for v in m.parameters())
    J, g = objective(theta0)
    v = np.random.default_rng(0).standard_normal(theta0.size)
    eps = 1e-5
    fd = (objective(theta0 + eps * v)[0] - objective(theta0 - eps * v)[0]) / (2 * eps)
    assert abs(fd - g @ v) <= 1e-8 * max(abs(g @ v), 1e-3)
    assert objective(theta0)[0] == J              # the modules hold theta0 again


def test_module_field_trains_with_the_optimisation_core():
    # the flat objective runs under ocdl.optim.minimize (the one optimisation core): Adam on the
    # costate gradient of a torch-module field lowers the loss substantially
    from ocdl.optim import Adam, minimize
    X, y = _data(n=40, d_in=2)
    layers, loss = _mlp_layers(5, 2, seed=4), _head_loss(2, y)
    objective, theta0 = pmp.module_objective(layers, torch.tensor(X), loss, 0.4)
    res = minimize(objective, theta0, Adam(lr=0.05, schedule="constant"), iterations=60, name="module")
    assert res.nit == 60 and res.history[0]["loss"] > 0
    assert res.fun < 0.7 * res.history[0]["loss"]
