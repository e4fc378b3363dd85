"""``ocdl gradcheck`` as a library call: :class:`GradcheckJob` compares the costate gradient with
autograd, the continuous adjoint and finite differences (:func:`ocdl.pmp.gradcheck`) on spirals —
or, for the conv fields, on random signals (:func:`conv_signals`)."""
import dataclasses

import numpy as np

from ocdl.jobs import work
from ocdl.jobs.base import Job, option, same_option
from ocdl.jobs.train import TrainJob


def conv_signals(X, y, length, seed):
    """Signals for the conv fields: sample i is ``sin(ω_i t + φ_i)`` on L points, ω and φ from
    the spiral point ``X_i`` (so the two spiral classes give two classes of signals)."""
    t = np.linspace(0.0, 2.0 * np.pi, length)
    return np.sin((1.5 + X[:, :1]) * t[None, :] + X[:, 1:2]) + 0.1 * np.random.default_rng(seed).standard_normal(
        (len(y), length))


@dataclasses.dataclass
class GradcheckJob(Job):
    """``ocdl gradcheck``: relative errors between the four gradients of one model."""
    field: str = same_option(TrainJob, "field", help="vector field (default outer)")
    integrator: str = same_option(TrainJob, "integrator", help="layer map (default euler)")
    layers: int = option(20, "number of layers N (default 20)", "count")
    T: float = option(5.0, "final time (default 5.0)", "positive")
    width: int = option(None, "state dimension (default 3 × 2 = 6)", "count")
    points: int = option(50, "spiral points per class (default 50); conv fields: that many random signals per "
                             "class", "count")
    length: int = option(12, "conv fields: signal length L of the random signals (default 12; with --shape H,W: "
                             "H·W)", "count")
    channels: int = same_option(TrainJob, "channels")
    kernel: int = same_option(TrainJob, "kernel")
    shape: list = same_option(TrainJob, "shape")
    json: str = same_option(TrainJob, "json")
    seed: int = same_option(TrainJob, "seed")

    def estimate(self):
        return work.gradcheck(self)

    def execute(self):
        from ocdl.data import spirals
        from ocdl.jobs.train import check_model_size
        from ocdl.pmp import gradcheck
        from ocdl.solvers import make_model
        X, y = spirals(self.points, seed=self.seed)
        conv = {k: getattr(self, k) for k in ("channels", "kernel", "shape") if getattr(self, k) is not None}
        if self.field in ("conv", "hamiltonian-conv"):
            length = self.length if self.shape is None else int(np.prod(self.shape))
            X = conv_signals(X, y, length, self.seed)
            conv.setdefault("channels", 3)
            conv.setdefault("kernel", 3)
        check_model_size(self.layers, self.width, X.shape[1], len(X))  # before allocating the model
        model = make_model(X, y, field=self.field, integrator=self.integrator, layers=self.layers, T=self.T,
                           width=self.width, **conv)
        params = model.init(seed=self.seed)
        out = {"field": self.field, "integrator": self.integrator, "layers": model.layers, "T": model.T,
               "width": model.d, "n": int(len(y)), "seed": self.seed}
        out.update(gradcheck(model, params, X, y, seed=self.seed))
        if self.json:
            from ocdl.io import write_json
            write_json(self.json, out)
        return out
