"""SIGINT/SIGTERM end a command with exit 130 by ordinary signal handling
(:func:`ocdl.jobs.runcontrol.interrupts` raising :class:`ocdl.errors.Signalled`).

Why a KeyboardInterrupt subclass: CPython 3.11 (``Python/pythonrun.c``) sets a process-wide flag when
``exec`` of a string — as ``dataclasses`` does for every class it builds, so during any import —
ends with an exception whose type *is* ``KeyboardInterrupt``, and ``python -m`` then exits by
SIGINT at shutdown although the program caught the interrupt and exited 130 (``ocdl sweep`` sent
SIGTERM as it started: 1 of 15 runs exited −2). The reference here is the interpreter itself: the
same child with a bare ``KeyboardInterrupt`` handler dies by SIGINT, with ocdl's handler it exits 130.
"""
import os
import signal
import subprocess
import sys

from conftest import ROOT

CHILD = '''import os, signal, sys
from ocdl.jobs.runcontrol import interrupts


def bare(signum, frame):
    raise KeyboardInterrupt


try:
    with interrupts():
        if sys.argv[1] == "bare":
            signal.signal(signal.SIGTERM, bare)
        # the signal arrives while code run by exec(str) executes (dataclasses does this on import)
        exec("os.kill(os.getpid(), signal.SIGTERM)\\nfor i in range(10 ** 6): pass")
except KeyboardInterrupt:
    print(type(sys.exc_info()[1]).__name__, file=sys.stderr)
    sys.exit(130)
sys.exit(1)                                  # the signal never arrived
'''


def _child(tmp_path, mode):
    (tmp_path / "interrupted_child.py").write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-m", "interrupted_child", mode], env=env, capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stderr


def test_sigterm_inside_exec_exits_130_with_ocdls_handler(tmp_path):
    rc, err = _child(tmp_path, "ocdl")
    assert rc == 130 and err.strip() == "Signalled", err


def test_a_bare_keyboard_interrupt_there_makes_python_exit_by_sigint(tmp_path):
    """The control: what the subclass avoids (measured on CPython 3.11)."""
    rc, err = _child(tmp_path, "bare")
    assert rc == -signal.SIGINT and err.strip() == "KeyboardInterrupt", (rc, err)


def test_interrupts_takes_sigint_only_from_the_default_handler():
    from ocdl.jobs.runcontrol import interrupts
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)          # e.g. a background job: SIGINT stays ignored
    try:
        with interrupts():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with interrupts():
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
