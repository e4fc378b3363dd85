"""One measurement in a fresh Python process: the runner the benchmarks share.

A benchmark case (one method at one size) runs in its own process, so one method's allocations
cannot hide in another's heap and nothing is warm that the case did not warm itself. The
driving process calls :func:`run` with the worker module and a JSON-able ``spec``; the worker
module's ``__main__`` is :func:`ocdl.bench.worker_main` with its ``measure(spec)``, which prints
the JSON-able result on one line after :data:`ocdl.bench.RESULT_PREFIX`; :func:`run` reads it back.

Inside the worker, :func:`peak_mib` measures the extra resident memory one call needs (reset
the kernel's peak-RSS counter, ``echo 5 > /proc/self/clear_refs``, note ``VmRSS``, call, read
``VmHWM``; tracemalloc does not see torch's allocations, RSS does; resolution a page) and
:func:`best_of` the best wall time and the best CPU time of ``repeats`` calls (other load on a
shared machine only ever adds time; the process's CPU time leaves out the time slices other
processes took while the call was preempted — on a machine with more runnable processes than
cores a call of more than a few milliseconds is preempted every time, so its best wall time
still includes them).
"""
import json
import os
import subprocess
import sys
import time

from ocdl.bench import RESULT_PREFIX
from ocdl.errors import SolverError

#: the checkout this module belongs to (put first on the worker's PYTHONPATH)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(module, spec, what, timeout=1800):
    """``python -m module '<spec as JSON>'`` in a fresh process of this checkout; the dict its
    :func:`ocdl.bench.worker_main` printed. SolverError naming ``what`` (e.g. ``"odeblock/width 8/depth 64"``)
    with the worker's last stderr line if it failed or printed no result."""
    env = dict(os.environ)
    env["PYTHONPATH"] = _ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", module, json.dumps(spec)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)), None)
    if proc.returncode != 0 or line is None:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SolverError(f"bench worker for {what} failed: {last}")
    return json.loads(line[len(RESULT_PREFIX):])


def status_kib(key):
    """A field of ``/proc/self/status`` in KiB (``VmRSS``, ``VmHWM``), or None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak():
    """Reset the peak-RSS counter ``VmHWM`` to the current RSS; False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_mib(fn):
    """``(fn(), extra MiB, reset_ok, process peak MiB)``: the resident memory ``fn`` needed above
    what the process held before it (an upper bound when ``reset_ok`` is False: the counter then
    holds the process's earlier peak)."""
    ok = reset_peak()
    base = status_kib("VmRSS")
    out = fn()
    peak = status_kib("VmHWM")
    return out, (peak - base) / 1024.0, ok, peak / 1024.0


def best_of(fn, repeats, sync=None):
    """``(wall, cpu)``: the best wall time and the best CPU time of this process, in seconds, of
    ``repeats`` calls of ``fn`` (``sync()`` after each, e.g. ``torch.cuda.synchronize``; the CPU
    time of a GPU method is the host's only)."""
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        if sync is not None:
            sync()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)
