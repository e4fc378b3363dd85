"""``ocdl bench block``: :class:`ocdl.nn.ODEBlock` against what a PyTorch user would pick instead.

The same model for every method, float64, one process, one thread: input ``x`` (n, width) with
``requires_grad``, the block ``x_{k+1} = x_k + h f(x_k, θ_k)`` (Euler, field ``outer`` by default:
f = K σ(x) + b; depth N, h = T/N), then a fixed linear head and the mean cross-entropy, and
``loss.backward()`` — the gradient of x, K and b. Methods:

* ``odeblock``             ``ocdl.nn.ODEBlock`` (backward = the costate sweep, no tape over the layers);
* ``autograd``             a plain loop ``x = x + h f(x, K[k], b[k])`` in torch, backprop through it;
* ``torchdiffeq-adjoint``  ``torchdiffeq.odeint_adjoint``, fixed-grid Euler on the same N steps
                           (the continuous adjoint integrated backwards: an O(h) gradient error);
* ``torchdiffeq-direct``   ``torchdiffeq.odeint`` with the same grid, backprop through the solver.

Each (method, width, depth) runs in a fresh process (:mod:`ocdl.bench.fresh`), measured as
``ocdl bench gradient`` does (:mod:`ocdl.bench.gradient`): warm-up at depth 2, reset the peak-RSS counter, one forward +
backward: ``peak_mib`` = extra resident memory it needed; then ``forward_s`` (best of
``repeats`` under ``torch.no_grad``) and ``gradient_s`` (best of ``repeats`` forward + backward),
wall time, and ``forward_cpu_s``, ``gradient_cpu_s`` the same in the process's CPU time (robust to
preemption on a loaded machine: :mod:`ocdl.bench.fresh`); ``ratio_autograd`` and
``ratio_autograd_cpu`` divide by autograd's at the same width and depth.
``states_mib`` = (N+1) n width × 8 bytes, the size of the stored states; ``rel_error`` =
‖g − g_ref‖/‖g_ref‖ over (x, K, b) against float64 autograd computed in the driving process.
"""
import gc
import os
import sys
import tempfile
import time

import numpy as np

from ocdl.bench import fresh
from ocdl.errors import InputError

METHODS = ("odeblock", "autograd", "torchdiffeq-adjoint", "torchdiffeq-direct")


def _setup(spec, depth):
    """``(x, y, block, head)`` of the benchmark problem (same numbers for every method)."""
    import torch

    from ocdl.nn import ODEBlock
    g = torch.Generator().manual_seed(spec["seed"])
    n, w = spec["samples"], spec["width"]
    x = torch.randn(n, w, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (n,), generator=g)
    block = ODEBlock(w, layers=depth, T=spec["T"], field=spec["field"], integrator="euler",
                     seed=spec["seed"], dtype=torch.float64)
    head = torch.nn.Linear(w, 2, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.randn(2, w, generator=g, dtype=torch.float64) / np.sqrt(w))
        head.bias.zero_()
    return x, y, block, head


def _final_state_fn(method, block):
    """``x ↦ x_N`` for ``method`` with the parameters of ``block`` (K, b are its nn.Parameters)."""
    import torch
    F, h, K, b = block.model.F, block.h, block.K, block.b
    if method == "odeblock":
        return block
    if method == "autograd":
        def run(x):
            for k in range(K.shape[0]):
                x = torch.add(x, F.f(x, K[k], b[k]), alpha=h)
            return x
        return run
    if method in ("torchdiffeq-adjoint", "torchdiffeq-direct"):
        try:
            import torchdiffeq  # noqa: F401
        except ImportError:
            raise InputError("methods torchdiffeq-* need torchdiffeq: pip install torchdiffeq (extra bench)") from None
        from ocdl.bench.problem import odeint_final, piecewise_field
        grid = torch.linspace(0.0, block.T, block.layers + 1, dtype=torch.float64)
        func = piecewise_field(F, K, b, grid)
        adjoint = method == "torchdiffeq-adjoint"

        def run(x):
            if not torch.is_grad_enabled():
                return odeint_final(None, func, x, grid, adjoint=False)
            return odeint_final(None, func, x, grid, adjoint, adjoint_params=(K, b))
        return run
    raise InputError(f"unknown method '{method}' (valid: {', '.join(METHODS)})")


def _loss_and_grad(fn, x, y, block, head):
    """One forward + backward: ``(loss, flat gradient of (x, K, b))``."""
    import torch
    xr = x.detach().clone().requires_grad_(True)
    block.zero_grad()
    loss = torch.nn.functional.cross_entropy(head(fn(xr)), y)
    loss.backward()
    return float(loss.detach()), np.concatenate([t.grad.numpy().ravel() for t in (xr, block.K, block.b)])


def measure(spec):
    """One (method, width, depth) in this process (see the module docstring)."""
    import torch
    torch.set_num_threads(1)
    method = spec["method"]
    x, y, block, head = _setup(spec, 2)                        # warm-up: imports, kernels, pools
    _loss_and_grad(_final_state_fn(method, block), x, y, block, head)
    del x, y, block, head
    x, y, block, head = _setup(spec, spec["depth"])
    fn = _final_state_fn(method, block)
    gc.collect()
    (loss, grad), peak, reset_ok, _ = fresh.peak_mib(lambda: _loss_and_grad(fn, x, y, block, head))

    def forward():
        with torch.no_grad():
            head(fn(x))
    forward_s, forward_cpu_s = fresh.best_of(forward, spec["repeats"])
    gradient_s, gradient_cpu_s = fresh.best_of(lambda: _loss_and_grad(fn, x, y, block, head), spec["repeats"])
    out = {"forward_s": forward_s, "gradient_s": gradient_s, "forward_cpu_s": forward_cpu_s,
           "gradient_cpu_s": gradient_cpu_s, "peak_mib": peak, "loss": loss, "peak_reset": reset_ok}
    np.save(spec["grad_path"], grad)
    return out


def run_block_bench(depths=(16, 64, 256, 1024), widths=(8, 64), samples=256, repeats=3, methods=METHODS,
                    field="outer", T=5.0, seed=0, quiet=False, timeout=1800, partial=None):
    """Measure every (method, width, depth); ``{"runs": [...], "settings", "machine", "date_utc"}``;
    each run also has ``ratio_autograd`` (its gradient time over autograd's at the same width and
    depth, when autograd ran). ``partial(result)`` (optional) receives the result so far after
    every case, so a run cut short keeps what it measured (the CLI writes it to ``--json``)."""
    from ocdl.progress import Progress
    if field not in ("outer", "inner", "hamiltonian"):
        raise InputError(f"--field must be outer, inner or hamiltonian (got '{field}')")
    for m in methods:
        if m not in METHODS:
            raise InputError(f"unknown method '{m}' (valid: {', '.join(METHODS)})")
    if field == "hamiltonian" and any(w % 2 for w in widths):
        raise InputError("the hamiltonian field needs even widths")
    if samples < 1 or min(depths) < 1 or min(widths) < 1:
        raise InputError("--samples, --depths and --widths must be ≥ 1")
    cases = [(w, d, m) for w in widths for d in depths for m in methods]
    bar = Progress(len(cases), "bench block", quiet)
    runs, refs = [], {}
    with tempfile.TemporaryDirectory(prefix="ocdl-bench-block-") as tmp:
        for i, (width, depth, method) in enumerate(cases):
            spec = {"method": method, "field": field, "depth": depth, "width": width, "samples": samples,
                    "T": T, "seed": seed, "repeats": repeats, "grad_path": os.path.join(tmp, f"g{i}.npy")}
            if (width, depth) not in refs:                     # float64 autograd, this process
                x, y, block, head = _setup(spec, depth)
                refs[(width, depth)] = _loss_and_grad(_final_state_fn("autograd", block), x, y, block, head)[1]
                del x, y, block, head
            bar.update(i, force=True, method=method, width=width, depth=depth)
            res = fresh.run("ocdl.bench.block", spec, f"{method}/width {width}/depth {depth}", timeout)
            g, g_ref = np.load(spec["grad_path"]), refs[(width, depth)]
            run = {"method": method, "width": width, "depth": depth, "forward_s": res["forward_s"],
                   "gradient_s": res["gradient_s"], "forward_cpu_s": res["forward_cpu_s"],
                   "gradient_cpu_s": res["gradient_cpu_s"], "peak_mib": res["peak_mib"],
                   "states_mib": (depth + 1) * samples * width * 8 / 2 ** 20,
                   "rel_error": float(np.linalg.norm(g - g_ref) / np.linalg.norm(g_ref))}
            if not res["peak_reset"]:
                run["peak_note"] = "peak RSS counter could not be reset; peak_mib is an upper bound"
            runs.append(run)
            if partial is not None:
                partial(_result(runs, depths, widths, samples, repeats, methods, field, T, seed))
        bar.update(len(cases), force=True)
    bar.close()
    return _result(runs, depths, widths, samples, repeats, methods, field, T, seed)


def _result(runs, depths, widths, samples, repeats, methods, field, T, seed):
    import torch

    from ocdl.bench.gradient import machine_info
    for key, ratio in (("gradient_s", "ratio_autograd"), ("gradient_cpu_s", "ratio_autograd_cpu")):
        auto = {(r["width"], r["depth"]): r[key] for r in runs if r["method"] == "autograd"}
        for r in runs:
            a = auto.get((r["width"], r["depth"]))
            r[ratio] = None if not a else r[key] / a
    return {"runs": runs,
            "settings": {"depths": list(depths), "widths": list(widths), "samples": samples, "repeats": repeats,
                         "methods": list(methods), "field": field, "integrator": "euler", "T": T, "seed": seed,
                         "threads": torch.get_num_threads()},
            "machine": machine_info(), "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


def format_table(result):
    """The runs as a markdown table (one row per run)."""
    lines = ["| width | depth | method | forward s | forward+backward s | × autograd | forward+backward CPU s "
             "| × autograd (CPU) | peak MiB | states MiB | gradient rel. error |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(v, spec):
        return "—" if v is None else format(v, spec)
    for r in result["runs"]:
        lines.append(f"| {r['width']} | {r['depth']} | {r['method']} | {r['forward_s']:.4f} | {r['gradient_s']:.4f} "
                     f"| {fmt(r['ratio_autograd'], '.2f')} | {fmt(r.get('gradient_cpu_s'), '.4f')} "
                     f"| {fmt(r.get('ratio_autograd_cpu'), '.2f')} | {r['peak_mib']:.1f} | {r['states_mib']:.1f} "
                     f"| {r['rel_error']:.1e} |")
    return "\n".join(lines)


def plot_block_bench(result, path):
    """Forward + backward time and peak memory against depth, one panel pair per width."""
    from ocdl.plotting import plt, save_figure
    widths = result["settings"]["widths"]
    fig, axes = plt.subplots(2, len(widths), figsize=(4.2 * len(widths), 6.5), squeeze=False)
    for j, w in enumerate(widths):
        for method in result["settings"]["methods"]:
            rows = sorted((r for r in result["runs"] if r["width"] == w and r["method"] == method),
                          key=lambda r: r["depth"])
            if not rows:
                continue
            dep = [r["depth"] for r in rows]
            axes[0, j].loglog(dep, [r["gradient_s"] for r in rows], "o-", label=method)
            axes[1, j].loglog(dep, [max(r["peak_mib"], 0.05) for r in rows], "o-", label=method)
        rows = sorted((r for r in result["runs"] if r["width"] == w), key=lambda r: r["depth"])
        dep = sorted({r["depth"] for r in rows})
        axes[1, j].loglog(dep, [(d + 1) * result["settings"]["samples"] * w * 8 / 2 ** 20 for d in dep], "k:",
                          label="stored states")
        axes[0, j].set_title(f"width {w}: forward + backward")
        axes[1, j].set_title(f"width {w}: peak extra memory")
        axes[1, j].set_xlabel("depth N")
        axes[0, j].set_ylabel("s")
        axes[1, j].set_ylabel("MiB")
    axes[0, 0].legend(fontsize=8)
    axes[1, 0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":          # a worker: one case per process (ocdl.bench.worker_main)
    from ocdl.bench import worker_main
    raise SystemExit(worker_main(sys.argv[1:], measure, "ocdl.bench.block"))
