"""``ocdl integrators`` as a library call: :class:`IntegratorsJob` runs every method of the
``integrators`` table on one Hamiltonian problem — the measured order of convergence (log–log slope
of the error against the exact solution over doubling step counts,
:func:`integrators.study.measured_order`), the maximum energy error ``max_n |H(q_n, p_n) − H(q_0, p_0)|``
over a long run of ``steps`` steps covering ``periods`` periods, and that run's wall time — or, with
``stiff``, the stiff study (:func:`integrators.stiff.stiff_study`: Van der Pol with ε = 1e-6 on its
slow manifold, Newton stages against the largest fixed-point step, errors against scipy's Radau).
"""
import dataclasses
import math

import numpy as np

from ocdl.errors import InputError, SolverError
from ocdl.jobs import work
from ocdl.jobs.base import Job, option

STIFF_METHODS = ("gauss2", "gauss3", "implicit_midpoint")


def _problems():
    from integrators import problems
    return list(problems.PROBLEMS)


def _methods():
    import integrators
    return list(integrators.available())


@dataclasses.dataclass
class IntegratorsJob(Job):
    """``ocdl integrators``: order, energy error and time of every one-step method."""
    problem: str = option("kepler", "kepler (e = 0.5, default), pendulum (amplitude 97°) or oscillator", "choice",
                          choices=_problems())
    steps: int = option(1000, "steps of the long run whose energy error is reported (default 1000)", "count")
    periods: float = option(10.0, "length of the long run in periods of the orbit (default 10; "
                                  "h = periods·period/steps)", "positive")
    methods: list = option(None, "comma-separated subset of methods (default: all)", "names", choices=_methods())
    stage_solver: str = option("auto", "implicit Runge–Kutta stages: auto (default: fixed point, Newton where it "
                                       "fails), fixed-point or newton", "choice",
                               choices=["auto", "fixed-point", "newton"])
    stiff: bool = option(False, "the stiff study instead: Van der Pol (eps = 1e-6) with Newton stages vs scipy "
                                "Radau, for the implicit Runge–Kutta methods among --methods (default gauss2, gauss3, "
                                "implicit_midpoint)", "switch")
    json: str = option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")
    plot: str = option(None, "write a picture", "path", role="output", metavar="PNG")
    seed: int = option(0, "accepted for uniformity with the other commands; these runs are deterministic", "seed")

    def check(self):
        if self.stiff:
            if not [m for m in (self.methods or STIFF_METHODS) if m in STIFF_METHODS]:
                raise InputError(f"--stiff studies the implicit Runge–Kutta methods ({', '.join(STIFF_METHODS)}); "
                                 f"--methods names none of them")
        elif self.steps < 2 * self.periods:
            raise InputError(f"--steps {self.steps} is too few for --periods {self.periods:g}: give at least 2 steps "
                             f"per period (e.g. --steps {int(math.ceil(100 * self.periods))})")

    def estimate(self):
        return work.integrators(self)

    def execute(self):
        return self._stiff() if self.stiff else self._study()

    def _study(self):
        import integrators
        from integrators import problems, study
        from ocdl.progress import Progress
        problem = problems.get_problem(self.problem)
        methods = self.methods or integrators.available()
        steps, periods = self.steps, self.periods
        self.log(f"ocdl integrators: {problem.description}; {steps} steps over {periods:g} periods "
                 f"(h = {periods * problem.period / steps:.4g})")
        bar = Progress(len(methods), "integrators", self.quiet)
        results, runs = {}, {}
        for i, name in enumerate(methods):
            bar.update(i, force=True, method=name)
            # the problems are separable (H = T(p) + V(q)): the splitting methods run explicitly
            order = study.measured_order(name, problem, separable=True, stage_solver=self.stage_solver)
            entry = {"order": order.order, "classical_order": integrators.order(name),
                     "order_steps": order.steps, "order_errors": order.errors}
            try:
                r = study.energy_run(name, problem, steps, periods, separable=True, stage_solver=self.stage_solver)
            except integrators.IntegratorError as exc:  # one method failing is a result, not a crash
                entry.update(energy_error=None, time_s=None, invariant_error=None, error=str(exc))
                self.log(f"ocdl integrators: {name} failed: {exc}")
            else:
                runs[name] = r
                entry.update(energy_error=float(r.energy_error.max()), time_s=r.time_s,
                             invariant_error=None if r.invariant_error is None else float(r.invariant_error.max()))
            results[name] = entry
        bar.close()
        if not runs:
            raise SolverError(f"every method failed on {problem.name} with {steps} steps over {periods:g} periods; "
                              "use more steps")
        out = {"problem": problem.name, "description": problem.description, "steps": steps, "periods": periods,
               "h": periods * problem.period / steps, "methods": results}
        self.table = _table(problem, results)
        if self.json:
            from ocdl.io import write_json
            write_json(self.json, out)
            self.log(f"wrote {self.json}")
        if self.plot:
            _plot(problem, runs, results, self.plot, steps, periods)
            self.log(f"wrote {self.plot}")
        return out

    def _stiff(self):
        from integrators.stiff import stiff_study
        methods = [m for m in (self.methods or STIFF_METHODS) if m in STIFF_METHODS]
        out, lines = {}, []
        for name in methods:
            r = out[name] = stiff_study(name)
            lines.append(f"{name}: {r['problem']}; largest fixed-point step {r['fixed_point_max_step']:.3g}")
            lines.append(f"  {'steps':>6} {'h':>9} {'h/h_fp':>9} {'error vs Radau':>15} {'time [s]':>9}")
            for row in r["runs"]:
                err = f"{row['error_vs_radau']:15.3e}" if row["converged"] else f"{'failed':>15}"
                lines.append(f"  {row['steps']:6d} {row['h']:9.3g} {row['h_over_fixed_point']:9.3g} {err} "
                             f"{row['time_s']:9.3f}")
        self.table = "\n".join(lines)
        if self.json:
            from ocdl.io import write_json
            write_json(self.json, {"stiff": out})
            self.log(f"wrote {self.json}")
        if self.plot:
            _plot_stiff(out, self.plot)
            self.log(f"wrote {self.plot}")
        return {"stiff": out}


def _plot_stiff(out, path):
    from ocdl.plotting import plt, save_figure
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, r in out.items():
        ok = [row for row in r["runs"] if row["converged"]]
        ax.loglog([row["h"] for row in ok], [row["error_vs_radau"] for row in ok], "o-",
                  label=f"{name}, Newton stages")
        ax.axvline(r["fixed_point_max_step"], ls=":", color=ax.lines[-1].get_color(), lw=1)
    ax.set_xlabel("step h (dotted: largest step fixed-point stages converge)")
    ax.set_ylabel("max |y(0.5) − y_Radau(0.5)|")
    ax.set_title("Van der Pol, eps = 1e-6, slow manifold: Newton stages vs scipy Radau", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def _table(problem, results):
    lines = []
    inv = "angular momentum" if problem.name == "kepler" else None
    head = f"{'method':<20} {'order':>6} {'(classical)':>11} {'max |ΔH|':>10} {'time [s]':>9}"
    if inv:
        head += f" {'max |ΔL|':>10}"
    lines.append(head)
    for name, r in results.items():
        if r["energy_error"] is None:
            lines.append(f"{name:<20} {r['order']:6.2f} {r['classical_order']:>11d}     failed: {r['error']}")
            continue
        line = (f"{name:<20} {r['order']:6.2f} {r['classical_order']:>11d} {r['energy_error']:10.2e} "
                f"{r['time_s']:9.3f}")
        if inv:
            line += f" {r['invariant_error']:10.2e}"
        lines.append(line)
    return "\n".join(lines)


def _plot(problem, runs, results, path, steps, periods):
    import integrators
    from ocdl.plotting import plt, save_figure
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1.6, 1]})
    colors = plt.get_cmap("tab20").colors
    tiny = 1e-17  # |ΔH| is exactly 0 at t = 0; keep the log axis finite
    for i, (name, r) in enumerate(runs.items()):
        m = integrators.get_method(name)
        style = "-" if m.symplectic else "--"
        stride = max(1, len(r.t) // 4000)
        ax.semilogy(r.t[::stride] / problem.period, np.maximum(r.energy_error[::stride], tiny), style,
                    color=colors[i % 20], lw=0.9,
                    label=f"{name} (order {m.order}, measured {results[name]['order']:.2f})")
        o = results[name]
        if len(o["order_steps"]) >= 2:
            ax2.loglog(np.array(o["order_steps"], dtype=float), o["order_errors"], "o" + style, color=colors[i % 20],
                       ms=3, lw=0.9)
    ax.set_xlabel("t / period")
    ax.set_ylabel("|H(t) − H(0)|")
    ax.set_title(f"energy error: {problem.description}, {steps} steps over {periods:g} periods\n"
                 "solid: symplectic (bounded), dashed: not symplectic (drifts)")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_ylim(bottom=1e-16)
    ax2.set_xlabel("steps per 0.7 period")
    ax2.set_ylabel("error at t = 0.7 period")
    ax2.set_title("convergence: measured order (slope)")
    ax2.grid(True, which="major", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.12))
    save_figure(fig, path)
