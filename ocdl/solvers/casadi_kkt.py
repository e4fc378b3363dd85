"""CasADi construction of the discrete cost and of its Pontryagin (KKT) system.

The discrete problem (the cost of :mod:`ocdl.models.resnet`) for ``N`` layers, ``h = T/N``, an explicit Runge–Kutta
step ``x_{k+1} = S_h(x_k, θ_k)`` (``euler``: ``S_h(x, θ) = x + h f(x, θ)``) and the head
``(W, μ)`` is

    J(θ, W, μ) = (1/n) Σ_i Φ(W x_i(N) + μ, c_i) + h Σ_k (α/2)(‖K_k‖² + |b_k|²)
                 + (β/2) Σ_k (‖K_{k+1} − K_k‖² + |b_{k+1} − b_k|²)/h + (α_head/2)‖W‖².

Its Lagrangian ``L = J + Σ_{k,i} p_{k+1,i}ᵀ (S_h(x_{k,i}, θ_k) − x_{k+1,i})`` gives the discrete
Pontryagin system ``F(z) = 0`` (z = states, costates, θ, head):

    state        x_{k+1,i} − S_h(x_{k,i}, θ_k) = 0,            x_{0,i} = lift(input_i)
    costate      p_{k,i} − (∂S_h/∂x)ᵀ p_{k+1,i} = 0,           p_{N,i} = (1/n) ∇_x Φ_i
    stationarity (1/h) ∂L/∂θ_k = (1/h) [Σ_i (∂S_h/∂θ_k)ᵀ p_{k+1,i} + ∂R/∂θ_k] = 0
    head         ∂J/∂W = 0,  ∂J/∂μ = 0.

Everything is built per sample in SX (small graphs) and then mapped over the samples with
``Function.map(n, 'thread', ...)`` whose *reduce* form sums the per-sample loss, gradient and
Hessian contributions; no expression ever grows with ``n``, so building costs milliseconds
to a second and does not depend on the data size.

The flat parameter vector used here is ``[K (N·m·m, C order), b (N·m), W (C'·d), μ (C')]``.
"""
from dataclasses import dataclass

import casadi as ca
import numpy as np

from ocdl.errors import SolverError
from ocdl.models.fields import get_field
from ocdl.solvers.shooting_blocks import segment_bounds


@dataclass(frozen=True)
class Spec:
    """Everything the symbolic construction needs from a model."""
    field: str
    integrator: str
    N: int
    T: float
    d: int
    m: int
    C: int          # number of logits C' (1 for two classes)
    alpha: float
    beta: float
    alpha_head: float
    activation: str = "tanh"

    @property
    def h(self):
        return self.T / self.N

    @property
    def F(self):
        """The field object (with its activation) whose ``casadi`` form builds ``f``."""
        return get_field(self.field, self.activation)

    @property
    def n_theta(self):
        return self.N * (self.m * self.m + self.m)

    @property
    def n_params(self):
        return self.n_theta + self.C * self.d + self.C


def _get(model, *names, default=None):
    for name in names:
        if hasattr(model, name):
            return getattr(model, name)
    return default


def spec_from_model(model):
    """Read a :class:`ocdl.models.ResNetODE` (duck-typed) into a :class:`Spec`."""
    field = _get(model, "field")
    d = int(_get(model, "width", "d"))
    m = get_field(field).param_width(d)
    n_classes = int(_get(model, "n_classes", default=2))
    alpha = float(_get(model, "alpha", default=0.0))
    alpha_head = _get(model, "alpha_head", default=None)
    alpha_head = alpha if alpha_head is None else float(alpha_head)
    return Spec(field=field, integrator=_get(model, "integrator", default="euler"),
                N=int(_get(model, "layers", "N")), T=float(_get(model, "T")), d=d, m=m,
                C=1 if n_classes == 2 else n_classes, alpha=alpha,
                beta=float(_get(model, "beta", default=0.0)), alpha_head=alpha_head,
                activation=_get(model, "activation", default="tanh"))


# ---------------------------------------------------------------- flat <-> dict

def pack(spec, params):
    """Params dict -> flat vector ``[K, b, W, μ]``."""
    return np.concatenate([np.asarray(params[k], dtype=float).ravel() for k in ("K", "b", "W", "mu")])


def unpack(spec, z):
    """Flat vector -> params dict (fresh float64 arrays)."""
    z = np.asarray(z, dtype=float).ravel()
    N, m, d, C = spec.N, spec.m, spec.d, spec.C
    i = 0
    out = {}
    for key, shape in (("K", (N, m, m)), ("b", (N, m)), ("W", (C, d)), ("mu", (C,))):
        size = int(np.prod(shape))
        out[key] = z[i:i + size].reshape(shape).copy()
        i += size
    return out


def _split_sym(spec, z):
    """Symbolic flat vector -> (list of K_k, list of b_k, W, μ) (CasADi row-major reshape)."""
    N, m, d, C = spec.N, spec.m, spec.d, spec.C
    Ks, bs = [], []
    off = 0
    for _ in range(N):
        # C-order (row-major) K_k: entries K[r, c] at off + r*m + c -> transpose of column-major
        Ks.append(ca.reshape(z[off:off + m * m], m, m).T)
        off += m * m
    for _ in range(N):
        bs.append(z[off:off + m])
        off += m
    W = ca.reshape(z[off:off + C * d], d, C).T
    off += C * d
    mu = z[off:off + C]
    return Ks, bs, W, mu


# ---------------------------------------------------------------- symbolic pieces

def field_sym(spec, x, K, b):
    """``f(x, θ)`` for one sample (a column), symbolic: the field object's ``casadi`` form
    (:mod:`ocdl.models.fields`, activation from :mod:`ocdl.models.activations`)."""
    return spec.F.casadi(x, K, b)


def step_sym(spec, x, K, b):
    """One explicit Runge–Kutta layer ``x + h Σ_i b_i k_i`` with the integrator's tableau."""
    from integrators.tableaux import EXPLICIT
    if spec.integrator not in EXPLICIT:
        raise SolverError(f"the CasADi solvers need an explicit integrator ({', '.join(sorted(EXPLICIT))}); "
                          f"got '{spec.integrator}'")
    A, bw, _ = EXPLICIT[spec.integrator]
    h = spec.h
    ks = []
    for i in range(len(bw)):
        xi = x
        for j in range(i):
            if A[i, j] != 0.0:
                xi = xi + h * float(A[i, j]) * ks[j]
        ks.append(field_sym(spec, xi, K, b))
    out = x
    for i, w in enumerate(bw):
        if w != 0.0:
            out = out + h * float(w) * ks[i]
    return out


def loss_sym(spec, s, lab):
    """Φ(s, c): logistic on one logit (lab = 2c−1) or softmax cross-entropy (lab = one-hot)."""
    if spec.C == 1:
        z = -lab[0] * s[0]
        return ca.fmax(z, 0) + ca.log1p(ca.exp(-ca.fabs(z)))
    mx = ca.mmax(s)
    return mx + ca.log(ca.sum1(ca.exp(s - mx))) - ca.dot(lab, s)


def regulariser_sym(spec, z):
    Ks, bs, W, mu = _split_sym(spec, z)
    h = spec.h
    R = 0
    for K, b in zip(Ks, bs):
        R += h * spec.alpha / 2 * (ca.sumsqr(K) + ca.sumsqr(b))
    if spec.beta:
        for k in range(spec.N - 1):
            R += spec.beta / 2 * (ca.sumsqr(Ks[k + 1] - Ks[k]) + ca.sumsqr(bs[k + 1] - bs[k])) / h
    R += spec.alpha_head / 2 * ca.sumsqr(W)
    return R


def labels_matrix(spec, y):
    """Labels -> (lab_dim, n) matrix: 2c−1 (two classes) or one-hot columns."""
    y = np.asarray(y).astype(int).ravel()
    if spec.C == 1:
        return (2.0 * y - 1.0)[None, :]
    out = np.zeros((spec.C, y.size))
    out[y, np.arange(y.size)] = 1.0
    return out


class ReducedProblem:
    """``J(θ, W, μ)`` with exact gradient and Hessian, built per sample and mapped over samples.

    ``evaluate(z, hessian=True)`` returns ``(J, g, H)`` for the flat vector ``z``.
    """

    def __init__(self, spec, X0, y, hessian=True, threads=1):
        self.spec = spec
        X0 = np.asarray(X0, dtype=float)
        self.n = X0.shape[0]
        self.X0 = X0.T.copy()                       # (d, n): CasADi maps over columns
        self.lab = labels_matrix(spec, y)
        nz = spec.n_params
        z = ca.SX.sym("z", nz)
        x0 = ca.SX.sym("x0", spec.d)
        lab = ca.SX.sym("lab", self.lab.shape[0])
        Ks, bs, W, mu = _split_sym(spec, z)
        x = x0
        for k in range(spec.N):
            x = step_sym(spec, x, Ks[k], bs[k])
        Li = loss_sym(spec, ca.mtimes(W, x) + mu, lab)
        outs = [Li, ca.gradient(Li, z)]
        if hessian:
            Hi, _ = ca.hessian(Li, z)
            outs.append(Hi)
        f = ca.Function("sample", [x0, lab, z], outs)
        red_out = list(range(len(outs)))
        self._map = f.map("samples", "thread" if threads > 1 else "serial", self.n, [2], red_out,
                          {"max_num_threads": threads} if threads > 1 else {})
        R = regulariser_sym(spec, z)
        ro = [R, ca.gradient(R, z)]
        if hessian:
            ro.append(ca.hessian(R, z)[0])
        self._reg = ca.Function("reg", [z], ro)
        self.hessian = hessian

    def evaluate(self, z, hessian=None):
        out = self._map(self.X0, self.lab, z)
        reg = self._reg(z)
        n = self.n
        J = float(out[0]) / n + float(reg[0])
        g = np.asarray(out[1]).ravel() / n + np.asarray(reg[1]).ravel()
        if not self.hessian or hessian is False:
            return J, g
        H = np.asarray(ca.DM(out[2])) / n + np.asarray(ca.DM(reg[2]))
        return J, g, H

    def stationarity_residual(self, g):
        """‖F(z)‖∞ when states/costates come from exact sweeps: ``max(|∂J/∂θ|/h, |∂J/∂(W, μ)|)``."""
        nt = self.spec.n_theta
        return max(np.max(np.abs(g[:nt])) / self.spec.h, np.max(np.abs(g[nt:])))


class GradientOnly(ReducedProblem):
    """``J`` and ``∇J`` and exact Hessian-vector products ``∇²J v`` (no dense Hessian).

    ``hvp(z, v)``: the per-sample forward-over-reverse product ``jtimes(∇L_i, z, v)`` in SX
    (about 3–4 gradient costs), mapped over the samples and summed.
    """

    def __init__(self, spec, X0, y, threads=1):
        super().__init__(spec, X0, y, hessian=False, threads=threads)
        z = ca.SX.sym("z", spec.n_params)
        v = ca.SX.sym("v", spec.n_params)
        x0 = ca.SX.sym("x0", spec.d)
        lab = ca.SX.sym("lab", self.lab.shape[0])
        Ks, bs, W, mu = _split_sym(spec, z)
        x = x0
        for k in range(spec.N):
            x = step_sym(spec, x, Ks[k], bs[k])
        Li = loss_sym(spec, ca.mtimes(W, x) + mu, lab)
        hv = ca.jtimes(ca.gradient(Li, z), z, v)
        f = ca.Function("hv", [x0, lab, z, v], [hv])
        self._hv = f.map("hv_samples", "thread" if threads > 1 else "serial", self.n, [2, 3], [0],
                         {"max_num_threads": threads} if threads > 1 else {})
        R = regulariser_sym(spec, z)
        self._reg_hv = ca.Function("reg_hv", [z, v], [ca.jtimes(ca.gradient(R, z), z, v)])

    def hvp(self, z, v):
        return (np.asarray(self._hv(self.X0, self.lab, z, v)).ravel() / self.n
                + np.asarray(self._reg_hv(z, v)).ravel())


# ---------------------------------------------------------------- full-space system

def _sample_functions(spec):
    """Per-sample SX functions: one layer ``S_h(x, θ_k)`` and the terminal loss ``Φ``."""
    m, d = spec.m, spec.d
    x = ca.SX.sym("x", d)
    Kf = ca.SX.sym("K", m * m)
    b = ca.SX.sym("b", m)
    K = ca.reshape(Kf, m, m).T                      # row-major flat, as in pack()
    xn = step_sym(spec, x, K, b)
    step = ca.Function("step", [x, Kf, b], [xn])
    W = ca.SX.sym("W", spec.C * d)
    mu = ca.SX.sym("mu", spec.C)
    lab = ca.SX.sym("lab", 1 if spec.C == 1 else spec.C)
    L = loss_sym(spec, ca.mtimes(ca.reshape(W, d, spec.C).T, x) + mu, lab)
    loss = ca.Function("loss", [x, W, mu, lab], [L])
    return step, loss


def _theta_blocks(spec, z):
    """Flat (symbolic or numeric) vector -> lists of per-layer flat K_k, b_k and W, μ (flat)."""
    N, m, d, C = spec.N, spec.m, spec.d, spec.C
    Ks = [z[k * m * m:(k + 1) * m * m] for k in range(N)]
    off = N * m * m
    bs = [z[off + k * m:off + (k + 1) * m] for k in range(N)]
    off += N * m
    return Ks, bs, z[off:off + C * d], z[off + C * d:off + C * d + C]


class MultipleShootingNLP:
    """``min J  s.t.  g_k = S_h(x_k, θ_k) − x_{k+1} = 0`` (k = 0..N−1), states as unknowns.

    With CasADi's Lagrangian ``f + λᵀ g`` the multiplier of ``g_k`` satisfies
    ``λ_N = ∂J/∂x_N = (1/n)∇Φ`` and ``λ_k = (∂S_h/∂x_k)ᵀ λ_{k+1}``: it *is* the costate
    ``p_{k+1}`` of :mod:`ocdl.pmp.costate` (sign included).  Unknowns ``w = [θ, W, μ, x_1, ..., x_N]``
    (each ``x_k`` a ``d × n`` block, column per sample).
    """

    def __init__(self, spec, X0, y):
        self.spec = spec
        X0 = np.asarray(X0, dtype=float)
        n, d, N = X0.shape[0], spec.d, spec.N
        self.n = n
        self.X0 = X0.T.copy()
        lab = labels_matrix(spec, y)
        step, loss = _sample_functions(spec)
        step_n = step.map(n, "serial")              # x (d×n), K, b (broadcast) -> d×n
        loss_n = loss.map("loss_n", "serial", n, [1, 2], [0])
        z = ca.MX.sym("z", spec.n_params)
        xs = [ca.MX.sym(f"x{k + 1}", d, n) for k in range(N)]
        Ks, bs, Wf, mu = _theta_blocks(spec, z)
        prev = ca.DM(self.X0)
        g = []
        for k in range(N):
            g.append(ca.vec(step_n(prev, Ks[k], bs[k]) - xs[k]))
            prev = xs[k]
        f = loss_n(xs[-1], Wf, mu, ca.DM(lab)) / n + regulariser_sym(spec, z)
        self.w = ca.vertcat(z, *[ca.vec(x) for x in xs])
        self.nlp = {"x": self.w, "f": f, "g": ca.vertcat(*g)}
        self.n_state = N * d * n

    def initial_guess(self, z0, states):
        """``w0`` from flat params and states ``(N+1, n, d)``."""
        states = np.asarray(states)
        return np.concatenate([z0] + [states[k].T.ravel(order="F") for k in range(1, self.spec.N + 1)])

    def costates(self, lam_g):
        """Multipliers -> costates ``p_1..p_N`` as an array ``(N, n, d)``."""
        lam = np.asarray(lam_g).ravel()
        d, n = self.spec.d, self.n
        return np.stack([lam[k * d * n:(k + 1) * d * n].reshape((d, n), order="F").T
                         for k in range(self.spec.N)])

    def params(self, w):
        return unpack(self.spec, np.asarray(w).ravel()[:self.spec.n_params])


def full_space_residual(model, params, X, y, costates=None):
    """‖F(z)‖∞ of the *full-space* discrete PMP system at ``z = (x, p, θ, W, μ)``, evaluated in CasADi.

    States come from the forward sweep and costates ``p_1..p_N`` from :func:`ocdl.pmp.costate`
    (or are given). With the multiple-shooting Lagrangian ``L = J + Σ_k p_{k+1}ᵀ g_k``,
    ``g_k = S_h(x_k, θ_k) − x_{k+1}``, the blocks of ``F`` are

        state        g_k                        (k = 0..N−1)
        costate      ∂L/∂x_k = (∂S_h/∂x_k)ᵀ p_{k+1} − p_k        (k = 1..N−1)
        boundary     ∂L/∂x_N = (1/n)∇_x Φ − p_N
        stationarity ∂L/∂θ_k / h,   head  ∂L/∂(W, μ)

    Returns a dict of the block maxima and ``"max"``. This is an independent check of the
    reduced-space claim ``‖F(z)‖∞ = kkt_residual``: nothing here uses the costate sweep's algebra.
    """
    import casadi as ca
    from ocdl import pmp
    spec = spec_from_model(model)
    X = np.asarray(X, dtype=float)
    X0 = np.asarray(model.lift(X), dtype=float)
    nlp = MultipleShootingNLP(spec, X0, y)
    states = np.asarray(model.forward(params, X))
    if costates is None:
        costates = pmp.costate(model, params, X, y)[1]
    lam = ca.MX.sym("lam", nlp.nlp["g"].numel())
    Lag = nlp.nlp["f"] + ca.dot(lam, nlp.nlp["g"])
    Ffun = ca.Function("F", [nlp.w, lam], [nlp.nlp["g"], ca.gradient(Lag, nlp.w)])
    w = nlp.initial_guess(pack(spec, params), states)
    lam_v = np.concatenate([np.asarray(costates[k + 1]).T.ravel(order="F") for k in range(spec.N)])
    g, gradL = (np.asarray(v).ravel() for v in Ffun(w, lam_v))
    nt, npar = spec.n_theta, spec.n_params
    gx = gradL[npar:]
    dn = spec.d * nlp.n
    out = {"state": float(np.abs(g).max()),
           "costate": float(np.abs(gx[:-dn]).max()) if spec.N > 1 else 0.0,
           "boundary": float(np.abs(gx[-dn:]).max()),
           "stationarity": float(np.abs(gradL[:nt]).max() / spec.h),
           "head": float(np.abs(gradL[nt:npar]).max())}
    out["max"] = max(out.values())
    return out


def shooting_dense(model, X0, y, segments):
    """The shooting residual of :mod:`ocdl.solvers.shooting` built symbolically in CasADi, with its
    dense Jacobian — the slow independent reference of the structured Jacobian
    (:class:`ocdl.solvers.shooting_blocks.ShootingSystem`), for tests on small problems.

    Returns ``(spec, F, Jf, bounds, size)``: ``F(u, θ_guess) → (r, θ)`` and ``Jf(u, θ_guess) → ∂r/∂u``
    with θ (m² + m, N) solved per layer by CasADi's ``rootfinder`` from ``θ_guess`` (derivative by
    the implicit-function theorem). The activation is the model's (its ``casadi`` form, σ' by AD)."""
    from ocdl.models.activations import get_activation
    act = get_activation(model.activation)
    spec = spec_from_model(model)
    X0 = np.asarray(X0, dtype=float)
    n, d, m, N, h, alpha = X0.shape[0], spec.d, spec.m, spec.N, spec.h, spec.alpha
    C = spec.C
    # ---- per-sample costate update q_{k+1} = (I + h D Kᵀ)^{-1} q_k  (SX)
    th = ca.SX.sym("th", m * m + m)
    xi = ca.SX.sym("x", d)
    qi = ca.SX.sym("q", d)
    K = ca.reshape(th[:m * m], m, m).T
    D = ca.jacobian(act.casadi(xi), xi)                  # diag σ'(x)
    qn = ca.solve(ca.SX.eye(d) + h * ca.mtimes(D, K.T), qi)
    qnext = ca.Function("qnext", [th, xi, qi], [qn]).map(n, "serial")
    sigma = ca.Function("sigma", [xi], [act.casadi(xi)]).map(n, "serial")
    # ---- implicit layer equation R(θ; x, q) = θ − Stat(x, q_{k+1}(θ)) (MX)
    thm = ca.MX.sym("th", m * m + m)
    xm = ca.MX.sym("X", d, n)
    qm = ca.MX.sym("Q", d, n)
    Qn = qnext(thm, xm, qm)
    S = sigma(xm)
    R = thm - ca.vertcat(ca.vec((-ca.mtimes(Qn, S.T) / (n * alpha)).T), -ca.sum2(Qn) / (n * alpha))
    root = ca.rootfinder("layer", "newton", ca.Function("R", [thm, xm, qm], [R]),
                         {"abstol": 1e-14, "max_iter": 60, "error_on_fail": False})
    guess = ca.MX.sym("guess", m * m + m)
    thk = root(guess, xm, qm)
    Kk = ca.reshape(thk[:m * m], m, m).T
    layer = ca.Function("layer", [xm, qm, guess],
                        [xm + h * (ca.mtimes(Kk, S) + ca.repmat(thk[m * m:], 1, n)), qnext(thk, xm, qm), thk])
    # ---- terminal: ∇_x Φ per sample (scaled q) and head stationarity
    xs = ca.SX.sym("x", d)
    Wf = ca.SX.sym("W", C * d)
    mus = ca.SX.sym("mu", C)
    labs = ca.SX.sym("lab", 1 if C == 1 else C)
    Li = loss_sym(spec, ca.mtimes(ca.reshape(Wf, d, C).T, xs) + mus, labs)
    term = ca.Function("term", [xs, Wf, mus, labs], [ca.gradient(Li, xs), ca.gradient(Li, ca.vertcat(Wf, mus))])
    term_q = term.map("term_q", "serial", n, [1, 2], [1])
    bounds = segment_bounds(N, segments)
    q0 = ca.MX.sym("q0", d, n)
    inner = [(ca.MX.sym(f"xs{j}", d, n), ca.MX.sym(f"qs{j}", d, n)) for j in range(1, segments)]
    Wm = ca.MX.sym("W", C * d)
    mum = ca.MX.sym("mu", C)
    u = ca.vertcat(ca.vec(q0), *[ca.vertcat(ca.vec(a), ca.vec(b)) for a, b in inner], Wm, mum)
    starts = [(ca.DM(X0.T), q0)] + inner
    res, thetas = [], []
    Th = ca.MX.sym("theta_guess", m * m + m, N)
    for j in range(segments):
        x, q = starts[j]
        for k in range(bounds[j], bounds[j + 1]):
            x, q, t = layer(x, q, Th[:, k])
            thetas.append(t)
        if j < segments - 1:
            res += [ca.vec(x - inner[j][0]), ca.vec(q - inner[j][1])]
    gx, gh = term_q(x, Wm, mum, ca.DM(labels_matrix(spec, y)))
    res += [ca.vec(q - gx), gh / n + ca.vertcat(spec.alpha_head * Wm, ca.DM.zeros(C))]
    r = ca.vertcat(*res)
    F = ca.Function("shoot", [u, Th], [r, ca.horzcat(*thetas)])
    Jf = ca.Function("shoot_jac", [u, Th], [ca.jacobian(r, u)])
    return spec, F, Jf, bounds, u.numel()
