"""Shared pieces of the transforms: the metrics namespace, tags and the element types that flow
between stages. Counters never carry ids, hashes or content in their names."""
from __future__ import annotations

import dataclasses
from typing import Optional

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
    """An event after hashing. Its content has already been dropped (data minimisation)."""

    event: Event
    image: Optional[ImageHashes] = None
    video: Optional[VideoHashes] = None

    def __repr__(self) -> str:
        return f"HashedItem({self.event!r})"


@dataclasses.dataclass(frozen=True)
class MatchedItem:
    item: HashedItem
    matches: tuple  # of indicators.index.Match
    index_version: Optional[int]

    def __repr__(self) -> str:
        return f"MatchedItem({self.item.event!r}, matches={len(self.matches)})"
