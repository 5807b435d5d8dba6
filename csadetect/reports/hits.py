"""Hits: the items the detection stages hand on, up to the report made from them (DESIGN §2, §6).

An upload becomes a :class:`HashedItem` once it is hashed, and a :class:`MatchedItem` once it has
been matched against the indicators (and, for new material, scored by the classifier). These are
plain data: the Beam stages in ``csadetect.transforms`` pass them along, and
:mod:`csadetect.reports.records` turns a hit into its report record.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from csadetect.events.event import Event
from csadetect.media.hashing import ImageHashes, VideoHashes


@dataclasses.dataclass(frozen=True)
class HashedItem:
    """An event after hashing. Its plaintext content has already been dropped (data minimisation;
    ``evidence`` holds it sealed), except,
    between ``HashMedia`` and ``EmbedImages``, the model-sized thumbnails the embedding model
    reads (``pixels``, ``(k, 64, 64, 3)`` uint8, one per view named first in ``views``) and the
    picture at most 256 px a side that the query-side region views named after them are cut from
    (``region_source``, ``(h, w, 3)`` uint8, or None). In the pipeline ``EmbedImages`` replaces the
    thumbnails with ``embeddings`` (one row per thumbnail) and the ``region_source`` goes on to
    ``MatchIndicators``, which cuts the region views from it or its mirror, embeds them (all, or with
    ``match.embedding_query_region_gate`` only where the gate lets them) and drops it. Without
    deferral (``EmbedImages(defer_regions=False)``) ``EmbedImages`` embeds every view at once
    (``embeddings`` ``(len(views), dim)`` float32)."""

    event: Event
    image: Optional[ImageHashes] = None
    video: Optional[VideoHashes] = None
    views: tuple = ()
    pixels: Optional[Any] = None
    region_source: Optional[Any] = dataclasses.field(default=None, repr=False)
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

    @property
    def detection_type(self) -> str:
        """``known`` with indicator matches, else ``new`` (scored by the classifier)."""
        return "known" if self.matches else "new"

    def __repr__(self) -> str:
        return f"MatchedItem({self.item.event!r}, matches={len(self.matches)})"
