"""Bounded work: every job estimates its memory and time before it starts.

:class:`Estimate` holds bytes, seconds and the options that drive them; :func:`check_budget`
refuses (InputError, exit 2) when the memory exceeds half the available memory, or the time
:data:`DEFAULT_MAX_SECONDS` (``max_seconds`` / ``--max-seconds S`` lifts or lowers it). The
estimates are deliberately rough upper-end figures (constants stated where they are made, e.g.
:data:`SECONDS_PER_FLOP`): they exist to refuse runs that cannot finish, such as
``--steps 1e9``, before allocating anything — not to predict run times.
"""
import dataclasses

from ocdl.errors import InputError

#: time bound of a run without ``--max-seconds`` (one hour)
DEFAULT_MAX_SECONDS = 3600.0
#: seconds per float64 operation of vectorised numpy work (≈ 1 GFLOP/s on one busy core)
SECONDS_PER_FLOP = 1e-9
#: seconds of interpreter overhead per Python-level step (one time step, one layer, one iteration)
SECONDS_PER_STEP = 1e-4
#: seconds per row of a written CSV table (measured 3–6 µs per row of 2–4 numbers on this
#: machine: ``meanfield fokker-planck``/``particles``/``control`` and ``forces simulate`` at 10⁶ rows)
SECONDS_PER_ROW = 1e-5
F64 = 8


@dataclasses.dataclass
class Estimate:
    """``bytes`` of memory and ``seconds`` of work of a run; ``flags`` names the options driving them
    (e.g. ``"--steps 1000000000 --cells 800"``), ``advice`` how to reduce them."""
    bytes: float = 0.0
    seconds: float = 0.0
    flags: str = ""
    advice: str = "reduce them"

    @classmethod
    def of(cls, flops=0.0, steps=0.0, floats=0.0, flags="", advice="reduce them", rows=0.0):
        """From ``flops`` of array work, ``steps`` Python-level steps, ``floats`` float64s held and
        ``rows`` of CSV output written."""
        return cls(F64 * float(floats), SECONDS_PER_FLOP * float(flops) + SECONDS_PER_STEP * float(steps)
                   + SECONDS_PER_ROW * float(rows), flags, advice)


def available_memory():
    """Bytes of memory available to this process (MemAvailable of /proc/meminfo; 8 GB if unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 8 << 30


def _duration(s):
    return f"{s / 86400:.3g} days" if s > 2 * 86400 else f"{s / 3600:.3g} h" if s > 7200 else f"{s:.3g} s"


def check_budget(est, max_seconds=None):
    """InputError when ``est`` needs more than half the available memory or more than ``max_seconds``
    (None: :data:`DEFAULT_MAX_SECONDS`) of time."""
    limit = available_memory() // 2
    if est.bytes > limit:
        raise InputError(f"{est.flags} would need about {est.bytes / 2**30:.3g} GB of memory "
                         f"(available: {limit / 2**30:.3g} GB); {est.advice}")
    bound = DEFAULT_MAX_SECONDS if max_seconds is None else float(max_seconds)
    if est.seconds > bound:
        raise InputError(f"{est.flags} would take about {_duration(est.seconds)} (bound {_duration(bound)}); "
                         f"reduce them, or raise the bound with --max-seconds")


def check_memory(nbytes, flags, advice="reduce them"):
    """:func:`check_budget` for memory alone."""
    check_budget(Estimate(nbytes, 0.0, flags, advice), float("inf"))
