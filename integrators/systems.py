"""Right-hand sides as the methods see them.

A method advances a *state tuple*: ``(y,)`` for ``y' = F(t, y)`` or ``(q, p)`` for a partitioned
system. Every system offers ``f(t, state) -> tuple`` (what Runge–Kutta methods use); partitioned
systems also offer ``fq(t, q, p)`` and ``fp(t, q, p)`` (what splitting methods use).
"""
from integrators import backend


class _Checked:
    """Shape/kind checks on the first few evaluations only (they cost time in the inner loop)."""

    _checks_left = 2

    def _check(self, value, like, what):
        if self._checks_left > 0:
            self._checks_left -= 1
            return backend.check_like(value, like, what)
        return value


class PlainSystem(_Checked):
    """``y' = rhs(t, y)`` with state ``(y,)``."""

    def __init__(self, rhs):
        self.rhs = rhs

    def f(self, t, state):
        return (self._check(self.rhs(t, state[0]), state[0], "rhs(t, y)"),)


class PartitionedSystem(_Checked):
    """``q' = fq(t, q, p)``, ``p' = fp(t, q, p)`` with state ``(q, p)``."""

    gauss_seidel = True  # fq and fp are separate functions: stage sweeps may update q before p

    def __init__(self, fq, fp):
        self._fq, self._fp = fq, fp

    def fq(self, t, q, p):
        return self._check(self._fq(t, q, p), q, "fq(t, q, p)")

    def fp(self, t, q, p):
        return self._check(self._fp(t, q, p), p, "fp(t, q, p)")

    def f(self, t, state):
        q, p = state
        return self.fq(t, q, p), self.fp(t, q, p)


class SplitSystem(_Checked):
    """A plain ``y' = rhs(t, y)`` seen as partitioned: ``q, p`` are the two halves of ``y``'s last axis.

    ``fq`` and ``fp`` on the same ``(t, q, p)`` share one evaluation of ``rhs``.
    """

    def __init__(self, rhs, half):
        self.rhs, self.half = rhs, half
        self._key = None
        self._val = None

    def _eval(self, t, q, p):
        key = self._key
        if key is not None and key[0] == t and key[1] is q and key[2] is p:
            return self._val
        y = backend.concat_last(q, p)
        v = self._check(self.rhs(t, y), y, "rhs(t, y)")
        self._key, self._val = (t, q, p), (v[..., : self.half], v[..., self.half:])
        return self._val

    def fq(self, t, q, p):
        return self._eval(t, q, p)[0]

    def fp(self, t, q, p):
        return self._eval(t, q, p)[1]

    def f(self, t, state):
        return self._eval(t, state[0], state[1])
