"""Decide: route every item by the policy of DESIGN §6.

- a known match: confirmed when one of its matches confirms by its signal type's rule
  (``SignalType.auto_confirms``: an exact digest (MD5/SHA-1/SHA-256), a vPDQ match of a video (an
  image matching a known video's frame, ``match.image_video_frames``, is always reviewed), a PDQ match at
  or below ``auto_confirm_distance``, or an embedding match at or above ``auto_confirm_similarity``;
  by default embedding matches are never auto-confirmed); otherwise sent to the ``review`` output;
- no known match but ``ClassifyNew`` decided ``review`` / ``report``: the ``review`` output or
  confirmed;
- anything else: a non-hit. Everything about it is dropped here; only counters survive."""
from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue

from csadetect.config.settings import MatchSettings
from csadetect.signals import get
from csadetect.transforms.common import DEAD_LETTER, counter, guarded

REVIEW = "review"


def needs_review(matched, match: MatchSettings, auto_confirm_similarity=None) -> bool:
    content = matched.item.event.kind
    return not any(get(m.kind).auto_confirms(m, match, auto_confirm_similarity, content=content)
                   for m in matched.matches)


class DecideFn(beam.DoFn):
    def __init__(self, match: MatchSettings, auto_confirm_similarity=None):
        self._match = match
        self._auto_similarity = auto_confirm_similarity

    @guarded("decide")
    def process(self, matched):
        kind = matched.item.event.kind
        if not matched.matches and matched.new_decision is not None:
            counter("hit").inc()
            counter(f"hit_new_{kind}").inc()
            if matched.new_decision == "report":
                counter("hit_confirmed").inc()
                yield matched
            else:
                counter("hit_review").inc()
                yield pvalue.TaggedOutput(REVIEW, matched)
        elif not matched.matches:
            # drop: nothing of a non-hit goes further, only the counters
            counter("non_hit").inc()
            counter(f"non_hit_{kind}").inc()
        elif needs_review(matched, self._match, self._auto_similarity):
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
    """Outputs: main = confirmed MatchedItem, ``review`` = MatchedItem awaiting a reviewer,
    ``dead_letter`` = DeadLetter (an unexpected error on one item, or a dead letter handed on by
    ``MatchIndicators``)."""

    def __init__(self, match: MatchSettings, auto_confirm_similarity=None):
        super().__init__()
        self._match = match
        self._auto_similarity = auto_confirm_similarity

    def expand(self, matched):
        fn = DecideFn(self._match, self._auto_similarity)
        return matched | "Policy" >> beam.ParDo(fn).with_outputs(REVIEW, DEAD_LETTER, main="confirmed")


class DropUnscanned(beam.PTransform):
    """Events no active detector covers (e.g. text before a grooming model is configured):
    counted as non-hits and dropped at once."""

    def expand(self, events):
        def _drop(event):
            counter("non_hit").inc()
            counter(f"non_hit_{event.kind}").inc()
            return []

        return events | "Drop" >> beam.FlatMap(_drop)
