"""newton with Gauss–Newton curvature (Levenberg–Marquardt on the generalised Gauss–Newton matrix,
Martens 2010) from the default initialisation: the product against torch autograd, convergence
on a small real set with its certificate, and no certificate for a mini-batch run."""
import numpy as np
import pytest

from ocdl import pmp
from ocdl.data import make_dataset
from ocdl.solvers import make_model, train
from ocdl.solvers.trust_region import GaussNewtonProduct


def _autograd_ggn(model, z, v, X, y):
    """``Jᵀ (∇²_s mean_loss) J v + ∇²R v`` by torch.func alone (jvp of the logits, the loss's
    Hessian by forward-over-reverse, vjp of the logits; the regulariser's Hessian the same way) —
    the model's generic torch forward and head, no costate sweep."""
    import torch

    from ocdl.models.losses import mean_loss
    from ocdl.models.regularisers import regulariser
    Xt = torch.tensor(X, dtype=torch.float64)

    def unflat(vec):
        out, i = {}, 0
        for k, shp in model.shapes().items():
            size = int(np.prod(shp))
            out[k] = vec[i:i + size].reshape(shp)
            i += size
        return out

    def logits(vec):
        p = unflat(vec)
        return model.head(p, model.forward(p, Xt)[-1])

    def reg(vec):
        return regulariser(unflat(vec), model.h, model.alpha, model.beta, model.alpha_head)
    zt, vt = torch.tensor(z), torch.tensor(v)
    s, Jv = torch.func.jvp(logits, (zt,), (vt,))
    _, HJv = torch.func.jvp(torch.func.grad(lambda s_: mean_loss(s_, y)), (s,), (Jv,))
    _, pullback = torch.func.vjp(logits, zt)
    JtHJv, = pullback(HJv)
    _, Rv = torch.func.jvp(torch.func.grad(reg), (zt,), (vt,))
    return (JtHJv + Rv).numpy()


CASES = {
    # softmax head (3 classes), β-coupled regulariser and a head penalty: every term of G
    "outer-softmax": dict(data=("blobs", 3), field="outer", layers=4, T=2.0, width=7, alpha=1e-2, beta=0.1,
                          alpha_head=0.05),
    # one logit (logistic loss) on the inner field
    "inner-logistic": dict(data=("spirals", 2), field="inner", layers=3, T=1.5, width=4, alpha=1e-2),
    # the conv field (its numpy costate sweep and the numpy tangent ConvField.jvp)
    "conv": dict(data=("blobs", 3), field="conv", layers=3, T=1.0, channels=2, kernel=3, alpha=1e-2),
    # a 2-D conv field (6 inputs as a 2 × 3 image): the numpy tangent's windows along two axes
    "conv-2d": dict(data=("blobs", 3), field="conv", layers=2, T=1.0, channels=2, kernel=3, alpha=1e-2,
                    shape=(2, 3)),
    # hamiltonian-conv has no one-convolution tangent: the torch forward mode
    "hamiltonian-conv": dict(data=("blobs", 3), field="hamiltonian-conv", layers=2, T=1.0, channels=2, kernel=3,
                             alpha=1e-2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gauss_newton_product_equals_autograd(case):
    """GaussNewtonProduct (forward tangent + costate sweep) equals torch autograd's Jᵀ H J v + ∇²R v
    to 1e-10 relative (both exact in float64; measured ≤ 1e-15), on all rows and on a subset S,
    several products at the same point (the cached point), and vᵀ G v ≥ 0 (semidefinite)."""
    opts = dict(CASES[case])
    name, classes = opts.pop("data")
    if name == "blobs":
        rng = np.random.default_rng(3)
        y = np.repeat(np.arange(classes), 12)
        X = rng.normal(size=(y.size, 6)) + y[:, None]
    else:
        X, y = make_dataset(name, seed=0, points_per_class=12)
    model = make_model(X, y, **opts)
    rng = np.random.default_rng(0)
    z = model.flatten(model.init(seed=1)) + 0.2 * rng.normal(size=model.n_params())
    gn = GaussNewtonProduct(model, X, y)
    assert gn._numpy_tangent() == (case != "hamiltonian-conv")      # which tangent the case checks
    rows = np.sort(rng.choice(len(y), size=9, replace=False))
    for S in (None, rows):
        XS, yS = (X, y) if S is None else (X[S], y[S])
        for _ in range(2):
            v = rng.normal(size=z.size)
            got, want = gn(z, v, S), _autograd_ggn(model, z, v, XS, yS)
            assert np.abs(got - want).max() <= 1e-10 * np.abs(want).max()
            assert v @ got >= 0.0


def test_gauss_newton_from_the_default_initialisation_converges_on_wine():
    """No warm start, Gauss–Newton (Levenberg–Marquardt) steps then the exact-Hessian trust region,
    on wine (133 training samples, width 13, 5 layers): the run certifies itself (KKT ≤ 1e-10 at
    the full objective), the point is stationary by torch autograd's gradient (independent of the
    sweeps) to 1e-9, Gauss–Newton did the global phase, and the held-out accuracy is at least
    scikit-learn's LogisticRegression's on the same standardised split, less one sample (45
    held-out samples; a different, convex model: measured LogisticRegression 100 %, newton 97.8 %,
    the same local minimum as with the exact Hessian throughout, J = 0.0114487)."""
    from conftest import autograd_reference
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from ocdl.data.real import load_real
    X, y, Xt, yt = load_real("wine")
    res = train(X, y, solver="newton", warm_start="none", curvature="gauss-newton", seed=0, layers=5,
                width=13, normalize="standard")
    assert res.success and res.kkt <= 1e-10 and res.message.startswith("converged")
    assert res.n_gauss_newton_steps > 0 and res.curvature == "gauss-newton"
    assert all(row.get("phase") == "newton" for row in res.history)        # no warm-start rows
    assert any(row.get("curvature") == "gauss-newton" for row in res.history)
    _, g = autograd_reference(res.model, res.x, X, y)
    assert max(np.abs(v).max() for v in g.values()) <= 1e-9
    sc = StandardScaler().fit(X)
    ref = LogisticRegression(max_iter=5000).fit(sc.transform(X), y).score(sc.transform(Xt), yt)
    acc = res.model.accuracy(res.x, Xt, yt)
    assert acc >= ref - 1.0 / len(yt) - 1e-12


def test_mini_batch_gauss_newton_run_is_not_certified():
    """A mini-batch run only ever sees batch costs: success stays False (the driver's certificate,
    ocdl.optim.certificates, needs the full objective), and the steps lowered the full cost."""
    X, y = make_dataset("spirals", seed=0, points_per_class=40)
    res = train(X, y, solver="newton", warm_start="none", curvature="gauss-newton", batch_size=20, epochs=2,
                layers=4, width=4, seed=0, gn_cg_maxiter=5)
    assert not res.success and res.status != 0
    assert res.n_gauss_newton_steps > 0
    # the cost went down from the initial point (full objective, measured independently)
    model = res.model
    J0 = pmp.cost(model, model.init(0), X, y)
    assert pmp.cost(model, res.x, X, y) < J0


def test_bad_curvature_and_damping_are_refused():
    X, y = make_dataset("spirals", seed=0, points_per_class=10)
    from ocdl.errors import SolverError
    with pytest.raises(SolverError, match="curvature"):
        train(X, y, solver="newton", curvature="fisher", layers=2, width=3)
    with pytest.raises(SolverError, match="damping"):
        train(X, y, solver="newton", warm_start="none", curvature="gauss-newton", damping=0.0, layers=2,
              width=3)


def test_cli_flags_reach_newton_and_are_refused_elsewhere(tmp_path):
    """``--newton-warm-start none --newton-curvature gauss-newton`` run Newton from the
    initialisation: 4 iterations in all (an Adam warm start alone would be 1000), and the loss went
    down from the initial point's; with another solver the flags are one line on stderr, exit 2."""
    import json

    from conftest import run_ocdl_inprocess
    js = tmp_path / "o.json"
    rc, _, err = run_ocdl_inprocess("train", "--data", "spirals", "--points", "20", "--solver", "newton",
                                    "--newton-warm-start", "none", "--newton-curvature", "gauss-newton",
                                    "--layers", "3", "--width", "3", "--iterations", "4", "--quiet", "--json", js)
    assert rc == 0, err
    out = json.loads(js.read_text())
    assert out["iterations"] == 4 and "Newton steps" in out["message"]
    assert out["train_loss"] < out["history"][0]["loss"]
    rc, _, err = run_ocdl_inprocess("train", "--data", "spirals", "--points", "20", "--solver", "adam",
                                    "--newton-curvature", "gauss-newton", "--iterations", "2", "--quiet")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--newton-curvature" in err


@pytest.mark.slow
def test_gauss_newton_product_on_every_exact_integrator():
    """The product against autograd (1e-10 relative; measured ≤ 3e-16) for every integrator with
    an exact costate sweep on the outer and hamiltonian fields — explicit Runge–Kutta, the
    splittings and the implicit methods (slow: each compiles its sweep kernels once)."""
    from ocdl.models.resnet import exact_integrators
    X, y = make_dataset("spirals", seed=0, points_per_class=8)
    rng = np.random.default_rng(0)
    for field in ("outer", "hamiltonian"):
        for integrator in exact_integrators(field):
            model = make_model(X, y, field=field, integrator=integrator, layers=3, T=1.0, width=4, alpha=1e-2)
            z = model.flatten(model.init(1))
            v = rng.normal(size=z.size)
            got, want = GaussNewtonProduct(model, X, y)(z, v), _autograd_ggn(model, z, v, X, y)
            assert np.abs(got - want).max() <= 1e-10 * np.abs(want).max(), (field, integrator)
