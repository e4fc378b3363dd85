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


def _labels(ax):
    """The drawn x tick labels of ``ax``: major and minor (a log axis spanning less than a decade
    labels its minor ticks too), those inside the view limits only (matplotlib also hands back
    the labels of ticks just outside, which are not drawn)."""
    lo, hi = sorted(ax.get_xlim())
    span = (hi - lo) * 1e-9
    return [t for t in list(ax.get_xticklabels()) + list(ax.get_xticklabels(minor=True))
            if lo - span <= t.get_position()[0] <= hi + span]


def _plain(value, _pos=None):
    """A short tick label: ``0.003``, ``40``, ``2e-05`` (``%g``)."""
    return f"{value:g}"


def untangle_ticks(fig):
    """Make the x tick labels of every axes in ``fig`` not overlap. A linear axis whose labels
    collide gets fewer ticks (MaxNLocator, 4 bins). A log axis first gets short ``%g`` labels
    (``0.003`` instead of ``3×10⁻³``), then only the minor ticks 2 and 5 of each decade labelled,
    then no minor labels at all if at least two major ticks are in view. Labels still colliding
    are rotated by 35°. Returns the number of axes changed."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    changed = 0

    def clear(ax):
        fig.canvas.draw()
        return not _overlap(_labels(ax), renderer)

    for ax in fig.axes:
        if not _overlap(_labels(ax), renderer):
            continue
        changed += 1
        if ax.get_xscale() == "linear":
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
            if clear(ax):
                continue
        elif ax.get_xscale() == "log":
            ax.xaxis.set_major_formatter(FuncFormatter(_plain))
            ax.xaxis.set_minor_formatter(FuncFormatter(_plain))
            if clear(ax):
                continue
            ax.xaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
            if clear(ax):
                continue
            lo, hi = sorted(ax.get_xlim())
            majors = [v for v in ax.get_xticks() if lo <= v <= hi]
            if len(majors) >= 2:
                ax.xaxis.set_minor_formatter(NullFormatter())
                if clear(ax):
                    continue
        ax.tick_params(axis="x", which="both", labelrotation=35)
        for t in _labels(ax):
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
