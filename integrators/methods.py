"""The one-step methods: small objects with a ``step(system, t, state, h, opts)``.

``state`` is a tuple of arrays — ``(y,)`` or ``(q, p)`` — and ``step`` returns the state at
``t + h``. Runge–Kutta methods (explicit, Gauss) treat all components alike; the partitioned
methods (symplectic Euler, Störmer–Verlet, Lobatto IIIA–IIIB, compositions) need ``(q, p)``.
One stepping loop (:mod:`integrators.solve`) drives them all.

Sign and time conventions are stated per class; ``h`` may be negative (integration backwards).
"""
import dataclasses

import numpy as np

from integrators import tableaux
from integrators.backend import mix, stack
from integrators import newton
from integrators.errors import IntegratorError
from integrators.implicit import FixedPoint, iterate, needs_grad


def _terms(row, scale=1.0):
    """Non-zero ``(j, scale·a_j)`` pairs of a tableau row, as Python floats."""
    return [(j, float(scale * a)) for j, a in enumerate(row) if a != 0.0]


def _comb(base, terms, K, h):
    """``base + h Σ_j a_j K_j`` for a list of arrays ``K`` (``base`` may be None for 0)."""
    acc = None
    for j, a in terms:
        term = (h * a) * K[j]
        acc = term if acc is None else acc + term
    if acc is None:
        return base
    return acc if base is None else base + acc


class Method:
    """A one-step method. ``order`` is the classical order; the flags say which structure it keeps."""

    name = ""
    order = 0
    partitioned = False   # needs a (q, p) state
    implicit = False      # solves stage equations (for general right-hand sides)
    symplectic = False    # the one-step map of a Hamiltonian system is symplectic
    symmetric = False     # Φ_{-h} ∘ Φ_h = id (time-reversible)
    description = ""

    def step(self, system, t, state, h, opts):  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}, order {self.order}>"


class ExplicitRK(Method):
    """Explicit Runge–Kutta ``(A, b, c)``, ``a_ij = 0`` for ``j ≥ i``:

        K_i = F(t + c_i h, y + h Σ_{j<i} a_ij K_j),    y_{n+1} = y + h Σ_i b_i K_i.
    """

    def __init__(self, name, A, b, c, order, description=""):
        self.name, self.order, self.description = name, order, description
        self.A, self.b, self.c = (np.asarray(x, dtype=float) for x in (A, b, c))
        if np.any(np.triu(self.A) != 0):
            raise ValueError(f"{name}: an explicit tableau must be strictly lower triangular")
        self._rows = [_terms(self.A[i, :i]) for i in range(len(self.b))]
        self._b = _terms(self.b)
        self._c = [float(x) for x in self.c]

    def step(self, system, t, state, h, opts):
        K = []  # K[i] is a tuple over components
        for i, row in enumerate(self._rows):
            Y = tuple(_comb(y, row, [Kj[k] for Kj in K], h) for k, y in enumerate(state))
            K.append(system.f(t + self._c[i] * h, Y))
        return tuple(_comb(y, self._b, [Ki[k] for Ki in K], h) for k, y in enumerate(state))


class ImplicitRK(Method):
    """Implicit Runge–Kutta ``(A, b, c)`` (here the Gauss–Legendre collocation methods).

    Stage increments ``Z_i = Y_i − y`` solve ``Z_i = h Σ_j a_ij F(t + c_j h, y + Z_j)`` by
    fixed-point iteration (see :mod:`integrators.implicit`) or Newton's method
    (:mod:`integrators.newton`; option ``stage_solver``), started from the previous step's
    collocation polynomial (or ``Z_i = c_i h F(t, y)`` on the first step). For a partitioned
    system (separate ``fq``, ``fp``) the sweep is Gauss–Seidel: the q-stages are updated first
    and the p-stages use them, which squares the contraction factor for ``q' = p``-type systems
    (same fixed point, about half the iterations). Then
    ``y_{n+1} = y + h Σ_i b_i F(t + c_i h, y + Z_i)`` with the last evaluated ``F`` (its
    stages differ from the converged ones by less than the tolerance).
    Gauss methods with ``s`` stages have order ``2s``, are symplectic, symmetric, and conserve
    every quadratic invariant of ``F`` exactly (up to the stage tolerance and round-off).
    """

    implicit = True

    def __init__(self, name, A, b, c, order, symplectic=False, symmetric=False, description=""):
        self.name, self.order, self.description = name, order, description
        self.symplectic, self.symmetric = symplectic, symmetric
        self.A, self.b, self.c = (np.asarray(x, dtype=float) for x in (A, b, c))
        self._bmat = self.b[None, :].copy()
        self._c = [float(x) for x in self.c]
        self._extrap = _extrapolation(self.c)
        self._dmat = np.linalg.solve(self.A.T, self.b)[None, :]     # dᵀ = bᵀ A⁻¹

    def _explicit_guess(self, system, t, state, h):
        """Stage increments ``Z_i = c_i h F(t, y)`` (stacked per component)."""
        return [stack([ci * h * f for ci in self._c]) for f in system.f(t, state)]

    def step(self, system, t, state, h, opts):
        # stage increments, stacked per component: Z[k] has shape (s, *state[k].shape)
        memo = getattr(system, "memo", None)
        prev = memo.get(self.name) if memo is not None else None
        if prev is not None and prev[0] == h and abs(prev[1] - t) <= 1e-9 * abs(h):  # the next step
            # extrapolate the previous step's collocation polynomial (error O(h^{s+1}))
            Z = [mix(self._extrap, z) for z in prev[2]]
        else:
            Z = self._explicit_guess(system, t, state, h)
        if opts.stage_solver == "fixed-point":
            return self._step_fixed_point(system, t, state, h, opts, Z, memo)
        if opts.stage_solver == "newton":
            return self._step_newton(system, t, state, h, opts, Z, memo)
        # "auto": fixed point until it first fails in this solve, then Newton; full Newton for a
        # step where simplified Newton fails too (its Jacobian, frozen at y, too far from the stages')
        if not (memo is not None and memo.get("newton")):
            try:
                return self._step_fixed_point(system, t, state, h, opts, Z, memo)
            except IntegratorError:
                if memo is not None:
                    memo["newton"] = True
                Z = self._explicit_guess(system, t, state, h)      # restart from the explicit guess
        try:
            return self._step_newton(system, t, state, h, opts, Z, memo)
        except IntegratorError:
            if not opts.simplified:
                raise
        return self._step_newton(system, t, state, h, dataclasses.replace(opts, simplified=False), Z, memo)

    def _step_newton(self, system, t, state, h, opts, Z, memo):
        """Stages by Newton (:func:`integrators.newton.solve_stages`); ``y + Σ d_i Z_i``, ``dᵀ = bᵀA⁻¹``."""
        Z = newton.solve_stages(self, system, t, state, h, Z, opts)
        if memo is not None:
            memo[self.name] = (h, t + h, Z)
        return tuple(y + mix(self._dmat, z)[0] for y, z in zip(state, Z))

    def _step_fixed_point(self, system, t, state, h, opts, Z, memo):
        c, s = self._c, len(self._c)
        fpt = FixedPoint(opts, self.name, t, h, [[y, z] for y, z in zip(state, Z)], needs_grad(state))
        gauss_seidel = getattr(system, "gauss_seidel", False)
        while True:
            if gauss_seidel:  # (q, p) with separate fq, fp: update the q-stages first, then use them for p
                (q, p), (Zq, Zp) = state, Z
                P = [p + Zp[j] for j in range(s)]
                Fq = stack([system.fq(t + c[j] * h, q + Zq[j], P[j]) for j in range(s)])
                Zq_new = h * mix(self.A, Fq)
                Fp = stack([system.fp(t + c[j] * h, q + Zq_new[j], P[j]) for j in range(s)])
                F, Znew = [Fq, Fp], [Zq_new, h * mix(self.A, Fp)]
            else:
                F = [system.f(t + c[j] * h, tuple(y + z[j] for y, z in zip(state, Z))) for j in range(s)]
                F = [stack([Fj[k] for Fj in F]) for k in range(len(state))]
                Znew = [h * mix(self.A, Fk) for Fk in F]
            incr = [zn - z for zn, z in zip(Znew, Z)]
            Z = Znew
            if fpt.done(incr):
                break
        if memo is not None:
            memo[self.name] = (h, t + h, Z)
        return tuple(y + h * mix(self._bmat, Fk)[0] for y, Fk in zip(state, F))


def _extrapolation(c):
    """``E`` with ``Z_new,i ≈ Σ_j E_ij Z_j``: the collocation polynomial ``u`` through ``(0, 0)`` and
    ``(c_j, Z_j)`` (in units of ``h``, relative to ``y_n``) evaluated at ``1 + c_i``, minus its
    value at 1 (≈ ``y_{n+1} − y_n``). A starting guess for the next step's stages."""
    nodes = np.concatenate([[0.0], c])

    def lagrange(j, x):  # basis polynomial of node j+1 (node 0 carries the value 0)
        others = np.delete(nodes, j + 1)
        return np.prod((x - others) / (nodes[j + 1] - others))

    s = len(c)
    return np.array([[lagrange(j, 1.0 + c[i]) - lagrange(j, 1.0) for j in range(s)] for i in range(s)])


class SymplecticEuler(Method):
    """Symplectic Euler, q explicit and p implicit (Hairer–Lubich–Wanner VI.(3.1)):

        p_{n+1} = p_n + h Fp(t_n, q_n, p_{n+1}),    q_{n+1} = q_n + h Fq(t_n, q_n, p_{n+1}).

    Explicit Euler for ``q`` paired with implicit Euler for ``p`` (the tableaux ``[[0]]`` and
    ``[[1]]``, adjoint partners of each other). Explicit when ``Fp`` does not depend on ``p``
    (``H = T(p) + V(q)``; and in the PMP costate sweep ``p' = −(∂f/∂x)ᵀ p`` it is linear in
    ``p``). Order 1, symplectic, not symmetric.
    """

    order, partitioned, implicit, symplectic = 1, True, True, True

    def __init__(self, name="symplectic_euler"):
        self.name = name
        self.description = "q explicit Euler, p implicit Euler"

    def step(self, system, t, state, h, opts):
        q, p = state
        P = p + h * system.fp(t, q, p)
        if not opts.separable:
            fpt = FixedPoint(opts, self.name, t, h, [[p, P]], needs_grad(state))
            P = iterate(fpt, lambda P: p + h * system.fp(t, q, P), P)
        return q + h * system.fq(t, q, P), P


class SymplecticEulerB(Method):
    """Symplectic Euler, the other variant (q implicit, p explicit; the adjoint of ``symplectic_euler``):

        q_{n+1} = q_n + h Fq(t_{n+1}, q_{n+1}, p_n),    p_{n+1} = p_n + h Fp(t_{n+1}, q_{n+1}, p_n).

    Explicit when ``Fq`` does not depend on ``q``. Order 1, symplectic, not symmetric.
    """

    order, partitioned, implicit, symplectic = 1, True, True, True

    def __init__(self, name="symplectic_euler_b"):
        self.name = name
        self.description = "q implicit Euler, p explicit Euler"

    def step(self, system, t, state, h, opts):
        q, p = state
        t1 = t + h
        Q = q + h * system.fq(t1, q, p)
        if not opts.separable:
            fpt = FixedPoint(opts, self.name, t, h, [[q, Q]], needs_grad(state))
            Q = iterate(fpt, lambda Q: q + h * system.fq(t1, Q, p), Q)
        return Q, p + h * system.fp(t1, Q, p)


class StormerVerlet(Method):
    """Störmer–Verlet, **position form** (half step in q, full step in p, half step in q;
    Hairer–Lubich–Wanner VI.(3.5)), with all evaluations at the midpoint time ``t_{n+1/2}``:

        q_{n+1/2} = q_n + (h/2) Fq(t_{n+1/2}, q_{n+1/2}, p_n)
        p_{n+1}   = p_n + (h/2) [Fp(t_{n+1/2}, q_{n+1/2}, p_n) + Fp(t_{n+1/2}, q_{n+1/2}, p_{n+1})]
        q_{n+1}   = q_{n+1/2} + (h/2) Fq(t_{n+1/2}, q_{n+1/2}, p_{n+1})

    i.e. ``symplectic_euler(h/2) ∘ symplectic_euler_b(h/2)``. The first two lines are implicit
    for general ``Fq``/``Fp`` and explicit for ``H = T(p) + V(q)`` (where it is leapfrog:
    drift h/2, kick h, drift h/2). Order 2, symplectic, symmetric.
    """

    order, partitioned, implicit, symplectic, symmetric = 2, True, True, True, True

    def __init__(self, name="verlet"):
        self.name = name
        self.description = "Störmer–Verlet, position form (q half, p full, q half)"

    def step(self, system, t, state, h, opts):
        q, p = state
        tm, hh = t + 0.5 * h, 0.5 * h
        Q = q + hh * system.fq(tm, q, p)
        if not opts.separable:
            fpt = FixedPoint(opts, self.name, t, h, [[q, Q]], needs_grad(state))
            Q = iterate(fpt, lambda Q: q + hh * system.fq(tm, Q, p), Q)
        fp0 = system.fp(tm, Q, p)
        P = p + h * fp0
        if not opts.separable:
            base = p + hh * fp0
            fpt = FixedPoint(opts, self.name, t, h, [[p, P]], needs_grad(state))
            P = iterate(fpt, lambda P: base + hh * system.fp(tm, Q, P), P)
        return Q + hh * system.fq(tm, Q, P), P


class PartitionedRK(Method):
    """Partitioned Runge–Kutta: ``(A, b, c)`` for q and ``(Â, b̂, ĉ)`` for p,

        Q_i = q + h Σ_j a_ij Fq(t + c_j h, Q_j, P_j),   P_i = p + h Σ_j â_ij Fp(t + ĉ_j h, Q_j, P_j),
        q_{n+1} = q + h Σ_i b_i Fq(t + c_i h, Q_i, P_i),  p_{n+1} = p + h Σ_i b̂_i Fp(t + ĉ_i h, Q_i, P_i).

    Stages solved by fixed-point iteration on all of them (explicit rows settle after a few
    sweeps). With ``(Â, b̂) = adjoint_partner(A, b)`` the pair is symplectic; for a linear
    ``p``-equation ``p' = −(∂Fq/∂q)ᵀ p`` it is the exact discrete adjoint of ``(A, b)``.
    ``c``/``ĉ`` default to the row sums.
    """

    partitioned, implicit = True, True

    def __init__(self, A, b, A_hat, b_hat, c=None, c_hat=None, order=None, name="prk",
                 symplectic=False, symmetric=False, description=""):
        self.name, self.description = name, description
        self.A, self.b = np.asarray(A, dtype=float), np.asarray(b, dtype=float)
        self.A_hat, self.b_hat = np.asarray(A_hat, dtype=float), np.asarray(b_hat, dtype=float)
        s = len(self.b)
        if self.A.shape != (s, s) or self.A_hat.shape != (s, s) or self.b_hat.shape != (s,):
            raise ValueError(f"{name}: tableau shapes do not match: A {self.A.shape}, b {self.b.shape}, "
                             f"A_hat {self.A_hat.shape}, b_hat {self.b_hat.shape}")
        self.c = self.A.sum(axis=1) if c is None else np.asarray(c, dtype=float)
        self.c_hat = self.A_hat.sum(axis=1) if c_hat is None else np.asarray(c_hat, dtype=float)
        self.order = order
        self.symplectic, self.symmetric = symplectic, symmetric
        self._bmat, self._bmat_hat = self.b[None, :].copy(), self.b_hat[None, :].copy()
        self._c, self._c_hat = [float(x) for x in self.c], [float(x) for x in self.c_hat]

    def step(self, system, t, state, h, opts):
        q, p = state
        s, c, ch = len(self.b), self._c, self._c_hat
        fq0, fp0 = system.fq(t, q, p), system.fp(t, q, p)
        Zq = stack([ci * h * fq0 for ci in c])
        Zp = stack([ci * h * fp0 for ci in ch])
        fpt = FixedPoint(opts, self.name, t, h, [[q, Zq], [p, Zp]], needs_grad(state))
        gauss_seidel = getattr(system, "gauss_seidel", False)
        while True:
            Q, P = q + Zq, p + Zp
            Fq = stack([system.fq(t + c[j] * h, Q[j], P[j]) for j in range(s)])
            Zq_new = h * mix(self.A, Fq)
            if gauss_seidel:  # p-stages from the updated q-stages (see ImplicitRK)
                Q = q + Zq_new
            Fp = stack([system.fp(t + ch[j] * h, Q[j], P[j]) for j in range(s)])
            Zp_new = h * mix(self.A_hat, Fp)
            dq, dp = Zq_new - Zq, Zp_new - Zp
            Zq, Zp = Zq_new, Zp_new
            if fpt.done([dq, dp]):
                break
        return q + h * mix(self._bmat, Fq)[0], p + h * mix(self._bmat_hat, Fp)[0]


class Composition(Method):
    """Composition ``Φ_{γ_m h} ∘ … ∘ Φ_{γ_1 h}`` of a base method (``Σ γ_i = 1``), each sub-step
    starting at the time the previous one ended."""

    def __init__(self, name, base, gammas, order, description=""):
        self.name, self.base, self.order, self.description = name, base, order, description
        self.gammas = [float(g) for g in gammas]
        self.partitioned, self.implicit = base.partitioned, base.implicit
        self.symplectic = base.symplectic
        self.symmetric = base.symmetric and self.gammas == self.gammas[::-1]

    def step(self, system, t, state, h, opts):
        for g in self.gammas:
            state = self.base.step(system, t, state, g * h, opts)
            t = t + g * h
        return state


def _build():
    E, G = tableaux.EXPLICIT, tableaux.GAUSS
    verlet = StormerVerlet()
    methods = [
        ExplicitRK("euler", *E["euler"], order=1, description="explicit Euler"),
        ExplicitRK("heun", *E["heun"], order=2, description="Heun (explicit trapezoidal)"),
        ExplicitRK("rk4", *E["rk4"], order=4, description="classical Runge–Kutta"),
        SymplecticEuler(),
        SymplecticEulerB(),
        verlet,
        ImplicitRK("implicit_midpoint", *G["implicit_midpoint"], order=2, symplectic=True, symmetric=True,
                   description="implicit midpoint (1-stage Gauss)"),
        ImplicitRK("gauss2", *G["gauss2"], order=4, symplectic=True, symmetric=True,
                   description="2-stage Gauss–Legendre"),
        ImplicitRK("gauss3", *G["gauss3"], order=6, symplectic=True, symmetric=True,
                   description="3-stage Gauss–Legendre"),
        Composition("yoshida4", verlet, tableaux.YOSHIDA4, order=4,
                    description="triple-jump composition of Störmer–Verlet"),
        PartitionedRK(*tableaux.LOBATTO_IIIA3[:2], *tableaux.LOBATTO_IIIB3[:2],
                      c=tableaux.LOBATTO_IIIA3[2], c_hat=tableaux.LOBATTO_IIIB3[2], order=4,
                      name="lobatto3ab", symplectic=True, symmetric=True,
                      description="3-stage Lobatto IIIA (q) – IIIB (p) pair"),
    ]
    return {m.name: m for m in methods}


METHODS = _build()
