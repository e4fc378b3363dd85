"""Synthetic 2-D classification data sets (float64 inputs, int64 labels 0..C−1), and the one
entry point :func:`named_dataset` that also serves the real sets of :mod:`ocdl.data.real`.

* ``spirals(points_per_class, turns, noise)`` — two interleaved Archimedean spirals: class c has
  ``r = t``, ``φ = 2π·turns·t + cπ`` for ``t`` uniform in ``[0.1, 1]`` (points lie at radius ≤ 1),
  plus isotropic Gaussian noise of standard deviation ``noise``.
* ``circles(points_per_class, noise, factor)`` — two concentric circles of radii 1 and ``factor``.
* ``moons(points_per_class, noise)`` — two interleaving half circles.
"""
import numpy as np

from ocdl.data.real import REAL_DATASETS, load_real
from ocdl.errors import InputError, check_choice


def _check(points_per_class, noise):
    if int(points_per_class) < 1:
        raise InputError(f"points per class must be ≥ 1 (got {points_per_class})")
    if not (np.isfinite(noise) and noise >= 0):
        raise InputError(f"noise must be a finite number ≥ 0 (got {noise})")
    return int(points_per_class)


def spirals(points_per_class=200, turns=1.5, noise=0.02, seed=0, t_min=0.1):
    """Two spirals with ``turns`` turns each; returns ``(X (2n, 2), y (2n,))``."""
    n = _check(points_per_class, noise)
    if not (np.isfinite(turns) and turns > 0):
        raise InputError(f"turns must be a finite number > 0 (got {turns})")
    rng = np.random.default_rng(seed)
    Xs, ys = [], []
    for c in (0, 1):
        t = rng.uniform(t_min, 1.0, n)
        phi = 2 * np.pi * turns * t + c * np.pi
        Xs.append(np.stack([t * np.cos(phi), t * np.sin(phi)], axis=1) + noise * rng.standard_normal((n, 2)))
        ys.append(np.full(n, c))
    return _shuffle(np.concatenate(Xs), np.concatenate(ys), rng)


def circles(points_per_class=200, noise=0.05, factor=0.5, seed=0):
    """Outer circle (radius 1, class 0) and inner circle (radius ``factor``, class 1)."""
    n = _check(points_per_class, noise)
    if not (0 < factor < 1):
        raise InputError(f"factor must be in (0, 1) (got {factor})")
    rng = np.random.default_rng(seed)
    phi = rng.uniform(0, 2 * np.pi, (2, n))
    r = np.array([1.0, factor])[:, None]
    X = np.stack([(r * np.cos(phi)).ravel(), (r * np.sin(phi)).ravel()], axis=1)
    X += noise * rng.standard_normal(X.shape)
    return _shuffle(X, np.repeat([0, 1], n), rng)


def moons(points_per_class=200, noise=0.1, seed=0):
    """Two interleaving half circles (scaled to lie roughly in [−1, 1]²)."""
    n = _check(points_per_class, noise)
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, np.pi, n)
    b = rng.uniform(0, np.pi, n)
    X0 = np.stack([np.cos(a), np.sin(a)], axis=1)
    X1 = np.stack([1 - np.cos(b), 0.5 - np.sin(b)], axis=1)
    X = (np.concatenate([X0, X1]) - np.array([0.5, 0.25])) / 1.5
    X += noise * rng.standard_normal(X.shape)
    return _shuffle(X, np.repeat([0, 1], n), rng)


def _shuffle(X, y, rng):
    idx = rng.permutation(len(y))
    return X[idx].astype(float), y[idx].astype(np.int64)


DATASETS = {"spirals": spirals, "circles": circles, "moons": moons}


def make_dataset(name, seed=0, **kwargs):
    """A named synthetic data set: ``make_dataset("spirals", seed=1, points_per_class=200)``."""
    check_choice("dataset", name, list(DATASETS))
    return DATASETS[name](seed=seed, **kwargs)


#: every built-in name: the synthetic generators, then the real sets (fixed train/test split)
ALL_DATASETS = list(DATASETS) + REAL_DATASETS


def named_dataset(name, seed=0, test_seed=None, **kwargs):
    """``(X, y, X_test, y_test)`` of a built-in name.

    Synthetic sets: ``(X, y)`` drawn with ``seed`` and ``kwargs``; the test part is a second draw
    with ``test_seed`` (None: no test part, ``X_test = y_test = None``). Real sets
    (:data:`~ocdl.data.real.REAL_DATASETS`): their fixed split; ``seed``/``test_seed`` do not apply
    and generator options are refused."""
    check_choice("dataset", name, ALL_DATASETS)
    if name in REAL_DATASETS:
        if kwargs:
            raise InputError(f"data set '{name}' takes no generator options (got {', '.join(sorted(kwargs))})")
        return load_real(name)
    X, y = make_dataset(name, seed=seed, **kwargs)
    Xt, yt = make_dataset(name, seed=test_seed, **kwargs) if test_seed is not None else (None, None)
    return X, y, Xt, yt
