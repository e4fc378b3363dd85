"""The forces and bench commands as jobs (issue 22): library calls of the jobs, their checks, and
the defaults they share with the library."""
import inspect

import numpy as np
import pytest

from ocdl.errors import InputError
from ocdl.io import read_table
from ocdl.jobs.forces import LearnDragJob, LearnOscillatorJob, LearnPotentialJob, SimulateDragJob, \
    SimulateOscillatorJob


def test_simulate_drag_job_free_fall(tmp_path):
    """F = 0: v' = g, so v_T = v0 + gT exactly (solve_ivp at rtol 1e-10: |error| ≤ 1e-8)."""
    out = tmp_path / "d.csv"
    res = SimulateDragJob(force="0", T=1.5, g=9.8, samples=6, vmin=0.0, vmax=10.0, out=str(out)).run()
    assert res == {"out": str(out)}
    d = read_table(str(out), ["v0", "vT"])
    assert np.allclose(d["v0"], np.linspace(0, 10, 6))
    assert np.max(np.abs(d["vT"] - (d["v0"] + 9.8 * 1.5))) <= 1e-8


def test_simulate_oscillator_job_matches_the_closed_form(tmp_path):
    """Noise 0: x(t) = e^{−γt}(x0 cos ωt + (v0 + γx0)/ω sin ωt), ω = √(ω0² − γ²) (|error| ≤ 1e-8)."""
    out = tmp_path / "o.csv"
    SimulateOscillatorJob(gamma=1.0, omega0=20.0, x0=1.0, v0=0.5, T=1.0, samples=30, noise=0.0, out=str(out)).run()
    d = read_table(str(out), ["t", "x"])
    w = np.sqrt(20.0 ** 2 - 1.0)
    exact = np.exp(-d["t"]) * (np.cos(w * d["t"]) + (0.5 + 1.0) / w * np.sin(w * d["t"]))
    assert np.max(np.abs(d["x"] - exact)) <= 1e-8


@pytest.mark.parametrize("job, match", [
    (lambda t: SimulateDragJob(out=str(t / "x.csv")), "--force is required"),
    (lambda t: SimulateDragJob(force="v", samples=0, out=str(t / "x.csv")), "--samples must be an integer"),
    (lambda t: LearnDragJob(data=str(t / "d.csv"), g=9.8), "--T is required"),
    (lambda t: LearnDragJob(data=str(t / "d.csv"), T=1.0, g=9.8, lam=-1.0), "--lambda must be a number ≥ 0"),
    (lambda t: LearnDragJob(data=str(t / "d.csv"), T=1.0, g=9.8, solver="newton", checkpoint=str(t / "ck")),
     "--checkpoint/--resume apply to the iterative solvers"),
    (lambda t: LearnOscillatorJob(data=str(t / "d.csv"), lbfgs_steps=-1), "--lbfgs-steps must be an integer in 0"),
    (lambda t: LearnPotentialJob(data=str(t / "d.csv"), gamma=1.0, omega0=20.0, truth="v"), "--truth"),
])
def test_learn_jobs_refuse_bad_options_before_any_work(tmp_path, job, match):
    (tmp_path / "d.csv").write_text("v0,vT\n1,2\n")
    with pytest.raises(InputError, match=match):
        job(tmp_path).run()


def test_job_defaults_are_the_librarys():
    """The defaults a job shows as flags are the library functions' own (one place each)."""
    from ocdl.forces import learn, pinn, potential
    table = inspect.signature(learn.learn_table).parameters
    assert LearnDragJob.__dataclass_fields__["lr"].default == table["lr"].default
    fit = inspect.signature(pinn.fit_pinn).parameters
    for name in ("adam_steps", "lbfgs_steps", "hidden"):
        assert LearnOscillatorJob.__dataclass_fields__[name].default == fit[name].default
        assert LearnPotentialJob.__dataclass_fields__[name].default == \
            potential.PINN_STEPS.get(name, fit[name].default)
    for job in (LearnOscillatorJob, LearnPotentialJob):          # None: the library's DEFAULT_LR
        assert job.__dataclass_fields__["lr"].default is None


def test_list_defaults_reach_the_job():
    """A list default (``option([...])``) is the flag's default: ``ocdl meanfield limit`` without
    ``--nus`` used to hand None to the study (a TypeError at its end)."""
    from ocdl.cli.common import job_from_args
    from ocdl.cli.main import build_parser
    job = job_from_args(build_parser().parse_args(["meanfield", "limit"]))
    assert job.nus == [0.4, 0.2, 0.1]
    job = job_from_args(build_parser().parse_args(["bench", "gradient"]))
    assert job.fields_ == ["outer", "hamiltonian"] and job.depths == [16, 64, 256, 1024, 4096]


def test_bench_train_loads_each_seeds_data():
    """``ocdl bench train`` failed with an internal ImportError (its loader had been removed): the
    default loader is the one data loader, drawing the synthetic set with each seed."""
    from ocdl.bench.train import run_train_bench
    from ocdl.data.loading import load_dataset
    seen = {}

    def fake_compare(X, y, solvers, seed, **kw):
        seen[seed] = (X, y)
        return {"solvers": {s: {"history": [{"loss": 1.0, "time_s": 0.1, "iteration": 0}], "final_loss": 1.0,
                                "wall_time_s": 0.1} for s in solvers}}
    run_train_bench(["adam"], [0, 1], 0.5, compare_fn=fake_compare, quiet=True)
    for seed in (0, 1):
        ds = load_dataset("spirals", seed=seed)
        assert np.array_equal(seen[seed][0], ds.X) and np.array_equal(seen[seed][1], ds.y)
    assert not np.array_equal(seen[0][0], seen[1][0])
