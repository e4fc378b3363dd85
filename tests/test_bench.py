"""ocdl bench: correctness of the benchmarked gradients (never their speed).

References are independent: torch autograd through the discrete network written out in
ocdl.bench.problem (float64), and ocdl.pmp's costate sweep for the cost value.
"""
import json

import numpy as np
import pytest
import torch

from ocdl import pmp
from ocdl.bench import problem as pb
from ocdl.bench import reversible
from ocdl.bench.gradient import prepare
from ocdl.errors import InputError
from ocdl.models import ResNetODE


def autograd_flat(problem):
    P = pb.torch_params(problem)
    J = pb.cost_torch(problem, P, torch.tensor(problem.x0()), torch.tensor(problem.y, dtype=torch.float64))
    J.backward()
    return J.item(), problem.flat({k: P[k].grad.numpy() for k in pb.PARAM_KEYS})


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("depth", [3, 16])
def test_reversible_gradient_equals_autograd(depth):
    pr = pb.Problem("hamiltonian", depth, samples=64, width=8, integrator="verlet", seed=depth)
    J_ref, g_ref = autograd_flat(pr)
    J, g, info = reversible.value_and_grad(pr.x0(), pr.y, pr.params, pr.h, pr.alpha)
    # exact discrete gradient: equal to round-off (measured ≤ 8.7e-16 relative); bar 1e-13
    assert abs(J - J_ref) <= 1e-13 * abs(J_ref)
    assert rel(pr.flat(g), g_ref) <= 1e-13
    assert info["reconstruction_error"] <= 1e-13


def test_reversible_reconstruction_error_small_at_depth():
    # Verlet inverted step by step: round-off only (a few ulps per layer at worst; measured
    # 2.2e-16 reconstruction, 2.6e-16 gradient at depth 512); bar 1e-13
    pr = pb.Problem("hamiltonian", 512, samples=32, width=4, integrator="verlet")
    _, g, info = reversible.value_and_grad(pr.x0(), pr.y, pr.params, pr.h, pr.alpha)
    assert info["reconstruction_error"] <= 1e-13
    assert rel(pr.flat(g), autograd_flat(pr)[1]) <= 1e-13


def test_reversible_matches_ocdl_pmp_verlet():
    """Same network and cost as ocdl.models' verlet (position form, drift–kick–drift) through ocdl.pmp."""
    pr = pb.Problem("hamiltonian", 10, samples=40, width=6, integrator="verlet")
    model = ResNetODE(field="hamiltonian", d_in=2, width=6, layers=10, T=pr.T, integrator="verlet",
                      alpha=pr.alpha)
    J_pmp, g_pmp = pmp.value_and_grad(model, pr.params, pr.X, pr.y)
    J, g, _ = reversible.value_and_grad(pr.x0(), pr.y, pr.params, pr.h, pr.alpha)
    assert abs(J - J_pmp) <= 1e-13 * abs(J_pmp)
    assert rel(pr.flat(g), pr.flat(g_pmp)) <= 1e-13  # measured 3e-16


@pytest.mark.parametrize("method", ["costate", "costate-torch"])
@pytest.mark.parametrize("field", ["outer", "hamiltonian", "inner"])
def test_costate_method_equals_independent_autograd(field, method):
    pr = pb.Problem(field, 12, samples=50, width=8)
    J_ref, g_ref = autograd_flat(pr)
    fwd, vg = prepare(method, pr)
    J, g, _ = vg()
    assert rel(g, g_ref) <= 1e-13  # round-off: measured ≤ 3.7e-16
    assert abs(J - J_ref) <= 1e-13 * abs(J_ref) and abs(fwd() - J_ref) <= 1e-13 * abs(J_ref)


@pytest.mark.parametrize("field", ["outer", "hamiltonian"])
def test_torchdiffeq_direct_euler_is_the_discrete_network(field):
    pytest.importorskip("torchdiffeq")
    pr = pb.Problem(field, 24, samples=40, width=8)
    J_ref, g_ref = autograd_flat(pr)
    fwd, vg = prepare("torchdiffeq-direct", pr)
    J, g, _ = vg()
    # same operations in the same order: equal to round-off
    assert abs(fwd() - J_ref) <= 1e-14 * abs(J_ref) and abs(J - J_ref) <= 1e-14 * abs(J_ref)
    assert rel(g, g_ref) <= 1e-13


def test_torchdiffeq_adjoint_error_is_first_order():
    """odeint_adjoint with Euler integrates the continuous adjoint: an O(h) gradient error, so
    4× the layers gives ~1/4 of the error (ratio measured ≈ 0.2–0.3; bound 0.45)."""
    pytest.importorskip("torchdiffeq")
    errs = []
    for depth in (32, 128):
        pr = pb.Problem("outer", depth, samples=40, width=4)
        _, g_ref = autograd_flat(pr)
        _, vg = prepare("torchdiffeq-adjoint", pr)
        errs.append(rel(vg()[1], g_ref))
    assert 1e-4 < errs[0] < 1 and errs[1] / errs[0] < 0.45, errs


def test_bad_width_and_unknown_method():
    from ocdl.bench.gradient import run_gradient_bench
    with pytest.raises(InputError, match="even --width"):
        run_gradient_bench(fields=["hamiltonian"], depths=[4], width=5, quiet=True)
    with pytest.raises(InputError, match="no \\(method, field\\) pair"):
        run_gradient_bench(fields=["outer"], depths=[4], methods=["costate-reversible"], quiet=True)


def test_cli_json_schema_tiny_run(tmp_path, ocdl_cli):
    out, png = tmp_path / "g.json", tmp_path / "g.png"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    r = ocdl_cli("bench", "gradient", "--fields", "hamiltonian", "--depths", "4", "--samples", "32",
                 "--methods", "autograd,costate-reversible,costate-torch", "--repeats", "1", "--device", device,
                 "--json", out, "--plot", png)
    assert r.returncode == 0, r.stderr
    runs = json.loads(out.read_text())["runs"]
    assert [(x["method"], x["field"], x["depth"], x["device"]) for x in runs] == [
        ("autograd", "hamiltonian", 4, device), ("costate-reversible", "hamiltonian", 4, "cpu"),
        ("costate-torch", "hamiltonian", 4, device)]
    assert runs.pop()["rel_error"] <= 1e-13
    for x in runs:
        assert {"method", "field", "depth", "forward_s", "gradient_s", "peak_mib", "rel_error"} <= set(x)
        assert x["forward_s"] > 0 and x["gradient_s"] > 0 and x["peak_mib"] >= 0
    assert runs[1]["rel_error"] <= 1e-13 and runs[1]["reconstruction_error"] <= 1e-13
    assert png.stat().st_size > 10_000


def test_time_to_target_and_train_bench_with_stand_in():
    from ocdl.bench.train import run_train_bench, time_to_target
    hist = [{"iteration": i, "loss": 1.0 / (i + 1), "time_s": 0.1 * i} for i in range(10)]
    assert time_to_target(hist, 0.25) == (pytest.approx(0.3), 3)
    assert time_to_target(hist, 0.01) == (None, None)

    def fake_compare(X, y, solvers, seed, target, log=None, **kw):
        out = {}
        for name in solvers:
            rate = 1.0 if name == "fast" else 0.25
            hist = [{"iteration": i, "loss": 1.0 / (1 + rate * i), "time_s": 0.1 * i + seed} for i in range(10)]
            out[name] = {"history": hist, "final_loss": hist[-1]["loss"], "iterations": 10, "wall_time_s": 1.0,
                         "converged": False, "message": "iteration limit reached (10)"}
        return {"solvers": out}

    result = run_train_bench(["fast", "slow"], [0, 1], 0.2, compare_fn=fake_compare,
                             load_fn=lambda name, seed, opts: (None, None), quiet=True)
    s = {x["solver"]: x for x in result["summary"]}
    # fast: loss 1/(1+i) ≤ 0.2 first at i = 4, time 0.4 + seed → median over seeds 0, 1 = 0.9
    assert s["fast"]["reached"] == 2 and s["fast"]["median_time_to_target_s"] == pytest.approx(0.4 + 0.5)
    assert s["slow"]["reached"] == 0 and s["slow"]["median_time_to_target_s"] is None
    assert all(r["converged"] is False and r["message"] == "iteration limit reached (10)" for r in result["runs"])


# --- the JAX / diffrax peers (optional extra `peers`; skipped cleanly where not installed) -----

@pytest.mark.parametrize("field", ["outer", "inner", "hamiltonian"])
def test_jax_scan_gradient_equals_autograd(field):
    pytest.importorskip("jax")
    pr = pb.Problem(field, 12, samples=40, width=8, seed=3)
    J_ref, g_ref = autograd_flat(pr)
    fwd, vg = prepare("jax", pr)
    J, g, extra = vg()
    # reverse mode through lax.scan of the same float64 Euler network: round-off
    # (measured ≤ 7.6e-16 relative); bar 1e-13
    assert abs(fwd() - J_ref) <= 1e-13 * abs(J_ref) and abs(J - J_ref) <= 1e-13 * abs(J_ref)
    assert rel(g, g_ref) <= 1e-13
    assert extra["compile_s"] > 0 and extra["forward_compile_s"] > 0


def test_diffrax_recursive_checkpoint_is_the_discrete_network():
    pytest.importorskip("diffrax")
    pr = pb.Problem("outer", 16, samples=40, width=6, seed=1)
    J_ref, g_ref = autograd_flat(pr)
    fwd, vg = prepare("diffrax", pr)
    J, g, _ = vg()
    # Euler evaluates at the step starts t_k, where the vector field picks θ_k: the discrete
    # network; RecursiveCheckpointAdjoint differentiates it exactly (measured 4.5e-16); bar 1e-13
    assert abs(fwd() - J_ref) <= 1e-13 * abs(J_ref)
    assert rel(g, g_ref) <= 1e-13


@pytest.mark.slow
def test_diffrax_backsolve_error_is_first_order():
    """BacksolveAdjoint integrates the continuous adjoint backwards (and sees θ_{k+1} on step k):
    O(h), so 4× the layers gives about 1/4 of the error (bound 0.45, as for torchdiffeq)."""
    pytest.importorskip("diffrax")
    errs = []
    for depth in (32, 128):
        pr = pb.Problem("outer", depth, samples=40, width=4)
        _, g_ref = autograd_flat(pr)
        _, vg = prepare("diffrax-backsolve", pr)
        errs.append(rel(vg()[1], g_ref))
    assert 1e-4 < errs[0] < 1 and errs[1] / errs[0] < 0.45, errs


def test_missing_peer_is_skipped_with_a_note(monkeypatch):
    import ocdl.bench.gradient as bg
    monkeypatch.setattr(bg, "missing", lambda m: ("jax", "jaxlib") if m in bg.PEER_METHODS else ())
    res = bg.run_gradient_bench(fields=["outer"], depths=[3], samples=16, methods=["costate", "jax"],
                                repeats=1, quiet=True)
    assert [r["method"] for r in res["runs"]] == ["costate"]
    assert res["skipped"] == [{"method": "jax", "missing": ["jax", "jaxlib"]}]
    assert bg.skip_note(res["skipped"]) == ("skipped jax: jax, jaxlib not installed "
                                            "(optional extra: pip install -e '.[peers]')")
    run = res["runs"][0]
    assert {"method", "field", "depth", "forward_s", "gradient_s", "peak_mib", "rel_error"} <= set(run)
    assert run["compile_s"] is None and run["rel_error"] <= 1e-13
    with pytest.raises(InputError, match="nothing to run: skipped jax, diffrax: jax, jaxlib not installed"):
        bg.run_gradient_bench(fields=["outer"], depths=[3], methods=["jax", "diffrax"], quiet=True)


def test_cli_peer_note_or_row(tmp_path, ocdl_cli):
    """Without jax: one-line note on stderr, the other rows intact; with jax: its row, compiled."""
    import importlib.util
    out = tmp_path / "g.json"
    r = ocdl_cli("bench", "gradient", "--fields", "outer", "--depths", "3", "--samples", "16",
                 "--methods", "costate,jax", "--repeats", "1", "--json", out)
    assert r.returncode == 0, r.stderr
    runs = json.loads(out.read_text())["runs"]
    have_jax = importlib.util.find_spec("jax") is not None and importlib.util.find_spec("jaxlib") is not None
    if have_jax:
        assert [x["method"] for x in runs] == ["costate", "jax"]
        assert runs[1]["compile_s"] > 0 and runs[1]["rel_error"] <= 1e-13
    else:
        notes = [ln for ln in r.stderr.splitlines() if ln.startswith("ocdl: note: skipped jax")]
        assert len(notes) == 1 and "pip install -e '.[peers]'" in notes[0]
        assert [x["method"] for x in runs] == ["costate"]
    for x in runs:
        assert {"method", "field", "depth", "forward_s", "gradient_s", "peak_mib", "rel_error",
                "compile_s"} <= set(x)
