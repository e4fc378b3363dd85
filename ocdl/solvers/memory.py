"""Memory estimates of the training solvers, checked before any large allocation.

:func:`estimate` returns the peak float64 memory (bytes) a solver needs beyond the interpreter
and the data, and the command-line flag that reduces it. Notation: ``N`` layers, state width
``d``, parameter width ``m`` (= d except for the hamiltonian field), ``q = m² + m`` parameters
per layer, ``P`` parameters in all (N q + head), ``C'`` head outputs (1 for two classes), ``n``
training samples, ``B`` the rows of one step (``batch_size`` or n), ``S`` the rows of a
Hessian-vector product (``hessian_sample`` of B, or B); 8 bytes a number.

=================  ===============================================================================
solver             bytes (the formula; constants from the measurements in docs/benchmarks-real.md)
=================  ===============================================================================
pmp-adam, pmp-gd,  8 [6 P + 4 (N+1) B d]: parameters, gradient, Adam moments; the fused sweep's
pmp-lbfgs          stored states/activations and costates
adam, lbfgs        8 [6 P + 8 (N+1) B d]: torch's tape keeps several (B, d) tensors per layer
msa                8 [6 P + 10 (N+1) B d + 8 N (m+1)² + 3 (C'd + C')²]: trajectories and costates
                   of the batch, σ, σ'², P δK of the matrix-free layer step
                   (:class:`ocdl.solvers.msa.LayerMetric`), its S_k and preconditioner factors
                   and the CG vectors (N (m+1)² each), the head's dense LM matrix; with
                   mini-batches (B < n: ``metric="state"``, the default there)
                   8 [8 P + 6 (N+1) B d + 4 N (m+1)²]: the averaged gradient and metrics S̄_k, one
                   (m+1)² system per layer, no head matrix (measured peak/estimate 0.83–1.02 at
                   widths 40–120, B = 128–512)
newton (reduced)   8 [12 P + 4 (N+1) B d + 16 (N+1) S d]: CG vectors; the costate gradient of
                   the batch; torch's double-backward graph on the S rows
newton (full),     8 [P² + 12 N n d² + 2 N n q]: the sparse KKT matrix and its LU / LDLᵀ factors,
ipopt              whose fill-in is at least the dense reduced Hessian (P × P) in θ
shooting           1.05 · 8 [n b² + 2 n b G + G² + 4 N n (m² + 6 d)
                            + max(4 n b² + 8 n b G + 8 G² + c + c', 5 n d L q + 5 n q b)]
                   with b = (2M − 1) d per-sample unknowns (M segments), G = N q + C'd + C' global
                   ones, L the layers of the longest segment (⌈N/M⌉), c = min(4 n b G, max(2²², 4 b G)) the
                   chunk of A⁻¹E; arrays of :mod:`ocdl.solvers.shooting_blocks` and
                   :class:`ocdl.solvers.shooting.ShootingProblem`: the bordered Jacobian (A n b²,
                   E and F n b G each, D G²); the trajectories of the last 4 residual evaluations
                   (σ, σ', σ'', x, q, q⁺ and M_k per layer); and the larger of (i) a damped LM
                   step (λ > 0), whose augmented system has twice the unknowns: Ma 4 n b², Ea and
                   Fa 4 n b G each, Da 4 G², the Schur complement S 4 G² (updated and
                   LU-factorised in place) and one chunk of samples' A⁻¹E (c,
                   :data:`ocdl.solvers.shooting_blocks.SCHUR_CHUNK`) with, when there is more than
                   one chunk (c < 4 n b G), a copy of its F columns (c' = c, else 0), and (ii) the
                   tangent sweep's θ tangents UX, UQ (n d L q each) with their update temporaries
                   and a layer's stationarity rows (n q b, with their einsum terms); the layer
                   solves' m² × m² Newton matrices of a trial evaluation (≤ 5 m⁴ < 8 G²) come
                   after the step's arrays are freed and fall under (i). An undamped
                   (Gauss–Newton) step needs only S (G²) and the chunk beyond the Jacobian; the
                   estimate covers the damped step because a run takes one as soon as a
                   Gauss–Newton step is rejected. A run whose Newton warm start already meets
                   ``tol`` takes no LM step and never allocates these arrays (its peak is the
                   warm start's). Plus the reduced Newton warm start (the larger of the two
                   phases counts). The factor 1.05 covers what is not counted (Python objects,
                   history rows, vectors of length n b + G). Measured traced peaks:
                   docs/compare.md, "How far shooting scales"
=================  ===============================================================================
"""


F64 = 8


def _dims(model):
    N, d, m = model.layers, model.d, model.m
    C = model.n_out
    q = m * m + m
    P = int(model.n_params())
    return N, d, m, C, q, P


def rows(n, batch_size=None):
    """Rows of one step: the batch size (at most n) or all n."""
    return int(n) if batch_size is None else min(int(batch_size), int(n))


def hessian_rows(B, hessian_sample=None):
    """Rows of a Hessian-vector product: ``hessian_sample`` (fraction ≤ 1 or count) of ``B``."""
    if hessian_sample is None:
        return B
    s = float(hessian_sample)
    return max(1, min(B, int(round(s * B)) if s <= 1 else int(s)))


def estimate(solver, model, n, batch_size=None, hessian_sample=None, formulation="reduced", segments=1):
    """``(bytes, flag)``: the memory ``solver`` needs for ``model`` on ``n`` training samples (module
    docstring) and the flag that reduces it most (``--batch-size``, ``--hessian-sample``,
    ``--newton-formulation reduced``, ``--width``)."""
    N, d, m, C, q, P = _dims(model)
    B = rows(n, batch_size)
    traj = (N + 1) * B * d
    if solver in ("pmp-adam", "pmp-gd", "pmp-lbfgs"):
        return F64 * (6 * P + 4 * traj), ("--batch-size" if B > 256 else "--width")
    if solver in ("adam", "lbfgs"):
        return F64 * (6 * P + 8 * traj), ("--batch-size" if B > 256 else "--width")
    if solver == "msa" and B < n:
        nb = F64 * (8 * P + 6 * traj + 4 * N * (m + 1) ** 2)
        return nb, ("--batch-size" if 6 * traj > 4 * N * (m + 1) ** 2 else "--width")
    if solver == "msa":
        nb = F64 * (6 * P + 10 * traj + 8 * N * (m + 1) ** 2 + 3 * (C * d + C) ** 2)
        return nb, ("--batch-size" if 10 * traj > 8 * N * (m + 1) ** 2 else "--width")
    if solver == "newton" and formulation != "full":
        S = hessian_rows(B, hessian_sample)
        nb = F64 * (12 * P + 4 * traj + 16 * (N + 1) * S * d)
        return nb, ("--hessian-sample" if S > 256 else "--width")
    if solver in ("newton", "ipopt"):
        nb = F64 * (float(P) ** 2 + 12 * N * n * d * d + 2 * N * n * q)
        return nb, ("--newton-formulation reduced" if solver == "newton" else "--width")
    if solver == "shooting":
        return max(shooting_lm(model, n, segments), estimate("newton", model, n)[0]), "--width"
    raise ValueError(f"no memory estimate for solver '{solver}'")


def shooting_lm(model, n, segments=1):
    """Bytes of shooting's Levenberg–Marquardt phase (module docstring, row ``shooting``, without
    the Newton warm start): the bordered Jacobian, the cached trajectories, and the larger of a
    damped step's augmented system and the tangent sweep."""
    from ocdl.solvers.shooting_blocks import SCHUR_CHUNK, segment_bounds
    N, d, m, C, q, P = _dims(model)
    M = int(segments)
    b = (2 * M - 1) * d
    G = float(N * q + C * d + C)
    bounds = segment_bounds(N, M)
    L = max(k1 - k0 for k0, k1 in zip(bounds, bounds[1:]))             # the longest segment's layers
    jacobian = n * b * b + 2 * n * b * G + G * G
    cache = 4 * N * n * (m * m + 6 * d)
    chunk = min(4 * n * b * G, max(float(SCHUR_CHUNK), 4 * b * G))   # A⁻¹E of one chunk (damped: 2b × 2G)
    copy = chunk if chunk < 4 * n * b * G else 0.0                   # its F columns, copied if not all
    step = 4 * n * b * b + 8 * n * b * G + 8 * G * G + chunk + copy
    sweep = 5 * n * d * L * q + 5 * n * q * b
    return 1.05 * F64 * (jacobian + cache + max(step, sweep))
