"""Shooting on the reduced Hamiltonian BVP: residual, shared KKT, exact Jacobian."""
import numpy as np
import pytest

from ocdl import pmp
from ocdl.data import make_dataset
from ocdl.errors import InputError
from ocdl.solvers import make_model, train
from ocdl.solvers.shooting import _build


@pytest.fixture(scope="module")
def data():
    return make_dataset("spirals", seed=0, points_per_class=20)


@pytest.mark.parametrize("T,segments", [(1.0, 1), (5.0, 5)])
def test_shooting_solves_bvp_and_kkt(data, T, segments):
    X, y = data
    model = make_model(X, y, layers=20, T=T, width=2, alpha=1e-3)
    res = train(X, y, solver="shooting", model=model, seed=0, iterations=30, segments=segments)
    # the convergence test is boundary residual and KKT residual ≤ tol = 1e-8: the KKT residual
    # is not implied by the boundary one (the θ block amplifies a boundary mismatch through the
    # layers: measured KKT 1.1e-8 at boundary residual 5.7e-9 for T = 1, one segment)
    assert res.success and res.status == 0
    assert res.boundary_residual <= 1e-8
    # the BVP is the discrete PMP system: the shared KKT residual vanishes with it
    assert pmp.kkt_residual(model, res.x, X, y) <= 1e-8


def test_shooting_jacobian_is_exact():
    X, y = make_dataset("spirals", seed=1, points_per_class=6)
    model = make_model(X, y, layers=6, T=1.0, width=2, alpha=1e-2)
    spec, F, Jf, bounds, nu = _build(model, model.lift(X), y, 2)
    rng = np.random.default_rng(0)
    u = 0.05 * rng.normal(size=nu)
    guess = np.zeros((spec.m * spec.m + spec.m, model.layers))
    v = rng.normal(size=nu)
    eps = 1e-6
    fd = (np.asarray(F(u + eps * v, guess)[0]).ravel() - np.asarray(F(u - eps * v, guess)[0]).ravel()) / (2 * eps)
    Jv = np.asarray(Jf(u, guess)) @ v
    # central differences: error O(eps²)·|f'''| + round-off/eps ≈ 1e-9 relative
    assert np.abs(Jv - fd).max() <= 1e-6 * np.abs(fd).max()


def test_shooting_rejects_other_fields(data):
    X, y = data
    with pytest.raises(InputError, match="solver 'shooting' does not support field 'inner'; it supports: outer"):
        train(X, y, solver="shooting", field="inner", iterations=1)
