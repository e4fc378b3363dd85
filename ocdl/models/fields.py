"""Vector fields ``f(x, θ)`` with ``θ = (K, b)``, batched over samples (rows of ``x``).

Each field gives three vectorised pieces (x has shape (n, d), the costate ``p`` too):

* ``f(x, K, b)``                     the field itself (numpy or torch);
* ``vjp_x(x, K, b, p)``              ``(∂f/∂x)ᵀ p`` row by row, shape (n, d);
* ``vjp_theta(x, K, b, p)``          ``Σ_i (∂f/∂θ(x_i))ᵀ p_i`` as ``(gK (m, m), gb (m,))``.

σ = tanh, σ' = 1 − tanh². Fields (DESIGN.md §2):

* ``inner``        f = σ(K x + b)
* ``outer``        f = K σ(x) + b
* ``hamiltonian``  x = (q, p), q̇ = σ(K p + b), ṗ = −σ(Kᵀ q + b)   (K, b of size m = d/2)
"""
import numpy as np

from ocdl.models.backend import affine, concat, swap, tanh


class InnerField:
    name = "inner"

    @staticmethod
    def f(x, K, b):
        return tanh(affine(x, K, b))

    @staticmethod
    def vjp_x(x, K, b, p):
        s = np.tanh(x @ K.T + b)
        return ((1.0 - s * s) * p) @ K

    @staticmethod
    def vjp_theta(x, K, b, p):
        s = np.tanh(x @ K.T + b)
        u = (1.0 - s * s) * p
        return u.T @ x, u.sum(axis=0)


class OuterField:
    name = "outer"

    @staticmethod
    def f(x, K, b):
        return affine(tanh(x), K, b)

    @staticmethod
    def vjp_x(x, K, b, p):
        s = np.tanh(x)
        return (1.0 - s * s) * (p @ K)

    @staticmethod
    def vjp_theta(x, K, b, p):
        return p.T @ np.tanh(x), p.sum(axis=0)


class HamiltonianField:
    """Haber–Ruthotto field on x = (q, p): ``q̇ = F_q(p) = σ(K p + b)``, ``ṗ = F_p(q) = −σ(Kᵀ q + b)``.

    Separable, so partitioned / splitting methods (Verlet) apply; the two halves are exposed as
    ``fq(p)``, ``fp(q)`` with their own vector-Jacobian products.
    """
    name = "hamiltonian"

    # --- the two halves -------------------------------------------------------------------
    @staticmethod
    def fq(pp, K, b):
        return tanh(affine(pp, K, b))

    @staticmethod
    def fp(q, K, b):
        return -tanh(affine(q, swap(K), b))

    @staticmethod
    def fq_vjp(pp, K, b, lam):
        """(∂F_q/∂p)ᵀ λ and Σ (∂F_q/∂θ)ᵀ λ for F_q = σ(K p + b)."""
        s = np.tanh(pp @ K.T + b)
        u = (1.0 - s * s) * lam
        return u @ K, (u.T @ pp, u.sum(axis=0))

    @staticmethod
    def fp_vjp(q, K, b, lam):
        """(∂F_p/∂q)ᵀ λ and Σ (∂F_p/∂θ)ᵀ λ for F_p = −σ(Kᵀ q + b)."""
        s = np.tanh(q @ K + b)
        u = -(1.0 - s * s) * lam
        return u @ K.T, (q.T @ u, u.sum(axis=0))

    # --- the whole field ------------------------------------------------------------------
    @classmethod
    def f(cls, x, K, b):
        m = x.shape[-1] // 2
        return concat([cls.fq(x[..., m:], K, b), cls.fp(x[..., :m], K, b)])

    @classmethod
    def vjp_x(cls, x, K, b, lam):
        m = x.shape[-1] // 2
        gp, _ = cls.fq_vjp(x[:, m:], K, b, lam[:, :m])
        gq, _ = cls.fp_vjp(x[:, :m], K, b, lam[:, m:])
        return np.concatenate([gq, gp], axis=1)

    @classmethod
    def vjp_theta(cls, x, K, b, lam):
        m = x.shape[-1] // 2
        _, (gK1, gb1) = cls.fq_vjp(x[:, m:], K, b, lam[:, :m])
        _, (gK2, gb2) = cls.fp_vjp(x[:, :m], K, b, lam[:, m:])
        return gK1 + gK2, gb1 + gb2


FIELDS = {"inner": InnerField, "outer": OuterField, "hamiltonian": HamiltonianField}
