"""Matplotlib on the Agg backend, and atomic figure saving."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ocdl.io.atomic import atomic_write  # noqa: E402


def _overlap(labels, renderer):
    boxes = [t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text()]
    boxes.sort(key=lambda b: b.x0)
    return any(a.x1 > b.x0 - 2 for a, b in zip(boxes, boxes[1:]))


def untangle_ticks(fig):
    """Make the x tick labels of every axes in ``fig`` not overlap: a linear axis whose labels
    collide gets fewer ticks (MaxNLocator, 4 bins); labels still colliding (or on a log axis) are
    rotated by 35°. Returns the number of axes changed."""
    from matplotlib.ticker import MaxNLocator
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    changed = 0
    for ax in fig.axes:
        if not _overlap(ax.get_xticklabels(), renderer):
            continue
        changed += 1
        if ax.get_xscale() == "linear":
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
            fig.canvas.draw()
            if not _overlap(ax.get_xticklabels(), renderer):
                continue
        ax.tick_params(axis="x", labelrotation=35)
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
    return changed


def save_figure(fig, path, dpi=120):
    """Save ``fig`` to ``path`` atomically (format from the extension, PNG by default) and close it;
    overlapping x tick labels are untangled first (:func:`untangle_ticks`)."""
    untangle_ticks(fig)
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    with atomic_write(path, mode="wb") as fh:
        fig.savefig(fh, format=ext, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
