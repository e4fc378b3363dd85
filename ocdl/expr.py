"""A safe evaluator for user expressions such as ``--force "0.1*v**2"``.

Allowed: numbers, the declared variable names, ``+ - * / ** %``, unary ``+ -``, parentheses,
and calls of numpy's elementwise functions by bare name (``sin``, ``exp``, ``tanh`` ...) plus
the constants ``pi`` and ``e``. Anything else (attributes, subscripts, strings, keywords,
comprehensions, lambdas, unknown names) is rejected with an :class:`InputError` before any
evaluation. The expression is compiled to a closure over a vetted AST; ``eval`` is never used.
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
    fn = _build(tree.body, variables, text)

    def evaluate(*args, **kwargs):
        env = dict(zip(variables, args))
        env.update(kwargs)
        with np.errstate(all="ignore"):
            out = fn(env)
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


def _build(node, variables, text):
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            _reject(text, f"constant {node.value!r}")
        value = float(node.value)
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        if name in variables:
            return lambda env: env[name]
        if name in CONSTANTS:
            value = CONSTANTS[name]
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
        args = [_build(a, variables, text) for a in node.args]
        if not args:
            _reject(text, f"calling '{node.func.id}' without arguments")
        return lambda env: func(*(a(env) for a in args))
    _reject(text, type(node).__name__)
