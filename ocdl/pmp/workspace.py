"""Per-model workspaces of the fused sweeps: arrays kept from call to call.

Fresh memory costs page faults (on this machine a fresh ``(N, d+1, n)`` array costs more to
touch than the tanh written into it, and glibc returns freed heap to the OS between calls), so
the sweeps keep their caches — stored activations, rotating state and costate buffers, the
compiled kernels' sample blocks — in a workspace per model (a weak key: it goes with the model),
reused while the shapes stay the same. One thread at a time holds a model's workspace
(:class:`_borrow`); another thread meanwhile gets a throw-away one. :class:`_Lease` holds it
from a forward sweep to the costate sweep that consumes its cached stages.
"""
import threading
import weakref

import numpy as np


_WORKSPACES = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class _Workspace:
    def __init__(self):
        self.arrays = {}

    def get(self, name, shape, ones_row=False, zeros=False):
        """An array of ``shape`` (contents undefined; ``ones_row``: last row of axis −2 is 1;
        ``zeros``: zero when made)."""
        a = self.arrays.get(name)
        if a is None or a.shape != shape:
            a = np.zeros(shape) if zeros else np.empty(shape)
            if ones_row:
                a[..., -1, :] = 1.0
            self.arrays[name] = a
        return a


def release(model):
    """Free the workspace the fused Euler sweep keeps for ``model`` (it is also freed with it)."""
    with _LOCK:
        _WORKSPACES.pop(model, None)


class _borrow:
    """The model's workspace, or a throw-away one if another thread is using it."""

    def __init__(self, model):
        self.model = model
        self.locked = False

    def __enter__(self):
        with _LOCK:
            ws = _WORKSPACES.get(self.model)
            if ws is None:
                ws = _WORKSPACES[self.model] = _Workspace()
                ws.busy = False
            if ws.busy:
                return _Workspace()
            ws.busy = self.locked = True
            self.ws = ws
            return ws

    def __exit__(self, *exc):
        if self.locked:
            with _LOCK:
                self.ws.busy = False
        return False


class _Lease:
    """The model's workspace held from :func:`forward` (``store=True``) until
    :func:`costate_sweep` has consumed the cached stages — released there, or when the forward's
    result is dropped."""

    def __init__(self, model):
        self._borrow = _borrow(model)
        self.ws = self._borrow.__enter__()

    def release(self):
        if self._borrow is not None:
            self._borrow.__exit__(None, None, None)
            self._borrow = None

    def __del__(self):
        try:
            self.release()
        except Exception:       # interpreter shutdown: nothing left to release into
            pass
