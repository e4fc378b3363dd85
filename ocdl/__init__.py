"""ocdl — residual networks as controlled ODEs, trained by optimal control.

A ResNet ``x_{k+1} = x_k + h f(x_k, θ_k)`` is the explicit-Euler discretisation of
``ẋ = f(x, θ(t))``; ocdl trains it through the Pontryagin system (state forward, costate
backward, stationarity in θ) and compares that with ordinary backprop.
"""
__version__ = "0.1.0"

from ocdl.errors import OcdlError, InputError, SolverError  # noqa: F401


def train(*args, **kwargs):
    """Train a ResNet-ODE classifier; see :func:`ocdl.solvers.train`."""
    from ocdl.solvers import train as _train
    return _train(*args, **kwargs)
