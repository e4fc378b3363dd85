"""Trust-region Newton–CG on ``∇J = 0`` (the reduced Pontryagin stationarity equations).

- :func:`steihaug_cg`: truncated CG (Steihaug–Toint) for ``min_s gᵀs + ½ sᵀHs, ‖s‖ ≤ Δ``;
- :func:`damped_pcg`: preconditioned CG for ``(G + λM) s = −g`` in a metric M (the Kronecker-factored
  one of :mod:`ocdl.solvers.kronecker`);
- :class:`TrustRegionNewtonCG`: the stepping rule for :func:`ocdl.optim.minimize`;
- :class:`TorchHVP`: exact ``∇²J_S v`` (torch reverse-over-reverse);
- :class:`GaussNewtonProduct`: the generalised Gauss–Newton product ``G_S v`` (positive
  semidefinite; a forward tangent sweep, then the costate sweep);
- :class:`HessianSample`: the subsample ``S`` of the products (Byrd, Chin, Neveitt, Nocedal 2011).
"""
import numpy as np

from ocdl.errors import SolverError
from ocdl.optim import CONVERGED, STALLED, Step, Stop, certificates
from ocdl.optim.lm import Damping


class TorchHVP:
    """Exact Hessian-vector products ``∇²J_S(z) v`` by torch reverse-over-reverse (double backward,
    float64) through :meth:`ResNetODE.cost` on the rows ``S``:
    ``J_S = (1/|S|) Σ_{i∈S} Φ_i + R(θ)`` (the regulariser's curvature in full — the subsampled
    Hessian of Byrd, Chin, Neveitt, Nocedal 2011). The graph of ``∇J_S`` at ``z`` is kept while
    the products at the same ``(z, S)`` go on (one CG solve), so each product is one backward
    pass. Measured on wine (width 39, 31 320 parameters, n = 133, one thread): 12 ms per product,
    against 0.3 s for CasADi's per-sample forward-over-reverse (``GradientOnly.hvp``) and 4.6 ms
    for a central difference of the costate gradient. No Hessian is formed."""

    def __init__(self, model, X, y):
        import torch
        self.torch, self.model = torch, model
        self.X = torch.tensor(np.asarray(X, dtype=float), dtype=torch.float64)
        self.y = np.asarray(y)
        self._key = self._graph = None

    def _gradient_graph(self, z, rows):
        torch = self.torch
        x = torch.tensor(np.asarray(z, dtype=float), dtype=torch.float64, requires_grad=True)
        params, i = {}, 0
        for k, shp in self.model.shapes().items():
            size = int(np.prod(shp))
            params[k] = x[i:i + size].reshape(shp)
            i += size
        X, y = (self.X, self.y) if rows is None else (self.X[torch.as_tensor(rows)], self.y[rows])
        g, = torch.autograd.grad(self.model.cost(params, X, y), x, create_graph=True)
        return x, g

    def __call__(self, z, v, rows=None):
        key = self._key
        if key is None or not (np.array_equal(key[0], z) and (key[1] is rows or (
                key[1] is not None and rows is not None and np.array_equal(key[1], rows)))):
            self._graph = self._gradient_graph(z, rows)
            self._key = (np.array(z, dtype=float, copy=True), None if rows is None else np.array(rows))
        x, g = self._graph
        hv, = self.torch.autograd.grad(g, x, grad_outputs=self.torch.as_tensor(np.asarray(v, dtype=float)),
                                       retain_graph=True)
        return hv.numpy()

    def release(self):
        self._key = self._graph = None


class GaussNewtonProduct:
    """The generalised Gauss–Newton product (Schraudolph 2002; Martens 2010, "Deep learning via
    Hessian-free optimization") of ``J_S = (1/|S|) Σ_{i∈S} Φ(s_i, c_i) + R(θ)`` on the rows ``S``:

        G_S v = (1/|S|) Σ_{i∈S} (∂s_i/∂z)ᵀ ∇²_s Φ_i (∂s_i/∂z) v + ∇²R v,

    the Hessian with the second-order terms of the network dropped (``∇²_s Φ`` = ``diag p − p pᵀ``
    for softmax cross-entropy, ``λ(s)λ(−s)`` for the logistic loss: positive semidefinite, so
    ``G_S`` is; the quadratic ``R`` adds its exact Hessian ``∇²R v = ∇R(v)``). Computed in two
    passes, no matrix formed:

    1. forward tangent: ``δx_N = (∂x_N/∂θ) δθ`` (torch forward mode, ``torch.func.jvp`` of the
       state map through :meth:`ResNetODE.forward`, float64), then
       ``δs_i = W δx_N,i + δW x_N,i + δμ`` and ``u_i = ∇²_s Φ_i δs_i / |S|``;
    2. transpose: the costate sweep of the linear terminal cost ``Σ_i ⟨Wᵀ u_i, x_N,i⟩``
       (:func:`ocdl.pmp.sweep` with ``terminal_costate``: ``p_N = Wᵀ u``) gives
       ``(∂x_N/∂θ)ᵀ Wᵀ u`` for (K, b); the head's part is ``uᵀ x_N`` (W) and ``Σ_i u_i`` (μ).

    Each product costs about one forward (doubled by the tangents) and one costate sweep on
    ``|S|`` rows. Tested against torch autograd's ``Jᵀ H J v`` (``torch.func`` jvp/vjp) in float64.
    With the Euler step and a field that has the tangent of its right-hand side (``field.jvp``:
    inner, outer, conv) the tangent is the numpy recurrence ``δx_{k+1} = δx_k + h (∂f/∂x δx_k + ∂f/∂θ δθ_k)``
    along the states stored once per point ``(z, S)`` (on MNIST-1D, 32 rows, width 120, 20 layers:
    ≈ 5 ms per product against 23 ms through torch forward mode)."""

    def __init__(self, model, X, y):
        import torch
        self.torch, self.model = torch, model
        self.X = np.asarray(X, dtype=float)
        self.y = np.asarray(y)
        self._key = self._at = None

    def _point(self, z, rows):
        torch = self.torch
        params = self.model.unflatten(np.array(z, dtype=float, copy=True))
        X, y = (self.X, self.y) if rows is None else (self.X[rows], self.y[rows])
        if self._numpy_tangent():
            return params, None, X, y, self.model.forward(params, X)      # the states (N+1, n, m)
        tp = {k: torch.as_tensor(v) for k, v in params.items()}
        return params, tp, X, y, torch.as_tensor(X)

    def _numpy_tangent(self):
        return self.model.integrator == "euler" and getattr(self.model.F, "jvp", None) is not None

    def _tangent(self, params, states, dv):
        """``(x_N, δx_N)`` by the Euler tangent recurrence along the stored ``states``."""
        F, h = self.model.F, self.model.h
        K, b, dK, db = params["K"], params["b"], dv["K"], dv["b"]
        dx = np.zeros_like(states[0])
        for k in range(self.model.layers):
            dx = dx + h * F.jvp(states[k], K[k], b[k], dx, dK[k], db[k])
        return states[-1], dx

    def __call__(self, z, v, rows=None):
        from ocdl import pmp
        from ocdl.models.regularisers import regulariser_grad
        torch, model = self.torch, self.model
        key = self._key
        if key is None or not (np.array_equal(key[0], z) and (key[1] is rows or (
                key[1] is not None and rows is not None and np.array_equal(key[1], rows)))):
            self._at = self._point(z, rows)
            self._key = (np.array(z, dtype=float, copy=True), None if rows is None else np.array(rows))
        params, tp, X, y, Xt = self._at
        if tp is None:
            dv = model.unflatten(v)
            xN, dxN = self._tangent(params, Xt, dv)
            xN, dxN = torch.as_tensor(xN), torch.as_tensor(dxN)
            W, mu = torch.as_tensor(params["W"]), torch.as_tensor(params["mu"])
            dv = {k: torch.as_tensor(a) for k, a in dv.items()}
        else:
            dv = {k: torch.as_tensor(a) for k, a in model.unflatten(v).items()}
            W, mu = tp["W"], tp["mu"]

            def state_map(K, b):
                return model.forward({"K": K, "b": b, "W": W, "mu": mu}, Xt)[-1]
            xN, dxN = torch.func.jvp(state_map, (tp["K"], tp["b"]), (dv["K"], dv["b"]))
        s = xN @ W.T + mu
        ds = dxN @ W.T + xN @ dv["W"].T + dv["mu"]
        n = s.shape[0]
        if s.shape[1] == 1:                     # logistic loss: ∇²Φ = λ(s)λ(−s)
            lam = torch.sigmoid(s)
            u = lam * (1.0 - lam) * ds / n
        else:                                   # softmax cross-entropy: ∇²Φ = diag p − p pᵀ
            p = torch.softmax(s, dim=1)
            u = (p * ds - p * (p * ds).sum(dim=1, keepdim=True)) / n
        u, xN = u.numpy(), xN.numpy()
        _, g, _, _ = pmp.sweep(model, params, X, y, trajectories=False, terminal_costate=u @ params["W"])
        # the sweep adds the regulariser's gradient at θ: take it out, add its Hessian times v
        r_at = regulariser_grad(params, model.h, model.alpha, model.beta, model.alpha_head)
        r_v = regulariser_grad(model.unflatten(v), model.h, model.alpha, model.beta, model.alpha_head)
        out = {"K": g["K"] - r_at["K"] + r_v["K"], "b": g["b"] - r_at["b"] + r_v["b"],
               "W": u.T @ xN + r_v["W"], "mu": u.sum(axis=0) + r_v["mu"]}
        return model.flatten(out)

    def release(self):
        self._key = self._at = None


class HessianSample:
    """The subsample ``S`` of the Hessian-vector products (Byrd et al. 2011): ``sample`` a fraction
    in (0, 1] or a count ≥ 1 (a float ≤ 1 is a fraction, otherwise a count) of the rows the
    gradient uses (all data, or the iterate's mini-batch); None: those rows themselves. A fresh
    subsample is drawn for every Newton step (``numpy.random.default_rng(seed)``)."""

    def __init__(self, sample, n, seed=0):
        self.sample, self.n = sample, int(n)
        self.rng = np.random.default_rng(seed)
        if sample is not None and not (float(sample) > 0):
            raise SolverError(f"newton: hessian_sample must be a fraction in (0, 1] or a count ≥ 1 (got {sample})")

    def size(self, rows_available):
        if self.sample is None:
            return rows_available
        s = float(self.sample)
        k = int(round(s * rows_available)) if s <= 1 else int(s)
        return max(1, min(k, rows_available))

    def __call__(self, batch):
        rows = np.arange(self.n) if batch is None else np.asarray(batch)
        k = self.size(rows.size)
        if k >= rows.size:
            return batch
        return np.sort(self.rng.choice(rows, size=k, replace=False))


def steihaug_cg(g, hvp, Delta, rtol, maxiter):
    """Truncated CG (Steihaug–Toint) for ``min_s gᵀs + ½ sᵀHs, ‖s‖ ≤ Δ`` using ``hvp(v) = Hv``.

    Stops at ``‖Hs + g‖ ≤ rtol``, at the boundary, or along a direction of negative curvature
    (then it steps to the boundary: that is how a saddle is escaped). Returns ``(s, n_hvp, why)``.
    """
    s = np.zeros_like(g)
    r = g.copy()
    d = -r
    rr = float(r @ r)
    if np.sqrt(rr) <= rtol:
        return s, 0, "small"

    def to_boundary(s, d):
        a, b, c = d @ d, 2 * s @ d, s @ s - Delta ** 2
        tau = (-b + np.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)
        return s + tau * d

    for j in range(maxiter):
        Hd = hvp(d)
        dHd = float(d @ Hd)
        if dHd <= 0:
            return to_boundary(s, d), j + 1, "negative curvature"
        a = rr / dHd
        s_new = s + a * d
        if np.linalg.norm(s_new) >= Delta:
            return to_boundary(s, d), j + 1, "boundary"
        r = r + a * Hd
        rr_new = float(r @ r)
        s = s_new
        if np.sqrt(rr_new) <= rtol:
            return s, j + 1, "converged"
        d = -r + (rr_new / rr) * d
        rr = rr_new
    return s, maxiter, "maxiter"


def damped_pcg(g, product, metric, lam, rtol, maxiter):
    """Preconditioned CG for the Levenberg–Marquardt system ``(G + λM) s = −g`` (G positive
    semidefinite, M symmetric positive definite, λ > 0), preconditioned by ``M⁻¹``
    (``metric.solve``): iterates ``s_j`` minimise ``gᵀs + ½ sᵀ(G + λM)s`` over the preconditioned
    Krylov space ``span{M⁻¹g, (M⁻¹(G + λM))M⁻¹g, …}``; the first is the natural-gradient step
    ``−α M⁻¹g`` with the length α of the damped quadratic model. ``M d_j`` is carried by the
    recurrence ``M d_{j+1} = −r_{j+1} + β_j M d_j`` (``M z = r``), so M itself is never applied:
    one product ``G d`` and one ``M⁻¹ r`` per iteration. Stops at ``‖(G + λM)s + g‖ ≤ rtol`` or
    after ``maxiter`` iterations. Returns ``(s, G s, M s, products, why)`` (accumulated from the
    iterations' products: ``G s = Σ_j α_j G d_j``, ``M s = Σ_j α_j M d_j``)."""
    s = np.zeros_like(g)
    Gs = np.zeros_like(g)
    Ms = np.zeros_like(g)
    r = g.copy()
    if np.linalg.norm(r) <= rtol:
        return s, Gs, Ms, 0, "small"
    zr = metric.solve(r)
    d, Md = -zr, -r
    rz = float(r @ zr)
    for j in range(maxiter):
        Gd = product(d)
        Ad = Gd + lam * Md
        dAd = float(d @ Ad)
        if not dAd > 0:
            return s, Gs, Ms, j + 1, "breakdown"
        a = rz / dAd
        s += a * d
        Gs += a * Gd
        Ms += a * Md
        r += a * Ad
        if np.linalg.norm(r) <= rtol:
            return s, Gs, Ms, j + 1, "converged"
        if j + 1 == maxiter:
            break
        zr = metric.solve(r)
        rz_new = float(r @ zr)
        beta = rz_new / rz
        d = -zr + beta * d
        Md = -r + beta * Md
        rz = rz_new
    return s, Gs, Ms, maxiter, "maxiter"


#: the damping rule of the Gauss–Newton step (:class:`ocdl.optim.lm.Damping` with the ratio test):
#: λ ← 3/2 λ if ρ < 1/4, 2/3 λ if ρ > 3/4 (Martens 2010's constants), the step taken if ρ > 1e-4
GN_DAMPING = Damping("ratio", increase=1.5, decrease=1.5, accept=1e-4)


class TrustRegionNewtonCG:
    """Trust-region Newton–CG on ``∇J = 0`` as a rule of :func:`ocdl.optim.minimize` (module docstring).

    ``update`` at the iterate ``z`` (its ``kkt`` measured by the objective): converged (status 0) when
    ``kkt ≤ tol``; stalled (status 3) when the radius has collapsed below 1e-14. Otherwise the
    Steihaug–Toint step ``s`` with forcing term ``min(0.5, √‖g‖)‖g‖``, the trial ``J(z + s)``
    (``run.call``), the ratio ρ of actual to predicted decrease (at round-off level: the decrease of
    ‖g‖), ``Δ ← Δ/4·min(1, ‖s‖/Δ)`` if ρ < 0.25, ``2Δ`` if ρ > 0.75 at the boundary; the step is
    taken if ρ > 1e-4. The iterate's history row gets ``step``, ``cg_iterations``, ``cg_stop``,
    ``accepted``. State: the radius ``delta`` (``n_hvp``, ``n_fd_steps``: counts over the rule's
    runs). Hessian-vector products: central differences of ``grad(x, rows)`` while kkt >
    ``exact_below``, else ``hvp_exact(z, v, rows)``.

    Mini-batches and subsampled Hessians (Byrd et al. 2011): the iterate's ``g``, ``J`` and the
    trial cost are those of the driver's batch (``point.batch``; None: all data); the products use
    the rows ``sample(point.batch)`` (default: the same rows), drawn afresh every step.

    Gauss–Newton far from a solution (``gauss_newton``, a :class:`GaussNewtonProduct`): while kkt >
    ``gauss_newton_above`` the step is Levenberg–Marquardt on the generalised Gauss–Newton matrix ``G``
    (Martens 2010, §4): CG on ``(G + λI) s = −g`` (positive definite: no negative curvature, no
    boundary) stopped at ``‖(G + λI)s + g‖ ≤ gn_cg_rtol·‖g‖`` or ``gn_cg_maxiter`` iterations (a
    truncated step: few CG iterations per mini-batch); ρ = actual / predicted decrease of the
    *undamped* model ``gᵀs + ½ sᵀGs``; ``λ ← 3/2 λ`` if ρ < 1/4, ``2/3 λ`` if ρ > 3/4 (Martens'
    constants; :data:`GN_DAMPING`); taken if ρ > 1e-4. Below ``gauss_newton_above`` (1e-3) the trust-region Newton–CG
    steps above take over: Gauss–Newton converges only linearly near a minimum with a nonzero
    loss, the exact Hessian decides the final convergence (wine, width 13, 5 layers, from the
    initialisation: switching at 1e-5 took 240 Gauss–Newton + 10 Newton steps, at 1e-3 22 + 22).
    ``damping`` is the first λ (state ``damping``); rows get ``damping`` and ``curvature``.

    ``preconditioner`` (a :class:`ocdl.solvers.kronecker.KroneckerMetric`, Gauss–Newton steps only):
    it observes the step's product rows at ``z`` (its factor averages), then the step solves
    ``(G + λM) s = −g`` by :func:`damped_pcg` — the damping and the preconditioner in the metric
    ``M`` ≈ G (K-FAC): the first CG iterate is a K-FAC step with the length of the Gauss–Newton
    model, the further ones add G's coupling of the layers (Martens & Grosse 2015, §6.4).
    ``cost(x, rows)`` (the objective's cost alone): a mini-batch step's trial is judged by the
    batch's cost at ``z + s``, one forward (the trial point's gradient would be wasted: the next
    iterate is evaluated on the next batch).

    ``certify`` (the driver's convergence test, :mod:`ocdl.optim.certificates`): the KKT residual
    of the **full** objective at the returned point ≤ ``tol``; a mini-batch run is never certified.
    """
    name = "newton"

    def __init__(self, grad, hvp_exact, tol=1e-10, delta0=1.0, cg_maxiter=500, exact_below=1e-5, sample=None,
                 gauss_newton=None, damping=1.0, gn_cg_rtol=1e-3, gn_cg_maxiter=10, gauss_newton_above=1e-3,
                 preconditioner=None, cost=None):
        self.grad, self.hvp_exact, self.sample, self.gauss_newton = grad, hvp_exact, sample, gauss_newton
        self.preconditioner, self.cost = preconditioner, cost
        self.tol, self.delta0, self.cg_maxiter, self.exact_below = float(tol), float(delta0), int(cg_maxiter), \
            float(exact_below)
        self.damping0, self.gn_cg_rtol, self.gn_cg_maxiter = float(damping), float(gn_cg_rtol), int(gn_cg_maxiter)
        self.gauss_newton_above = float(gauss_newton_above)
        if not self.damping0 > 0:
            raise SolverError(f"newton: damping must be > 0 (got {damping})")
        self.n_hvp = self.n_fd_steps = self.n_gn_steps = self.n_cg = 0

    def init(self, x, saved, run):
        return {"delta": np.array(float(saved["delta"]) if saved else self.delta0),
                "damping": np.array(float(saved["damping"]) if saved and "damping" in saved else self.damping0)}

    def certify(self, state, p, run):
        """The KKT residual of the full objective at the returned point (:func:`certificates.kkt`)."""
        return certificates.kkt(self.tol)(p.f, p.g, run, p.info)

    def update(self, state, p, run):
        z, J, g, res, Delta = p.x, p.f, p.g, p.info["kkt"], float(state["delta"])
        if res <= self.tol:
            return Step(None, state, stop=Stop(f"converged: KKT residual {res:.2e} <= {self.tol:g}", CONVERGED))
        if Delta < 1e-14:
            return Step(None, state, stop=Stop(f"trust region collapsed (radius < 1e-14) at KKT residual {res:.2e}",
                                               STALLED))
        gnorm = float(np.linalg.norm(g))
        rtol = min(0.5, np.sqrt(gnorm)) * gnorm            # forcing term: superlinear convergence
        batch = p.batch
        rows = batch if self.sample is None else self.sample(batch)
        if self.gauss_newton is not None and res > self.gauss_newton_above:
            return self._gauss_newton_step(state, z, J, g, run, batch, rows)
        if res > self.exact_below:
            # far from convergence: Hessian-vector products by central differences of the exact
            # costate gradient (2 sweeps, ~6x cheaper than CasADi's; relative error ~1e-8 only
            # perturbs the inexact Newton step, which the trust region checks with the true J)
            zn = float(np.linalg.norm(z))

            def hvp(v):
                nv = float(np.linalg.norm(v))
                if nv == 0.0:
                    return np.zeros_like(v)
                eps = 1e-5 * (1.0 + zn) / nv
                return (self.grad(z + eps * v, rows) - self.grad(z - eps * v, rows)) / (2 * eps)
            self.n_fd_steps += 1
        else:
            def hvp(v):
                return self.hvp_exact(z, v, rows)           # exact (torch double backward)
        s, nh, why = steihaug_cg(g, hvp, Delta, rtol, self.cg_maxiter)
        Hs = hvp(s)
        self.n_hvp += nh + 1
        self.n_cg += nh
        snorm = float(np.linalg.norm(s))
        pred = -(g @ s + 0.5 * s @ Hs)
        Jn, gn, _ = run.call(z + s, batch)
        ared = J - Jn
        if not np.isfinite(Jn):
            rho = -1.0
        elif abs(ared) <= 1e-14 * max(1.0, abs(J)):
            # decrease at round-off level: judge the step by the gradient instead
            rho = 1.0 if np.linalg.norm(gn) < gnorm else -1.0
        else:
            rho = ared / pred if pred > 0 else -1.0
        if rho < 0.25:
            Delta = 0.25 * min(Delta, snorm)
        elif rho > 0.75 and snorm > 0.99 * Delta:
            Delta *= 2.0
        accepted = bool(rho > 1e-4)
        return Step(z + s if accepted else z, {**state, "delta": np.array(Delta)},
                    {"step": snorm, "cg_iterations": nh, "cg_stop": why, "accepted": accepted})

    def _gauss_newton_step(self, state, z, J, g, run, batch, rows):
        """The Levenberg–Marquardt step on the Gauss–Newton matrix (class docstring)."""
        rtol = self.gn_cg_rtol * float(np.linalg.norm(g))

        if self.preconditioner is not None:
            self.preconditioner.observe(z, rows)

        def trial(lam):
            if self.preconditioner is not None:
                s, Gs, _, nh, why = damped_pcg(g, lambda v: self.gauss_newton(z, v, rows), self.preconditioner, lam,
                                               rtol, self.gn_cg_maxiter)
                self.n_hvp += nh
            else:
                def damped(v):
                    return self.gauss_newton(z, v, rows) + lam * v
                s, nh, why = steihaug_cg(g, damped, np.inf, rtol, self.gn_cg_maxiter)
                Gs = self.gauss_newton(z, s, rows)
                self.n_hvp += nh + 1
            self.n_cg += nh
            self.n_gn_steps += 1
            pred = -(g @ s + 0.5 * s @ Gs)                       # the undamped quadratic model
            if batch is not None and self.cost is not None:
                Jn = self.cost(z + s, batch)   # a mini-batch's trial: its cost only (the next iterate is another batch)
            else:
                Jn, _, _ = run.call(z + s, batch)
            return (s, nh, why), (J - Jn) / pred if np.isfinite(Jn) and pred > 0 else -1.0
        d = GN_DAMPING.search(float(state["damping"]), trial)
        s, nh, why = d.payload
        return Step(z + s if d.accepted else z, {**state, "damping": np.array(d.next)},
                    {"step": float(np.linalg.norm(s)), "cg_iterations": nh, "cg_stop": why, "accepted": d.accepted,
                     "damping": d.lam, "curvature": "gauss-newton"})
