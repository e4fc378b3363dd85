"""The JAX and diffrax peers of ``ocdl bench gradient``: the same discrete network and cost as
:mod:`ocdl.bench.problem`, written in ``jax.numpy`` (float64), compiled by XLA.

Network (row form, one sample per row; ``h = T/N``, ``θ_k = (K_k, b_k)`` on ``[t_k, t_{k+1})``)::

    x_{k+1} = x_k + h f(x_k; θ_k)          (explicit Euler)
    outer        f(x) = σ(x) Kᵀ + b
    inner        f(x) = σ(x Kᵀ + b)
    hamiltonian  x = (q, p):  q̇ = σ(p Kᵀ + b),  ṗ = −σ(q K + b)      (σ = tanh)

    J = (1/n) Σ_i softplus(−(2c_i − 1) s_i) + (α/2)‖W‖² + h Σ_k (α/2)(‖K_k‖² + |b_k|²),
    s = x_N Wᵀ + μ.

Methods:

* ``jax``               ``jax.jit(jax.value_and_grad(J))`` with the layers in ``jax.lax.scan``
                        (reverse mode through the scan: the exact gradient of the discrete network);
* ``diffrax``           ``diffrax.diffeqsolve`` with ``Euler()``, ``ConstantStepSize`` and
                        ``dt0 = h`` on ``[0, T]``; the vector field picks layer
                        ``k = clip(round(t/h), 0, N−1)`` — Euler evaluates only at the step starts
                        ``t_k``, so this is the discrete network; ``RecursiveCheckpointAdjoint``
                        (reverse mode through the solver loop, with checkpointing: exact);
* ``diffrax-backsolve`` the same solve with ``BacksolveAdjoint``: the continuous adjoint ODE
                        integrated backwards with Euler, states re-integrated backwards. Its steps
                        start at ``t_{k+1}`` and therefore see ``θ_{k+1}`` on ``[t_k, t_{k+1})`` —
                        optimise-then-discretise: an O(h) gradient error, reported, not hidden.

Compilation is done ahead of time (``jit(...).lower(...).compile()``) in :func:`prepare` and
timed there (``compile_s`` for the value-and-gradient, ``forward_compile_s`` for the cost);
the timed calls run the compiled executables only. Threads: unless ``XLA_FLAGS`` is set, the
worker sets ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` (torch runs
with ``set_num_threads(1)``); pin the whole run with ``taskset`` for one core.
"""
import importlib.util
import os
import time

import numpy as np

PEER_METHODS = ("jax", "diffrax", "diffrax-backsolve")
NEEDS = {"jax": ("jax", "jaxlib"), "diffrax": ("jax", "jaxlib", "diffrax"),
         "diffrax-backsolve": ("jax", "jaxlib", "diffrax")}
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def missing(method):
    """Modules the peer ``method`` needs that are not installed (empty tuple: it can run)."""
    return tuple(m for m in NEEDS.get(method, ()) if importlib.util.find_spec(m) is None)


def _jax(device="cpu"):
    """Import jax in float64 on the CPU (one thread unless XLA_FLAGS says otherwise)."""
    os.environ.setdefault("XLA_FLAGS", ONE_THREAD)
    if not device.startswith("cuda"):
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    jax.config.update("jax_enable_x64", True)
    return jax


#: the fields :func:`field_fn` writes in jax.numpy
FIELDS = ("outer", "inner", "hamiltonian")


def field_fn(field):
    """``f(x, K, b)`` in jax.numpy, row form (see the module docstring)."""
    import jax.numpy as jnp
    if field == "outer":
        return lambda x, K, b: jnp.tanh(x) @ K.T + b
    if field == "inner":
        return lambda x, K, b: jnp.tanh(x @ K.T + b)
    if field == "hamiltonian":
        def f(x, K, b):
            m = K.shape[0]
            q, p = x[:, :m], x[:, m:]
            return jnp.concatenate([jnp.tanh(p @ K.T + b), -jnp.tanh(q @ K + b)], axis=1)
        return f
    raise ValueError(f"no jax field {field!r}")


def step_fn(problem):
    """One layer ``x_{k+1} = Ψ_h(x_k; K_k, b_k)`` in jax.numpy for ``problem.integrator``: an
    explicit Runge–Kutta tableau (``euler``, ``heun``, ``rk4``, …:
    ``Y_i = x + h Σ_j a_ij f(Y_j)``, ``x + h Σ_i b_i f(Y_i)``) or, on the hamiltonian field, a
    splitting of ``ocdl.models.resnet.SPLITTINGS`` (``verlet``, ``yoshida4``, …: drift
    ``q ← q + c h σ(p Kᵀ + b)``, kick ``p ← p − c h σ(q K + b)``) — the networks of ``ocdl.pmp``."""
    import jax.numpy as jnp
    from ocdl.models.resnet import SPLITTINGS
    f, h = field_fn(problem.field), problem.h
    if problem.integrator in SPLITTINGS:
        if problem.field != "hamiltonian":
            raise ValueError(f"{problem.integrator} needs the hamiltonian field")
        subs = SPLITTINGS[problem.integrator]

        def split(x, K, b):
            m = K.shape[0]
            q, p = x[:, :m], x[:, m:]
            for kind, c in subs:
                if kind == "drift":
                    q = q + (c * h) * jnp.tanh(p @ K.T + b)
                else:
                    p = p - (c * h) * jnp.tanh(q @ K + b)
            return jnp.concatenate([q, p], axis=1)
        return split
    from integrators.tableaux import tableau
    A, bw, _ = tableau(problem.integrator)
    if np.any(np.triu(A) != 0.0):      # the stages below are explicit: refuse, never compute another network
        from ocdl.errors import InputError
        raise InputError(f"the jax peer steps explicit Runge–Kutta tableaux and splittings; {problem.integrator} "
                         f"is implicit")

    def rk(x, K, b):
        ks = []
        for i in range(len(bw)):
            Y = x
            for j in range(i):
                if A[i, j] != 0.0:
                    Y = Y + (h * A[i, j]) * ks[j]
            ks.append(f(Y, K, b))
        out = x
        for i in range(len(bw)):
            if bw[i] != 0.0:
                out = out + (h * bw[i]) * ks[i]
        return out
    return rk


def side_by_side(cases, repeats=None):
    """Interleaved timing in this process (the fairer comparison on a shared machine).

    ``cases``: dicts with ``field, integrator, width, samples, depth`` (and optional ``repeats``).
    For each: build the costate sweep (``ocdl.pmp``), torch autograd through the generic network
    of :class:`ocdl.models.ResNetODE` (``pmp.autograd_value_and_grad``) and the compiled ``jax``
    peer on the same network and data; then run forward and gradient of each in turn R times and
    keep the best of each. Returns one dict per case with the best times (s), the ratios
    costate / jax and the gradients' relative differences to autograd."""
    import time

    from ocdl import pmp
    from ocdl.bench import gradient as G
    from ocdl.bench.problem import Problem
    from ocdl.models import ResNetODE
    rows = []
    for case in cases:
        pr = Problem(case["field"], depth=case["depth"], samples=case["samples"], width=case["width"],
                     integrator=case.get("integrator", "euler"))
        model = ResNetODE(field=pr.field, d_in=pr.X.shape[1], width=pr.width, n_classes=2,
                          layers=pr.depth, T=pr.T, integrator=pr.integrator, alpha=pr.alpha, beta=0.0)
        cf, cg = G.prepare("costate", pr)
        jf, jg = prepare("jax", pr)

        def af():
            return model.cost(pr.params, pr.X, pr.y)

        def ag():
            J, g = pmp.autograd_value_and_grad(model, pr.params, pr.X, pr.y)
            return J, pr.flat(g), {}
        fns = {"costate_fwd": cf, "costate_grad": cg, "jax_fwd": jf, "jax_grad": jg,
               "autograd_fwd": af, "autograd_grad": ag}
        grads = {k: fns[k + "_grad"]()[1] for k in ("costate", "jax", "autograd")}
        R = case.get("repeats", repeats or 20)
        best = dict.fromkeys(fns, float("inf"))
        for _ in range(R):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t0)
        ref = grads["autograd"]
        rel = {k: float(np.linalg.norm(grads[k] - ref) / np.linalg.norm(ref)) for k in ("costate", "jax")}
        rows.append({**case, "repeats": R, **best,
                     "grad_ratio": best["costate_grad"] / best["jax_grad"],
                     "fwd_ratio": best["costate_fwd"] / best["jax_fwd"],
                     "grad_vs_autograd": best["costate_grad"] / best["autograd_grad"],
                     "rel_error": rel})
    return rows


def _cost_parts(problem):
    import jax
    import jax.numpy as jnp
    alpha, h = problem.alpha, problem.h

    def terminal(xN, W, mu, y):
        s = (xN @ W.T + mu)[:, 0]
        return jnp.mean(jax.nn.softplus(-(2.0 * y - 1.0) * s)) + 0.5 * alpha * jnp.sum(W ** 2)

    def running(K, b):
        return h * 0.5 * alpha * (jnp.sum(K ** 2) + jnp.sum(b ** 2))
    return terminal, running


def final_state_fn(method, problem):
    """``xN(x0, K, b)`` for one method (jax.numpy; differentiable as the method prescribes)."""
    import jax
    import jax.numpy as jnp
    f, h = field_fn(problem.field), problem.h
    if method == "jax":
        step = step_fn(problem)

        def xN(x0, K, b):
            def layer(x, Kb):
                return step(x, *Kb), None
            return jax.lax.scan(layer, x0, (K, b))[0]
        return xN
    import diffrax
    N, T = problem.depth, problem.T
    adjoint = diffrax.BacksolveAdjoint() if method == "diffrax-backsolve" else diffrax.RecursiveCheckpointAdjoint()

    def vector_field(t, x, args):
        K, b = args
        k = jnp.clip(jnp.round(t / h).astype(jnp.int32), 0, N - 1)
        return f(x, K[k], b[k])

    term = diffrax.ODETerm(vector_field)

    def xN(x0, K, b):
        sol = diffrax.diffeqsolve(term, diffrax.Euler(), t0=0.0, t1=T, dt0=h, y0=x0, args=(K, b),
                                  stepsize_controller=diffrax.ConstantStepSize(),
                                  saveat=diffrax.SaveAt(t1=True), adjoint=adjoint, max_steps=N)
        return sol.ys[-1]
    return xN


def prepare(method, problem, device="cpu"):
    """``(forward, value_and_grad)`` as :func:`ocdl.bench.gradient.prepare`; both compiled here.

    ``value_and_grad()`` returns ``(J, flat gradient (K, b, W, μ order) float64 numpy, extra)``
    with ``extra = {"compile_s", "forward_compile_s", "xla_temp_mib"}``; ``xla_temp_mib`` is XLA's
    own estimate of the gradient program's scratch memory (None where it gives none)."""
    from ocdl.errors import InputError
    if method not in PEER_METHODS:
        raise InputError(f"unknown peer method '{method}' (valid: {', '.join(PEER_METHODS)})")
    lacking = missing(method)
    if lacking:
        raise InputError(f"method {method} needs {', '.join(lacking)}: pip install -e '.[peers]'")
    jax = _jax(device)
    import jax.numpy as jnp
    dev = jax.devices("gpu" if device.startswith("cuda") else "cpu")[0]
    terminal, running = _cost_parts(problem)
    final = final_state_fn(method, problem)

    def J(P, x0, y):
        return terminal(final(x0, P["K"], P["b"]), P["W"], P["mu"], y) + running(P["K"], P["b"])

    P = {k: jax.device_put(jnp.asarray(v, dtype=jnp.float64), dev) for k, v in problem.params.items()}
    x0 = jax.device_put(jnp.asarray(problem.x0(), dtype=jnp.float64), dev)
    y = jax.device_put(jnp.asarray(problem.y, dtype=jnp.float64), dev)

    t0 = time.perf_counter()
    vg = jax.jit(jax.value_and_grad(J)).lower(P, x0, y).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fw = jax.jit(J).lower(P, x0, y).compile()
    forward_compile_s = time.perf_counter() - t0
    try:
        mem = vg.memory_analysis()
        temp_mib = None if mem is None else mem.temp_size_in_bytes / 2 ** 20
    except Exception:   # not every backend / version reports it
        temp_mib = None
    extra = {"compile_s": compile_s, "forward_compile_s": forward_compile_s, "xla_temp_mib": temp_mib}

    def forward():
        return float(fw(P, x0, y))

    def value_and_grad():
        val, g = vg(P, x0, y)
        g = jax.block_until_ready(g)
        return float(val), problem.flat({k: np.asarray(g[k]) for k in ("K", "b", "W", "mu")}), dict(extra)
    return forward, value_and_grad


def format_row(r):
    """One line of :func:`side_by_side` output (times in ms)."""
    ms = {k: 1e3 * r[k] for k in ("costate_grad", "jax_grad", "autograd_grad",
                                  "costate_fwd", "jax_fwd", "autograd_fwd")}
    return (f"{r['field']} {r['integrator']} width {r['width']} samples {r['samples']} depth {r['depth']} "
            f"R {r['repeats']}: gradient costate {ms['costate_grad']:.3f} jax {ms['jax_grad']:.3f} "
            f"autograd {ms['autograd_grad']:.3f} ms, "
            f"forward {ms['costate_fwd']:.3f} / {ms['jax_fwd']:.3f} / {ms['autograd_fwd']:.3f} ms; "
            f"costate/jax gradient {r['grad_ratio']:.2f} forward {r['fwd_ratio']:.2f}, "
            f"costate/autograd gradient {r['grad_vs_autograd']:.2f}; "
            f"rel. error vs autograd costate {r['rel_error']['costate']:.1e} jax {r['rel_error']['jax']:.1e}")


USAGE = ("usage: python -m ocdl.bench.peers FIELD:INTEGRATOR:WIDTH:SAMPLES:DEPTH:REPEATS ... "
         "(e.g. outer:euler:8:512:256:30; needs the extra peers)")


def parse_case(token):
    """One ``FIELD:INTEGRATOR:WIDTH:SAMPLES:DEPTH:REPEATS`` argument as a case of :func:`side_by_side`
    (InputError naming the bad part)."""
    from ocdl.errors import InputError, unknown_name
    from ocdl.jobs.base import MAX_COUNT
    from ocdl.models.resnet import all_integrators
    parts = token.split(":")
    if len(parts) != 6:
        raise InputError(f"'{token}' is not FIELD:INTEGRATOR:WIDTH:SAMPLES:DEPTH:REPEATS (6 parts, got {len(parts)})")
    field, integrator, *numbers = parts
    if field not in FIELDS:
        raise unknown_name("field", field, FIELDS)      # (the jax peer's fields: field_fn)
    if integrator not in all_integrators():
        raise unknown_name("integrator", integrator, all_integrators())
    counts = []
    for name, text in zip(("WIDTH", "SAMPLES", "DEPTH", "REPEATS"), numbers):
        try:
            v = int(text)
        except ValueError:
            v = 0
        if not 1 <= v <= MAX_COUNT:
            raise InputError(f"'{token}': {name} must be an integer in 1..{MAX_COUNT} (got '{text}')")
        counts.append(v)
    if counts[1] < 2:
        raise InputError(f"'{token}': SAMPLES must be ≥ 2 (one point per class)")
    from integrators.tableaux import EXPLICIT
    from ocdl.models.resnet import SPLITTINGS
    if integrator not in EXPLICIT and integrator not in SPLITTINGS:
        raise InputError(f"'{token}': the jax peer steps the explicit Runge–Kutta tableaux "
                         f"({', '.join(EXPLICIT)}) and the splittings ({', '.join(SPLITTINGS)}); not {integrator}")
    try:                    # the field and integrator go together (verlet & co. need hamiltonian)
        from ocdl.bench.problem import Problem
        Problem(field, depth=1, samples=2, width=counts[0], integrator=integrator)
    except ValueError as exc:
        raise InputError(f"'{token}': {exc}") from None
    return dict(field=field, integrator=integrator, width=counts[0], samples=counts[1], depth=counts[2],
                repeats=counts[3])


def main(argv=None):
    """``python -m ocdl.bench.peers CASE ...``: one row of :func:`format_row` per case; bad
    arguments print one line on stderr and exit 2, as the ``ocdl`` commands do."""
    import sys
    from ocdl.errors import InputError
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    try:
        cases = [parse_case(tok) for tok in argv]
        lacking = missing("jax")
        if lacking:
            raise InputError(f"the jax peer needs {', '.join(lacking)}: pip install -e '.[peers]'")
        for case in cases:
            for row in side_by_side([case]):
                print(format_row(row), flush=True)
    except InputError as exc:
        print(f"ocdl.bench.peers: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ocdl.bench.peers: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":      # python -m ocdl.bench.peers field:integrator:width:samples:depth:R ...
    raise SystemExit(main())
