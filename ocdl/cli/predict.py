"""``ocdl predict`` — classify a CSV with a saved model."""
import json
import sys

import numpy as np

from ocdl.cli import common
from ocdl.errors import InputError
from ocdl.progress import log


def register(sub):
    p = common.add_command(sub, "predict", "classify the rows of a CSV with a model saved by 'ocdl train --save'",
                           "ocdl predict --model model.npz --data test.csv --json predictions.json", run)
    p.add_argument("--model", required=True, metavar="MODEL", help="model file written by 'ocdl train --save'")
    p.add_argument("--data", required=True, metavar="PATH.csv",
                   help="CSV with header x1,...,xd[,label]; with labels the accuracy is reported")
    common.add_outputs(p, json=True, plot=False, seed=False)
    return p


def run(args):
    from ocdl.data import load_model
    from ocdl.io import read_labelled, to_jsonable, write_json
    model, params, info = load_model(args.model)
    if info.get("status") == "diverged":
        print(f"ocdl: warning: model '{args.model}' holds the last good parameters of a run that diverged "
              f"({info.get('message', 'no message')}); its predictions may be poor", file=sys.stderr)
    X, y = read_labelled(args.data, require_labels=False, min_classes=1)
    if X.shape[1] != model.d_in:
        raise InputError(f"{args.data} has {X.shape[1]} feature columns but the model expects {model.d_in} "
                         f"(x1,...,x{model.d_in})")
    if y is not None and int(y.max()) >= model.n_classes:
        raise InputError(f"{args.data} has label {int(y.max())} but the model knows classes 0..{model.n_classes - 1}")
    pred = model.predict(params, X)
    out = {"n": int(len(pred)), "accuracy": float(np.mean(pred == y)) if y is not None else None,
           "predictions": [int(v) for v in pred]}
    if args.json:
        write_json(args.json, out)
        log(f"predicted {len(pred)} rows" + (f", accuracy {100 * out['accuracy']:.1f} %" if y is not None else ""),
            args.quiet)
    else:
        print(json.dumps(to_jsonable(out)))
    return 0
