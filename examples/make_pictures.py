"""Run every example and write its picture into docs/img/ (the pictures the README and docs show).

    python examples/make_pictures.py [NAME ...]      # all examples, or only the named ones

Each example runs in its own process and must finish in under a minute on 2 cores; the wall
time of each is printed.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# example script -> how it takes its output path ("pos": first argument, "--out": a flag)
EXAMPLES = {
    "spirals": "pos",
    "compare_pmp_backprop": "pos",
    "integrators_kepler": "--out",
    "forces_drag": "--out",
    "forces_position": "--out",
    "oscillator_pinn": "--out",
    "pinn_roles": "--out",
    "forces_potential": "--out",
    "forces_adam_paper": "--out",
    "holography": "--out",
    "meanfield_fokker_planck": "pos",
    "meanfield_control": "pos",
    "meanfield_nls": "pos",
    "meanfield_langevin": "pos",
    "meanfield_train": "pos",
    "defaults_study": "--out",
}


def command(name, out):
    script = os.path.join(HERE, name + ".py")
    return [sys.executable, script, out] if EXAMPLES[name] == "pos" else [sys.executable, script, "--out", out]


def run(name, outdir, timeout=300):
    out = os.path.join(outdir, name + ".png")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    proc = subprocess.run(command(name, out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, out, time.perf_counter() - start


def main(names):
    outdir = os.path.join(ROOT, "docs", "img")
    os.makedirs(outdir, exist_ok=True)
    failed = 0
    for name in names or list(EXAMPLES):
        proc, out, seconds = run(name, outdir)
        ok = proc.returncode == 0 and os.path.exists(out)
        failed += not ok
        print(f"{name:26s} {'ok' if ok else 'FAILED'}  {seconds:6.1f} s  {out}")
        if not ok:
            print(proc.stderr[-2000:])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
