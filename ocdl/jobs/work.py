"""Memory and time estimates of every command, checked before it starts (:mod:`ocdl.jobs.budget`).

``ESTIMATES[command]`` maps a command's options (any object with the option names as attributes:
a job or parsed flags; unset options take the command's defaults) to an
:class:`~ocdl.jobs.budget.Estimate` naming the options that drive it. ``ocdl.cli.main`` checks the
estimate of every command right after parsing; jobs use theirs in :meth:`Job.estimate`. The
cost models are rough upper-end counts (flops of the vectorised work, Python-level steps, float64s
held), documented per command below; they refuse what cannot finish (``--steps 1e9``,
``--cells 1e9``, ``--dim 2 --points 1e5``, ``--dt 1e-12``), not predict run times.
"""
from ocdl.jobs.budget import Estimate


def _get(a, name, default):
    v = getattr(a, name, None)
    return default if v is None else v


def _flags(a, *names):
    return " ".join(f"--{n.replace('_', '-')} {_get(a, n, '(default)')}" for n in names)


def fokker_planck(a):
    """Crank–Nicolson on C cells: S steps × ~60 C flops; ~20 C floats; C rows written."""
    C, S = _get(a, "cells", 400), _get(a, "steps", 200)
    return Estimate.of(flops=60.0 * C * S, steps=S, floats=20.0 * C, rows=C, flags=_flags(a, "cells", "steps"))


def particles(a):
    """Euler–Maruyama: S steps × ~20 P flops; the P particles and their noise; P rows written."""
    P, S = _get(a, "particles", 1), _get(a, "steps", 200)
    return Estimate.of(flops=20.0 * P * S, steps=S, floats=4.0 * P, rows=P, flags=_flags(a, "particles", "steps"))


def control(a):
    """Forward–backward sweeps: maxiter × S steps × ~100 M flops on M = C (2-D: C²) cells; the
    paths and the per-step operators, (20 S + 50) floats per cell (measured peak at M = 5·10⁵:
    18 S + 43 per cell for S = 5 and 20); M rows written."""
    dim = _get(a, "dim", 1)
    C = _get(a, "cells", 80 if dim == 2 else 800)
    S = _get(a, "steps", 80 if dim == 2 else 400)
    M = float(C) ** dim
    it = _get(a, "maxiter", 200)
    return Estimate.of(flops=100.0 * it * S * M, steps=it * S, floats=(20.0 * S + 50.0) * M, rows=M,
                       flags=_flags(a, "dim", "cells", "steps", "maxiter"))


def nls(a):
    """Split-step Fourier: T/dt steps × ~50 n log n flops on n = points (2-D: points²); the grid
    (complex: 2 floats) ×8 and three numbers per step."""
    import math
    dim = _get(a, "dim", 1)
    n = float(_get(a, "points", 512)) ** dim
    T, dt = _get(a, "T", 1.0), _get(a, "dt", 0.005)
    steps = max(1.0, T / dt)
    return Estimate.of(flops=50.0 * steps * n * max(1.0, math.log2(n)), steps=steps, floats=16.0 * n + 3 * steps,
                       flags=_flags(a, "dim", "points", "T", "dt"))


def langevin(a):
    """Particles (S steps × 20 P flops) and the Fokker–Planck reference (S × 60 M, M = cells^params)."""
    p = int(_get(a, "params", 1))
    C = _get(a, "cells", 70 if p == 2 else 400)
    P, S = _get(a, "particles", 5000), _get(a, "steps", 600)
    M = float(C) ** p
    return Estimate.of(flops=20.0 * P * S + 60.0 * S * M, steps=2 * S, floats=4.0 * P + 20.0 * M,
                       flags=_flags(a, "particles", "steps", "cells", "params"))


def limit(a):
    """Particle study: seeds × 4 sizes ≤ max-particles × 200 steps × 20 flops, plus the fixed ν study."""
    Pm, s = _get(a, "max_particles", 100000), _get(a, "seeds", 6)
    return Estimate.of(flops=4 * s * 200 * 20.0 * Pm + 1e9, steps=4 * s * 200, floats=4.0 * Pm,
                       flags=_flags(a, "max_particles", "seeds"))


def meanfield_train(a):
    """Particles: iterations × layers × substeps × n P particles × ~50 d flops (n samples);
    grid: iterations × layers × steps-per-layer × G² cells × ~200 flops; the stored paths."""
    L, it = _get(a, "layers", 10), _get(a, "iterations", 1500)
    n = 2 * _get(a, "points", 200)
    if getattr(a, "grid", None) is not None:
        G, sp = a.grid, _get(a, "steps_per_layer", 1)
        return Estimate.of(flops=200.0 * it * L * sp * G * G, steps=it * L * sp, floats=4.0 * L * sp * G * G,
                           flags=_flags(a, "grid", "layers", "iterations", "steps_per_layer"))
    P, sub = _get(a, "particles", 1000), _get(a, "substeps", 1)
    return Estimate.of(flops=100.0 * it * L * sub * n * P, steps=it * L * sub, floats=6.0 * L * sub * n * P,
                       flags=_flags(a, "particles", "points", "layers", "substeps", "iterations"))


def integrators(a):
    """Every method: S steps of ≤ 10 stage evaluations of a 4-dimensional problem in Python."""
    S = _get(a, "steps", 1000)
    m = len(_get(a, "methods", None) or range(20))
    return Estimate.of(steps=10.0 * S * m, floats=8.0 * S * m, flags=_flags(a, "steps"))


def simulate(a):
    """Vectorised ODE integration of n samples over ~1000 steps; n rows written."""
    n = _get(a, "samples", 2000)
    return Estimate.of(flops=1000 * 20.0 * n, steps=1000, floats=20.0 * n, rows=n, flags=_flags(a, "samples"))


def learn(a):
    """Iterations × N steps × ~1e4 flops (a few thousand data points, small networks); PINN:
    (adam + lbfgs steps) × hidden² × 3 layers × ~1000 collocation points × 10."""
    N = _get(a, "steps", 200)
    it = _get(a, "iterations", 5000)
    h = _get(a, "hidden", 32)
    pinn = (_get(a, "adam_steps", 6000) + max(0, _get(a, "lbfgs_steps", 500))) * h * h * 3 * 1000 * 10.0 \
        if getattr(a, "solver", None) == "pinn" else 0.0
    return Estimate.of(flops=1e4 * it * N + pinn, steps=it, floats=1e3 * N + (4.0 * h * h if pinn else 0.0),
                       flags=_flags(a, "steps", "iterations") + (" " + _flags(a, "adam_steps", "lbfgs_steps", "hidden")
                                                                 if pinn else ""))


def gradcheck(a):
    """Finite differences: 2 P evaluations of the (N+1) n d² forward pass, P = N (d² + d)."""
    N = _get(a, "layers", 20)
    n = 2 * _get(a, "points", 50)
    d = _get(a, "width", None) or max(6, 3 * _get(a, "channels", 1) * _get(a, "length", 12)
                                      if getattr(a, "field", "") in ("conv", "hamiltonian-conv") else 6)
    P = N * (d * d + d)
    return Estimate.of(flops=2.0 * P * (N + 1) * n * d * d, steps=2 * P, floats=4.0 * (N + 1) * n * d + 4 * P,
                       flags=_flags(a, "layers", "width", "points"))


def training_data(a, classes=2):
    """Synthetic data of ``points`` per class and a ResNet of ``layers`` × ``width`` trained for
    ``iterations`` (default 3000) — train and compare before the data are drawn."""
    from ocdl.data import DATASETS
    if getattr(a, "data", None) not in DATASETS:
        return None
    n = classes * _get(a, "points", 200)
    N, d = _get(a, "layers", 20), _get(a, "width", 6)
    B = min(n, _get(a, "batch_size", n))
    it = (_get(a, "epochs", 0) * -(-n // B)) or _get(a, "iterations", 3000)    # epochs override iterations
    return Estimate.of(flops=30.0 * it * (N + 1) * B * d * d, steps=it, floats=4.0 * (N + 1) * n * d + 3 * n,
                       flags=_flags(a, "points", "layers", "width", "iterations", "epochs"))


def bench_gradient(a):
    """Every depth, repeat, method and field: ~10 (N+1) n d² flops per gradient."""
    depths = _get(a, "depths", [16, 64, 256, 1024, 4096])
    n, d, r = _get(a, "samples", 512), _get(a, "width", 8), _get(a, "repeats", 3)
    k = len(_get(a, "methods", range(9))) * len(_get(a, "fields", range(2)))
    return Estimate.of(flops=10.0 * sum(depths) * n * d * d * r * k, steps=(sum(depths) + 10 * len(depths)) * r * k,
                       floats=8.0 * (max(depths) + 1) * n * d, flags=_flags(a, "depths", "samples", "width", "repeats"))


def bench_train(a):
    """seeds × solvers training runs of layers × 400 samples × width 6."""
    s, k = len(_get(a, "seeds", [0, 1, 2])), len(_get(a, "solvers", range(6)))
    N, it = _get(a, "layers", 20), _get(a, "iterations", 3000)
    return Estimate.of(flops=30.0 * s * k * it * (N + 1) * 400 * 36, steps=s * k * it, floats=4.0 * (N + 1) * 400 * 6,
                       flags=_flags(a, "seeds", "layers", "iterations"))


def bench_block(a):
    """Every depth, width, repeat and method: ~10 (N+1) n w² flops per forward + backward."""
    depths, widths = _get(a, "depths", [16, 64, 256, 1024]), _get(a, "widths", [8, 64])
    n, r, k = _get(a, "samples", 256), _get(a, "repeats", 3), len(_get(a, "methods", range(4)))
    flops = 10.0 * sum(depths) * n * sum(w * w for w in widths) * r * k
    return Estimate.of(flops=flops, steps=(sum(depths) + 10 * len(depths)) * len(widths) * r * k,
                       floats=8.0 * (max(depths) + 1) * n * max(widths),
                       flags=_flags(a, "depths", "widths", "samples", "repeats"))


def thermo(a):
    """Quadrature on points^neurons nodes and Monte Carlo on samples × mc-neurons per iteration; the
    ensemble (particles × steps) and Fokker–Planck (cells × steps)."""
    q = float(_get(a, "points", 101)) ** min(_get(a, "neurons", 2), 3)
    mc, it = _get(a, "samples", 200000) * _get(a, "mc_neurons", 6), _get(a, "iterations", 40)
    P, S, C = _get(a, "particles", 20000), _get(a, "steps", 2000), _get(a, "cells", 128)
    return Estimate.of(flops=50.0 * it * (q + mc) + 20.0 * P * S + 60.0 * C * S, steps=it + 2 * S,
                       floats=4.0 * (q + mc + P + C),
                       flags=_flags(a, "points", "neurons", "samples", "mc_neurons", "iterations", "particles",
                                    "steps", "cells"))


def eliminate(a):
    """Every refinement level: cells^dim cells × cells/2 steps × ~10⁴ flops (sweep and Schrödinger pair);
    the paths (steps × cells^dim × 8); the density-trained ResNet."""
    dim = _get(a, "dim", 1)
    cells = _get(a, "cells", [40, 80] if dim == 2 else [100, 200, 400])
    M = sum(float(c) ** dim * c / 2 for c in cells)
    L = _get(a, "density_layers", 40)
    return Estimate.of(flops=1e4 * M + 1e9 * L / 40, steps=sum(c / 2 for c in cells) * 200 + 300 * L,
                       floats=8.0 * max(float(c) ** dim * c / 2 for c in cells),
                       flags=_flags(a, "dim", "cells", "density_layers"))


def learn_potential(a):
    """Iterations × samples × substeps × ~1e3 flops; PINN as in :func:`learn`."""
    est = learn(a)
    sub = _get(a, "substeps", 1)
    return Estimate(est.bytes * sub, est.seconds * sub, est.flags + " " + _flags(a, "substeps"), est.advice)


def holography_simulate(a):
    """Rejection sampling: up to 2·10⁷ draws (the positives are ~0.1 % of the box) × N layers ×
    ~50 flops, in batches of 2·10⁵ (×5 floats each)."""
    N, n = _get(a, "layers", 10), _get(a, "samples", 2000)
    draws = min(2e7, 1000.0 * n)
    return Estimate.of(flops=50.0 * draws * N, steps=draws / 2e5 * N, floats=5 * 2e5 * N,
                       flags=_flags(a, "samples", "layers"))


def holography_learn(a):
    """Iterations (newton: 4 stages × 100) × N layers × ~200 flops per sample (a few thousand
    samples read from the file); the Jacobian rows n × (N + 2)."""
    N = _get(a, "layers", 10)
    it = _get(a, "iterations", None) or (400 if getattr(a, "solver", "newton") == "newton" else 3000)
    return Estimate.of(flops=200.0 * it * N * 1e4, steps=it * N * 4, floats=1e4 * (N + 2) * 4,
                       flags=_flags(a, "layers", "iterations"))


#: command words → estimate
ESTIMATES = {
    ("holography", "simulate"): holography_simulate,
    ("holography", "learn"): holography_learn,
    ("train",): training_data,
    ("compare",): training_data,
    ("gradcheck",): gradcheck,
    ("integrators",): integrators,
    ("meanfield", "fokker-planck"): fokker_planck,
    ("meanfield", "particles"): particles,
    ("meanfield", "control"): control,
    ("meanfield", "nls"): nls,
    ("meanfield", "langevin"): langevin,
    ("meanfield", "limit"): limit,
    ("meanfield", "train"): meanfield_train,
    ("forces", "simulate", "drag"): simulate,
    ("forces", "simulate", "position"): simulate,
    ("forces", "simulate", "oscillator"): simulate,
    ("forces", "learn", "drag"): learn,
    ("forces", "learn", "position"): learn,
    ("forces", "learn", "oscillator"): learn,
    ("forces", "simulate", "potential"): simulate,
    ("forces", "learn", "potential"): learn_potential,
    ("meanfield", "thermo"): thermo,
    ("meanfield", "eliminate"): eliminate,
    ("bench", "block"): bench_block,
    ("bench", "gradient"): bench_gradient,
    ("bench", "train"): bench_train,
}


def check(command, options, max_seconds=None):
    """:func:`~ocdl.jobs.budget.check_budget` of ``ESTIMATES[command](options)`` (no estimate: nothing)."""
    from ocdl.jobs.budget import check_budget
    fn = ESTIMATES.get(tuple(command))
    est = fn(options) if fn is not None else None
    if est is not None:
        check_budget(est, max_seconds)
