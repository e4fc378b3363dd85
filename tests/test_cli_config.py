"""--config FILE.toml sets any flag of a command; flags on the command line win."""
import json


def test_config_sets_flags_and_command_line_wins(ocdl_cli, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('layers = 3\nT = 1.5\niterations = 2\nfield = "inner"\nquiet = true\n')
    out1, out2 = tmp_path / "a.json", tmp_path / "b.json"
    r = ocdl_cli("train", "--data", "moons", "--config", cfg, "--json", out1)
    assert r.returncode == 0, r.stderr
    a = json.loads(out1.read_text())
    assert (a["layers"], a["T"], a["field"], a["iterations"]) == (3, 1.5, "inner", 2)
    # quiet = true came from the file: no progress, only the (never silenced) non-convergence warning
    assert r.stderr.strip().splitlines() == [f"ocdl: warning: adam did not converge: {a['message']}"]
    r = ocdl_cli("train", "--data", "moons", "--config", cfg, "--layers", "4", "--json", out2)
    assert r.returncode == 0, r.stderr
    b = json.loads(out2.read_text())
    assert (b["layers"], b["T"], b["field"]) == (4, 1.5, "inner")
