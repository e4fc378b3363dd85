"""shooting's Adam warm start (``warm_start="adam"``) is the adam solver's rule — AMSGrad with a
cosine-decaying rate, the lowest-J iterate handed over — not plain constant-rate Adam, which
diverged as newton's warm start on digits (docs/compare.md). Measured on the iterates the
callback sees, against the first-step property of Adam, an independent evaluation of J
(``pmp.cost``) and the old rule run on the same objective."""
import numpy as np
import pytest

from ocdl import optim, pmp
from ocdl.data import make_dataset
from ocdl.solvers import make_model, train
from ocdl.solvers.pontryagin import KKTObjective
from ocdl.solvers.shooting import shooting

WARM, LR = 100, 0.5         # a too-large lr for this small problem (shooting's default is 0.02)


@pytest.fixture(scope="module")
def problem():
    X, y = make_dataset("spirals", seed=0, points_per_class=30)
    model = make_model(X, y, layers=8, T=3.0, width=2, alpha=1e-2)
    seen = {}

    def cb(it, params, f):
        seen[it] = model.flatten({k: np.array(v) for k, v in params.items()})

    # no LM step: the warm start alone (its rows are the history's first WARM)
    res = shooting(model, model.init(seed=0), X, y, iterations=0, warm_start="adam", warm_iterations=WARM, lr=LR,
                   callback=cb)
    old = optim.minimize(KKTObjective(model, X, y), model.flatten(model.init(seed=0)),
                         optim.Adam(LR, "constant", amsgrad=False), WARM)
    return model, X, y, res, seen, old


def test_warm_start_steps_decay_like_the_cosine_schedule(problem):
    """Adam's first step is lr in every coordinate with a nonzero gradient (m̂/√v̂ = ±1); the cosine
    schedule over 100 steps ends at ≈ 2.5·10⁻⁴ lr (times |m̂|/√v̂, which AMSGrad keeps O(1)), so the
    last step is ≤ 10⁻³ of the first. The old constant-rate rule's last step on the same objective
    stays above 10⁻² of its first (measured 0.5 → checked here), so the test separates the rules."""
    model, X, y, res, seen, old = problem
    assert [row["phase"] for row in res.history] == ["adam"] * WARM
    z = [seen[it] for it in range(1, WARM + 1)]
    first, last = np.abs(z[1] - z[0]).max(), np.abs(z[-1] - z[-2]).max()
    assert first == pytest.approx(LR, rel=1e-6)
    assert last <= 1e-3 * first
    xs = []
    optim.minimize(KKTObjective(model, X, y), model.flatten(model.init(seed=0)),
                   optim.Adam(LR, "constant", amsgrad=False), WARM,
                   callback=optim.Callback(lambda it, x, f: xs.append(np.array(x)) and False))
    assert np.abs(xs[-1] - xs[-2]).max() > 1e-2 * np.abs(xs[1] - xs[0]).max()


def test_warm_start_takes_the_adam_solvers_iterates(problem):
    """The same rule as the pmp-adam solver (costate gradient, AMSGrad, cosine over the run) at the
    same lr and step count: the same iterates (float64; 1e-10 relative — two runs of one rule)."""
    model, X, y, res, seen, old = problem
    ref = train(X, y, solver="pmp-adam", model=model, seed=0, iterations=WARM, lr=LR)
    ours = [row["loss"] for row in res.history]
    theirs = [row["loss"] for row in ref.history]
    assert len(theirs) == WARM
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_hand_over_is_no_worse_than_the_warm_start_and_beats_the_old_rule(problem):
    """The warm start ends at its lowest J (evaluated independently), below the old rule's last
    iterate, which ends > 5 % above its own best (measured 0.6047 against 0.5487)."""
    model, X, y, res, seen, old = problem
    old_losses = np.array([row["loss"] for row in old.history])
    assert old.fun > 1.05 * old_losses.min()
    warm = [pmp.cost(model, model.unflatten(seen[it]), X, y) for it in range(1, WARM + 1)]
    assert min(warm) == pytest.approx(min(row["loss"] for row in res.history), rel=1e-12)
    assert warm[-1] <= min(warm) * (1 + 1e-12)
    assert warm[-1] < old.fun
