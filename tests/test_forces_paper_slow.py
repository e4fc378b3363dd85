"""Issue 23 studies (``pytest -m slow tests/test_forces_paper_slow.py``): the PINN's forward and
extrapolation roles at (γ, ω0) = (1, 20), the PINN and Adam on the potential, and Adam under the
force paper's own set-up. References: the closed-form damped oscillator, solve_ivp, the truth.
"""
import numpy as np
import pytest
import torch

from ocdl.expr import compile_expr
from ocdl.forces.learn import learn_table
from ocdl.forces.pinn import DampedOscillator, exact_damped, fit_pinn
from ocdl.forces.potential import PotentialProblem, solve_potential, summarize
from ocdl.forces.problems import DragProblem
from ocdl.forces.simulate import simulate_drag, simulate_potential
from ocdl.forces.solvers import solve

pytestmark = pytest.mark.slow
BUMP = "0.008*v**2 + 2*v*exp(-(v-20)**2/20)/20"


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_pinn_forward_solver_at_gamma_1_omega0_20():
    res = fit_pinn(DampedOscillator(1.0, 20.0, 1.0, x0=1.0, v0=0.0), [], adam_steps=3000, lbfgs_steps=300,
                   collocation=256, seed=0)
    tt = np.linspace(0, 1, 1001)
    err = np.abs(res.predict(tt) - exact_damped(tt, 1.0, 20.0, 1.0, 0.0)).max()
    assert err <= 1e-2, err                    # measured 3.3e-3 (examples/pinn_roles.py)


def test_pinn_extrapolates_where_the_data_only_network_cannot():
    rng = np.random.default_rng(0)
    td = np.linspace(0, 0.3, 10)
    xd = exact_damped(td, 1.0, 20.0, 1.0, 0.0) + rng.normal(0, 0.02, 10)
    tt = np.linspace(0.3, 1.0, 701)
    ex = exact_damped(tt, 1.0, 20.0, 1.0, 0.0)
    out = {}
    for w in (0.0, 1.0):
        r = fit_pinn(DampedOscillator(1.0, 20.0, 1.0, td, xd), [], weight=w, adam_steps=3000, lbfgs_steps=300,
                     collocation=256, seed=0)
        out[w] = np.abs(r.predict(tt) - ex).max()
    assert out[1.0] <= 0.1 and out[0.0] >= 0.5, out     # measured 0.027 against 1.6


def test_pinn_and_adam_learn_the_potential():
    V = lambda x: x  # noqa: E731
    t, x = simulate_potential(V, 1.0, 20.0, 1.0, 0.0, T=1.0, samples=201)
    p = PotentialProblem(t, x, 1.0, 20.0, x0=1.0, v0=0.0)
    pinn = summarize(p, solve_potential(p, "pinn", adam_steps=3000, lbfgs_steps=300), "pinn", 0, "zero", truth=V)
    assert pinn["rel_l2_error"] <= 0.1, pinn["rel_l2_error"]           # measured 7.0 %
    adam = summarize(p, solve_potential(p, "adam", 1e-6, init="linear", iterations=1000, lr=0.01,
                                        continuation=False), "adam", 1e-6, "linear", truth=V)
    assert adam["rel_l2_error"] <= 0.03, adam["rel_l2_error"]          # measured 1.3 %


def test_adam_under_the_papers_setup_needs_a_larger_lambda():
    """9 pairs spaced by 5, Euler N = 20, uniform random start (the paper's Sec. 3 / Fig. 5): at
    λ = 1e-6 Adam stalls (the random start's components the data cannot see decay at a rate ∝ λ);
    at λ = 1e-4 it reaches the Gauss–Newton solution, whose 1.6 % is the floor of 9 pairs."""
    F = compile_expr(BUMP, ("v",))
    v0, vT = simulate_drag(F, 1.0, 10.0, samples=9, vmin=0, vmax=40)
    p = DragProblem(v0, vT, 1.0, 10.0, grid_step=1.0, steps=20, method="euler")

    def err(th):
        nodes, prof = p.profile(th)
        return np.linalg.norm(prof - F(nodes)) / np.linalg.norm(F(nodes))

    _, gn = learn_table(p, "newton", 1e-4, truth=F, init="random", seed=0)
    stall = solve(p, "adam", 1e-6, theta0=p.initial_table("random", 0), iterations=10000, lr=0.5)
    good = solve(p, "adam", 1e-4, theta0=p.initial_table("random", 0), iterations=10000, lr=0.5)
    assert 0.01 < gn["rel_l2_error"] < 0.02                       # measured 1.65 %
    assert err(good.x) <= 1.1 * gn["rel_l2_error"]                 # measured 1.65 %
    assert err(stall.x) >= 5 * gn["rel_l2_error"]                  # measured 17 %
