"""E-MSA: the closed-form layer step is the minimiser of the augmented Hamiltonian; monotone loss."""
import numpy as np
import pytest
from scipy.optimize import minimize

from ocdl import pmp
from ocdl.data import make_dataset
from ocdl.errors import InputError
from ocdl.solvers import make_model, train
from ocdl.solvers.msa import layer_step


def test_closed_form_layer_step_minimises_augmented_hamiltonian():
    X, y = make_dataset("spirals", seed=2, points_per_class=15)
    model = make_model(X, y, layers=6, T=2.0, width=3, alpha=1e-2)
    params = model.init(seed=0)
    states, costates = pmp.costate(model, params, X, y)
    _, grads = pmp.value_and_grad(model, params, X, y)
    rho, h, n, k = 3.0, model.h, X.shape[0], 2
    K_new, b_new = layer_step(model, params, states, costates, grads, rho)
    x, xn, p, pn = states[k], states[k + 1], costates[k], costates[k + 1]

    def H_aug(v):  # written from the definition (module docstring), independent of the closed form
        K, b = v[:9].reshape(3, 3), v[9:]
        f = np.tanh(x) @ K.T + b
        dHx = pn + h * (1 - np.tanh(x) ** 2) * (pn @ K)
        return (np.sum(pn * (x + h * f)) + h * model.alpha / 2 * (np.sum(K ** 2) + np.sum(b ** 2))
                + rho / 2 / n * np.sum((xn - x - h * f) ** 2) + rho / 2 * n * np.sum((p - dHx) ** 2))

    v0 = np.concatenate([params["K"][k].ravel(), params["b"][k]])
    ref = minimize(H_aug, v0, method="BFGS", options={"gtol": 1e-13}).x
    got = np.concatenate([K_new[k].ravel(), b_new[k]])
    # BFGS on a strictly convex quadratic: agreement to ~1e-6 relative
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_msa_decreases_loss_monotonically_on_spirals():
    X, y = make_dataset("spirals", seed=0, points_per_class=50)
    model = make_model(X, y, layers=10, T=5.0, alpha=1e-3)
    res = train(X, y, solver="msa", model=model, seed=0, iterations=150)
    # one history row per iterate before each of the 150 steps, then the final iterate (res.fun)
    assert len(res.history) == 150 and res.nit == 150
    loss = np.array([row["loss"] for row in res.history] + [res.fun])
    assert np.all(np.diff(loss) < 0)
    assert loss[-1] < 0.5 * loss[0]
    assert res.fun == pytest.approx(pmp.cost(model, res.x, X, y), rel=1e-12)
    assert res.status == 1 and not res.success and "iteration limit" in res.message
    # the reported KKT residual is the stationarity max(‖∂J/∂θ_k‖∞/h, ‖∂J/∂(W, μ)‖∞) at the returned
    # point, here from an independent torch autograd gradient (round-off apart: 1e-13)
    _, g = pmp.autograd_value_and_grad(model, res.x, X, y)
    kkt = max(np.abs(g["K"]).max() / model.h, np.abs(g["b"]).max() / model.h, np.abs(g["W"]).max(),
              np.abs(g["mu"]).max())
    assert res.kkt == pytest.approx(kkt, rel=1e-13)          # res.kkt is at the returned point


def test_msa_rejects_fields_without_closed_form():
    X, y = make_dataset("moons", seed=0, points_per_class=10)
    with pytest.raises(InputError, match="solver 'msa' does not support field 'inner'; it supports: outer"):
        train(X, y, solver="msa", field="inner", iterations=2)


def test_msa_interrupt_and_resume_reproduce_uninterrupted_run(tmp_path):
    from ocdl.data import load_checkpoint, save_checkpoint
    X, y = make_dataset("spirals", seed=0, points_per_class=15)
    kw = dict(solver="msa", layers=5, T=2.0, iterations=20, seed=1)
    full = train(X, y, **kw)
    saved, counter = {}, {"n": 0}

    def stop():
        counter["n"] += 1
        return counter["n"] == 8

    with pytest.raises(KeyboardInterrupt):
        train(X, y, checkpoint=lambda st: saved.update(st=st), should_stop=stop, **kw)
    assert saved["st"]["iteration"] == 8 and "rho" in saved["st"]["opt"]
    save_checkpoint(tmp_path, saved["st"], {"s": "msa"})          # through the file format too
    resumed = train(X, y, state0=load_checkpoint(tmp_path, {"s": "msa"}), **kw)
    for k in full.x:
        np.testing.assert_array_equal(resumed.x[k], full.x[k])    # bit for bit: ρ is in the state
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]


def _augmented_hamiltonian_newton_step(model, params, states, costates, k, rho):
    """Minimiser of the augmented Hamiltonian of layer k (neighbours frozen), from its definition
    in torch: one Newton step ``−H⁻¹∇`` with gradient and Hessian by autograd (it is quadratic)."""
    import torch
    from torch.autograd.functional import hessian, jacobian
    m, h, n = model.m, model.h, states.shape[1]
    x, xn, p, pn = (torch.tensor(a) for a in (states[k], states[k + 1], costates[k], costates[k + 1]))
    Kp = [torch.tensor(params["K"][j]) for j in range(model.layers)]
    bp = [torch.tensor(params["b"][j]) for j in range(model.layers)]

    def H_aug(v):
        K, b = v[:m * m].reshape(m, m), v[m * m:]
        f = torch.tanh(x) @ K.T + b
        dHx = pn + h * (1 - torch.tanh(x) ** 2) * (pn @ K)
        out = (torch.sum(pn * (x + h * f)) + h * model.alpha / 2 * (torch.sum(K ** 2) + torch.sum(b ** 2))
               + rho / 2 / n * torch.sum((xn - x - h * f) ** 2) + rho / 2 * n * torch.sum((p - dHx) ** 2))
        for j in (k - 1, k + 1):                       # β smoothness with the neighbours frozen
            if 0 <= j < model.layers:
                out = out + model.beta / (2 * h) * (torch.sum((K - Kp[j]) ** 2) + torch.sum((b - bp[j]) ** 2))
        return out

    v0 = torch.tensor(np.concatenate([params["K"][k].ravel(), params["b"][k]]))
    g, H = jacobian(H_aug, v0), hessian(H_aug, v0)
    return (v0 - torch.linalg.solve(H, g)).numpy(), np.linalg.cond(H.numpy())


@pytest.mark.parametrize("rho", [1e-2, 1.0, 100.0])
def test_matrix_free_layer_step_equals_dense_solve_of_the_augmented_hamiltonian(rho):
    X, y = make_dataset("spirals", seed=3, points_per_class=20)
    model = make_model(X, y, layers=4, T=2.0, width=5, alpha=1e-2, beta=0.05)
    params = model.init(seed=1)
    states, costates = pmp.costate(model, params, X, y)
    _, grads = pmp.value_and_grad(model, params, X, y)
    info = {}
    K_new, b_new = layer_step(model, params, states, costates, grads, rho, rtol=1e-13, maxiter=200, info=info)
    assert info["cg_residual"] <= 1e-13
    for k in range(model.layers):
        ref, cond = _augmented_hamiltonian_newton_step(model, params, states, costates, k, rho)
        got = np.concatenate([K_new[k].ravel(), b_new[k]])
        step = ref - np.concatenate([params["K"][k].ravel(), params["b"][k]])
        # CG relative residual 1e-13 bounds the step's relative error by cond(M_k) · 1e-13
        # (cond ≤ 3e3 measured here), plus round-off of the dense solve: 1e-9 relative
        assert cond < 1e4
        np.testing.assert_allclose(got - ref, 0, atol=1e-9 * np.abs(step).max())


def test_head_hessian_equals_autograd():
    import torch
    from ocdl.solvers.msa import _head_hessian
    rng = np.random.default_rng(4)
    for C in (2, 4):
        X = rng.normal(size=(30, 3))
        y = np.arange(30) % C
        model = make_model(X, y, width=5, alpha=1e-2)
        params = model.init(seed=0)
        params["W"] = rng.normal(size=params["W"].shape)
        params["mu"] = rng.normal(size=params["mu"].shape)
        xN = rng.normal(size=(30, 5))
        Cp, d = params["W"].shape

        def J(v):
            p = {"W": v[:Cp * d].reshape(Cp, d), "mu": v[Cp * d:]}
            s = torch.tensor(xN) @ p["W"].T + p["mu"]
            if Cp == 1:
                data = torch.nn.functional.softplus(-(2 * torch.tensor(y) - 1) * s[:, 0]).mean()
            else:
                data = torch.nn.functional.cross_entropy(s, torch.tensor(y))
            return data + model.alpha_head / 2 * torch.sum(p["W"] ** 2)

        v0 = torch.tensor(np.concatenate([params["W"].ravel(), params["mu"]]))
        ref = torch.autograd.functional.hessian(J, v0).numpy()
        np.testing.assert_allclose(_head_hessian(model, params, xN, y), ref, rtol=0, atol=1e-14)


def test_layer_step_allocates_no_dense_per_layer_blocks():
    """Width 60, 4 layers: the dense blocks M_k would take 4 · 3660² · 8 B = 429 MB; the
    matrix-free step needs the S_k, preconditioner factors and P, σ' (≈ 3 MB)."""
    import tracemalloc
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 20)), np.arange(40) % 2
    model = make_model(X, y, layers=4, T=1.0, width=60)
    params = model.init(seed=0)
    states, costates = pmp.costate(model, params, X, y)
    _, grads = pmp.value_and_grad(model, params, X, y)
    tracemalloc.start()
    layer_step(model, params, states, costates, grads, 1.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6


def test_damped_layer_step_adds_the_state_penalty_damping():
    """``damping=γ`` is the augmented Hamiltonian with the extra term
    ``(ρh²/2) γ tr(S_k)/(m+1) ‖δ_k‖²`` (S_k = (1/n) Σ a aᵀ, a = [σ(x); 1]): the layer step against the
    dense autograd minimiser of that function (torch, from the definition)."""
    import torch
    from torch.autograd.functional import hessian, jacobian
    X, y = make_dataset("spirals", seed=3, points_per_class=20)
    model = make_model(X, y, layers=3, T=2.0, width=4, alpha=1e-2)
    params = model.init(seed=1)
    states, costates = pmp.costate(model, params, X, y)
    _, grads = pmp.value_and_grad(model, params, X, y)
    rho, gamma, k, m, h, n = 2.0, 0.3, 1, model.m, model.h, states.shape[1]
    K_new, b_new = layer_step(model, params, states, costates, grads, rho, rtol=1e-13, maxiter=300, damping=gamma)
    x, xn, p, pn = (torch.tensor(a) for a in (states[k], states[k + 1], costates[k], costates[k + 1]))
    a = np.concatenate([np.tanh(states[k]), np.ones((n, 1))], axis=1)
    lam = gamma * np.trace(a.T @ a / n) / (m + 1)
    v0 = torch.tensor(np.concatenate([params["K"][k].ravel(), params["b"][k]]))

    def H_aug(v):
        K, b = v[:m * m].reshape(m, m), v[m * m:]
        f = torch.tanh(x) @ K.T + b
        dHx = pn + h * (1 - torch.tanh(x) ** 2) * (pn @ K)
        return (torch.sum(pn * (x + h * f)) + h * model.alpha / 2 * (torch.sum(K ** 2) + torch.sum(b ** 2))
                + rho / 2 / n * torch.sum((xn - x - h * f) ** 2) + rho / 2 * n * torch.sum((p - dHx) ** 2)
                + rho * h * h / 2 * lam * torch.sum((v - v0) ** 2))

    ref = (v0 - torch.linalg.solve(hessian(H_aug, v0), jacobian(H_aug, v0))).numpy()
    got = np.concatenate([K_new[k].ravel(), b_new[k]])
    np.testing.assert_allclose(got - ref, 0, atol=1e-9 * np.abs(ref - v0.numpy()).max())


def test_msa_reaches_99_percent_on_the_builtin_spirals():
    """Full-batch E-MSA with its defaults (1000 steps, ρ rule) on the built-in spirals as ``ocdl train
    --data spirals`` builds them (200 points per class, range input map): ≥ 99 % training and
    held-out accuracy (held-out: a second draw, seed 1000; measured 100 % / 99.75 %, 9.1 s CPU;
    with 200 steps it was 82.5 % / 79.8 %)."""
    X, y = make_dataset("spirals", seed=0, points_per_class=200)
    Xt, yt = make_dataset("spirals", seed=1000, points_per_class=200)
    res = train(X, y, solver="msa", seed=0, normalize="range")
    assert res.model.accuracy(res.x, X, y) >= 0.99
    assert res.model.accuracy(res.x, Xt, yt) >= 0.99
