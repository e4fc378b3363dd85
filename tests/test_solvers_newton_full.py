"""Full-space Newton (``newton``, formulation="full"): the residual F, its sparse Jacobian, and
quadratic convergence — checked against independent references (the costate sweep of
``ocdl.pmp``, itself tested against autograd; central finite differences; the shared
``ocdl.pmp.kkt_residual``)."""
import numpy as np
import pytest

from ocdl import pmp
from ocdl.data import make_dataset
from ocdl.errors import SolverError
from ocdl.solvers import make_model, train
from ocdl.solvers.newton_full import FullSpaceKKT

CASES = [  # (field, integrator, width, normalise inputs, classes)
    ("outer", "euler", 3, False, 2),
    ("inner", "rk4", 2, True, 2),
    ("hamiltonian", "heun", 4, False, 3),
]


def _problem(field, integrator, width, normalize, classes, n_per_class=4, layers=3):
    if classes == 2:
        X, y = make_dataset("spirals", seed=0, points_per_class=n_per_class)
    else:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((3 * n_per_class, 2))
        y = np.repeat(np.arange(3), n_per_class)
    X = 3.0 * X + 1.0                     # off-centre, so the range normalisation is not identity
    model = make_model(X, y, field=field, integrator=integrator, layers=layers, T=2.0, width=width,
                       alpha=1e-2, beta=0.1, normalize=normalize)
    return model, X, y


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_residual_at_sweeps_is_the_contract_gradient(case):
    """With states/costates from the sweeps, the state/costate/boundary blocks vanish and the
    parameter block is ∂J/∂θ_k / h (θ) and ∂J/∂(W, μ) (head) of ocdl.pmp.value_and_grad."""
    model, X, y = _problem(*case)
    params = model.init(seed=1)
    sysF = FullSpaceKKT(model, X, y)
    F, J = sysF.residual(sysF.from_params(params))
    Jref, g = pmp.value_and_grad(model, params, X, y)
    gf = model.flatten(g)
    nt = sysF.spec.n_theta
    # round-off of O(1) quantities through ≤ 3 layers (measured ≤ 4.4e-16 in every block and case):
    # 1e-13 absolute is 500 ulps
    assert np.abs(F[sysF.npar:]).max() <= 1e-13
    assert np.abs(F[:nt] - gf[:nt] / model.h).max() <= 1e-13
    assert np.abs(F[nt:sysF.npar] - gf[nt:]).max() <= 1e-13
    assert J == pytest.approx(Jref, rel=1e-13)
    assert np.abs(F).max() == pytest.approx(pmp.kkt_residual(model, params, X, y), rel=1e-13)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_sparse_jacobian_equals_finite_differences(case):
    model, X, y = _problem(*case, n_per_class=2, layers=2)
    sysF = FullSpaceKKT(model, X, y)
    rng = np.random.default_rng(3)
    z = sysF.from_params(model.init(seed=2)) + 0.1 * rng.standard_normal(sysF.size)  # off the manifold
    _, _, A = sysF.jacobian(z)
    A = A.toarray()
    eps = 1e-6
    E = np.eye(sysF.size)
    Afd = np.stack([(sysF.residual(z + eps * e)[0] - sysF.residual(z - eps * e)[0]) / (2 * eps) for e in E],
                   axis=1)
    # central differences: truncation ~eps²·|F'''| ~1e-12, round-off ~1e-16/eps ~1e-10 (×1/h rows)
    assert np.abs(A - Afd).max() <= 1e-8 * max(1.0, np.abs(A).max())
    assert np.count_nonzero(A) < 0.5 * A.size          # it is sparse (and assembled as such)


# the round-off level of the KKT residual at this problem's minimum (tests/test_solvers_newton.py)
ROUNDOFF_KKT = 1e-12


@pytest.fixture(scope="module")
def spirals_small():
    X, y = make_dataset("spirals", seed=0, points_per_class=30)
    model = make_model(X, y, layers=8, T=3.0, width=2, alpha=1e-2)
    return model, X, y


def test_full_space_newton_converges_quadratically_to_a_kkt_point(spirals_small):
    model, X, y = spirals_small
    res = train(X, y, solver="newton", model=model, seed=0, formulation="full",
                warm_start="lbfgs", warm_tol=1e-4, tol=ROUNDOFF_KKT)
    kkt = pmp.kkt_residual(model, res.x, X, y)          # shared function, not the solver's report
    # measured: ‖F(z)‖∞ 8.9e-16 after three Newton steps, shared KKT 1.6e-16
    assert res.success and res.kkt_full <= ROUNDOFF_KKT and kkt <= 1e-13
    assert res.fun == pytest.approx(pmp.cost(model, res.x, X, y), rel=1e-13)
    rows = [r for r in res.history if r["phase"] == "newton-full"]
    assert rows and all("kkt" in r for r in rows)
    r = [rows[0]["kkt"]] + [row["kkt"] for row in rows[1:]]
    # quadratic convergence: some step squares the residual up to a modest constant
    # (log r_{k+1} / log r_k ≥ 1.7 while r_k is still above the round-off floor)
    orders = [np.log(b) / np.log(a) for a, b in zip(r, r[1:]) if 1e-9 < a < 1e-2]
    assert orders and max(orders) >= 1.7
    # the reduced-space solver from the same warm start finds the same stationary point
    red = train(X, y, solver="newton", model=model, seed=0, formulation="reduced",
                warm_start="lbfgs", warm_tol=1e-4, tol=ROUNDOFF_KKT)
    # (measured on the old tolerance 1e-10: same cost to the last bit; parameters 8.1e-11 apart)
    assert red.fun == pytest.approx(res.fun, rel=1e-13)
    assert np.abs(model.flatten(red.x) - model.flatten(res.x)).max() <= 1e-9


def test_mumps_gives_the_same_newton_step(spirals_small):
    from ocdl.solvers.newton_full import sparse_lu_solve
    model, X, y = spirals_small
    sysF = FullSpaceKKT(model, X, y)
    F, _, A = sysF.jacobian(sysF.from_params(model.init(seed=0)))
    s1, _ = sparse_lu_solve(A, -F, "superlu")
    s2, _ = sparse_lu_solve(A, -F, "mumps")
    # both direct LU solves of the same (moderately conditioned) system; the mumps route checks
    # its own residual and falls back to SuperLU if MUMPS failed silently (measured: residual
    # 5.8e-16, the two steps identical)
    assert np.abs(A @ s1 + F).max() <= 1e-13 and np.abs(s1 - s2).max() <= 1e-10 * np.abs(s1).max()


def test_bad_options_raise_one_line_errors(spirals_small):
    model, X, y = spirals_small
    with pytest.raises(SolverError, match="formulation"):
        train(X, y, solver="newton", model=model, formulation="bogus")
    with pytest.raises(SolverError, match="linear_solver"):
        train(X, y, solver="newton", model=model, formulation="full", linear_solver="cholesky",
              warm_iterations=5)


def test_stalled_line_search_falls_back_to_lbfgs_and_still_converges(spirals_small):
    """From a rough start (KKT ≤ 1e-2) the merit line search stalls (measured: step < 0.1 on the
    first Newton step); the solver returns to L-BFGS and then converges to the KKT point."""
    model, X, y = spirals_small
    res = train(X, y, solver="newton", model=model, seed=0, formulation="full", warm_tol=1e-2, tol=ROUNDOFF_KKT)
    assert res.restarts >= 1
    assert res.success and pmp.kkt_residual(model, res.x, X, y) <= ROUNDOFF_KKT
