"""ocdl compare: same problem for every solver, shared KKT measure, JSON keys, plot, errors."""
import json

import numpy as np
import pytest

from ocdl import pmp
from ocdl.data import make_dataset
from ocdl.solvers.compare import compare, time_to_target

KEYS = {"final_loss", "train_accuracy", "test_accuracy", "iterations", "wall_time_s", "kkt_residual", "converged",
        "message", "time_to_target_s", "history"}


def test_time_to_target_is_first_crossing():
    hist = [{"loss": 1.0, "time_s": 0.1}, {"loss": 0.5, "time_s": 0.2}, {"loss": 0.4, "time_s": 0.3}]
    assert time_to_target(hist, 0.5) == 0.2
    assert time_to_target(hist, 0.1) is None


def test_compare_library_reports_shared_kkt_and_target(monkeypatch):
    X, y = make_dataset("moons", seed=0, points_per_class=15)
    Xt, yt = make_dataset("moons", seed=5, points_per_class=15)
    captured = {}
    import ocdl.solvers as S
    real = S.SOLVERS["pmp-lbfgs"]

    def spy(model, params0, X_, y_, **kw):
        res = real(model, params0, X_, y_, **kw)
        captured["x"], captured["model"] = res.x, model
        return res

    monkeypatch.setitem(S.SOLVERS, "pmp-lbfgs", spy)
    out = compare(X, y, ["pmp-lbfgs", "msa"], X_test=Xt, y_test=yt, layers=5, T=2.0, width=2,
                  iterations=30)
    assert set(out) == {"solvers", "settings"}
    for r in out["solvers"].values():
        assert KEYS <= set(r)
    r = out["solvers"]["pmp-lbfgs"]
    # the reported KKT residual is max(‖∂J/∂θ_k‖∞/h, ‖∂J/∂(W, μ)‖∞) at the returned point; reference
    # from an independent torch autograd gradient (round-off apart: 1e-13)
    model = captured["model"]
    _, g = pmp.autograd_value_and_grad(model, captured["x"], X, y)
    kkt = max(np.abs(g["K"]).max() / model.h, np.abs(g["b"]).max() / model.h, np.abs(g["W"]).max(),
              np.abs(g["mu"]).max())
    assert r["kkt_residual"] == pytest.approx(kkt, rel=1e-13)
    # the best solver reaches the default target (1.05 × best loss) by definition
    best = min(out["solvers"].values(), key=lambda v: v["final_loss"])
    assert best["time_to_target_s"] is not None
    assert out["settings"]["target_loss"] == pytest.approx(1.05 * out["settings"]["best_loss"])


def test_compare_cli_writes_json_and_plot(ocdl_cli, tmp_path):
    js, png = tmp_path / "c.json", tmp_path / "c.png"
    r = ocdl_cli("compare", "--data", "spirals", "--points", "15", "--solvers", "pmp-lbfgs,msa",
                 "--layers", "4", "--T", "2", "--iterations", "10", "--json", str(js), "--plot", str(png), "--quiet")
    assert r.returncode == 0, r.stderr
    data = json.loads(js.read_text())
    assert set(data["solvers"]) == {"pmp-lbfgs", "msa"}
    assert KEYS <= set(data["solvers"]["msa"])
    assert png.stat().st_size > 1000
    assert "kkt" in r.stdout and "msa" in r.stdout


def test_compare_cli_unknown_solver_is_one_line_error(ocdl_cli):
    r = ocdl_cli("compare", "--data", "spirals", "--solvers", "adam,newtn")
    assert r.returncode == 2
    assert "newtn" in r.stderr and "newton" in r.stderr


def test_compare_takes_train_defaults_on_real_data(monkeypatch, tmp_path):
    # on a real set, compare's model gets the same input map as ocdl train's (standard: the
    # training mean and population std, checked against scikit-learn's StandardScaler), train's
    # weight decay, and held-out accuracy in the history rows
    from sklearn.preprocessing import StandardScaler

    import ocdl.solvers as S
    from ocdl.cli.main import main
    from ocdl.data import load_real
    models = {}
    real = S.make_model

    def spy(*a, **kw):
        m = real(*a, **kw)
        models.setdefault(spy.cmd, m)
        return m

    monkeypatch.setattr(S, "make_model", spy)
    spy.cmd = "compare"
    js = tmp_path / "c.json"
    assert main(["compare", "--data", "iris", "--solvers", "adam,pmp-adam,msa", "--iterations", "5", "--quiet",
                 "--json", str(js), "--plot", str(tmp_path / "c.png")]) == 0
    spy.cmd = "train"
    assert main(["train", "--data", "iris", "--solver", "pmp-adam", "--iterations", "2", "--quiet",
                 "--save", str(tmp_path / "m.npz")]) == 0
    Xtr = load_real("iris")[0]
    sc = StandardScaler().fit(Xtr)
    for cmd in ("compare", "train"):
        np.testing.assert_allclose(models[cmd].input_shift, sc.mean_, rtol=1e-14)
        np.testing.assert_allclose(models[cmd].input_scale, sc.scale_, rtol=1e-14)
    data = json.loads(js.read_text())
    assert data["settings"]["normalize"] == "standard" and data["settings"]["alpha"] == S.DEFAULT_ALPHA
    for name in ("adam", "pmp-adam", "msa"):
        assert "test_accuracy" in data["solvers"][name]["history"][-1]
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_compare_refuses_up_front_when_a_solver_would_not_fit_in_memory(monkeypatch, capsys):
    # the memory guard (ocdl.jobs.train.guard) runs for every solver before any runs:
    # with 1 MB "available", newton's estimate is refused with exit 2 naming the flag, no solver ran
    import ocdl.jobs.budget as budget
    import ocdl.solvers as S
    from ocdl.cli.main import main
    ran = []
    monkeypatch.setattr(budget, "available_memory", lambda: 1 << 20)
    monkeypatch.setitem(S.SOLVERS, "adam", lambda *a, **k: ran.append("adam"))
    assert main(["compare", "--data", "iris", "--solvers", "adam,newton", "--iterations", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "would need about" in err[0] and "reduce" in err[0]
    assert ran == []


def test_time_to_accuracy_is_first_crossing_upwards():
    hist = [{"loss": 1.0, "time_s": 0.1, "test_accuracy": 0.5}, {"loss": 0.5, "time_s": 0.2},
            {"loss": 0.4, "time_s": 0.3, "test_accuracy": 0.9}]
    assert time_to_target(hist, 0.8, "test_accuracy") == 0.3
    assert time_to_target(hist, 0.95, "test_accuracy") is None


def test_stratified_subset_keeps_class_shares():
    # independent reference: the per-class counts of a subset must be the class shares of the
    # full labels times size, rounded (largest remainders), and the indices distinct and in range
    from ocdl.data.real import stratified_subset
    y = np.repeat([0, 1, 2], [59, 71, 48])                  # wine's class sizes before the split
    idx = stratified_subset(y, 40, seed=3)
    assert len(idx) == 40 and len(np.unique(idx)) == 40 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(np.bincount(y[idx]), [13, 16, 11])   # 13.26, 15.96, 10.79
    np.testing.assert_array_equal(stratified_subset(y, 400), np.arange(len(y)))
    assert not np.array_equal(idx, stratified_subset(y, 40, seed=4))


def test_compare_cli_train_size_and_target_accuracy(ocdl_main, tmp_path):
    js, png = tmp_path / "c.json", tmp_path / "c.png"
    rc, out, err = ocdl_main("compare", "--data", "wine", "--train-size", "30", "--solvers",
                           "pmp-lbfgs,msa", "--width", "13", "--layers", "3", "--iterations", "5",
                           "--target-accuracy", "0.5", "--json", js, "--plot", png, "--quiet")
    assert rc == 0, err
    data = json.loads(js.read_text())
    s = data["settings"]
    assert s["n_train"] == 30 and s["train_size"] == 30 and s["target_accuracy"] == 0.5 and s["n_test"] == 45
    for r in data["solvers"].values():
        assert KEYS | {"time_to_accuracy_s", "memory_bytes"} <= set(r)
        # time_to_accuracy_s is the first history row at or above the given target (recomputed here)
        first = next((row["time_s"] for row in r["history"] if row.get("test_accuracy", -1) >= 0.5), None)
        assert r["time_to_accuracy_s"] == first
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("flags, words", [
    (["--train-size", "500"], ["--train-size", "133"]),
    (["--train-size", "2"], ["2 samples", "3 classes"]),
    (["--target-accuracy", "1.5"], ["--target-accuracy", "(0, 1)"]),
])
def test_compare_cli_bad_train_size_or_target_is_one_line_error(ocdl_main, tmp_path, flags, words):
    png = tmp_path / "c.png"
    rc, out, err = ocdl_main("compare", "--data", "wine", "--solvers", "pmp-lbfgs", "--iterations", "2",
                           "--plot", png, *flags)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), err
    assert not png.exists()


def test_compare_cli_warm_tol_reaches_shooting(ocdl_main, monkeypatch):
    # --warm-tol is shooting's warm_tol keyword (its newton warm start's stopping KKT residual);
    # the other solvers never see it; a non-positive value is one line, exit 2
    import ocdl.solvers as S
    seen = {}
    real = S.SOLVERS["pmp-lbfgs"]

    def spy(model, params0, X, y, **kw):
        seen["shooting"] = kw
        return real(model, params0, X, y, iterations=2, callback=kw.get("callback"))

    monkeypatch.setitem(S.SOLVERS, "shooting", spy)
    rc, out, err = ocdl_main("compare", "--data", "wine", "--train-size", "20", "--width", "13", "--layers", "2",
                             "--solvers", "shooting,pmp-lbfgs", "--iterations", "2", "--warm-tol", "1e-6", "--quiet")
    assert rc == 0, err
    assert seen["shooting"]["warm_tol"] == 1e-6 and seen["shooting"]["segments"] == 1
    rc, out, err = ocdl_main("compare", "--data", "wine", "--solvers", "shooting", "--warm-tol", "-1")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--warm-tol" in err


def test_compare_guard_is_given_the_iterations_and_bound_asked_for(ocdl_main, monkeypatch):
    # the up-front time guard must estimate the run that will happen: --iterations 7, not the
    # solver's default, against the --max-seconds bound its refusal message tells the user to
    # raise (before the fix, `--iterations 100` on a large conv model was refused with "1000
    # iterations would take about 4.4e3 s", and --max-seconds was ignored)
    import ocdl.jobs.train as train_job
    seen = []
    monkeypatch.setattr(train_job, "guard", lambda solver, model, n, options=None, iterations=None,
                        max_seconds=None: seen.append((solver, iterations, max_seconds)))
    rc, out, err = ocdl_main("compare", "--data", "iris", "--solvers", "pmp-lbfgs", "--iterations", "7",
                             "--max-seconds", "5000", "--quiet")
    assert rc == 0, err
    assert seen == [("pmp-lbfgs", 7, 5000.0)]
