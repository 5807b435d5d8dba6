"""Decide: apply the known-material policy (DESIGN §6).

- no match: a non-hit. Everything about it is dropped here; only a counter survives.
- best PDQ distance <= ``auto_confirm_distance`` (or an exact / video match): confirmed hit.
- otherwise (a match above the auto-confirm distance): sent to the ``review`` output."""
from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue

from csadetect.settings import MatchSettings
from transforms.common import counter

REVIEW = "review"


def needs_review(matched, match: MatchSettings) -> bool:
    for m in matched.matches:
        if m.kind in ("md5", "sha256", "vpdq"):
            return False
        if m.kind == "pdq" and m.distance <= match.auto_confirm_distance:
            return False
    return True


class DecideFn(beam.DoFn):
    def __init__(self, match: MatchSettings):
        self._match = match

    def process(self, matched):
        kind = matched.item.event.kind
        if not matched.matches:
            # drop: nothing of a non-hit goes further, only the counters
            counter("non_hit").inc()
            counter(f"non_hit_{kind}").inc()
        elif needs_review(matched, self._match):
            counter("hit").inc()
            counter(f"hit_known_{kind}").inc()
            counter("hit_review").inc()
            yield pvalue.TaggedOutput(REVIEW, matched)
        else:
            counter("hit").inc()
            counter(f"hit_known_{kind}").inc()
            counter("hit_confirmed").inc()
            yield matched


class Decide(beam.PTransform):
    """Outputs: main = confirmed MatchedItem, ``review`` = MatchedItem awaiting a reviewer."""

    def __init__(self, match: MatchSettings):
        super().__init__()
        self._match = match

    def expand(self, matched):
        return matched | "Policy" >> beam.ParDo(DecideFn(self._match)).with_outputs(REVIEW, main="confirmed")


class DropUnscanned(beam.PTransform):
    """Events no active detector covers (e.g. text before a grooming model is configured):
    counted as non-hits and dropped at once."""

    def expand(self, events):
        def _drop(event):
            counter("non_hit").inc()
            counter(f"non_hit_{event.kind}").inc()
            return []

        return events | "Drop" >> beam.FlatMap(_drop)
