"""Three gradients of the same discrete cost, compared (``ocdl gradcheck``).

* costate (discretise-then-optimise, :func:`ocdl.pmp.value_and_grad`) vs torch autograd:
  exact, agreement at round-off (float64);
* continuous adjoint (optimise-then-discretise, :func:`ocdl.pmp.continuous_value_and_grad`)
  vs autograd: differs by the O(h^q) error of the forward integrator;
* autograd vs central finite differences along random directions: O(ε²) + round-off/ε.
"""
import numpy as np

from ocdl.pmp.continuous import continuous_value_and_grad
from ocdl.pmp.costate import value_and_grad
from ocdl.pmp.reference import autograd_value_and_grad, finite_difference_directional


def rel_error(a, b):
    num = sum(float(np.sum((np.asarray(a[k]) - np.asarray(b[k])) ** 2)) for k in b)
    den = sum(float(np.sum(np.asarray(b[k]) ** 2)) for k in b)
    return (num / den) ** 0.5 if den > 0 else num ** 0.5


def gradcheck(model, params, X, y, directions=3, eps=1e-5, seed=0, substeps=16):
    Ja, ga = autograd_value_and_grad(model, params, X, y)
    J, g = value_and_grad(model, params, X, y)      # every integrator has an exact costate sweep
    costate_err = rel_error(g, ga)
    _, gc = continuous_value_and_grad(model, params, X, y, substeps=substeps)
    rng = np.random.default_rng(seed)
    fd, an = [], []
    for _ in range(directions):
        v = model.unflatten(rng.standard_normal(model.n_params()))
        fd.append(finite_difference_directional(model, params, X, y, v, eps=eps))
        an.append(float(model.flatten(ga) @ model.flatten(v)))
    fd, an = np.array(fd), np.array(an)
    return {
        "cost": J,
        "cost_autograd": Ja,
        "rel_error_costate_vs_autograd": costate_err,
        "rel_error_continuous_adjoint_vs_autograd": rel_error(gc, ga),
        "rel_error_autograd_vs_finite_difference": float(np.linalg.norm(fd - an) / np.linalg.norm(an)),
        "finite_difference_eps": eps,
        "continuous_adjoint_substeps": substeps,
    }
