"""Property-based tests (hypothesis) of the CSV loader and the EXPR evaluator."""
import math

import numpy as np
from hypothesis import assume, given, settings, strategies as st

from ocdl.errors import InputError
from ocdl.expr import compile_expr
from ocdl.io import read_labelled, write_csv

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(2, 4), st.data())
def test_csv_roundtrip(tmp_path_factory, d, C, data):
    """Whatever finite table is written, reading it back gives the same numbers exactly."""
    n = data.draw(st.integers(C, 12))
    X = np.array(data.draw(st.lists(st.lists(finite, min_size=d, max_size=d), min_size=n, max_size=n)))
    y = np.array(list(range(C)) + data.draw(st.lists(st.integers(0, C - 1), min_size=n - C, max_size=n - C)))
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    write_csv(path, [f"x{j + 1}" for j in range(d)] + ["label"], [list(r) + [int(c)] for r, c in zip(X, y)])
    X2, y2 = read_labelled(path)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=30))
def test_csv_garbage_never_crashes(tmp_path_factory, text):
    """Arbitrary text is either a valid table or an InputError — never another exception."""
    path = tmp_path_factory.mktemp("g") / "g.csv"
    path.write_text("x1,label\n" + text, encoding="utf-8")
    try:
        X, y = read_labelled(path)
    except InputError:
        return
    assert np.all(np.isfinite(X)) and set(np.unique(y)) == set(range(int(y.max()) + 1))


_expr = st.recursive(
    st.one_of(st.just("x"), st.floats(0.1, 5.0).map(lambda v: f"{v:.3f}")),
    lambda sub: st.one_of(
        st.tuples(sub, st.sampled_from(["+", "-", "*"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["sin", "cos", "tanh", "exp"]), sub).map(lambda t: f"{t[0]}({t[1]})"),
    ),
    max_leaves=8,
)


@settings(max_examples=80, deadline=None)
@given(_expr, st.floats(-2.0, 2.0))
def test_expr_agrees_with_python_math(text, x):
    """The evaluator gives what Python's math module gives for the same arithmetic.

    Tolerance 1e-9 relative: nested elementary functions may differ by a few ulp between
    numpy's and libm's implementations, amplified by at most a few orders through the nesting
    on values bounded by 1e6.
    """
    env = {"x": x, "sin": math.sin, "cos": math.cos, "tanh": math.tanh, "exp": math.exp}
    try:
        ref = eval(text, {"__builtins__": {}}, env)  # noqa: S307 - oracle on generated arithmetic only
    except OverflowError:
        assume(False)
    assume(abs(ref) < 1e6)
    got = float(compile_expr(text, ("x",))(x))
    assert math.isclose(got, ref, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet="xabcdefijklmnoprstuw_.()[]{}'\"+-*/ 0123456789:,=<>!", max_size=25))
def test_expr_rejects_or_computes(text):
    """Random strings are rejected with InputError or evaluate to a number; nothing else escapes."""
    try:
        f = compile_expr(text, ("x",))
    except InputError:
        return
    try:
        val = np.asarray(f(np.array([0.5, 1.5])), dtype=float)
    except (ZeroDivisionError, OverflowError, TypeError, ValueError):
        return
    assert val.size in (1, 2)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["euler", "heun", "rk4", "verlet", "symplectic_euler", "implicit_midpoint", "gauss2",
                        "yoshida4"]),
       st.lists(st.integers(1, 3), min_size=0, max_size=2), st.integers(1, 3), st.integers(1, 6), st.data())
def test_integrators_shapes_and_batch_consistency(method, lead, half, steps, data):
    """solve returns (steps+1, *y0.shape) for any leading batch shape, and a stacked batch gives
    exactly what solving each member alone gives (vectorisation changes nothing; 1e-13 allows
    the implicit stage iterations to stop at slightly different sweeps)."""
    import integrators
    shape = tuple(lead) + (2 * half,)
    y0 = np.array(data.draw(st.lists(st.floats(-1.0, 1.0), min_size=int(np.prod(shape)),
                                     max_size=int(np.prod(shape))))).reshape(shape)

    def rhs(t, y):
        return -y + 0.5 * np.sin(y) + 0.1 * t

    Y = integrators.solve(method, rhs, y0, 0.0, 0.5, steps)
    assert Y.shape == (steps + 1,) + shape
    assert np.array_equal(Y[0], y0)
    flat = y0.reshape(-1, shape[-1])
    for i in range(min(len(flat), 3)):
        alone = integrators.solve(method, rhs, flat[i], 0.0, 0.5, steps)
        np.testing.assert_allclose(Y.reshape(steps + 1, -1, shape[-1])[:, i], alone, rtol=0, atol=1e-13)
