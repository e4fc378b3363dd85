"""Newton's method for the stages of an implicit Runge–Kutta step (implicit_midpoint, gauss2, gauss3).

With the state flattened to ``y ∈ ℝⁿ`` (the components of the state tuple, each raveled, one
after the other) and the stage increments ``Z = (Z_1, …, Z_s)``, ``Z_i = Y_i − y``, the stage
equations are

    R(Z) = Z − h (A ⊗ I) F(y + Z) = 0,        F(y + Z)_j = F(t + c_j h, y + Z_j).

Newton's iteration is ``Z ← Z + ΔZ`` with ``M ΔZ = −R(Z)`` and

* **full Newton** (``simplified=False``): ``M = I − h (A ⊗ I) diag(J_1, …, J_s)``,
  ``J_j = ∂F/∂y(t + c_j h, y + Z_j)``, re-evaluated and re-factorised every iteration
  (quadratic convergence);
* **simplified Newton** (``simplified=True``, default): ``M = I − h A ⊗ J(t, y)``, one Jacobian
  and one LU factorisation per step (linear convergence with a factor O(h²‖J'‖), the standard
  choice of stiff codes, Hairer–Wanner IV.8).

Far from the solution a full step may overshoot (a close approach in the Arenstorf orbit): a step
whose residual ``‖R‖₂`` grows is halved, at most 30 times (damped Newton); near the solution
the full step is always taken. Stopping, polishing and the divergence guard are those of the fixed-point iteration
(:class:`integrators.implicit.FixedPoint` on the increments ``ΔZ``), so the stages end at
round-off either way. The new state is ``y_{n+1} = y + Σ_i d_i Z_i`` with ``dᵀ = bᵀ A⁻¹``: equal
to ``y + h Σ b_i F(Y_i)`` at the solution, and it does not multiply the stages' residual error by
the stiffness ``h‖J‖`` as evaluating ``F`` once more would.

**The Jacobian** ``J(t, y) = ∂F/∂y`` (n × n, for the flattened state) comes from

1. the caller: ``jacobian=`` of :func:`integrators.solve` (``jacobian(t, y)``, with ``y`` as the
   right-hand side sees it, returning ``(y.size, y.size)``) or of
   :func:`integrators.solve_partitioned` (``jacobian(t, q, p)`` for ``[q; p]`` raveled);
2. torch autograd for torch states (``torch.autograd.functional.jacobian`` on detached values);
3. forward differences for numpy states without one (``n`` extra evaluations, step
   ``√ε · max(1, |y_j|)``). The Jacobian only sets the rate of convergence: the stages solve
   ``R(Z) = 0`` to the same tolerance whatever Jacobian is used.

``M`` is built from detached values, so for torch states autograd differentiates the iteration
``Z ← Z − M⁻¹ R(Z)``; at the solution its derivative is the implicit-function derivative
(the map's own derivative ``I − M⁻¹ R'`` is small), reached after ``grad_iter`` extra iterations.
"""
import numpy as np
import scipy.linalg

from integrators import backend
from integrators.implicit import FixedPoint, needs_grad

DAMPING = 30        # at most 30 halvings of a Newton step whose residual grows


def _flatten(parts):
    if backend.is_torch(parts[0]):
        return backend._torch().cat([a.reshape(-1) for a in parts])
    return np.concatenate([np.asarray(a).reshape(-1) for a in parts])


def _unflatten(v, like):
    out, i = [], 0
    for a in like:
        n = int(np.prod(a.shape))
        out.append(v[i:i + n].reshape(a.shape))
        i += n
    return tuple(out)


def jacobian(system, t, state, user=None):
    """``∂F/∂y`` at ``(t, state)`` for the flattened state: a numpy array (numpy states) or a
    detached torch tensor (torch states). ``user``: the caller's Jacobian (see module docstring)."""
    n = sum(int(np.prod(a.shape)) for a in state)
    if user is not None:
        J = user(t, *state)
        J = J.detach() if backend.is_torch(J) else np.asarray(J, dtype=float)
        if tuple(J.shape) != (n, n):
            raise ValueError(f"jacobian returned shape {tuple(J.shape)}; expected ({n}, {n}) for the flattened state")
        if backend.is_torch(state[0]) and not backend.is_torch(J):
            J = backend._torch().as_tensor(J, dtype=state[0].dtype, device=state[0].device)
        return J
    if backend.is_torch(state[0]):
        torch = backend._torch()
        y = _flatten([a.detach() for a in state])
        with torch.enable_grad():
            J = torch.autograd.functional.jacobian(lambda v: _flatten(system.f(t, _unflatten(v, state))), y)
        return J.detach()
    y = _flatten(state)
    f0 = _flatten(system.f(t, state))
    J = np.empty((n, n))
    for j in range(n):
        d = np.sqrt(np.finfo(float).eps) * max(1.0, abs(y[j]))
        yj = y.copy()
        yj[j] += d
        J[:, j] = (_flatten(system.f(t, _unflatten(yj, state))) - f0) / d
    return J


def _norm(R):
    """``‖R‖₂`` as a float (never on the autograd graph)."""
    if backend.is_torch(R):
        return float(backend._torch().linalg.norm(R.detach()))
    return float(np.linalg.norm(R))


class _Factor:
    """An LU factorisation of ``M`` (numpy: scipy's ``lu_factor``; torch: ``torch.linalg.lu_factor``)."""

    def __init__(self, M):
        self.torch = backend.is_torch(M)
        if self.torch:
            self.lu = backend._torch().linalg.lu_factor(M)
        else:
            self.lu = scipy.linalg.lu_factor(M, check_finite=False)

    def solve(self, r):
        if self.torch:
            return backend._torch().linalg.lu_solve(*self.lu, r[:, None])[:, 0]
        return scipy.linalg.lu_solve(self.lu, r, check_finite=False)


def _matrix(A, h, Js):
    """``I − h (A ⊗ I) diag(J_1..J_s)`` (``Js`` one Jacobian per stage; a single one for all)."""
    s, n = A.shape[0], Js[0].shape[0]
    if backend.is_torch(Js[0]):
        torch = backend._torch()
        At = torch.as_tensor(A, dtype=Js[0].dtype, device=Js[0].device)
        blocks = [[-h * At[i, j] * Js[j % len(Js)] for j in range(s)] for i in range(s)]
        return torch.eye(s * n, dtype=Js[0].dtype, device=Js[0].device) + torch.cat(
            [torch.cat(row, dim=1) for row in blocks], dim=0)
    M = np.eye(s * n)
    for i in range(s):
        for j in range(s):
            M[i * n:(i + 1) * n, j * n:(j + 1) * n] -= h * A[i, j] * Js[j % len(Js)]
    return M


def solve_stages(method, system, t, state, h, Z, opts):
    """Newton's iteration for the stage increments of ``method`` (an :class:`ImplicitRK`) from the
    guess ``Z`` (per component, ``(s, *shape)``); returns the converged ``Z`` in the same layout."""
    A, c, s = method.A, method._c, len(method._c)
    torch_state = backend.is_torch(state[0])
    fpt = FixedPoint(opts, f"{method.name} (Newton stages)", t, h, [[y, z] for y, z in zip(state, Z)],
                     needs_grad(state), guard=False)
    y = _flatten(state)
    n = y.shape[0]
    Zf = (backend._torch().stack if torch_state else np.stack)(
        [_flatten([z[i] for z in Z]) for i in range(s)])                     # (s, n)
    user = opts.jacobian
    factor = None if not opts.simplified else _Factor(_matrix(A, h, [jacobian(system, t, state, user)]))
    Am = A if not torch_state else backend._torch().as_tensor(A, dtype=y.dtype, device=y.device)

    def residual(Zf):
        Ys = [_unflatten(y + Zf[j], state) for j in range(s)]
        F = (backend._torch().stack if torch_state else np.stack)(
            [_flatten(system.f(t + c[j] * h, Ys[j])) for j in range(s)])    # (s, n)
        return Zf - h * (Am @ F), Ys

    R, Ys = residual(Zf)
    while True:
        if not opts.simplified:
            Js = [jacobian(system, t + c[j] * h, tuple(a.detach() if torch_state else a for a in Ys[j]), user)
                  for j in range(s)]
            factor = _Factor(_matrix(A, h, Js))
        dZ = -factor.solve(R.reshape(-1)).reshape(s, n)
        # damping: halve the step while the residual grows (at most DAMPING halvings)
        r0 = _norm(R)
        for _ in range(DAMPING):
            R_new, Ys_new = residual(Zf + dZ)
            if _norm(R_new) <= r0 or not r0 > 0:
                break
            dZ = 0.5 * dZ
        else:
            fpt._fail(f"no Newton step decreases the residual ‖R‖₂ = {r0:.3e} (the stage equations may "
                      f"have no solution near the guess)")
        Zf, R, Ys = Zf + dZ, R_new, Ys_new
        parts = [_unflatten(dZ[i], state) for i in range(s)]
        incr = [backend.stack([p[k] for p in parts]) for k in range(len(state))]
        if fpt.done(incr):
            break
    parts = [_unflatten(Zf[i], state) for i in range(s)]
    return [backend.stack([p[k] for p in parts]) for k in range(len(state))]
