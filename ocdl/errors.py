"""Error types and the exit codes the command line maps them to.

* :class:`InputError` — bad input (file, number, name); exit code 2.
* :class:`SolverError` — a solver failed or diverged; exit code 3.
* :class:`Interrupted` — SIGINT/SIGTERM, with the partial result kept; exit code 130.

Messages are one line, name the problem and say how to fix it.
"""
import difflib


class OcdlError(Exception):
    exit_code = 1


class InputError(OcdlError, ValueError):
    exit_code = 2


class SolverError(OcdlError, RuntimeError):
    exit_code = 3


class Signalled(KeyboardInterrupt):
    """What ocdl's SIGINT/SIGTERM handlers raise (:func:`ocdl.jobs.runcontrol.interrupts`,
    :class:`ocdl.jobs.runcontrol.StopFlag`); every ``except KeyboardInterrupt`` catches it.

    Why not a bare ``KeyboardInterrupt``: CPython (``Python/pythonrun.c``, ``run_eval_code_obj``;
    3.11 here) sets a process-wide flag when code run through ``PyRun_*`` — ``exec`` of a string,
    which ``dataclasses`` does for every class it builds, so during any import — ends with an
    exception whose type *is* ``KeyboardInterrupt`` (an identity test), and ``python -m`` then exits
    by SIGINT (−2) instead of with the CLI's 130 although the CLI handled the interrupt (measured:
    ``ocdl sweep`` sent SIGTERM as it starts, 1 of 15 runs). A subclass never sets that flag; it
    replaces the ctypes write to ``_Py_UnhandledKeyboardInterrupt`` the CLI made before.
    tests/test_cli_interrupts.py reproduces both."""


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped a run that kept what it had finished: ``result`` (a partial result,
    marked ``"partial": true``). The command writes it and exits 130 with the message."""

    def __init__(self, message="", result=None):
        super().__init__(message)
        self.result = result


def interrupt_cause(exc):
    """The ``KeyboardInterrupt`` (SIGINT/SIGTERM) in ``exc``'s chain (itself, ``__cause__``,
    ``__context__``), or ``None``. A signal handler raises wherever the main thread is, and some
    frames wrap what they see: CPython 3.11 turns an exception raised while ``type.__new__`` calls
    ``__set_name__`` (every class being built, e.g. during an import) into a ``RuntimeError``
    whose ``__cause__`` is the interrupt (measured: an ``ocdl sweep`` run recorded as failed with
    "Error calling __set_name__ on 'Field' instance …", and the sweep went on). Whoever records
    failures and carries on must re-raise this instead."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def unknown_name(kind, name, valid):
    """An :class:`InputError` for an unknown ``kind`` name, listing valid ones and the closest."""
    valid = list(valid)
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return InputError(f"unknown {kind} '{name}' (valid: {', '.join(valid)}){hint}")


def check_choice(kind, name, valid):
    """Return ``name`` if it is in ``valid``; raise the :func:`unknown_name` error otherwise."""
    if name not in valid:
        raise unknown_name(kind, name, valid)
    return name
