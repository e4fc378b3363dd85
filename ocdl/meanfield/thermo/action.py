r"""The equations of motion of the seed's "action" (eqs. (26)–(33)) for one periodic variable ``q``.

Varying ``S_q[p, F] = ∫dt ∫dq [√p(−4D∂² + γF'')√p + μ(∂_tF + γF'² + V)p]`` (eq. (28)) gives,
with ``κ = γ/μ`` and ``u = 2γF'`` (eqs. (29)–(33); signs re-derived and confirmed here):

    ∂_t p = −∂_q(2γF' p) + κ p''                                    (32, Fokker–Planck)
    ∂_t F = −γF'² − V + (4D/μ) (√p)''/√p − κ F''                    (30; ∂_q of it ×2γ is (33))

The ``κ`` terms are the "learning" terms (the boxed terms of (32), (33)). Integrated here in the
variables ``a = ½ log p`` and ``F`` (``(√p)''/√p = a'' + a'²``, ``p''/(2p) = a'' + 2a'²``), spectral
in ``q``, RK4 in ``t`` (:func:`integrate_action`).

* **Learning terms off** (κ = 0): the Madelung pair of the Schrödinger equation with unit mass,
  ``ħ = 4√(Dγ/μ)``, ``V_ext = 2γV``, ``Ψ = √p e^{i 2γF/ħ} = √p e^{iF√(γμ/4D)}``. For ``μ = 1`` this is
  the seed's eqs. (34), (35); for ``μ ≠ 1`` the seed's (34), (35) (which contain no ``μ``) need
  ``D → D/μ``. :func:`schroedinger_check` compares with ``ocdl.meanfield.nls.split_step``.
* **Learning terms on**: linearised about uniform ``p̄``, a mode ``e^{ikq}`` evolves with the
  eigenvalues ``±k²√(κ² − 4γD/μ)``: dispersive (a Schrödinger-like oscillation of frequency
  ``k²√(4γD/μ − κ²)``) when ``γ < 4Dμ``, and an **ill-posed** initial-value problem (modes grow as
  ``e^{k²√(κ²−4γD/μ) t}``, without bound in ``k``) when ``γ > 4Dμ`` — the negative viscosity ``−κ``
  of (33). :func:`dispersion_check` measures it.
* **Hamilton–Jacobi regime** (``D → 0``): (30) decouples from ``p`` and is a viscous
  Hamilton–Jacobi equation; ``φ = e^{μF}`` turns it into ``∂_tφ = −κφ'' − μVφ``, a *backward* heat
  equation — well posed from terminal data only, i.e. the HJB equation of a mean-field control
  problem (value ``−2γF``, noise ``ν² = 2κ``), an imaginary-time Schrödinger equation.
  :func:`hamilton_jacobi_check` solves it both ways. Its characteristics ``q̇ = u = 2γF'`` obey
  ``q̈ = −2γV'`` (the seed's eq. (42) says ``−γV'``: it takes ``q̇ = γF'`` from (19), which is not
  the velocity ``u`` of (32); along ``q̇ = γF'`` there is no Newton law).
* **Stationary solution** (eq. (43) with ``∂_tF = 0``, ``V = 0``): ``γF'² + κF'' = 0`` ⇒
  ``F = C₀ + μ^{−1} log(C₁ + q)`` (eq. (44)). :func:`stationary_check` takes the *exact* free energy
  of a linear network as a function of one eigenvalue ``λ`` of ``G`` (quadrature) and measures
  the residual of this equation: zero exactly at ``μ = 2β`` (eq. (45)).
"""
import numpy as np

from ocdl.errors import InputError


class Line:
    """Periodic ``q ∈ [−π, π)`` with ``n`` points; spectral derivatives."""

    def __init__(self, n=128):
        self.n = int(n)
        self.h = 2 * np.pi / self.n
        self.q = -np.pi + self.h * np.arange(self.n)
        self.k = np.fft.fftfreq(self.n, 1.0 / self.n)

    def d(self, f, order=1):
        return np.real(np.fft.ifft((1j * self.k) ** order * np.fft.fft(f)))


def _rhs(line, a, F, gamma, D, mu, V, learning):
    a1, a2 = line.d(a), line.d(a, 2)
    F1, F2 = line.d(F), line.d(F, 2)
    da = -gamma * (F2 + 2 * F1 * a1)
    dF = -gamma * F1 * F1 - V + (4 * D / mu) * (a2 + a1 * a1)
    if learning:
        kappa = gamma / mu
        da = da + kappa * (a2 + 2 * a1 * a1)
        dF = dF - kappa * F2
    return da, dF


def integrate_action(line, p0, F0, V, gamma, D, mu, T, steps, learning=False):
    """RK4 for (32), (30) from ``(p0, F0)``; returns ``p``, ``F`` at ``T``."""
    if not mu > 0:
        raise InputError(f"--mu must be > 0 (got {mu:g})")
    a, F = 0.5 * np.log(p0), np.array(F0, dtype=float)
    dt = T / steps
    for _ in range(steps):
        k1 = _rhs(line, a, F, gamma, D, mu, V, learning)
        k2 = _rhs(line, a + 0.5 * dt * k1[0], F + 0.5 * dt * k1[1], gamma, D, mu, V, learning)
        k3 = _rhs(line, a + 0.5 * dt * k2[0], F + 0.5 * dt * k2[1], gamma, D, mu, V, learning)
        k4 = _rhs(line, a + dt * k3[0], F + dt * k3[1], gamma, D, mu, V, learning)
        a = a + dt / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        F = F + dt / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(F))):
        from ocdl.errors import SolverError
        raise SolverError("the action's equations blew up (ill-posed regime or too large a step)")
    return np.exp(2 * a), F


def mapping(gamma, D, mu, literal=False):
    """``(ħ, phase factor c)`` with ``Ψ = √p e^{i c F}``, potential ``2γV``: ocdl's (``ħ = 4√(Dγ/μ)``,
    ``c = 2γ/ħ``) or the seed's (34)–(35) literally (``ħ = 4√(Dγ)``, ``c = √(γ/4D)``, no ``μ``)."""
    hbar = 4 * np.sqrt(D * gamma / (1.0 if literal else mu))
    return hbar, 2 * gamma / hbar


def schroedinger_check(gamma=1.0, D=0.05, mu=4.0, T=0.5, steps=(1, 2, 4), n=64, kappa0=1.0, v0=0.5,
                       literal=False):
    """Learning terms off: the action's pair (RK4) against the Schrödinger equation (Strang split
    step) under the mapping; ``p`` from a von Mises law ``∝ e^{κ₀ cos q}``, ``F = 0.3 sin q``,
    ``V = v₀ cos q``. Returns the max density and velocity differences per step count and the
    observed orders (Strang: 2). ``steps`` are multiples of the RK4 stability limit
    ``T ħ k_max² / 2.5`` (the dispersive term ``(ħ/2)k²`` on the imaginary axis)."""
    from ocdl.meanfield.nls import PeriodicBox, split_step
    line = Line(n)
    q = line.q
    p0 = np.exp(kappa0 * np.cos(q))
    p0 /= p0.sum() * line.h
    F0 = 0.3 * np.sin(q)
    V = v0 * np.cos(q)
    box = PeriodicBox(2 * np.pi, n)
    hbar, c = mapping(gamma, D, mu, literal)
    base = int(np.ceil(T * mapping(gamma, D, mu)[0] * (n / 2) ** 2 / 2.5)) + 20
    rows = []
    for s in (base * f for f in steps):
        p, F = integrate_action(line, p0, F0, V, gamma, D, mu, T, s)
        res = split_step(box, np.sqrt(p0) * np.exp(1j * c * F0), 2 * gamma * V, 0.0, hbar, T / s, s,
                         record_every=s)
        psi = res.psi
        rho = np.abs(psi) ** 2
        u_psi = hbar * np.imag(np.conj(psi) * np.fft.ifft(1j * line.k * np.fft.fft(psi))) / rho
        rows.append({"steps": s, "density_max_error": float(np.abs(rho - p).max() / p.max()),
                     "velocity_max_error": float(np.abs(u_psi - 2 * gamma * line.d(F)).max())})
    orders = [float(np.log2(r0["density_max_error"] / r1["density_max_error"])) for r0, r1 in zip(rows, rows[1:])]
    return {"hbar": float(hbar), "phase_factor": float(c), "rows": rows, "orders": orders,
            "mapping": "seed (34)-(35) literally" if literal else "ħ = 4√(Dγ/μ), Ψ = √p exp(i 2γF/ħ)"}


def dispersion_check(gamma, D, mu, k=3, eps=1e-4, T=None, n=16):
    """Learning terms on, linear regime: start ``p = (1 + ε cos kq)/2π``, ``F = 0``; the predicted
    ``p_k(t) = ε[cos ωt − (κk²/ω) sin ωt]`` (``ω = k²√(4γD/μ − κ²)``) or its ``cosh/sinh`` form
    (ill-posed side). Returns predicted and measured amplitude at ``T`` and the regime."""
    line = Line(n)
    kappa = gamma / mu
    disc = 4 * gamma * D / mu - kappa ** 2
    rate = k * k * np.sqrt(abs(disc))
    T = T if T is not None else (1.0 / rate)
    if disc > 0:
        pred = eps * (np.cos(rate * T) - kappa * k * k / rate * np.sin(rate * T))
    else:
        pred = eps * (np.cosh(rate * T) - kappa * k * k / rate * np.sinh(rate * T))
    p0 = (1 + eps * np.cos(k * line.q)) / (2 * np.pi)
    steps = int(np.ceil(T * (kappa + 4 * D / mu + gamma) * k * k * 8)) + 50
    p, _ = integrate_action(line, p0, np.zeros(n), np.zeros(n), gamma, D, mu, T, steps, learning=True)
    meas = float(2 * np.pi * 2 * np.mean(p * np.cos(k * line.q)))
    return {"regime": "dispersive" if disc > 0 else "ill-posed (negative viscosity dominates)",
            "rate": float(rate), "T": float(T), "predicted": float(pred), "measured": meas,
            "relative_error": float(abs(meas - pred) / abs(pred))}


def hamilton_jacobi_check(gamma=1.0, mu=4.0, v0=0.5, T=0.5, steps=(100, 200, 400), n=128, particles=16):
    """``D = 0``: solve (30) backward from ``F(T) = 0`` (i) directly (RK4 in ``τ = T − t``, spectral)
    and (ii) by Hopf–Cole ``φ = e^{μF}``, ``∂_τφ = κφ'' + μVφ`` (Strang: exact heat step in Fourier,
    ``e^{μVdτ/2}`` half steps). Their difference per step count (Strang order 2). Then the
    characteristics ``q̇ = 2γF'(q, t)`` of the finest direct solution: the fitted ``a`` in
    ``q̈ = −aγV'(q)`` (ocdl: ``a = 2`` as ``κ → 0``; seed's (42): ``a = 1``)."""
    line = Line(n)
    kappa = gamma / mu
    V = v0 * np.cos(line.q)
    out = []
    paths = None
    for s in steps:
        dt = T / s
        F = np.zeros(n)
        hist = [F.copy()]

        def rhs(F):
            F1 = line.d(F)
            return gamma * F1 * F1 + kappa * line.d(F, 2) + V
        for _ in range(s):
            k1 = rhs(F)
            k2 = rhs(F + 0.5 * dt * k1)
            k3 = rhs(F + 0.5 * dt * k2)
            k4 = rhs(F + dt * k3)
            F = F + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            hist.append(F.copy())
        phi = np.ones(n)
        heat = np.exp(-kappa * line.k ** 2 * dt)
        half = np.exp(0.5 * mu * V * dt)
        for _ in range(s):
            phi = half * np.real(np.fft.ifft(heat * np.fft.fft(half * phi)))
        F_hc = np.log(phi) / mu
        out.append({"steps": s, "max_difference": float(np.abs(F_hc - F).max())})
        paths = hist
    orders = [float(np.log2(r0["max_difference"] / r1["max_difference"])) for r0, r1 in zip(out, out[1:])]
    # characteristics forward in t (τ = T − t: F(t_j) = hist[s − j]), midpoint rule
    s = steps[-1]
    dt = T / s
    G = [line.d(f) for f in paths[::-1]]                              # F'(q, t_j), j = 0..s
    q = np.linspace(-2.5, 2.5, particles)
    traj = [q.copy()]
    interp = lambda g, x: np.interp(x, line.q, g, period=2 * np.pi)  # noqa: E731
    for j in range(s):
        mid = q + 0.5 * dt * 2 * gamma * interp(G[j], q)
        q = q + dt * 2 * gamma * 0.5 * (interp(G[j], mid) + interp(G[j + 1], mid))
        traj.append(q.copy())
    traj = np.array(traj)
    acc = (traj[2:] - 2 * traj[1:-1] + traj[:-2]) / dt ** 2
    force = -gamma * (-v0 * np.sin(traj[1:-1]))                       # −γV'(q)
    a = float(np.sum(acc * force) / np.sum(force * force))
    return {"rows": out, "orders": orders, "newton_factor": a, "kappa": kappa}


def stationary_check(beta=2.0, gamma=1.0, lams=(0.8, 1.0, 1.25, 1.6, 2.0, 2.5), h=1e-2, m=0.0, points=121):
    """Exact ``F(λ)`` of the linear network ``H = ½|(I − w)x|² − (m/2)|x|²`` with
    ``(I − w) = diag(√λ, √λ₂)`` by quadrature (b = 0); central differences in ``λ`` give the
    residual ``r(μ) = max|γF'² + (γ/μ)F''| / max(γF'²)`` of the stationary (43) at ``μ = 2β`` and
    ``μ = β``, and the least-squares ``μ_fit = −Σ F''·F'² / Σ F'⁴``."""
    from ocdl.meanfield.thermo.partition import BulkLoss, quadrature

    def F(lam):
        w = np.eye(2) - np.diag([np.sqrt(lam), np.sqrt(1.7)])
        return quadrature(BulkLoss(w, np.zeros(2), m, "linear"), beta, points=points, gradients=False).F
    d1, d2 = [], []
    for lam in lams:
        fm, f0, fp = F(lam - h), F(lam), F(lam + h)
        d1.append((fp - fm) / (2 * h))
        d2.append((fp - 2 * f0 + fm) / h ** 2)
    d1, d2 = np.array(d1), np.array(d2)
    res = lambda mu: float(np.abs(gamma * d1 ** 2 + gamma / mu * d2).max() / np.max(gamma * d1 ** 2))  # noqa: E731
    mu_fit = float(-np.sum(d2 * d1 ** 2) / np.sum(d1 ** 4))
    return {"mu": 2 * beta, "residual_mu_2beta": res(2 * beta), "residual_mu_beta": res(beta), "mu_fit": mu_fit,
            "lambdas": list(lams)}
