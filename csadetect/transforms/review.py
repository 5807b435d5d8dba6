"""Confirmation stage (DESIGN §2 "Confirm"; §6): hits awaiting a human go to the review queue, and
reviewer verdicts turn them into reports or delete them.

* :class:`QueueForReview`: unconfirmed hits (``MatchedItem``) and flagged conversations -> review
  items (:data:`csadetect.reports.schema.REVIEW_SCHEMA`), evidence sealed for the provider's reviewers.
* :class:`WriteReviewItems`: the review store (one Parquet file per item) and the review topic.
* :class:`ApplyVerdicts`: reviewer verdicts (JSON messages) -> signed reports for confirmed items;
  rejected items are deleted, leaving a counter.
* :class:`ExpireReview`: in streaming, sweeps the store every ``review.sweep_seconds`` and deletes
  items whose time to live has passed, with their evidence (counted).
Every stage here is explicit I/O on the review store; nothing else touches it.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Optional

import apache_beam as beam
from apache_beam import pvalue

from csadetect.reports.schema import hit_report, report_id
from csadetect.transforms.common import KeysDoFn, counter

STATS = "stats"
REJECTED = "rejected"


def with_order(report: dict, order: Optional[tuple]) -> dict:
    """Cite the detection order the detector ran under as the report's legal basis."""
    order_id, basis = order or ("", "")
    report["order_id"] = order_id or None
    report["legal_basis"] = basis or "no detection order recorded (ungated run)"
    return report


def detection_type_of(matched) -> str:
    return "known" if matched.matches else "new"


def report_of(matched, provider) -> dict:
    """The report record of a hit with its order as legal basis, plus its sealed evidence under
    the transient key ``_evidence`` (removed by ``finalise_report``)."""
    report = hit_report(matched, provider)
    with_order(report, matched.item.event.order_for(detection_type_of(matched)))
    report["_evidence"] = matched.item.evidence
    return report


def grooming_report(flag: dict, provider, urgent_patterns=("meeting",)) -> dict:
    """A flagged conversation as a report record (pending review). The messages are not in it:
    they are the evidence, sealed separately."""
    from csadetect.events.event import utc_now
    from csadetect.reports.schema import REPORT_FIELDS, SCHEMA_VERSION

    senders = Counter()
    by_index = {m["index"]: m for m in flag["messages"]}
    for e in flag["evidence"]:
        m = by_index.get(e["message_index"])
        if m is not None:
            senders[m["sender"]] += 1
    report = dict.fromkeys(REPORT_FIELDS)
    report.update(
        report_id=report_id(flag["provider"], flag["conversation_id"], "grooming"),
        schema_version=SCHEMA_VERSION,
        provider_id=provider.provider_id,
        created_at=utc_now(),
        detection_type="grooming",
        detector="grooming-text",
        detector_version=flag["model_version"],
        score=float(flag["score"]),
        threshold=float(flag["threshold"]),
        indicator_ids=[], categories=[], matches=[],
        review_status="pending",
        content_kind="text",
        mime="text/plain",
        event_id=flag["event_id"],
        service=flag["service"],
        occurred_at=flag["occurred_at"],
        # the account that sent most of the risk messages (all accounts are in the sealed evidence)
        account=_sender_account(flag, senders.most_common(1)[0][0] if senders else None) or (flag["accounts"] or [None])[0],
        content_removed=bool(provider.content_removed),
        # imminent risk (e.g. a meeting request) puts the report first in the Centre's queue
        urgent=bool({e["pattern"] for e in flag["evidence"]} & set(urgent_patterns)),
        account_action=provider.account_action,
        conversation_id=flag["conversation_id"],
        risk_patterns=sorted({e["pattern"] for e in flag["evidence"]}),
    )
    return with_order(report, flag.get("order"))


def _sender_account(flag: dict, sender) -> Optional[str]:
    if sender is None:
        return None
    for s, account in flag.get("sender_accounts", ()):
        if s == sender:
            return account
    return None


def grooming_evidence(flag: dict) -> bytes:
    """What a reviewer reads for a flagged conversation: the messages and the risk evidence."""
    return json.dumps({"conversation_id": flag["conversation_id"], "messages": flag["messages"],
                       "evidence": flag["evidence"], "flagged_at_message": flag["flagged_at_message"],
                       "accounts": flag["accounts"]}, sort_keys=True).encode("utf-8")


class QueueForReviewFn(KeysDoFn):
    """MatchedItem (review output of Decide) or a grooming flag dict -> a review item."""

    def __init__(self, provider, reports_settings, ttl_seconds: int, urgent_patterns=("meeting",)):
        super().__init__(reports_settings)
        self._provider = provider
        self._ttl = ttl_seconds
        self._urgent = tuple(urgent_patterns)

    def process(self, element):
        from csadetect.reports import crypto
        from csadetect.review.store import review_item

        if isinstance(element, dict):  # a flagged conversation
            report = grooming_report(element, self._provider, self._urgent)
            token = None
            if self._keys.evidence is not None:
                token = crypto.seal_content(grooming_evidence(element), "application/json",
                                            self._keys.evidence_public(), report["event_id"])
        else:
            report = report_of(element, self._provider)
            token = report.pop("_evidence", None)
        counter("review_queued").inc()
        yield review_item(report, token, self._ttl)


class QueueForReview(beam.PTransform):
    def __init__(self, provider, reports_settings, ttl_seconds: int, urgent_patterns=("meeting",)):
        super().__init__()
        self._args = (provider, reports_settings, ttl_seconds, urgent_patterns)

    def expand(self, pcoll):
        return pcoll | "ToReviewItem" >> beam.ParDo(QueueForReviewFn(*self._args))


class PutReviewItemFn(beam.DoFn):
    def __init__(self, review_dir: str):
        self._dir = review_dir

    def process(self, item):
        from csadetect.review.store import ReviewStore

        ReviewStore(self._dir).put(item)
        counter("review_stored").inc()
        return []


class WriteReviewItems(beam.PTransform):
    """Review items to the review store (one Parquet file each) and/or the review topic."""

    def __init__(self, review_dir: Optional[str], review_topic: Optional[str]):
        super().__init__()
        self._dir = review_dir
        self._topic = review_topic

    def expand(self, items):
        from csadetect.transforms.sinks import WriteRecords

        if self._dir:
            items | "PutInStore" >> beam.ParDo(PutReviewItemFn(self._dir))
        if self._topic:
            items | "Publish" >> WriteRecords("review", None, self._topic, (), None, "report_id")
        return pvalue.PDone(items.pipeline)


class ApplyVerdictFn(KeysDoFn):
    """A reviewer verdict message -> the signed report (confirm) or nothing (reject); id-free stats
    records on the ``stats`` output. Bad or stale verdicts are counted and dropped (one log line
    with the reason, no content)."""

    def __init__(self, review_dir: str, reports_settings):
        super().__init__(reports_settings)
        self._dir = review_dir

    def process(self, message):
        import logging

        from csadetect.review.store import ReviewError, ReviewStore, apply_verdict, parse_verdict

        data = getattr(message, "data", message)
        try:
            verdict = parse_verdict(data)
            report, stats = apply_verdict(ReviewStore(self._dir), verdict, self._keys)
        except ReviewError as exc:
            counter("verdict_refused").inc()
            logging.getLogger("csadetect.review.store").warning("verdict refused: %s", exc)
            return
        for s in stats:
            yield pvalue.TaggedOutput(STATS, s)
        if report is None:
            counter("review_rejected").inc()
            return
        counter("review_confirmed").inc()
        yield report


class ApplyVerdicts(beam.PTransform):
    """Outputs: main = signed reports of confirmed items; ``stats`` = id-free stats records."""

    def __init__(self, review_dir: str, reports_settings):
        super().__init__()
        self._args = (review_dir, reports_settings)

    def expand(self, messages):
        return messages | "Apply" >> beam.ParDo(ApplyVerdictFn(*self._args)).with_outputs(STATS, main="reports")


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

    def process(self, _tick):
        import time

        from csadetect.review.store import ReviewStore, expire

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
