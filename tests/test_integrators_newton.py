"""Newton stage solves in ``integrators`` (issue 16 item 3): agreement with fixed-point stages where
both converge, the Jacobian sources against each other, autograd through Newton, and a stiff
test problem (Van der Pol, ε = 1e-6, on its slow manifold) against scipy's Radau."""
import numpy as np
import pytest
import torch

import integrators
from integrators import newton, systems
from integrators.errors import IntegratorError
from integrators.stiff import largest_fixed_point_step, radau_reference, van_der_pol


def kepler_rhs(t, y):
    q, p = y[..., :2], y[..., 2:]
    r3 = ((q * q).sum(-1, keepdims=True)) ** 1.5
    cat = torch.cat if isinstance(y, torch.Tensor) else np.concatenate
    return cat([p, -q / r3], -1)


Y0 = np.array([0.5, 0.0, 0.0, np.sqrt(3.0)])        # Kepler, e = 0.5, at pericentre


@pytest.mark.parametrize("method", ["implicit_midpoint", "gauss2", "gauss3"])
@pytest.mark.parametrize("simplified", [True, False])
def test_newton_and_fixed_point_stages_give_the_same_solution(method, simplified):
    # both solve the same stage equations to round-off: 100 steps of one orbit agree to 1e-12
    # (the difference is round-off accumulated over the orbit, measured ≤ 6e-14)
    fp = integrators.solve(method, kepler_rhs, Y0, 0.0, 2 * np.pi, 100, stage_solver="fixed-point")
    nt = integrators.solve(method, kepler_rhs, Y0, 0.0, 2 * np.pi, 100, stage_solver="newton",
                           simplified=simplified)
    np.testing.assert_allclose(nt, fp, rtol=0, atol=1e-12)


def test_jacobian_sources_agree():
    # forward differences (numpy), torch autograd and the analytic Jacobian of Van der Pol:
    # FD to O(√ε) of the matrix's scale (truncation ½|∂²F| δ with δ = √ε max(1, |y|): 1.2e-5 of
    # 690 here), autograd to round-off
    vdp = van_der_pol(eps=1e-3)
    y = np.array([1.3, -0.4])
    exact = vdp.jacobian(0.0, y)
    fd = newton.jacobian(systems.PlainSystem(vdp.rhs), 0.0, (y,))
    np.testing.assert_allclose(fd, exact, rtol=0, atol=3e-8 * np.abs(exact).max())

    def rhs_t(t, y):
        return torch.stack([y[1], ((1.0 - y[0] ** 2) * y[1] - y[0]) / 1e-3])
    ad = newton.jacobian(systems.PlainSystem(rhs_t), 0.0, (torch.tensor(y),))
    np.testing.assert_allclose(ad.numpy(), exact, rtol=1e-15, atol=0)
    given = newton.jacobian(systems.PlainSystem(vdp.rhs), 0.0, (y,), vdp.jacobian)
    np.testing.assert_array_equal(given, exact)
    with pytest.raises(ValueError, match=r"jacobian returned shape \(3, 3\)"):
        newton.jacobian(systems.PlainSystem(vdp.rhs), 0.0, (y,), lambda t, y: np.eye(3))


def test_autograd_through_newton_stages_equals_the_fixed_point_derivative():
    # dy(T)/dy(0) by autograd through Newton's iteration (M detached) equals the one through the
    # fixed-point iteration (both converge to the implicit-function derivative) to 1e-11
    def jac(solver):
        y0 = torch.tensor(Y0, requires_grad=True)
        Y = integrators.solve("gauss2", kepler_rhs, y0, 0.0, 1.0, 10, stage_solver=solver)
        return torch.stack([torch.autograd.grad(Y[-1, i], y0, retain_graph=True)[0] for i in range(4)]).numpy()
    np.testing.assert_allclose(jac("newton"), jac("fixed-point"), rtol=0, atol=1e-11)


def test_bad_stage_options_are_refused():
    with pytest.raises(ValueError, match="stage_solver must be one of auto, fixed-point, newton"):
        integrators.solve("gauss2", kepler_rhs, Y0, 0.0, 1.0, 10, stage_solver="broyden")
    with pytest.raises(ValueError, match="jacobian must be a callable"):
        integrators.solve("gauss2", kepler_rhs, Y0, 0.0, 1.0, 10, jacobian=np.eye(4))


@pytest.fixture(scope="module")
def vdp():
    p = van_der_pol()
    return p, radau_reference(p)


def test_stiff_van_der_pol_newton_converges_far_beyond_fixed_point(vdp):
    # ε = 1e-6 (μ = 1000): ∂F/∂y has an eigenvalue ≈ −3/ε, so fixed-point stages need h ≲ 1e-6
    # (measured 9.9e-7 for gauss2); Newton converges over [0, 0.5] at h = 0.01 — 10⁴ times that
    problem, ref = vdp
    h_fp = largest_fixed_point_step("gauss2", problem)
    assert 1e-7 < h_fp < 1e-5
    steps = 50
    h = problem.t_end / steps
    assert h >= 10 * h_fp
    with pytest.raises(IntegratorError, match="gauss2: implicit stage equations not solved"):
        integrators.solve("gauss2", problem.rhs, problem.y0, 0.0, problem.t_end, steps, stage_solver="fixed-point")
    Y = integrators.solve("gauss2", problem.rhs, problem.y0, 0.0, problem.t_end, steps, stage_solver="newton",
                          jacobian=problem.jacobian)
    err = np.max(np.abs(Y[-1] - ref))
    # gauss2 on this stiff problem has the order of its stage order, 2 (order reduction,
    # Hairer–Wanner VI.7): measured 1.50e-5 at h = 0.01; the bound allows 2× that
    assert err <= 3e-5
    # the default ("auto") falls back to Newton (with a forward-difference Jacobian) and agrees
    Ya = integrators.solve("gauss2", problem.rhs, problem.y0, 0.0, problem.t_end, steps)
    np.testing.assert_allclose(Ya[-1], Y[-1], rtol=1e-9, atol=0)


@pytest.mark.parametrize("method,order", [("gauss2", 2), ("gauss3", 4), ("implicit_midpoint", 2)])
def test_stiff_order_against_radau(vdp, method, order):
    # observed order from h = 0.01 → 0.005 against Radau (rtol = atol = 1e-12): the stiff orders
    # of the Gauss methods (stage order s for even s, s + 1 for odd s; midpoint 2), within 0.3
    problem, ref = vdp
    errs = [np.max(np.abs(integrators.solve(method, problem.rhs, problem.y0, 0.0, problem.t_end, n,
                                            stage_solver="newton", jacobian=problem.jacobian,
                                            simplified=True)[-1] - ref)) for n in (50, 100)]
    assert abs(np.log2(errs[0] / errs[1]) - order) < 0.3, errs


def test_cli_stiff_study_and_stage_solver_flag(tmp_path, capsys):
    from ocdl.cli.main import main
    js = tmp_path / "s.json"
    assert main(["integrators", "--stiff", "--methods", "implicit_midpoint", "--json", str(js)]) == 0
    import json
    r = json.loads(js.read_text())["stiff"]["implicit_midpoint"]
    assert all(row["converged"] for row in r["runs"]) and r["fixed_point_max_step"] < 1e-5
    assert min(row["h_over_fixed_point"] for row in r["runs"]) >= 10
    assert main(["integrators", "--stiff", "--methods", "rk4"]) == 2
    assert "--methods names none of them" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["integrators", "--stage-solver", "broyden"])
    assert exc.value.code == 2
