"""Benchmarks and parameter sweeps.

* :mod:`ocdl.bench.sweep`       grid sweeps over ``ocdl.solvers.train`` (local or dask.distributed);
* :mod:`ocdl.bench.gradient`    gradient time / memory / accuracy against autograd and torchdiffeq;
* :mod:`ocdl.bench.reversible`  the constant-memory costate sweep of the reversible Verlet network;
* :mod:`ocdl.bench.train`       time-to-target of the training solvers over seeds.
"""
