"""Long runs lose nothing (issue 8) for ``ocdl forces learn`` and ``ocdl meanfield train``.

The reference for every resumed run is an uninterrupted run with the same settings and seed: the
Adam-based solvers carry their moments (and the particle sampler its generator state) in the
checkpoint, so the resumed parameters must equal the uninterrupted ones bit for bit
(``assert_array_equal``). pmp-lbfgs restarts its memory on resume, so there the check is the
converged minimum (relative 1e-6 on the cost; the problem is strictly convex near it).
"""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from ocdl.data import load_checkpoint, save_checkpoint
from ocdl.expr import compile_expr
from ocdl.forces.learn import learn_table
from ocdl.forces.oscillator import OscillatorProblem, solve_oscillator
from ocdl.forces.problems import DragProblem
from ocdl.forces.simulate import simulate_drag, simulate_oscillator
from ocdl.data.datasets import spirals
from ocdl.meanfield import training as tr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAW = "12*tanh(v/15)"


def _env():
    return dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", MPLBACKEND="Agg")


def _stop_at(n):
    """A should_stop hook that turns true on its n-th call (the n-th step of the run)."""
    count = {"n": 0}

    def stop():
        count["n"] += 1
        return count["n"] == n
    return stop


def _through_files(tmp_path, store):
    """Round-trip every saved state through the checkpoint file format."""
    for name, st in store.items():
        save_checkpoint(tmp_path / name, st, {"s": 1})
        store[name] = load_checkpoint(tmp_path / name, {"s": 1})


def _drag_problem(steps=10):
    v0, vT = simulate_drag(compile_expr(LAW, ("v",)), 1.0, 10.0, 30, 0, 30)
    return DragProblem(v0, vT, 1.0, 10.0, steps=steps, method="rk4", grid_step=2.0)


# ---- forces learn (library: stages, interrupts, resume) ----------------------------------------
@pytest.mark.parametrize("solver", ["adam", "pmp-adam"])
def test_forces_adam_interrupt_and_resume_is_bit_for_bit(solver, tmp_path):
    p = _drag_problem()
    full, s_full = learn_table(p, solver, 1e-4, iterations=40, lr=0.5)
    store, stop = {}, _stop_at(23)

    def stages(name):
        return {"state0": store.get(name), "checkpoint": lambda st: store.__setitem__(name, st),
                "checkpoint_every": 10, "should_stop": stop}
    with pytest.raises(KeyboardInterrupt):
        learn_table(p, solver, 1e-4, iterations=40, lr=0.5, stages=stages)
    assert store["final"]["iteration"] == 23
    _through_files(tmp_path, store)
    res, s = learn_table(p, solver, 1e-4, iterations=40, lr=0.5, stages=stages)
    np.testing.assert_array_equal(res.x, full.x)
    assert res.fun == full.fun
    assert [h["loss"] for h in res.history] == [h["loss"] for h in full.history]
    assert [it for it, _ in res.snapshots] == [it for it, _ in full.snapshots]


def test_forces_pmp_lbfgs_resumes_its_continuation_path(tmp_path):
    # pmp-lbfgs walks λ = 1e-1 → 1e-3 → 1e-5 (one stage each); interrupt in the second stage
    p = _drag_problem()
    full, s_full = learn_table(p, "pmp-lbfgs", 1e-5, iterations=150)
    store, stop = {}, _stop_at(len(full.history) // 2)

    def stages(name):
        return {"state0": store.get(name), "checkpoint": lambda st: store.__setitem__(name, st),
                "checkpoint_every": 20, "should_stop": stop}
    with pytest.raises(KeyboardInterrupt):
        learn_table(p, "pmp-lbfgs", 1e-5, iterations=150, stages=stages)
    finished = [k for k, st in store.items() if st["meta"].get("finished")]
    assert finished and "final" not in finished
    _through_files(tmp_path, store)
    res, summary = learn_table(p, "pmp-lbfgs", 1e-5, iterations=150, stages=stages)
    # finished stages are restored exactly; the interrupted one restarts the L-BFGS memory and
    # converges to the same minimum (the uninterrupted run's cost is ~1e-3, converged to ~1e-12)
    assert [c["final_loss"] for c in summary["continuation"][:len(finished)]] == \
        [c["final_loss"] for c in s_full["continuation"][:len(finished)]]
    assert abs(res.fun - full.fun) <= 1e-6 * full.fun
    assert np.abs(res.x - full.x).max() <= 1e-3 * np.abs(full.x).max()


@pytest.mark.parametrize("method,kw", [("adam", dict(iterations=60)),
                                       ("pinn", dict(adam_steps=40, lbfgs_steps=10, hidden=8))])
def test_oscillator_interrupt_and_resume_is_bit_for_bit(method, kw):
    t, x = simulate_oscillator(1.0, 20.0, 1.0, 0.0, 1.0, 40, 0.04, seed=0)
    p = OscillatorProblem(t, x, 1.0, 0.0, steps=100)
    full = solve_oscillator(p, method, **kw)
    for n in (17, 45):                    # pinn: 45 is an interrupt during L-BFGS (after 40 Adam steps)
        saved = {}
        with pytest.raises(KeyboardInterrupt):
            solve_oscillator(p, method, checkpoint=lambda st: saved.update(st=st), checkpoint_every=5,
                             should_stop=_stop_at(n), **kw)
        res = solve_oscillator(p, method, state0=saved["st"], **kw)
        np.testing.assert_array_equal(res.x, full.x)
        assert res.fun == full.fun


# ---- forces learn (command line) ---------------------------------------------------------------
def _drag_csv(path):
    v0, vT = simulate_drag(compile_expr(LAW, ("v",)), 1.0, 10.0, 30, 0, 30)
    path.write_text("v0,vT\n" + "".join(f"{a!r},{b!r}\n" for a, b in zip(v0.tolist(), vT.tolist())))
    return path


#: the child of the kill-and-resume tests: ``ocdl ARGS`` whose first checkpoint write is followed by
#: a SIGSTOP to itself, so the test signals a run that is certainly mid-way
_PAUSE_AFTER_FIRST_CHECKPOINT = """
import os, signal, sys
import ocdl.data
save = ocdl.data.save_checkpoint
def save_then_pause(*args, **kwargs):
    save(*args, **kwargs)
    if not getattr(save_then_pause, "paused", False):
        save_then_pause.paused = True
        os.kill(os.getpid(), signal.SIGSTOP)
ocdl.data.save_checkpoint = save_then_pause
from ocdl.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _kill_after_first_checkpoint(argv, ck):
    """Run ``argv`` (``python -m ocdl …``), SIGTERM it right after its first checkpoint; ``(exit code,
    stderr)``. The child stops itself once that checkpoint is written and the signal is sent while
    it is stopped (then SIGCONT): it was a race before — a fast child could finish first."""
    assert argv[1:3] == ["-m", "ocdl"]
    p = subprocess.Popen([argv[0], "-c", _PAUSE_AFTER_FIRST_CHECKPOINT, *argv[3:]], env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status = os.waitpid(p.pid, os.WUNTRACED)
    if not os.WIFSTOPPED(status):                  # it ended without a checkpoint: report how
        p.returncode = os.waitstatus_to_exitcode(status)
        return p.returncode, p.stderr.read()
    assert any(ck.rglob("checkpoint.npz"))
    p.send_signal(signal.SIGTERM)
    p.send_signal(signal.SIGCONT)
    _, err = p.communicate(timeout=120)
    return p.returncode, err


def test_cli_forces_kill_and_resume(tmp_path):
    data = _drag_csv(tmp_path / "d.csv")
    ck = tmp_path / "ck"
    base = [sys.executable, "-m", "ocdl", "forces", "learn", "drag", "--data", str(data), "--T", "1", "--g", "10",
            "--steps", "10", "--grid-step", "2", "--solver", "pmp-adam", "--iterations", "150", "--quiet"]
    code, err = _kill_after_first_checkpoint(base + ["--checkpoint", str(ck), "--checkpoint-every", "10",
                                                     "--json", str(tmp_path / "a.json")], ck)
    assert code == 130, err
    assert not (tmp_path / "a.json").exists()
    assert 0 < load_checkpoint(ck / "final")["iteration"] < 150
    r = subprocess.run(base + ["--checkpoint", str(ck), "--resume", "--json", str(tmp_path / "a.json"),
                               "--profile", str(tmp_path / "a.csv")], env=_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    a = json.loads((tmp_path / "a.json").read_text())
    # the uninterrupted reference, in process (same flags → same problem and solver options)
    v = np.loadtxt(data, delimiter=",", skiprows=1)
    p = DragProblem(v[:, 0], v[:, 1], 1.0, 10.0, None, 2.0, 10, "rk4", 1.0)
    full, s = learn_table(p, "pmp-adam", 1e-6, 150, 0.5)
    assert a["final_loss"] == s["final_loss"] and a["iterations"] == 150
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "a.csv", delimiter=",", skiprows=1)[:, 1],
                                  p.profile(full.x)[1])
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in s["history"]]


def test_cli_forces_divergence_saves_last_good_table_exit_3(ocdl_cli, tmp_path):
    data = _drag_csv(tmp_path / "d.csv")
    r = ocdl_cli("forces", "learn", "drag", "--data", data, "--T", "1", "--g", "10", "--steps", "10",
                 "--grid-step", "2", "--solver", "adam", "--lr", "1e200", "--iterations", "50",
                 "--checkpoint", tmp_path / "ck", "--json", tmp_path / "o.json", "--quiet")
    assert r.returncode == 3, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "diverged" in r.stderr and "last_good.csv" in r.stderr
    assert not (tmp_path / "o.json").exists()
    table = np.loadtxt(tmp_path / "ck" / "last_good.csv", delimiter=",", skiprows=1)
    assert table.shape[1] == 2 and np.all(np.isfinite(table))


def test_cli_forces_newton_and_bad_resume_are_input_errors(ocdl_cli, tmp_path):
    data = _drag_csv(tmp_path / "d.csv")
    args = ["forces", "learn", "drag", "--data", data, "--T", "1", "--g", "10"]
    r = ocdl_cli(*args, "--checkpoint", tmp_path / "ck", "--resume")
    assert r.returncode == 2 and "newton" in r.stderr
    r = ocdl_cli(*args, "--solver", "adam", "--resume")
    assert r.returncode == 2 and "--checkpoint" in r.stderr


# ---- meanfield train ---------------------------------------------------------------------------
@pytest.mark.parametrize("method,kw", [("particles", dict(particles=200)), ("grid", dict(grid_cells=12))])
def test_meanfield_interrupt_and_resume_is_bit_for_bit(method, kw, tmp_path):
    X, y = spirals(30, seed=2)
    common = dict(method=method, nu=0.1, layers=3, T=1.0, iterations=12, seed=4, **kw)
    full = tr.train_stochastic_resnet(X, y, **common)
    saved = {}
    with pytest.raises(KeyboardInterrupt):
        tr.train_stochastic_resnet(X, y, checkpoint=lambda st: saved.update(st=st), checkpoint_every=3,
                                   should_stop=_stop_at(7), **common)
    assert saved["st"]["iteration"] == 7
    # the driver's state: flat parameters, Adam's moments, the particle sampler's generator
    n_params = sum(np.size(v) for v in full.x.values())
    assert set(saved["st"]["opt"]) == {"m", "v"} and saved["st"]["params"]["x"].shape == (n_params,)
    assert ("rng" in saved["st"]["meta"]) == (method == "particles")
    _through_files(tmp_path, saved)
    res = tr.train_stochastic_resnet(X, y, state0=saved["st"], **common)
    for k in full.x:
        np.testing.assert_array_equal(res.x[k], full.x[k])
    assert [h["loss"] for h in res.history] == [h["loss"] for h in full.history]


def test_cli_meanfield_kill_and_resume(ocdl_cli, tmp_path):
    ck = tmp_path / "ck"
    base = [sys.executable, "-m", "ocdl", "meanfield", "train", "--nu", "0.05", "--particles", "200",
            "--layers", "4", "--points", "40", "--iterations", "3000", "--seed", "3", "--quiet"]
    code, err = _kill_after_first_checkpoint(base + ["--checkpoint", str(ck), "--checkpoint-every", "20"], ck)
    assert code == 130, err
    it = load_checkpoint(ck)["iteration"]
    assert 0 < it < 3000
    r = subprocess.run(base + ["--checkpoint", str(ck), "--resume", "--iterations", "60", "--json",
                               str(tmp_path / "a.json")], env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "different settings" in r.stderr       # other flags: refused
    r = subprocess.run(base + ["--checkpoint", str(ck), "--resume", "--json", str(tmp_path / "a.json")],
                       env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    a = json.loads((tmp_path / "a.json").read_text())
    X, y = spirals(40, noise=0.02, seed=3)
    full = tr.train_stochastic_resnet(X, y, method="particles", nu=0.05, layers=4, T=2.0, particles=200,
                                      alpha=1e-3, alpha_head=1e-3, iterations=3000, lr=0.05, seed=3)
    assert a["train_loss"] == full.fun and len(a["history"]) == 3000


def test_cli_meanfield_divergence_saves_last_good_exit_3(ocdl_cli, tmp_path):
    r = ocdl_cli("meanfield", "train", "--nu", "0.05", "--particles", "100", "--layers", "4", "--points", "30",
                 "--iterations", "50", "--lr", "1e200", "--checkpoint", tmp_path / "ck", "--json", tmp_path / "o.json",
                 "--quiet")
    assert r.returncode == 3, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "last_good.npz" in r.stderr
    assert not (tmp_path / "o.json").exists()
    z = np.load(tmp_path / "ck" / "last_good.npz")
    assert z["K"].shape == (4, 2, 2) and all(np.all(np.isfinite(z[k])) for k in ("K", "b", "W", "mu"))
