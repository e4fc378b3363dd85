"""Every ``ocdl …`` command the README and docs/ show names a real command, and every flag it uses
exists on that command's parser; the README's Run command runs (with fewer iterations)."""
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

from ocdl.cli.main import _subparsers, build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
COMMAND = re.compile(r"(?:\.venv/bin/)?\bocdl ((?:[a-z][a-z-]*)(?:[ /][a-z][a-z-]*)*)((?: [^`\n|]*)?)")


CODE = re.compile(r"```[a-z]*\n(.*?)```|`([^`\n]+)`", re.S)


def _commands():
    """``(page, sub-command words, the rest)`` of every ``ocdl …`` in a code block or code span."""
    out = []
    for page in PAGES:
        text = open(page, encoding="utf-8").read()
        for code in CODE.finditer(text):
            for line in (code.group(1) or code.group(2)).splitlines():
                m = COMMAND.match(line.strip())
                if m:
                    out.append((os.path.relpath(page, ROOT), m.group(1), m.group(2)))
    return out


def _leaf(parser, words):
    p = parser
    for w in words:
        sub = _subparsers(p)
        if sub is None or w not in sub.choices:
            break
        p = sub.choices[w]
    return p


def test_docs_show_commands():
    assert len(_commands()) > 30


@pytest.mark.parametrize("page,words,rest", _commands())
def test_documented_command_and_flags_exist(page, words, rest):
    parser = build_parser()
    first = words.split()[0]
    assert first in _subparsers(parser).choices, f"{page}: 'ocdl {words}' is not a command"
    # 'forces simulate/learn' names two sub-commands; each must exist with every flag shown
    variants = [[first]]
    for w in words.split()[1:]:
        variants = [v + [alt] for v in variants for alt in w.split("/")]
    try:
        tokens = shlex.split(rest.replace("…", " "))
    except ValueError:
        tokens = rest.split()
    flags = {t.split("=", 1)[0] for t in tokens if re.fullmatch(r"--[a-z][a-z0-9-]*(=.*)?", t)}
    for v in variants:
        leaf = _leaf(parser, v)
        known = {s for a in leaf._actions for s in a.option_strings}
        missing = sorted(flags - known)
        assert not missing, f"{page}: 'ocdl {' '.join(v)}' has no flag(s) {missing}"


def test_readme_run_command_runs(tmp_path):
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = re.search(r"^## Run\s*$.*?^```bash\n(.*?)^```", text, re.S | re.M).group(1).strip()
    argv = shlex.split(block)
    assert argv[0].endswith("ocdl")
    proc = subprocess.run([sys.executable, "-m", "ocdl"] + argv[1:] + ["--iterations", "30", "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr
    for token in argv:
        if token.endswith((".png", ".json", ".npz")):
            assert (tmp_path / token).exists(), token


def test_readme_own_csv_commands_run(tmp_path):
    """The README's iris example, on iris CSVs with named columns and string labels."""
    from sklearn.datasets import load_iris
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = re.search(r"^## Your own CSV\s*$.*?^```bash\n(.*?)^```", text, re.S | re.M).group(1)
    train_cmd, predict_cmd = [shlex.split(line) for line in block.strip().splitlines()]
    iris = load_iris()
    names = [n.replace(" (cm)", "").replace(" ", "_") for n in iris.feature_names]
    rows = [",".join(f"{v:g}" for v in x) + "," + iris.target_names[c] for x, c in zip(iris.data, iris.target)]
    header = ",".join(names) + ",species"
    for name, part in (("iris_train.csv", rows[0::2]), ("iris_test.csv", rows[1::2]),
                       ("new_flowers.csv", rows[1::5])):
        (tmp_path / name).write_text(header + "\n" + "\n".join(part) + "\n")
    env = {**os.environ, "PYTHONPATH": ROOT}
    for argv, extra in ((train_cmd, ["--iterations", "50", "--quiet"]), (predict_cmd, [])):
        proc = subprocess.run([sys.executable, "-m", "ocdl"] + argv[1:] + extra, cwd=tmp_path,
                              capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr
    import json
    pred = json.loads((tmp_path / "pred.json").read_text())
    assert set(pred["predictions"]) <= set(iris.target_names) and pred["classes"] == sorted(iris.target_names)
    assert all(abs(sum(p) - 1) < 1e-12 for p in pred["probabilities"])
