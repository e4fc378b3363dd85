r"""Real-time nonlinear Schrödinger equation, Madelung transform and Bohm potential.

Equation (1-D or 2-D, periodic box, unit mass):

    iħ ∂ψ/∂t = −(ħ²/2) Δψ + V(x) ψ + g |ψ|² ψ.

Solver: Strang split-step Fourier, one step = half step of ``exp(−i(V + g|ψ|²) dt/(2ħ))``
(exact: ``|ψ|`` is constant under it), full kinetic step ``exp(−iħ|k|² dt/2)`` in Fourier space,
half step again. Every sub-step is unitary, so the mass ``∫|ψ|²`` is conserved to round-off;
the scheme is second order in ``dt`` and spectral in space.

Madelung: ``ψ = √ρ e^{iS/ħ}`` turns the NLS into (checked symbolically in
tests/test_meanfield_signs.py)

    continuity        ∂ρ/∂t + ∇·(ρ ∇S) = 0,
    quantum HJ        ∂S/∂t + |∇S|²/2 + V + gρ + Q = 0,    Q = −(ħ²/2) Δ√ρ / √ρ  (Bohm),

with velocity ``v = ∇S = ħ Im(ψ̄∇ψ)/|ψ|²`` and current ``j = ρv = ħ Im(ψ̄∇ψ)``. This real-time
identity is *different* from the stochastic-control / Hopf–Cole map, which lands on the
imaginary-time system (see :mod:`ocdl.meanfield.control` and docs/meanfield.md).
"""
from dataclasses import dataclass

import numpy as np

from ocdl.errors import InputError, SolverError


class PeriodicBox:
    """Uniform periodic grid on ``[−L/2, L/2)^d`` (``d`` = 1 or 2) with FFT wavenumbers."""

    def __init__(self, L, points, dim=1):
        if not (L > 0 and np.isfinite(L)):
            raise InputError("--L must be > 0")
        if int(points) < 8:
            raise InputError("--points must be ≥ 8")
        self.L, self.n, self.dim = float(L), int(points), int(dim)
        self.dx = self.L / self.n
        x1 = -self.L / 2 + self.dx * np.arange(self.n)
        k1 = 2 * np.pi * np.fft.fftfreq(self.n, d=self.dx)
        if self.dim == 1:
            self.x, self.k = (x1,), (k1,)
        else:
            self.x = tuple(np.meshgrid(x1, x1, indexing="ij"))
            self.k = tuple(np.meshgrid(k1, k1, indexing="ij"))
        self.k2 = sum(kk * kk for kk in self.k)
        self.dV = self.dx ** self.dim

    def integrate(self, f):
        return float(np.sum(f).real * self.dV)

    def grad(self, f):
        fh = np.fft.fftn(f)
        return [np.fft.ifftn(1j * kk * fh) for kk in self.k]

    def laplacian(self, f):
        return np.fft.ifftn(-self.k2 * np.fft.fftn(f))


def mass(box, psi):
    return box.integrate(np.abs(psi) ** 2)


def energy(box, psi, V, g, hbar):
    """``E = ∫ (ħ²/2)|∇ψ|² + V|ψ|² + (g/2)|ψ|⁴`` (kinetic part by Parseval)."""
    ph = np.fft.fftn(psi)
    kin = 0.5 * hbar**2 * np.sum(box.k2 * np.abs(ph) ** 2) * box.dV / psi.size
    rho = np.abs(psi) ** 2
    return float(kin + box.integrate(V * rho + 0.5 * g * rho * rho))


@dataclass
class NLSResult:
    psi: np.ndarray
    t: np.ndarray
    mass: np.ndarray
    energy: np.ndarray
    previous: list          # ψ at the two steps before T (for time derivatives)
    dt: float


def split_step(box, psi0, V, g, hbar, dt, steps, record_every=1, progress=None):
    """Strang split-step Fourier integration of the NLS (see module docstring)."""
    psi = np.array(psi0, dtype=complex)
    V = np.broadcast_to(np.asarray(V, dtype=float), psi.shape)
    kin = np.exp(-0.5j * hbar * box.k2 * dt)
    ts, ms, es = [0.0], [mass(box, psi)], [energy(box, psi, V, g, hbar)]
    keep = {0: psi.copy()}
    for n in range(1, steps + 1):
        psi = psi * np.exp(-0.5j * (V + g * np.abs(psi) ** 2) * dt / hbar)
        psi = np.fft.ifftn(kin * np.fft.fftn(psi))
        psi = psi * np.exp(-0.5j * (V + g * np.abs(psi) ** 2) * dt / hbar)
        if steps - 2 <= n <= steps - 1:
            keep[n] = psi.copy()
        if n % record_every == 0 or n == steps:
            ts.append(n * dt), ms.append(mass(box, psi)), es.append(energy(box, psi, V, g, hbar))
        if progress is not None:
            progress.update(n)
    if not np.all(np.isfinite(psi)):
        raise SolverError("NLS solution became non-finite; lower --dt")
    prev = [keep.get(steps - 2, keep[0]), keep.get(steps - 1, keep[0])]   # ψ^{N−2}, ψ^{N−1}
    return NLSResult(psi=psi, t=np.array(ts), mass=np.array(ms), energy=np.array(es), previous=prev, dt=dt)


# ---- Madelung ----------------------------------------------------------------------------------
def to_madelung(psi, hbar=1.0):
    """``ψ → (ρ, S)``: ``ρ = |ψ|²``, ``S = ħ arg ψ`` (phase unwrapped along each axis)."""
    ph = np.angle(psi)
    for ax in range(psi.ndim):
        ph = np.unwrap(ph, axis=ax)
    return np.abs(psi) ** 2, hbar * ph


def from_madelung(rho, S, hbar=1.0):
    """``(ρ, S) → ψ = √ρ e^{iS/ħ}``."""
    return np.sqrt(rho) * np.exp(1j * np.asarray(S) / hbar)


def current(box, psi, hbar=1.0):
    """``j = ρ v = ħ Im(ψ̄ ∇ψ)`` (list over axes)."""
    return [hbar * np.imag(np.conj(psi) * gp) for gp in box.grad(psi)]


def bohm_potential(box, rho, hbar=1.0, floor=1e-300):
    """``Q = −(ħ²/2) Δ√ρ / √ρ`` (spectral Laplacian)."""
    s = np.sqrt(rho)
    return -0.5 * hbar**2 * np.real(box.laplacian(s)) / np.maximum(s, floor)


def madelung_residuals(box, psi_m2, psi_m1, psi, dt, V, g, hbar=1.0):
    """ρ-weighted L1 residuals of the continuity and quantum-HJ equations at the last time.

    Time derivatives by the 2nd-order backward difference ``(3ψ^N − 4ψ^{N−1} + ψ^{N−2})/(2dt)``,
    space spectrally. Returned: ``∫|ρ_t + ∇·j| / ∫ρ`` and
    ``∫ |ρ(S_t + |v|²/2 + V + gρ) + ρQ| / ∫ρ`` with ``ρS_t = ħ Im(ψ̄ψ_t)``,
    ``ρ|v|² = |j|²/ρ`` and ``ρQ = −(ħ²/2)√ρ Δ√ρ`` (the weighting avoids dividing by tiny ρ).
    """
    psi_t = (3 * psi - 4 * psi_m1 + psi_m2) / (2 * dt)
    rho = np.abs(psi) ** 2
    j = current(box, psi, hbar)
    div_j = sum(np.real(box.grad(jj)[a]) for a, jj in enumerate(j))
    rho_t = 2 * np.real(np.conj(psi) * psi_t)
    m = box.integrate(rho)
    cont = box.integrate(np.abs(rho_t + div_j)) / m
    rho_S_t = hbar * np.imag(np.conj(psi) * psi_t)
    tiny = 1e-30 * rho.max()
    kin = np.where(rho > tiny, sum(jj * jj for jj in j) / (2 * np.maximum(rho, tiny)), 0.0)
    s = np.abs(psi)
    rhoQ = -0.5 * hbar**2 * s * np.real(box.laplacian(s))
    hj = box.integrate(np.abs(rho_S_t + kin + (V + g * rho) * rho + rhoQ)) / m
    return cont, hj


# ---- initial states and analytic solutions ------------------------------------------------------
def soliton(x, t, eta, velocity, x0, g, hbar, L=None):
    """Bright soliton of the focusing NLS (``g < 0``, ``V = 0``):
    ``ψ = A sech(η(x − x0 − vt)) exp(i(kx − ωt))``, ``A = ħη/√|g|``, ``k = v/ħ``,
    ``ω = ħ(k² − η²)/2`` (position wrapped into the periodic box if ``L`` is given)."""
    if not g < 0:
        raise InputError("a bright soliton needs a focusing nonlinearity --g < 0")
    k = velocity / hbar
    xi = x - x0 - velocity * t
    if L is not None:
        xi = (xi + L / 2) % L - L / 2
    A = hbar * eta / np.sqrt(-g)
    return A / np.cosh(eta * xi) * np.exp(1j * (k * x - 0.5 * hbar * (k * k - eta * eta) * t))


def gaussian_packet(x, x0, width, velocity, hbar):
    """``ψ = (2πw²)^{-1/4} exp(−(x − x0)²/(4w²) + i v x/ħ)`` (``|ψ|²`` = N(x0, w²))."""
    return (2 * np.pi * width**2) ** -0.25 * np.exp(-(x - x0) ** 2 / (4 * width**2) + 1j * velocity * x / hbar)


def coherent_state(x, x0, velocity, omega, hbar):
    """Displaced ground state of ``V = ω²x²/2``; ``|ψ(t)|²`` stays the ground density centred at
    ``x0 cos ωt + (v/ω) sin ωt`` (for ``g = 0``)."""
    return (omega / (np.pi * hbar)) ** 0.25 * np.exp(-omega * (x - x0) ** 2 / (2 * hbar) + 1j * velocity * x / hbar)


# ---- one run with its checks (what ``ocdl meanfield nls`` reports) --------------------------------
def time_steps(T, dt):
    """``(steps, dt')``: the number of steps ``round(T/dt)`` (≥ 1) and the step ``T/steps`` that fits."""
    steps = max(1, int(round(T / dt)))
    return steps, T / steps


def read_psi0(path, box):
    """A user's ψ₀ on ``box``: CSV ``x,re,im`` (1-D) / ``x,y,re,im`` (2-D, rows in the box's order,
    ``y`` fastest) or ``.npz`` with ``psi`` (complex, shape of the grid) and optionally ``x`` (the axis).
    The file's points must be the box's ``x_k = −L/2 + kL/points`` (to 1e-9 L): else an
    :class:`InputError` saying what the file has and what the command expects."""
    expect = f"the command's grid is {box.n}{'×' + str(box.n) if box.dim == 2 else ''} points on [{-box.L / 2:g}, " \
             f"{box.L / 2:g}) (x_k = −L/2 + k·L/points; set --points and --L to match)"
    axis = box.x[0] if box.dim == 1 else box.x[0][:, 0]
    if str(path).endswith(".npz"):
        try:
            with np.load(path) as z:
                if "psi" not in z:
                    raise InputError(f"{path}: no array 'psi' in the .npz file")
                psi = np.asarray(z["psi"], dtype=complex)
                xs = np.asarray(z["x"], dtype=float).reshape(-1) if "x" in z else None
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read --psi0 {path}: {exc}") from None
        if psi.shape != box.x[0].shape or (xs is not None and (xs.size != box.n or
                                                               np.max(np.abs(xs - axis)) > 1e-9 * box.L)):
            raise InputError(f"--psi0 {path}: psi has shape {psi.shape}"
                             f"{'' if xs is None else f' on x in [{xs.min():g}, {xs.max():g}]'}; {expect}")
    elif str(path).endswith(".csv"):
        from ocdl.io.csvtable import read_table
        cols = ["x", "re", "im"] if box.dim == 1 else ["x", "y", "re", "im"]
        t = read_table(path, cols)
        pts = [np.ravel(xx) for xx in box.x]
        ok = t["x"].size == pts[0].size and all(np.max(np.abs(t[c] - q)) <= 1e-9 * box.L
                                                  for c, q in zip(cols, pts))
        if not ok:
            raise InputError(f"--psi0 {path}: {t['x'].size} rows with x in [{t['x'].min():g}, {t['x'].max():g}]; "
                             f"{expect}")
        psi = (t["re"] + 1j * t["im"]).reshape(box.x[0].shape)
    else:
        raise InputError(f"--psi0 {path}: give soliton, gaussian, coherent, a .csv (x,re,im) or a .npz (psi)")
    if not np.all(np.isfinite(psi)) or not np.any(psi != 0):
        raise InputError(f"--psi0 {path}: ψ must be finite and not identically zero")
    return psi


def run_case(psi0, T, steps, L=40.0, points=512, g=None, hbar=1.0, eta=None, velocity=0.0, x0=0.0, width=None,
             omega=1.0, potential=None, progress=None, dim=1):
    """Integrate one initial state on the periodic box and check it: ``(x axis, result, report)``.

    ``psi0``: ``"soliton"`` (1-D; default ``g = −1``), ``"gaussian"`` or ``"coherent"`` (default
    ``V = ω²|x|²/2``; in 2-D the product of the 1-D states, moving along x), or a file
    (:func:`read_psi0`); ``potential``: a callable ``V(x)`` / ``V(x, y)`` (default 0, coherent:
    the trap). The report holds the mass and energy drifts, the Madelung residuals at T, the final
    mass and energy and, where an analytic solution exists (1-D), ``max_error_vs_analytic``
    (soliton, V = 0: max |ψ − ψ_exact|) or ``max_density_error_vs_analytic`` (coherent state,
    V = trap, g = 0: max ||ψ|² − |ψ_exact|²|)."""
    g = g if g is not None else (-1.0 if psi0 == "soliton" else 0.0)
    eta = 1.0 if eta is None else eta
    width = 1.0 if width is None else width
    box = PeriodicBox(L, points, dim)
    x = box.x[0]
    if potential is not None:
        V = np.broadcast_to(np.asarray(potential(*box.x), dtype=float), x.shape).copy()
        if not np.all(np.isfinite(V)):
            raise InputError("--potential is not finite on the grid; check the expression")
    elif psi0 == "coherent":
        V = 0.5 * omega ** 2 * sum(xx ** 2 for xx in box.x)
    else:
        V = np.zeros_like(x)
    if psi0 == "soliton":
        if dim != 1:
            raise InputError("the soliton is 1-D; in 2-D use --psi0 gaussian, coherent or a file")
        start = soliton(x, 0.0, eta, velocity, x0, g, hbar, L)
    elif psi0 == "gaussian":
        start = gaussian_packet(x, x0, width, velocity, hbar)
        if dim == 2:
            start = start * gaussian_packet(box.x[1], 0.0, width, 0.0, hbar)
    elif psi0 == "coherent":
        start = coherent_state(x, x0, velocity, omega, hbar)
        if dim == 2:
            start = start * coherent_state(box.x[1], 0.0, 0.0, omega, hbar)
    elif isinstance(psi0, str) and psi0.endswith((".csv", ".npz")):
        start = read_psi0(psi0, box)
    else:
        raise InputError(f"unknown initial state '{psi0}' (valid: soliton, gaussian, coherent, FILE.csv, FILE.npz)")
    dt = T / steps
    res = split_step(box, start, V, g, hbar, dt, steps, record_every=max(1, steps // 1000), progress=progress)
    cont, hj = madelung_residuals(box, res.previous[0], res.previous[1], res.psi, dt, V, g, hbar)
    out = {"mass_drift": float(np.max(np.abs(res.mass - res.mass[0]))),
           "energy_drift": float(np.max(np.abs(res.energy - res.energy[0]))),
           "madelung_continuity_residual": cont, "madelung_hj_residual": hj,
           "psi0": psi0, "g": g, "hbar": hbar, "T": T, "dt": dt, "points": points, "L": L,
           "mass": float(res.mass[-1]), "energy": float(res.energy[-1])}
    if dim == 2:
        out["dim"] = 2
        return x[:, 0], res, out
    if psi0 == "soliton" and potential is None:
        out["max_error_vs_analytic"] = float(np.max(np.abs(res.psi - soliton(x, T, eta, velocity, x0, g, hbar, L))))
    if psi0 == "coherent" and potential is None and g == 0:
        centre = x0 * np.cos(omega * T) + velocity / omega * np.sin(omega * T)
        out["max_density_error_vs_analytic"] = float(np.max(np.abs(
            np.abs(res.psi) ** 2 - np.abs(coherent_state(x, centre, 0.0, omega, hbar)) ** 2)))
    return x, res, out
