"""Confirmation stage (DESIGN §2 "Confirm"; §6): hits awaiting a human go to the review queue, and
reviewer verdicts turn them into reports or delete them.

* :class:`QueueForReview`: unconfirmed hits (``MatchedItem``) and flagged conversations -> review
  items (:data:`csadetect.reports.schema.REVIEW_SCHEMA`), evidence sealed for the provider's reviewers.
* :class:`WriteReviewItems`: the review store (one Parquet file per item) and the review topic.
* :class:`ApplyVerdicts`: reviewer verdicts (JSON messages) -> signed reports for confirmed items;
  rejected items are deleted, leaving a counter.
* :class:`ExpireReview`: in streaming, sweeps the store every ``review.sweep_seconds`` and deletes
  items whose time to live has passed, with their evidence (counted).
Every stage here is explicit I/O on the review store; nothing else touches it. The stages are thin:
the records come from :mod:`csadetect.reports.records`, the store and verdicts from
:mod:`csadetect.review.store`.
"""
from __future__ import annotations

import logging
import re
import time
from typing import Optional

import apache_beam as beam
from apache_beam import pvalue

from csadetect.reports.records import EVIDENCE, pending_grooming_report, pending_report
from csadetect.review.store import (REPORT_ID_PATTERN, ReviewError, ReviewStore, apply_verdict, expire,
                                    parse_verdict, review_item)
from csadetect.transforms.common import AFTER_HIT, DEAD_LETTER, KeysDoFn, counter, guarded, split_dead_letters
from csadetect.transforms.report import DedupReports
from csadetect.transforms.sinks import WriteRecords

STATS = "stats"


class QueueForReviewFn(KeysDoFn):
    """MatchedItem (review output of Decide) or a grooming flag dict -> a review item."""

    def __init__(self, provider, reports_settings, ttl_seconds: int, urgent_patterns=("meeting",),
                 run_id: Optional[str] = None):
        super().__init__(reports_settings)
        self._provider = provider
        self._ttl = ttl_seconds
        self._urgent = tuple(urgent_patterns)
        self._run_id = run_id

    @guarded("review", outcome=AFTER_HIT, to_main=True)
    def process(self, element):
        if isinstance(element, dict):  # a flagged conversation
            report = pending_grooming_report(element, self._provider, self._keys, self._urgent, self._run_id)
        else:
            report = pending_report(element, self._provider, self._run_id)
        counter("review_queued").inc()
        yield review_item(report, report.pop(EVIDENCE, None), self._ttl)


class QueueForReview(beam.PTransform):
    """Outputs: ``items`` = review items; ``dead_letter`` = DeadLetter (an item that failed here, or a
    dead letter handed on by ``ClassifyGrooming``). ``run_id``: the pipeline run, part of every
    report id."""

    def __init__(self, provider, reports_settings, ttl_seconds: int, urgent_patterns=("meeting",),
                 run_id: Optional[str] = None):
        super().__init__()
        self._args = (provider, reports_settings, ttl_seconds, urgent_patterns, run_id)

    def expand(self, pcoll):
        items = pcoll | "ToReviewItem" >> beam.ParDo(QueueForReviewFn(*self._args))
        return split_dead_letters(items, main="items")


class PutReviewItemFn(beam.DoFn):
    def __init__(self, review_dir: str, run_id: Optional[str] = None):
        self._dir = review_dir
        self._run_id = run_id

    def process(self, item):
        ReviewStore(self._dir, self._run_id).put(item)
        counter("review_stored").inc()
        return []


class WriteReviewItems(beam.PTransform):
    """Review items to the review store (one Parquet file each, in the directory of run ``run_id``)
    and/or the review topic."""

    def __init__(self, review_dir: Optional[str], review_topic: Optional[str], run_id: Optional[str] = None):
        super().__init__()
        self._dir = review_dir
        self._topic = review_topic
        self._run_id = run_id

    def expand(self, items):
        if self._dir:
            items | "PutInStore" >> beam.ParDo(PutReviewItemFn(self._dir, self._run_id))
        if self._topic:
            items | "Publish" >> WriteRecords("review", None, self._topic, (), None, "report_id")
        return pvalue.PDone(items.pipeline)


_REPORT_ID = re.compile(rf"\b{REPORT_ID_PATTERN}\b")


def verdict_report_id(message) -> Optional[str]:
    """The ``report_id`` of a verdict message (bytes, str or a Pub/Sub message), for its dead letter;
    None when it is no valid verdict. Never raises."""
    try:
        return parse_verdict(getattr(message, "data", message))["report_id"]
    except Exception:  # noqa: BLE001 - not a verdict: no id
        return None


class ApplyVerdictFn(KeysDoFn):
    """A reviewer verdict message -> the signed report (confirm) or nothing (reject); id-free stats
    records on the ``stats`` output. Bad or stale verdicts are counted and dropped (one log line
    with the reason, no content). The item's decision is kept a while (:meth:`ReviewStore.decide`):
    a verdict applied again, as a retried bundle applies it after its first try took the item out
    of the store, gives the same report again (counted as ``verdict_replayed``, no stats) instead
    of being refused, so a failed write downstream cannot lose a confirmed report. A verdict that
    fails otherwise (a storage error) becomes a dead letter naming its report id, so it can be sent
    again; the item stays pending until its delete."""

    def __init__(self, review_dir: str, reports_settings):
        super().__init__(reports_settings)
        self._dir = review_dir

    @guarded("verdict", outcome=None, event_id=verdict_report_id)
    def process(self, message):
        data = getattr(message, "data", message)
        try:
            verdict = parse_verdict(data)
            report, stats = apply_verdict(ReviewStore(self._dir), verdict, self._keys, replay=True)
        except ReviewError as exc:  # the reason, not the id: a refused verdict may be on a rejected item
            counter("verdict_refused").inc()
            reason = _REPORT_ID.sub("<id>", str(exc))
            logging.getLogger("csadetect.review.store").warning("verdict refused: %s", reason)
            return
        if not stats:  # the decision was kept from an earlier try: its report again, counted once
            counter("verdict_replayed").inc()
            if report is not None:
                yield report
            return
        for s in stats:
            yield pvalue.TaggedOutput(STATS, s)
        if report is None:
            counter("review_rejected").inc()
            return
        counter("review_confirmed").inc()
        yield report


class ApplyVerdicts(beam.PTransform):
    """Outputs (a dict): ``reports`` = signed reports of confirmed items, one per report id (a verdict
    message delivered twice, as Pub/Sub may, replays its kept report: :class:`DedupReports` drops the
    second, while a retried bundle's passes, its state never committed); ``stats`` = id-free stats
    records; ``dead_letter`` = DeadLetter (a verdict that failed unexpectedly, naming its report id)."""

    def __init__(self, review_dir: str, reports_settings):
        super().__init__()
        self._args = (review_dir, reports_settings)

    def expand(self, messages):
        applied = messages | "Apply" >> beam.ParDo(ApplyVerdictFn(*self._args)).with_outputs(
            STATS, DEAD_LETTER, main="reports")
        return {"reports": applied.reports | "FirstPerId" >> DedupReports(),
                STATS: applied[STATS], DEAD_LETTER: applied[DEAD_LETTER]}


class ExpireReviewFn(beam.DoFn):
    """Sweeps the review store at most every ``sweep_seconds`` per worker, driven by the traffic
    it is given (any element is a tick; the element itself is ignored and dropped). Deleting is
    idempotent, so workers sweeping at the same time do no harm."""

    def __init__(self, review_dir: str, sweep_seconds: float, log_dir: Optional[str], clock=None):
        self._dir = review_dir
        self._sweep = sweep_seconds
        self._log_dir = log_dir
        self._clock = clock
        self._last = None

    @guarded("expire_review", outcome=None, emit=False)  # a tick is no record: count and log only
    def process(self, _tick):
        now = (self._clock or time.monotonic)()
        if self._last is not None and now - self._last < self._sweep:
            return
        self._last = now
        deleted, stats = expire(ReviewStore(self._dir), log_dir=self._log_dir)
        if deleted:
            counter("review_expired").inc(len(deleted))
        yield from stats


class ExpireReview(beam.PTransform):
    """Streaming: delete review items whose time to live has passed, sweeping at most every
    ``sweep_seconds`` as elements of the input (the event stream) go by; emits stats records.
    (A timer-driven sweep, ``PeriodicImpulse``, is not supported by the local DirectRunner; on a
    quiet stream ``csadetect review expire`` and the retention job do the same.)"""

    def __init__(self, review_dir: str, sweep_seconds: float, log_dir: Optional[str] = None):
        super().__init__()
        self._dir = review_dir
        self._sweep = sweep_seconds
        self._log_dir = log_dir

    def expand(self, ticks):
        return ticks | "Sweep" >> beam.ParDo(ExpireReviewFn(self._dir, self._sweep, self._log_dir))
