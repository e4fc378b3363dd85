"""Progress output on stderr: a one-line bar with iteration, loss, residual and ETA.

Silenced by ``quiet=True`` (the ``--quiet`` flag). Never writes to stdout, which is kept for
machine-readable output. Redraws at most every 0.2 s; on a non-terminal stderr it prints a
plain line at most every 2 s.
"""
import sys
import time


class Progress:
    def __init__(self, total=None, label="", quiet=False, stream=None):
        self.total, self.label, self.quiet = total, label, quiet
        self.stream = stream or sys.stderr
        self.start = self._last = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._shown = False

    def update(self, step, force=False, **metrics):
        if self.quiet:
            return
        now = time.perf_counter()
        if not force and now - self._last < (0.2 if self.tty else 2.0):
            return
        self._last = now
        elapsed = now - self.start
        parts = [self.label] if self.label else []
        if self.total:
            frac = min(max(step / self.total, 0.0), 1.0)
            bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
            parts.append(f"[{bar}] {step}/{self.total}")
            if step > 0:
                parts.append(f"ETA {elapsed * (self.total - step) / step:5.1f}s")
        else:
            parts.append(f"{step}")
        parts += [f"{k} {v:.3e}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()]
        parts.append(f"{elapsed:.1f}s")
        line = "  ".join(parts)
        if self.tty:
            self.stream.write("\r" + line[:150].ljust(150))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = True

    def close(self, message=None):
        if self.quiet:
            return
        if self._shown and self.tty:
            self.stream.write("\n")
        if message:
            self.stream.write(message + "\n")
        self.stream.flush()


def log(message, quiet=False):
    """A human-readable status line on stderr (silenced by ``quiet``)."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)
