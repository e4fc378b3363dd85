"""The one label codec: original class labels ↔ class indices 0..C−1.

Every reader of labels — ``ocdl train`` (training and ``--test`` files), ``predict``, ``sweep``,
``compare`` and :class:`ocdl.ResNetODEClassifier` — encodes with the classes of the *training*
data (or of the saved model), never with classes sorted again from another file: a test file
whose labels are a subset of the training classes keeps the training indices, and a label the
model does not know is an error naming the file and the line.

Spellings: a label is matched by its canonical value (:func:`canonical`): integer-valued numbers
are one class however they are written (``1``, ``1.0``, ``"1"``, ``"+1"``, ``1e0``), other text is
stripped. ``classes`` are sorted integers first (numerically), then names (as text).
"""
import math

import numpy as np

from ocdl.errors import InputError

#: more distinct classes than this is refused before any (n × C) allocation: no ocdl model, and no
#: data set a CSV can hold sensibly, has more
MAX_CLASSES = 1000


def canonical(value):
    """The value a label is matched by: integer-valued finite numbers (also as text) → ``int``;
    bools → ``"True"``/``"False"``; anything else → its stripped text."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return int(value)
    text = value if isinstance(value, str) else None
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return str(value).strip()
    if math.isfinite(v) and v == math.floor(v) and abs(v) < 2 ** 63:
        return int(v)
    return (text if text is not None else repr(v)).strip()


def _order(v):
    return (isinstance(v, str), v)


class LabelCodec:
    """``classes`` (original labels in class-index order) with :meth:`encode` / :meth:`decode`.

    ``LabelCodec.fit(labels)`` takes the sorted distinct canonical labels; ``LabelCodec(classes)``
    rebuilds the codec a model file stores. Two classes with the same canonical value are an
    error (e.g. ``[1, "1.0"]``)."""

    def __init__(self, classes, where="classes"):
        self.classes = [c.item() if isinstance(c, np.generic) else c for c in classes]
        self.index = {}
        for i, c in enumerate(self.classes):
            key = canonical(c)
            if key in self.index:
                raise InputError(f"{where}: classes {self.classes[self.index[key]]!r} and {c!r} are the same label")
            self.index[key] = i

    @classmethod
    def fit(cls, labels, where="labels", min_classes=2):
        """The codec of the distinct labels of ``labels`` (canonical values, sorted)."""
        keys = sorted({canonical(v) for v in labels}, key=_order)
        if len(keys) > MAX_CLASSES:
            raise InputError(f"{where}: {len(keys)} distinct labels; at most {MAX_CLASSES} classes are supported "
                             f"(is the label column a measurement?)")
        if len(keys) < min_classes:
            shown = repr(keys[0]) if keys else "none"
            raise InputError(f"{where}: only {len(keys)} class present ({shown}); classification needs at least "
                             f"{min_classes}")
        return cls(keys, where)

    def __len__(self):
        return len(self.classes)

    def __eq__(self, other):
        return isinstance(other, LabelCodec) and self.classes == other.classes

    def encode(self, labels, where="labels", line0=None):
        """Class indices (int64) of ``labels``; an unknown label is an InputError naming ``where`` and,
        with ``line0`` (the file line of the first label), the line."""
        out = np.empty(len(labels), dtype=np.int64)
        for i, v in enumerate(labels):
            k = self.index.get(canonical(v))
            if k is None:
                shown = ", ".join(repr(c) for c in self.classes[:10]) + (", ..." if len(self.classes) > 10 else "")
                at = f"line {line0 + i}: " if line0 is not None else ""
                raise InputError(f"{where}: {at}label {v!r} is not one of the classes ({shown})")
            out[i] = k
        return out

    def decode(self, indices):
        """The original labels of class indices."""
        return [self.classes[int(i)] for i in np.asarray(indices).ravel()]

    @property
    def identity(self):
        """True when the classes are the integers 0..C−1 (index = label)."""
        return self.classes == list(range(len(self.classes)))
