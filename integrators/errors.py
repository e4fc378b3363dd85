"""Errors raised by the integrators (no dependency on ocdl)."""
import difflib


class IntegratorError(RuntimeError):
    """An implicit stage did not converge, or a step produced non-finite values."""


class UnknownMethodError(ValueError):
    """An unknown method name."""


def unknown_method(name, valid):
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return UnknownMethodError(f"unknown integrator method '{name}' (valid: {', '.join(valid)}){hint}")
