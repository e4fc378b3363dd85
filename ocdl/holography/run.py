"""The work of ``ocdl holography simulate|learn``: :func:`simulate_file` and :func:`learn_file`
take a config — :class:`ocdl.jobs.holography.HolographySimulateJob` /
:class:`~ocdl.jobs.holography.HolographyLearnJob`, or any object with those fields — and own the
file formats.

Data file: CSV ``phi,pi,label`` (label 1 = regular at the horizon), plus ``m2,lam`` columns when
the data were taken at several masses / couplings. ``simulate`` also writes ``OUT.meta.json``
(the metric expression, its layer values and the set-up) so that ``learn`` can report the metric
error and draw the true metric without ``--true-metric``.
"""
import json
import os

import numpy as np

from ocdl.errors import InputError


def meta_path(path):
    return f"{path}.meta.json"


def simulate_file(cfg):
    """Simulate and write ``cfg.out`` (+ its meta file); returns the data dict."""
    from ocdl.holography.simulate import simulate
    from ocdl.io import write_csv, write_json
    d = simulate(cfg.metric, cfg.m2, cfg.lam, cfg.eta_ini, cfg.eta_fin, cfg.layers, cfg.samples, cfg.seed, cfg.eps,
                 cfg.integrator)
    if cfg.out:
        if d["multi"]:
            write_csv(cfg.out, ["phi", "pi", "label", "m2", "lam"],
                      np.column_stack([d["phi"], d["pi"], d["label"], d["m2"], d["lam"]]))
        else:
            write_csv(cfg.out, ["phi", "pi", "label"], np.column_stack([d["phi"], d["pi"], d["label"]]))
        meta = {"metric": cfg.metric, "m2": cfg.m2, "lam": cfg.lam, "eta_ini": cfg.eta_ini, "eta_fin": cfg.eta_fin,
                "layers": cfg.layers, "eps": cfg.eps, "integrator": cfg.integrator, "seed": cfg.seed,
                "eta": d["eta"], "h_true": d["h_true"], "n_positive": int(np.sum(d["label"] == 1)),
                "n_negative": int(np.sum(d["label"] == 0)), "box": {"phi": [0.0, 1.5], "pi": [-0.2, 0.2]}}
        write_json(meta_path(cfg.out), meta)
    return d


def read_data(path):
    """``(X, labels, m2 or None, lam or None, meta or None)`` from a data CSV."""
    from ocdl.io import read_table
    t = read_table(path, ["phi", "pi", "label"], optional=("m2", "lam"))
    lab = t["label"]
    if not np.all(np.isin(lab, (0, 1))):
        raise InputError(f"{path}: column 'label' must be 0 or 1 (1 = regular at the horizon)")
    for c, name in ((1, "positive (label 1)"), (0, "negative (label 0)")):
        if not np.any(lab == c):
            raise InputError(f"{path}: no {name} rows — an empty class; both classes are needed")
    meta = None
    if os.path.exists(meta_path(path)):
        try:
            with open(meta_path(path), encoding="utf-8") as fh:
                meta = json.load(fh)
        except (OSError, ValueError):
            meta = None
    return np.column_stack([t["phi"], t["pi"]]), lab.astype(int), t.get("m2"), t.get("lam"), meta


def _pick(value, meta, key, default):
    if value is not None:
        return value
    if meta is not None and key in meta and not isinstance(meta[key], list):
        return meta[key]
    return default


def build_problem(cfg, X, lab, m2d, lamd, meta):
    from ocdl.holography.network import Layers
    from ocdl.holography.problem import HolographyProblem
    layers = Layers(_pick(cfg.eta_ini, meta, "eta_ini", 1.0), _pick(cfg.eta_fin, meta, "eta_fin", 0.1),
                    _pick(cfg.layers, meta, "layers", 10))
    return HolographyProblem(X, lab, layers, _pick(cfg.integrator, meta, "integrator", "euler"),
                             _pick(cfg.m2, meta, "m2", -1.0), _pick(cfg.lam, meta, "lam", 1.0), m2d, lamd,
                             cfg.learn_mass, cfg.learn_coupling, cfg.c_reg, _pick(cfg.eps, meta, "eps", 0.1),
                             loss="l2" if cfg.solver == "newton" else "l1")


def true_metric(cfg, problem, meta):
    """The true layer values: ``--true-metric`` on this grid, else the meta file's (same grid)."""
    from ocdl.holography.simulate import metric_values
    if cfg.true_metric:
        return metric_values(cfg.true_metric, problem.layers, flag="--true-metric")
    eta = np.asarray(meta.get("eta", []), float) if meta is not None else np.zeros(0)
    if meta is not None and "h_true" in meta and eta.shape == problem.layers.eta.shape and \
            np.allclose(eta, problem.layers.eta, atol=1e-12):
        return np.asarray(meta["h_true"], float)
    return None


def best_constant(problem, values=None):
    """The constant metric ``h ≡ c`` with the smallest loss (a scan; the default start)."""
    import torch

    from ocdl.holography.network import DTYPE
    values = np.linspace(0.25, 10.0, 40) if values is None else values
    losses = []
    with torch.no_grad():
        for c in values:
            losses.append(float(problem.loss_torch(torch.as_tensor(problem.x0(c), dtype=DTYPE))[1]))
    return float(values[int(np.argmin(losses))])


def learn_file(cfg, callback=None, control=None):
    """Read the data, solve, summarise. Returns ``(problem, result, summary, test)``. ``control``:
    checkpoint options for :func:`ocdl.holography.learn.solve`."""
    quiet = getattr(cfg, "quiet", True)
    from ocdl.holography import learn
    X, lab, m2d, lamd, meta = read_data(cfg.data)
    problem = build_problem(cfg, X, lab, m2d, lamd, meta)
    test = None
    if cfg.test:
        Xt, lt, m2t, lamt, _ = read_data(cfg.test)
        import torch

        from ocdl.holography.network import DTYPE
        test = (Xt, lt, None if m2t is None else torch.as_tensor(m2t, dtype=DTYPE),
                None if lamt is None else torch.as_tensor(lamt, dtype=DTYPE))
    h_true = true_metric(cfg, problem, meta)
    if cfg.init == "constant":
        value = best_constant(problem) if cfg.init_value is None else cfg.init_value
        h0 = learn.initial_h(problem.layers, "constant", value)
    else:
        h0 = learn.initial_h(problem.layers, cfg.init, cfg.init_value, cfg.seed)
    res = learn.solve(problem, cfg.solver, problem.x0(h0), cfg.iterations, cfg.lr, quiet=quiet, callback=callback,
                      control=control)
    summary = learn.summarize(problem, res, cfg.solver, h_true, test)
    summary.update(data=cfg.data, init=cfg.init, h_initial=np.asarray(h0).tolist())
    if m2d is not None or lamd is not None:
        summary["data_couplings"] = sorted({(float(a), float(b)) for a, b in zip(
            m2d if m2d is not None else np.full(len(X), problem.m2),
            lamd if lamd is not None else np.full(len(X), problem.lam))})
    return problem, res, summary, test
