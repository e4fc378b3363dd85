"""The one result type of every optimisation run in ocdl (solvers, forces, mean-field).

Shaped like :class:`scipy.optimize.OptimizeResult`: a dict with attribute access.

=============  ==================================================================================
``x``          the solution (the caller's parameter layout: a flat vector, a dict of arrays, …)
``fun``        the objective at ``x``
``success``    True exactly when the convergence certificate passed at ``x`` (``status == 0``)
``status``     0 converged · 1 iteration cap reached · 2 stopped by the callback ·
               3 stalled (no further progress possible, test not passed) · −1 diverged
``message``    one human-readable line saying which of these happened and why
``nit``        iterations performed
``history``    ``[{"iteration", "loss", "time_s", ...}]`` one row per iteration
``wall_time_s`` seconds spent (a resumed run continues its clock)
=============  ==================================================================================

Callers add their own extras (``model``, ``solver``, ``kkt``, ``data_loss``, …) as keys.
"""

CONVERGED, ITERATION_CAP, STOPPED, STALLED, DIVERGED = 0, 1, 2, 3, -1


class OptimizeResult(dict):
    """``x, fun, success, status, message, nit, history, wall_time_s`` (+ extras); key and attribute
    access both work."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self):
        keys = [k for k in ("solver", "fun", "success", "status", "message", "nit", "wall_time_s") if k in self]
        return "OptimizeResult(" + ", ".join(f"{k}={self[k]!r}" for k in keys) + ")"
