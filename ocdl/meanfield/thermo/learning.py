r"""Training the trainable variables ``q = (b, w)`` and the two laws of learning (Vanchurin §3).

Gradient descent (Armijo, :class:`ocdl.optim.GradientDescent` through :func:`ocdl.optim.minimize`)
on the free energy ``F(β, q)`` or on the average loss ``U(β, q)`` at fixed β, with the
exact-quadrature gradients of :mod:`.partition`. Each iteration records ``U, F, S₀, C, S_x``.

* **Second law of learning** (eq. (15)): ``dS_x/dt ≤ 0`` along learning. Along gradient flow on
  ``F`` the rate is ``dS_x/dt = −γ ∇S_x·∇F = −γβ(∇U − ∇F)·∇F``, which has no sign in general;
  :func:`second_law` reports how many steps raised ``S_x``, by how much in total and where.
* **First law of learning** (eqs. (16), (17)): ``dU = T dS_x`` between equilibrium states at
  constant ``T = 1/β``. Since ``F = U − T S_x`` identically, ``dU − T dS_x = dF`` for any change
  of ``q``: the first law *is* stationarity of ``F`` in ``q``. :func:`first_law` measures it at the
  end of training with independently computed ``∇U`` and ``∇S_x`` (and with a finite step
  ``δq``, by quadrature values only); at an equilibrium of the loss (``∇U = 0``, eq. (11)) it
  fails unless also ``∇S_x = 0``.
"""
import numpy as np

from ocdl.errors import InputError
from ocdl.meanfield.thermo.partition import BulkLoss, entropy_split, quadrature

OBJECTIVES = ("free-energy", "loss")


def pack(w, b):
    return np.concatenate([np.ravel(b), np.ravel(w)])


def unpack(q, N):
    return q[N:].reshape(N, N), q[:N]


def train(w0, b0, beta, m=0.0, objective="free-energy", iterations=200, lr=0.5, points=121, gtol=1e-8,
          activation="tanh", quiet=True):
    """Gradient descent on ``F`` or ``U`` from ``(w0, b0)``; returns the :class:`OptimizeResult`
    with ``x`` = final ``q`` and history rows carrying ``U, F, S0, C, Sx`` and ``grad_norm``."""
    from ocdl.optim import GradientDescent, ProgressBar, minimize
    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective '{objective}' (valid: {', '.join(OBJECTIVES)})")
    N = np.size(b0)

    def evaluate(q, grads):
        w, b = unpack(q, N)
        return quadrature(BulkLoss(w, b, m, activation), beta, points=points, gradients=grads)

    def fun(q, batch=None):
        ens = evaluate(q, True)
        S0, C = entropy_split(ens, N)
        f, g = (ens.F, ens.grad_F) if objective == "free-energy" else (ens.U, ens.grad_U)
        return f, g, {"U": ens.U, "F": ens.F, "S0": S0, "C": C, "Sx": ens.Sx, "grad_norm": float(np.linalg.norm(g))}

    def value(q, batch=None):
        ens = evaluate(q, False)
        return ens.F if objective == "free-energy" else ens.U

    rule = GradientDescent(lr=lr, value=value)
    return minimize(fun, pack(w0, b0), rule, iterations, name=f"thermo train ({objective})",
                    progress=ProgressBar(quiet), gtol=gtol)


def second_law(history):
    """``S_x`` along training: steps that raised it, their total, the largest and where."""
    S = np.array([h["Sx"] for h in history])
    d = np.diff(S)
    up = np.flatnonzero(d > 0)
    return {"steps": int(d.size), "increasing_steps": int(up.size), "total_increase": float(d[up].sum()),
            "largest_increase": float(d.max()) if d.size else 0.0,
            "largest_increase_at": int(history[int(np.argmax(d)) + 1]["iteration"]) if d.size else None,
            "net_change": float(S[-1] - S[0]) if S.size else 0.0,
            "holds": bool(up.size == 0)}


def first_law(q, N, beta, m=0.0, points=121, step=1e-3, activation="tanh", seed=0):
    """``dU − T dS_x`` at ``q``: the gradient form ``‖∇U − T∇S_x‖ / (‖∇U‖ + T‖∇S_x‖)`` and a finite
    step ``δq`` (random direction, length ``step``, quadrature values only): ``|ΔU − TΔS_x| /
    (|ΔU| + T|ΔS_x|)``. Both are 0 exactly when ``F`` is stationary (``dF = dU − T dS_x``)."""
    w, b = unpack(q, N)
    ens = quadrature(BulkLoss(w, b, m, activation), beta, points=points)
    T = 1 / beta
    gU, gS = ens.grad_U, ens.grad_Sx
    grad_res = float(np.linalg.norm(gU - T * gS) / (np.linalg.norm(gU) + T * np.linalg.norm(gS)))
    d = np.random.default_rng(seed).standard_normal(q.size)
    d *= step / np.linalg.norm(d)
    vals = []
    for s in (-1, 1):
        w2, b2 = unpack(q + s * d, N)
        e = quadrature(BulkLoss(w2, b2, m, activation), beta, points=points, gradients=False)
        vals.append((e.U, e.Sx))
    dU, dS = vals[1][0] - vals[0][0], vals[1][1] - vals[0][1]
    step_res = float(abs(dU - T * dS) / (abs(dU) + T * abs(dS)))
    return {"gradient_form": grad_res, "finite_step": step_res, "step": step,
            "grad_U_norm": float(np.linalg.norm(gU)), "grad_Sx_norm": float(np.linalg.norm(gS)),
            "grad_F_norm": float(np.linalg.norm(ens.grad_F))}
