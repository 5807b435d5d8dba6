"""Reference "new-material" image classifier: a calibrated head on the image embedding.

    emb = EmbeddingModel.load()                     # csadetect/models/reference/embedding
    clf = NewMaterialClassifier.load()              # csadetect/models/reference/classifier
    clf.check_embedding(emb)                        # same embedding version as in training
    p = clf.score(emb.embed([pil_img, ...]))        # (n,) calibrated probabilities
    review = p >= clf.review_threshold              # send to human review
    report = p >= clf.report_threshold              # strong enough to prepare a report

The pipeline computes each image's embedding once (for matching) and passes it to
:meth:`NewMaterialClassifier.score`, so the classifier never sees pixels. The reference model is
trained by ``training/train_classifier.py`` on a **benign proxy task** (does the image show the
*marker emblem*, a procedurally drawn badge; ``training/classifier_corpus.py``) and stands in for the
EU Centre's classifier; see ``csadetect/models/cards/classifier.md``. It is not for production.

Scores are calibrated (Platt scaling fitted on a separate calibration split and baked into the
model's last layer, ``platt``): about a fraction ``p`` of calibration images scored ``p`` showed
the emblem, at the calibration split's 50% prevalence. ``review_threshold`` and
``report_threshold`` come from ``metadata.json`` with their provenance.

:func:`evaluate` gives precision, recall and F0.5 at both thresholds, ROC AUC, ECE and a
reliability table; :func:`write_scores` (alias :func:`scores`) writes scored, labelled examples
that ``csadetect tune`` reads (columns ``score`` and ``label``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from csadetect.models import ModelError
from csadetect.models.grooming import expected_calibration_error, f_beta
from csadetect.models.loader import ModelKind
from csadetect.tuning.tune import wilson

REQUIRED_METADATA = ("version", "embedding_version", "dim", "review_threshold", "report_threshold")
_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),  # overflow-free logistic
    "tanh": np.tanh,
}


def _check_metadata(metadata: dict) -> None:
    if int(metadata["dim"]) < 1:
        raise ValueError("dim must be positive")
    for k in ("review_threshold", "report_threshold"):
        v = float(metadata[k])
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{k} {v} outside [0, 1]")


KIND = ModelKind("classifier", title="new-material classifier", required=REQUIRED_METADATA, check=_check_metadata)


class NewMaterialClassifier:
    """A loaded classifier head. Thread-compatible for scoring; load once per worker process."""

    def __init__(self, keras_model, metadata: dict, path: Optional[Path] = None):
        self.keras_model = keras_model
        self.metadata = metadata
        self.path = path
        self.version = str(metadata["version"])
        self.embedding_version = str(metadata["embedding_version"])
        self.dim = int(metadata["dim"])
        self.review_threshold = float(metadata["review_threshold"])
        self.report_threshold = float(metadata["report_threshold"])
        shape = tuple(keras_model.input_shape) if not isinstance(keras_model.input_shape, list) else None
        if shape is None or len(shape) != 2 or shape[1] != self.dim:
            raise ModelError(f"classifier model at {path} takes input {keras_model.input_shape}, "
                             f"metadata says dim {self.dim}")
        out = tuple(keras_model.output_shape) if not isinstance(keras_model.output_shape, list) else None
        if out is None or out[1:] != (1,):
            raise ModelError(f"classifier model at {path} has output {keras_model.output_shape}, expected (None, 1)")
        self._layers = self._numpy_layers(keras_model)
        if self._layers is not None:  # use the numpy copy only if it reproduces Keras exactly
            probe = np.random.default_rng(0).normal(0, 0.1, (8, self.dim)).astype(np.float32)
            ref = np.asarray(keras_model(probe, training=False), np.float64).reshape(-1)
            if not np.allclose(self._forward_numpy(probe), ref, atol=1e-6):
                self._layers = None
        self._tf_fn = None

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path=None) -> "NewMaterialClassifier":
        """From a model spec (:class:`csadetect.models.loader.ModelKind`: a directory holding
        ``model.keras`` + ``metadata.json``, the .keras file itself, a URL; None: the reference
        model). Raises :class:`ModelError` with a one-line reason."""
        return cls(*KIND.load(path))

    def check_embedding(self, embedding_model) -> None:
        """Raise :class:`ModelError` unless ``embedding_model`` is the version (and dimension)
        this classifier was trained on: scores on another embedding are meaningless."""
        version = str(getattr(embedding_model, "version", "unknown"))
        dim = int(getattr(embedding_model, "dim", self.dim))
        if version != self.embedding_version or dim != self.dim:
            raise ModelError(f"classifier {self.version} needs embedding {self.embedding_version} "
                             f"(dim {self.dim}), got {version} (dim {dim})")

    # ---------------------------------------------------------------- scoring
    @staticmethod
    def _numpy_layers(model):
        """The model as a list of (W, b, activation) if it is a plain stack of Dense layers
        (Dropout and InputLayer ignored at inference); None otherwise."""
        layers = []
        for layer in model.layers:
            kind = type(layer).__name__
            if kind in ("InputLayer", "Dropout"):
                continue
            if kind == "Dense":
                act = layer.get_config().get("activation", "linear")
                if not isinstance(act, str) or act not in _ACTIVATIONS:
                    return None
                w, b = (np.asarray(v, np.float64) for v in layer.get_weights())
                layers.append((w, b, act))
            elif kind == "ReLU" and not layer.get_config().get("max_value") and not layer.get_config().get(
                    "negative_slope") and not layer.get_config().get("threshold"):
                layers.append((None, None, "relu"))
            else:
                return None
        return layers or None

    def _forward_numpy(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, np.float64)
        for w, b, act in self._layers:
            if w is not None:
                h = h @ w + b
            h = _ACTIVATIONS[act](h)
        return h.reshape(-1)

    def _forward_keras(self, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        if self._tf_fn is None:
            self._tf_fn = tf.function(lambda t: self.keras_model(t, training=False),
                                      input_signature=[tf.TensorSpec([None, self.dim], tf.float32)])
        return np.asarray(self._tf_fn(tf.constant(x, tf.float32)), np.float64).reshape(-1)

    def score(self, embeddings, batch_size: int = 8192) -> np.ndarray:
        """``(n, dim)`` embeddings -> ``(n,)`` calibrated probabilities (float64, in [0, 1]).
        Rows are scored independently: a batch equals one-by-one scoring."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"embeddings must have shape (n, {self.dim}), got {x.shape}")
        if x.shape[0] == 0:
            return np.zeros((0,), np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("embeddings contain NaN or infinity")
        fwd = self._forward_numpy if self._layers is not None else self._forward_keras
        out = np.concatenate([fwd(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        return np.clip(out, 0.0, 1.0)

    def score_images(self, embedding_model, images: Sequence, batch_size: int = 64) -> np.ndarray:
        """Convenience: embed PIL images with ``embedding_model`` and score them."""
        return self.score(embedding_model.embed(list(images), batch_size))

    def level(self, score: float) -> str:
        """``"report"``, ``"review"`` or ``"none"`` for one calibrated score."""
        if score >= self.report_threshold:
            return "report"
        if score >= self.review_threshold:
            return "review"
        return "none"


# -------------------------------------------------------------------- evaluation
def roc_auc(scores, labels) -> float:
    """ROC AUC (ties count half); NaN when one class is missing."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(s)  # average ranks over ties
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def reliability_table(scores, labels, bins: int = 10) -> list[dict]:
    """Equal-width bins: n, mean score and positive rate per bin (empty bins left out)."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, np.float64)
    b = np.minimum((s * bins).astype(int), bins - 1)
    out = []
    for k in range(bins):
        sel = b == k
        if sel.any():
            out.append({"bin": f"{k / bins:.1f}-{(k + 1) / bins:.1f}", "n": int(sel.sum()),
                        "mean_score": round(float(s[sel].mean()), 4),
                        "positive_rate": round(float(y[sel].mean()), 4)})
    return out


def at_threshold(scores, labels, threshold: float) -> dict:
    """Confusion counts, precision, recall, F0.5, FPR and 95% Wilson intervals at ``score >= t``."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    flag = s >= threshold
    tp, fp = int((flag & y).sum()), int((flag & ~y).sum())
    fn, tn = int((~flag & y).sum()), int((~flag & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "threshold": float(threshold), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": precision, "recall": recall, "f0_5": f_beta(precision, recall, 0.5),
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "precision_ci95": list(wilson(tp, tp + fp)), "recall_ci95": list(wilson(tp, tp + fn)),
    }


def _split_items(items) -> tuple[list, list, list]:
    xs, ys, groups = [], [], []
    for it in items:
        if len(it) < 2:
            raise ValueError("items must be (image or embedding, label[, group])")
        xs.append(it[0])
        ys.append(int(bool(it[1])))
        groups.append(it[2] if len(it) > 2 else None)
    return xs, ys, groups


def _embed_all(classifier: NewMaterialClassifier, embedding_model, xs: list, batch: int = 256) -> np.ndarray:
    if embedding_model is None:
        return classifier.score(np.asarray(xs, np.float32).reshape(len(xs), classifier.dim)) if xs else \
            np.zeros((0,), np.float64)
    out = [classifier.score(embedding_model.embed(xs[i:i + batch])) for i in range(0, len(xs), batch)]
    return np.concatenate(out) if out else np.zeros((0,), np.float64)


def evaluate(classifier: NewMaterialClassifier, embedding_model, items: Iterable[tuple],
             threshold: Optional[float] = None) -> dict:
    """Metrics of ``classifier`` on labelled ``items``: ``(PIL image, label)`` embedded with
    ``embedding_model``, or ``(embedding, label)`` when ``embedding_model`` is None. An optional
    third element names the item's group (a string) for per-group flag rates.

    Returns counts, ROC AUC, ECE (10 equal-width bins), Brier score, a reliability table, and
    precision/recall/F0.5/FPR at the review and report thresholds (and at ``threshold`` if given)."""
    xs, ys, groups = _split_items(list(items))
    s = _embed_all(classifier, embedding_model, xs)
    y = np.asarray(ys, np.int64)
    result = {
        "n": int(len(y)), "positives": int(y.sum()), "negatives": int(len(y) - y.sum()),
        "roc_auc": roc_auc(s, y),
        "ece": expected_calibration_error(s, y) if len(y) else float("nan"),
        "brier": float(np.mean((s - y) ** 2)) if len(y) else float("nan"),
        "at_review": at_threshold(s, y, classifier.review_threshold),
        "at_report": at_threshold(s, y, classifier.report_threshold),
        "reliability": reliability_table(s, y),
    }
    if threshold is not None:
        result["at_threshold"] = at_threshold(s, y, float(threshold))
    if any(g is not None for g in groups):
        per: dict = {}
        for g, sc, lab in zip(groups, s, y):
            d = per.setdefault(str(g), {"n": 0, "positives": 0, "flagged_review": 0, "flagged_report": 0,
                                        "_sum": 0.0})
            d["n"] += 1
            d["positives"] += int(lab)
            d["flagged_review"] += int(sc >= classifier.review_threshold)
            d["flagged_report"] += int(sc >= classifier.report_threshold)
            d["_sum"] += float(sc)
        for d in per.values():
            d["mean_score"] = round(d.pop("_sum") / d["n"], 4)
            d["rate_review"] = round(d["flagged_review"] / d["n"], 4)
            d["rate_report"] = round(d["flagged_report"] / d["n"], 4)
        result["groups"] = dict(sorted(per.items()))
    return result


def write_scores(classifier: NewMaterialClassifier, embedding_model, items: Iterable[tuple], path,
                 ids: Optional[Sequence] = None) -> int:
    """Score labelled ``items`` (as in :func:`evaluate`) and write one row per item with columns
    ``score`` (calibrated probability), ``label`` (0/1), ``id`` (from ``ids`` or the index) and
    ``group`` (when the items carry one), as JSON Lines (``.jsonl``/``.json``) or Parquet
    (``.parquet``), the inputs of ``csadetect tune``. Returns the number of rows."""
    xs, ys, groups = _split_items(list(items))
    s = _embed_all(classifier, embedding_model, xs)
    ids = list(ids) if ids is not None else list(range(len(ys)))
    if len(ids) != len(ys):
        raise ValueError(f"{len(ids)} ids for {len(ys)} items")
    rows = []
    for i, (sc, lab, g) in enumerate(zip(s, ys, groups)):
        row = {"id": ids[i], "score": float(sc), "label": int(lab)}
        if g is not None:
            row["group"] = str(g)
        rows.append(row)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    if ext == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = {k: [r.get(k) for r in rows] for k in ("id", "score", "label", "group")
                if any(k in r for r in rows)}
        pq.write_table(pa.table(cols), path)
    elif ext in (".jsonl", ".json"):
        with open(path, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    else:
        raise ValueError(f"{path}: unsupported extension {ext or '(none)'} (use .jsonl or .parquet)")
    return len(rows)


scores = write_scores
