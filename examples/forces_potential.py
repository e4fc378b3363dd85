"""Finding potentials (the PINN slides' inverse problem): learn V(x) in x'' + 2γx' + ω0² V(x) = 0
from one trajectory, (γ, ω0) = (1, 20) known, x(0) = 1, x'(0) = 0, 201 noise-free samples on
[0, 1], true V(x) = x + 0.5x³. Gauss–Newton (time-window continuation, from a zero table), Adam
(the same windows, from a zero table) and the PINN (MLP x(t) + the residual with the same table V)
side by side; errors over the visited range and its central 90 %.

Writes examples/forces_potential.png. Run from the repository root:
    python examples/forces_potential.py [--out PNG] [--adam-steps N] [--pinn-steps N]
"""
import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TRUTH = "x + 0.5*x**3"


def _problem():
    from ocdl.expr import compile_expr
    from ocdl.forces.potential import PotentialProblem
    from ocdl.forces.simulate import simulate_potential
    V = compile_expr(TRUTH, ("x",))
    t, x = simulate_potential(V, 1.0, 20.0, 1.0, 0.0, T=1.0, samples=201)
    return PotentialProblem(t, x, 1.0, 20.0, x0=1.0, v0=0.0), V


def run(job):
    import torch
    torch.set_num_threads(1)
    from ocdl.forces.potential import solve_potential, summarize
    solver, kw = job
    problem, V = _problem()
    res = solve_potential(problem, solver, 1e-6, **kw)
    res.pop("predict", None)                  # not picklable
    return solver, res, summarize(problem, res, solver, 1e-6, "zero", truth=V)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "forces_potential.png"))
    ap.add_argument("--adam-steps", type=int, default=500)
    ap.add_argument("--pinn-steps", type=int, default=3000, help="(1,500 + 200 L-BFGS: still 100 % off)")
    args = ap.parse_args()
    jobs = [("newton", {}), ("pinn", {"adam_steps": args.pinn_steps, "lbfgs_steps": 300}),
            ("adam", {"iterations": args.adam_steps, "lr": 0.05})]
    with ProcessPoolExecutor(2) as pool:
        results = {s: (r, summ) for s, r, summ in pool.map(run, jobs)}
    for s, (_, summ) in results.items():
        print(f"{s:7s} rel. L2 error {summ['rel_l2_error']:7.2%} (central 90 %: {summ['rel_l2_error_central90']:.2%}), "
              f"{summ['iterations']} iterations, {summ['wall_time_s']:.1f}s")
    from ocdl.forces.plots import plot_potential
    from ocdl.expr import compile_expr
    problem, _ = _problem()
    plot_potential(args.out, problem, results, compile_expr(TRUTH, ("x",)),
                   title=f"finding V(x) = {TRUTH}: x'' + 2γx' + ω0² V(x) = 0, (γ, ω0) = (1, 20), 201 samples; "
                         f"Adam {args.adam_steps} steps, PINN {args.pinn_steps} + ≤ 300 L-BFGS")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
