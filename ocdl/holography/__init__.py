"""AdS/DL bulk reconstruction (Hashimoto, Sugishita, Tanaka, Tomiya, arXiv:1802.08313).

* :mod:`~ocdl.holography.network` — the radial equation of motion as a network (layers, field,
  horizon output layer), exact costate gradients and per-sample Jacobian rows;
* :mod:`~ocdl.holography.simulate` — labelled boundary data from a known metric;
* :mod:`~ocdl.holography.problem` — the paper's loss (output layer + η⁴ smoothness regulariser);
* :mod:`~ocdl.holography.learn` — the solvers on :func:`ocdl.optim.minimize`, the summary, the
  Gauss–Newton identifiability analysis;
* :mod:`~ocdl.holography.run` — the work and file formats of ``ocdl holography`` (its configs are
  the jobs of :mod:`ocdl.jobs.holography`);
* :mod:`~ocdl.holography.compare` — Newton / PMP against the paper's Adam over seeds.
"""
from ocdl.holography.learn import SOLVERS, identifiability, metric_error, solve, summarize  # noqa: F401
from ocdl.holography.network import Layers, MetricField, Network  # noqa: F401
from ocdl.holography.problem import HolographyProblem  # noqa: F401
from ocdl.holography.run import learn_file, simulate_file  # noqa: F401
from ocdl.holography.simulate import metric_values, simulate  # noqa: F401
