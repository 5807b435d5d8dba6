"""Shared pieces of the transforms: the metrics namespace, tags and the element types that flow
between stages. Counters never carry ids, hashes or content in their names."""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from csadetect.events.event import Event
from csadetect.media.hashing import ImageHashes, VideoHashes

NAMESPACE = "csadetect"
DEAD_LETTER = "dead_letter"
# Each event ends in exactly one of these, so `received = hit + non_hit + dead_lettered`.
OUTCOMES = ("received", "hit", "non_hit", "dead_lettered")


def counter(name: str):
    return Metrics.counter(NAMESPACE, name)


@dataclasses.dataclass(frozen=True)
class HashedItem:
    """An event after hashing. Its plaintext content has already been dropped (data minimisation;
    ``evidence`` holds it sealed), except,
    between ``HashMedia`` and ``EmbedImages``, the model-sized thumbnails the embedding model
    reads (``pixels``, ``(k, 64, 64, 3)`` uint8, one per view named in ``views``); ``EmbedImages``
    replaces them with ``embeddings`` (``(k, dim)`` float32) at once."""

    event: Event
    image: Optional[ImageHashes] = None
    video: Optional[VideoHashes] = None
    views: tuple = ()
    pixels: Optional[Any] = None
    embeddings: Optional[Any] = None
    # the content sealed for the provider's evidence key (reports.evidence_key), bound to the event
    # id: what a reviewer sees and what is re-sealed for the EU Centre if the item is reported
    evidence: Optional[str] = dataclasses.field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"HashedItem({self.event!r})"


@dataclasses.dataclass(frozen=True)
class MatchedItem:
    item: HashedItem
    matches: tuple  # of csadetect.indicators.index.Match
    index_version: Optional[int]
    # set by ClassifyNew for images without a known match: calibrated score, model, and the
    # policy's decision (None: not a hit, "review": to human review, "report": confirmed)
    new_score: Optional[float] = None
    new_model_version: Optional[str] = None
    new_decision: Optional[str] = None
    new_threshold: Optional[float] = None

    def __repr__(self) -> str:
        return f"MatchedItem({self.item.event!r}, matches={len(self.matches)})"


def batching_kwargs(batching, streaming: bool) -> dict:
    """``beam.BatchElements`` arguments from a :class:`csadetect.config.settings.Batching` (None: defaults);
    the max batch duration applies in streaming only."""
    out = {"min_batch_size": batching.min_batch_size if batching else 1,
           "max_batch_size": batching.max_batch_size if batching else 64}
    duration = (batching.max_batch_duration_secs if batching else 1.0) if streaming else None
    if duration:
        out["max_batch_duration_secs"] = duration
    return out


class RunInferenceKeepingTimestamps:
    """``RunInference(handler)`` that gives every element its own timestamp back afterwards: Beam's
    ``BatchElements`` stamps its batches at the end of the window, which would break the
    event-time timers downstream (report de-duplication). Timestamps travel as the keys of a
    ``KeyedModelHandler``. Use as ``pcoll | RunInferenceKeepingTimestamps.transform(handler)``."""

    @staticmethod
    def transform(handler):
        import apache_beam as beam
        from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

        @beam.ptransform_fn
        def _run(pcoll):
            return (
                pcoll
                | "KeyByTimestamp" >> beam.Map(lambda x, ts=beam.DoFn.TimestampParam: (ts, x))
                | "RunInference" >> RunInference(KeyedModelHandler(handler))
                | "Restamp" >> beam.MapTuple(lambda ts, x: beam.window.TimestampedValue(x, ts))
            )

        return _run()


class KeysDoFn(beam.DoFn):
    """Base of the DoFns that seal or sign: loads the provider's report keys
    (:class:`csadetect.review.store.ReportKeys`) once per DoFn instance, in ``setup``."""

    def __init__(self, reports_settings):
        self._reports = reports_settings
        self._keys = None

    def setup(self):
        from csadetect.review.store import ReportKeys

        self._keys = ReportKeys.load(self._reports)
