"""--threads on every command (issue 13): the flag parses everywhere, the TOML key works, and
set_threads limits torch's pool (checked by torch itself)."""
import subprocess
import sys

from ocdl.cli.main import _subparsers, build_parser


def _leaf_parsers(p, path=()):
    sub = _subparsers(p)
    if sub is None:
        yield path, p
        return
    for name, child in sub.choices.items():
        yield from _leaf_parsers(child, path + (name,))


def test_every_command_has_threads():
    leaves = list(_leaf_parsers(build_parser()))
    assert len(leaves) >= 9
    for path, p in leaves:
        flags = {s for a in p._actions for s in a.option_strings}
        assert "--threads" in flags, " ".join(path)


def test_threads_flag_and_toml_key_reach_torch(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("threads = 1\n")
    code = ("import sys, torch\n"
            "from ocdl.cli.main import main\n"
            "rc = main(sys.argv[1:])\n"
            "print('THREADS', torch.get_num_threads())\n")
    for args, want in ((["--threads", "2"], 2), (["--config", str(cfg)], 1)):
        r = subprocess.run([sys.executable, "-c", code, "train", "--data", "spirals", "--points", "10",
                            "--iterations", "1", "--quiet", *args], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert f"THREADS {want}" in r.stdout
