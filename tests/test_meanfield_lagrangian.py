"""Lagrangian (Gaussian-blob) density method: exact discrete adjoint (torch autograd through an
independent forward that takes the step Jacobian by autograd), exact transport at ν = 0 (the
deterministic PMP of ocdl.pmp; the blob covariance = σ₀² × flow-map Jacobian by finite differences),
diffusion against Monte Carlo, and training to particle accuracy."""
import numpy as np
import pytest

from ocdl.data.datasets import spirals
from ocdl.meanfield.lagrangian import CLOSURE_NODES, _nodes, blob_forward, blob_value_and_grad
from ocdl.meanfield.training import init_params, particle_states, particle_value_and_grad


def _params(layers, seed=1, scale=0.7):
    P = init_params(layers, 2, seed=seed, scale=scale)
    P["b"] = np.random.default_rng(0).normal(scale=0.5, size=P["b"].shape)
    P["mu"] = np.array([0.3])
    return P


#: σ in torch, written independently of ocdl's activation objects
_TORCH_SIGMA = {"tanh": lambda x: x.tanh(), "softplus": lambda x: x.exp().log1p(),
                "relu": lambda x: x.clamp(min=0.0)}


@pytest.mark.parametrize("activation", list(_TORCH_SIGMA))
def test_blob_gradient_matches_torch_autograd(activation):
    """Every activation (the closure takes σ and its derivatives from the activation object)."""
    import torch
    sigma = _TORCH_SIGMA[activation]
    X, y = spirals(12, seed=3)
    layers, T, nu, sub, s0, al, ah, Q = 3, 2.0, 0.3, 2, 0.1, 0.01, 0.02, 12
    P = _params(layers)
    J, G = blob_value_and_grad(P, X, y, nu, T, al, ah, sub, s0, quad=Q, activation=activation)
    tp = {k: torch.tensor(np.asarray(v, float), requires_grad=True) for k, v in P.items()}
    m, n, dt = torch.tensor(X), len(y), T / layers / sub
    eye = torch.eye(2, dtype=torch.float64)
    S = eye.repeat(n, 1, 1) * s0 ** 2
    zc, wc = (torch.tensor(a) for a in _nodes(CLOSURE_NODES))
    for i in range(layers * sub):
        K, b = tp["K"][i // sub], tp["b"][i // sub]
        sd = torch.diagonal(S, dim1=1, dim2=2).sqrt()
        xq = m[..., None] + sd[..., None] * zc               # Gauss–Hermite points of each marginal
        step = lambda x: x + dt * (sigma(x) @ K.T + b)  # noqa: E731
        # E[Jacobian of the Euler step] by autograd at every node, averaged with the weights
        A = sum(wc[q] * torch.func.vmap(torch.func.jacrev(step))(xq[..., q]) for q in range(len(wc)))
        Ef = (sigma(xq) * wc).sum(-1) @ K.T + b
        m, S = m + dt * Ef, A @ S @ A.transpose(1, 2) + nu ** 2 * dt * eye
    W = tp["W"][0]
    sd = torch.einsum("a,jab,b->j", W, S, W).sqrt()
    s = (m @ W + tp["mu"][0])[:, None] + sd[:, None] * torch.tensor(_nodes(Q)[0])
    sign = torch.tensor(2.0 * y - 1.0)[:, None]
    Jt = (torch.nn.functional.softplus(-sign * s) @ torch.tensor(_nodes(Q)[1])).mean() \
        + T / layers * 0.5 * al * ((tp["K"] ** 2).sum() + (tp["b"] ** 2).sum()) + 0.5 * ah * (tp["W"] ** 2).sum()
    Jt.backward()
    # the same discrete cost, both exact: round-off (measured: J 1e-16, gradients ≤ 3e-17)
    assert abs(J - Jt.item()) < 1e-13
    for k in P:
        assert np.max(np.abs(G[k] - tp[k].grad.numpy().reshape(np.shape(G[k])))) < 1e-13, k


def test_point_blobs_without_noise_are_deterministic_pmp():
    X, y = spirals(20, seed=1)
    P = _params(4, seed=2)
    Jb, Gb = blob_value_and_grad(P, X, y, 0.0, 1.5, 0.01, 0.02, substeps=3)
    Jp, Gp = particle_value_and_grad(P, X, y, 0.0, 1.5, 0.01, 0.02, substeps=3)
    assert abs(Jb - Jp) < 1e-14
    for k in Gb:
        assert np.max(np.abs(Gb[k] - np.reshape(Gp[k], np.shape(Gb[k])))) < 1e-14, k


def test_blob_covariance_is_transported_by_the_flow_map_jacobian():
    """ν = 0, narrow blobs: S(T) → σ₀² D Dᵀ, D = ∂x(T)/∂x(0) of the Euler flow (by central
    differences of the particle forward), and the centres follow the characteristics; the Gaussian
    closure's curvature terms are O(σ₀²) = 1e-8 relative here."""
    X = np.array([[0.3, -0.2], [-0.5, 0.8]])
    P, T, s0 = _params(5, seed=4, scale=1.0), 2.0, 1e-4
    ms, Ss = blob_forward(P, X, 0.0, T, substeps=2, sigma0=s0)
    eps = 1e-6
    D = np.stack([(particle_states(P, X + eps * e, 0.0, T, 2)[-1] - particle_states(P, X - eps * e, 0.0, T, 2)[-1])
                  / (2 * eps) for e in np.eye(2)], 2)                   # (points, out, in)
    assert np.max(np.abs(ms[-1] - particle_states(P, X, 0.0, T, 2)[-1])) < 1e-7
    ref = s0 ** 2 * D @ D.transpose(0, 2, 1)
    assert np.max(np.abs(Ss[-1] - ref)) < 1e-6 * np.max(np.abs(ref))


def test_blob_diffusion_matches_monte_carlo_to_the_closure_error():
    """The noise contribution J(ν) − J(0) of the blobs against Euler–Maruyama Monte Carlo (40 000 paths)
    at ν = 0.3. The Gaussian closure (exact mean and Stein cross-covariance of each step under the
    blob) gets the O(ν²) term right; what is left is non-Gaussianity. Measured 0.001454 vs
    0.00146 ± 0.00019; the bound allows 15 % + 3 Monte-Carlo sigma."""
    X, y = spirals(20, seed=2)
    P, T, nu, sub = _params(4, seed=3, scale=0.8), 1.0, 0.3, 4
    J0 = blob_value_and_grad(P, X, y, 0.0, T, substeps=sub)[0]
    Jb = blob_value_and_grad(P, X, y, nu, T, substeps=sub)[0]
    rng = np.random.default_rng(0)
    R = 2000
    Xr, yr = np.repeat(X, R, 0), np.repeat(y, R)
    noise = rng.standard_normal((4 * sub, Xr.shape[0], 2))
    s = particle_states(P, Xr, nu, T, sub, noise)[-1] @ P["W"][0] + P["mu"][0]
    loss = np.logaddexp(0.0, -(2.0 * yr - 1.0) * s).reshape(-1, R)
    Jmc, se = loss.mean(), loss.mean(0).std() / np.sqrt(R)      # per-replica means: independent paths
    assert Jmc - J0 > 5 * se                                     # the effect is resolved
    assert abs((Jb - J0) - (Jmc - J0)) < 0.15 * (Jmc - J0) + 3 * se


def test_density_training_reaches_particle_accuracy_on_a_small_spiral():
    from ocdl.meanfield.training import accuracy, train_stochastic_resnet
    X, y = spirals(100, seed=0)
    Xt, yt = spirals(100, seed=1000)
    res = train_stochastic_resnet(X, y, method="density", nu=0.05, iterations=400, lr=0.05, seed=0)
    # measured: held-out 0.915 (train 0.95); the Eulerian grid stalls near 0.6 on spirals
    assert accuracy(res.x, Xt, yt, 0.05, 2.0) >= 0.85


@pytest.mark.slow
def test_density_training_within_three_points_of_particles_cli(tmp_path):
    """Issue #15 target: `ocdl meanfield train --method density` vs particle PMP, ν = 0.05, held-out
    spirals (measured: 0.9325 vs 0.93)."""
    import json
    from ocdl.cli.main import main
    acc = {}
    for name, flags in (("density", ["--method", "density"]), ("particles", ["--particles", "1000"])):
        out = tmp_path / f"{name}.json"
        assert main(["meanfield", "train", "--data", "spirals", "--nu", "0.05", *flags, "--quiet",
                     "--json", str(out)]) == 0
        acc[name] = json.loads(out.read_text())["test_accuracy"]
    assert acc["density"] >= acc["particles"] - 0.03
