"""Symbolic checks (sympy) of the sign conventions of docs/theory.md §7, in 1-D.

Conventions (see docs/meanfield.md):
* SDE ``dX = a dt + ν dW``; Fokker–Planck ``ρ_t = −(a ρ)_x + (ν²/2) ρ_xx``.
* Drift-as-control: minimise ``E[∫ a²/2 dt + Φ(X_T)]``. Value (cost-to-go) ``V`` solves
  ``−V_t = −V_x²/2 + (ν²/2) V_xx``, ``V(T) = Φ``, ``a = −V_x``. With ``S = −V``:
  ``S_t + S_x²/2 + (ν²/2) S_xx = 0``, ``S(T) = −Φ``, ``a = S_x`` (docs/theory.md §7 is right).
* Hopf–Cole ``φ = exp(S/ν²)``: ``φ_t = −(ν²/2) φ_xx`` (backward heat), ``φ̂ = ρ/φ``:
  ``φ̂_t = +(ν²/2) φ̂_xx`` (forward heat).
* Real-time NLS ``iħψ_t = −(ħ²/2)ψ_xx + Vψ + g|ψ|²ψ`` with ``ψ = √ρ e^{iS/ħ}`` ⇔
  continuity ``ρ_t + (ρ S_x)_x = 0`` and quantum HJ ``S_t + S_x²/2 + V + gρ + Q = 0``,
  ``Q = −(ħ²/2) (√ρ)_xx/√ρ``.
"""
import pytest

sp = pytest.importorskip("sympy")

x, t = sp.symbols("x t", real=True)
nu, hbar = sp.symbols("nu hbar", positive=True)
g = sp.symbols("g", real=True)


def test_hjb_is_value_function_equation_for_lq_problem():
    # LQ closed form: V = P(t)/2 (x-z)^2 + beta(t), P = 1/(1/c + T - t), beta = nu^2/2 log((1+c(T-t)))
    c, T, z = sp.symbols("c T z", positive=True)
    P = 1 / (1 / c + T - t)
    V = P / 2 * (x - z) ** 2 + nu**2 / 2 * sp.log(1 + c * (T - t))
    hjb = -sp.diff(V, t) - (-sp.diff(V, x) ** 2 / 2 + nu**2 / 2 * sp.diff(V, x, 2))
    assert sp.simplify(hjb) == 0
    assert sp.simplify(V.subs(t, T) - c / 2 * (x - z) ** 2) == 0
    S = -V   # S(T) = -Phi, S_t + S_x^2/2 + nu^2/2 S_xx = 0
    assert sp.simplify(sp.diff(S, t) + sp.diff(S, x) ** 2 / 2 + nu**2 / 2 * sp.diff(S, x, 2)) == 0


def test_hopf_cole_signs_with_and_without_congestion():
    S = sp.Function("S")(x, t)
    rho = sp.Function("rho")(x, t)
    S_t = -sp.diff(S, x) ** 2 / 2 - nu**2 / 2 * sp.diff(S, x, 2) + g * rho   # HJB (+ congestion gρ)
    rho_t = -sp.diff(rho * sp.diff(S, x), x) + nu**2 / 2 * sp.diff(rho, x, 2)  # FP with a = S_x
    phi = sp.exp(S / nu**2)
    phi_t = sp.diff(phi, t).subs(sp.Derivative(S, t), S_t)
    # backward heat equation with potential: φ_t = −(ν²/2)φ_xx + (g/ν²)ρφ
    assert sp.simplify(phi_t + nu**2 / 2 * sp.diff(phi, x, 2) - g / nu**2 * rho * phi) == 0
    phihat = rho / phi
    phihat_t = sp.diff(phihat, t).subs({sp.Derivative(S, t): S_t, sp.Derivative(rho, t): rho_t})
    # forward heat equation with potential: φ̂_t = (ν²/2)φ̂_xx − (g/ν²)ρφ̂
    assert sp.simplify(phihat_t - nu**2 / 2 * sp.diff(phihat, x, 2) + g / nu**2 * rho * phihat) == 0


def test_madelung_signs_real_time_nls():
    rho = sp.Function("rho", positive=True)(x, t)
    S = sp.Function("S", real=True)(x, t)
    V = sp.Function("V", real=True)(x)
    psi = sp.sqrt(rho) * sp.exp(sp.I * S / hbar)
    Q = -hbar**2 / 2 * sp.diff(sp.sqrt(rho), x, 2) / sp.sqrt(rho)
    rho_t = -sp.diff(rho * sp.diff(S, x), x)
    S_t = -(sp.diff(S, x) ** 2 / 2 + V + g * rho + Q)
    lhs = sp.I * hbar * sp.diff(psi, t)
    lhs = lhs.subs({sp.Derivative(rho, t): rho_t, sp.Derivative(S, t): S_t})
    rhs = -hbar**2 / 2 * sp.diff(psi, x, 2) + V * psi + g * rho * psi
    assert sp.simplify(sp.expand((lhs - rhs) / psi)) == 0


def test_control_madelung_split_has_imaginary_hbar():
    # a = v + (ν²/2)∂x log ρ, Σ = S − (ν²/2) log ρ: FP → continuity, HJB → quantum HJ with the Bohm
    # term of ħ² = −ν⁴, i.e. Σ_t + Σ_x²/2 + (ν⁴/2)(√ρ)_xx/√ρ = 0 (the opposite sign of real time)
    S = sp.Function("S")(x, t)
    rho = sp.Function("rho", positive=True)(x, t)
    S_t = -sp.diff(S, x) ** 2 / 2 - nu**2 / 2 * sp.diff(S, x, 2)
    rho_t = -sp.diff(rho * sp.diff(S, x), x) + nu**2 / 2 * sp.diff(rho, x, 2)
    Sig = S - nu**2 / 2 * sp.log(rho)
    v = sp.diff(Sig, x)
    Sig_t = sp.diff(Sig, t).subs({sp.Derivative(S, t): S_t, sp.Derivative(rho, t): rho_t})
    assert sp.simplify(rho_t + sp.diff(rho * v, x)) == 0
    hbar2 = -nu**4                                                           # imaginary ħ: ħ² = −ν⁴
    Q_imag = -hbar2 / 2 * sp.diff(sp.sqrt(rho), x, 2) / sp.sqrt(rho)        # −(ħ²/2)(√ρ)''/√ρ
    assert sp.simplify(Sig_t + v**2 / 2 + Q_imag) == 0
    assert sp.simplify(Sig_t + v**2 / 2 - Q_imag) != 0                       # real ħ² = ν⁴ fails
