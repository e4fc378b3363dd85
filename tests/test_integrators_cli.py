"""``ocdl integrators``: table, JSON and plot; measured orders against the classical ones."""
import json

import integrators


def test_integrators_command_json_and_plot(ocdl_cli, tmp_path):
    j, png = tmp_path / "i.json", tmp_path / "i.png"
    r = ocdl_cli("integrators", "--problem", "oscillator", "--steps", "400", "--periods", "4",
                 "--json", j, "--plot", png, "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # --quiet
    data = json.loads(j.read_text())
    assert set(data["methods"]) == set(integrators.available())
    for name, m in data["methods"].items():
        assert {"order", "energy_error", "time_s"} <= set(m)
        # the measured slope against the exact solution cos t, −sin t vs the textbook order
        assert abs(m["order"] - integrators.order(name)) < 0.25, (name, m["order"])
        assert m["time_s"] >= 0
        assert name in r.stdout
    e = {n: m["energy_error"] for n, m in data["methods"].items()}
    # H is quadratic: Gauss methods keep it to round-off; explicit Euler grows it by (1 + h²)^n
    assert max(e["implicit_midpoint"], e["gauss2"], e["gauss3"]) < 1e-13
    assert e["euler"] > 0.1
    assert png.stat().st_size > 10_000


def test_integrators_command_bad_input(ocdl_cli):
    r = ocdl_cli("integrators", "--problem", "keplr")
    assert r.returncode == 2 and "kepler" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = ocdl_cli("integrators", "--steps", "0")
    assert r.returncode == 2
    r = ocdl_cli("integrators", "--steps", "10", "--periods", "50")
    assert r.returncode == 2 and "steps" in r.stderr and "Traceback" not in r.stderr
