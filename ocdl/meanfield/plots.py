"""Pictures for the mean-field studies (matplotlib, Agg; written atomically)."""


def plot_langevin(r, path, title=""):
    from ocdl.plotting import plt, save_figure
    g = r["grid"]
    if g.dim == 1:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        x = g.centres[:, 0]
        nb = max(g.ncells // 8, 10)
        ax.hist(r["particles_T"][:, 0], bins=nb, range=(g.lower[0], g.upper[0]), density=True, alpha=0.4,
                label=f"ensemble of {len(r['particles_T'])} Langevin-trained neurons")
        ax.plot(x, r["rho_fp"], "k-", lw=2, label="Fokker–Planck at T")
        ax.plot(x, r["rho_stationary"], "r--", lw=1.5, label="exp(−γL/D) (stationary)")
        ax.set_xlabel("w (trainable weight)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    else:
        fig, axs = plt.subplots(1, 3, figsize=(13, 4))
        ext = [g.lower[0], g.upper[0], g.lower[1], g.upper[1]]
        H = r["p_hist"].reshape(g.shape) / g.volume
        F = r["rho_fp"].reshape(g.shape)
        vmax = max(H.max(), F.max())
        axs[0].imshow(H.T, origin="lower", extent=ext, aspect="auto", vmax=vmax)
        axs[0].set_title("ensemble histogram at T")
        axs[1].imshow(F.T, origin="lower", extent=ext, aspect="auto", vmax=vmax)
        axs[1].contour(r["rho_stationary"].reshape(g.shape).T, extent=ext, colors="r", linewidths=0.8)
        axs[1].set_title("Fokker–Planck at T (red: exp(−γL/D))")
        for a in axs[:2]:
            a.set_xlabel("w")
            a.set_ylabel("b")
        w = g.axes()[0]
        axs[2].plot(w, H.sum(1) * g.h[1], "C0.", ms=3, label="ensemble (marginal of w)")
        axs[2].plot(w, F.sum(1) * g.h[1], "k-", label="Fokker–Planck")
        axs[2].plot(w, r["rho_stationary"].reshape(g.shape).sum(1) * g.h[1], "r--", label="stationary")
        axs[2].set_xlabel("w")
        axs[2].legend(fontsize=8)
    fig.suptitle(title or f"Langevin learning: L1(histogram, FP) = {r['histogram_fp_l1']:.3f} "
                 f"(Monte-Carlo level {r['mc_expected_l1']:.3f})", fontsize=10)
    save_figure(fig, path)
