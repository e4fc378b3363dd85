"""Learning-rate schedules ``lr_it`` for iteration ``it = 1 … total``.

* ``constant``:    ``lr``
* ``cosine``:      ``lr (1 + cos(π (it − 1)/total)) / 2`` — from ``lr`` to ≈ 0
* ``exponential``: ``lr · decay^((it − 1)/total)`` — from ``lr`` to ``lr · decay``
* a callable ``schedule(it, total) → lr`` is used as given.
"""
import math

SCHEDULES = ("cosine", "constant", "exponential")


def learning_rate(lr, schedule, it, total, decay=1e-2):
    if callable(schedule):
        return float(schedule(it, total))
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * (it - 1) / max(total, 1)))
    if schedule == "constant":
        return lr
    if schedule == "exponential":
        return lr * decay ** ((it - 1) / max(total, 1))
    from ocdl.errors import unknown_name
    raise unknown_name("learning-rate schedule", schedule, list(SCHEDULES))
