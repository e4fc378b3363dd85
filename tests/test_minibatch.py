"""Mini-batch training of the gradient solvers (ocdl.solvers.gradient.Batching on ocdl.optim):
the batch gradient is exact, epochs/validation/early stopping, defaults by data size, resume."""

import numpy as np
import pytest

from ocdl.data import load_checkpoint, spirals
from ocdl.errors import InputError
from ocdl.optim import Batches
from ocdl.solvers import FULL_BATCH_MAX, make_model, train
from ocdl.solvers.gradient import autograd_objective, costate_objective


@pytest.mark.parametrize("field,integrator", [("outer", "euler"), ("inner", "rk4"), ("hamiltonian", "verlet")])
def test_batch_costate_gradient_is_exact_for_that_batch(field, integrator):
    # the costate sweep on the rows of a batch against torch reverse mode on the same rows, taken
    # out of the data before the autograd objective is built (independent indexing and gradient)
    X, y = spirals(30, seed=4)
    model = make_model(X, y, field=field, integrator=integrator, layers=6, T=2.0, alpha=1e-2, beta=1e-3)
    x = model.flatten(model.init(seed=5))
    batch = Batches(len(y), 13, seed=2)
    for _ in range(3):
        b = batch.draw()
        f1, g1, _ = costate_objective(model, X, y)(x, b)
        f2, g2, _ = autograd_objective(model, X[b], y[b])(x)
        assert abs(f1 - f2) <= 1e-14 * abs(f2)
        # relative to the gradient's norm: round-off of a few hundred sums, measured ≤ 2.5e-16
        assert np.linalg.norm(g1 - g2) <= 1e-13 * np.linalg.norm(g2)
        assert np.linalg.norm(g1 - autograd_objective(model, X, y)(x)[1]) > 1e-3 * np.linalg.norm(g2)


@pytest.mark.parametrize("solver", ["adam", "pmp-adam", "pmp-gd"])
def test_epochs_test_accuracy_and_early_stopping(solver):
    X, y = spirals(40, seed=1)
    Xt, yt = spirals(40, seed=2)
    model = make_model(X, y, layers=4, T=1.0)
    res = train(X, y, solver=solver, model=model, batch_size=16, epochs=30, validation=0.25, patience=4,
                test=(Xt, yt), seed=0)
    rows = [h for h in res.history if "epoch" in h]
    n_train = 60                                                      # 80 − the 25 % validation part
    assert rows[-1]["iteration"] == len(rows) * 4 == res.nit          # ⌈60 / 16⌉ = 4 batches an epoch
    assert [h["epoch"] for h in rows] == list(range(1, len(rows) + 1))
    acc = [h["val_accuracy"] for h in rows]
    best = int(np.argmax(acc))                                        # first of equals: strict improvement
    assert res.best_epoch == best + 1 and res.best_val_accuracy == acc[best]
    # on this small set validation accuracy peaks within the first epochs: the run stops patience
    # epochs after the best one
    assert res.status == 2 and len(rows) == best + 1 + 4 and "early stopping" in res.message
    # the returned parameters are those the best epoch was measured at
    assert model.accuracy(res.x, Xt, yt) == rows[best]["test_accuracy"]
    # fun is the full training cost (the 60 training rows) at the returned parameters
    from ocdl import pmp
    from ocdl.data.real import stratified_split
    tr, _ = stratified_split(y, 0.25, 0)
    assert len(tr) == n_train and res.fun == pmp.cost(model, res.x, X[tr], y[tr])


def test_defaults_follow_the_data_size(monkeypatch):
    import ocdl.solvers as solvers
    seen = {}

    def fake(model, params0, X, y, *, iterations=None, callback=None, quiet=True, lr=None, batch_size=None,
             epochs=None, batch_seed=0):
        seen.update(iterations=iterations, n=len(y), **{k: v for k, v in (("lr", lr), ("batch_size", batch_size),
                                                                            ("epochs", epochs)) if v is not None})
        raise StopIteration
    monkeypatch.setitem(solvers.SOLVERS, "pmp-adam", fake)
    small = spirals(FULL_BATCH_MAX // 2, seed=0)                        # n = FULL_BATCH_MAX: full batch
    with pytest.raises(StopIteration):
        train(*small, solver="pmp-adam")
    assert "batch_size" not in seen and seen["iterations"] == 3000 and "lr" not in seen
    seen.clear()
    big = spirals(FULL_BATCH_MAX // 2 + 1, seed=0)
    with pytest.raises(StopIteration):
        train(*big, solver="pmp-adam")
    assert seen["batch_size"] == solvers.DEFAULT_BATCH and seen["epochs"] == solvers.DEFAULT_EPOCHS
    assert seen["lr"] == solvers.BATCH_LR
    with pytest.raises(InputError, match="--batch-size applies to the solvers"):
        train(*small, solver="pmp-lbfgs", batch_size=8)


@pytest.mark.parametrize("solver", ["adam", "pmp-adam", "pmp-gd"])
def test_mini_batch_interrupt_and_resume_is_bit_for_bit(solver, tmp_path):
    # the sampler's generator and position, the best-by-validation iterate and the patience count
    # are in the checkpoint (written and read through the file format)
    from ocdl.data import save_checkpoint
    X, y = spirals(30, seed=3)
    kw = dict(solver=solver, layers=4, T=1.0, seed=3, batch_size=8, epochs=6, validation=0.2, patience=50,
              test=(X[:10], y[:10]))
    full = train(X, y, **kw)
    saved, count = {}, {"n": 0}

    def stop():
        count["n"] += 1
        return count["n"] == 10                                     # mid-epoch (4 batches an epoch)

    with pytest.raises(KeyboardInterrupt):
        train(X, y, checkpoint=lambda st: saved.update(st=st), should_stop=stop, **kw)
    save_checkpoint(tmp_path, saved["st"], {"a": 1})
    resumed = train(X, y, state0=load_checkpoint(tmp_path, {"a": 1}), **kw)
    assert all(np.array_equal(resumed.x[k], full.x[k]) for k in full.x)
    strip = [{k: v for k, v in h.items() if k != "time_s"} for h in full.history]
    assert [{k: v for k, v in h.items() if k != "time_s"} for h in resumed.history] == strip
    assert resumed.best_epoch == full.best_epoch and resumed.fun == full.fun


def test_compare_records_held_out_accuracy_against_time(tmp_path):
    from ocdl.solvers.compare import compare, plot
    X, y = spirals(20, seed=1)
    Xt, yt = spirals(20, seed=2)
    out = compare(X, y, ["pmp-adam", "pmp-lbfgs"], X_test=Xt, y_test=yt, layers=4, T=1.0, iterations=12,
                  options={"pmp-adam": {"batch_size": 16}})
    rows = [h for h in out["solvers"]["pmp-adam"]["history"] if "epoch" in h]
    assert [h["epoch"] for h in rows] == [1, 2, 3, 4]                     # 12 steps, ⌈40/16⌉ = 3 per epoch
    assert all("test_accuracy" in h for h in rows)
    lb = [h for h in out["solvers"]["pmp-lbfgs"]["history"] if "test_accuracy" in h]
    assert lb and all(0 <= h["test_accuracy"] <= 1 for h in lb)           # from the snapshots
    plot(out, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 10000


def test_stochastic_msa_steps_on_the_iterations_batch():
    # stochastic E-MSA with the exact step and its acceptance test (metric "exact"; the mini-batch
    # default "state" has no acceptance test): every accepted step decreases the cost of the batch it
    # was computed on
    from ocdl import pmp
    from ocdl.solvers.msa import MSARule
    X, y = spirals(30, seed=7)
    model = make_model(X, y, layers=4, T=1.0, width=4)
    seen = []
    orig = MSARule.update

    def update(self, state, p, run):
        step = orig(self, state, p, run)
        b = p.batch
        seen.append((len(b), pmp.cost(model, model.unflatten(p.x), X[b], y[b]), p.f,
                     pmp.cost(model, model.unflatten(step.x), X[b], y[b])))
        return step
    MSARule.update = update
    try:
        res = train(X, y, solver="msa", model=model, batch_size=16, epochs=3, seed=1, metric="exact")
    finally:
        MSARule.update = orig
    assert res.nit == 3 * 4 and [n for n, *_ in seen] == [16, 16, 16, 12] * 3
    for _, before, f, after in seen:
        assert before == pytest.approx(f, rel=1e-13) and after < before
