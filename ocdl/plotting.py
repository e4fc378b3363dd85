"""Matplotlib on the Agg backend, and atomic figure saving."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ocdl.io.atomic import atomic_write  # noqa: E402


def save_figure(fig, path, dpi=120):
    """Save ``fig`` to ``path`` atomically (format from the extension, PNG by default) and close it."""
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    with atomic_write(path, mode="wb") as fh:
        fig.savefig(fh, format=ext, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
