"""``ocdl holography simulate|learn`` — flags of :class:`ocdl.jobs.holography.HolographySimulateJob`
and :class:`~ocdl.jobs.holography.HolographyLearnJob`; AdS/DL bulk reconstruction (arXiv:1802.08313)."""
from ocdl.cli import common


def register(subparsers):
    from ocdl.jobs.holography import HolographyLearnJob, HolographySimulateJob
    p = subparsers.add_parser("holography", help="AdS/DL: learn a bulk metric from boundary data (optimal control)",
                              description="The radial equation of motion of a bulk scalar as a network whose "
                                          "weights are the metric function h(η) (Hashimoto et al. 2018).")
    common.add_global(p)
    sub = p.add_subparsers(dest="holography_command", metavar="{simulate,learn}")
    q = common.add_command(sub, "simulate", "boundary data (phi, pi, label) from a known metric",
                           ["ocdl holography simulate --metric '3/tanh(3*eta)' --samples 2000 --seed 0 --out holo.csv",
                            "ocdl holography simulate --m2=-1,-1,-1 --lam 0.2,1,5 --out multi.csv"], _simulate)
    common.add_job(q, HolographySimulateJob)
    q = common.add_command(sub, "learn", "learn h(η) (and m², λ) from labelled boundary data",
                           ["ocdl holography learn --data holo.csv --test holo_test.csv --solver newton "
                            "--json holo.json --plot holo.png",
                            "ocdl holography learn --data holo.csv --solver adam --init random --init-value 3 "
                            "--seed 1"], _learn)
    common.add_job(q, HolographyLearnJob)
    return p


def _simulate(args):
    common.run_job(args)
    return 0


def _learn(args):
    out = common.run_job(args)
    common.not_converged(args, args.solver, out["success"], out["message"])
    return 0
