"""``ocdl predict`` — flags of :class:`ocdl.jobs.predict.PredictJob`; prints the predictions."""
import json
import sys

from ocdl.cli import common
from ocdl.progress import log


def register(sub):
    from ocdl.jobs.predict import PredictJob
    p = common.add_command(sub, "predict", "classify the rows of a CSV with a model saved by 'ocdl train --save'",
                           ["ocdl predict --model model.npz --data test.csv --json predictions.json",
                            "ocdl predict --model model.npz --data new.csv --proba"], run)
    common.add_job(p, PredictJob)
    return p


def run(args):
    out = common.run_job(args)
    for w in out.pop("warnings"):
        print(f"ocdl: warning: {w}", file=sys.stderr)
    if args.json:
        log(f"predicted {out['n']} rows" + (f", accuracy {100 * out['accuracy']:.1f} %"
                                             if out["accuracy"] is not None else ""), args.quiet)
    else:
        from ocdl.io import to_jsonable
        print(json.dumps(to_jsonable(out)))
    return 0
