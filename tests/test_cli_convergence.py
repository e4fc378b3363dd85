"""The CLI says when a run did not converge: one warning line on stderr, exit code still 0.

``success`` is the solver's own convergence test (an iteration cap is not convergence); the
references here are the solvers' stopping tests themselves: MSA capped at a few iterations cannot
meet its KKT tolerance, Newton on a small problem meets ``KKT ≤ 1e-10`` (checked independently
with ``ocdl.pmp.kkt_residual`` in tests/test_solvers_newton.py).
"""
import json

from ocdl.cli.common import warn_not_converged

WARNING = "ocdl: warning: "


def test_warning_helper_prints_one_line_only_when_not_converged(capsys):
    warn_not_converged("adam", False, "iteration limit 30 reached")
    warn_not_converged("newton", True, "converged: KKT residual 1e-12 <= 1e-10")
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "ocdl: warning: adam did not converge: iteration limit 30 reached\n"


def test_train_capped_run_warns_and_exits_0(ocdl_cli, tmp_path):
    r = ocdl_cli("train", "--data", "spirals", "--points", "20", "--solver", "msa", "--iterations", "5",
                 "--layers", "6", "--json", tmp_path / "o.json", "--quiet")
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["success"] is False and out["iterations"] == 5
    lines = r.stderr.strip().splitlines()
    # --quiet silences progress, not the warning: exactly one line, naming the solver and the reason
    assert lines == [f"{WARNING}msa did not converge: {out['message']}"]
    assert "iteration" in out["message"]


def test_train_converged_run_has_no_warning(ocdl_cli):
    r = ocdl_cli("train", "--data", "spirals", "--points", "30", "--solver", "newton", "--layers", "8",
                 "--T", "3", "--width", "2", "--alpha", "1e-2", "--normalize", "none", "--quiet")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["success"] is True and out["kkt_residual"] <= 1e-10
    assert WARNING not in r.stderr


def test_compare_reports_converged_column_and_warns(ocdl_cli, tmp_path):
    js = tmp_path / "c.json"
    r = ocdl_cli("compare", "--data", "spirals", "--points", "15", "--solvers", "newton,msa", "--layers", "4",
                 "--T", "2", "--width", "2", "--alpha", "1e-2", "--normalize", "none", "--json", js, "--quiet")
    assert r.returncode == 0, r.stderr
    rows = json.loads(js.read_text())["solvers"]
    assert rows["newton"]["converged"] is True and rows["newton"]["kkt_residual"] <= 1e-10
    assert rows["msa"]["converged"] is False       # its default 1000 iterations do not reach the tolerance
    header, rule, *body = r.stdout.splitlines()
    assert "converged" in header.split()
    col = header.split().index("converged")
    table = {line.split()[0]: line.split()[col] for line in body[:2]}
    assert table == {"newton": "yes", "msa": "no"}
    assert r.stderr.strip().splitlines() == [f"{WARNING}msa did not converge: {rows['msa']['message']}"]


def test_a_closed_stdout_stops_quietly(tmp_path, monkeypatch, capsys):
    # `ocdl … | head`: writing to a closed pipe ends the command with 141 and no error message
    import sys

    from ocdl.cli.main import main

    class ClosedPipe:
        def __init__(self, fh):
            self.fh = fh

        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            return self.fh.fileno()

    with open(tmp_path / "out", "w") as fh:
        monkeypatch.setattr(sys, "stdout", ClosedPipe(fh))
        rc = main(["integrators", "--problem", "oscillator", "--methods", "rk4", "--steps", "40", "--periods", "1"])
    assert rc == 141
    assert "error" not in capsys.readouterr().err           # (the progress lines go to stderr)


def test_meanfield_control_unconverged_warns_under_quiet(ocdl_main, tmp_path):
    """The congested sweep capped at 2 iterations: one warning line from cli/main, also with
    --quiet (it used to be a note, silenced by --quiet)."""
    js = tmp_path / "c.json"
    rc, out, err = ocdl_main("meanfield", "control", "--nu", "0.5", "--mean", "0", "--std", "0.5", "--T", "1",
                             "--terminal", "(x-1)**2", "--cells", "60", "--steps", "20", "--g", "0.5",
                             "--method", "sweep", "--maxiter", "2", "--out", tmp_path / "r.csv", "--json", js,
                             "--quiet")
    assert rc == 0, err
    d = json.loads(js.read_text())
    assert d["success"] is False
    assert err.strip().splitlines() == [f"{WARNING}sweep did not converge: {d['message']} "
                                        f"({d['iterations']} iterations, residual {d['residual']:.2e})"]


def test_readme_first_command_converges_without_warning(ocdl_main, tmp_path):
    """README's first command (``ocdl train --data spirals --solver pmp-adam``) ends converged by the
    first-order test (stalled loss + gradient reduced, docs/optim.md) — no warning."""
    js = tmp_path / "o.json"
    rc, out, err = ocdl_main("train", "--data", "spirals", "--solver", "pmp-adam", "--json", js, "--quiet")
    assert rc == 0, err
    d = json.loads(js.read_text())
    assert d["success"] is True and "relative loss decrease" in d["message"]
    assert WARNING not in err
