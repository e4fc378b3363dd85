"""Longer force-learning studies (run with ``pytest -m slow tests/test_forces_slow.py``).

The issue's bars for position (≤ 5 % from 2,000 points; Verlet beats Euler at equal depth),
Adam on drag, and the PINN baseline on the oscillator. Data always from solve_ivp.
"""
import pytest

from ocdl.expr import compile_expr
from ocdl.forces.learn import learn_table
from ocdl.forces.oscillator import OscillatorProblem, solve_oscillator
from ocdl.forces.problems import DragProblem, PositionProblem
from ocdl.forces.simulate import simulate_drag, simulate_oscillator, simulate_position

pytestmark = pytest.mark.slow

POSITION_LAW = "2*sin(x) - 0.3*(x-5)"


@pytest.fixture(scope="module")
def position_data():
    F = compile_expr(POSITION_LAW, ("x",))
    return F, simulate_position(F, 2.0, 5.0, 0.5, 2000)


def _position(position_data, method, steps):
    F, (x0, v0, kind, vT) = position_data
    assert kind.sum() == 1000
    p = PositionProblem(x0, v0, kind, vT, 2.0, 5.0, 0.5, grid_step=0.5, steps=steps, method=method)
    _, s = learn_table(p, "newton", 1e-5, truth=F, continuation=True)
    return s


def test_position_verlet_recovers_nonmonotone_force_and_beats_euler(position_data):
    verlet = _position(position_data, "verlet", 20)
    euler = _position(position_data, "euler", 20)
    assert verlet["rel_l2_error"] <= 0.05, verlet["rel_l2_error"]         # measured 3.4 %
    assert verlet["rel_l2_error"] < 0.5 * euler["rel_l2_error"], (verlet["rel_l2_error"], euler["rel_l2_error"])


def test_position_gauss2_recovers_force_with_ten_layers(position_data):
    s = _position(position_data, "gauss2", 10)
    assert s["rel_l2_error"] <= 0.05, s["rel_l2_error"]                   # measured 3.1 %


def test_adam_recovers_drag_law():
    F = compile_expr("12*tanh(v/15)", ("v",))
    v0, vT = simulate_drag(F, 1.0, 10.0, 50, 0, 40)
    p = DragProblem(v0, vT, 1.0, 10.0, steps=20, method="rk4")
    _, s = learn_table(p, "adam", 1e-6, iterations=ADAM_ITERATIONS, lr=0.5, truth=F)
    assert s["rel_l2_error"] <= 0.02, s["rel_l2_error"]


ADAM_ITERATIONS = 2000   # measured: 1.4 % at 1,000 steps, 0.6 % at 3,000


def test_pinn_baseline_reaches_the_eom_network_accuracy():
    t, x = simulate_oscillator(1.0, 20.0, 1.0, 0.0, 1.0, 40, 0.04, seed=0)
    p = OscillatorProblem(t, x, 1.0, 0.0, steps=200)
    gn = solve_oscillator(p, "newton")
    pinn = solve_oscillator(p, "pinn", adam_steps=6000, lbfgs_steps=500)
    assert abs(pinn["omega0"] - 20.0) / 20.0 <= 0.005
    # the PINN is a different estimator of the same data: within 3 Gauss–Newton standard errors
    assert abs(pinn["gamma"] - 1.0) <= 3 * gn["gamma_stderr"]
    assert abs(pinn["omega0"] - gn["omega0"]) <= 3 * gn["omega0_stderr"]
