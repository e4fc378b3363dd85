"""Long runs lose nothing: checkpoints, Ctrl-C / SIGTERM and ``--resume``, shared by every training command.

Library side (no argparse): a solver loop takes the options ``state0`` (a state to continue from),
``checkpoint`` (a callable receiving the state dict), ``checkpoint_every`` (K) and ``should_stop``
(a zero-argument callable) and calls :meth:`Checkpointer.after_step` after each step:

* every K steps it hands ``state`` to ``checkpoint``;
* when ``should_stop()`` turns true it saves too, then raises ``KeyboardInterrupt`` (exit code 130).

A state is ``{"iteration": steps done, "params": {name: array}, "opt": {name: array},
"history": [...], "meta": {JSON-able extras, e.g. a numpy Generator state}}`` — the container is
:func:`ocdl.data.modelfile.save_checkpoint` (``DIR/checkpoint.npz``, atomic).

CLI side: :mod:`ocdl.cli.runcontrol`.
"""

import numpy as np



class Checkpointer:
    """Checkpoint on schedule or on interrupt; ``after_step(n, state)`` with ``n`` = steps done."""

    def __init__(self, checkpoint=None, checkpoint_every=None, should_stop=None):
        self.checkpoint, self.every, self.should_stop = checkpoint, checkpoint_every, should_stop

    def after_step(self, n, state, progress=None, label="run"):
        """``state`` may be a zero-argument callable, evaluated only when a checkpoint is written."""
        stop = self.should_stop is not None and bool(self.should_stop())
        due = bool(self.every) and n > 0 and n % self.every == 0
        if self.checkpoint is not None and (stop or due):
            self.checkpoint(state() if callable(state) else state)
        if stop:
            if progress is not None:
                progress.close(f"{label}: interrupted after step {n}"
                               + ("; checkpoint saved" if self.checkpoint is not None else ""))
            raise KeyboardInterrupt

    def save(self, state):
        if self.checkpoint is not None:
            self.checkpoint(state() if callable(state) else state)


def torch_adam_state(opt, tensors):
    """Adam's moments and step counts of ``tensors`` (in order) as float64 arrays ``{key_i: ...}``."""
    out = {}
    for i, t in enumerate(tensors):
        st = opt.state.get(t, {})
        if not st:
            continue
        out[f"step_{i}"] = np.array(float(st["step"]))
        out[f"m_{i}"] = st["exp_avg"].detach().cpu().numpy().astype(float)
        out[f"v_{i}"] = st["exp_avg_sq"].detach().cpu().numpy().astype(float)
        if "max_exp_avg_sq" in st:
            out[f"vmax_{i}"] = st["max_exp_avg_sq"].detach().cpu().numpy().astype(float)
    out["lr"] = np.array(float(opt.param_groups[0]["lr"]))
    return out


def load_torch_adam_state(opt, tensors, saved):
    """Inverse of :func:`torch_adam_state` (bit-for-bit: the arrays are float64 like the tensors)."""
    import torch
    for i, t in enumerate(tensors):
        if f"m_{i}" not in saved:
            continue
        st = {"step": torch.tensor(float(saved[f"step_{i}"])),
              "exp_avg": torch.tensor(saved[f"m_{i}"], dtype=t.dtype).reshape(t.shape),
              "exp_avg_sq": torch.tensor(saved[f"v_{i}"], dtype=t.dtype).reshape(t.shape)}
        if f"vmax_{i}" in saved:
            st["max_exp_avg_sq"] = torch.tensor(saved[f"vmax_{i}"], dtype=t.dtype).reshape(t.shape)
        opt.state[t] = st
    for group in opt.param_groups:
        group["lr"] = float(saved["lr"])
