"""``ocdl train`` — flags of :class:`ocdl.jobs.train.TrainJob`; prints its summary."""
import json

from ocdl.cli import common
from ocdl.progress import log


def register(sub):
    from ocdl.jobs.train import TrainJob
    p = common.add_command(
        sub, "train", "train a ResNet-ODE classifier (backprop or Pontryagin costate)",
        ["ocdl train --data spirals --solver pmp-adam --plot spirals.png --json out.json --save model.npz",
         "ocdl train --data train.csv --test test.csv --field hamiltonian --integrator verlet"],
        run)
    common.add_job(p, TrainJob)
    return p


def run(args):
    out = common.run_job(args)
    if not args.json:
        from ocdl.io import to_jsonable
        print(json.dumps(to_jsonable({k: v for k, v in out.items() if k != "history"})))
    tested = out["test_accuracy"] is not None
    log(f"{out['solver']}: loss {out['train_loss']:.5f}, train accuracy {100 * out['train_accuracy']:.1f} %"
        + (f", test accuracy {100 * out['test_accuracy']:.1f} %" if tested else "")
        + f", {out['iterations']} iterations in {out['wall_time_s']:.1f} s", args.quiet)
    common.not_converged(args, out["solver"], out["success"], out["message"])
    return 0
