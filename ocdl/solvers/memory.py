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
shooting           8 [6 n b G + 2 n d G + 9 G²] with b = (2M − 1) d per-sample unknowns (M segments)
                   and G = N q + C'd + C' global ones: the bordered Jacobian's coupling blocks, the
                   θ tangents, and the dense G × G Schur complements (Newton and damped LM
                   step, :mod:`ocdl.solvers.shooting_blocks`); plus the reduced Newton warm start
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
        b = (2 * int(segments) - 1) * d
        G = float(N * q + C * d + C)
        warm = estimate("newton", model, n)[0]
        return max(F64 * (6 * n * b * G + 2 * n * d * G + 9 * G * G), warm), "--width"
    raise ValueError(f"no memory estimate for solver '{solver}'")

