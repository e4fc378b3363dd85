"""Input checks shared by the problems and the command line (no torch: fail fast)."""
import math

import numpy as np

from ocdl.errors import InputError


def positive(name, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a finite number > 0 (got {value})")


def grid_resolves(kind, lo, hi, step):
    """The data range must span at least 3 grid cells, or the table cannot resolve F there."""
    cells = (hi - lo) / step
    if cells < 3:
        raise InputError(f"grid too coarse for the data range: the data cover {kind} [{lo:g}, {hi:g}], "
                         f"only {cells:.2g} cells of --grid-step {step:g}; use --grid-step ≤ {(hi - lo) / 4:.3g}")


def drag_data(v0, vT, T, g, vmax, grid_step):
    """Validate drag inputs; return the covered speed range and the table's upper speed."""
    positive("--T", T)
    positive("--grid-step", grid_step)
    if not math.isfinite(g):
        raise InputError("--g must be finite")
    v0, vT = np.asarray(v0, float), np.asarray(vT, float)
    if np.any(v0 < 0) or np.any(vT < 0):
        raise InputError("drag data must have speeds v0, vT ≥ 0 (downward speed)")
    lo, hi = float(min(v0.min(), vT.min())), float(max(v0.max(), vT.max()))
    if vmax is None:
        vmax = math.ceil(hi / grid_step - 1e-9) * grid_step
    elif vmax < hi:
        raise InputError(f"the data reach speed {hi:g} > --vmax {vmax:g}; raise --vmax")
    grid_resolves("speeds", lo, hi, grid_step)
    return (lo, hi), vmax


def position_data(x0, v0, kind, vT, T, target, eps, xmin, xmax, grid_step):
    """Validate position inputs; return the data range and the table range ``(xmin, xmax)``."""
    positive("--T", T)
    positive("--eps", eps)
    positive("--grid-step", grid_step)
    x0, kind, vT = np.asarray(x0, float), np.asarray(kind, float), np.asarray(vT, float)
    if np.any((kind != 0) & (kind != 1)):
        raise InputError("column 'kind' must be 1 (positive) or 0 (negative)")
    pos = kind == 1
    if pos.sum() == 0:
        raise InputError("no positive data points (kind = 1); the force cannot be learned")
    if np.any(~np.isfinite(vT[pos])):
        raise InputError("every positive data point (kind = 1) needs a finite vT")
    lo, hi = float(min(x0.min(), target - eps)), float(max(x0.max(), target + eps))
    if xmin is None:
        xmin = math.floor(lo / grid_step) * grid_step - grid_step
    if xmax is None:
        xmax = math.ceil(hi / grid_step) * grid_step + grid_step
    if not xmax > xmin:
        raise InputError(f"--xmax ({xmax:g}) must be greater than --xmin ({xmin:g})")
    grid_resolves("positions", xmin, xmax, grid_step)
    return (lo, hi), (xmin, xmax)
