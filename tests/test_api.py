"""The explicit library API (issue 13): ocdl.train's signature and its TypeError for unknown
keywords, forward(keep=True), predict_proba against independent formulas, ocdl.save/ocdl.load."""
import inspect

import numpy as np
import pytest

import ocdl
from ocdl.data import spirals
from ocdl.models import ResNetODE


def test_train_signature_is_explicit_and_unknown_keywords_raise():
    params = inspect.signature(ocdl.train).parameters
    assert {"solver", "field", "integrator", "activation", "layers", "T", "width", "alpha", "beta",
            "normalize", "iterations", "seed"} <= set(params)
    X, y = spirals(10, seed=0)
    for bad in ({"lrr": 0.1}, {"normalise": "standard"}, {"rho": 1.0}):
        with pytest.raises(TypeError, match=next(iter(bad))):
            ocdl.train(X, y, solver="adam", iterations=1, **bad)
    with pytest.raises(ocdl.InputError, match="normalisation"):
        ocdl.train(X, y, normalize="minmax", iterations=1)
    res = ocdl.train(X, y, solver="msa", iterations=1, rho=2.0)      # a solver's own option is fine
    assert res.nit <= 1


def test_library_defaults_equal_cli_defaults():
    from ocdl.cli.main import build_parser
    p = build_parser()
    train = p._subparsers._group_actions[0].choices["train"]
    sig = inspect.signature(ocdl.train).parameters
    assert train.get_default("alpha") == sig["alpha"].default == 3e-3
    assert sig["normalize"].default == "standard"


@pytest.mark.parametrize("integrator,stages", [("euler", 1), ("rk4", 4)])
def test_forward_keep_true_returns_trajectory_and_stages(integrator, stages):
    X = np.random.default_rng(0).standard_normal((5, 2))
    m = ResNetODE(layers=3, integrator=integrator)
    p = m.init(seed=0)
    states, kept = m.forward(p, X, keep=True)
    np.testing.assert_array_equal(states, m.forward(p, X))
    assert states.shape == (4, 5, m.d) and len(kept) == 3 and all(len(k) == stages for k in kept)
    for k in range(3):
        np.testing.assert_array_equal(kept[k][0], states[k])      # stage 1 of every RK step is x_k


def test_predict_proba_matches_logistic_and_softmax():
    X = np.random.default_rng(1).standard_normal((7, 2)) * 30      # large logits: no overflow
    for C in (2, 4):
        m = ResNetODE(n_classes=C, layers=2)
        p = m.init(seed=2)
        p["W"] = p["W"] * 50
        s = m.logits(p, X)
        P = m.predict_proba(p, X)
        assert np.all(np.isfinite(P))
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        if C == 2:
            from scipy.special import expit
            np.testing.assert_allclose(P[:, 1], expit(s[:, 0]), rtol=1e-12, atol=1e-300)
        else:
            from scipy.special import softmax
            np.testing.assert_allclose(P, softmax(s, axis=1), rtol=1e-12, atol=1e-300)
        np.testing.assert_array_equal(np.argmax(P, axis=1), m.predict(p, X))


def test_save_load_top_level(tmp_path):
    X, y = spirals(10, seed=0)
    res = ocdl.train(X, y, iterations=2, layers=3)
    ocdl.save(tmp_path / "m.npz", res.model, res.x, info={"note": "x"})
    model, params, info = ocdl.load(tmp_path / "m.npz")
    assert info == {"note": "x"} and model.config() == res.model.config()
    np.testing.assert_array_equal(model.predict_proba(params, X), res.model.predict_proba(res.x, X))
