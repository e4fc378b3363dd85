"""The one damping rule of the Levenberg–Marquardt codes (:class:`ocdl.optim.lm.Damping`): its λ
sequence against the documented update formulas, written out by hand here, for both tests
(accept/reject by decrease; the ratio test), and the rule each user declares."""
import numpy as np
import pytest

from ocdl.optim.driver import Point
from ocdl.optim.lm import LM_DAMPING, Damping, LevenbergMarquardt
from ocdl.optim.result import STALLED


def scripted(accept_from):
    """A trial that records the λ it was given and lowers the cost once λ ≥ ``accept_from``."""
    seen = []

    def trial(lam):
        seen.append(lam)
        return ("step", lam), lam >= accept_from
    return trial, seen


def test_decrease_test_raises_lambda_until_a_trial_lowers_the_cost():
    # LM's rule from μ = 1e-4: 1e-4, 4e-4, 1.6e-3, 6.4e-3, 2.56e-2 ≥ 1e-2 → accepted, next μ = 2.56e-2 / 3
    trial, seen = scripted(1e-2)
    d = LM_DAMPING.search(1e-4, trial)
    np.testing.assert_allclose(seen, [1e-4 * 4 ** k for k in range(5)], rtol=1e-15)
    assert d.accepted and d.tries == 5 and d.payload == ("step", d.lam)
    np.testing.assert_allclose([d.lam, d.next], [2.56e-2, 2.56e-2 / 3], rtol=1e-15)
    assert LM_DAMPING.search(1e-13, scripted(0.0)[0]).next == 1e-12      # the floor max(μ/3, 1e-12)


def test_decrease_test_gives_up_after_its_tries_and_says_stalled():
    trial, seen = scripted(np.inf)
    d = Damping("decrease", increase=10.0, decrease=10.0, tries=7, least=1e-10).search(0.0, trial)
    # λ = 0 (the undamped step), then max(10 λ, 1e-10): 1e-10, 1e-9, …, 1e-5; after the 7th, 1e-4
    np.testing.assert_allclose(seen, [0.0] + [10.0 ** k for k in range(-10, -4)], rtol=1e-14)
    assert not d.accepted and d.payload is None and d.tries == 7
    np.testing.assert_allclose(d.next, 1e-4, rtol=1e-14)
    stop = Damping(tries=7).gives_up("‖r‖", "boundary residual 1")
    assert stop.status == STALLED and stop.message == "no damped step lowers ‖r‖ in 7 tries (boundary residual 1)"


def test_a_singular_solve_is_a_rejected_trial():
    seen = []

    def trial(lam):
        seen.append(lam)
        if lam == 0.0:
            raise np.linalg.LinAlgError("Singular matrix")
        return lam, True
    rule = Damping("decrease", increase=10.0, decrease=10.0, tries=30, least=1e-10, zero_below=1e-12)
    d = rule.search(0.0, trial)
    assert seen == [0.0, 1e-10] and d.accepted and d.lam == 1e-10
    assert d.next == 1e-10 / 10                             # λ/10 (λ ≥ 1e-12)
    assert rule.search(5e-13, trial).next == 0.0            # below zero_below: back to the undamped step


@pytest.mark.parametrize("rho, accepted, factor", [(-1.0, False, 1.5), (5e-5, False, 1.5), (0.1, True, 1.5),
                                                   (0.5, True, 1.0), (0.9, True, 1 / 1.5)])
def test_ratio_test_updates_lambda_by_the_ratio_of_actual_to_predicted_decrease(rho, accepted, factor):
    """Martens (2010) §4.1: λ ← 3/2 λ if ρ < 1/4, 2/3 λ if ρ > 3/4; the step taken if ρ > 1e-4; one
    trial per call."""
    calls = []
    d = Damping("ratio", increase=1.5, decrease=1.5, accept=1e-4).search(2.0, lambda lam: (calls.append(lam), rho))
    assert calls == [2.0] and d.tries == 1 and d.lam == 2.0 and d.accepted is accepted
    np.testing.assert_allclose(d.next, 2.0 * factor, rtol=1e-15)


def test_unknown_test_is_refused():
    with pytest.raises(ValueError, match="unknown test 'armijo'"):
        Damping("armijo")


def test_levenberg_marquardt_steps_equal_the_damped_normal_equations():
    """One LM step on r(x) = A x − b (J = A): δ solves (AᵀA + μ diag(AᵀA)) δ = −Aᵀ r with the μ from
    the state (solved here by scipy's lstsq on the stacked system, independent of the rule's
    np.linalg.solve); accepted (the cost falls), μ ← μ/3."""
    from scipy.linalg import lstsq
    A = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, -1.0]])
    b = np.array([1.0, 2.0, 0.5])
    lm = LevenbergMarquardt(lambda x: A @ x - b, lambda x: A)
    x0 = np.array([3.0, -2.0])
    state = dict(lm.init(x0, None, None), mu=np.array(0.5))
    f, g = lm.objective(x0)
    step = lm.update(state, Point(1, x0, f, g, {}), None)
    D = np.sqrt(0.5 * np.diag(A.T @ A))
    delta = lstsq(np.vstack([A, np.diag(D)]), np.concatenate([-(A @ x0 - b), np.zeros(2)]))[0]
    np.testing.assert_allclose(step.x, x0 + delta, rtol=1e-12)
    assert step.stop is None and float(step.state["mu"]) == 0.5 / 3
