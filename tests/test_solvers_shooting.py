"""Shooting on the reduced Hamiltonian BVP: residual, shared KKT, exact Jacobian."""
import numpy as np
import pytest

from ocdl import pmp
from ocdl.data import make_dataset
from ocdl.errors import InputError
from ocdl.solvers import make_model, train
from ocdl.solvers.casadi_kkt import shooting_dense
from ocdl.solvers.shooting_blocks import ShootingSystem, bordered_solve


@pytest.fixture(scope="module")
def data():
    return make_dataset("spirals", seed=0, points_per_class=20)


@pytest.mark.parametrize("T,segments", [(1.0, 1), (5.0, 5)])
def test_shooting_solves_bvp_and_kkt(data, T, segments):
    X, y = data
    model = make_model(X, y, layers=20, T=T, width=2, alpha=1e-3)
    # warm start to KKT 1e-8 (not the default 1e-10): same end point here, fewer exact
    # Hessian-vector products in the newton warm start (the test's cost under load)
    res = train(X, y, solver="shooting", model=model, seed=0, iterations=30, segments=segments, warm_tol=1e-8)
    # the convergence test is boundary residual and KKT residual ≤ tol = 1e-8: the KKT residual
    # is not implied by the boundary one (the θ block amplifies a boundary mismatch through the
    # layers: measured KKT 1.1e-8 at boundary residual 5.7e-9 for T = 1, one segment)
    assert res.success and res.status == 0
    assert res.boundary_residual <= 1e-8
    # the BVP is the discrete PMP system: the shared KKT residual vanishes with it
    assert pmp.kkt_residual(model, res.x, X, y) <= 1e-8


@pytest.mark.parametrize("activation,segments,classes", [("tanh", 1, 2), ("tanh", 2, 3), ("softplus", 3, 2),
                                                         ("relu", 2, 3)])
def test_structured_jacobian_equals_casadi_dense(activation, segments, classes):
    """The structured shooting Jacobian (per-sample blocks + θ coupling, eliminated by its Schur
    complement) against CasADi's dense AD Jacobian of the symbolic residual, ≤ 1e-10: both are
    exact derivatives of the same function (measured agreement 4e-15 to 6e-14 with entries up to
    ~10, i.e. round-off of the Schur elimination)."""
    X, y = make_dataset("spirals", seed=1, points_per_class=6)
    if classes > 2:
        y = np.arange(len(y)) % classes
    model = make_model(X, y, layers=6, T=1.0, width=2, alpha=1e-2, activation=activation)
    X0 = model.lift(X)
    spec, F, Jf, bounds, nu = shooting_dense(model, X0, y, segments)
    system = ShootingSystem(model, X0, y, segments)
    assert system.size == nu
    rng = np.random.default_rng(0)
    u = 0.05 * rng.normal(size=nu)
    guess = np.zeros((spec.m * spec.m + spec.m, model.layers))
    r_ref, th_ref = F(u, guess)
    r, theta, traj = system.evaluate(u, guess.T)
    # the residual and the layer solves agree with CasADi's rootfinder to round-off
    assert np.abs(np.asarray(r_ref).ravel() - r).max() <= 1e-12
    assert np.abs(np.asarray(th_ref).T - theta).max() <= 1e-11
    J = system.eliminated_jacobian(system.jacobian_blocks(traj))
    assert np.abs(J - np.asarray(Jf(u, guess))).max() <= 1e-10


@pytest.mark.parametrize("chunk", [None, 2 * 3 * 5], ids=["one-chunk", "chunks-of-2-samples"])
def test_bordered_solve_against_dense(monkeypatch, chunk):
    """Block elimination against numpy's dense solve of the assembled bordered matrix, with the
    Schur complement accumulated in one GEMM or over chunks of 2 samples (the last of 1)."""
    from ocdl.solvers import shooting_blocks
    if chunk is not None:
        monkeypatch.setattr(shooting_blocks, "SCHUR_CHUNK", chunk)
    rng = np.random.default_rng(3)
    n, b, G = 7, 3, 5
    A = rng.normal(size=(n, b, b)) + 3 * np.eye(b)
    E, F, D = rng.normal(size=(n, b, G)), rng.normal(size=(G, n, b)), rng.normal(size=(G, G)) + 4 * np.eye(G)
    r1, r2 = rng.normal(size=(n, b)), rng.normal(size=G)
    M = np.zeros((n * b + G, n * b + G))
    for i in range(n):
        M[i * b:(i + 1) * b, i * b:(i + 1) * b] = A[i]
    M[:n * b, n * b:], M[n * b:, :n * b], M[n * b:, n * b:] = E.reshape(n * b, G), F.reshape(G, n * b), D
    ref = np.linalg.solve(M, np.concatenate([r1.ravel(), r2]))
    yv, g = bordered_solve(A, E, F, D, r1, r2)
    assert np.abs(np.concatenate([yv.ravel(), g]) - ref).max() <= 1e-12 * np.abs(ref).max()


def test_shooting_softplus_solves_the_softplus_network(data):
    """``activation="softplus"`` is solved, not tanh: at the returned point the gradient of the
    softplus network's cost by torch autograd (independent of the sweeps and of shooting)
    vanishes, and the tanh network's does not."""
    from conftest import autograd_reference
    X, y = data
    model = make_model(X, y, layers=10, T=1.0, width=2, alpha=1e-2, activation="softplus")
    res = train(X, y, solver="shooting", model=model, seed=0, iterations=30)
    assert res.success and res.boundary_residual <= 1e-8
    _, g = autograd_reference(model, res.x, X, y)
    gmax = max(np.abs(v).max() for v in g.values())
    # KKT ≤ 1e-8 in the scaled units (θ-gradient / h): the plain gradient is ≤ 1e-8 as well
    assert gmax <= 1e-8
    tanh_model = make_model(X, y, layers=10, T=1.0, width=2, alpha=1e-2, activation="tanh")
    _, gt = autograd_reference(tanh_model, res.x, X, y)
    assert max(np.abs(v).max() for v in gt.values()) > 1e-4


def test_shooting_rejects_other_fields(data):
    X, y = data
    with pytest.raises(InputError, match="solver 'shooting' does not support field 'inner'; it supports: outer"):
        train(X, y, solver="shooting", field="inner", iterations=1)


def test_lm_step_damps_a_singular_system_instead_of_crashing():
    """A singular undamped (Gauss–Newton) system — relu's dead units made the bordered Schur
    complement singular and ``ocdl train --solver shooting --activation relu`` ended with an
    internal LinAlgError — is a rejected trial: the rule damps (λ > 0) and takes that step."""
    import types

    from ocdl.solvers.shooting import ShootingLM
    target = np.array([1.0, -2.0])

    class Singular:                         # r(u) = u − target; the λ = 0 solve is singular
        lams = []

        def linearise(self, u):
            return u - target, np.zeros(1), None

        def step(self, blocks, r, lam):
            self.lams.append(lam)
            if lam == 0.0:
                raise np.linalg.LinAlgError("Singular matrix")
            return -r / (1.0 + lam), np.zeros(1)

        def residual(self, u, theta):
            return u - target
    pb = Singular()
    rule = ShootingLM(pb, tol=1e-8)
    state = rule.init(np.zeros(2), None, None)
    point = types.SimpleNamespace(x=np.zeros(2), info={"boundary_residual": 3.0, "kkt": 3.0})
    step = rule.update(state, point, None)
    assert pb.lams[0] == 0.0 and pb.lams[1] > 0.0 and step.stop is None
    # the damped step −r/(1 + λ) lowers ‖r‖ (λ = 1e-10: by a factor ≈ 1e10)
    assert np.linalg.norm(step.x - target) < 1e-9 * np.linalg.norm(target)
    assert step.info["lm_lambda"] == pb.lams[1]
