"""One step of an explicit Runge–Kutta method or of a splitting for an autonomous field, keeping
what an exact discrete adjoint (costate sweep) needs — the layer map of a residual network.

``rk_layer(method, f, x, h, keep)``: with ``(A, b)`` the method's tableau,

    Y_i = x + h Σ_{j<i} a_ij f(Y_j),     x⁺ = x + h Σ_i b_i f(Y_i),

``keep`` (a list, optional) receives the stage values ``Y_i``.

``splitting_layer(method, fq, fp, q, p, h, keep)``: the sub-steps of :data:`SPLITTINGS` in order,
drift ``q += c h fq(p)``, kick ``p += c h fp(q)``; ``keep`` receives ``(q, p)`` before each sub-step.

Arrays are numpy or torch (autograd flows); the sums are accumulated term by term in the order
written (``x + a y`` per term, :func:`integrators.backend.axpy`), so numpy and torch agree and the
fused costate sweeps reproduce the same numbers.
"""
from integrators.backend import axpy
from integrators.tableaux import EXPLICIT, SPLITTINGS


def rk_layer(method, f, x, h, keep=None):
    """One explicit RK step of ``ẋ = f(x)`` (module docstring); ``method`` a key of ``EXPLICIT``."""
    A, bw, _ = EXPLICIT[method]
    Fs = []
    for i in range(len(bw)):
        Y = x
        for j in range(i):
            if A[i, j] != 0.0:
                Y = axpy(Y, float(h * A[i, j]), Fs[j])
        if keep is not None:
            keep.append(Y)
        Fs.append(f(Y))
    out = x
    for i in range(len(bw)):
        out = axpy(out, float(h * bw[i]), Fs[i])
    return out


def splitting_layer(method, fq, fp, q, p, h, keep=None):
    """One step of the splitting ``method`` (a key of ``SPLITTINGS``); returns ``(q, p)``."""
    for kind, c in SPLITTINGS[method]:
        if keep is not None:
            keep.append((q, p))
        if kind == "drift":
            q = axpy(q, float(c * h), fq(p))
        else:
            p = axpy(p, float(c * h), fp(q))
    return q, p
