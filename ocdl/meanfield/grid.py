"""Uniform finite-volume grids in 1-D and 2-D, described by their cells and faces.

A grid is a list of cells (centres ``centres``, volume ``volume``) and a list of faces; face
``j`` separates cell ``left[j]`` from cell ``right[j]`` along axis ``axis[j]``, at distance
``spacing[j]`` between the two centres, with midpoint ``face_points[j]``. The normal of a face
points from ``left`` to ``right`` (the +axis direction). Boundaries are no-flux (no face) or
periodic (a face joining the last cell to the first). Every operator in ``ocdl.meanfield`` is
assembled from this face list, so the 1-D and 2-D code is the same.
"""
from dataclasses import dataclass

import numpy as np

from ocdl.errors import InputError

BOUNDARIES = ("noflux", "periodic")


@dataclass
class Grid:
    shape: tuple            # cells per axis
    lower: np.ndarray       # lower domain corner per axis
    upper: np.ndarray       # upper domain corner per axis
    h: np.ndarray           # cell width per axis
    boundary: str
    centres: np.ndarray     # (ncells, dim)
    left: np.ndarray        # (nfaces,) cell index
    right: np.ndarray       # (nfaces,)
    axis: np.ndarray        # (nfaces,)
    spacing: np.ndarray     # (nfaces,) centre-to-centre distance (= h[axis])
    face_points: np.ndarray  # (nfaces, dim) face midpoints (periodic faces at the upper wall)

    @property
    def dim(self):
        return len(self.shape)

    @property
    def ncells(self):
        return int(np.prod(self.shape))

    @property
    def volume(self):
        return float(np.prod(self.h))

    def axes(self):
        """Cell-centre coordinates per axis (1-D arrays)."""
        return [self.lower[a] + (np.arange(n) + 0.5) * self.h[a] for a, n in enumerate(self.shape)]

    def mass(self, rho):
        return self.volume * np.sum(rho, axis=0)

    def cell_average(self, cdf_1d):
        """Cell averages of a product density whose per-axis CDFs are ``cdf_1d[a](x)``."""
        parts = []
        for a, n in enumerate(self.shape):
            edges = self.lower[a] + np.arange(n + 1) * self.h[a]
            parts.append(np.diff(cdf_1d[a](edges)) / self.h[a])
        out = parts[0]
        for p in parts[1:]:
            out = np.multiply.outer(out, p)
        return out.reshape(-1)


def make_grid(lower, upper, cells, boundary="noflux"):
    """A uniform grid on the box ``[lower, upper]`` with ``cells`` cells per axis (C order)."""
    lower = np.atleast_1d(np.asarray(lower, dtype=float))
    upper = np.atleast_1d(np.asarray(upper, dtype=float))
    cells = tuple(int(c) for c in np.atleast_1d(cells))
    if not (len(lower) == len(upper) == len(cells)) or len(cells) not in (1, 2):
        raise InputError("grid needs 1 or 2 axes with matching lower/upper/cells")
    if np.any(~np.isfinite(lower)) or np.any(~np.isfinite(upper)) or np.any(upper <= lower):
        raise InputError("grid bounds must be finite with xmax > xmin; fix --xmin/--xmax")
    if min(cells) < 3:
        raise InputError("grid needs at least 3 cells per axis; raise --cells")
    if boundary not in BOUNDARIES:
        raise InputError(f"unknown boundary '{boundary}' (valid: {', '.join(BOUNDARIES)})")
    h = (upper - lower) / np.array(cells)
    idx = np.arange(int(np.prod(cells))).reshape(cells)
    axes = [lower[a] + (np.arange(n) + 0.5) * h[a] for a, n in enumerate(cells)]
    mesh = np.meshgrid(*axes, indexing="ij")
    centres = np.stack([m.reshape(-1) for m in mesh], axis=1)
    L, R, A, P = [], [], [], []
    for a in range(len(cells)):
        lo = np.take(idx, np.arange(cells[a] - 1), axis=a).reshape(-1)
        hi = np.take(idx, np.arange(1, cells[a]), axis=a).reshape(-1)
        if boundary == "periodic":
            lo = np.concatenate([lo, np.take(idx, [cells[a] - 1], axis=a).reshape(-1)])
            hi = np.concatenate([hi, np.take(idx, [0], axis=a).reshape(-1)])
        pts = centres[lo].copy()
        pts[:, a] += 0.5 * h[a]
        L.append(lo), R.append(hi), A.append(np.full(lo.size, a)), P.append(pts)
    L, R, A = np.concatenate(L), np.concatenate(R), np.concatenate(A)
    return Grid(cells, lower, upper, h, boundary, centres, L, R, A, h[A], np.concatenate(P))
