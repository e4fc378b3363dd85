"""Butcher tableaux ``(A, b, c)`` and the adjoint-partner construction.

A Runge–Kutta step for ``y' = F(t, y)`` is

    Y_i     = y_n + h Σ_j a_ij F(t_n + c_i h, Y_j),   i = 1..s
    y_{n+1} = y_n + h Σ_i b_i F(t_n + c_i h, Y_i).

``adjoint_partner`` returns the tableau with which the costate must be integrated so that the
pair is a symplectic partitioned RK method (Hager 2000; Sanz-Serna, SIAM Review 2016): the
costate sweep is then the exact gradient of the discrete cost.
"""
import numpy as np

EXPLICIT = {
    "euler": (np.array([[0.0]]), np.array([1.0]), np.array([0.0])),
    "heun": (np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([0.5, 0.5]), np.array([0.0, 1.0])),
    "rk4": (
        np.array([[0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]),
        np.array([1.0, 2.0, 2.0, 1.0]) / 6.0,
        np.array([0.0, 0.5, 0.5, 1.0]),
    ),
}

_s3 = np.sqrt(3.0)
_s15 = np.sqrt(15.0)
GAUSS = {
    "implicit_midpoint": (np.array([[0.5]]), np.array([1.0]), np.array([0.5])),
    "gauss2": (
        np.array([[0.25, 0.25 - _s3 / 6.0], [0.25 + _s3 / 6.0, 0.25]]),
        np.array([0.5, 0.5]),
        np.array([0.5 - _s3 / 6.0, 0.5 + _s3 / 6.0]),
    ),
    "gauss3": (
        np.array([
            [5.0 / 36.0, 2.0 / 9.0 - _s15 / 15.0, 5.0 / 36.0 - _s15 / 30.0],
            [5.0 / 36.0 + _s15 / 24.0, 2.0 / 9.0, 5.0 / 36.0 - _s15 / 24.0],
            [5.0 / 36.0 + _s15 / 30.0, 2.0 / 9.0 + _s15 / 15.0, 5.0 / 36.0],
        ]),
        np.array([5.0, 8.0, 5.0]) / 18.0,
        np.array([0.5 - _s15 / 10.0, 0.5, 0.5 + _s15 / 10.0]),
    ),
}


def tableau(method):
    """``(A, b, c)`` of a Runge–Kutta method by name (explicit or Gauss)."""
    if method in EXPLICIT:
        A, b, c = EXPLICIT[method]
    elif method in GAUSS:
        A, b, c = GAUSS[method]
    else:
        from integrators.errors import unknown_method
        raise unknown_method(method, sorted(EXPLICIT) + sorted(GAUSS))
    return A.copy(), b.copy(), c.copy()


def adjoint_partner(A, b):
    """The costate tableau ``(Â, b̂)`` paired with ``(A, b)``: ``â_ij = b_j − b_j a_ji / b_i``, ``b̂ = b``.

    Requires every weight ``b_i ≠ 0`` (raises ``ValueError`` otherwise). With ``(A, b)`` for
    the state and ``(Â, b̂)`` for the costate, the partitioned method conserves ``pᵀ δq`` for
    the linearised system, so the discrete costate is the exact gradient.
    """
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or b.shape != (A.shape[0],):
        raise ValueError(f"tableau shapes do not match: A {A.shape}, b {b.shape}")
    if np.any(b == 0):
        raise ValueError("adjoint_partner needs all weights b_i != 0")
    A_hat = b[None, :] - b[None, :] * A.T / b[:, None]
    return A_hat, b.copy()


def costate_coefficients(A, b):
    """``C_ij = â_ij − b̂_j`` of the adjoint partner ``(Â, b̂)`` of ``(A, b)``: the coefficients of
    the stage-costate recursion ``P_i = p_{k+1} − h Σ_j C_ij (∂f/∂x(Y_j))ᵀ P_j`` (strictly upper
    triangular for explicit methods)."""
    A_hat, b_hat = adjoint_partner(A, b)
    return A_hat - b_hat[None, :]


# Lobatto IIIA (for q) and IIIB (for p), 3 stages: a symplectic partitioned pair of order 4
# (Hairer, Lubich & Wanner, Geometric Numerical Integration, §II.1.4 and Table II.1.3).
# IIIB is the adjoint partner of IIIA: adjoint_partner(*LOBATTO_IIIA3[:2]) == LOBATTO_IIIB3[:2].
LOBATTO_IIIA3 = (
    np.array([[0.0, 0.0, 0.0], [5.0 / 24.0, 1.0 / 3.0, -1.0 / 24.0], [1.0 / 6.0, 2.0 / 3.0, 1.0 / 6.0]]),
    np.array([1.0, 4.0, 1.0]) / 6.0,
    np.array([0.0, 0.5, 1.0]),
)
LOBATTO_IIIB3 = (
    np.array([[1.0 / 6.0, -1.0 / 6.0, 0.0], [1.0 / 6.0, 1.0 / 3.0, 0.0], [1.0 / 6.0, 5.0 / 6.0, 0.0]]),
    np.array([1.0, 4.0, 1.0]) / 6.0,
    np.array([0.0, 0.5, 1.0]),
)

# Triple jump (Yoshida 1990; Suzuki 1990): Φ_{γ1 h} ∘ Φ_{γ2 h} ∘ Φ_{γ1 h} of a symmetric
# second-order method is of order 4 when 2γ1 + γ2 = 1 and 2γ1³ + γ2³ = 0.
_cbrt2 = 2.0 ** (1.0 / 3.0)
YOSHIDA4 = (1.0 / (2.0 - _cbrt2), -_cbrt2 / (2.0 - _cbrt2), 1.0 / (2.0 - _cbrt2))

# Splitting methods for a separable field q̇ = F_q(p), ṗ = F_p(q): the sub-steps of one step of
# size h as ("drift" q += c h F_q(p) | "kick" p += c h F_p(q), c). symplectic_euler = kick h then
# drift h (p explicit with the old q), symplectic_euler_b = drift then kick, verlet = position form
# (drift h/2, kick h, drift h/2), yoshida4 = the triple jump of that Verlet step (weights _W1, _W0, _W1).
_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
_W0 = 1.0 - 2.0 * _W1
SPLITTINGS = {
    "symplectic_euler": [("kick", 1.0), ("drift", 1.0)],
    "symplectic_euler_b": [("drift", 1.0), ("kick", 1.0)],
    "verlet": [("drift", 0.5), ("kick", 1.0), ("drift", 0.5)],
    "yoshida4": [("drift", 0.5 * _W1), ("kick", _W1), ("drift", 0.5 * (_W1 + _W0)), ("kick", _W0),
                 ("drift", 0.5 * (_W0 + _W1)), ("kick", _W1), ("drift", 0.5 * _W1)],
}
