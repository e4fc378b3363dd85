"""The compiled splitting sweeps (:mod:`ocdl.pmp.kernels_split`, numba) against independent
references: torch autograd through the generic model (cost, gradient, and the costates as
gradients with respect to the retained layer states) and the torch sweep of
:func:`ocdl.pmp.torch_sweeps.split_sweep` on the CPU, for every splitting and activation.

Bars: float64, same discrete network, other order of operations — round-off only (measured
≤ 1.3e-15 relative against autograd); bar 1e-12 relative.
"""
import numpy as np
import pytest
import torch

from ocdl import pmp
from ocdl.models import ResNetODE, to_torch
from ocdl.models.losses import mean_loss
from ocdl.models.regularisers import regulariser
from ocdl.models.resnet import SPLITTINGS
from ocdl.pmp import dispatch

BAR = 1e-12


def _autograd_trajectories(model, params, X, y):
    """States x_k and costates ∂J/∂x_k ((N+1, n, d) each) by torch autograd through the generic
    torch forward (``model.step``, the splitting's sub-steps), the layer states retained."""
    tp = to_torch(params)
    x = model.lift(torch.tensor(X, dtype=torch.float64)).requires_grad_(True)
    xs = [x]
    for k in range(model.layers):
        x = model.step(x, tp["K"][k], tp["b"][k])
        x.retain_grad()
        xs.append(x)
    J = mean_loss(model.head(tp, x), y) + regulariser(tp, model.h, model.alpha, model.beta, model.alpha_head)
    J.backward()
    return (np.stack([v.detach().numpy() for v in xs]), np.stack([v.grad.numpy() for v in xs]))


def _close(a, b):
    return np.abs(a - b).max() <= BAR * np.abs(b).max()


@pytest.mark.parametrize("act", ["tanh", "relu", "softplus"])
@pytest.mark.parametrize("integrator", list(SPLITTINGS))
def test_compiled_split_sweep_equals_autograd(act, integrator):
    # width 8 (m = 4) and 20 (m = 10); trajectories off (value_and_grad) and on (sweep), the
    # cost-only forward, and the torch sweep of the same call; two sample counts in turn on the
    # same model (the workspace arrays change shape and come back).
    rng = np.random.default_rng(11)
    for width, n in ((8, 37), (20, 23), (8, 37)):
        X, y = rng.standard_normal((n, 2)), np.arange(n) % 3
        model = ResNetODE(field="hamiltonian", integrator=integrator, layers=6, T=2.5, width=width,
                          n_classes=3, alpha=1e-2, beta=0.2, alpha_head=5e-3, activation=act)
        params = model.init(seed=width)
        assert dispatch.backend(model, params, X) == "compiled"              # the path under test
        Ja, ga = pmp.autograd_value_and_grad(model, params, X, y)
        J, g = pmp.value_and_grad(model, params, X, y)
        assert abs(J - Ja) <= BAR * abs(Ja) and pmp.rel_error(g, ga) <= BAR
        Jt, gt, states, costates = pmp.sweep(model, params, X, y)
        assert abs(Jt - Ja) <= BAR * abs(Ja) and pmp.rel_error(gt, ga) <= BAR
        ref_states, ref_costates = _autograd_trajectories(model, params, X, y)
        assert states.shape == ref_states.shape and costates.shape == ref_costates.shape
        for k in range(model.layers + 1):
            assert _close(states[k], ref_states[k]) and _close(costates[k], ref_costates[k])
        assert abs(pmp.cost(model, params, X, y) - Ja) <= BAR * abs(Ja)
        Jn, gn, sn, cn = pmp.sweep(model, params, X, y, device="cpu")
        assert abs(J - Jn) <= BAR * abs(Jn) and pmp.rel_error(g, gn) <= BAR
        assert _close(states, sn) and _close(costates, cn)


def test_slots_follow_the_sub_steps():
    # independent bookkeeping: replay verlet's and yoshida4's sub-steps on labelled half-states
    # (q from slot 0, p from slot 1, sub-step t writes slot t+2) and compare with slots().
    from ocdl.pmp import kernels_split
    for name in ("verlet", "yoshida4", "symplectic_euler"):
        kinds = tuple(kind == "drift" for kind, _ in SPLITTINGS[name])
        N = 3
        src, prev, dst, qend, pend = kernels_split.slots(kinds, N)
        q, p, t = 0, 1, 0
        qs, ps = [q], [p]
        for _ in range(N):
            for drift in kinds:
                assert (src[t], prev[t], dst[t]) == ((p, q, t + 2) if drift else (q, p, t + 2))
                if drift:
                    q = t + 2
                else:
                    p = t + 2
                t += 1
            qs.append(q)
            ps.append(p)
        assert list(qend) == qs and list(pend) == ps
