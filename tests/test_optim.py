"""The optimisation core (ocdl.optim): each rule against an independent reference, the status
semantics, divergence, checkpoint/resume and mini-batches."""
import numpy as np
import pytest
import torch

from ocdl.errors import SolverError
from ocdl.optim import (LBFGS, Adam, Batches, Callback, Checkpointing, Divergence, EarlyStopping, GradientDescent,
                        KeepBest, LevenbergMarquardt, Snapshots, Step, TorchLBFGS, minimize)

A = np.array([[3.0, 1.0], [1.0, 2.0]])
B = np.array([1.0, -2.0])
X_STAR = np.linalg.solve(A, B)           # analytic minimiser of ½xᵀAx − bᵀx


def quadratic(x, batch=None):
    return 0.5 * x @ A @ x - B @ x, A @ x - B


def rosenbrock_residual(x):
    return np.array([1.0 - x[0], 10.0 * (x[1] - x[0] ** 2)])


def rosenbrock_jacobian(x):
    return np.array([[-1.0, 0.0], [-20.0 * x[0], 10.0]])


def rosenbrock(x, batch=None):
    r, J = rosenbrock_residual(x), rosenbrock_jacobian(x)
    return float(r @ r), 2 * J.T @ r


@pytest.mark.parametrize("amsgrad", [True, False])
def test_adam_iterates_equal_torch_adam(amsgrad):
    # torch.optim.Adam is an independent implementation of the same update; it writes the first
    # moment as a lerp, so the iterates agree to round-off (observed ≤ 1e-15), not bit for bit
    x0 = np.array([2.0, -1.0])
    res = minimize(quadratic, x0, Adam(lr=0.1, schedule="constant", amsgrad=amsgrad), 50)
    t = torch.tensor(x0, requires_grad=True)
    opt = torch.optim.Adam([t], lr=0.1, amsgrad=amsgrad, foreach=False)
    for _ in range(50):
        opt.zero_grad()
        t.grad = torch.tensor(quadratic(t.detach().numpy())[1])
        opt.step()
    np.testing.assert_allclose(res.x, t.detach().numpy(), rtol=0, atol=1e-13)
    assert res.status == 1 and not res.success and "iteration limit" in res.message


# Armijo backtracking (and torch's strong-Wolfe search) sees a decrease only while s|g|² exceeds
# the round-off of f (~1e-16·|f|), so gradient descent and torch L-BFGS are asked for |g| ≤ 1e-7
# (torch L-BFGS stops with x unchanged at |g| = 5.4e-9 here: a gtol of 1e-10 is not met, and the
# run says so); the others reach 1e-10.
@pytest.mark.parametrize("rule,gtol", [(Adam(lr=0.05, schedule="constant"), 1e-10), (GradientDescent(lr=1.0), 1e-7),
                                       (LBFGS(gtol=1e-12), 1e-10), (TorchLBFGS(), 1e-7)],
                         ids=["adam", "gd", "scipy-lbfgs", "torch-lbfgs"])
def test_rules_reach_the_analytic_minimiser(rule, gtol):
    res = minimize(quadratic, np.array([2.0, -1.0]), rule, 2000, gtol=gtol)
    assert res.success and res.status == 0 and "converged" in res.message
    np.testing.assert_allclose(res.x, X_STAR, atol=10 * gtol)       # |x − x*| ≤ |g| / λ_min(A), λ_min > 0.1
    assert res.nit == len(res.history)
    np.testing.assert_allclose(res.fun, quadratic(X_STAR)[0], rtol=1e-14)


def test_levenberg_marquardt_and_lbfgs_solve_rosenbrock():
    lm = LevenbergMarquardt(rosenbrock_residual, rosenbrock_jacobian)
    res = minimize(lm.objective, np.array([-1.2, 1.0]), lm, 100)
    assert res.success and res.nit < 100
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-10)
    res = minimize(rosenbrock, np.array([-1.2, 1.0]), LBFGS(gtol=1e-12), 500)
    assert res.success
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-6)


def test_callback_stop_and_divergence_keep_the_last_good_iterate():
    res = minimize(quadratic, np.zeros(2), Adam(), 100, callback=Callback(lambda it, x, f: it == 5))
    assert res.status == 2 and not res.success and res.nit == 5

    def exploding(x, batch=None):
        f, g = quadratic(x)
        return (f if x[0] < 0.5 else float("nan")), g

    with pytest.raises(SolverError, match="diverged") as info:      # Adam's first step moves x₀ by lr = 1
        minimize(exploding, np.zeros(2), Adam(lr=1.0, schedule="constant"), 100, name="t")
    bad = info.value.result
    assert bad.status == -1 and not bad.success and np.array_equal(bad.x, [0.0, 0.0]) and np.isfinite(bad.fun)
    assert bad.fun == bad.history[-1]["loss"]


def test_an_error_inside_the_objective_keeps_the_last_recorded_iterate():
    # an inner solve failing at iteration 4 (SolverError) or an integrator failing (IntegratorError)
    # propagates with err.result = the iterate recorded at iteration 3 (what plain GD computes)
    from integrators.errors import IntegratorError
    for exc in (SolverError, IntegratorError):
        seen = []

        def failing(x, batch=None):
            seen.append(x.copy())
            if len(seen) == 4:
                raise exc("inner solve failed")
            return quadratic(x)

        class Plain:                     # x ← x − 0.1 g: a rule with no evaluations of its own
            def init(self, x, saved, run):
                return {}

            def update(self, state, p, run):
                return Step(p.x - 0.1 * p.g, state)

        with pytest.raises(exc, match="inner solve failed") as info:
            minimize(failing, np.zeros(2), Plain(), 50)
        res = info.value.result
        x_rec = np.zeros(2)                    # iteration 3 evaluates the iterate after two steps
        for _ in range(2):
            x_rec = x_rec - 0.1 * (A @ x_rec - B)
        assert res.nit == 3 and res.status == -1 and not res.success
        np.testing.assert_allclose(res.x, x_rec, rtol=0, atol=1e-15)
        assert "failed after iteration 3: inner solve failed" in res.message


def test_state_limit_counts_as_divergence():
    def obj(x, batch=None):
        return 1.0, -np.ones(2), {"state_max": 10.0 ** x[0]}
    with pytest.raises(SolverError, match="hidden state exploded"):
        minimize(obj, np.zeros(2), GradientDescent(lr=1.0, armijo=-1.0), 50,
                 divergence=Divergence(state_limit=1e6))


def _noisy(x, batch):
    """A stochastic quadratic: the batch picks rows of a fixed design (mini-batch least squares)."""
    rng = np.random.default_rng(0)
    M, t = rng.standard_normal((40, 2)), rng.standard_normal(40)
    Mb, tb = (M, t) if batch is None else (M[batch], t[batch])          # None: all data (the protocol)
    r = Mb @ x - tb
    return float(r @ r) / len(tb), 2 * Mb.T @ r / len(tb)


@pytest.mark.parametrize("sampler", [None, 7])
def test_interrupt_and_resume_bit_for_bit(sampler):
    def run(**kw):
        smp = Batches(40, sampler, seed=3) if sampler else None
        obj = _noisy if sampler else (lambda x, b=None: quadratic(x))
        return minimize(obj, np.array([2.0, -1.0]), Adam(lr=0.1), 30, sampler=smp, keep_best=KeepBest(),
                        snapshots=Snapshots((1, 3, 10)), **kw)

    full = run()
    saved = []
    with pytest.raises(KeyboardInterrupt):
        run(checkpointing=Checkpointing(saved.append, 4, lambda: len(saved) >= 2))
    assert saved[-1]["iteration"] == 9          # the interrupt saves the state it stops in
    resumed = run(state0=saved[-1])
    assert np.array_equal(full.x, resumed.x) and full.fun == resumed.fun
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    assert [i for i, _ in full.snapshots] == [i for i, _ in resumed.snapshots] == [1, 3, 10, 30]
    if sampler:     # fun: the certificate's full objective at the returned x (history rows: batch losses)
        assert full.fun == _noisy(full.x, None)[0]
    else:           # keep_best returns the lowest recorded loss (or the final iterate, when it is lower still)
        assert full.fun <= min(h["loss"] for h in full.history)


def test_finished_state_is_returned_without_iterating():
    saved = []
    res = minimize(quadratic, np.zeros(2), LBFGS(gtol=1e-12), 100, checkpointing=Checkpointing(saved.append))
    calls = []
    again = minimize(lambda x, b=None: calls.append(1) or quadratic(x), np.zeros(2), LBFGS(), 100,
                     state0=saved[-1])
    assert calls == [] and np.array_equal(again.x, res.x) and again.success and again.nit == res.nit


def test_batches_cover_every_sample_once_per_epoch():
    b = Batches(10, 4, seed=0)
    epoch = [b.draw() for _ in range(3)]
    assert [len(e) for e in epoch] == [4, 4, 2] and b.epoch == 1 and b.epoch_done
    assert sorted(np.concatenate(epoch).tolist()) == list(range(10))
    second = np.concatenate([b.draw() for _ in range(3)])
    assert sorted(second.tolist()) == list(range(10)) and b.epoch == 2


def test_adam_runs_on_torch_tensors_as_on_numpy():
    # the same rule steps torch tensors (e.g. a device backend): iterates equal the numpy run
    At, Bt = torch.tensor(A), torch.tensor(B)
    x0 = torch.tensor([2.0, -1.0], dtype=torch.float64)
    res_t = minimize(lambda x, b=None: (float(0.5 * x @ At @ x - Bt @ x), At @ x - Bt), x0, Adam(lr=0.1), 40)
    res_n = minimize(quadratic, np.array([2.0, -1.0]), Adam(lr=0.1), 40)
    assert isinstance(res_t.x, torch.Tensor)
    np.testing.assert_allclose(res_t.x.numpy(), res_n.x, rtol=0, atol=1e-15)


# ------------------------------------------------------------------ epochs and early stopping
def _score_peaking_at(epoch_best, seen):
    """An epoch metric that rises to epoch ``epoch_best`` and falls after it; records each x it sees."""
    def cb(epoch, x):
        seen[epoch] = np.array(x, copy=True)
        return {"score": -abs(epoch - epoch_best)}
    return cb


def test_early_stopping_restores_the_best_parameters():
    seen = {}
    res = minimize(_noisy, np.array([2.0, -1.0]), Adam(lr=0.1), 1000, sampler=Batches(40, 7, seed=1),
                   early_stopping=EarlyStopping(("score", "max"), 3, _score_peaking_at(4, seen)))
    # epochs 5, 6, 7 are worse than epoch 4: the run stops at the end of epoch 7 (6 batches an epoch)
    assert res.status == 2 and not res.success and "early stopping" in res.message
    assert max(seen) == 7 and res.nit == 7 * 6 and res.best_epoch == 4 and res.best_score == 0
    assert np.array_equal(res.x, seen[4])                     # the x the callback saw at epoch 4
    assert not np.array_equal(res.x, seen[7])
    assert [h["epoch"] for h in res.history if "epoch" in h] == list(range(1, 8))


def test_early_stopping_state_resumes_bit_for_bit():
    def run(**kw):
        return minimize(_noisy, np.array([2.0, -1.0]), Adam(lr=0.1), 1000, sampler=Batches(40, 7, seed=1),
                        early_stopping=EarlyStopping(("score", "max"), 3, _score_peaking_at(4, {})), **kw)
    full = run()
    saved = []
    with pytest.raises(KeyboardInterrupt):                    # interrupted after epoch 5: best and count saved
        run(checkpointing=Checkpointing(saved.append, 32, lambda: len(saved) >= 1))
    resumed = run(state0=saved[-1])
    assert np.array_equal(full.x, resumed.x) and full.message == resumed.message and full.nit == resumed.nit


def test_full_batch_sampler_computes_the_numbers_of_a_run_without_it():
    # Batches(n, B ≥ n) hands the objective None (all data, in order): every iteration is an epoch
    # and the iterates are bit for bit those of the plain run
    def obj(x, batch=None):
        return _noisy(x, np.arange(40) if batch is None else batch)
    plain = minimize(obj, np.array([2.0, -1.0]), Adam(lr=0.1), 20)
    epochs = []
    full = minimize(obj, np.array([2.0, -1.0]), Adam(lr=0.1), 20, sampler=Batches(40, 40),
                    early_stopping=EarlyStopping(epoch_callback=lambda e, x: epochs.append(e) or {"m": 1.0}))
    assert np.array_equal(plain.x, full.x) and epochs == list(range(1, 21))


def test_armijo_line_search_uses_the_iterations_batch():
    calls = []

    def obj(x, batch=None):
        calls.append(None if batch is None else tuple(batch))
        return _noisy(x, batch)
    minimize(obj, np.array([2.0, -1.0]), GradientDescent(lr=4.0), 12, sampler=Batches(40, 7, seed=0))
    # the full objective at x_0 and at the end (the mini-batch certificate's two evaluations) …
    assert calls[0] is None and calls[-1] is None
    calls = calls[1:-1]
    # … between them each iteration: one evaluation, then the trial points of its line search, all on one batch
    groups, cur = [], None
    for c in calls:
        if c != cur:
            groups.append(c)
            cur = c
    assert all(c is not None for c in calls) and len(calls) > 13        # backtracking happened
    assert len(groups) == 13                                            # 12 iterations + the final evaluation


def test_a_rule_converging_on_its_last_allowed_step_is_success():
    # torch L-BFGS with max_iter=50 inside one driver iteration ends early (gradient at tolerance):
    # that is its convergence test, even though the driver's iteration budget (1) is used up
    res = minimize(quadratic, np.array([2.0, -1.0]), TorchLBFGS(max_iter=50), 1)
    assert res.success and res.status == 0 and "ended its iterations early" in res.message
    np.testing.assert_allclose(res.x, X_STAR, atol=1e-10)


# ---------------------------------------------------------------- honest success (issue 22)
# `success` is the certificate at the returned x on the full objective; each case below used to
# report success without it.

def test_torch_lbfgs_budget_exhaustion_is_not_convergence():
    """Rosenbrock, 20 L-BFGS iterations allowed but only 10 evaluations: torch stops early on its
    budget at max |g| = 20.4 (measured) — that used to count as converged."""
    res = minimize(rosenbrock, np.array([-1.2, 1.0]), TorchLBFGS(max_iter=20, max_eval=10), 1)
    g = np.abs(rosenbrock(res.x)[1]).max()
    assert g > 1.0 and not res.success and res.status == 3
    assert "evaluation budget" in res.message and "> gtol" in res.message


def test_unchanged_x_is_not_convergence():
    """An inconsistent gradient (−∇f) leaves torch L-BFGS's line search without a step: x unchanged
    at |g| = 2 is reported as stalled, not converged."""
    def wrong(x, batch=None):
        return float(x @ x), -2.0 * x
    res = minimize(wrong, np.array([1.0, 0.0]), TorchLBFGS(), 50)
    assert not res.success and res.status in (1, 3)
    assert np.abs(2 * res.x).max() > 1e-3


def test_levenberg_marquardt_rejected_steps_are_not_convergence():
    """A residual that grows in every direction, r = 1 + 1e10 ‖x − x0‖₁, with a Jacobian that
    claims otherwise: no damped step lowers the cost in 40 tries (the smallest, ≈ 1e-20, still
    raises r by 1e-10) — stalled, and the gradient test at x fails. It used to say "converged:
    minimum to round-off"."""
    x0 = np.zeros(2)                     # (x0 + δ is then exact: a tiny δ is not lost to round-off)
    lm = LevenbergMarquardt(lambda x: np.array([1.0 + 1e10 * np.abs(x - x0).sum()]),
                            lambda x: np.array([[1.0, 0.0]]))
    res = minimize(lm.objective, x0.copy(), lm, 20)
    assert not res.success and res.status == 3 and "40 tries" in res.message and "max |Jᵀr|" in res.message


def test_minibatch_gtol_is_tested_on_the_full_objective():
    """Batch {0, 1} has zero residual at x0 (its gradient vanishes), the full objective does not:
    a batch gradient must not stop the run as converged; the certificate at the end is the full
    objective's gradient."""
    M = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    t = np.array([0.0, 0.0, 1.0, 2.0])

    def obj(x, batch):
        rows = slice(None) if batch is None else batch
        r = M[rows] @ x - t[rows]
        return float(r @ r), 2 * M[rows].T @ r

    class FirstBatchFirst(Batches):          # batches in a fixed order: [0, 1], then [2, 3]
        def draw(self):
            self.k = getattr(self, "k", -1) + 1
            self.epoch_done = self.k % 2 == 1
            return np.array([0, 1]) if self.k % 2 == 0 else np.array([2, 3])

    res = minimize(obj, np.zeros(2), GradientDescent(lr=0.1), 5, gtol=1e-8, sampler=FirstBatchFirst(4, 2))
    assert res.nit == 5 and not res.success
    full_g = np.abs(obj(res.x, None)[1]).max()
    assert f"max |gradient| {full_g:.2e}" in res.message and res.fun == obj(res.x, None)[0]


def test_keep_best_does_not_replace_a_converged_last_iterate():
    """f = cos x + x²/10: the rule jumps from x0 = π + 0.3 (f = 0.23, |g| = 0.98) to the
    stationary point x = 0 (f = 1, g = 0, a local maximum). With keep_best the earlier, lower
    iterate used to replace the last one after the test had passed there — returning a point
    that fails it under ``success``. Now the certified last iterate is returned."""
    xs = [np.array([np.pi + 0.3]), np.array([0.0])]

    def f(x, batch=None):
        return float(np.cos(x[0]) + 0.1 * x[0] ** 2), np.array([-np.sin(x[0]) + 0.2 * x[0]])

    class Jump:                      # x0 → stationary point x = 0 (a local maximum of f, |g| = 0)
        def init(self, x, saved, run):
            return {}

        def update(self, state, p, run):
            return Step(xs[1], state)

    res = minimize(f, xs[0], Jump(), 5, gtol=1e-12, keep_best=KeepBest())
    assert f(xs[0])[0] < f(xs[1])[0]                         # the earlier iterate has the lower f
    assert res.success and np.array_equal(res.x, xs[1])      # … but the certified last one is returned
    assert abs(f(res.x)[1][0]) <= 1e-12


def test_adam_first_order_certificate():
    """Adam's test: a stalled loss over 100 iterations AND max |g| ≤ 0.05 × its first value, both on
    the full objective. A cosine-decayed run to the quadratic's minimiser passes; a run whose rate is
    too small to move (lr = 1e-9: the loss 'stalls' at once) does not."""
    ok = minimize(quadratic, np.array([2.0, -1.0]), Adam(lr=0.05), 3000)
    assert ok.success and "relative loss decrease" in ok.message
    assert np.abs(quadratic(ok.x)[1]).max() <= 0.05 * np.abs(quadratic(np.array([2.0, -1.0]))[1]).max()
    slow = minimize(quadratic, np.array([2.0, -1.0]), Adam(lr=1e-9), 300)
    assert not slow.success and "its first value" in slow.message
    short = minimize(quadratic, np.array([2.0, -1.0]), Adam(lr=0.05), 50)     # too short for the window
    assert not short.success and "fewer than 100" in short.message


def test_removed_keywords_are_refused_naming_their_hook():
    """The keywords the hooks replaced raise one line naming the replacement; a bare function for a
    hook, and an unknown keyword, are refused too."""
    for key, hook in [("checkpoint", "checkpointing=Checkpointing(save=…)"), ("quiet", "progress=ProgressBar"),
                      ("hint", "divergence=Divergence(hint=…)"), ("monitor", "early_stopping=EarlyStopping")]:
        with pytest.raises(TypeError, match="was removed") as info:
            minimize(quadratic, np.zeros(2), Adam(), 5, **{key: None})
        assert hook in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(TypeError, match="takes a Callback"):
        minimize(quadratic, np.zeros(2), Adam(), 5, callback=lambda it, x, f: False)
    with pytest.raises(TypeError, match="unexpected keyword"):
        minimize(quadratic, np.zeros(2), Adam(), 5, checkpoint_evry=3)


def test_rule_state_is_the_checkpoint_and_update_is_pure():
    """A rule's state is what the checkpoint stores ("opt"): Adam's moments after k steps equal the
    closed-form recursion m_k = β₁ m_{k−1} + (1 − β₁) g_k, v_k = β₂ v_{k−1} + (1 − β₂) g_k² on the
    recorded gradients; and update does not mutate the state it is given (calling it twice on the
    same state gives the same step, bit for bit)."""
    from ocdl.optim import Point
    saved, grads = [], []

    def obj(x, batch=None):
        f, g = rosenbrock(x)
        grads.append(g.copy())
        return f, g
    minimize(obj, np.array([-1.2, 1.0]), Adam(lr=0.01, amsgrad=False), 5,
             checkpointing=Checkpointing(saved.append, every=3))
    m = v = np.zeros(2)
    for g in grads[:3]:
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
    st = saved[0]
    assert st["iteration"] == 3 and set(st["opt"]) == {"m", "v"}
    np.testing.assert_allclose(st["opt"]["m"], m, rtol=1e-15)
    np.testing.assert_allclose(st["opt"]["v"], v, rtol=1e-15)

    class Run:
        iterations, gtol = 10, None
    rule, x = Adam(lr=0.01), np.array([-1.2, 1.0])
    state = rule.init(x, None, Run())
    p = Point(1, x, *rosenbrock(x), {})
    a, b = rule.update(state, p, Run()), rule.update(state, p, Run())
    assert np.array_equal(a.x, b.x) and not np.any(state["m"]) and a.stop is None


def test_step_info_joins_its_row_and_a_last_step_is_recorded():
    """A rule x ← x/2 that reports ``{"halvings": k}`` for the iterate it steps from and stops at
    iteration 3 with one last step: rows 1–3 carry their info (as given: an int stays an int), the
    last step x0/8 is evaluated and recorded as iteration 4 (no info: no step from it), and the run
    ends there with the rule's status. With the cap at 3 the last step is returned unrecorded."""
    from ocdl.optim import STALLED, Stop

    class Halve:
        def init(self, x, saved, run):
            return {"k": np.array(0.0)}

        def update(self, state, p, run):
            k = int(state["k"]) + 1
            return Step(p.x / 2, {"k": np.array(float(k))}, {"halvings": k},
                        Stop("halved three times", STALLED) if k == 3 else None)

    x0 = np.array([8.0, -4.0])
    res = minimize(quadratic, x0, Halve(), 10)
    assert res.status == STALLED and res.message.startswith("halved three times") and res.nit == 4
    assert [h.get("halvings") for h in res.history] == [1, 2, 3, None]
    assert all(type(h["halvings"]) is int for h in res.history[:3])
    np.testing.assert_array_equal(res.x, x0 / 8)
    assert res.history[-1]["loss"] == quadratic(x0 / 8)[0]
    capped = minimize(quadratic, x0, Halve(), 3)
    assert capped.nit == 3 and np.array_equal(capped.x, x0 / 8) and capped.fun == quadratic(x0 / 8)[0]


def test_keep_best_and_snapshots_are_hooks_and_the_old_spellings_fail_loudly():
    """``keep_best=True`` / ``snapshots=(…)`` were plain keywords; they are hooks now and a plain
    value is a one-line TypeError naming the hook. KeepBest returns the lowest recorded loss and the
    certificate is evaluated there: a rule that walks x = 0.1 → 1 → 2 on f = x² returns x = 0.1 with
    f and the gradient test of x = 0.1 (g = 0.2 > gtol: not converged)."""
    with pytest.raises(TypeError, match=r"keep_best= takes a KeepBest\(…\) hook, got bool"):
        minimize(quadratic, np.zeros(2), Adam(), 3, keep_best=True)
    with pytest.raises(TypeError, match=r"snapshots= takes a Snapshots\(…\) hook, got tuple"):
        minimize(quadratic, np.zeros(2), Adam(), 3, snapshots=(1, 2))
    path = [np.array([0.1]), np.array([1.0]), np.array([2.0])]

    class Walk:
        def init(self, x, saved, run):
            return {"k": np.array(0.0)}

        def update(self, state, p, run):
            k = int(state["k"]) + 1
            return Step(path[min(k, 2)], {"k": np.array(float(k))})

    res = minimize(lambda x, b=None: (float(x[0] ** 2), 2 * x), path[0].copy(), Walk(), 3, gtol=1e-8,
                   keep_best=KeepBest(), snapshots=Snapshots((1, 2)))
    assert np.array_equal(res.x, path[0]) and res.fun == 0.1 ** 2 and res.best
    assert not res.success and "max |gradient| 2.00e-01" in res.message
    assert [(i, float(v[0])) for i, v in res.snapshots] == [(1, 0.1), (2, 1.0), (3, 0.1)]
