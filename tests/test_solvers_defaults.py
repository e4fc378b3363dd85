"""The defaults table (``ocdl.solvers.defaults.choose``) as a function of the data's shape, and its
agreement with what ``train`` actually runs (``default_batching``)."""
import pytest

from ocdl import solvers
from ocdl.solvers.defaults import FULL_BATCH_MAX, choose


@pytest.mark.parametrize("d,classes", [(2, 2), (13, 3), (64, 10)])
def test_small_sets_train_in_full_batch_with_width_three_d(d, classes):
    out = choose(FULL_BATCH_MAX, d, classes)
    assert out["batch_size"] is None and out["epochs"] is None
    assert out["iterations"] == solvers.DEFAULT_ITERATIONS["adam"]
    assert out["width"] == 3 * d
    assert (out["layers"], out["T"], out["alpha"], out["normalize"]) == (20, 5.0, solvers.DEFAULT_ALPHA, "standard")


@pytest.mark.parametrize("solver,batch,epochs", [("adam", 128, 60), ("pmp-adam", 128, 60), ("msa", 128, 30),
                                                 ("newton", 512, 10)])
def test_large_sets_train_in_mini_batches_as_default_batching_does(solver, batch, epochs):
    n = FULL_BATCH_MAX + 1
    out = choose(n, 40, 10, solver=solver)
    assert (out["batch_size"], out["epochs"], out["iterations"]) == (batch, epochs, None)
    # the table and the function train() applies agree (one source of the numbers)
    applied = solvers.default_batching(solver, n, {})
    assert applied["batch_size"] == out["batch_size"] and applied["epochs"] == out["epochs"]
    assert applied.get("lr") == out["lr"] and applied.get("hessian_sample") == out["hessian_sample"]


def test_full_batch_solvers_keep_iterations_on_large_sets():
    out = choose(5000, 10, 2, solver="pmp-lbfgs")
    assert out["batch_size"] is None and out["iterations"] == solvers.DEFAULT_ITERATIONS["pmp-lbfgs"]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        choose(0, 3, 2)
    with pytest.raises(ValueError):
        choose(10, 3, 1)
