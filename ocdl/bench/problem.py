"""The benchmark problem: two-spiral data, random parameters, the discrete network in torch
(autograd through it is the reference the costate gradients are timed and checked against) and
the same field as a function of time for torchdiffeq. The fields are the field objects of
:mod:`ocdl.models.fields` (their torch forward); the network loop, the Verlet step and the cost
are written out here, independently of ``ocdl.models.resnet`` and ``ocdl.pmp``.

Network (contract §models): ``x_0 = lift(X)`` (zero padding; hamiltonian: X into ``q``),
``x_{k+1} = Ψ_h(x_k; θ_k)``, ``θ_k = (K_k, b_k)`` constant on layer ``k``, ``h = T/N``; fields, in
row form (one sample per row)

    outer        f(x) = σ(x) Kᵀ + b
    inner        f(x) = σ(x Kᵀ + b)
    hamiltonian  q̇ = σ(p Kᵀ + b),  ṗ = −σ(q K + b)          (x = (q, p), σ = tanh by default)

``Ψ_h`` = explicit Euler ``x + h f(x)`` or, for hamiltonian only, Störmer–Verlet in position form (drift–kick–drift)
form ``p ← p + (h/2) F_p(q); q ← q + h F_q(p); p ← p + (h/2) F_p(q)``. Cost (two classes, β = 0)

    J = (1/n) Σ_i log(1 + exp(−(2c_i − 1) s_i)) + h Σ_k (α/2)(‖K_k‖² + |b_k|²) + (α/2)‖W‖²,
    s = x_N Wᵀ + μ.
"""
import numpy as np

PARAM_KEYS = ("K", "b", "W", "mu")


def spirals(n, seed=0, turns=1.5, noise=0.03):
    """``n`` points (n//2 per class) on two interleaved spirals; returns (X (n, 2), y (n,) ints)."""
    rng = np.random.default_rng(seed)
    half = n // 2
    r = np.sqrt(rng.uniform(0.0, 1.0, size=(2, half)))  # radius in (0, 1)
    phi = 2 * np.pi * turns * r
    X, y = [], []
    for c in (0, 1):
        sign = 1.0 if c == 0 else -1.0
        pts = sign * np.stack([r[c] * np.cos(phi[c]), r[c] * np.sin(phi[c])], axis=1)
        X.append(pts + noise * rng.standard_normal(pts.shape))
        y.append(np.full(half, c))
    return np.concatenate(X), np.concatenate(y)


class Problem:
    """Data, parameters and settings of one benchmark case (everything float64 numpy)."""

    def __init__(self, field="outer", depth=16, samples=512, width=8, T=5.0, alpha=1e-3,
                 integrator="euler", seed=0, activation="tanh"):
        from ocdl.models.fields import FIELDS, get_field
        if field not in FIELDS:
            raise ValueError(f"benchmark field must be one of {', '.join(FIELDS)}, not {field!r}")
        self.F = get_field(field, activation)
        self.activation = activation
        if integrator == "verlet" and field != "hamiltonian":
            raise ValueError("verlet needs the hamiltonian field")
        self.field, self.depth, self.samples, self.width = field, int(depth), int(samples), int(width)
        self.T, self.alpha, self.integrator, self.seed = float(T), float(alpha), integrator, seed
        self.h = self.T / self.depth
        self.m = self.F.param_width(self.width)
        self.X, self.y = spirals(samples, seed=seed)
        rng = np.random.default_rng(seed + 1)
        m, d = self.m, self.width
        self.params = {"K": rng.standard_normal((self.depth, m, m)) / np.sqrt(m),
                       "b": 0.1 * rng.standard_normal((self.depth, m)),
                       "W": rng.standard_normal((1, d)) / np.sqrt(d),
                       "mu": np.zeros(1)}

    def x0(self):
        """Lifted inputs (n, d): zero padding; for hamiltonian X goes into q, p = 0."""
        x = np.zeros((len(self.X), self.width))
        x[:, : self.X.shape[1]] = self.X
        return x

    def flat(self, grads):
        return np.concatenate([np.asarray(grads[k], dtype=np.float64).ravel() for k in PARAM_KEYS])


# ------------------------------------------------------------------------------------------
# torch: the discrete network, its cost, and the same field as f(t, x) for torchdiffeq

def torch_params(problem, device="cpu", requires_grad=True):
    import torch
    return {k: torch.tensor(v, dtype=torch.float64, device=device, requires_grad=requires_grad)
            for k, v in problem.params.items()}


def forward_torch(problem, P, x):
    """x_N of the discrete network (torch; differentiable)."""
    import torch
    h, K, b, F = problem.h, P["K"], P["b"], problem.F
    if problem.integrator == "euler":
        for k in range(problem.depth):
            x = x + h * F.f(x, K[k], b[k])
        return x
    m = problem.m
    q, p = x[:, :m], x[:, m:]
    for k in range(problem.depth):   # verlet, position form (drift–kick–drift)
        q = q + 0.5 * h * F.fq(p, K[k], b[k])
        p = p + h * F.fp(q, K[k], b[k])
        q = q + 0.5 * h * F.fq(p, K[k], b[k])
    return torch.cat([q, p], dim=1)


def terminal_cost_torch(problem, P, xN, y):
    """(1/n) Σ log(1 + exp(−(2c − 1) s)) + (α/2)‖W‖² with s = x_N Wᵀ + μ."""
    import torch
    s = (xN @ P["W"].T + P["mu"])[:, 0]
    sign = 2.0 * y - 1.0
    return torch.nn.functional.softplus(-sign * s).mean() + 0.5 * problem.alpha * (P["W"] ** 2).sum()


def running_cost_torch(problem, P):
    return problem.h * 0.5 * problem.alpha * ((P["K"] ** 2).sum() + (P["b"] ** 2).sum())


def cost_torch(problem, P, x0, y):
    return terminal_cost_torch(problem, P, forward_torch(problem, P, x0), y) + running_cost_torch(problem, P)


def piecewise_field(F, K, b, grid):
    """``f(t, x)`` (a torch Module) with ``θ(t) = θ_k`` for ``t ∈ [t_k, t_{k+1})``, ``t_k = grid[k]``.

    torchdiffeq's fixed-grid solvers with ``perturb=True`` evaluate a step's first stage just
    after ``t_k`` and its last just before ``t_{k+1}`` (in either direction of time); locating
    ``t`` on the same grid tensor by ``searchsorted`` then gives layer ``k`` for every stage of
    step ``k``, so Euler through torchdiffeq is exactly the discrete network, and the adjoint's
    backward sweep sees the same θ_k as the forward sweep.
    """
    import torch

    class PiecewiseField(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.nfe = 0

        def forward(self, t, x):
            self.nfe += 1
            k = int(torch.searchsorted(grid, t.reshape(1), right=True)[0]) - 1
            k = min(max(k, 0), K.shape[0] - 1)
            return F.f(x, K[k], b[k])

    return PiecewiseField()


def time_grid(problem, device="cpu"):
    import torch
    return torch.linspace(0.0, problem.T, problem.depth + 1, dtype=torch.float64, device=device)


def odeint_final(problem, func, x0, grid, adjoint, adjoint_params=None):
    """x(T) by torchdiffeq's fixed-grid Euler on ``grid`` (odeint or odeint_adjoint)."""
    import torch
    from torchdiffeq import odeint, odeint_adjoint

    def grid_constructor(f, y0, t):
        return grid if bool(t[0] < t[-1]) else grid.flip(0)

    options = {"grid_constructor": grid_constructor, "perturb": True}
    t = torch.stack([grid[0], grid[-1]])
    if adjoint:
        return odeint_adjoint(func, x0, t, method="euler", options=options,
                              adjoint_params=adjoint_params)[-1]
    return odeint(func, x0, t, method="euler", options=options)[-1]
