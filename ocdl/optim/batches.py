"""Samplers for :func:`ocdl.optim.minimize`: which data a stochastic iteration sees.

``Batches(n, batch_size, seed)`` — shuffled epochs: each epoch is a fresh permutation of
``0..n−1`` cut into ``⌈n / batch_size⌉`` batches (the last one smaller). The mini-batch costate
sweep of batch B gives the exact gradient of ``J_B = (1/|B|) Σ_{i∈B} Φ_i + R(θ)``: stochastic
training is the exact gradient of a random sub-cost (docs/theory.md §9).

With ``batch_size ≥ n`` every draw is one whole epoch and returns ``None`` — the objective's full
data in their own order, so a full-batch run with per-epoch bookkeeping (held-out accuracy,
early stopping) computes exactly the numbers of a run without a sampler.

A sampler has ``draw()`` (the next batch), ``state()`` (JSON-able) and ``load_state(state)``; the
driver checkpoints it, so a resumed run sees the same batches, bit for bit.
"""
import math

import numpy as np


class Batches:
    def __init__(self, n, batch_size, seed=0):
        self.n, self.size = int(n), int(min(batch_size, n))
        self.rng = np.random.default_rng(seed)
        self.epoch, self.pos, self.perm = 0, self.n, None
        self.epoch_done = False

    @property
    def per_epoch(self):
        return math.ceil(self.n / self.size)

    def draw(self):
        if self.size >= self.n:                  # full batch: one epoch per draw, data in order
            self.epoch, self.epoch_done = self.epoch + 1, True
            return None
        if self.pos >= self.n:
            self.perm = self.rng.permutation(self.n)
            self.pos = 0
        batch = self.perm[self.pos:self.pos + self.size]
        self.pos += len(batch)
        self.epoch_done = self.pos >= self.n
        if self.epoch_done:
            self.epoch += 1
        return batch

    def state(self):
        return {"rng": self.rng.bit_generator.state, "epoch": self.epoch, "pos": self.pos,
                "perm": None if self.perm is None else self.perm.tolist()}

    def load_state(self, st):
        self.rng.bit_generator.state = st["rng"]
        self.epoch, self.pos = int(st["epoch"]), int(st["pos"])
        self.perm = None if st["perm"] is None else np.asarray(st["perm"], dtype=np.int64)
