"""The unknown force as a piecewise-linear table on a uniform grid (a time-invariant control).

Nodes ``u_j = lo + j S`` (``j = 0..m−1``, ``S`` = grid step) carry values ``F_j``; between
nodes the force is linear, outside ``[u_0, u_{m−1}]`` it is held constant (the paper's rule:
a speed beyond the table uses the last entry)::

    s = clip((u − lo)/S, 0, m−1),  j = min(floor(s), m−2),  w = s − j
    F(u) = (1 − w) F_j + w F_{j+1},     F'(u) = (F_{j+1} − F_j)/S  (0 outside the table)

``dF(u)/dF_j = 1 − w`` and ``dF(u)/dF_{j+1} = w``: the gradient with respect to the table is a
scatter of two weights per evaluation (:meth:`ForceGrid.scatter`).
"""
import math

import numpy as np
import torch

from ocdl.errors import InputError


class ForceGrid:
    """Uniform grid ``lo, lo+S, ..., lo+(m−1)S`` holding a piecewise-linear force table."""

    def __init__(self, lo, step, size):
        if not (math.isfinite(lo) and math.isfinite(step) and step > 0):
            raise InputError(f"grid step must be a finite number > 0 (got {step})")
        if size < 2:
            raise InputError("the force grid needs at least 2 nodes")
        self.lo, self.step, self.size = float(lo), float(step), int(size)

    @classmethod
    def covering(cls, lo, hi, step):
        """The smallest grid from ``lo`` with spacing ``step`` whose last node is ≥ ``hi``."""
        size = int(math.ceil((hi - lo) / step - 1e-9)) + 1
        return cls(lo, step, max(size, 2))

    @property
    def nodes(self):
        return self.lo + self.step * np.arange(self.size)

    @property
    def hi(self):
        return self.lo + self.step * (self.size - 1)

    # --- torch (vectorised over any shape of u) -------------------------------------------
    def locate(self, u):
        """Cell index ``j``, weight ``w`` and an ``inside`` mask for arguments ``u``."""
        s = (u - self.lo) / self.step
        inside = (s >= 0) & (s <= self.size - 1)
        s = s.clamp(0.0, self.size - 1)
        j = torch.floor(s).clamp(max=self.size - 2)
        w = s - j
        return j.long(), w, inside

    def value(self, table, u):
        """``F(u)`` (differentiable in ``table`` and ``u``)."""
        j, w, _ = self.locate(u)
        return (1 - w) * table[j] + w * table[j + 1]

    def slope(self, table, u):
        """``F'(u)``: the slope of the cell containing ``u`` (0 outside the table)."""
        j, _, inside = self.locate(u)
        return (table[j + 1] - table[j]) / self.step * inside.to(table.dtype)

    def scatter(self, u, cot, out=None):
        """Accumulate ``Σ cot · dF(u)/dF`` into a table-shaped gradient (adjoint of :meth:`value`)."""
        j, w, _ = self.locate(u)
        if out is None:
            out = torch.zeros(self.size, dtype=cot.dtype)
        j, w, cot = j.reshape(-1), w.reshape(-1), cot.reshape(-1)
        out.index_add_(0, j, (1 - w) * cot)
        out.index_add_(0, j + 1, w * cot)
        return out

    # --- CasADi ---------------------------------------------------------------------------
    def value_casadi(self, table, u):
        """``F(u)`` for a scalar CasADi symbol as a sum of hat functions (same clipping rule)."""
        import casadi as ca
        uc = ca.fmin(ca.fmax(u, self.lo), self.hi)
        hats = ca.fmax(0, 1 - ca.fabs(uc - ca.DM(self.nodes)) / self.step)
        return ca.dot(hats, table)


def difference_matrix(size):
    """``D`` with ``(D F)_j = F_{j+1} − F_j`` (shape ``(size−1, size)``)."""
    D = np.zeros((size - 1, size))
    idx = np.arange(size - 1)
    D[idx, idx] = -1.0
    D[idx, idx + 1] = 1.0
    return D
