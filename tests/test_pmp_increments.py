"""Additive increments ξ_k in the forward (x_{k+1} = Ψ_h(x_k; θ_k) + ξ_k, Euler–Maruyama with
additive noise): the costate gradient against torch autograd through the same noisy forward."""
import numpy as np
import pytest
import torch

from ocdl import pmp
from ocdl.errors import InputError
from ocdl.models import ResNetODE, to_numpy, to_torch
from ocdl.models.losses import mean_loss
from ocdl.models.regularisers import regulariser


def _noisy_autograd(model, params, X, y, xi):
    """J and its gradient by torch autograd through x_{k+1} = Ψ_h(x_k) + ξ_k (float64)."""
    tp = to_torch(params, requires_grad=True)
    x = model.lift(torch.tensor(X, dtype=torch.float64))
    xit = torch.tensor(xi, dtype=torch.float64)
    for k in range(model.layers):
        x = model.step(x, tp["K"][k], tp["b"][k]) + xit[k]
    J = mean_loss(model.head(tp, x), y) + regulariser(tp, model.h, model.alpha, model.beta, model.alpha_head)
    J.backward()
    return float(J.detach()), to_numpy({k: v.grad for k, v in tp.items()})


CASES = [("outer", "euler", 2, 2), ("outer", "euler", 3, 3), ("inner", "euler", 2, 4),
         ("hamiltonian", "euler", 2, 4), ("outer", "rk4", 2, 3), ("inner", "heun", 2, 3)]


@pytest.mark.parametrize("field,method,d_in,width", CASES)
def test_increments_gradient_equals_autograd(field, method, d_in, width):
    # float64, same discrete cost in a different order of operations: agreement to round-off
    # (~1e-16 observed); the bar is 1e-13 relative per block.
    rng = np.random.default_rng(7)
    n, N, T, nu = 40, 8, 2.0, 0.4
    X = rng.standard_normal((n, d_in))
    y = np.arange(n) % 2
    model = ResNetODE(field=field, integrator=method, d_in=d_in, width=width, layers=N, T=T,
                      alpha=1e-2, beta=0.1)
    params = model.init(seed=4)
    xi = nu * np.sqrt(model.h) * rng.standard_normal((N, n, width))
    J, g = pmp.value_and_grad(model, params, X, y, increments=xi)
    Ja, ga = _noisy_autograd(model, params, X, y, xi)
    assert abs(J - Ja) <= 1e-13 * abs(Ja)
    assert abs(pmp.cost(model, params, X, y, increments=xi) - Ja) <= 1e-13 * abs(Ja)
    for k in ga:
        assert np.linalg.norm(g[k] - ga[k]) <= 1e-13 * np.linalg.norm(ga[k])
    # the noise matters: the noiseless gradient is far from this one
    _, g0 = pmp.value_and_grad(model, params, X, y)
    assert pmp.rel_error(g0, ga) > 1e-4
    # sweep hands back the noisy states: x_{k+1} − Ψ_h(x_k) = ξ_k
    J2, g2, states, costates = pmp.sweep(model, params, X, y, increments=xi)
    assert J2 == J
    for k in range(N):
        step = model.step(states[k], params["K"][k], params["b"][k])
        np.testing.assert_allclose(states[k + 1] - step, xi[k], rtol=0, atol=1e-13)


def test_increments_bad_input():
    model = ResNetODE(field="hamiltonian", integrator="verlet", layers=3)
    X, y = np.zeros((5, 2)), np.zeros(5, dtype=int)
    with pytest.raises(InputError, match="explicit Runge"):
        pmp.value_and_grad(model, model.init(), X, y, increments=np.zeros((3, 5, 4)))
    model = ResNetODE(field="outer", integrator="euler", layers=3)
    with pytest.raises(InputError, match="shape"):
        pmp.cost(model, model.init(), X, y, increments=np.zeros((3, 4, 2)))
    with pytest.raises(InputError, match="NaN"):
        pmp.value_and_grad(model, model.init(), X, y, increments=np.full((3, 5, 2), np.nan))
