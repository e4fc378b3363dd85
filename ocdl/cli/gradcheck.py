"""``ocdl gradcheck`` — flags of :class:`ocdl.jobs.gradcheck.GradcheckJob`; prints the errors."""
import json

from ocdl.cli import common
from ocdl.progress import log


def register(sub):
    from ocdl.jobs.gradcheck import GradcheckJob
    p = common.add_command(
        sub, "gradcheck", "compare the costate gradient with autograd, the continuous adjoint and finite differences",
        ["ocdl gradcheck --field outer --integrator rk4 --layers 20 --json grad.json",
         "ocdl gradcheck --field hamiltonian --integrator verlet"], run)
    common.add_job(p, GradcheckJob)
    return p


def run(args):
    out = common.run_job(args)
    if not args.json:
        from ocdl.io import to_jsonable
        print(json.dumps(to_jsonable(out)))
    log(f"costate vs autograd {out['rel_error_costate_vs_autograd']:.2e}, continuous adjoint vs autograd "
        f"{out['rel_error_continuous_adjoint_vs_autograd']:.2e}, autograd vs finite differences "
        f"{out['rel_error_autograd_vs_finite_difference']:.2e}", args.quiet)
    return 0
