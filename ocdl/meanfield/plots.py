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
        axs[1].set_title("Fokker–Planck at T\n(red contours: exp(−γL/D))")
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


def plot_class_densities(grid, rho_path, layers, steps_per_layer, params, history, path, title="", particles=None):
    """Class densities (red: class 0, blue: class 1) at several layers, decision line
    ``W x + μ = 0`` at T (``params``: dict with W (1, 2), mu (1,)), loss.

    With ``particles = (states per layer, labels)`` the empirical class densities (particle
    clouds) are drawn instead of the grid densities."""
    import numpy as np
    from ocdl.plotting import plt, save_figure
    W, mu = np.ravel(params["W"]), float(np.ravel(params["mu"])[0])
    picks = sorted(set(int(round(f * layers)) for f in (0, 0.25, 0.5, 0.75, 1.0)))
    fig, axs = plt.subplots(1, len(picks) + 1, figsize=(3.3 * (len(picks) + 1), 3.4))
    ext = [grid.lower[0], grid.upper[0], grid.lower[1], grid.upper[1]]
    for ax, k in zip(axs, picks):
        if particles is not None:
            xs_k, lab = particles[0][k], particles[1]
            for c, col in ((0, "tab:red"), (1, "tab:blue")):
                ax.scatter(xs_k[lab == c, 0], xs_k[lab == c, 1], s=2, c=col, alpha=0.4, lw=0)
            ax.set_facecolor("black")
            ax.set_xlim(ext[0], ext[1])
            ax.set_ylim(ext[2], ext[3])
            if k == layers and abs(W[1]) > 1e-12:
                xs = np.linspace(ext[0], ext[1], 50)
                ax.plot(xs, -(W[0] * xs + mu) / W[1], "w--", lw=1)
                ax.set_ylim(ext[2], ext[3])
            ax.set_title(f"layer {k} (t = {k / layers:.2f} T)", fontsize=9)
            continue
        r = rho_path[k * steps_per_layer]
        img = np.zeros(tuple(grid.shape[::-1]) + (3,))
        for c, ch in ((0, 0), (1, 2)):
            d = np.maximum(r[:, c].reshape(grid.shape).T, 0)
            img[..., ch] = np.clip(d / max(np.percentile(d, 99.5), 1e-300), 0, 1)
        img[..., 1] = 0.15 * (img[..., 0] + img[..., 2])
        ax.imshow(img, origin="lower", extent=ext, aspect="equal")
        ax.set_title(f"layer {k} (t = {k / layers:.2f} T)", fontsize=9)
        if k == layers and abs(W[1]) > 1e-12:
            xs = np.linspace(ext[0], ext[1], 50)
            ax.plot(xs, -(W[0] * xs + mu) / W[1], "w--", lw=1)
            ax.set_ylim(ext[2], ext[3])
    axs[-1].semilogy([h["loss"] for h in history])
    axs[-1].set_xlabel("iteration")
    axs[-1].set_title("training loss", fontsize=9)
    fig.suptitle(title or "class densities flowing through the stochastic ResNet (red: class 0, blue: class 1)",
                 fontsize=10)
    save_figure(fig, path)


def plot_control_2d(grid, rho0, sweep, hopf_cole, Phi, path):
    """2-D drift-as-control: ρ0 with contours of Φ, ρ(T) of the sweep and of Hopf–Cole, their difference."""
    import numpy as np
    from ocdl.plotting import plt, save_figure
    ext = [grid.lower[0], grid.upper[0], grid.lower[1], grid.upper[1]]
    img = lambda v: np.asarray(v).reshape(grid.shape).T  # noqa: E731
    fig, axs = plt.subplots(1, 4, figsize=(17, 3.8), gridspec_kw={"wspace": 0.45})   # room for the colour bars
    panels = ((rho0, "ρ0 (contours: Φ)"), (sweep.rho, f"ρ(T), sweep (cost {sweep.cost:.4f})"),
              (hopf_cole.rho, f"ρ(T), Hopf–Cole (cost {hopf_cole.cost:.4f})"),
              (sweep.rho - hopf_cole.rho,
               f"sweep − Hopf–Cole (L1 {grid.volume * np.sum(np.abs(sweep.rho - hopf_cole.rho)):.1e})"))
    for ax, (v, title) in zip(axs, panels):
        im = ax.imshow(img(v), origin="lower", extent=ext, aspect="equal", cmap="RdBu_r" if "−" in title else "viridis")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        ax.set_title(title, fontsize=9)
    X = grid.centres
    axs[0].contour(X[:, 0].reshape(grid.shape).T, X[:, 1].reshape(grid.shape).T, img(Phi), 8, colors="w",
                   linewidths=0.6)
    fig.suptitle("2-D drift-as-control: FP–HJB sweep and the imaginary-time Schrödinger (Hopf–Cole) pair",
                 fontsize=10)
    save_figure(fig, path)
