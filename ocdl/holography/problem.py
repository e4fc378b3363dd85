"""The bulk-reconstruction problem: the paper's loss over the free parameters.

    E(θ) = (1/n) Σ_i |t(F_i(θ)) − ȳ_i|  +  c_reg Σ_{k=0}^{N−2} η_k⁴ (h_{k+1} − h_k)²

with ``ȳ_i = 1 − label_i`` (the output layer is 0 on regular, positive data) — the paper's
``L1`` data term and its smoothness regulariser, weighted by ``η⁴`` so that ``h`` may vary
quickly near the horizon (small ``η``) but not near the boundary. Since ``0 < t ≤ 1``,
``|t − ȳ| = t`` for ``ȳ = 0`` and ``1 − t`` for ``ȳ = 1``: the data term is smooth.

``loss="l2"`` replaces the data term by ``(1/n) Σ (t − ȳ)²`` — the sum of squares Gauss–Newton
(``newton``) needs; the regulariser is then the residual block ``√c_reg η_k² (h_{k+1} − h_k)``.

The free parameters ``x`` are the layer values ``h_k`` and, with ``learn_mass`` /
``learn_coupling``, ``m²`` / ``λ``; the rest of ``θ = (h, m², λ)`` is held at its given value.
"""
import math

import numpy as np
import torch

from ocdl.errors import InputError
from ocdl.forces.table import difference_matrix
from ocdl.holography.network import DTYPE, Layers, Network


def _l1(t, target, w):
    s = 1 - 2 * target                     # |t − ȳ| = ȳ + (1 − 2ȳ) t on 0 < t ≤ 1
    return w * (target + s * t), w * s


def _l2(t, target, w):
    d = t - target
    return w * d * d, 2 * w * d


class HolographyProblem:
    """Data ``X = (φ, π)`` at ``η_ini`` with labels (1 = regular at the horizon), optionally
    per-sample ``m2`` / ``lam`` (data at several masses / couplings)."""

    def __init__(self, X, labels, layers=None, method="euler", m2=-1.0, lam=1.0, m2_data=None, lam_data=None,
                 learn_mass=False, learn_coupling=False, c_reg=1.0, eps=0.1, sigma=0.01, loss="l1"):
        self.layers = layers or Layers()
        self.net = Network(self.layers, method, eps, sigma)
        X, labels = np.asarray(X, float), np.asarray(labels, float)
        if X.ndim != 2 or X.shape[1] != 2 or len(X) != len(labels):
            raise InputError("the data must be rows (phi, pi, label)")
        if not np.all(np.isin(labels, (0, 1))):
            raise InputError("labels must be 0 (not regular at the horizon) or 1 (regular)")
        for c, name in ((1, "positive (label 1, regular)"), (0, "negative (label 0)")):
            if not np.any(labels == c):
                raise InputError(f"the data have no {name} samples: both classes are needed")
        if learn_mass and m2_data is not None:
            raise InputError("--learn-mass needs data at one mass: this data set has an m2 column")
        if learn_coupling and lam_data is not None:
            raise InputError("--learn-coupling needs data at one coupling: this data set has a lam column")
        if loss not in ("l1", "l2"):
            raise InputError(f"unknown loss '{loss}' (valid: l1, l2)")
        self.X, self.labels, self.n = X, labels, len(X)
        self.target = torch.as_tensor(1 - labels, dtype=DTYPE)
        self.m2_data = None if m2_data is None else torch.as_tensor(np.asarray(m2_data, float), dtype=DTYPE)
        self.lam_data = None if lam_data is None else torch.as_tensor(np.asarray(lam_data, float), dtype=DTYPE)
        self.m2, self.lam = float(m2), float(lam)
        self.learn_mass, self.learn_coupling = bool(learn_mass), bool(learn_coupling)
        self.loss = loss
        N = self.layers.N
        self.free = list(range(N)) + ([N] if learn_mass else []) + ([N + 1] if learn_coupling else [])
        self.set_c_reg(c_reg)

    def set_c_reg(self, c_reg):
        """Set the regulariser weight (and its residual rows ``√c_reg η_k² (h_{k+1} − h_k)``)."""
        self.c_reg = float(c_reg)
        w = self.layers.eta[:-1] ** 4
        self.reg_w = torch.as_tensor(w, dtype=DTYPE)
        self.reg_rows = math.sqrt(self.c_reg) * np.sqrt(w)[:, None] * difference_matrix(self.layers.N)

    # ------------------------------------------------------------------ parameters
    def theta(self, x):
        """The full ``θ = (h, m², λ)`` from the free parameters ``x``."""
        x = torch.as_tensor(np.asarray(x, float), dtype=DTYPE) if not torch.is_tensor(x) else x
        N = self.layers.N
        fixed = torch.tensor([self.m2, self.lam], dtype=DTYPE)
        th = torch.cat([x[:N], fixed])
        if self.learn_mass or self.learn_coupling:
            parts, k = [x[:N]], N
            for flag, j in ((self.learn_mass, 0), (self.learn_coupling, 1)):
                if flag:
                    parts.append(x[k:k + 1])
                    k += 1
                else:
                    parts.append(fixed[j:j + 1])
            th = torch.cat(parts)
        return th

    def x0(self, h0):
        h0 = np.broadcast_to(np.asarray(h0, float), (self.layers.N,))
        extra = ([self.m2] if self.learn_mass else []) + ([self.lam] if self.learn_coupling else [])
        return np.concatenate([h0, extra])

    # ------------------------------------------------------------------ cost
    def regulariser(self, h):
        d = h[1:] - h[:-1]
        return self.c_reg * (self.reg_w * d * d).sum()

    def regulariser_grad(self, h):
        g = torch.zeros_like(h)
        d = 2 * self.c_reg * self.reg_w * (h[1:] - h[:-1])
        g[1:] += d
        g[:-1] -= d
        return g

    def _dloss(self, t):
        return (_l1 if self.loss == "l1" else _l2)(t, self.target, 1.0 / self.n)

    def loss_torch(self, x):
        """``(E, data part)`` through the network by autograd (the ``adam`` baseline)."""
        th = self.theta(x)
        F = self.net.horizon_value(th, self.X, self.m2_data, self.lam_data)
        t, _ = self.net.output.indicator(F)
        data = self._dloss(t)[0].sum()
        return data + self.regulariser(th[:self.layers.N]), data

    def loss_costate(self, x):
        """``(E, data part, ∂E/∂x)``; the data gradient from the backward costate sweep."""
        th = self.theta(x).detach()
        data, g = self.net.loss_and_gradient(th, self.X, self._dloss, self.m2_data, self.lam_data)
        N = self.layers.N
        g = g.clone()
        g[:N] += self.regulariser_grad(th[:N])
        return data + self.regulariser(th[:N]), data, g[self.free]

    # ------------------------------------------------------------------ least squares (Gauss–Newton)
    def residual_jacobian(self, x, sigma=None):
        """Stacked residual ``(√(1/n)(t − ȳ), √c_reg η_k² Δh_k)`` and its Jacobian in ``x``."""
        th = self.theta(x).detach()
        r, J = self.net.residual_jacobian(th, self.X, self.target, 1 / math.sqrt(self.n), self.m2_data,
                                          self.lam_data, sigma)
        J = J[:, self.free].numpy()
        R = np.zeros((self.reg_rows.shape[0], len(self.free)))
        R[:, :self.layers.N] = self.reg_rows
        xh = np.asarray(x, float)[:self.layers.N]
        return np.concatenate([r.numpy(), self.reg_rows @ xh]), np.vstack([J, R])

    # ------------------------------------------------------------------ evaluation
    def accuracy(self, x, X=None, labels=None, m2_data=None, lam_data=None):
        if X is None:
            X, labels, m2_data, lam_data = self.X, self.labels, self.m2_data, self.lam_data
        pred = self.net.classify(self.theta(x), X, m2_data, lam_data)
        return float(np.mean(pred == np.asarray(labels)))

