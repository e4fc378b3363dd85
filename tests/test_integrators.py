"""The integrators package, each property against an independent reference.

References: closed-form solutions (Jacobi elliptic functions from scipy, Kepler's equation,
manufactured solutions), the symplectic form J, the published Lobatto IIIB tableau, torch
autograd and central finite differences. Kepler runs are 10⁵ steps for verlet and rk4 and
10⁴ steps for the Gauss methods in the default run (fixed-point iterations make gauss2 cost
~10× a verlet step); the full 10⁵ steps of gauss2 are in the ``slow`` test.
"""
import numpy as np
import pytest
import torch
from scipy.special import ellipj

import integrators
from integrators import IntegratorError, UnknownMethodError

REQUIRED = ["euler", "heun", "rk4", "symplectic_euler", "symplectic_euler_b", "verlet",
            "implicit_midpoint", "gauss2", "gauss3", "yoshida4"]
CLASSICAL = {"euler": 1, "heun": 2, "rk4": 4, "symplectic_euler": 1, "symplectic_euler_b": 1, "verlet": 2,
             "implicit_midpoint": 2, "gauss2": 4, "gauss3": 6, "yoshida4": 4, "lobatto3ab": 4}
SYMPLECTIC = ["symplectic_euler", "symplectic_euler_b", "verlet", "implicit_midpoint", "gauss2", "gauss3",
              "yoshida4", "lobatto3ab"]
SYMMETRIC = ["verlet", "implicit_midpoint", "gauss2", "gauss3", "yoshida4", "lobatto3ab"]
ALL = integrators.available()


def test_table_names_and_orders():
    assert ALL[:len(REQUIRED)] == REQUIRED
    assert set(ALL) == set(CLASSICAL)
    for name, p in CLASSICAL.items():
        assert integrators.order(name) == p


def test_unknown_method_lists_valid_names():
    with pytest.raises(UnknownMethodError) as info:
        integrators.solve("rk5", lambda t, y: y, np.ones(2), 0, 1, 3)
    msg = str(info.value)
    assert "rk5" in msg and all(n in msg for n in REQUIRED) and "rk4" in msg
    with pytest.raises(UnknownMethodError):
        integrators.order("gauss4")


# --- problems with known solutions (defined here, independent of integrators.problems) -------

def pendulum_rhs(t, y):  # y = (q, p) on the last axis; H = p²/2 − cos q
    return np.stack([y[..., 1], -np.sin(y[..., 0])], axis=-1)


def pendulum_exact(t, k):  # q(0) = 0, p(0) = 2k
    sn, cn, _, _ = ellipj(t, k * k)
    return np.stack([2 * np.arcsin(k * sn), 2 * k * cn], axis=-1)


def ring_fq(t, q, p):  # H = (q² + p²)²/4, non-separable: rotation at angular speed q² + p²
    return (q * q + p * p) * p


def ring_fp(t, q, p):
    return -(q * q + p * p) * q


def ring_exact(t, a):  # q(0) = a, p(0) = 0
    return a * np.cos(a * a * t), -a * np.sin(a * a * t)


def forced_fq(t, q, p):  # non-autonomous: q' = p, p' = −q³ + sin³t − sin t; q = sin t, p = cos t
    return p


def forced_fp(t, q, p):
    s = np.sin(t)
    return -q ** 3 + s ** 3 - s


STEPS = {1: [40, 80, 160, 320], 2: [20, 40, 80, 160], 4: [16, 32, 64, 128], 6: [8, 16, 32, 64]}
T_ORDER = 3.0  # not a period of any of the orbits (a full period can cancel the leading error)


def _slope(steps, errors):
    return -np.polyfit(np.log(steps), np.log(errors), 1)[0]


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("problem", ["pendulum", "ring", "forced"])
def test_measured_order(method, problem):
    """Log–log slope of the global error at t = 3 over 4 step sizes, within 0.2 of the classical order."""
    p = CLASSICAL[method]
    errors = []
    for n in STEPS[p]:
        if problem == "pendulum":  # through solve(): partitioned methods split y into (q, p) halves
            k = np.array([0.5, 0.8])
            y0 = np.stack([np.zeros(2), 2 * k], axis=-1)  # batch of two amplitudes, shape (2, 2)
            Y = integrators.solve(method, pendulum_rhs, y0, 0.0, T_ORDER, n)
            assert Y.shape == (n + 1, 2, 2)
            err = np.abs(Y[-1] - pendulum_exact(T_ORDER, k)).max()
        elif problem == "ring":
            a = np.array([[0.6, 0.9], [1.0, 0.8]])
            Q, P = integrators.solve_partitioned(method, ring_fq, ring_fp, a, 0 * a, 0.0, T_ORDER, n)
            assert Q.shape == P.shape == (n + 1, 2, 2)
            qe, pe = ring_exact(T_ORDER, a)
            err = max(np.abs(Q[-1] - qe).max(), np.abs(P[-1] - pe).max())
        else:
            Q, P = integrators.solve_partitioned(method, forced_fq, forced_fp, np.zeros(1), np.ones(1),
                                                 0.0, T_ORDER, n)
            err = max(abs(Q[-1, 0] - np.sin(T_ORDER)), abs(P[-1, 0] - np.cos(T_ORDER)))
        errors.append(err)
    # round-off in the final state is ~1e-16 × steps ≈ 1e-14: keep the finest error well above it
    assert errors[-1] > 1e-13, "error at round-off level: the slope would not measure the order"
    assert abs(_slope(STEPS[p], errors) - p) < 0.2, (errors, _slope(STEPS[p], errors))


# --- symplecticity -----------------------------------------------------------------------------

def _torch_pendulum(t, q, p):
    return p


def _torch_pendulum_fp(t, q, p):
    return -torch.sin(q)


def _torch_mixed_fq(t, q, p):  # H = p²/2 − cos q + 0.1 q² p² (non-separable)
    return p + 0.2 * q * q * p


def _torch_mixed_fp(t, q, p):
    return -torch.sin(q) - 0.2 * q * p * p


def _step_jacobian(method, fq, fp, x0, h, steps):
    d = x0.numel() // 2

    def flow(x):
        Q, P = integrators.solve_partitioned(method, fq, fp, x[:d], x[d:], 0.0, h * steps, steps)
        return torch.cat([Q[-1], P[-1]])

    return torch.autograd.functional.jacobian(flow, x0).numpy()


def _symplecticity_defect(M):
    d = M.shape[0] // 2
    J = np.block([[np.zeros((d, d)), np.eye(d)], [-np.eye(d), np.zeros((d, d))]])
    return np.abs(M.T @ J @ M - J).max()


@pytest.mark.parametrize("method", SYMPLECTIC + ["rk4", "heun"])
@pytest.mark.parametrize("hamiltonian", ["pendulum", "mixed"])
def test_symplectic_one_step_map(method, hamiltonian):
    """MᵀJM = J for the Jacobian M of the one-step map, h = 0.5 (torch autograd, float64), state
    of 3 independent particles (M is 6×6). 1e-12 allows the stage tolerance (1e-14 relative,
    polished to round-off) and round-off in the derivative; rk4/heun miss it by far more."""
    fq, fp = (_torch_pendulum, _torch_pendulum_fp) if hamiltonian == "pendulum" else (_torch_mixed_fq, _torch_mixed_fp)
    x0 = torch.tensor([0.3, -1.0, 2.0, 0.8, 0.2, -0.5], dtype=torch.float64)
    M = _step_jacobian(method, fq, fp, x0, 0.5, 1)
    defect = _symplecticity_defect(M)
    if method in SYMPLECTIC:
        assert defect < 1e-12, defect
    else:
        assert defect > 1e-5, defect


# --- Kepler: long-time energy and angular momentum ---------------------------------------------

E_KEPLER = 0.6
Q0 = np.array([1 - E_KEPLER, 0.0])
P0 = np.array([0.0, np.sqrt((1 + E_KEPLER) / (1 - E_KEPLER))])


def kepler_fq(t, q, p):
    return p


def kepler_fp(t, q, p):
    r2 = (q * q).sum(-1, keepdims=True)
    return -q / (r2 * np.sqrt(r2))


def kepler_energy(Q, P):
    return 0.5 * (P * P).sum(-1) - 1 / np.sqrt((Q * Q).sum(-1))


def kepler_momentum(Q, P):
    return Q[..., 0] * P[..., 1] - Q[..., 1] * P[..., 0]


STEPS_PER_ORBIT = 200


def _kepler(method, steps, **kw):
    T = 2 * np.pi * steps / STEPS_PER_ORBIT
    Q, P = integrators.solve_partitioned(method, kepler_fq, kepler_fp, Q0, P0, 0.0, T, steps, **kw)
    dH = np.abs(kepler_energy(Q, P) - kepler_energy(Q0, P0))
    dL = np.abs(kepler_momentum(Q, P) - kepler_momentum(Q0, P0))
    return dH, dL


def _drift_ratio(dH):
    """max |ΔH| over the last tenth / over the first tenth: ≈ 1 when bounded, ≈ 10 for linear drift."""
    n = len(dH) // 10
    return dH[-n:].max() / dH[1:n].max()


def test_kepler_energy_verlet_bounded_rk4_drifts():
    """10⁵ steps (500 orbits, e = 0.6, 200 steps per orbit)."""
    dH_v, dL_v = _kepler("verlet", 100_000, separable=True)
    dH_r, dL_r = _kepler("rk4", 100_000)
    assert _drift_ratio(dH_v) < 1.2, _drift_ratio(dH_v)
    assert _drift_ratio(dH_r) > 5.0, _drift_ratio(dH_r)
    assert dH_r[-1] > 5 * dH_r[len(dH_r) // 10]  # and keeps growing (linearly: ≈ 10×)
    # verlet (a symplectic PRK method) also keeps the angular momentum; rk4 does not
    assert dL_v.max() < 1e-12 and dL_r.max() > 1e-6


def test_kepler_gauss2_energy_bounded_and_momentum_roundoff():
    """10⁴ steps (50 orbits) in the default run. Angular momentum, a quadratic invariant, is kept
    by Gauss methods up to the stage solve and round-off: a random walk of ~ε|L| per step gives
    ~ε√N|L| ≈ 3e-14 here; 2e-13 allows a few times that."""
    dH, dL = _kepler("gauss2", 10_000)
    assert _drift_ratio(dH) < 1.2, _drift_ratio(dH)
    assert dH.max() < 1e-4
    assert dL.max() < 2e-13, dL.max()


@pytest.mark.parametrize("method", ["implicit_midpoint", "gauss3", "lobatto3ab"])
def test_kepler_momentum_roundoff(method):
    dH, dL = _kepler(method, 2_000)
    assert dL.max() < 1e-13, dL.max()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gauss2", "verlet", "rk4"])
def test_kepler_1e5_steps_slow(method):
    """The full 10⁵-step study for gauss2 (and the same run of verlet and rk4 side by side)."""
    dH, dL = _kepler(method, 100_000, separable=method == "verlet")
    if method == "rk4":
        assert _drift_ratio(dH) > 5.0
    else:
        assert _drift_ratio(dH) < 1.2
    if method == "gauss2":
        assert dL.max() < 1e-12, dL.max()


# --- time reversibility ------------------------------------------------------------------------

def mixed_fq(t, q, p):
    return p + 0.2 * q * q * p


def mixed_fp(t, q, p):
    return -np.sin(q) - 0.2 * q * p * p


@pytest.mark.parametrize("method", SYMMETRIC + ["rk4", "symplectic_euler"])
def test_time_reversibility(method):
    """Forward 20 steps of h = 0.15, then 20 steps of −h from the end point: back to the start to
    1e-13 for symmetric methods (non-separable H, so the splitting methods iterate); not for
    rk4 or symplectic Euler."""
    q0, p0 = np.array([0.4, -1.2, 2.5]), np.array([0.9, 0.3, -0.6])
    Q, P = integrators.solve_partitioned(method, mixed_fq, mixed_fp, q0, p0, 0.0, 3.0, 20)
    Qb, Pb = integrators.solve_partitioned(method, mixed_fq, mixed_fp, Q[-1], P[-1], 3.0, 0.0, 20)
    back = max(np.abs(Qb[-1] - q0).max(), np.abs(Pb[-1] - p0).max())
    if method in SYMMETRIC:
        assert back < 1e-13, back
        np.testing.assert_allclose(Qb[::-1], Q, atol=1e-13)  # the whole path retraced
    else:
        assert back > 1e-6, back


# --- the adjoint partner -----------------------------------------------------------------------

def test_adjoint_partner_tables():
    """Lobatto IIIB is the partner of IIIA (published table, Hairer–Lubich–Wanner Table II.1.3);
    Gauss methods (b_i a_ij + b_j a_ji = b_i b_j) are their own partners."""
    A = np.array([[0, 0, 0], [5 / 24, 1 / 3, -1 / 24], [1 / 6, 2 / 3, 1 / 6]])
    b = np.array([1 / 6, 2 / 3, 1 / 6])
    B = np.array([[1 / 6, -1 / 6, 0], [1 / 6, 1 / 3, 0], [1 / 6, 5 / 6, 0]])
    Ah, bh = integrators.adjoint_partner(A, b)
    np.testing.assert_allclose(Ah, B, atol=1e-15)
    np.testing.assert_array_equal(bh, b)
    for name in ["implicit_midpoint", "gauss2", "gauss3"]:
        A, b, _ = integrators.tableau(name)
        np.testing.assert_allclose(integrators.adjoint_partner(A, b)[0], A, atol=1e-15)
    with pytest.raises(ValueError):
        integrators.adjoint_partner(np.zeros((2, 2)), np.array([1.0, 0.0]))


def vdp(x):  # a non-linear field x' = f(x) (van der Pol, μ = 1)
    return np.stack([x[..., 1], -x[..., 0] + (1 - x[..., 0] ** 2) * x[..., 1]], axis=-1)


def vdp_jac(x):  # ∂f/∂x, shape (..., 2, 2)
    x1, x2 = x[..., 0], x[..., 1]
    return np.stack([np.stack([0 * x1, 1 + 0 * x1], -1), np.stack([-1 - 2 * x1 * x2, 1 - x1 ** 2], -1)], -2)


def _tangent_fq(t, q, lam):  # q = (x, δx): x' = f(x), δx' = f'(x) δx
    x, dx = q[..., :2], q[..., 2:]
    return np.concatenate([vdp(x), np.einsum("...ij,...j->...i", vdp_jac(x), dx)], axis=-1)


def _costate_fp(t, q, lam):  # λ' = −f'(x)ᵀ λ
    return -np.einsum("...ji,...j->...i", vdp_jac(q[..., :2]), lam)


def test_adjoint_partner_of_rk4_conserves_bilinear_form():
    """rk4 for (x, δx) with adjoint_partner(rk4) for λ: λ_nᵀ δx_n is constant to round-off
    (the discrete-adjoint identity). With rk4 itself for λ it is not (error ~ h⁴)."""
    A, b, c = integrators.tableau("rk4")
    Ah, bh = integrators.adjoint_partner(A, b)
    pair = integrators.PartitionedRK(A, b, Ah, bh, c=c, c_hat=c, order=4, name="rk4+partner")
    plain = integrators.PartitionedRK(A, b, A, b, c=c, c_hat=c, order=4, name="rk4+rk4")
    np.testing.assert_array_equal(integrators.adjoint_pair("rk4").A_hat, Ah)
    q0 = np.array([1.5, 0.2, 0.3, -0.7])
    lam0 = np.array([0.4, 1.1])
    for method, ok in [(pair, True), (plain, False)]:
        Q, L = integrators.solve_partitioned(method, _tangent_fq, _costate_fp, q0, lam0, 0.0, 4.0, 40)
        form = (L * Q[:, 2:]).sum(-1)
        drift = np.abs(form - form[0]).max() / np.abs(form[0])
        if ok:
            assert drift < 1e-13, drift
        else:
            assert drift > 1e-7, drift
    # the state part is plain rk4
    X = integrators.solve("rk4", lambda t, x: vdp(x), q0[:2], 0.0, 4.0, 40)
    np.testing.assert_allclose(Q[:, :2], X, rtol=0, atol=1e-14)


def test_partner_costate_is_the_autograd_gradient():
    """Integrating λ forward with the partner from λ_0 gives λ_N; the identity says
    λ_0 = (∂x_N/∂x_0)ᵀ λ_N, i.e. the vector–Jacobian product of the rk4 flow, which torch
    autograd computes independently (through solve on torch tensors)."""
    A, b, c = integrators.tableau("rk4")
    pair = integrators.PartitionedRK(A, b, *integrators.adjoint_partner(A, b), c=c, c_hat=c, name="pair")
    x0 = np.array([1.5, 0.2])
    lam0 = np.array([0.4, 1.1])
    Q, L = integrators.solve_partitioned(pair, _tangent_fq, _costate_fp, np.concatenate([x0, 0 * x0]), lam0,
                                         0.0, 3.0, 30)
    lamN = L[-1]

    def vdp_t(t, x):
        return torch.stack([x[..., 1], -x[..., 0] + (1 - x[..., 0] ** 2) * x[..., 1]], dim=-1)

    xt = torch.tensor(x0, requires_grad=True)
    X = integrators.solve("rk4", vdp_t, xt, 0.0, 3.0, 30)
    (g,) = torch.autograd.grad(X[-1] @ torch.tensor(lamN), xt)
    np.testing.assert_allclose(g.numpy(), lam0, rtol=1e-13, atol=1e-14)


# --- numpy / torch and autograd ----------------------------------------------------------------

@pytest.mark.parametrize("method", ALL)
def test_torch_and_numpy_agree(method):
    """Same trajectories on a (2, 3) batch of the non-separable system. Beyond round-off the paths
    may differ by where the stage iteration stops (≤ 1e-14 relative per step), hence 1e-13."""
    q0 = np.array([[0.4, -1.2, 2.5], [0.1, 0.0, -0.3]])
    p0 = np.array([[0.9, 0.3, -0.6], [1.0, -0.2, 0.0]])
    Qn, Pn = integrators.solve_partitioned(method, mixed_fq, mixed_fp, q0, p0, 0.0, 2.0, 16)

    def tfp(t, q, p):
        return -torch.sin(q) - 0.2 * q * p * p

    Qt, Pt = integrators.solve_partitioned(method, mixed_fq, tfp, torch.tensor(q0), torch.tensor(p0), 0.0, 2.0, 16)
    assert isinstance(Qt, torch.Tensor) and Qt.dtype == torch.float64 and tuple(Qt.shape) == Qn.shape
    np.testing.assert_allclose(Qt.numpy(), Qn, rtol=0, atol=1e-13)
    np.testing.assert_allclose(Pt.numpy(), Pn, rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", ["rk4", "gauss2", "verlet", "symplectic_euler_b", "yoshida4", "lobatto3ab"])
def test_autograd_through_solve_matches_finite_differences(method):
    """d/dθ and d/dy0 of L = |y(T)|² for y' = (p, −θ sin q), via backward through solve, against
    central differences of the numpy solve (step 1e-6: truncation ~1e-12, round-off ~ε/1e-6 ≈
    2e-10, so agreement to 1e-7 relative is a real test)."""
    def rhs_np(theta):
        return lambda t, y: np.stack([y[..., 1], -theta * np.sin(y[..., 0])], axis=-1)

    def loss_np(theta, y0):
        Y = integrators.solve(method, rhs_np(theta), y0, 0.0, 2.0, 12)
        return float((Y[-1] ** 2).sum())

    theta0, y00 = 1.3, np.array([0.7, -0.2])
    th = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    yt = torch.tensor(y00, requires_grad=True)
    Y = integrators.solve(method, lambda t, y: torch.stack([y[..., 1], -th * torch.sin(y[..., 0])], -1),
                          yt, 0.0, 2.0, 12)
    (Y[-1] ** 2).sum().backward()
    d = 1e-6
    g_theta = (loss_np(theta0 + d, y00) - loss_np(theta0 - d, y00)) / (2 * d)
    g_y = [(loss_np(theta0, y00 + d * e) - loss_np(theta0, y00 - d * e)) / (2 * d) for e in np.eye(2)]
    np.testing.assert_allclose(th.grad.item(), g_theta, rtol=1e-7)
    np.testing.assert_allclose(yt.grad.numpy(), g_y, rtol=1e-7)


@pytest.mark.parametrize("method", ["gauss2", "verlet", "lobatto3ab"])
def test_batch_equals_one_by_one(method):
    """Vectorised over the batch: each batch element's path is the path it has alone (the stage
    iteration stops on the batch-wide maximum, then polishes to round-off, hence 1e-14)."""
    q0, p0 = np.array([0.4, -1.2, 2.5]), np.array([0.9, 0.3, -0.6])
    Q, P = integrators.solve_partitioned(method, mixed_fq, mixed_fp, q0, p0, 0.0, 2.0, 10)
    for i in range(3):
        Qi, Pi = integrators.solve_partitioned(method, mixed_fq, mixed_fp, q0[i:i + 1], p0[i:i + 1], 0.0, 2.0, 10)
        np.testing.assert_allclose(Qi[:, 0], Q[:, i], rtol=0, atol=1e-14)
        np.testing.assert_allclose(Pi[:, 0], P[:, i], rtol=0, atol=1e-14)


# --- API details and errors --------------------------------------------------------------------

def test_solve_with_partitioned_method_splits_halves():
    y0 = np.array([[0.4, -1.2, 0.9, 0.3]])  # q = first half, p = second half of the last axis

    def rhs(t, y):
        q, p = y[..., :2], y[..., 2:]
        return np.concatenate([mixed_fq(t, q, p), mixed_fp(t, q, p)], axis=-1)

    Y = integrators.solve("verlet", rhs, y0, 0.0, 1.0, 10)
    Q, P = integrators.solve_partitioned("verlet", mixed_fq, mixed_fp, y0[..., :2], y0[..., 2:], 0.0, 1.0, 10)
    np.testing.assert_allclose(Y, np.concatenate([Q, P], axis=-1), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="even"):
        integrators.solve("verlet", lambda t, y: y, np.ones(3), 0.0, 1.0, 2)


def test_rk_method_treats_q_p_as_one_state():
    Q, P = integrators.solve_partitioned("rk4", mixed_fq, mixed_fp, np.array([0.4]), np.array([0.9]), 0.0, 1.0, 10)
    Y = integrators.solve("rk4", lambda t, y: np.concatenate([mixed_fq(t, y[:1], y[1:]), mixed_fp(t, y[:1], y[1:])]),
                          np.array([0.4, 0.9]), 0.0, 1.0, 10)
    np.testing.assert_allclose(np.concatenate([Q, P], axis=-1), Y, rtol=0, atol=1e-15)


def test_nonconvergence_raises_clear_error():
    """A stiff problem, y' = −1000 y, with h = 0.1: the fixed-point map has contraction 50.
    The default stage solver then falls back to Newton, whose result is the method's stability
    function R(z)^10, z = −100 (midpoint (1 + z/2)/(1 − z/2), gauss2 the (2,2) Padé approximant)."""
    z = -100.0
    stability = {"implicit_midpoint": (1 + z / 2) / (1 - z / 2),
                 "gauss2": (1 + z / 2 + z * z / 12) / (1 - z / 2 + z * z / 12)}
    for method in ["implicit_midpoint", "gauss2"]:
        with pytest.raises(IntegratorError, match="smaller step"):
            integrators.solve(method, lambda t, y: -1000.0 * y, np.ones(3), 0.0, 1.0, 10, stage_solver="fixed-point")
        Y = integrators.solve(method, lambda t, y: -1000.0 * y, np.ones(3), 0.0, 1.0, 10)
        np.testing.assert_allclose(Y[-1], stability[method] ** 10 * np.ones(3), rtol=1e-12, atol=0)
    with pytest.raises(IntegratorError, match="smaller step"):
        integrators.solve_partitioned("verlet", lambda t, q, p: -1000 * q, lambda t, q, p: -q, np.ones(1),
                                      np.ones(1), 0.0, 1.0, 10)
    with pytest.raises(IntegratorError, match="non-finite"), np.errstate(over="ignore", invalid="ignore"):
        integrators.solve("rk4", lambda t, y: y * y, np.ones(1), 0.0, 2.0, 200)  # y' = y² blows up at t = 1


def test_bad_arguments():
    f = lambda t, y: -y  # noqa: E731
    for steps in [0, -3, 2.5, True]:
        with pytest.raises(ValueError, match="steps"):
            integrators.solve("rk4", f, np.ones(2), 0, 1, steps)
    with pytest.raises(ValueError, match="shape"):
        integrators.solve("rk4", lambda t, y: np.ones(3), np.ones(2), 0, 1, 2)
    with pytest.raises(TypeError, match="unknown option"):
        integrators.solve("rk4", f, np.ones(2), 0, 1, 2, tol=1e-3)
    with pytest.raises(ValueError, match="rtol"):
        integrators.solve("gauss2", f, np.ones(2), 0, 1, 2, rtol=-1)
    Y = integrators.solve("rk4", f, [1, 2], 0, 1, 4)  # lists and integers become float64
    assert Y.dtype == np.float64 and Y.shape == (5, 2)
