"""Per-model workspaces of the sweeps: arrays kept from call to call, numpy or torch.

Fresh memory costs page faults (on this machine a fresh ``(N, d+1, n)`` array costs more to
touch than the tanh written into it, and glibc returns freed heap to the OS between calls), so
the sweeps keep their caches — stored activations, rotating state and costate buffers, the
compiled kernels' sample blocks — in a workspace per model and array library (numpy, or torch
on one device), under a weak key: it goes with the model. Arrays are reused while the shapes
stay the same. One thread at a time holds a model's workspace (:class:`borrow`); another
thread meanwhile gets a throw-away one. A two-phase sweep (:func:`ocdl.pmp.dispatch.finish`)
holds it from its forward to the end of its costate sweep, which reads the cached stages: a
second forward of the same model meanwhile (a block applied twice before one backward) works
in a throw-away workspace, so neither overwrites the other's stages.
"""
import threading
import weakref

import numpy as np

_WORKSPACES = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class Workspace:
    """Named float64 arrays of one library: numpy (``device`` None) or torch on ``device``."""

    def __init__(self, device=None):
        self.device, self.arrays, self.busy, self.memos = device, {}, False, {}

    def get(self, name, shape, ones_row=False, zeros=False):
        """An array of ``shape`` (contents undefined; ``ones_row``: last row of axis −2 is 1;
        ``zeros``: zero when made)."""
        a = self.arrays.get(name)
        if a is None or tuple(a.shape) != tuple(shape):
            if self.device is None:
                a = np.zeros(shape) if zeros else np.empty(shape)
            else:
                import torch
                a = (torch.zeros if zeros else torch.empty)(shape, dtype=torch.float64, device=self.device)
            if ones_row:
                a[..., -1, :] = 1.0
            self.arrays[name] = a
        return a

    def views(self, name, base, make):
        """``make()`` — views into the workspace array ``base`` (or a tuple of them; e.g. per-layer
        ``unbind``s) — made once and kept while they stay the arrays (a torch view costs ~1 µs)."""
        bases = base if isinstance(base, tuple) else (base,)
        hit = self.memos.get(name)
        if hit is None or len(hit[0]) != len(bases) or any(a is not b for a, b in zip(hit[0], bases)):
            hit = self.memos[name] = (bases, make())
        return hit[1]


class borrow:
    """The model's workspace (numpy, or torch on ``device``), or a throw-away one if another
    thread is using it."""

    def __init__(self, model, device=None):
        self.model, self.key, self.ws = model, None if device is None else str(device), None

    def __enter__(self):
        with _LOCK:
            per = _WORKSPACES.setdefault(self.model, {})
            ws = per.get(self.key)
            if ws is None:
                ws = per[self.key] = Workspace(self.key)
            if ws.busy:
                return Workspace(self.key)
            ws.busy = True
            self.ws = ws
            return ws

    def __exit__(self, *exc):
        if self.ws is not None:
            with _LOCK:
                self.ws.busy = False
            self.ws = None
        return False

