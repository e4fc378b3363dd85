"""ocdl — residual networks as controlled ODEs, trained by optimal control.

A ResNet ``x_{k+1} = x_k + h f(x_k, θ_k)`` is the explicit-Euler discretisation of
``ẋ = f(x, θ(t))``; ocdl trains it through the Pontryagin system (state forward, costate
backward, stationarity in θ) and compares that with ordinary backprop.

The top-level names (imported on first use, so ``import ocdl`` stays light and needs neither
torch nor scikit-learn):

* :func:`train` — ``ocdl.solvers.train``: fit a ResNet-ODE classifier, returns an OptimizeResult;
* :func:`save` / :func:`load` — ``ocdl.data.save_model`` / ``load_model``: the model file;
* :class:`ResNetODEClassifier` — the scikit-learn estimator (``ocdl.estimator``; needs
  scikit-learn, ``pip install 'ocdl[sklearn]'``).
"""
__version__ = "0.1.0"

from ocdl.errors import OcdlError, InputError, SolverError  # noqa: F401

_LAZY = {
    "train": ("ocdl.solvers", "train"),
    "save": ("ocdl.data.modelfile", "save_model"),
    "load": ("ocdl.data.modelfile", "load_model"),
    "ResNetODEClassifier": ("ocdl.estimator", "ResNetODEClassifier"),
}
__all__ = ["OcdlError", "InputError", "SolverError", *_LAZY]


def __getattr__(name):
    """Import the public names of :data:`_LAZY` on first access (PEP 562)."""
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ocdl' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
