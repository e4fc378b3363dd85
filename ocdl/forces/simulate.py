"""Synthetic data from an accurate solver (``scipy.integrate.solve_ivp``, DOP853, rtol 1e-10,
atol 1e-12) — never from the network being trained. All samples are integrated together as one
decoupled system (vectorised right-hand side).
"""
import numpy as np
from scipy.integrate import solve_ivp

from ocdl.errors import InputError

RTOL, ATOL = 1e-10, 1e-12


def _finite(name, values):
    if not np.all(np.isfinite(values)):
        raise InputError(f"the force expression gives non-finite values ({name}); check --force and the ranges")


def _finite_output(values, name):
    if not np.all(np.isfinite(values)):
        raise InputError(f"simulation produced non-finite {name}; the force blows up in this range")


def flow(rhs, y0, T, t_eval=None):
    """Integrate ``ẏ = rhs(y)`` (vectorised over the flat state) from ``y0`` to ``T``."""
    sol = solve_ivp(lambda t, y: rhs(y), (0.0, T), np.asarray(y0, float), method="DOP853",
                    rtol=RTOL, atol=ATOL, t_eval=t_eval)
    if not sol.success:
        raise InputError(f"solve_ivp failed ({sol.message}); the force may blow up in this range")
    return sol.y


def simulate_drag(force, T, g, samples=50, vmin=0.0, vmax=40.0, noise=0.0, seed=0):
    """``v̇ = g − F(v)`` from ``v0`` evenly spaced in ``[vmin, vmax]``; returns ``(v0, vT)``."""
    if vmax <= vmin:
        raise InputError("--vmax must be greater than --vmin")
    v0 = np.linspace(vmin, vmax, samples)

    def rhs(v):
        f = g - np.broadcast_to(force(v), v.shape)
        _finite("drag", f)
        return f

    vT = flow(rhs, v0, T)[:, -1]
    if noise > 0:
        vT = vT + np.random.default_rng(seed).normal(0.0, noise, vT.shape)
    _finite_output(vT, "vT")
    return v0, vT


def simulate_position(force, T, target, eps, samples=2000, xmin=0.0, xmax=10.0, vmin=-5.0, vmax=5.0,
                      positive_fraction=0.5, noise=0.0, seed=0, max_draws=400_000):
    """``ẋ = v, v̇ = F(x)`` from ``(x0, v0)`` uniform in the window; keep ``positive_fraction``
    positives (``|x(T) − x*| < ε``, their ``vT`` recorded) and the rest negatives.
    Returns ``(x0, v0, kind, vT)`` with ``vT = NaN`` for negatives."""
    if xmax <= xmin or vmax < vmin:
        raise InputError("the window needs --xmin < --xmax and --vmin ≤ --vmax")
    if not 0 < positive_fraction < 1:
        raise InputError("--positive-fraction must be in (0, 1)")
    rng = np.random.default_rng(seed)
    n_pos = int(round(samples * positive_fraction))
    n_neg = samples - n_pos
    pos, neg, drawn = [], [], 0
    batch = max(4 * samples, 2000)

    def rhs(y):
        x, v = y[: len(y) // 2], y[len(y) // 2:]
        a = np.broadcast_to(force(x), x.shape)
        _finite("position", a)
        return np.concatenate([v, a])

    while (sum(len(p[0]) for p in pos) < n_pos or sum(len(p[0]) for p in neg) < n_neg):
        if drawn >= max_draws:
            got = sum(len(p[0]) for p in pos)
            raise InputError(f"only {got} positives (|x(T) − x*| < ε) in {drawn} random starts; "
                             "widen --eps, move --target or change the --xmin/--xmax/--vmin/--vmax window")
        x0 = rng.uniform(xmin, xmax, batch)
        v0 = rng.uniform(vmin, vmax, batch)
        y = flow(rhs, np.concatenate([x0, v0]), T)[:, -1]
        xT, vT = y[:batch], y[batch:]
        hit = np.abs(xT - target) < eps
        pos.append((x0[hit], v0[hit], vT[hit]))
        neg.append((x0[~hit], v0[~hit], np.full((~hit).sum(), np.nan)))
        drawn += batch
    P = [np.concatenate([p[k] for p in pos])[:n_pos] for k in range(3)]
    N = [np.concatenate([p[k] for p in neg])[:n_neg] for k in range(3)]
    x0 = np.concatenate([P[0], N[0]])
    v0 = np.concatenate([P[1], N[1]])
    vT = np.concatenate([P[2], N[2]])
    kind = np.concatenate([np.ones(n_pos), np.zeros(n_neg)])
    if noise > 0:
        vT = vT + rng.normal(0.0, noise, vT.shape)
    _finite_output(vT[kind == 1], "vT")
    perm = rng.permutation(samples)
    return x0[perm], v0[perm], kind[perm], vT[perm]


def simulate_oscillator(gamma, omega0, x0=1.0, v0=0.0, T=1.0, samples=40, noise=0.04, seed=0, accel=None):
    """``x'' + 2γx' + ω0² x = 0`` (or ``x'' = accel(x=…, v=…)`` when given) sampled at ``samples``
    evenly spaced times in ``[0, T]``, plus Gaussian noise of standard deviation ``noise``;
    returns ``(t, x)``."""
    t = np.linspace(0.0, T, samples)
    if accel is None:
        rhs = lambda y: np.array([y[1], -2 * gamma * y[1] - omega0 ** 2 * y[0]])  # noqa: E731
    else:
        rhs = lambda y: np.array([y[1], float(accel(x=y[0], v=y[1]))])  # noqa: E731
    y = flow(rhs, [x0, v0], T, t_eval=t)
    x = y[0] + (np.random.default_rng(seed).normal(0.0, noise, samples) if noise > 0 else 0.0)
    _finite_output(x, "x")
    return t, x


def simulate_potential(potential, gamma, omega0, x0=1.0, v0=0.0, T=1.0, samples=201, noise=0.0, seed=0):
    """``x'' + 2γx' + ω0² V(x) = 0`` (``potential`` = V, vectorised in ``x``) sampled at ``samples``
    evenly spaced times in ``[0, T]`` (``t_i = iT/(samples − 1)``), plus Gaussian noise of standard
    deviation ``noise``; returns ``(t, x)``."""
    if samples < 2:
        raise InputError("--samples must be ≥ 2")

    def rhs(y):
        V = np.asarray(potential(np.asarray(y[:1])), float).reshape(-1)
        _finite("potential", V)
        return np.array([y[1], -2 * gamma * y[1] - omega0 ** 2 * V[0]])

    t = np.linspace(0.0, T, samples)
    y = flow(rhs, [x0, v0], T, t_eval=t)
    x = y[0] + (np.random.default_rng(seed).normal(0.0, noise, samples) if noise > 0 else 0.0)
    _finite_output(x, "x")
    return t, x
