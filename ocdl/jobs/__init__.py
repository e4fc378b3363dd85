"""Library entry points of the commands: one config dataclass (a *job*) per command, holding the
defaults, the validation, the memory/time estimate, the data loading and the last-good saving;
``job.run()`` does the work and returns the command's JSON dict. See :mod:`ocdl.jobs.base` and
docs/cli.md ("How a command is built")."""
from ocdl.jobs.base import Job, Resumable, option  # noqa: F401


def __getattr__(name):
    if name == "TrainJob":
        from ocdl.jobs.train import TrainJob
        return TrainJob
    raise AttributeError(f"module 'ocdl.jobs' has no attribute '{name}'")
