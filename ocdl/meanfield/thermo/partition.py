r"""Partition function of the hidden variables (neuron states) of a small network with the bulk loss.

Network (Vanchurin, *The world as a neural network*, eqs. (1)–(3), one layer of ``N`` neurons,
weight matrix ``w`` (N×N), bias ``b``): the bulk loss with the mass term ``V(x) = −(m/2) x²`` is

    H(x; b, w) = ½ |x − f(w x + b)|² − (m/2) |x|²,      f = tanh  (or f = identity: "linear").

Canonical ensemble of the states ``x ∈ R^N`` at inverse temperature ``β`` (eqs. (5), (6), (10)):

    Z = ∫ d^N x e^{−β H},   F = −log Z / β,   U = ⟨H⟩ = −∂ log Z/∂β,
    S_x = β² ∂F/∂β = log Z + β U       (= −∫ p log p, the Gibbs entropy of p = e^{−βH}/Z).

``Z`` is finite for ``m < 1`` (tanh is bounded, so ``H ≥ (1−m)|x|²/2 − O(|x|)``); the linear
network needs ``(I − w)ᵀ(I − w) − m I`` positive definite.

Gradients in the trainable variables ``q = (b, w)`` (exact identities, used for training):

    ∂F/∂q = ⟨∂H/∂q⟩,   ∂U/∂q = ⟨∂H/∂q⟩ − β Cov(H, ∂H/∂q),   ∂S_x/∂q = β(∂U/∂q − ∂F/∂q),
    ∂H/∂b_i = −r_i f'_i,   ∂H/∂w_ij = −r_i f'_i x_j,    r = x − f(wx + b),  f' = f'(wx + b).

Three evaluations of ``log Z``:

* :func:`quadrature` — the trapezoidal rule on a box around the minimiser of ``H`` (spectrally
  accurate for this smooth, Gaussian-tailed integrand; the box is widened until the integrand on
  its faces is below ``e^{−36}`` of its peak); few neurons (N ≤ 3).
* :func:`monte_carlo` — importance sampling from a defensive mixture of the Laplace Gaussian and a
  wide Gaussian whose tails dominate ``e^{−βH}`` (so the weights have finite variance); reports
  the standard error; any N.
* :func:`gaussian_paper` — eq. (7) as printed: ``Z ≈ (2π)^{N/2} det(I(1 − βm) + βG)^{−1/2}``,
  ``G = (I − f'w)ᵀ(I − f'w)``, ``f'`` at ``w⟨x⟩ + b`` (eq. (9)), and :func:`laplace` — the Gaussian
  (Laplace) approximation itself, ``log Z ≈ −βH* + (N/2) log(2π/β) − ½ log det ∇²H(x*)``.

  Eq. (7) is *not* the Gaussian integral of (3): it drops ``e^{−βH*}`` (``H* = min H``, which is
  0 for ``m = 0`` — tanh has a fixed point ``x = f(wx + b)`` — but negative for ``m > 0``), writes
  ``det((1−βm)I + βG)`` for ``det(β(G − mI))`` (the ``1`` is spurious), and uses the Gauss–Newton
  part ``G`` of the Hessian (exact at a fixed point). Consequence (measured by
  :func:`gaussian_error_scan`): for ``m = 0`` its error falls like ``1/β`` (as Laplace's) — the
  paper's statement holds at low temperature; for ``m > 0`` the error grows like ``β|H*|``.
"""
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize as scipy_minimize
from scipy.special import logsumexp

from ocdl.errors import InputError, SolverError

ACTIVATIONS = ("tanh", "linear")
#: faces of the quadrature box must sit this far (in units of βH) above the minimum
BOX_DEPTH = 36.0


def _act(y, activation):
    if activation == "tanh":
        t = np.tanh(y)
        return t, 1.0 - t * t
    return y, np.ones_like(y)


@dataclass
class BulkLoss:
    """``H(x) = ½|x − f(wx + b)|² − (m/2)|x|²`` for one network ``(w, b)``; vectorised over states."""
    w: np.ndarray
    b: np.ndarray
    m: float = 0.0
    activation: str = "tanh"

    def __post_init__(self):
        self.w = np.atleast_2d(np.asarray(self.w, dtype=float))
        self.b = np.asarray(self.b, dtype=float).reshape(-1)
        N = self.b.size
        if self.w.shape != (N, N):
            raise InputError(f"w must be {N}×{N} for {N} neurons (got {self.w.shape})")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"unknown activation '{self.activation}' (valid: {', '.join(ACTIVATIONS)})")
        if self.activation == "tanh" and not self.m < 1:
            raise InputError(f"--mass must be < 1 (got {self.m:g}): Z = ∫e^{{−βH}} diverges")
        if self.activation == "linear":
            A = (np.eye(N) - self.w).T @ (np.eye(N) - self.w) - self.m * np.eye(N)
            if np.linalg.eigvalsh(A).min() <= 0:
                raise InputError("linear network: (I − w)ᵀ(I − w) − m I is not positive definite; Z diverges")

    @property
    def N(self):
        return self.b.size

    def residual(self, x):
        t, d = _act(x @ self.w.T + self.b, self.activation)
        return x - t, t, d

    def energy(self, x):
        r, _, _ = self.residual(x)
        return 0.5 * np.sum(r * r, -1) - 0.5 * self.m * np.sum(x * x, -1)

    def grad_x(self, x):
        r, _, d = self.residual(x)
        return r - (r * d) @ self.w - self.m * x

    def hessian_x(self, x):
        """``∇²H = JᵀJ + Σ_i r_i 2 t_i f'_i w_iᵀ w_i − m I`` (J = I − diag(f')w); tanh'' = −2 t f'."""
        r, t, d = self.residual(x)
        J = np.eye(self.N) - d[:, None] * self.w
        curv = 2 * r * t * d if self.activation == "tanh" else np.zeros(self.N)
        return J.T @ J + (self.w.T * curv) @ self.w - self.m * np.eye(self.N)

    def grad_q(self, x):
        """``∂H/∂b`` (P, N) and ``∂H/∂w`` (P, N, N) at states ``x`` (P, N)."""
        r, _, d = self.residual(x)
        s = -r * d
        return s, s[:, :, None] * x[:, None, :]

    def minimiser(self):
        """``x* = argmin H`` (from the origin and the corners' fixed-point iterates); ``H*``."""
        starts = [np.zeros(self.N), np.tanh(self.b), np.ones(self.N), -np.ones(self.N)]
        best = None
        for s in starts:
            r = scipy_minimize(lambda v: float(self.energy(v[None])[0]), s, jac=lambda v: self.grad_x(v[None])[0],
                               method="BFGS", options={"gtol": 1e-12})
            if best is None or r.fun < best.fun:
                best = r
        return best.x, float(best.fun)


@dataclass
class Ensemble:
    """Canonical-ensemble quantities at one ``(β, b, w)``. Gradients are over ``q = (b, w)``
    flattened as ``[b, w.ravel()]``; ``None`` where not computed."""
    beta: float
    log_Z: float
    U: float
    F: float
    Sx: float
    mean_x: np.ndarray
    grad_F: np.ndarray = None
    grad_U: np.ndarray = None
    grad_Sx: np.ndarray = None
    stderr_log_Z: float = 0.0
    method: str = "quadrature"
    extra: dict = field(default_factory=dict)


def _moments(loss, beta, x, logw, gradients):
    """Ensemble quantities from states ``x`` with log-weights ``logw`` (self-normalised)."""
    lz = logsumexp(logw)
    p = np.exp(logw - lz)
    Hx = loss.energy(x)
    U = float(p @ Hx)
    mean = p @ x
    out = dict(U=U, mean_x=mean)
    if gradients:
        gb, gw = loss.grad_q(x)
        g = np.concatenate([gb, gw.reshape(len(x), -1)], 1)
        gF = p @ g
        cov = p @ ((Hx - U)[:, None] * g)
        gU = gF - beta * cov
        out.update(grad_F=gF, grad_U=gU, grad_Sx=beta * (gU - gF))
    return lz, out


def _trapezoid_grid(centre, half, points):
    axes = [np.linspace(c - h, c + h, points) for c, h in zip(centre, half)]
    mesh = np.meshgrid(*axes, indexing="ij")
    x = np.stack([m.ravel() for m in mesh], 1)
    cell = np.prod([a[1] - a[0] for a in axes])
    return x, axes, cell


def quadrature_error_estimate(width, h):
    """Relative trapezoid error for a Gaussian of std ``width`` on spacing ``h``: ``2 e^{−2π²w²/h²}``."""
    return 2 * np.exp(-2 * np.pi ** 2 * (width / h) ** 2)


def quadrature(loss: BulkLoss, beta, points=161, gradients=True, tol=1e-10, max_widen=8):
    """``log Z`` and the ensemble by the trapezoidal rule on ``points^N`` nodes (N ≤ 3).

    The box: centred at ``x*``, half-widths from the bound ``H ≥ Σ_i ℓ(x_i)`` (tanh) or the exact
    Gaussian (linear), widened ×1.5 until ``βH`` on every face exceeds ``βH* + 36``. The nodes
    must resolve the narrowest width ``σ = (β λ_max(∇²H(x*)))^{−1/2}`` of the integrand to the
    trapezoid error ``2e^{−2π²σ²/h²} ≤ tol``; otherwise InputError naming ``--points``.
    """
    if not beta > 0:
        raise InputError(f"--beta must be > 0 (got {beta:g})")
    if loss.N > 3:
        raise InputError(f"quadrature over {loss.N} neurons needs points^{loss.N} nodes; use --neurons ≤ 3 "
                         "(Monte Carlo handles more: --mc-neurons)")
    xs, Hs = loss.minimiser()
    Hess = loss.hessian_x(xs)
    lam = np.linalg.eigvalsh(Hess)
    if lam.min() <= 0:
        raise SolverError("the loss has no strict minimum in x (Hessian not positive definite)")
    sigma_loc = 1 / np.sqrt(beta * lam)
    if loss.activation == "tanh":
        tail = 1.0 / np.sqrt(beta * (1 - loss.m))
        half = np.full(loss.N, (np.abs(xs) + 1 + 9 * tail).max())      # widened below if needed
    else:
        cov = np.linalg.inv(Hess) / beta
        half = 9 * np.sqrt(np.diag(cov))
    for _ in range(max_widen):
        x, axes, cell = _trapezoid_grid(xs, half, points)
        h = min(a[1] - a[0] for a in axes)
        logw = -beta * loss.energy(x)
        L = logw.reshape([points] * loss.N)
        face = max(max(np.take(L, 0, axis=a).max(), np.take(L, -1, axis=a).max()) for a in range(loss.N))
        if face < -beta * Hs - BOX_DEPTH:
            break
        half = half * 1.5
    else:
        raise SolverError("quadrature box did not contain the ensemble after widening; the loss is too flat")
    err = quadrature_error_estimate(sigma_loc.min(), h)
    if err > tol:
        need = int(np.ceil(2 * half.max() / (np.pi * sigma_loc.min() * np.sqrt(2 / np.log(2 / tol))))) + 1
        raise InputError(f"--points {points} is too coarse: cell {h:.3g} against the narrowest width "
                         f"{sigma_loc.min():.3g} of e^(−βH) (quadrature error ≈ {err:.1e} > {tol:g}); "
                         f"use --points ≥ {need}")
    # trapezoid end weights (the faces are at the e^{-36} level: ½-weights change nothing visible)
    lw = np.zeros(x.shape[0])
    for a in range(loss.N):
        idx = np.unravel_index(np.arange(x.shape[0]), [points] * loss.N)[a]
        lw += np.where((idx == 0) | (idx == points - 1), np.log(0.5), 0.0)
    lz, mom = _moments(loss, beta, x, logw + lw, gradients)
    log_Z = float(lz + np.log(cell))
    return Ensemble(beta=beta, log_Z=log_Z, U=mom["U"], F=-log_Z / beta, Sx=log_Z + beta * mom["U"],
                    mean_x=mom["mean_x"], grad_F=mom.get("grad_F"), grad_U=mom.get("grad_U"),
                    grad_Sx=mom.get("grad_Sx"), method="quadrature",
                    extra={"x_star": xs, "H_star": Hs, "points": points, "half_width": half.tolist(),
                           "error_estimate": float(err)})


def monte_carlo(loss: BulkLoss, beta, samples=200_000, rng=None, gradients=False):
    """``log Z`` by importance sampling; proposal ``½ N(x*, 2Σ) + ½ N(x*, s² I)``, ``Σ`` the Laplace
    covariance ``(β∇²H(x*))^{−1}``, ``s² = 2/(β(1−m)) + 1`` (wider than the tails of ``e^{−βH}``,
    so ``e^{−βH}/q`` is bounded). Standard error of ``log Z`` by the delta method."""
    if not beta > 0:
        raise InputError(f"--beta must be > 0 (got {beta:g})")
    rng = rng if rng is not None else np.random.default_rng(0)
    xs, Hs = loss.minimiser()
    N = loss.N
    Sig = 2 * np.linalg.inv(loss.hessian_x(xs)) / beta
    Sig = 0.5 * (Sig + Sig.T)
    s2 = 2.0 / (beta * (1 - loss.m)) + 1.0 if loss.activation == "tanh" else 4 * np.linalg.eigvalsh(Sig).max()
    half = samples // 2
    Lc = np.linalg.cholesky(Sig)
    x = np.concatenate([xs + rng.standard_normal((half, N)) @ Lc.T,
                        xs + np.sqrt(s2) * rng.standard_normal((samples - half, N))])
    d1 = x - xs
    lq1 = -0.5 * np.sum(np.linalg.solve(Lc, d1.T) ** 2, 0) - np.log(np.diag(Lc)).sum() - 0.5 * N * np.log(2 * np.pi)
    lq2 = -0.5 * np.sum(d1 * d1, 1) / s2 - 0.5 * N * np.log(2 * np.pi * s2)
    lq = np.logaddexp(lq1, lq2) + np.log(0.5)
    logw = -beta * loss.energy(x) - lq
    lz, mom = _moments(loss, beta, x, logw, gradients)
    w = np.exp(logw - logw.max())
    rel = np.std(w) / np.mean(w) / np.sqrt(samples)
    log_Z = float(lz - np.log(samples))
    ess = float(w.sum() ** 2 / np.sum(w * w))
    return Ensemble(beta=beta, log_Z=log_Z, U=mom["U"], F=-log_Z / beta, Sx=log_Z + beta * mom["U"],
                    mean_x=mom["mean_x"], grad_F=mom.get("grad_F"), grad_U=mom.get("grad_U"),
                    grad_Sx=mom.get("grad_Sx"), stderr_log_Z=float(rel), method="monte-carlo",
                    extra={"samples": samples, "effective_samples": ess})


def gaussian_paper(loss: BulkLoss, beta, mean_x):
    """Eq. (7) as printed: ``log Z = (N/2) log 2π − ½ log det(I(1−βm) + βG)``, ``f'`` at ``w⟨x⟩ + b``.
    NaN where the determinant is not positive (the formula does not apply)."""
    N = loss.N
    _, d = _act(loss.w @ mean_x + loss.b, loss.activation)
    A = np.eye(N) - d[:, None] * loss.w
    M = (1 - beta * loss.m) * np.eye(N) + beta * A.T @ A
    sign, logdet = np.linalg.slogdet(M)
    return float(0.5 * N * np.log(2 * np.pi) - 0.5 * logdet) if sign > 0 else float("nan")


def laplace(loss: BulkLoss, beta):
    """The Gaussian (Laplace) approximation ``−βH* + (N/2) log(2π/β) − ½ log det ∇²H(x*)``."""
    xs, Hs = loss.minimiser()
    sign, logdet = np.linalg.slogdet(loss.hessian_x(xs))
    return float(-beta * Hs + 0.5 * loss.N * np.log(2 * np.pi / beta) - 0.5 * logdet)


def entropy_split(ens: Ensemble, N):
    """``S_x = S₀(β) + C(b, w)`` (eq. (13)). The paper defines the split only through eq. (12)
    (``F = A(β) − C/β``, which holds at a learning equilibrium); ocdl takes ``S₀(β) = (N/2)(1 +
    log(2π/β))`` — the entropy of ``N`` unit-stiffness states, the β-only part of the Laplace
    expansion ``S_x = (N/2)(1 + log(2π/β)) − ½ log det ∇²H(x*) + O(1/β)`` — and ``C = S_x − S₀``
    (so ``C → −½ log det ∇²H(x*)``, the log-volume the loss leaves to the states, as β → ∞)."""
    S0 = 0.5 * N * (1 + np.log(2 * np.pi / ens.beta))
    return float(S0), float(ens.Sx - S0)


def gaussian_error_scan(loss: BulkLoss, betas, points=161):
    """``log Z`` exact (quadrature), eq. (7) and Laplace over ``betas``; the errors vs β."""
    rows = []
    for b in betas:
        ens = quadrature(loss, b, points=points, gradients=False, tol=1e-6)
        rows.append({"beta": float(b), "exact": ens.log_Z, "gaussian": gaussian_paper(loss, b, ens.mean_x),
                     "laplace": laplace(loss, b)})
    for r in rows:
        r["gaussian_error"] = r["gaussian"] - r["exact"]
        r["laplace_error"] = r["laplace"] - r["exact"]
    return rows
