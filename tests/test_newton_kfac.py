"""newton's Kronecker-factored preconditioner (``preconditioner="kfac"``, K-FAC of Martens & Grosse
2015 from the Pontryagin sweeps): the factors against torch autograd's per-sample gradients, the
metric's products against the dense Kronecker matrix built with numpy, the preconditioned CG
against a dense solve, and newton from the initialisation with it on a small real set."""
import numpy as np
import pytest

from ocdl.data import make_dataset
from ocdl.solvers import make_model, train
from ocdl.solvers.kronecker import KroneckerMetric, sample_labels
from ocdl.solvers.trust_region import GaussNewtonProduct, damped_pcg


def _model(classes=3, rows=15):
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(classes), rows // classes)
    X = rng.normal(size=(y.size, 4)) + y[:, None]
    model = make_model(X, y, field="outer", layers=3, T=1.5, width=5, alpha=1e-2)
    z = model.flatten(model.init(seed=1)) + 0.3 * rng.normal(size=model.n_params())
    return model, X, y, z


def _layer_index(model):
    """Flat indices of the block ``D_k = [K_k | b_k]`` (row-major, (r, q); conv: K_k as (C, C k)) of every layer and of
    the head's ``E = [W | μ]`` — built from ``model.unflatten`` of the index vector."""
    idx = model.unflatten(np.arange(model.n_params(), dtype=float))
    N, r = idx["b"].shape
    D = np.concatenate([idx["K"].reshape(N, r, -1), idx["b"][:, :, None]], axis=2).astype(int)
    E = np.concatenate([idx["W"], idx["mu"][:, None]], axis=1).astype(int)
    return [D[k].ravel() for k in range(model.layers)], E.ravel()


def _dense_metric(model, metric):
    """``M`` as a dense matrix: ``kron(Γ̃_k, S̃_k)`` on each layer's block, ``kron(Ã, S̃_N)`` on the
    head's (``vec`` row-major: ``vec(Γ D S) = (Γ ⊗ S) vec D`` for symmetric S)."""
    (G, _), (S, _), (A, _), (SN, _) = metric.inverses
    M = np.zeros((model.n_params(),) * 2)
    layers, head = _layer_index(model)
    for k, ix in enumerate(layers):
        M[np.ix_(ix, ix)] = np.kron(G[k], S[k])
    M[np.ix_(head, head)] = np.kron(A[0], SN[0])
    return M


def _autograd_grad(model, z, X1, yhat):
    """``∂Φ(s(X1), ŷ)/∂z`` by torch autograd through the model's generic torch forward."""
    import torch

    from ocdl.models.losses import mean_loss
    zt = torch.tensor(z, requires_grad=True)
    p = dict(zip(("K", "b", "W", "mu"), _split(model, zt)))
    loss = mean_loss(model.head(p, model.forward(p, torch.tensor(X1))[-1]), yhat)
    g, = torch.autograd.grad(loss, zt)
    return g.numpy()


@pytest.mark.parametrize("classes", [2, 3])
def test_one_row_factors_are_the_per_sample_gradient_outer_product(classes):
    """On one row with a given label ŷ the layer factor is exact: ``Γ_k ⊗ S_k = vec(g_k) vec(g_k)ᵀ``
    with ``g_k = ∂Φ(s, ŷ)/∂[K_k | b_k]`` by torch autograd (independent of the sweeps; ≤ 1e-10
    relative, measured ~1e-16), and the head's ``A ⊗ S_N`` equals the head block of the Gauss–Newton
    matrix (``GaussNewtonProduct`` on the unit vectors, itself tested against autograd)."""
    model, X, y, z = _model(classes)
    metric = KroneckerMetric(model, X)
    layers, head = _layer_index(model)
    for i in (0, 4):
        x1, yhat = X[i:i + 1], np.array([(y[i] + 1) % classes])
        Gam, S, A, SN = metric.batch_factors(z, x1, yhat)
        g = _autograd_grad(model, z, x1, yhat)
        for k, ix in enumerate(layers):
            want = np.outer(g[ix], g[ix])
            got = np.kron(Gam[k], S[k])
            assert np.abs(got - want).max() <= 1e-10 * np.abs(want).max()
        gn = GaussNewtonProduct(model, x1, y[i:i + 1])
        e = np.eye(z.size)
        Gh = np.array([gn(z, e[j])[head] for j in head])
        Gh -= np.diag(np.where(np.arange(len(head)) % (model.d + 1) < model.d, model.alpha_head, 0.0))
        assert np.abs(np.kron(A, SN) - Gh).max() <= 1e-10 * np.abs(Gh).max()


@pytest.mark.parametrize("field", ["outer", "inner", "conv"])
def test_layer_sides_give_the_per_sample_gradient(field):
    """``Field.layer_io``: ``h Σ_j U[:, j] A[:, j]ᵀ`` over one sample's columns (its positions, for conv)
    is the gradient of that sample's loss with respect to ``[K_k | b_k]`` — against torch autograd
    (≤ 1e-10 relative) for every layer, on the inner, outer and conv fields (conv: 2 channels,
    kernel 3, signals of length 6, zero padding at both ends)."""
    from ocdl import pmp
    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(3), 3)
    X = rng.normal(size=(y.size, 6)) + y[:, None]
    opts = dict(channels=2, kernel=3) if field == "conv" else dict(width=7)
    model = make_model(X, y, field=field, layers=3, T=1.5, alpha=1e-2, **opts)
    z = model.flatten(model.init(seed=1)) + 0.3 * rng.normal(size=model.n_params())
    params = model.unflatten(z)
    layers, _ = _layer_index(model)
    for i in (0, 7):
        x1, yhat = X[i:i + 1], y[i:i + 1]
        g = _autograd_grad(model, z, x1, yhat)
        _, _, states, costates = pmp.sweep(model, params, x1, yhat)
        for k, ix in enumerate(layers):
            U, A = model.F.layer_io(states[k], params["K"][k], params["b"][k], costates[k + 1])
            got = model.h * (U @ A.T)
            want = g[ix].reshape(got.shape)
            assert np.abs(got - want).max() <= 1e-10 * np.abs(want).max()


def _split(model, zt):
    out, i = [], 0
    for shp in model.shapes().values():
        size = int(np.prod(shp))
        out.append(zt[i:i + size].reshape(shp))
        i += size
    return out


def test_metric_products_equal_the_dense_kronecker_matrix():
    """``apply(v) = M v`` and ``solve(v) = M⁻¹ v`` against the dense block-diagonal Kronecker matrix
    (``numpy.kron``, ``numpy.linalg.solve``), after averaged observations: ≤ 1e-10 relative."""
    model, X, y, z = _model()
    metric = KroneckerMetric(model, X, average=0.5, damping=0.3, refresh=2)
    for rows in (np.arange(0, 8), np.arange(6, 15), None):
        metric.observe(z, rows)
    M = _dense_metric(model, metric)
    assert np.allclose(M, M.T, atol=0) and np.linalg.eigvalsh(M).min() > 0
    v = np.random.default_rng(0).normal(size=z.size)
    Mv = M @ v
    assert np.abs(metric.apply(v) - Mv).max() <= 1e-10 * np.abs(Mv).max()
    w = np.linalg.solve(M, v)
    assert np.abs(metric.solve(v) - w).max() <= 1e-10 * np.abs(w).max()


def test_sampled_labels_follow_the_probabilities():
    """``sample_labels`` draws class c with probability p_c: frequencies over 200 000 draws within
    5 standard errors of p (the test fails with probability < 1e-5 per class)."""
    prob = np.tile([[0.1, 0.6, 0.3]], (200_000, 1))
    freq = np.bincount(sample_labels(prob, np.random.default_rng(0)), minlength=3) / len(prob)
    se = np.sqrt(prob[0] * (1 - prob[0]) / len(prob))
    assert np.all(np.abs(freq - prob[0]) <= 5 * se)


def test_damped_pcg_solves_the_levenberg_marquardt_system():
    """``damped_pcg`` with enough iterations solves ``(G + λM)s = −g`` to its tolerance: against
    ``numpy.linalg.solve`` of the dense system (G from the product on the unit vectors, M dense),
    ≤ 1e-8 relative; the returned ``G s`` and ``M s`` equal the dense products; one iteration is
    the natural-gradient step ``−α M⁻¹g`` with α minimising the damped model along it."""
    model, X, y, z = _model()
    metric = KroneckerMetric(model, X, damping=0.5)
    metric.observe(z)
    from ocdl import pmp
    g = model.flatten(pmp.value_and_grad(model, model.unflatten(z), X, y)[1])
    gn = GaussNewtonProduct(model, X, y)
    G = np.array([gn(z, e) for e in np.eye(z.size)]).T
    M = _dense_metric(model, metric)
    lam = 0.7
    want = np.linalg.solve(G + lam * M, -g)
    s, Gs, Ms, nprod, why = damped_pcg(g, lambda v: gn(z, v), metric, lam, 1e-12 * np.linalg.norm(g), 500)
    assert why == "converged" and nprod < z.size
    assert np.linalg.norm(s - want) <= 1e-8 * np.linalg.norm(want)
    assert np.linalg.norm(Gs - G @ s) <= 1e-8 * np.linalg.norm(G @ s)
    assert np.linalg.norm(Ms - M @ s) <= 1e-8 * np.linalg.norm(M @ s)
    s1, _, _, n1, _ = damped_pcg(g, lambda v: gn(z, v), metric, lam, 0.0, 1)
    d = -np.linalg.solve(M, g)
    alpha = -(g @ d) / (d @ (G + lam * M) @ d)
    assert n1 == 1 and np.linalg.norm(s1 - alpha * d) <= 1e-10 * np.linalg.norm(s1)


def test_newton_with_the_kronecker_preconditioner_converges_on_wine():
    """No warm start, Gauss–Newton steps preconditioned (and damped) by the Kronecker metric, then
    the exact-Hessian trust region, on wine (133 training samples, width 13, 5 layers): certified
    (KKT ≤ 1e-10 of the full objective), stationary by torch autograd's gradient to 1e-9 (independent
    of the sweeps), and held-out accuracy at least LogisticRegression's less one sample (as in
    tests/test_newton_gauss_newton.py)."""
    from conftest import autograd_reference
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from ocdl.data.real import load_real
    X, y, Xt, yt = load_real("wine")
    res = train(X, y, solver="newton", warm_start="none", curvature="gauss-newton", preconditioner="kfac",
                seed=0, layers=5, width=13, normalize="standard")
    assert res.success and res.kkt <= 1e-10 and res.message.startswith("converged")
    assert res.n_gauss_newton_steps > 0 and res.preconditioner == "kfac"
    _, g = autograd_reference(res.model, res.x, X, y)
    assert max(np.abs(v).max() for v in g.values()) <= 1e-9
    sc = StandardScaler().fit(X)
    ref = LogisticRegression(max_iter=5000).fit(sc.transform(X), y).score(sc.transform(Xt), yt)
    assert res.model.accuracy(res.x, Xt, yt) >= ref - 1.0 / len(yt) - 1e-12


def test_kfac_refuses_what_it_does_not_model():
    """Other fields or integrators, and the exact-Hessian curvature: one clear error each."""
    from ocdl.errors import InputError
    X, y = make_dataset("spirals", seed=0, points_per_class=10)
    with pytest.raises(InputError, match="Kronecker"):
        train(X, y, solver="newton", warm_start="none", curvature="gauss-newton", preconditioner="kfac",
              field="hamiltonian", layers=2, width=4)
    with pytest.raises(InputError, match="Kronecker"):
        train(X, y, solver="newton", warm_start="none", curvature="gauss-newton", preconditioner="kfac",
              integrator="rk4", layers=2, width=3)
    with pytest.raises(InputError, match="gauss-newton"):
        train(X, y, solver="newton", warm_start="none", curvature="hessian", preconditioner="kfac", layers=2,
              width=3)
    with pytest.raises(InputError, match="preconditioner"):
        train(X, y, solver="newton", preconditioner="diagonal", layers=2, width=3)


def test_defaults_without_a_warm_start_and_the_cli_flag(tmp_path):
    """On more than FULL_BATCH_MAX samples ``warm_start="none"`` takes the cold-start batching
    (NEWTON_INIT_*) and newton resolves Gauss–Newton with the Kronecker metric and CG ≤ 1;
    ``--newton-preconditioner`` reaches newton (its JSON says so) and is one line on stderr, exit 2,
    with another solver."""
    import json

    from conftest import run_ocdl_inprocess
    from ocdl.solvers import default_batching
    from ocdl.solvers.defaults import NEWTON_INIT_BATCH, NEWTON_INIT_EPOCHS, NEWTON_INIT_HESSIAN_SAMPLE
    opts = default_batching("newton", 4000, {"warm_start": "none"})
    assert (opts["batch_size"], opts["hessian_sample"], opts["epochs"]) == (
        NEWTON_INIT_BATCH, NEWTON_INIT_HESSIAN_SAMPLE, NEWTON_INIT_EPOCHS)
    X, y = make_dataset("spirals", seed=0, points_per_class=30)
    res = train(X, y, solver="newton", warm_start="none", batch_size=20, epochs=1, layers=3, width=4)
    assert res.curvature == "gauss-newton" and res.preconditioner == "kfac"
    assert res.cg_iterations == res.n_gauss_newton_steps == res.nit       # one CG iteration per step
    base = ("train", "--data", "spirals", "--points", "20", "--solver", "newton", "--newton-warm-start", "none",
            "--newton-curvature", "gauss-newton", "--layers", "3", "--width", "3", "--iterations", "3", "--quiet")
    runs = {}
    for pc in ("kfac", "none"):
        js = tmp_path / f"{pc}.json"
        rc, _, err = run_ocdl_inprocess(*base, "--newton-preconditioner", pc, "--json", js)
        assert rc == 0, err
        runs[pc] = json.loads(js.read_text())["train_loss"]
    assert runs["kfac"] != runs["none"]                  # the flag changed the steps
    rc, _, err = run_ocdl_inprocess(*base, "--newton-preconditioner", "kfac", "--integrator", "rk4")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Kronecker" in err
    rc, _, err = run_ocdl_inprocess("train", "--data", "spirals", "--points", "20", "--solver", "adam",
                                    "--newton-preconditioner", "kfac", "--iterations", "2", "--quiet")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--newton-preconditioner" in err


def test_newton_from_the_initialisation_on_the_conv_field():
    """newton admits the conv field (reduced formulation): from the initialisation, mini-batches,
    the Kronecker metric with the conv CG cap (NEWTON_KFAC_CONV_CG_MAXITER); the full training
    cost (measured independently by the numpy forward) falls below the initial point's."""
    from ocdl import pmp
    from ocdl.solvers.defaults import NEWTON_KFAC_CONV_CG_MAXITER
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 20)
    X = rng.normal(size=(y.size, 8)) + np.sin(np.arange(8) * (1 + y[:, None]))
    model = make_model(X, y, field="conv", channels=2, kernel=3, layers=3, T=1.0)
    res = train(X, y, solver="newton", model=model, warm_start="none", batch_size=20, hessian_sample=10, epochs=3)
    assert res.preconditioner == "kfac" and res.curvature == "gauss-newton"
    assert res.cg_iterations <= NEWTON_KFAC_CONV_CG_MAXITER * res.nit and res.cg_iterations > res.nit
    assert pmp.cost(model, res.x, X, y) < pmp.cost(model, model.init(0), X, y)


@pytest.mark.slow
@pytest.mark.timeout(2400)   # ≈ 60 s with one thread at load 1
def test_newton_from_the_initialisation_at_adams_accuracy_on_mnist1d_inner():
    """Issue 26's Newton target on MNIST-1D, inner field, seed 0, the defaults of ``ocdl compare
    --data mnist1d --field inner --newton-warm-start none``: newton from the initialisation (K-FAC
    Gauss–Newton, 30 epochs of 256) holds out at least adam's accuracy, the reference run in the same
    test (measured 74.1 % against 69.5 %; seeds 1, 2: 72.5 / 73.1 % against 69.8 / 69.2 %)."""
    pytest.importorskip("mnist1d")
    from ocdl.data import load_real
    X, y, Xt, yt = load_real("mnist1d")
    acc = {}
    for solver, options in (("adam", {}), ("newton", {"warm_start": "none"})):
        res = train(X, y, solver=solver, field="inner", seed=0, test=(Xt, yt), **options)
        acc[solver] = res.model.accuracy(res.x, Xt, yt)
    assert acc["newton"] >= acc["adam"], acc


@pytest.mark.slow
@pytest.mark.timeout(2400)   # ≈ 80 s with one thread at load 1
def test_newton_from_the_initialisation_on_mnist1d_conv_holds_out_95_percent():
    """Issue 26's conv target: newton from the initialisation on MNIST-1D, ``field="conv"``, the
    defaults (K-FAC Gauss–Newton, CG ≤ 3, 40 epochs of 256), seed 0, holds out ≥ 95 % (measured
    95.6 %; seeds 1, 2: 96.0 / 96.2 %)."""
    pytest.importorskip("mnist1d")
    from ocdl.data import load_real
    X, y, Xt, yt = load_real("mnist1d")
    res = train(X, y, solver="newton", field="conv", warm_start="none", seed=0, test=(Xt, yt))
    assert res.model.accuracy(res.x, Xt, yt) >= 0.95
