"""A safe evaluator for user expressions such as ``--force "0.1*v**2"``.

Allowed: numbers, the declared variable names, ``+ - * / ** %``, unary ``+ -``, parentheses,
and calls of numpy's elementwise functions by bare name (``sin``, ``exp``, ``tanh`` ...) plus
the constants ``pi`` and ``e``. Anything else (attributes, subscripts, strings, keywords,
comprehensions, lambdas, unknown names, a function called with the wrong number of arguments)
is rejected with an :class:`InputError` before any evaluation. The expression is compiled to a
closure over a vetted AST; ``eval`` is never used.

Arithmetic has numpy semantics (float64, never Python's unbounded integers or complex floats),
and results are checked: a sub-expression without variables is evaluated once at compile time
and must be a finite real number (``1/0``, ``9**9**9**9`` and ``(-8)**(1/3)`` are refused);
an evaluation whose result is complex or not finite raises an :class:`InputError` naming the
first offending variable values.
"""
import ast
import operator

import numpy as np

from ocdl.errors import InputError

FUNCTIONS = {
    name: getattr(np, name)
    for name in (
        "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
        "arcsinh", "arccosh", "arctanh", "exp", "expm1", "log", "log1p", "log10", "log2",
        "sqrt", "cbrt", "abs", "sign", "floor", "ceil", "square", "arctan2", "hypot",
        "minimum", "maximum", "heaviside",
    )
}
FUNCTIONS["min"] = np.minimum
FUNCTIONS["max"] = np.maximum
CONSTANTS = {"pi": np.pi, "e": np.e}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow, ast.Mod: operator.mod}
_UNOPS = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_LENGTH = 1000


def compile_expr(text, variables=("x",)):
    """Compile ``text`` to a function of the named ``variables`` (numpy arrays in, array out)."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("empty expression; give e.g. '0.5*x**2'")
    if len(text) > MAX_LENGTH:
        raise InputError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise InputError(f"malformed expression '{text}': not valid arithmetic") from None
    variables = tuple(variables)
    try:
        fn = _build(tree.body, variables, text)
    except RecursionError:
        raise InputError(f"expression '{text[:60]}...' nests too deeply") from None

    def evaluate(*args, **kwargs):
        env = dict(zip(variables, args))
        env.update(kwargs)
        with np.errstate(all="ignore"):
            out = fn(env)
        _check_result(text, out, env)
        return out

    evaluate.variables = variables
    evaluate.text = text
    return evaluate


def evaluate(text, **values):
    """Evaluate ``text`` once with the given variable values."""
    return compile_expr(text, tuple(values))(**values)


def _reject(text, what):
    raise InputError(f"unsafe or unsupported expression '{text}': {what} is not allowed "
                     "(use numbers, the variable, arithmetic and numpy functions like sin, exp)")


def _check_result(text, out, env):
    """InputError if ``out`` (numpy scalar or array) is complex or has a non-finite entry."""
    if not isinstance(out, (np.ndarray, np.generic, float, int)):
        return  # e.g. a torch tensor: its own checks apply
    arr = np.asarray(out)
    if np.iscomplexobj(arr):
        raise InputError(f"expression '{text}' gives a complex number; it must be real")
    if arr.dtype.kind in "fiub" and not np.all(np.isfinite(arr)):
        idx = np.unravel_index(int(np.argmin(np.isfinite(arr))), arr.shape) if arr.ndim else ()
        where = ", ".join(f"{k}={_pick(v, idx, arr.shape):.6g}" for k, v in env.items())
        raise InputError(f"expression '{text}' is not finite (division by zero, overflow or a real "
                         f"function outside its domain) at {where or 'every point'}")


def _pick(value, idx, shape):
    v = np.asarray(value, dtype=float)
    try:
        return float(np.broadcast_to(v, shape)[idx])
    except ValueError:
        return float(v.flat[0])


def _is_constant(node):
    return not any(isinstance(n, ast.Name) and n.id not in CONSTANTS for n in ast.walk(node))


def _build(node, variables, text):
    fn = _build_node(node, variables, text)
    if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call)) and _is_constant(node):
        # fold a constant sub-expression now, so a bad one is refused before any work
        with np.errstate(all="ignore"):
            value = fn({})
        if np.iscomplexobj(value) or not np.all(np.isfinite(value)):
            raise InputError(f"expression '{text}': the constant part '{ast.unparse(node)}' is not a finite "
                             f"real number (division by zero, overflow, or a real function outside its domain)")
        value = np.float64(value)
        return lambda env: value
    return fn


def _build_node(node, variables, text):
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            _reject(text, f"constant {node.value!r}")
        try:
            value = np.float64(float(node.value))
        except OverflowError:
            raise InputError(f"expression '{text}': the number {str(node.value)[:20]}... is too large") from None
        if not np.isfinite(value):
            raise InputError(f"expression '{text}': the number {ast.unparse(node)[:20]} is not finite")
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        if name in variables:
            return lambda env: env[name]
        if name in CONSTANTS:
            value = np.float64(CONSTANTS[name])
            return lambda env: value
        _reject(text, f"name '{name}' (variables: {', '.join(variables)})")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        op = _BINOPS[type(node.op)]
        left, right = _build(node.left, variables, text), _build(node.right, variables, text)
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNOPS:
        op = _UNOPS[type(node.op)]
        arg = _build(node.operand, variables, text)
        return lambda env: op(arg(env))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            _reject(text, f"function '{what}'")
        if node.keywords:
            _reject(text, "keyword arguments")
        func = FUNCTIONS[node.func.id]
        if any(isinstance(a, ast.Starred) for a in node.args):
            _reject(text, "argument unpacking '*'")
        if len(node.args) != func.nin:
            raise InputError(f"expression '{text}': {node.func.id}() takes {func.nin} argument"
                             f"{'s' if func.nin != 1 else ''}, got {len(node.args)}")
        args = [_build(a, variables, text) for a in node.args]
        return lambda env: func(*(a(env) for a in args))
    _reject(text, type(node).__name__)
