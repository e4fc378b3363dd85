"""``ocdl integrators`` — flags of :class:`ocdl.jobs.integrators.IntegratorsJob`; prints its table
(order, energy error, time per method; ``--json``, ``--plot`` written by the job)."""
from ocdl.cli import common


def register(sub):
    from ocdl.jobs.integrators import IntegratorsJob
    p = common.add_command(
        sub, "integrators", "compare the one-step methods of the integrators package on a Hamiltonian problem",
        ["ocdl integrators --problem kepler --json integrators.json --plot integrators.png",
         "ocdl integrators --problem pendulum --steps 20000 --periods 200 --methods verlet,rk4,gauss2"],
        func=run)
    common.add_job(p, IntegratorsJob)
    return p


def run(args):
    job = common.job_from_args(args)
    job.run()
    print(job.table)
    return 0
