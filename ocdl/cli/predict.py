"""``ocdl predict`` — classify a CSV with a saved model."""
import json

import numpy as np

from ocdl.cli import common
from ocdl.progress import log


def register(sub):
    p = common.add_command(sub, "predict", "classify the rows of a CSV with a model saved by 'ocdl train --save'",
                           ["ocdl predict --model model.npz --data test.csv --json predictions.json",
                            "ocdl predict --model model.npz --data new.csv --proba"], run)
    p.add_argument("--model", required=True, metavar="MODEL", help="model file written by 'ocdl train --save'")
    p.add_argument("--data", required=True, metavar="PATH.csv",
                   help="CSV holding the model's feature columns (matched by name, any order; extra columns "
                        "ignored); with the label column the accuracy is reported")
    p.add_argument("--proba", action="store_true",
                   help="add 'classes' (the original labels) and 'probabilities' (one row per sample, in the "
                        "order of 'classes') to the output")
    common.add_outputs(p, json=True, plot=False, seed=False)
    return p


def run(args):
    from ocdl.data import load_model
    from ocdl.io import read_classification, to_jsonable, write_json
    model, params, _, data = load_model(args.model, full=True)
    features = data["features"] or [f"x{j + 1}" for j in range(model.d_in)]
    classes = data["classes"] if data["classes"] is not None else list(range(model.n_classes))
    table = read_classification(args.data, label_column=data["label_column"], features=features, classes=classes,
                                require_labels=False, min_classes=1)
    X, y = table.X, table.y
    pred = model.predict(params, X)
    out = {"n": int(len(pred)), "accuracy": float(np.mean(pred == y)) if y is not None else None,
           "predictions": [classes[int(c)] for c in pred]}
    if args.proba:
        out["classes"] = list(classes)
        out["probabilities"] = model.predict_proba(params, X).tolist()
    if args.json:
        write_json(args.json, out)
        log(f"predicted {len(pred)} rows" + (f", accuracy {100 * out['accuracy']:.1f} %" if y is not None else ""),
            args.quiet)
    else:
        print(json.dumps(to_jsonable(out)))
    return 0
