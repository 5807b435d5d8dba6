"""ClassifyNew: the new-material classifier and its policy (DESIGN §5, §6).

Images without a known match are scored by the classifier head on their embedding (Beam's
RunInference: batched, one model copy per worker process). The calibrated score is then put
through the policy of the configured thresholds:

* score < ``review_threshold``: not a hit (``Decide`` drops it, only counters survive);
* ``review_threshold`` <= score: human review (``new_decision = "review"``), unless
  ``require_review`` is false and score >= ``report_threshold``: confirmed (``"report"``).

Items with a known match, videos and items without an embedding pass through unscored.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional, Sequence

import apache_beam as beam
import numpy as np

from csadetect.models import classifier
from csadetect.models.classifier import NewMaterialClassifier
from csadetect.models.loader import BatchedModelHandler
from csadetect.reports.hits import MatchedItem
from csadetect.transforms.common import RunInferenceKeepingTimestamps, batching_kwargs, counter, kept, record_failure


@dataclasses.dataclass(frozen=True)
class NewMaterialPolicy:
    """Resolved policy: thresholds from config, else from the model's metadata."""

    model_path: str
    version: str
    embedding_version: Optional[str]
    review_threshold: float
    report_threshold: float
    require_review: bool = True

    @classmethod
    def resolve(cls, settings) -> "NewMaterialPolicy":
        """From :class:`csadetect.config.settings.NewMaterialSettings`; reads ``metadata.json`` only
        (no TensorFlow). Raises models.ModelError for a missing or unreadable model."""
        meta = classifier.KIND.metadata(settings.model)
        review = float(settings.review_threshold if settings.review_threshold is not None else meta["review_threshold"])
        report = float(settings.report_threshold if settings.report_threshold is not None else meta["report_threshold"])
        return cls(classifier.KIND.worker_path(settings.model), str(meta["version"]), meta["embedding_version"],
                   review, max(report, review), bool(settings.require_review))

    def decide(self, score: float) -> Optional[str]:
        if score < self.review_threshold:
            return None
        if not self.require_review and score >= self.report_threshold:
            return "report"
        return "review"


def _wants_score(item: MatchedItem) -> bool:
    return (isinstance(item, MatchedItem) and not item.matches and item.item.embeddings is not None and len(item.item.embeddings) > 0
            and item.item.event.order_for("new") is not None)


class NewMaterialHandler(BatchedModelHandler[MatchedItem, MatchedItem, NewMaterialClassifier]):
    """RunInference handler: scores the image embedding of unmatched items, applies the policy."""

    def __init__(self, policy: NewMaterialPolicy, min_batch_size: int = 1, max_batch_size: int = 64,
                 max_batch_duration_secs: Optional[float] = None):
        super().__init__(policy.model_path, min_batch_size, max_batch_size, max_batch_duration_secs)
        self._policy = policy

    def load_model(self) -> NewMaterialClassifier:
        return kept(f"classifier-model|{self.model_uri}", lambda: NewMaterialClassifier.load(self.model_uri))

    def run_inference(self, batch: Sequence[MatchedItem], model: NewMaterialClassifier,
                      inference_args=None) -> Iterable[MatchedItem]:
        """The batch in one model call; if that fails, item by item, and an item that fails on its
        own becomes a DeadLetter (``Decide`` hands it to the dead letters). DeadLetters from
        ``MatchIndicators`` pass through."""
        try:
            return self._score(batch, model)
        except Exception:
            out = []
            for item in batch:
                try:
                    out.extend(self._score([item], model))
                except Exception as exc:
                    out.append(record_failure("classify", exc, item))
            return out

    def _score(self, batch: Sequence[MatchedItem], model: NewMaterialClassifier) -> list:
        out = list(batch)
        todo = [i for i, m in enumerate(batch) if _wants_score(m)]
        if not todo:
            return out
        scores = model.score(np.stack([np.asarray(batch[i].item.embeddings[0], np.float32) for i in todo]))
        policy = self._policy
        for i, score in zip(todo, scores):
            score = float(score)
            decision = policy.decide(score)
            counter("new_scored").inc()
            # the embedding is not needed past this point: a non-hit keeps nothing
            item = dataclasses.replace(batch[i].item, embeddings=None)
            out[i] = dataclasses.replace(
                batch[i], item=item, new_score=score, new_model_version=model.version,
                new_decision=decision, new_threshold=policy.review_threshold,
            )
        return out


    def get_num_bytes(self, batch: Sequence[MatchedItem]) -> int:
        """The bytes of the embeddings the batch carries (what the model reads), for RunInference's
        batch-size metric. Beam's default pickles the whole batch to measure it, sealed evidence
        (about 4/3 of each upload) included: a copy of every upload per batch, for a metric."""
        return sum(getattr(item.item.embeddings, "nbytes", 0) for item in batch if isinstance(item, MatchedItem))


class ClassifyNew(beam.PTransform):
    """MatchedItems in; the same items out, unmatched images carrying score and decision."""

    def __init__(self, policy: NewMaterialPolicy, batching=None, streaming: bool = False):
        super().__init__()
        self._handler = NewMaterialHandler(policy, **batching_kwargs(batching, streaming))

    def expand(self, matched):
        return matched | "Infer" >> RunInferenceKeepingTimestamps.transform(self._handler)
