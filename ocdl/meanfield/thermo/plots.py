"""Picture of ``ocdl meanfield thermo`` (four panels)."""
import numpy as np


def plot_thermo(out, extra, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    h = extra["history"]
    it = [r["iteration"] for r in h]
    a = ax[0, 0]
    for key, lab in (("Sx", "S_x"), ("S0", "S₀"), ("C", "C")):
        a.plot(it, [r[key] for r in h], label=lab)
    a.set_xlabel("gradient-descent iteration")
    a.set_title(f"entropies along training ({out['training']['objective']}), β = {out['beta']:g}")
    a.legend()
    a = ax[0, 1]
    for scan, style, lab in ((extra["scan"], "-", f"m = {out['mass']:g}"), (extra["scan0"], "--", "m = 0")):
        b = [r["beta"] for r in scan]
        a.loglog(b, np.abs([r["gaussian_error"] for r in scan]), "o" + style, label=f"eq. (7), {lab}")
        a.loglog(b, np.abs([r["laplace_error"] for r in scan]), "s" + style, label=f"Laplace, {lab}")
    a.set_xlabel("β")
    a.set_ylabel("|log Z_approx − log Z_exact|")
    a.set_title("Gaussian approximations against quadrature")
    a.legend(fontsize=8)
    es = extra["ensemble"]
    a = ax[1, 0]
    q, hq = es["q"], es["grid"].h[0]
    a.bar(q, es["p_hist"] / hq, width=hq, alpha=0.4, label="Langevin ensemble")
    a.plot(q, es["rho_fp"], "k", label="Fokker–Planck (20)")
    a.plot(q, es["gibbs"] / hq, "r--", label="exp(γF/D)")
    a.set_xlabel("q (rotation angle of w)")
    a.set_title(f"ensemble at T: L1 vs FP {es['histogram_fp_l1']:.3f} (MC level {es['mc_expected_l1']:.3f})")
    a.legend(fontsize=8)
    a = ax[1, 1]
    a.plot(es["times"], es["rate_measured"], "k-", label="dS_q/dt, FP (measured)")
    a.plot(es["times"], es["rate_predicted"], "ro", label="eq. (22)")
    a.plot(es["times"], es["rate_ensemble"], "b^", label="ensemble histograms")
    a.axhline(0, color="0.7", lw=0.5)
    a.set_xlabel("t")
    a.set_title("Shannon entropy production")
    a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
