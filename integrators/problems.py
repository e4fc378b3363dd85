"""Test problems with known solutions: Kepler, pendulum, harmonic oscillator.

Each is a Hamiltonian system ``q' = ∂H/∂p``, ``p' = −∂H/∂q`` (separable, ``H = T(p) + V(q)``)
with its exact solution from a closed form that does not use the integrators:

* ``kepler``      ``H = |p|²/2 − 1/|q|`` in the plane, started at pericentre of an orbit with
                  semi-major axis 1 and eccentricity ``e`` (period 2π). Exact solution from
                  Kepler's equation ``E − e sin E = t`` (solved by Newton's method to round-off).
* ``pendulum``    ``H = p²/2 − cos q``, ``q(0) = 0``, ``p(0) = 2k`` (libration, ``k < 1``):
                  ``q = 2 arcsin(k sn(t | k²))``, ``p = 2k cn(t | k²)`` (Jacobi elliptic
                  functions, :func:`scipy.special.ellipj`); period ``4 K(k²)``.
* ``oscillator``  ``H = (p² + q²)/2``: ``q = cos t``, ``p = −sin t``; period 2π.

States carry the dimension on the last axis (``(..., 2)`` for Kepler, ``(..., 1)`` otherwise).
"""
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np


@dataclass
class Problem:
    name: str
    fq: Callable          # fq(t, q, p) = ∂H/∂p
    fp: Callable          # fp(t, q, p) = −∂H/∂q
    q0: np.ndarray
    p0: np.ndarray
    period: float
    energy: Callable      # H(q, p), reduced over the last axis
    exact: Callable       # t -> (q(t), p(t)), t a float
    invariant: Callable = None   # a quadratic invariant (angular momentum for Kepler) or None
    description: str = ""


def _kinetic_fq(t, q, p):
    return p


def kepler(e=0.5):
    if not 0.0 <= e < 1.0:
        raise ValueError(f"eccentricity must be in [0, 1), got {e}")
    q0 = np.array([1.0 - e, 0.0])
    p0 = np.array([0.0, np.sqrt((1.0 + e) / (1.0 - e))])

    def fp(t, q, p):
        r2 = (q * q).sum(-1, keepdims=True)
        return -q / (r2 * r2 ** 0.5)

    def energy(q, p):
        return 0.5 * (p * p).sum(-1) - 1.0 / np.sqrt((q * q).sum(-1))

    def exact(t):
        E = t + e * np.sin(t)  # Newton on E − e sin E − t = 0
        for _ in range(50):
            dE = (E - e * np.sin(E) - t) / (1.0 - e * np.cos(E))
            E = E - dE
            if abs(dE) < 1e-16 * max(1.0, abs(E)):
                break
        w = np.sqrt(1.0 - e * e)
        den = 1.0 - e * np.cos(E)
        return (np.array([np.cos(E) - e, w * np.sin(E)]),
                np.array([-np.sin(E) / den, w * np.cos(E) / den]))

    def momentum(q, p):
        return q[..., 0] * p[..., 1] - q[..., 1] * p[..., 0]

    return Problem("kepler", _kinetic_fq, fp, q0, p0, 2.0 * np.pi, energy, exact, momentum,
                   f"Kepler orbit, eccentricity {e}, period 2π")


def pendulum(k=0.75):
    from scipy.special import ellipj, ellipk
    if not 0.0 < k < 1.0:
        raise ValueError(f"k = p(0)/2 must be in (0, 1) for a libration, got {k}")

    def fp(t, q, p):
        return -np.sin(q)

    def energy(q, p):
        return (0.5 * p * p - np.cos(q)).sum(-1)

    def exact(t):
        sn, cn, dn, ph = ellipj(t, k * k)
        return np.array([2.0 * np.arcsin(k * sn)]), np.array([2.0 * k * cn])

    return Problem("pendulum", _kinetic_fq, fp, np.zeros(1), np.array([2.0 * k]), 4.0 * ellipk(k * k),
                   energy, exact, None, f"pendulum, amplitude {np.degrees(2 * np.arcsin(k)):.1f}°")


def oscillator():
    def fp(t, q, p):
        return -q

    def energy(q, p):
        return 0.5 * (p * p + q * q).sum(-1)

    def exact(t):
        return np.array([np.cos(t)]), np.array([-np.sin(t)])

    return Problem("oscillator", _kinetic_fq, fp, np.ones(1), np.zeros(1), 2.0 * np.pi, energy, exact,
                   lambda q, p: 0.5 * (p * p + q * q).sum(-1), "harmonic oscillator, period 2π")


PROBLEMS = {"kepler": kepler, "pendulum": pendulum, "oscillator": oscillator}


def get_problem(name):
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem '{name}' (valid: {', '.join(PROBLEMS)})")
    return PROBLEMS[name]()
