"""The PINN's other two roles from the slides, on the damped oscillator x'' + 2γx' + ω0²x = 0 at
(γ, ω0) = (1, 20), x(0) = 1, x'(0) = 0 (γ, ω0 known):

(a) forward solver — an MLP x(t) trained on the physics residual and the initial conditions alone
    (no data), against the exact e^{−γt}(c₁e^{iωt} + c₂e^{−iωt});
(b) extrapolation — a few noisy samples on a short window [0, t_w]: a data-only MLP against the
    PINN (same MLP, same data, physics residual on [0, 1]); errors inside and outside the window.

Writes examples/pinn_roles.png and prints the errors (max |x − x_exact| and relative L2 on a fine
grid). Run from the repository root:  python examples/pinn_roles.py [--out PNG] [--steps N]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ocdl.forces.pinn import DampedOscillator, exact_damped, fit_pinn  # noqa: E402
from ocdl.plotting import plt, save_figure  # noqa: E402

GAMMA, OMEGA0, X0, V0, T = 1.0, 20.0, 1.0, 0.0, 1.0


def errors(pred, exact):
    return float(np.max(np.abs(pred - exact))), float(np.linalg.norm(pred - exact) / np.linalg.norm(exact))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "pinn_roles.png"))
    ap.add_argument("--steps", type=int, default=3000, help="Adam steps of each network (then ≤ 300 L-BFGS)")
    ap.add_argument("--window", type=float, default=0.3, help="data window [0, t_w] (default 0.3)")
    ap.add_argument("--points", type=int, default=10, help="data points in the window (default 10)")
    ap.add_argument("--noise", type=float, default=0.02, help="data noise std (default 0.02)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    fine = np.linspace(0, T, 1001)
    exact = exact_damped(fine, GAMMA, OMEGA0, X0, V0)
    kw = dict(adam_steps=args.steps, lbfgs_steps=300, lr=2e-3, collocation=256, seed=args.seed)

    # (a) forward: physics + initial conditions, no data
    t0 = time.perf_counter()
    fwd = fit_pinn(DampedOscillator(GAMMA, OMEGA0, T, x0=X0, v0=V0), [], **kw)
    fwd_err = errors(fwd.predict(fine), exact)
    print(f"(a) forward PINN: max error {fwd_err[0]:.3g}, rel. L2 {fwd_err[1]:.3%} ({time.perf_counter() - t0:.1f}s)")

    # (b) extrapolation: few noisy points on [0, t_w]
    rng = np.random.default_rng(args.seed)
    td = np.linspace(0, args.window, args.points)
    xd = exact_damped(td, GAMMA, OMEGA0, X0, V0) + rng.normal(0, args.noise, args.points)
    inside, outside = fine <= args.window, fine > args.window
    runs = {}
    for label, weight in (("data only", 0.0), ("PINN", 1.0)):
        t0 = time.perf_counter()
        r = fit_pinn(DampedOscillator(GAMMA, OMEGA0, T, td, xd), [], weight=weight, **kw)
        pred = r.predict(fine)
        runs[label] = (pred, errors(pred[inside], exact[inside]), errors(pred[outside], exact[outside]))
        (_, (imax, il2), (omax, ol2)) = runs[label]
        print(f"(b) {label:9s}: inside the window max {imax:.3g} (rel. L2 {il2:.2%}); "
              f"outside max {omax:.3g} (rel. L2 {ol2:.1%}) ({time.perf_counter() - t0:.1f}s)")

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.4))
    ax = axes[0]
    ax.plot(fine, exact, color="0.4", lw=4, alpha=0.35, label="exact")
    ax.plot(fine, fwd.predict(fine), color="C0", lw=1.3,
            label=f"PINN, initial conditions only (max error {fwd_err[0]:.2g})")
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    ax.set_title("(a) forward solver: no data")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.axvspan(0, args.window, color="0.93")
    ax.plot(fine, exact, color="0.4", lw=4, alpha=0.35, label="exact")
    ax.plot(td, xd, "o", color="k", ms=4, label=f"{args.points} noisy samples")
    for k, (label, (pred, _, out)) in enumerate(runs.items()):
        ax.plot(fine, pred, color=f"C{k + 1}", lw=1.3, label=f"{label} (outside: max error {out[0]:.2g})")
    ax.set_ylim(-1.5, 1.5)
    ax.set_xlabel("t")
    ax.set_title(f"(b) extrapolation: data on [0, {args.window:g}] (shaded)")
    ax.legend(fontsize=8)
    fig.suptitle(f"damped oscillator, (γ, ω0) = ({GAMMA:g}, {OMEGA0:g}); MLP 3×32 tanh, "
                 f"{args.steps} Adam steps + ≤ 300 L-BFGS")
    save_figure(fig, args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
