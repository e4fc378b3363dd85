"""The discrete costate sweep (discretise-then-optimise) and the exact gradient it gives.

Costate ``p_k = ∂J/∂x_k`` (summed data loss already divided by n). Terminal condition
``p_N = (1/n) ∇_x Φ(W x_N + μ) = Wᵀ g`` with ``g = ∇_s (1/n)Σ Φ``.

**Explicit Runge–Kutta** ``(A, b)``, stages ``Y_i = x_k + h Σ_j a_ij f(Y_j)``: the costate is
integrated backwards with the adjoint-partner tableau ``â_ij = b_j − b_j a_ji / b_i``,
``b̂ = b`` (``integrators.adjoint_partner``). With ``G_i = −(∂f/∂x(Y_i))ᵀ P_i`` (the costate
equation ``ṗ = −∂H/∂x``) the partner step ``P_i = p_k + h Σ_j â_ij G_j``,
``p_{k+1} = p_k + h Σ_i b_i G_i`` is solved backwards from ``p_{k+1}``:

    P_i = p_{k+1} + h Σ_j (â_ij − b_j) G_j = p_{k+1} + h Σ_{j>i} (b_j a_ji / b_i)(∂f/∂x(Y_j))ᵀ P_j
    p_k = p_{k+1} + h Σ_i b_i (∂f/∂x(Y_i))ᵀ P_i

(explicit: ``â_ij − b_j = −b_j a_ji / b_i`` vanishes for j ≤ i, so stages go i = s..1), and the
stationarity residual is the exact gradient

    ∂J/∂θ_k = h Σ_i b_i (∂f/∂θ(Y_i))ᵀ P_i + ∇_θ_k [regulariser].

For Euler this is ``p_k = p_{k+1} + h (∂f/∂x(x_k))ᵀ p_{k+1}`` (docs/theory.md §4).

**Splittings on the hamiltonian field** (``symplectic_euler``, ``verlet``, ``yoshida4``): each
sub-step is a shear — drift ``q ← q + c h F_q(p)`` or kick ``p ← p + c h F_p(q)`` — whose
costate is the transposed shear, applied in reverse order:

    drift:  λ_p ← λ_p + c h (∂F_q/∂p)ᵀ λ_q,     ∂J/∂θ_k += c h (∂F_q/∂θ)ᵀ λ_q
    kick:   λ_q ← λ_q + c h (∂F_p/∂q)ᵀ λ_p,     ∂J/∂θ_k += c h (∂F_p/∂θ)ᵀ λ_p

For Verlet this is again a (kick, drift, kick) Verlet step of the adjoint system — Verlet is
its own adjoint partner (symplectic, so ``λᵀ δx`` is conserved exactly).

**Implicit Runge–Kutta** (``implicit_midpoint``, ``gauss2``, ``gauss3``; ``lobatto3ab`` on the
hamiltonian field): Newton-solved stages forward, the transposed stage system solved for the
adjoint stages backward, batched over samples — :mod:`ocdl.pmp.implicit`.

No autograd tape is involved anywhere. Every sweep runs in two phases (:func:`ocdl.pmp.dispatch.finish`):
the forward keeps what the costate sweep reads and yields ``x_N``; sent ``p_N`` it runs the
costate sweep from those stored stages. :func:`sweep` and :func:`value_and_grad` put the head's
terminal between the phases; :func:`vjp` hands the second phase back as a pullback, so a
caller's backward (``ocdl.nn.ODEBlock``) runs it later without re-running the forward. Which
code runs is decided in one place, the table of :mod:`ocdl.pmp.dispatch` keyed by
``(backend, family)``: the compiled kernels for numpy arrays
(:mod:`ocdl.pmp.compiled`), the torch sweeps for tensors or ``device=`` (``"cpu"``,
``"cuda"``, ``"cuda:1"``, a ``torch.device``; :mod:`ocdl.pmp.torch_sweeps`), numpy for the conv
fields (:mod:`ocdl.pmp.fused_conv`) and the implicit methods (:mod:`ocdl.pmp.implicit`).

Results follow the parameters: numpy parameters give numpy gradients, torch ones torch
gradients (on the sweep's device); ``J`` is a float either way.
"""
import numpy as np

from integrators.tableaux import EXPLICIT
from ocdl.errors import InputError
from ocdl.models.backend import is_torch, swap, zeros_like_shape
from ocdl.pmp import compiled, torch_sweeps
from ocdl.pmp.dispatch import SWEEPS, backend, finish, lookup
from ocdl.models.losses import mean_loss, mean_loss_and_grad
from ocdl.models.regularisers import regulariser, regulariser_grad


def _check_increments(model, xi, n):
    """Validate additive increments ξ (N, n, d), numpy or torch (None passes through); numpy ones
    as a float64 array."""
    if xi is None:
        return None
    if model.integrator not in EXPLICIT:
        raise InputError(f"additive increments need an explicit Runge–Kutta integrator "
                         f"({', '.join(EXPLICIT)}); got '{model.integrator}'")
    if model.F.form == "conv":
        raise InputError("additive increments are not supported for the conv fields")
    xi = xi if is_torch(xi) else np.asarray(xi, dtype=float)
    shape = (model.layers, n, model.d)
    if tuple(xi.shape) != shape:
        raise InputError(f"increments have shape {tuple(xi.shape)}, need (layers, samples, width) = {shape}")
    if not bool((xi.isfinite() if is_torch(xi) else np.isfinite(xi)).all()):
        raise InputError("increments contain NaN or inf")
    return xi


def _inputs(model, params, X, y, increments, device):
    """``(backend, params, X, y, increments)`` checked, for the sweep that runs: numpy arrays
    (``X`` as given) or tensors on the device (``X`` = lift(X), as :mod:`ocdl.pmp.torch_sweeps`
    takes it)."""
    be = backend(model, params, X, device)
    lookup(SWEEPS, be, model)                   # refuses what the backend has no sweep for
    increments = _check_increments(model, increments, len(X))
    if be == "torch":
        return (be,) + torch_sweeps.as_tensors(model, params, X, y, device, increments)[:4]
    params = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    model.check_params(params)
    return be, params, np.asarray(X, dtype=float), np.asarray(y), increments


def sweep(model, params, X, y, increments=None, trajectories=True, device=None, terminal_costate=None):
    """``(J, grads, states, costates)`` from one forward and one backward sweep.
    ``trajectories=False`` skips assembling the trajectories: ``states`` is then ``x_N[None]``
    (shape (1, n, d)) and ``costates`` None — the cost of :func:`value_and_grad`.

    ``increments`` (optional, (N, n, d), explicit Runge–Kutta only): additive state-independent
    increments ``ξ_k`` in the forward, ``x_{k+1} = Ψ_h(x_k; θ_k) + ξ_k`` (Euler: the
    Euler–Maruyama step of an SDE with additive noise, ξ drawn by the caller). ``∂x_{k+1}/∂x_k``
    and ``∂x_{k+1}/∂θ_k`` do not involve ξ, so the costate sweep and the gradient formula are
    unchanged; only the forward (hence the states the costates are evaluated at) differs.

    ``device`` (or torch tensors as inputs): the torch sweeps of :mod:`ocdl.pmp.torch_sweeps` on
    that device (see the module docstring).

    ``terminal_costate`` (optional, (n, d)): replaces the head's loss by the linear terminal cost
    ``Σ_i ⟨v_i, x_N,i⟩``, so ``p_N = V`` and the sweep is the vector-Jacobian product of the state
    map: ``costates[0] = (∂x_N/∂x_0)ᵀ V`` (the inputs' gradient), ``grads["K"], grads["b"]`` the
    parameters' (plus the regulariser's; ``y`` is not used, W and μ get none). Results are in the
    parameters' library (torch results converted back for numpy parameters)."""
    numpy_out = not any(is_torch(v) for v in params.values())
    be, params, X, y, increments = _inputs(model, params, X, y, increments, device)
    if terminal_costate is None:
        terminal = _terminal(model, params, y)
    else:
        terminal = _linear_terminal(_cotangent(terminal_costate, be, X), model.n_out)
    gen = lookup(SWEEPS, be, model)(model, params, X, trajectories, increments)
    xN = next(gen)                              # the forward, then the head's terminal, then
    data, lamN, g = terminal(xN)                # the costate sweep from the stored stages
    gK, gb, states, costates, _ = finish(gen, lamN)
    if states is None:                          # trajectories=False: keep x_N only, (1, n, d)
        states = xN[None]
    J, grads = _total(model, params, data, gK, gb, xN, g)
    if be == "torch" and numpy_out:
        grads = {k: v.cpu().numpy() for k, v in grads.items()}
        states = states.cpu().numpy()
        costates = None if costates is None else costates.cpu().numpy()
    return J, grads, states, costates


def _cotangent(V, be, like):
    """``V`` (a terminal costate) in the library of the sweep that runs: a float64 tensor on the
    device of ``like`` (backend ``torch``) or a float64 numpy array."""
    if be == "torch":
        import torch
        return torch.as_tensor(V).to(device=like.device, dtype=torch.float64)
    return np.asarray(V.cpu().numpy() if is_torch(V) else V, dtype=float)


def _linear_terminal(V, n_out=1):
    """The terminal of a linear cost ``Σ_i ⟨v_i, x_N,i⟩`` (V (n, d), numpy or torch): ``p_N = V``
    whatever x_N is; the head gets no gradient (``∇_s`` is zero, (n, ``n_out``)). This is the
    vector-Jacobian product of the state map ``x_0 ↦ x_N`` with V (the backward of
    :class:`ocdl.nn.ODEBlock`)."""
    def terminal(xN):
        n = xN.shape[0]
        if tuple(V.shape) != tuple(xN.shape):
            raise InputError(f"terminal costate has shape {tuple(V.shape)}, need (samples, width) = {tuple(xN.shape)}")
        return float((V * xN).sum()), V, zeros_like_shape(xN, (n, n_out))
    return terminal


def _terminal(model, params, y):
    W = params["W"]
    WT = swap(W)
    compiled_terminal = compiled.logistic_terminal(W, params["mu"], y)

    def terminal(xN):
        if compiled_terminal is not None and (xN.flags.c_contiguous or xN.T.flags.c_contiguous):
            return compiled_terminal(xN)
        s = model.head(params, xN)
        data, g = mean_loss_and_grad(s, y)
        # p_N = (1/n) ∇_x Φ = Wᵀ ∇_s per sample, formed feature-major (d, n) and handed back as
        # its (n, d) transposed view; with one logit Wᵀ ∇_s is an outer product (broadcast: ~7×
        # faster than a rank-1 matmul at d = 64, n = 4000)
        gT = swap(g)
        return data, swap(WT * gT if WT.shape[1] == 1 else WT @ gT), g
    return terminal


def _total(model, params, data, gK, gb, xN, g):
    """``J`` and the gradient dict: the sweep's ``(gK, gb)`` (fresh arrays, added to in place),
    the head's ``∂J/∂W = gᵀ x_N``, ``∂J/∂μ = Σ g``, plus the regulariser's."""
    reg = regulariser(params, model.h, model.alpha, model.beta, model.alpha_head)
    grads = {"K": gK, "b": gb, "W": swap(g) @ xN, "mu": g.sum(axis=0)}
    regulariser_grad(params, model.h, model.alpha, model.beta, model.alpha_head, into=grads)
    return float(data + reg), grads


def final_state(model, params, X, increments=None, device=None):
    """``x_N`` ((n, d)) by the cost-only forward, nothing stored: a float64 numpy array, or a
    tensor on the torch path (``increments`` and ``device`` as in :func:`sweep`)."""
    be, params, X, _, increments = _inputs(model, params, X, None, increments, device)
    return _forward(be, model, params, X, increments)


def _forward(be, model, params, X, increments):
    """``x_N`` by the forward phase of the model's sweep run with ``store=False`` (nothing kept)."""
    gen = lookup(SWEEPS, be, model)(model, params, X, False, increments, False, False)
    xN = next(gen)
    gen.close()
    return xN


def vjp(model, params, X, increments=None, device=None):
    """``(x_N, pullback)``: the state map ``x_0 = lift(X) ↦ x_N`` run forward once, keeping what its
    costate sweep reads, and the vector-Jacobian product from those stored stages.

    ``pullback(V)`` (V (n, d), ``∂ℓ/∂x_N`` of any scalar ℓ) runs the costate sweep from
    ``p_N = V`` — ``p_k = (∂x_{k+1}/∂x_k)ᵀ p_{k+1}`` — without re-running the forward and
    without assembling trajectories, and returns ``(p_0, grads)``: ``p_0 = (∂x_N/∂x_0)ᵀ V``
    (n, d) and ``grads = {"K", "b"}``, ``∂ℓ/∂θ_k = (∂x_{k+1}/∂θ_k)ᵀ p_{k+1}`` (the state map's
    alone: no head, no regulariser). ``p_0`` is the gradient of the lifted input (the input's
    own when the model's ``d_in = d``).

    Until ``pullback`` runs (once: the stored stages are consumed) or ``pullback`` is dropped,
    the stored stages hold the model's workspace; another sweep of the model meanwhile works in
    a throw-away one. Results are numpy arrays (the compiled and numpy sweeps) or tensors on the
    sweep's device (the torch sweeps: torch inputs or ``device``), like :func:`sweep`;
    ``increments`` and ``device`` as there. This is the backward of :class:`ocdl.nn.ODEBlock`."""
    numpy_out = not any(is_torch(v) for v in params.values())
    be, params, X, _, xi = _inputs(model, params, X, None, increments, device)
    gen = lookup(SWEEPS, be, model)(model, params, X, False, xi, True)
    xN = next(gen)
    shape = tuple(xN.shape)

    def pullback(V):
        nonlocal gen
        if gen is None:
            raise RuntimeError("this pullback has run: the forward's stored stages are consumed "
                               "(run the forward again for another vector-Jacobian product)")
        if tuple(V.shape) != shape:
            raise InputError(f"the cotangent has shape {tuple(V.shape)}, need (samples, width) = {shape}")
        sweep, gen = gen, None
        gK, gb, _, _, p0 = finish(sweep, _cotangent(V, be, xN))
        if be == "torch" and numpy_out:
            gK, gb, p0 = gK.cpu().numpy(), gb.cpu().numpy(), p0.cpu().numpy()
        return p0, {"K": gK, "b": gb}

    if be == "torch" and numpy_out:
        xN = xN.cpu().numpy()
    return xN, pullback


def cost(model, params, X, y, increments=None, device=None):
    """The discrete cost J (float) by the forward sweep alone, nothing stored; ``increments``
    and ``device`` as in :func:`sweep`."""
    be, params, X, y, increments = _inputs(model, params, X, y, increments, device)
    xN = _forward(be, model, params, X, increments)
    return float(mean_loss(model.head(params, xN), y)
                 + regulariser(params, model.h, model.alpha, model.beta, model.alpha_head))


def costate(model, params, X, y, increments=None, device=None):
    """``(states, costates)``, both ``(N+1, n, d)``; ``costates[k] = ∂J/∂x_k``."""
    _, _, states, costates = sweep(model, params, X, y, increments=increments, device=device)
    return states, costates


def value_and_grad(model, params, X, y, increments=None, device=None):
    """``(J, grads)`` with grads a dict of the same keys/shapes as params, from the costate sweep
    (``increments`` and ``device`` as in :func:`sweep`)."""
    J, grads, _, _ = sweep(model, params, X, y, increments, trajectories=False, device=device)
    return J, grads


def kkt_residual(model, params, X, y, grads=None):
    """``max(max_k ‖∂J/∂θ_k‖∞ / h, ‖∂J/∂W‖∞, ‖∂J/∂μ‖∞)`` — the stationarity residual of the
    discrete PMP system (state, costate and boundary equations hold exactly by construction)."""
    if grads is None:
        _, grads = value_and_grad(model, params, X, y)
    amax = {k: float(abs(g).max()) for k, g in grads.items()}      # numpy arrays or torch tensors
    return max(max(amax["K"], amax["b"]) / model.h, amax["W"], amax["mu"])
