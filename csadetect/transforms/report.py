"""BuildReports, DedupReports and SealAndSign: confirmed hits -> Art. 13 report records, one per
report_id, sealed and signed. Thin wrappers: the records are made by
:mod:`csadetect.reports.records` (``pending_report``, ``finalise_report``)."""
from __future__ import annotations

from typing import Any, Optional, Tuple

import apache_beam as beam
from apache_beam.coders import BooleanCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration

from csadetect.config.settings import ProviderSettings
from csadetect.events.event import DeadLetter
from csadetect.reports.records import EVIDENCE, finalise_report, pending_report
from csadetect.transforms.common import AFTER_HIT, KeysDoFn, counter, guarded, split_dead_letters, spread_before_state


class BuildReportFn(beam.DoFn):
    def __init__(self, provider: ProviderSettings, run_id: Optional[str] = None):
        self._provider = provider
        self._run_id = run_id

    @guarded("report", outcome=AFTER_HIT, to_main=True)
    def process(self, matched):
        yield pending_report(matched, self._provider, self._run_id)


def _key_by_report_id(record):
    """``(report_id, report)``; a dead letter handed on from ``ToReport`` is keyed by ``""``."""
    return ("", record) if isinstance(record, DeadLetter) else (record["report_id"], record)


class BuildReports(beam.PTransform):
    """Confirmed hits -> report records citing their detection order (sealed evidence still under
    the transient ``_evidence`` key until :class:`SealAndSign`); ``run_id``: the pipeline run,
    part of every report id (:func:`csadetect.reports.schema.report_id`)."""

    def __init__(self, provider: ProviderSettings, run_id: Optional[str] = None):
        super().__init__()
        self._provider = provider
        self._run_id = run_id

    def expand(self, confirmed):
        return confirmed | "ToReport" >> beam.ParDo(BuildReportFn(self._provider, self._run_id))


class SealAndSignFn(KeysDoFn):
    @guarded("seal", outcome=AFTER_HIT, to_main=True)
    def process(self, report):
        yield finalise_report(report, self._keys, report.get(EVIDENCE))


class SealAndSign(beam.PTransform):
    """Evidence re-sealed for the EU Centre, then the provider's signature (DESIGN 6/7).
    Outputs: ``reports`` = signed reports; ``dead_letter`` = DeadLetter (a report that failed here
    or in ``BuildReports``, handed on through ``DedupReports``)."""

    def __init__(self, reports_settings):
        super().__init__()
        self._reports = reports_settings

    def expand(self, reports):
        finalised = reports | "Finalise" >> beam.ParDo(SealAndSignFn(self._reports))
        return split_dead_letters(finalised, main="reports")


class _DedupFn(beam.DoFn):
    """Emits the first record per report_id; state expires ``ttl_seconds`` of event time later.
    Counts what it emits as ``kept`` (None: not counted) and what it drops as ``duplicate``."""

    SEEN = ReadModifyWriteStateSpec("seen", BooleanCoder())
    EXPIRY = TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, ttl_seconds: int, kept: Optional[str] = "report", duplicate: str = "duplicate_report"):
        self._ttl = ttl_seconds
        self._kept = kept
        self._duplicate = duplicate

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        seen=beam.DoFn.StateParam(SEEN),
        expiry=beam.DoFn.TimerParam(EXPIRY),
    ):
        _, report = element
        if isinstance(report, DeadLetter):  # handed on from ToReport: no state, no timer
            yield report
            return
        if seen.read():
            counter(self._duplicate).inc()
            return
        seen.write(True)
        expiry.set(timestamp + Duration(seconds=self._ttl))
        if self._kept:
            counter(self._kept).inc()
        yield report

    @on_timer(EXPIRY)
    def expire(self, seen=beam.DoFn.StateParam(SEEN)):
        seen.clear()


class DedupReports(beam.PTransform):
    """Redelivered events (Pub/Sub is at-least-once; DirectRunner has no id_label) yield the same
    report_id; only the first report (or review item: any record with a ``report_id``) per id
    reaches the sinks, for ``ttl_seconds`` of event time. ``kept`` / ``duplicate``: the counters of
    what passes and what is dropped."""

    def __init__(self, ttl_seconds: int = 7 * 24 * 3600, kept: Optional[str] = "report",
                 duplicate: str = "duplicate_report"):
        super().__init__()
        self._args = (ttl_seconds, kept, duplicate)

    def expand(self, reports):
        keyed = reports | "KeyById" >> beam.Map(_key_by_report_id).with_output_types(Tuple[str, Any])
        return spread_before_state(keyed, "SpreadById") | "FirstPerId" >> beam.ParDo(_DedupFn(*self._args))
