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


@pytest.mark.parametrize("extra", [{}, {"batch_size": 8}], ids=["exact", "state-minibatch"])
def test_msa_interrupt_and_resume_reproduce_uninterrupted_run(tmp_path, extra):
    """Both layer steps; with mini-batches (metric 'state') the checkpoint also carries Ḡ, S̄_k, S̄_N."""
    from ocdl.data import load_checkpoint, save_checkpoint
    X, y = make_dataset("spirals", seed=0, points_per_class=15)
    kw = dict(solver="msa", layers=5, T=2.0, iterations=20, seed=1, **extra)
    full = train(X, y, **kw)
    saved, counter = {}, {"n": 0}

    def stop():
        counter["n"] += 1
        return counter["n"] == 8

    with pytest.raises(KeyboardInterrupt):
        train(X, y, checkpoint=lambda st: saved.update(st=st), should_stop=stop, **kw)
    assert saved["st"]["iteration"] == 8 and "rho" in saved["st"]["opt"]
    if extra:
        assert {"costate_average", "metric", "head_metric"} <= set(saved["st"]["opt"])
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


def _state_metric_reference(model, params, X, y, rho, rho_head, gamma):
    """The minimisers of metric 'state''s functions (module docstring, β₁ = β₂ = 0), written from
    their definitions in torch — the layer's Hamiltonian ``Σ_i p_{k+1,i}ᵀ (x + h f(x, θ)) + h r(θ)``
    plus the state-feasibility penalty ``(ρ/2)(1/n) Σ_i |x_{k+1,i} − x_{k,i} − h f(x_{k,i}, θ)|²`` and
    the γ term; the head's ``⟨∂J_data/∂(W, μ), δ⟩ + (α_head/2)|W + δW|² + (ρ_head/2)(1/n) Σ |δW x_N + δμ|²``
    plus its γ term — each quadratic, minimised by one Newton step with autograd's gradient and
    Hessian. States and costates from torch autograd (x_{k+1} by the Euler map, p_k = ∂J_data/∂x_k)."""
    import torch
    from torch.autograd.functional import hessian, jacobian
    N, m, h, n = model.layers, model.m, model.h, X.shape[0]
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    xs = [torch.tensor(pmp.costate(model, params, X, y)[0][0]).requires_grad_(True)]
    for k in range(N):
        xs.append(xs[-1] + h * (torch.tanh(xs[-1]) @ t["K"][k].T + t["b"][k]))
    s = xs[-1] @ t["W"].T + t["mu"]
    data = torch.nn.functional.cross_entropy(s, torch.tensor(y))
    P = torch.autograd.grad(data, xs[1:] + [t["W"], t["mu"]], retain_graph=True)
    costates_next, gW, gmu = P[:N], P[N], P[N + 1]
    out = {}
    for k in range(N):
        x, xn, pn = xs[k].detach(), xs[k + 1].detach(), costates_next[k]
        a = torch.cat([torch.tanh(x), torch.ones(n, 1, dtype=x.dtype)], 1)
        lam = gamma * torch.trace(a.T @ a / n) / (m + 1)
        v0 = torch.cat([t["K"][k].detach().reshape(-1), t["b"][k].detach()])

        def H(v):
            K, b = v[:m * m].reshape(m, m), v[m * m:]
            f = torch.tanh(x) @ K.T + b
            return (torch.sum(pn * (x + h * f)) + h * model.alpha / 2 * torch.sum(v ** 2)
                    + rho / 2 / n * torch.sum((xn - x - h * f) ** 2)
                    + rho * h * h / 2 * lam * torch.sum((v - v0) ** 2))
        out[k] = (v0 - torch.linalg.solve(hessian(H, v0), jacobian(H, v0))).numpy()
    xN = xs[-1].detach()
    C, d = params["W"].shape
    aN = torch.cat([xN, torch.ones(n, 1, dtype=xN.dtype)], 1)
    lam = gamma * torch.trace(aN.T @ aN / n) / (d + 1)
    W0 = t["W"].detach()
    g0 = torch.cat([gW.reshape(-1), gmu])

    def Hh(v):
        dW, dmu = v[:C * d].reshape(C, d), v[C * d:]
        return (g0 @ v + model.alpha_head / 2 * torch.sum((W0 + dW) ** 2)
                + rho_head / 2 / n * torch.sum((xN @ dW.T + dmu) ** 2) + rho_head / 2 * lam * torch.sum(v ** 2))
    z = torch.zeros(C * d + C, dtype=xN.dtype)
    out["head"] = (-torch.linalg.solve(hessian(Hh, z), jacobian(Hh, z))).numpy()
    return out


def test_state_metric_step_minimises_its_augmented_hamiltonian():
    """One step of ``metric="state"`` (β₁ = β₂ = 0, constant ρ) against the torch minimisers of the
    functions it claims to minimise (``_state_metric_reference``), every layer and the head."""
    X, y = make_dataset("spirals", seed=3, points_per_class=12)
    y3 = np.arange(len(y)) % 3                     # three classes: the softmax head
    model = make_model(X, y3, layers=3, T=1.5, width=4, alpha=2e-2)
    params = model.init(seed=2)
    rho, rho_head, gamma = 2.5, 4.0, 0.3
    res = train(X, y3, solver="msa", model=model, params0=params, iterations=1, metric="state", rho=rho,
                head_rho=rho_head, damping=gamma, costate_average=0.0, metric_average=0.0, rho_schedule="constant")
    ref = _state_metric_reference(model, params, X, y3, rho, rho_head, gamma)
    m, d = model.m, params["W"].shape[1]
    for k in range(model.layers):
        got = np.concatenate([res.x["K"][k].ravel(), res.x["b"][k]])
        v0 = np.concatenate([params["K"][k].ravel(), params["b"][k]])
        # a (m+1)² LU solve against a dense torch solve of a well-conditioned SPD system: 1e-9 of the step
        np.testing.assert_allclose(got - ref[k], 0, atol=1e-9 * np.abs(ref[k] - v0).max())
    got = np.concatenate([(res.x["W"] - params["W"]).ravel(), res.x["mu"] - params["mu"]])
    np.testing.assert_allclose(got - ref["head"], 0, atol=1e-9 * np.abs(ref["head"]).max())
    assert m == 4 and d == 4


def test_msa_metric_options_refuse_bad_input():
    X, y = make_dataset("moons", seed=0, points_per_class=10)
    kw = dict(solver="msa", layers=2, iterations=1)
    with pytest.raises(InputError, match="unknown msa metric 'stat'.*did you mean 'state'"):
        train(X, y, metric="stat", **kw)
    with pytest.raises(InputError, match="momentum is the heavy ball of metric 'exact'"):
        train(X, y, metric="state", momentum=0.9, **kw)
    with pytest.raises(InputError, match="costate_average applies to metric 'state' only"):
        train(X, y, metric="exact", costate_average=0.9, **kw)
    with pytest.raises(InputError, match=r"metric_average must be in \[0, 1\)"):
        train(X, y, metric="state", metric_average=1.0, **kw)
    with pytest.raises(InputError, match="unknown learning-rate schedule"):
        train(X, y, metric="state", rho_schedule="cosin", **kw)


@pytest.mark.slow
@pytest.mark.timeout(2400)   # 78 s with OMP_NUM_THREADS=1 at load 5; > 10 min with multi-threaded BLAS at load 12
def test_stochastic_msa_defaults_within_3_points_of_adam_on_mnist1d():
    """Issue 26's target on MNIST-1D (outer field, the defaults of ``ocdl compare --data mnist1d``:
    batches of 128, adam 60 epochs, msa ``MSA_EPOCHS`` with ``metric="state"``), seed 0: msa's
    held-out accuracy within 3 points of adam's, the reference run in the same test (measured
    68.5 % vs 70.7 %; the whole test 78 s with one thread)."""
    pytest.importorskip("mnist1d")
    from ocdl.data import load_real
    X, y, Xt, yt = load_real("mnist1d")
    acc = {}
    for solver in ("adam", "msa"):
        res = train(X, y, solver=solver, seed=0, alpha=3e-3, test=(Xt, yt))
        acc[solver] = res.model.accuracy(res.x, Xt, yt)
    assert acc["msa"] >= acc["adam"] - 0.03
