"""`ocdl meanfield nls --psi0 FILE` and `--dim 2`: a user's ψ₀ read on the command's grid (checked by
continuing a soliton from a file against the analytic soliton), a clear one-line exit-2 error for a
grid mismatch, and the 2-D coherent state of a harmonic trap against its analytic density."""
import json

import numpy as np

from ocdl.cli.main import main
from ocdl.io import write_csv
from ocdl.meanfield.nls import PeriodicBox, coherent_state, soliton


def test_psi0_csv_continues_a_soliton_on_the_analytic_solution(tmp_path):
    box = PeriodicBox(40.0, 512)
    x = box.x[0]
    psi = soliton(x, 0.5, 1.0, 1.0, 0.0, -1.0, 1.0, 40.0)          # the analytic state at t = 0.5
    write_csv(tmp_path / "psi.csv", ["x", "re", "im"], np.column_stack([x, psi.real, psi.imag]))
    out = tmp_path / "end.npz"
    assert main(["meanfield", "nls", "--psi0", str(tmp_path / "psi.csv"), "--g", "-1", "--T", "0.5",
                 "--dt", "0.005", "--out", str(out), "--quiet"]) == 0
    end = np.load(out)["psi"]
    # split-step from t = 0.5 to 1: error O(dt²) as for the built-in soliton (3.9e-6 over T = 1)
    assert np.max(np.abs(end - soliton(x, 1.0, 1.0, 1.0, 0.0, -1.0, 1.0, 40.0))) < 1e-5


def test_psi0_npz_round_trip_equals_one_long_run(tmp_path):
    a, b, c = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"
    common = ["--g", "-1", "--dt", "0.01", "--points", "256", "--quiet"]
    assert main(["meanfield", "nls", "--psi0", "soliton", "--velocity", "1", "--T", "0.5", "--out", str(a),
                 *common]) == 0
    assert main(["meanfield", "nls", "--psi0", str(a), "--T", "0.5", "--out", str(b), *common]) == 0
    assert main(["meanfield", "nls", "--psi0", "soliton", "--velocity", "1", "--T", "1", "--out", str(c), *common]) == 0
    assert np.max(np.abs(np.load(b)["psi"] - np.load(c)["psi"])) < 1e-12


def test_psi0_on_another_grid_is_one_line_exit_2(tmp_path, capsys):
    a = tmp_path / "a.npz"
    assert main(["meanfield", "nls", "--psi0", "soliton", "--T", "0.1", "--dt", "0.05", "--out", str(a),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["meanfield", "nls", "--psi0", str(a), "--T", "0.1", "--points", "256", "--out",
                 str(tmp_path / "b.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "256 points" in err[0] and "(512,)" in err[0]


def test_nls_2d_coherent_state_keeps_the_analytic_density(tmp_path):
    out, js = tmp_path / "c.npz", tmp_path / "c.json"
    T = 1.0
    assert main(["meanfield", "nls", "--dim", "2", "--psi0", "coherent", "--x0", "1", "--T", str(T), "--dt", "0.01",
                 "--points", "64", "--L", "16", "--out", str(out), "--json", str(js), "--quiet"]) == 0
    r = json.loads(js.read_text())
    box = PeriodicBox(16.0, 64, 2)
    X, Y = box.x
    exact = np.abs(coherent_state(X, np.cos(T), 0.0, 1.0, 1.0) * coherent_state(Y, 0.0, 0.0, 1.0, 1.0)) ** 2
    assert np.max(np.abs(np.abs(np.load(out)["psi"]) ** 2 - exact)) < 1e-4      # O(dt²)
    assert r["dim"] == 2 and r["mass_drift"] < 1e-12
