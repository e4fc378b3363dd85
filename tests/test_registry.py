"""Registries that solvers obey: a toy activation and a toy field registered here, in the test
(nothing else edited), are computed with by every solver that declares support for them and
refused in one line by every other (InputError; exit 2 at the command line).

The reference is independent of ocdl's model code: the network written out in torch with
``torch.atan`` (cost and autograd gradient)."""
import numpy as np
import pytest
import torch

from ocdl import pmp
from ocdl.errors import InputError
from ocdl.models import activations, fields
from ocdl.models.fields import InnerField
from ocdl.solvers import SOLVERS, make_model, train
from ocdl.solvers.support import declaration

from conftest import run_ocdl_inprocess


class Arctan(activations.Activation):
    """σ = arctan z, σ' = 1/(1 + z²) = cos² σ (z = tan σ on the range (−π/2, π/2))."""
    name = "toy-arctan"

    def value(self, z, xp):
        return xp.arctan(z)

    def deriv_from_value(self, s, xp):
        return xp.cos(s) ** 2

    def casadi(self, z):
        import casadi as ca
        return ca.atan(z)

    @staticmethod
    def antiderivative(z):
        return z * np.arctan(z) - 0.5 * np.log1p(z * z)


class ArctanNoCasadi(Arctan):
    """The same σ without a CasADi form: the CasADi solvers (ipopt) must refuse it."""
    name = "toy-arctan-nocasadi"
    casadi = activations.Activation.casadi


@pytest.fixture
def arctan():
    activations.register(Arctan)
    activations.register(ArctanNoCasadi)
    yield activations.ACTIVATIONS["toy-arctan"]
    activations.unregister("toy-arctan")
    activations.unregister("toy-arctan-nocasadi")


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def _reference_cost(model, params, X, y):
    """J of the outer/euler network with σ = atan, written out in torch (float64); and its gradient."""
    tp = {k: torch.tensor(np.asarray(v, dtype=float), requires_grad=True) for k, v in params.items()}
    x = torch.cat([torch.tensor(X), torch.zeros(len(X), model.d - X.shape[1], dtype=torch.float64)], 1)
    h = model.T / model.layers
    for k in range(model.layers):
        x = x + h * (torch.atan(x) @ tp["K"][k].T + tp["b"][k])
    s = (x @ tp["W"].T + tp["mu"])[:, 0]
    sg = 2.0 * torch.tensor(y, dtype=torch.float64) - 1.0
    data = torch.nn.functional.softplus(-sg * s).mean()
    reg = (h * model.alpha / 2 * (tp["K"].pow(2).sum() + tp["b"].pow(2).sum())
           + model.alpha_head / 2 * tp["W"].pow(2).sum())
    J = data + reg
    J.backward()
    return float(J.detach()), {k: v.grad.numpy() for k, v in tp.items()}


def test_toy_activation_forms_agree(arctan):
    """The derived numpy/torch kernels and the closure derivatives match numpy's arctan and its
    derivatives 1/(1+z²), −2z/(1+z²)², (6z² − 2)/(1+z²)³ (to 1e-13)."""
    z = np.linspace(-4, 4, 41)
    assert np.allclose(arctan(z), np.arctan(z), rtol=0, atol=1e-15)
    assert np.allclose(arctan.deriv(z), 1 / (1 + z * z), rtol=0, atol=1e-13)
    s, d1, d2, d3 = arctan.derivatives(z)
    q = 1 + z * z
    assert np.allclose(d1, 1 / q, atol=1e-13) and np.allclose(d2, -2 * z / q ** 2, atol=1e-13)
    assert np.allclose(d3, (6 * z * z - 2) / q ** 3, atol=1e-13)
    out = np.empty_like(z)
    arctan.mul_deriv(np.arctan(z), z, out, np.empty_like(z))
    assert np.allclose(out, z / q, atol=1e-13)


def test_costate_sweep_with_toy_activation_matches_autograd(arctan):
    """The exact costate gradient (numpy sweeps, the activation's derived forms) equals the written-out
    torch network's autograd gradient to 1e-12 relative (round-off over 6 layers)."""
    X, y = _data()
    model = make_model(X, y, field="outer", layers=6, T=1.5, activation="toy-arctan", alpha=1e-2)
    params = model.init(seed=1)
    J, grads = pmp.value_and_grad(model, params, X, y)[:2]
    Jr, gr = _reference_cost(model, params, X, y)
    assert abs(J - Jr) <= 1e-13 * abs(Jr)
    for k in gr:
        assert np.max(np.abs(grads[k] - gr[k])) <= 1e-12 * max(np.max(np.abs(gr[k])), 1e-300), k


def test_every_declared_solver_computes_with_toy_activation(arctan):
    """Every solver that declares support for the toy activation (outer field, euler) trains with
    it: its reported cost at the returned parameters is the written-out arctan network's (1e-10
    relative); every other solver refuses with one InputError line naming the activation."""
    X, y = _data()
    ran, refused = [], []
    for name, fn in SOLVERS.items():
        decl = declaration(fn)
        if "toy-arctan" not in decl.activation_names():
            with pytest.raises(InputError, match="does not support activation 'toy-arctan'") as err:
                train(X, y, solver=name, activation="toy-arctan", layers=4, T=1.0, iterations=2)
            assert "\n" not in str(err.value)
            refused.append(name)
            continue
        its = {"ipopt": 3, "newton": 2, "msa": 2}.get(name, 3)
        opts = {"warm_iterations": 2} if name == "newton" else {}
        res = train(X, y, solver=name, activation="toy-arctan", layers=4, T=1.0, iterations=its, normalize="none",
                    alpha=1e-2, seed=3, **opts)
        Jr, _ = _reference_cost(res.model, res.x, X, y)
        assert abs(res.fun - Jr) <= 1e-10 * abs(Jr), name
        ran.append(name)
    assert {"adam", "lbfgs", "pmp-adam", "pmp-gd", "pmp-lbfgs", "newton", "ipopt", "msa"} <= set(ran)
    # without a CasADi form the CasADi solver refuses (one line, before any work)
    with pytest.raises(InputError, match="solver 'ipopt' does not support activation 'toy-arctan-nocasadi' "
                                         r"\(activations with a CasADi form\)") as err:
        train(X, y, solver="ipopt", activation="toy-arctan-nocasadi", layers=4, iterations=2)
    assert "\n" not in str(err.value)


def test_cli_refuses_unsupported_activation_in_one_line(arctan):
    """Exit 2, one stderr line naming the solver and the activation; a declared solver runs."""
    rc, out, err = run_ocdl_inprocess("train", "--data", "spirals", "--points", "20", "--solver", "ipopt",
                                      "--activation", "toy-arctan-nocasadi", "--quiet")
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "does not support activation 'toy-arctan-nocasadi'" in lines[0] and "ipopt" in lines[0]
    rc, out, err = run_ocdl_inprocess("train", "--data", "spirals", "--points", "20", "--solver", "pmp-adam",
                                      "--activation", "toy-arctan", "--iterations", "3", "--quiet")
    assert rc == 0, err


class Antisymmetric(InnerField):
    """f = σ((K − Kᵀ) x + b) (Haber & Ruthotto's antisymmetric layer): no fused form, so only the
    solvers that need just ``f`` (autograd) or its CasADi form declare support."""
    name = "toy-antisymmetric"
    form = None

    def f(self, x, K, b):
        A = K - (K.T if isinstance(K, np.ndarray) else K.transpose(0, 1))
        return self.act(x @ A.T + b)

    def casadi(self, x, K, b):
        import casadi as ca
        return self.act.casadi(ca.mtimes(K - K.T, x) + b)


@pytest.fixture
def antisymmetric():
    fields.register(Antisymmetric)
    yield Antisymmetric
    fields.unregister("toy-antisymmetric")


def test_toy_field_declared_solvers_compute_others_refuse(antisymmetric):
    """A registered field without a fused form: adam trains it (cost at the result equals the
    written-out antisymmetric network's, 1e-12 relative); the costate solvers refuse it."""
    X, y = _data()
    res = train(X, y, solver="adam", field="toy-antisymmetric", layers=3, T=1.0, iterations=3, alpha=1e-2,
                normalize="none")
    p = {k: torch.tensor(v) for k, v in res.x.items()}
    x = torch.cat([torch.tensor(X), torch.zeros(len(X), res.model.d - 2, dtype=torch.float64)], 1)
    h = 1.0 / 3
    for k in range(3):
        x = x + h * torch.tanh(x @ (p["K"][k] - p["K"][k].T).T + p["b"][k])
    s = (x @ p["W"].T + p["mu"])[:, 0]
    data = torch.nn.functional.softplus(-(2.0 * torch.tensor(y) - 1.0) * s).mean()
    Jr = float(data + h * 1e-2 / 2 * (p["K"].pow(2).sum() + p["b"].pow(2).sum()) + 1e-2 / 2 * p["W"].pow(2).sum())
    assert abs(res.fun - Jr) <= 1e-12 * Jr
    for name in ("pmp-adam", "newton", "msa"):
        with pytest.raises(InputError, match=f"solver '{name}' does not support field 'toy-antisymmetric'"):
            train(X, y, solver=name, field="toy-antisymmetric", layers=3, iterations=2)
