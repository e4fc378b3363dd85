"""``ocdl predict`` as a library call: :class:`PredictJob` classifies the rows of a CSV with a model
file; its classes (the model's :class:`~ocdl.data.labels.LabelCodec`) decode the predictions and
encode the CSV's labels when present (then ``accuracy`` is reported)."""
import dataclasses

import numpy as np

from ocdl.errors import InputError
from ocdl.jobs.base import Job, option


@dataclasses.dataclass
class PredictJob(Job):
    """``ocdl predict --model MODEL --data PATH.csv``."""
    model: str = option(None, "model file written by 'ocdl train --save'", "path", role="input", required=True,
                        metavar="MODEL")
    data: str = option(None, "CSV holding the model's feature columns (matched by name, any order; extra columns "
                             "ignored); with the label column the accuracy is reported", "path", role="input",
                       required=True, metavar="PATH.csv")
    label_column: str = option(None, "label column of the CSV (default: the one the model was trained with, "
                                     "else 'label' if present)", "text", metavar="NAME")
    proba: bool = option(False, "add 'classes' (the original labels) and 'probabilities' (one row per sample, in "
                                "the order of 'classes') to the output", "switch")
    json: str = option(None, "write machine-readable results as JSON", "path", role="output", metavar="PATH")

    def check(self):
        if self.model is None or self.data is None:
            raise InputError("predict needs model (--model) and data (--data)")

    def execute(self):
        from ocdl.data import load_model
        from ocdl.data.labels import LabelCodec
        from ocdl.io import read_classification
        model, params, info, data = load_model(self.model, full=True)
        warnings = []
        if info.get("status") == "diverged":
            warnings.append(f"model '{self.model}' holds the last good parameters of a run that diverged "
                            f"({info.get('message', 'no message')}); its predictions may be poor")
        features = data["features"] or [f"x{j + 1}" for j in range(model.d_in)]
        codec = LabelCodec(data["classes"] if data["classes"] is not None else range(model.n_classes), self.model)
        table = read_classification(self.data, label_column=self.label_column or data["label_column"],
                                    features=features, classes=codec, require_labels=self.label_column is not None,
                                    min_classes=1)
        X, y = table.X, table.y
        with np.errstate(all="ignore"):           # overflow is reported below, once, naming the model
            logits = np.asarray(model.logits(params, X), dtype=float)
            proba = model.predict_proba(params, X)
        bad = ~(np.all(np.isfinite(logits), axis=1) & np.all(np.isfinite(proba), axis=1))
        if np.any(bad):
            raise InputError(f"model '{self.model}' computes non-finite outputs on {int(bad.sum())} of {len(X)} rows "
                             f"(first: line {int(np.argmax(bad)) + 2} of '{self.data}'); the model's settings "
                             f"(T = {model.T:g}, {model.layers} layers) or parameters overflow")
        pred = np.argmax(proba, axis=1)
        out = {"n": int(len(pred)), "accuracy": float(np.mean(pred == y)) if y is not None else None,
               "predictions": codec.decode(pred), "warnings": warnings}
        if self.proba:
            out["classes"] = list(codec.classes)
            out["probabilities"] = proba.tolist()
        if self.json:
            from ocdl.io import write_json
            write_json(self.json, {k: v for k, v in out.items() if k != "warnings"})
        return out
