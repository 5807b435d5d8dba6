"""Shared pieces of the transforms: the metrics namespace, tags and the element types that flow
between stages. Counters never carry ids, hashes or content in their names."""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from apache_beam.metrics import Metrics

from csadetect.events import Event
from csadetect.hashing import ImageHashes, VideoHashes

NAMESPACE = "csadetect"
DEAD_LETTER = "dead_letter"
# Each event ends in exactly one of these, so `received = hit + non_hit + dead_lettered`.
OUTCOMES = ("received", "hit", "non_hit", "dead_lettered")


def counter(name: str):
    return Metrics.counter(NAMESPACE, name)


@dataclasses.dataclass(frozen=True)
class HashedItem:
    """An event after hashing. Its content has already been dropped (data minimisation), except,
    between ``HashMedia`` and ``EmbedImages``, the model-sized thumbnails the embedding model
    reads (``pixels``, ``(k, 64, 64, 3)`` uint8, one per view named in ``views``); ``EmbedImages``
    replaces them with ``embeddings`` (``(k, dim)`` float32) at once."""

    event: Event
    image: Optional[ImageHashes] = None
    video: Optional[VideoHashes] = None
    views: tuple = ()
    pixels: Optional[Any] = None
    embeddings: Optional[Any] = None

    def __repr__(self) -> str:
        return f"HashedItem({self.event!r})"


@dataclasses.dataclass(frozen=True)
class MatchedItem:
    item: HashedItem
    matches: tuple  # of indicators.index.Match
    index_version: Optional[int]
    # set by ClassifyNew for images without a known match: calibrated score, model, and the
    # policy's decision (None: not a hit, "review": to human review, "report": confirmed)
    new_score: Optional[float] = None
    new_model_version: Optional[str] = None
    new_decision: Optional[str] = None
    new_threshold: Optional[float] = None

    def __repr__(self) -> str:
        return f"MatchedItem({self.item.event!r}, matches={len(self.matches)})"
