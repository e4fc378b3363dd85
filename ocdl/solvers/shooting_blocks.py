"""The shooting system of :mod:`ocdl.solvers.shooting` in per-sample blocks, and its structured solves.

Notation (``outer`` field ``f = K σ(x) + b``, explicit Euler, ``r = α/2|θ|²``, scaled costates
``q = n p``): one layer ``k`` with ``θ_k = (K_k, b_k)`` maps every sample ``i`` by

    x_{k+1,i} = x_{k,i} + h (K σ(x_{k,i}) + b),
    q_{k+1,i} = M_{k,i}⁻¹ q_{k,i},   M_{k,i} = I + h D_{k,i} Kᵀ,   D_{k,i} = diag σ'(x_{k,i})

(the discrete costate equation ``q_k = q_{k+1} + h σ'(x_k) ⊙ (Kᵀ q_{k+1})`` solved for ``q_{k+1}``),
and the layer's stationarity (``∂J/∂θ_k = h α s_k``) is

    s_k(θ_k) = θ_k − Stat_k,   Stat_k = −(1/(n α)) (Σ_i q_{k+1,i} σ(x_{k,i})ᵀ, Σ_i q_{k+1,i}).

:func:`layer_solve` solves ``s_k = 0`` for ``K_k`` by Newton (``b_k`` is then explicit, it does
not enter ``q_{k+1}``); the shooting residual ``r(u)`` eliminates θ this way.

**Structure.** With θ = (θ_1..θ_N) and the head (W, μ) as extra unknowns, the system is bordered
block-diagonal: the per-sample unknowns ``z_i`` (``q_{0,i}``, and with M segments the segment
starts ``(x, q)``) enter only sample ``i``'s residuals ``e_i`` (matching conditions and the
terminal condition ``q_{N,i} − ∇_xΦ_i``) and the global residuals (s_k, head stationarity);
the global unknowns g = (θ, W, μ) enter everything. Its Jacobian

    [[A, E], [F, D]],   A = blockdiag(A_1..A_n) (b×b blocks, b = d (2M − 1)),

is built by :func:`jacobian_blocks` from forward tangent sweeps (per-sample columns without a
sum over samples; θ columns started at their layer, summed in ``s_k``) — no ``nd × nd`` matrix.
The Jacobian of the eliminated residual ``r(z, W, μ)`` (θ from ``s = 0``) is its Schur
complement with respect to θ (implicit-function theorem), i.e. block-diagonal plus a coupling of
rank ≤ N(m² + m) through θ; :func:`bordered_solve` solves with the bordered form (Woodbury /
block elimination): ``y_i = A_i⁻¹(r_i − E_i g)``, ``(D − Σ_i F_i A_i⁻¹ E_i) g = r_g − Σ_i F_i A_i⁻¹ r_i``
— n small solves, one GEMM of size G × n b × G and one dense G × G solve, G = N(m² + m) + C'(d + 1).

σ'' (needed for the derivative of ``D_{k,i}``) comes from the activation object
(``Activation.derivatives``), so every activation of :mod:`ocdl.models.activations` is supported
without a per-activation formula here.
"""
import numpy as np

from ocdl.errors import SolverError


def segment_bounds(N, segments):
    """The first layer of each of ``segments`` shooting segments over ``N`` layers, and ``N``:
    ``[round(j N / M) for j = 0..M]`` (multiple shooting's segment starts, as even as rounding allows)."""
    return [round(j * N / segments) for j in range(int(segments) + 1)]


def head_terms(W, mu, xN, labels, C):
    """Per-sample logits' loss gradient ``g_i = ∇_sΦ_i`` (n, C') and Hessian ``H_i`` (n, C', C') for
    ``s_i = W x_i + μ``: logistic on one logit (labels ``l = 2c − 1``: ``g = −l λ(−l s)``,
    ``H = λ(s)λ(−s)``, λ the logistic function) or softmax cross-entropy (``g = p − e_c``,
    ``H = diag p − p pᵀ``)."""
    s = xN @ W.T + mu
    if C == 1:
        ls = labels * s[:, 0]
        lam = 0.5 * (1.0 + np.tanh(-0.5 * ls))              # λ(−l s) = 1/(1 + e^{l s})
        g = (-labels * lam)[:, None]
        H = (lam * (1.0 - lam))[:, None, None]
        return g, H
    smax = s.max(axis=1, keepdims=True)
    e = np.exp(s - smax)
    p = e / e.sum(axis=1, keepdims=True)
    g = p.copy()
    g[np.arange(len(labels)), labels] -= 1.0
    H = p[:, :, None] * np.eye(C)[None] - p[:, :, None] * p[:, None, :]
    return g, H


def layer_solve(act_vals, q, h, n_alpha, K0, tol=1e-15, maxiter=50):
    """Solve the layer's stationarity ``K = −(1/(nα)) Σ_i q_{k+1,i}(K) σ_iᵀ`` for ``K`` by Newton
    from ``K0``; returns ``(K, b, q_{k+1}, M, converged)``. ``act_vals = (σ, σ')`` at ``x_k`` (n, d);
    ``q = q_k`` (n, d); ``n_alpha = n α``. The Newton matrix is ``I − ∂Stat_K/∂K`` with
    ``∂q_{k+1,i}/∂K[a, c] = −h G_i[:, c] q_{k+1,i}[a]``, ``G_i = M_i⁻¹ D_i``, formed as one
    ``m² × m²`` GEMM over the samples."""
    sig, dsig = act_vals
    n, m = q.shape
    K = np.array(K0, dtype=float, copy=True)
    eye = np.eye(m)
    converged = False
    for _ in range(maxiter):
        M = eye[None] + h * dsig[:, :, None] * K.T[None]
        qn = np.linalg.solve(M, q[:, :, None])[:, :, 0]
        R = K + (qn.T @ sig) / n_alpha
        G = np.linalg.solve(M, dsig[:, :, None] * eye[None])          # M⁻¹ D  (n, m, m)
        # T[(c, e), (a, b)] = ∂(Σ_i q⁺_i σ_iᵀ)[c, e]/∂K[a, b] = −h Σ_i G_i[c, b] q⁺_i[a] σ_i[e]
        Gcb = G.reshape(n, m * m)                                      # [i, (c, b)]
        qs = (qn[:, :, None] * sig[:, None, :]).reshape(n, m * m)      # [i, (a, e)]
        T = (Gcb.T @ qs).reshape(m, m, m, m).transpose(0, 3, 2, 1)     # [c, e, a, b]
        Jac = np.eye(m * m) - (h / n_alpha) * T.reshape(m * m, m * m)
        dK = np.linalg.solve(Jac, -R.ravel()).reshape(m, m)
        K += dK
        if not np.all(np.isfinite(K)):
            break
        if np.max(np.abs(dK)) <= tol * (1.0 + np.max(np.abs(K))):
            converged = True
            break
    M = eye[None] + h * dsig[:, :, None] * K.T[None]
    qn = np.linalg.solve(M, q[:, :, None])[:, :, 0]
    b = -qn.sum(axis=0) / n_alpha
    return K, b, qn, M, converged


class ShootingSystem:
    """The shooting residual and its structured Jacobian for one model and data set.

    Unknowns ``u`` (flat, the layout of the dense CasADi reference
    :func:`ocdl.solvers.casadi_kkt.shooting_dense`): ``q_0`` (n × d, sample-major), then for each
    interior segment start ``x`` and ``q`` (n × d each), then ``W`` (C' × d, row-major) and ``μ``.
    Residual: the matching conditions of each interior start (x then q), ``q_N − ∇_xΦ``, and the
    head stationarity ``(1/n) Σ_i g_i x_{N,i}ᵀ + α_head W``, ``(1/n) Σ_i g_i``.
    """

    def __init__(self, model, X0, y, segments):
        from ocdl.models.activations import get_activation
        if model.field != "outer" or model.integrator != "euler":
            raise SolverError("shooting needs field 'outer' and integrator 'euler'")
        self.act = get_activation(model.activation)
        self.X0 = np.asarray(X0, dtype=float)
        self.n, self.d = self.X0.shape
        self.m, self.N, self.h = model.m, model.layers, model.h
        self.alpha, self.alpha_head = float(model.alpha), float(model.alpha_head)
        self.C = model.n_out
        y = np.asarray(y).astype(int).ravel()
        self.labels = (2.0 * y - 1.0) if self.C == 1 else y
        self.segments = int(segments)
        self.bounds = segment_bounds(self.N, self.segments)
        self.b = self.d * (2 * self.segments - 1)               # per-sample unknowns / residuals
        self.P = self.m * self.m + self.m                       # θ_k
        self.Ph = self.C * self.d + self.C                      # head
        self.G = self.N * self.P + self.Ph
        self.size = self.n * self.b + self.Ph

    # ------------------------------------------------------------------ layouts
    def split(self, u):
        """Flat ``u`` → per-sample unknowns (n, b) and head (W, μ)."""
        n, d, b = self.n, self.d, self.b
        Z = u[:n * b].reshape(b // d, n, d).transpose(1, 0, 2).reshape(n, b)
        W = u[n * b:n * b + self.C * d].reshape(self.C, d)
        return Z, W, u[n * b + self.C * d:]

    def join(self, Z, head):
        """Per-sample blocks (n, b) and a head vector → flat (the layout of ``u`` and of ``r``)."""
        n, d, b = self.n, self.d, self.b
        return np.concatenate([Z.reshape(n, b // d, d).transpose(1, 0, 2).ravel(), np.ravel(head)])

    # ------------------------------------------------------------------ residual
    def evaluate(self, u, theta):
        """The residual at ``u`` with every layer's θ solved from ``theta`` (N, P) as initial
        guess; returns ``(r, theta, trajectory)``, ``trajectory`` the per-layer quantities the
        Jacobian needs (None if not finite)."""
        n, d, m, h = self.n, self.d, self.m, self.h
        Z, W, mu = self.split(np.asarray(u, dtype=float))
        na = n * self.alpha
        theta = np.array(theta, dtype=float, copy=True)
        layers, E = [], np.zeros((n, self.b))
        for j in range(self.segments):
            if j == 0:
                x, q = self.X0, Z[:, :d]
            else:
                x, q = Z[:, d * (2 * j - 1):d * 2 * j], Z[:, d * 2 * j:d * (2 * j + 1)]
            for k in range(self.bounds[j], self.bounds[j + 1]):
                sig, dsig, d2sig = self.act.derivatives(x)[:3]
                K, bk, qn, M, ok = layer_solve((sig, dsig), q, h, na, theta[k, :m * m].reshape(m, m))
                theta[k] = np.concatenate([K.ravel(), bk])
                xn = x + h * (sig @ K.T + bk)
                layers.append(dict(x=x, q=q, qn=qn, K=K, M=M, sig=sig, dsig=dsig, d2sig=d2sig))
                x, q = xn, qn
                if not (np.all(np.isfinite(x)) and np.all(np.isfinite(q))):
                    return np.full(self.size, np.inf), theta, None
            if j < self.segments - 1:
                E[:, 2 * d * j:2 * d * j + d] = x - Z[:, d * (2 * j + 1):d * (2 * j + 2)]
                E[:, 2 * d * j + d:2 * d * (j + 1)] = q - Z[:, d * (2 * j + 2):d * (2 * j + 3)]
        g, H = head_terms(W, mu, x, self.labels, self.C)
        E[:, -d:] = q - g @ W
        head = np.concatenate([(g.T @ x / n + self.alpha_head * W).ravel(), g.sum(axis=0) / n])
        traj = dict(layers=layers, xN=x, qN=q, W=W, mu=mu, g=g, H=H)
        return self.join(E, head), theta, traj

    # ------------------------------------------------------------------ Jacobian blocks
    def jacobian_blocks(self, traj):
        """The bordered Jacobian at an evaluated point (module docstring): ``A`` (n, b, b), ``E``
        (n, b, G), ``F`` (G, n, b), ``D`` (G, G); global order (θ_1..θ_N, W, μ), global rows
        (s_1..s_N, head). Per-sample rows are the residual's own order within a sample."""
        n, d, m, N, h, b, P, G = self.n, self.d, self.m, self.N, self.h, self.b, self.P, self.G
        na = n * self.alpha
        A = np.zeros((n, b, b))
        E = np.zeros((n, b, G))
        F = np.zeros((G, n, b))
        D = np.zeros((G, G))
        layers = traj["layers"]
        eye_b = np.eye(b)
        for j in range(self.segments):
            # per-sample tangents (n, d, b) and θ tangents (n, d, θ columns so far)
            TX = np.zeros((n, d, b))
            TQ = np.zeros((n, d, b))
            if j == 0:
                TQ[:, :, :d] = eye_b[:d, :d]
            else:
                TX[:, :, d * (2 * j - 1):d * 2 * j] = np.eye(d)
                TQ[:, :, d * 2 * j:d * (2 * j + 1)] = np.eye(d)
            k0, k1 = self.bounds[j], self.bounds[j + 1]
            # θ tangents of this segment's layers, filled column block by column block in place
            # (n, d, (k1 − k0) P) each: the largest temporaries of the sweep
            UX = UQ = UXb = UQb = None
            UXb = np.zeros((n, d, (k1 - k0) * P))
            UQb = np.zeros_like(UXb)
            for k in range(k0, k1):
                L = layers[k]
                K, sig, dsig, d2sig, qn, Mk = L["K"], L["sig"], L["dsig"], L["d2sig"], L["qn"], L["M"]
                c0 = (k - k0) * P                       # θ columns of this segment before layer k
                # direct θ_k columns: K[a, c] → dx = h σ[c] e_a, dq⁺ = −h G[:, c] q⁺[a];  b[a] → dx = h e_a
                Gk = np.linalg.solve(Mk, dsig[:, :, None] * np.eye(m)[None])      # M⁻¹ D
                newX = np.zeros((n, d, P))
                newQ = np.zeros((n, d, P))
                idx = np.arange(m)
                # column a*m + c of K: dx[a] = h σ[c]
                for a in range(m):
                    newX[:, a, a * m:(a + 1) * m] = h * sig
                newX[:, idx, m * m + idx] = h
                newQ[:, :, :m * m] = (-h * Gk[:, :, None, :] * qn[:, None, :, None]).reshape(n, d, m * m)
                # propagation of older columns: dx⁺ = dx + h K (σ' ⊙ dx),
                # dq⁺ = M⁻¹(dq − h diag(σ'' ⊙ Kᵀq⁺) dx)
                w = d2sig * (qn @ K)                      # σ'' ⊙ (Kᵀ q⁺)
                TQn = np.linalg.solve(Mk, TQ - h * w[:, :, None] * TX)
                if c0:
                    UX, UQ = UXb[:, :, :c0], UQb[:, :, :c0]
                    tmp = w[:, :, None] * UX
                    tmp *= -h
                    tmp += UQ
                    UQ[...] = np.linalg.solve(Mk, tmp)
                    del tmp
                # stationarity rows s_k = θ_k − Stat_k:
                #   ds_K[c, e] = (1/nα) Σ_i (dq⁺_i[c] σ_i[e] + q⁺_i[c] σ'_i[e] dx_i[e]),  ds_b = (1/nα) Σ_i dq⁺_i
                rows = slice(k * P, (k + 1) * P)
                sz = np.concatenate([
                    (np.einsum("icp,ie->icep", TQn, sig)
                     + np.einsum("ic,ie,iep->icep", qn, dsig, TX)).reshape(n, m * m, b),
                    TQn], axis=1) / na                  # (n, P, b)
                F[rows] = sz.transpose(1, 0, 2)
                UQb[:, :, c0:c0 + P] = newQ
                UQall = UQb[:, :, :c0 + P]
                UXall = UXb[:, :, :c0 + P]                # its θ_k columns are still 0 (x_k is before θ_k)
                sg = np.concatenate([
                    (np.einsum("icp,ie->cep", UQall, sig)
                     + np.einsum("ic,ie,iep->cep", qn, dsig, UXall)).reshape(m * m, -1),
                    UQall.sum(axis=0)], axis=0) / na    # (P, c0 + P)
                cols = slice(k0 * P, (k + 1) * P)
                D[rows, cols] = sg
                D[rows, rows] += np.eye(P)
                # state tangents after the layer
                TX = TX + h * np.einsum("ac,icp->iap", K, dsig[:, :, None] * TX)
                if c0:
                    UX += h * np.einsum("ac,icp->iap", K, dsig[:, :, None] * UX)
                UXb[:, :, c0:c0 + P] = newX
                UX, UQ = UXb[:, :, :c0 + P], UQall
                TQ = TQn
            cols = slice(k0 * P, k1 * P)
            if j < self.segments - 1:
                r0 = 2 * d * j
                A[:, r0:r0 + d, :] = TX
                A[:, r0 + d:r0 + 2 * d, :] = TQ
                A[:, r0:r0 + d, d * (2 * j + 1):d * (2 * j + 2)] -= np.eye(d)
                A[:, r0 + d:r0 + 2 * d, d * (2 * j + 2):d * (2 * j + 3)] -= np.eye(d)
                E[:, r0:r0 + d, cols] = UX
                E[:, r0 + d:r0 + 2 * d, cols] = UQ
        # terminal rows e = q_N − Wᵀ g(s), s = W x_N + μ; head rows
        W, xN, g, H = traj["W"], traj["xN"], traj["g"], traj["H"]
        C = self.C
        HW = H @ W                                             # (n, C, d) = H_i W
        WHW = np.einsum("ca,icd->iad", W, HW)                  # Wᵀ H W
        tz = TQ - WHW @ TX                                     # (n, d, b)
        A[:, -d:, :] += tz
        tg = UQ - WHW @ UX                                     # θ columns of the last segment
        k0 = self.bounds[-2]
        E[:, -d:, k0 * P:N * P] = tg
        # head columns: W[c, a] and μ[c]: ds_i = dW x_N + dμ;  de = −Wᵀ H ds − dWᵀ g
        hc = N * P
        dS = np.zeros((n, C, self.Ph))                         # ds_i per head column
        for c in range(C):
            dS[:, c, c * d:(c + 1) * d] = xN
            dS[:, c, C * d + c] = 1.0
        de_h = -np.einsum("ca,icp->iap", W, H @ dS)            # −Wᵀ H ds
        for c in range(C):
            de_h[:, :, c * d:(c + 1) * d] -= g[:, c, None, None] * np.eye(d)[None]
        E[:, -d:, hc:] = de_h
        # head residual rows: (1/n) Σ (H ds x_Nᵀ + g dx_Nᵀ) + α_head dW;  (1/n) Σ H ds
        def head_rows(ds, dx, summed):
            # rows (C d + C) for columns with logit change ds (n, C, p) and state change dx (n, d, p);
            # summed over the samples without forming the (n, C, d, p) terms (C× the θ tangents)
            Hds = H @ ds
            if summed:
                rW = np.einsum("icp,ia->cap", Hds, xN)
                if dx is not None:
                    rW += np.einsum("ic,iap->cap", g, dx)
                return np.concatenate([rW.reshape(C * d, -1), Hds.sum(axis=0)], axis=0) / n
            rW = np.einsum("icp,ia->icap", Hds, xN)
            if dx is not None:
                rW = rW + np.einsum("ic,iap->icap", g, dx)
            return np.concatenate([rW.reshape(n, C * d, -1), Hds], axis=1) / n
        # per-sample columns: ds = W dx_N
        F[hc:] = head_rows(W[None] @ TX, TX, False).transpose(1, 0, 2)
        D[hc:, k0 * P:N * P] = head_rows(W[None] @ UX, UX, True)
        Dh = head_rows(dS, None, True)
        Dh[:C * d] += self.alpha_head * np.eye(C * d, self.Ph)
        D[hc:, hc:] = Dh
        return A, E, F, D

    # ------------------------------------------------------------------ dense reference form
    def eliminated_jacobian(self, blocks):
        """The Jacobian of the eliminated residual ``r(u)`` (dense, flat layout): the Schur
        complement of the bordered Jacobian with respect to θ. For tests on small problems."""
        A, E, F, D = blocks
        n, b, NP = self.n, self.b, self.N * self.P
        nz = n * b
        J = np.zeros((nz + self.G, nz + self.G))
        for i in range(n):
            J[i * b:(i + 1) * b, i * b:(i + 1) * b] = A[i]
        J[:nz, nz:] = E.reshape(nz, self.G)
        J[nz:, :nz] = F.reshape(self.G, nz)
        J[nz:, nz:] = D
        keep = np.r_[np.arange(nz), nz + NP + np.arange(self.Ph)]
        th = nz + np.arange(NP)
        Jr = J[np.ix_(keep, keep)] - J[np.ix_(keep, th)] @ np.linalg.solve(J[np.ix_(th, th)], J[np.ix_(th, keep)])
        # per-sample (sample-major) → flat layout
        perm = self.join(np.arange(nz).reshape(n, b), nz + np.arange(self.Ph)).astype(int)
        return Jr[np.ix_(perm, perm)]


#: numbers of ``A⁻¹E`` formed at once by :func:`bordered_solve` (32 MB): the Schur complement is
#: accumulated over chunks of samples of at most this size (at least one sample)
SCHUR_CHUNK = 1 << 22


def bordered_solve(A, E, F, D, r1, r2):
    """Solve ``[[blockdiag(A_i), E], [F, D]] [y; g] = [r1; r2]`` (A (n, b, b), E (n, b, G), F (G, n, b),
    D (G, G), r1 (n, b), r2 (G)) by block elimination: ``g`` from the Schur complement
    ``S = D − Σ_i F_i A_i⁻¹ E_i`` (GEMMs over chunks of samples), then ``y_i = A_i⁻¹ (r1_i − E_i g)``.

    Memory (the terms of :func:`ocdl.solvers.memory.estimate`): beyond its arguments, ``S`` (G²),
    updated by GEMMs in place and LU-factorised in place (LAPACK getrf on ``Sᵀ``'s Fortran view, getrs with the
    transpose: no copy), and ``A⁻¹E`` of one chunk of samples (≤ max(:data:`SCHUR_CHUNK`, b G)
    numbers)."""
    from scipy.linalg import blas, lapack
    n, b, G = E.shape
    S = np.array(D, dtype=float, order="C", copy=True)
    rhs = np.array(r2, dtype=float, copy=True)
    step = max(1, SCHUR_CHUNK // max(1, b * G))
    for i0 in range(0, n, step):                      # chunks of samples (vectorised within a chunk)
        i1 = min(n, i0 + step)
        AE = np.linalg.solve(A[i0:i1], E[i0:i1])                             # (c, b, G)
        Ar = np.linalg.solve(A[i0:i1], r1[i0:i1, :, None])[:, :, 0]          # (c, b)
        Fc = F[:, i0:i1].reshape(G, (i1 - i0) * b)
        # S −= Fc A⁻¹E in place: GEMM into Sᵀ's Fortran view (Sᵀ −= (A⁻¹E)ᵀ Fcᵀ), no G × G temporary
        blas.dgemm(-1.0, AE.reshape((i1 - i0) * b, G).T, Fc.T, beta=1.0, c=S.T, overwrite_c=1)
        rhs -= Fc @ Ar.ravel()
        del AE
    lu, piv, info = lapack.dgetrf(S.T, overwrite_a=1)                      # S.T is Fortran-ordered: no copy
    if info > 0:
        raise np.linalg.LinAlgError("Singular matrix")
    g, info = lapack.dgetrs(lu, piv, rhs, trans=1)                         # (Sᵀ)ᵀ g = S g
    y = np.linalg.solve(A, (r1 - np.einsum("ibg,g->ib", E, g))[:, :, None])[:, :, 0]
    return y, g
