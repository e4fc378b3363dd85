"""``ocdl meanfield thermo`` and ``ocdl meanfield eliminate`` as library calls (the job pattern of
docs/cli.md): :class:`ThermoJob` and :class:`EliminateJob` hold the options, their defaults and
checks; ``execute`` runs :func:`ocdl.meanfield.thermo.study.thermo_study` /
:func:`ocdl.meanfield.eliminate.eliminate` and writes ``json`` / ``plot``.

    from ocdl.jobs.meanfield_thermo import ThermoJob
    out = ThermoJob(beta=4.0, json="thermo.json").run()
"""
import dataclasses

from ocdl.errors import InputError
from ocdl.jobs.base import Job, option


@dataclasses.dataclass
class ThermoJob(Job):
    beta: float = option(2.0, "inverse temperature β > 0 of the hidden variables (default 2)", "positive")
    neurons: int = option(2, "neurons of the quadrature network, ≤ 3 (default 2)", "count")
    mc_neurons: int = option(6, "neurons of the Monte-Carlo network (default 6)", "count")
    mass: float = option(0.2, "mass term m < 1 in V(x) = −(m/2)x² (default 0.2)", "real")
    points: int = option(101, "quadrature nodes per axis (default 101)", "count")
    samples: int = option(200_000, "Monte-Carlo samples (default 200000)", "count")
    objective: str = option("free-energy", "training: gradient descent on F (free-energy, default) or on U (loss)",
                            "choice", choices=["free-energy", "loss"])
    iterations: int = option(40, "gradient-descent iterations (default 40)", "count")
    gamma: float = option(1.0, "γ of eq. (20), drift γ∂F/∂q (default 1; < 0: descent on F)", "real")
    D: float = option(0.25, "noise D > 0 of eq. (20) (default 0.25; D = 0 has no stationary density)", "positive")
    T: float = option(8.0, "ensemble time (default 8)", "positive")
    particles: int = option(20_000, "ensemble size (default 20000)", "count")
    steps: int = option(2000, "time steps, a multiple of 8 (default 2000)", "count")
    cells: int = option(128, "Fokker–Planck cells on the circle (default 128)", "count")
    seed: int = option(0, "random seed (default 0)", "seed")
    json: str = option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")
    plot: str = option(None, "write a picture", "path", role="output", metavar="PNG")

    def study_config(self):
        from ocdl.meanfield.thermo.study import ThermoConfig
        names = {f.name for f in dataclasses.fields(ThermoConfig)}
        return ThermoConfig(**{k: getattr(self, k) for k in names if hasattr(self, k)})

    def check(self):
        self.study_config().check()

    def estimate(self):
        from ocdl.jobs.budget import Estimate
        q = self.points ** self.neurons
        sec = 1e-6 * (q * (self.iterations * 8 + 80) + self.samples * self.mc_neurons ** 2 * 2
                      + self.particles * self.steps * 0.05 + self.cells * self.steps)
        return Estimate(bytes=8 * (q * (self.neurons ** 2 + 4) + self.samples * self.mc_neurons * 4
                                   + self.cells * self.steps),
                        seconds=sec, flags=f"--points {self.points} --neurons {self.neurons} --samples {self.samples} "
                                           f"--particles {self.particles} --steps {self.steps}")

    def execute(self):
        from ocdl.meanfield.thermo.study import thermo_study
        out, extra = thermo_study(self.study_config(), quiet=self.quiet)
        if self.json:
            from ocdl.io import write_json
            write_json(self.json, out)
        if self.plot:
            from ocdl.meanfield.thermo.plots import plot_thermo
            plot_thermo(out, extra, self.plot)
        return out


@dataclasses.dataclass
class EliminateJob(Job):
    dim: int = option(1, "1 (default) or 2", "count")
    nu: float = option(0.6, "noise ν > 0 (default 0.6)", "positive")
    T: float = option(1.0, "horizon (default 1)", "positive")
    c: float = option(2.0, "terminal cost Φ = (c/2)|x − z|² (default 2)", "positive")
    std: float = option(0.5, "std of the Gaussian ρ0 (default 0.5)", "positive")
    cells: list = option(None, "refinement levels, cells per axis (default 100 200 400; --dim 2: 40 80); "
                               "steps = cells/2 (comma-separated, e.g. 100,200,400)", "counts")
    density_layers: int = option(40, "layers of the density-trained affine ResNet (1-D; default 40)", "count")
    density_rate: bool = option(False, "also train 10/20/40/80 layers: the rate in the layer count", "switch")
    json: str = option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")
    plot: str = option(None, "write a picture", "path", role="output", metavar="PNG")

    def study_config(self):
        from ocdl.meanfield.eliminate import EliminateConfig
        return EliminateConfig(dim=int(self.dim), nu=self.nu, T=self.T, c=self.c, std=self.std,
                               cells=tuple(self.cells) if self.cells else None, density_layers=self.density_layers,
                               density_rate=bool(self.density_rate))

    def check(self):
        if self.cells is not None and len(self.cells) == 0:
            raise InputError("--cells needs at least one level")
        self.study_config().check()

    def estimate(self):
        from ocdl.jobs.budget import Estimate
        n = max(self.cells or ([400] if self.dim == 1 else [80]))
        cells = n ** self.dim
        return Estimate(bytes=8 * cells * (n // 2 + 1) * 8, seconds=2e-6 * cells * (n // 2) * 60,
                        flags=f"--cells {n} --dim {self.dim}")

    def execute(self):
        from ocdl.meanfield.eliminate import eliminate, plot_eliminate
        out, last = eliminate(self.study_config(), quiet=self.quiet)
        if self.json:
            from ocdl.io import write_json
            write_json(self.json, out)
        if self.plot:
            plot_eliminate(out, last, self.plot)
        return out
