"""newton and ipopt: KKT residual by the shared ocdl.pmp.kkt_residual; multipliers are costates."""
import numpy as np
import pytest

from ocdl import pmp
from ocdl.data import make_dataset
from ocdl.solvers import make_model, train


@pytest.fixture(scope="module")
def spirals_small():
    X, y = make_dataset("spirals", seed=0, points_per_class=30)
    return X, y


# Round-off level of the KKT residual at this problem's minimum (measured): the Newton iteration
# with tol = 0 stalls at 2.8e-14 (trust region collapses), and a relative perturbation of the
# parameters by one ulp (2.2e-16 · N(0, 1) per entry) moves the residual to 1.4e-13 (median) /
# 4.3e-13 (max of 20). ROUNDOFF_KKT = 1e-12 is that sensitivity with a factor 2 of margin; the
# solvers are run with tol = ROUNDOFF_KKT, their success is their own test kkt ≤ tol.
ROUNDOFF_KKT = 1e-12


def test_newton_reaches_kkt_tolerance_at_a_local_minimum(spirals_small):
    X, y = spirals_small
    model = make_model(X, y, layers=8, T=3.0, width=2, alpha=1e-2)
    res = train(X, y, solver="newton", model=model, seed=0, iterations=200, warm_iterations=300, tol=ROUNDOFF_KKT)
    kkt = pmp.kkt_residual(model, res.x, X, y)      # shared function, not the solver's report
    # the solver stops at KKT ≤ 1e-12 (ROUNDOFF_KKT); Newton's last steps are quadratic down to round-off
    assert res.success and res.status == 0 and kkt <= ROUNDOFF_KKT
    assert res.kkt == pytest.approx(kkt, rel=1e-12)
    assert res.fun == pytest.approx(pmp.cost(model, res.x, X, y), rel=1e-13)
    # every history row carries ‖F(z)‖∞
    assert all("kkt" in row for row in res.history)
    # second-order check with an independent Hessian: finite differences of the costate gradient
    z = model.flatten(res.x)
    eps = 1e-5
    grad = lambda zz: model.flatten(pmp.value_and_grad(model, model.unflatten(zz), X, y)[1])  # noqa: E731
    H = np.stack([(grad(z + eps * e) - grad(z - eps * e)) / (2 * eps) for e in np.eye(z.size)])
    lam = np.linalg.eigvalsh(0.5 * (H + H.T))
    # FD error ~1e-9 absolute; a saddle would show a clearly negative eigenvalue
    assert lam[0] > -1e-6 * lam[-1]


def test_ipopt_multipliers_are_the_costates():
    X, y = make_dataset("spirals", seed=1, points_per_class=12)
    model = make_model(X, y, layers=5, T=2.0, width=2, alpha=1e-2)
    res = train(X, y, solver="ipopt", model=model, seed=0, iterations=300)
    assert res.success
    # IPOPT stops at tol 1e-10 (scaled); measured KKT 7.8e-13 and multipliers = costates to 1.2e-12
    # relative: bars 1e-11 (an interior-point end point, not round-off)
    assert pmp.kkt_residual(model, res.x, X, y) <= 1e-11
    _, costates = pmp.costate(model, res.x, X, y)
    lam = res.costates                                   # (N, n, d): multipliers of g_k, k = 0..N-1
    scale = np.abs(costates[1:]).max()
    assert np.abs(lam - costates[1:]).max() <= 1e-11 * scale


def test_full_space_residual_of_newton_point_is_tiny(spirals_small):
    """The reduced-space solver's claim checked on the full-space system built in CasADi."""
    from ocdl.solvers.casadi_kkt import full_space_residual
    X, y = spirals_small
    model = make_model(X, y, layers=8, T=3.0, width=2, alpha=1e-2)
    res = train(X, y, solver="newton", model=model, seed=0, iterations=200, warm_iterations=300, tol=ROUNDOFF_KKT)
    F = full_space_residual(model, res.x, X, y)
    # state/costate/boundary blocks: round-off of the sweeps (~1e-16 relative to O(1) states)
    assert max(F["state"], F["costate"], F["boundary"]) <= 1e-13
    assert F["max"] <= ROUNDOFF_KKT                     # measured 4.2e-14
    # and a non-stationary point shows up in the stationarity block only
    F0 = full_space_residual(model, model.init(seed=0), X, y)
    assert F0["max"] > 1e-3 and max(F0["state"], F0["costate"], F0["boundary"]) <= 1e-13
    assert F0["max"] == pytest.approx(pmp.kkt_residual(model, model.init(seed=0), X, y), rel=1e-13)


def test_newton_history_is_one_run_and_the_iteration_cap_is_not_success(spirals_small):
    X, y = spirals_small
    model = make_model(X, y, layers=8, T=3.0, width=2, alpha=1e-2)
    res = train(X, y, solver="newton", model=model, seed=0, iterations=3, warm_iterations=20)
    # one history over the phases (Adam warm start, then Newton), numbered 1..nit
    assert [r["iteration"] for r in res.history] == list(range(1, res.nit + 1))
    assert [r["phase"] for r in res.history] == ["adam"] * 20 + ["newton"] * 3
    assert res.status == 1 and not res.success and "iteration limit" in res.message
    assert res.kkt == pytest.approx(pmp.kkt_residual(model, res.x, X, y), rel=1e-12) and res.kkt > 1e-10
    seen = []
    res = train(X, y, solver="newton", model=model, seed=0, warm_iterations=20,
                callback=lambda it, p, f: seen.append((it, f, p["K"].shape)) or it == 5)
    assert res.status == 2 and not res.success and res.nit == 5 and len(seen) == 5
    assert seen[-1][1] == res.history[-1]["loss"] and seen[-1][2] == model.init(seed=0)["K"].shape


def test_ipopt_iteration_cap_is_not_success():
    X, y = make_dataset("spirals", seed=1, points_per_class=12)
    model = make_model(X, y, layers=5, T=2.0, width=2, alpha=1e-2)
    res = train(X, y, solver="ipopt", model=model, seed=0, iterations=3)
    assert res.status == 1 and not res.success and "iteration limit" in res.message
    assert len(res.history) == 4                    # IPOPT's starting point and 3 iterations


def test_newton_without_warm_start_converges_on_wine():
    """Trust-region Newton–CG from the default initialisation, no Adam/L-BFGS warm start, on a small
    real set (wine, 133 training samples, width 13, 5 layers): it converges (KKT ≤ 1e-10, its own
    test) and the returned point is stationary by torch autograd's gradient of the cost — an
    independent reference (no costate sweep) — to 1e-9 (the KKT residual scales θ-gradients by
    1/h = 1, so the two measure the same numbers up to round-off)."""
    from conftest import autograd_reference

    from ocdl.data.real import load_real
    X, y, _, _ = load_real("wine")
    res = train(X, y, solver="newton", warm_start="none", seed=0, layers=5, width=13)
    assert res.success and res.kkt <= 1e-10
    assert all(row.get("phase") == "newton" for row in res.history)        # no warm-start rows
    _, g = autograd_reference(res.model, res.x, X, y)
    assert max(np.abs(v).max() for v in g.values()) <= 1e-9
