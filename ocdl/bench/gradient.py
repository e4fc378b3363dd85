"""``ocdl bench gradient``: time, memory and accuracy of eight ways to get ∂J/∂θ, against depth.

Methods (all float64, same discrete network, same cost — see :mod:`ocdl.bench.problem`):

* ``autograd``             torch backprop through the discrete Euler network (tape of all layers);
* ``costate``              ``ocdl.pmp.value_and_grad``: forward sweep storing states, costate sweep
                           (compiled, :mod:`ocdl.pmp.compiled`; always on the CPU);
* ``costate-torch``        the same sweep on torch tensors on ``device`` (:mod:`ocdl.pmp.torch_sweeps`);
* ``costate-reversible``   hamiltonian field + Verlet, states reconstructed backwards
                           (:mod:`ocdl.bench.reversible`); its network is the Verlet one;
* ``torchdiffeq-adjoint``  ``torchdiffeq.odeint_adjoint``, fixed-grid Euler on the same grid
                           (continuous adjoint integrated backwards: an O(h) gradient error);
* ``torchdiffeq-direct``   ``torchdiffeq.odeint`` with the same grid, backprop through the solver;
* ``jax``, ``diffrax``, ``diffrax-backsolve``  the peers of :mod:`ocdl.bench.peers` (optional extra
                           ``peers``): ``jit(value_and_grad)`` through ``lax.scan``; ``diffeqsolve``
                           with Euler and ``RecursiveCheckpointAdjoint`` / ``BacksolveAdjoint``.
                           Skipped with a note (``result["skipped"]``) when jax / diffrax are not
                           installed. Their compile time is reported apart (``compile_s``,
                           ``forward_compile_s``); ``forward_s`` / ``gradient_s`` time the compiled
                           programs. Methods without a compile step have ``compile_s`` None.

Reference: the float64 autograd gradient of the same discrete network (Euler, or Verlet for
``costate-reversible``), computed in the driving process; ``rel_error = ‖g − g_ref‖₂/‖g_ref‖₂``
over all parameters (K, b, W, μ). The ``autograd`` method repeats that computation in its own
process, so its error is 0 by construction.

How it is measured. Every (method, field, depth) runs in a fresh Python process
(:mod:`ocdl.bench.fresh`), so one method's allocations cannot hide in another's heap. In that
process: build the problem, do one warm-up gradient at depth 2 (loads code paths), then reset
the kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs``), note ``VmRSS``, compute one
value-and-gradient at full depth, read ``VmHWM``: ``peak_mib = (VmHWM − VmRSS_before) / 2^20``
is the extra resident memory the gradient needed (tracemalloc does not see torch's allocations;
RSS does). Its resolution is a page, and memory the allocator kept from the warm-up is reused without showing up, so
values below ~0.1 MiB mean "nothing measurable". ``process_peak_mib`` (extra key) is the whole
process's VmHWM (interpreter + torch + data + gradient). Then
``forward_s`` = best of ``repeats`` cost-only evaluations (no tape, no stored states where the
method allows: ``torch.no_grad`` / ``pmp.cost`` / the reversible forward) and ``gradient_s`` = best
of ``repeats`` value-and-gradient evaluations. Best-of-R is the usual estimate on a shared
machine (other load only ever adds time). On CUDA, ``peak_mib`` is
``torch.cuda.max_memory_allocated`` instead. Each row's ``device`` says where the method ran
(:func:`device_of`: the numpy methods on the CPU, the torch ones and the peers on ``device``).
"""
import gc
import os
import platform
import sys
import tempfile
import time

import numpy as np

from ocdl.bench import fresh
from ocdl.errors import InputError

from ocdl.bench.peers import PEER_METHODS, missing

METHODS = ("autograd", "costate", "costate-torch", "costate-reversible", "torchdiffeq-adjoint",
           "torchdiffeq-direct") + PEER_METHODS
FIELDS = ("outer", "hamiltonian", "inner")


def integrator_of(method):
    return "verlet" if method == "costate-reversible" else "euler"


def device_of(method, device):
    """Where ``method`` runs when the bench is asked for ``device`` (numpy methods: the CPU)."""
    return "cpu" if method in ("costate", "costate-reversible") else device


def applicable(method, field):
    return method != "costate-reversible" or field == "hamiltonian"


# ------------------------------------------------------------------------------------------
# one method on one problem: (forward(), value_and_grad()) closures

def _tensor(a, device):
    import torch
    return torch.as_tensor(np.asarray(a, dtype=float), dtype=torch.float64, device=device)


def _host(v):
    return v.detach().cpu().numpy() if hasattr(v, "detach") else v


def prepare(method, problem, device="cpu"):
    """Return ``(forward, value_and_grad)``: ``forward() -> J``; ``value_and_grad() -> (J, flat
    gradient as float64 numpy (K, b, W, μ order), extra dict)``."""
    if method in ("costate", "costate-torch"):
        from ocdl import pmp
        from ocdl.models import ResNetODE
        model = ResNetODE(field=problem.field, d_in=problem.X.shape[1], width=problem.width, n_classes=2,
                          layers=problem.depth, T=problem.T, integrator=problem.integrator,
                          alpha=problem.alpha, beta=0.0)
        X, y, params = problem.X, problem.y, problem.params
        if method == "costate-torch":                    # tensors on the device before any timing
            import torch
            params = {k: _tensor(v, device) for k, v in params.items()}
            X, y = _tensor(X, device), torch.as_tensor(np.asarray(y), dtype=torch.int64, device=device)

        def forward():
            return float(pmp.cost(model, params, X, y))

        def value_and_grad():
            J, g = pmp.value_and_grad(model, params, X, y)
            return float(J), problem.flat({k: _host(v) for k, v in g.items()}), {}
        return forward, value_and_grad

    if method == "costate-reversible":
        from ocdl.bench import reversible
        x0, y, params = problem.x0(), problem.y, problem.params

        def forward():
            return reversible.cost(x0, y, params, problem.h, problem.alpha)

        def value_and_grad():
            J, g, info = reversible.value_and_grad(x0, y, params, problem.h, problem.alpha)
            return J, problem.flat(g), info
        return forward, value_and_grad

    if method in PEER_METHODS:
        from ocdl.bench import peers
        return peers.prepare(method, problem, device)

    import torch

    from ocdl.bench import problem as pb
    P = pb.torch_params(problem, device)
    x0 = torch.tensor(problem.x0(), dtype=torch.float64, device=device)
    y = torch.tensor(problem.y, dtype=torch.float64, device=device)

    def flat_grad():
        return problem.flat({k: P[k].grad.detach().cpu().numpy() for k in pb.PARAM_KEYS})

    def clear():
        for v in P.values():
            v.grad = None

    if method == "autograd":
        def forward():
            with torch.no_grad():
                return float(pb.cost_torch(problem, P, x0, y))

        def value_and_grad():
            clear()
            J = pb.cost_torch(problem, P, x0, y)
            J.backward()
            return J.item(), flat_grad(), {}
        return forward, value_and_grad

    if method in ("torchdiffeq-adjoint", "torchdiffeq-direct"):
        try:
            import torchdiffeq  # noqa: F401
        except ImportError:
            raise InputError("method torchdiffeq-* needs torchdiffeq: pip install torchdiffeq") from None
        adjoint = method == "torchdiffeq-adjoint"
        grid = pb.time_grid(problem, device)
        func = pb.piecewise_field(problem.F, P["K"], P["b"], grid)

        def J_of(xN):
            return pb.terminal_cost_torch(problem, P, xN, y) + pb.running_cost_torch(problem, P)

        def forward():
            with torch.no_grad():
                return float(J_of(pb.odeint_final(problem, func, x0, grid, adjoint=False)))

        def value_and_grad():
            clear()
            J = J_of(pb.odeint_final(problem, func, x0, grid, adjoint, adjoint_params=(P["K"], P["b"])))
            J.backward()
            return J.item(), flat_grad(), {}
        return forward, value_and_grad
    raise InputError(f"unknown method '{method}' (valid: {', '.join(METHODS)})")


# ------------------------------------------------------------------------------------------
# measurement inside a fresh process

def measure(spec):
    """Run one (method, field, depth) measurement in this process; return the result dict and
    write the gradient to ``spec['grad_path']`` (npz)."""
    import torch
    torch.set_num_threads(1)
    from ocdl.bench.problem import Problem
    method, device = spec["method"], spec.get("device", "cpu")
    kw = dict(field=spec["field"], samples=spec["samples"], width=spec["width"], T=spec["T"],
              alpha=spec["alpha"], integrator=integrator_of(method), seed=spec["seed"])
    # warm-up on a 2-layer copy: imports, kernels, allocator pools
    f, g = prepare(method, Problem(depth=2, **kw), device)
    f(), g()
    del f, g
    problem = Problem(depth=spec["depth"], **kw)
    forward, value_and_grad = prepare(method, problem, device)
    gc.collect()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    (J, grad, extra), peak_mib, reset_ok, process_peak = fresh.peak_mib(value_and_grad)
    if cuda:
        torch.cuda.synchronize()
        peak_mib = (torch.cuda.max_memory_allocated() - base_cuda) / 2 ** 20
    sync = torch.cuda.synchronize if cuda else None
    forward_s, forward_cpu_s = fresh.best_of(forward, spec["repeats"], sync)
    gradient_s, gradient_cpu_s = fresh.best_of(value_and_grad, spec["repeats"], sync)
    np.save(spec["grad_path"], grad)
    out = {"forward_s": forward_s, "gradient_s": gradient_s, "forward_cpu_s": forward_cpu_s,
           "gradient_cpu_s": gradient_cpu_s, "peak_mib": peak_mib, "J": J,
           "peak_reset": reset_ok, "process_peak_mib": process_peak}
    out.update(extra)
    return out


# ------------------------------------------------------------------------------------------
# the driver

def reference_gradient(problem):
    """float64 autograd gradient of the discrete network (in this process)."""
    import torch

    from ocdl.bench import problem as pb
    P = pb.torch_params(problem)
    J = pb.cost_torch(problem, P, torch.tensor(problem.x0()), torch.tensor(problem.y, dtype=torch.float64))
    J.backward()
    return J.item(), problem.flat({k: P[k].grad.numpy() for k in pb.PARAM_KEYS})


def machine_info():
    import torch
    cpu = None
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"nproc": os.cpu_count(), "cpus_usable": usable, "cpu": cpu or platform.processor(),
            "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "platform": platform.platform(),
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def skip_note(skipped):
    """One line naming the skipped methods and what they lack (empty string: none skipped)."""
    if not skipped:
        return ""
    lacking = sorted({m for s in skipped for m in s["missing"]})
    return (f"skipped {', '.join(s['method'] for s in skipped)}: {', '.join(lacking)} not installed "
            f"(optional extra: pip install -e '.[peers]')")


def run_gradient_bench(fields=("outer", "hamiltonian"), depths=(16, 64, 256, 1024, 4096), samples=512,
                       width=8, repeats=3, device="cpu", methods=METHODS, T=5.0, alpha=1e-3, seed=0,
                       quiet=False, timeout=1800):
    """Measure every applicable (method, field, depth); return ``{"runs": [...], "skipped": [...], ...}``.

    Peer methods whose packages are missing are left out and listed in ``skipped`` as
    ``{"method", "missing"}`` (:func:`skip_note` words it); if every requested method is missing,
    InputError."""
    from ocdl.bench.problem import Problem
    from ocdl.progress import Progress
    for f in fields:
        if f not in FIELDS:
            raise InputError(f"unknown field '{f}' (valid: {', '.join(FIELDS)})")
        if f == "hamiltonian" and (width % 2 or width < 4):
            raise InputError(f"the hamiltonian field needs an even --width ≥ 4 (got {width})")
        if width < 2:
            raise InputError(f"--width must be ≥ 2, the input dimension (got {width})")
    for m in methods:
        if m not in METHODS:
            raise InputError(f"unknown method '{m}' (valid: {', '.join(METHODS)})")
    if samples < 2:
        raise InputError(f"--samples must be ≥ 2 (got {samples})")
    skipped = [{"method": m, "missing": list(missing(m))} for m in methods if missing(m)]
    if skipped and len(skipped) == len(methods):
        raise InputError("nothing to run: " + skip_note(skipped))
    methods = [m for m in methods if not missing(m)]
    cases = [(f, d, m) for f in fields for d in depths for m in methods if applicable(m, f)]
    if not cases:
        raise InputError("no (method, field) pair applies: costate-reversible needs the hamiltonian field")
    bar = Progress(len(cases), "bench gradient", quiet)
    runs, refs = [], {}
    with tempfile.TemporaryDirectory(prefix="ocdl-bench-") as tmp:
        for i, (field, depth, method) in enumerate(cases):
            integ = integrator_of(method)
            if (field, depth, integ) not in refs:
                prob = Problem(field=field, depth=depth, samples=samples, width=width, T=T, alpha=alpha,
                               integrator=integ, seed=seed)
                refs[(field, depth, integ)] = reference_gradient(prob)
                del prob
            J_ref, g_ref = refs[(field, depth, integ)]
            spec = {"method": method, "field": field, "depth": depth, "samples": samples, "width": width,
                    "T": T, "alpha": alpha, "seed": seed, "repeats": repeats, "device": device,
                    "grad_path": os.path.join(tmp, f"g{i}.npy")}
            bar.update(i, force=True, method=method, field=field, depth=depth)
            res = fresh.run("ocdl.bench.gradient", spec, f"{method}/{field}/depth {depth}", timeout)
            g = np.load(spec["grad_path"])
            rel = float(np.linalg.norm(g - g_ref) / np.linalg.norm(g_ref))
            run = {"method": method, "field": field, "depth": depth, "device": device_of(method, device),
                   "forward_s": res["forward_s"],
                   "gradient_s": res["gradient_s"], "peak_mib": res["peak_mib"], "rel_error": rel,
                   "integrator": integ, "cost_abs_error": abs(res["J"] - J_ref),
                   "process_peak_mib": res["process_peak_mib"], "gradient_mib": g.nbytes / 2 ** 20}
            run["compile_s"] = res.get("compile_s")
            for key in ("forward_cpu_s", "gradient_cpu_s", "forward_compile_s", "xla_temp_mib",
                        "reconstruction_error"):
                if key in res:
                    run[key] = res[key]
            if not res.get("peak_reset", True):
                run["peak_note"] = "peak RSS counter could not be reset; peak_mib is an upper bound"
            runs.append(run)
        bar.update(len(cases), force=True)
    bar.close()
    return {"runs": runs, "skipped": skipped,
            "settings": {"fields": list(fields), "depths": list(depths), "samples": samples, "width": width,
                         "repeats": repeats, "device": device, "T": T, "alpha": alpha, "seed": seed,
                         "methods": list(methods)},
            "machine": machine_info(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


STYLE = {"autograd": ("C0", "o"), "costate": ("C1", "s"), "costate-torch": ("C8", "d"),
         "costate-reversible": ("C2", "^"),
         "torchdiffeq-adjoint": ("C3", "v"), "torchdiffeq-direct": ("C4", "D"), "jax": ("C5", "P"),
         "diffrax": ("C6", "X"), "diffrax-backsolve": ("C7", "*")}


def plot_gradient_bench(result, path):
    """Gradient time (and forward time, dotted) and peak memory against depth, log–log."""
    from ocdl.plotting import plt, save_figure
    runs = result["runs"]
    fields = list(dict.fromkeys(r["field"] for r in runs))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    dashes = {f: ls for f, ls in zip(fields, ["-", "--", ":"])}
    for (method, field) in dict.fromkeys((r["method"], r["field"]) for r in runs):
        rs = sorted((r for r in runs if r["method"] == method and r["field"] == field), key=lambda r: r["depth"])
        d = [r["depth"] for r in rs]
        color, marker = STYLE.get(method, ("k", "x"))
        label = f"{method} ({field})"
        axes[0].loglog(d, [r["gradient_s"] for r in rs], ls=dashes[field], marker=marker, color=color, label=label)
        axes[1].loglog(d, [max(r["peak_mib"], 1e-2) for r in rs], ls=dashes[field], marker=marker, color=color,
                       label=label)
        axes[2].loglog(d, [max(r["rel_error"], 1e-17) for r in rs], ls=dashes[field], marker=marker,
                       color=color, label=label)
    gm = sorted({(r["depth"], r["gradient_mib"]) for r in runs if r["field"] == fields[-1] and "gradient_mib" in r})
    if gm:
        line, = axes[1].loglog([d for d, _ in gm], [v for _, v in gm], color="0.4", lw=0.8,
                               label=f"size of the gradient vector itself ({fields[-1]})")
        axes[1].legend(handles=[line], fontsize=7, loc="lower right")
    axes[0].set_title(f"gradient time (best of {result.get('settings', {}).get('repeats', 1)})")
    axes[0].set_ylabel("seconds")
    axes[1].set_title("peak memory of one gradient (RSS delta)")
    axes[1].set_ylabel("MiB (floored at 0.01)")
    axes[2].set_title("relative gradient error vs float64 autograd")
    axes[2].set_ylabel("‖g − g_ref‖ / ‖g_ref‖ (floored at 1e-17)")
    for ax in axes:
        ax.set_xlabel("depth N (layers)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    s = result.get("settings", {})
    fig.suptitle(f"ocdl bench gradient: n = {s.get('samples')}, width = {s.get('width')}, float64, "
                 f"{s.get('device', 'cpu')}; line style by field: "
                 + ", ".join(f"{f} {'solid' if ls == '-' else 'dashed' if ls == '--' else 'dotted'}"
                             for f, ls in dashes.items()), fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)




def format_table(result):
    """The runs as a plain-text table: method, field, depth, times, peak memory, gradient error."""
    from ocdl.bench import number, text_table
    return text_table(["method", "field", "depth", "forward_s", "gradient_s", "compile_s", "peak_mib", "rel_error"],
                      [[r["method"], r["field"], r["depth"], number(r["forward_s"]), number(r["gradient_s"]),
                        number(r.get("compile_s")), number(r["peak_mib"], ".1f"), number(r["rel_error"], ".2e")]
                       for r in result["runs"]])


if __name__ == "__main__":          # a worker: one case per process (ocdl.bench.worker_main)
    from ocdl.bench import worker_main
    raise SystemExit(worker_main(sys.argv[1:], measure, "ocdl.bench.gradient"))
