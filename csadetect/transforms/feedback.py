"""The feedback transforms (DESIGN §8, Art. 83(1)(a), Art. 12(2)): EU Centre verdicts joined to the
provider's reports by ``report_id`` -> precision per detector and version, alerts, labelled
examples for ``csadetect tune`` and scheduled user notifications.

Formats are those of ``docs/data.md``; the reasoning is in ``docs/feedback.md``. Nothing here logs
a report id, an account or the text of a verdict: bad or unmatched input is only counted.

* :class:`ParseReports` keeps the few report fields the feedback needs (data minimisation; the
  evidence, hashes and incident data are dropped at once), optionally after checking the
  provider's signature.
* :class:`ParseVerdicts` validates Centre verdicts.
* :class:`JoinVerdicts` is a stateful DoFn keyed by ``report_id``. In batch it buffers a key's
  report and verdicts and emits once at the end of the input (the latest ``decided_at`` wins).
  In streaming it emits as soon as a report and a verdict meet, and when a later verdict
  supersedes one already emitted it says which (``previous_verdict``) so precision is corrected,
  not counted twice.
* :class:`PrecisionPerDetector`, :class:`Alerts`, :class:`LabelledExamples` and
  :class:`ScheduleNotifications` turn the joined records into the outputs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Optional, Tuple

import apache_beam as beam
from apache_beam.coders import BooleanCoder, PickleCoder
from apache_beam.transforms import trigger, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from csadetect.transforms.common import counter

VERDICTS = ("confirmed", "manifestly_unfounded")
# What the feedback keeps of a report: the detector (precision, examples) and who to notify.
REPORT_FIELDS = (
    "report_id", "provider_id", "service", "account", "created_at",
    "detection_type", "detector", "detector_version", "score", "distance", "threshold",
)
EXAMPLE_FIELDS = ("detector", "detector_version", "detection_type", "score", "distance", "threshold")
ALERT_LOGGER = "csadetect.alert"

REPORT, VERDICT = "report", "verdict"


# ------------------------------------------------------------------------------------ helpers


def parse_time(value: Any) -> datetime:
    """An RFC 3339 string -> an aware UTC datetime; raises ValueError."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("not a time string")
    text = value.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError("time without a UTC offset")
    return dt.astimezone(timezone.utc)


def format_time(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> str:
    return format_time(datetime.now(timezone.utc))


def clock(now: Optional[str]) -> str:
    """The injected time (``--now``, batch tests) or the real one."""
    return now or utc_now()


def notification_id(report_id: str) -> str:
    """One notification per report: records for the same report share this id, so a rerun or a
    later verdict replaces the earlier record instead of adding a second notification."""
    return hashlib.sha256(f"notification\x1f{report_id}".encode()).hexdigest()[:32]


def _decode(element) -> Any:
    data = element.data if hasattr(element, "data") and hasattr(element, "attributes") else element
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data).decode("utf-8")
    return json.loads(data)


class BadInput(ValueError):
    """A report or verdict that cannot be used; the message is a short reason without content."""


# ------------------------------------------------------------------------------------- verdicts


def parse_verdict(element) -> dict:
    """A Centre verdict (bytes, str or PubsubMessage) -> a normalised dict; raises BadInput."""
    try:
        obj = _decode(element)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("not JSON") from None
    if not isinstance(obj, dict):
        raise BadInput("not a JSON object")
    rid = obj.get("report_id")
    if not isinstance(rid, str) or not rid.strip():
        raise BadInput("no report_id")
    if obj.get("verdict") not in VERDICTS:
        raise BadInput("verdict is not confirmed or manifestly_unfounded")
    try:
        decided_at = format_time(parse_time(obj.get("decided_at")))
    except (ValueError, TypeError):
        raise BadInput("decided_at is not an RFC 3339 time") from None
    reason = obj.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadInput("reason is not a string")
    delay = obj.get("delay_notification", False)
    if delay is None:
        delay = False
    if not isinstance(delay, bool):
        raise BadInput("delay_notification is not a boolean")
    delay_until = obj.get("delay_until")
    if delay_until is not None:
        try:
            delay_until = format_time(parse_time(delay_until))
        except (ValueError, TypeError):
            raise BadInput("delay_until is not an RFC 3339 time") from None
    return {
        "report_id": rid.strip(),
        "verdict": obj["verdict"],
        "reason": reason,
        "decided_at": decided_at,
        "delay_notification": delay,
        "delay_until": delay_until if delay else None,
    }


def verdict_order(verdict: dict) -> tuple:
    """Sort key: the latest ``decided_at`` wins; equal times are broken by the verdict's content so
    the winner never depends on the order the runner delivers them in."""
    return (parse_time(verdict["decided_at"]), json.dumps(verdict, sort_keys=True))


class ParseVerdictFn(beam.DoFn):
    def __init__(self):
        self._received = counter("feedback_verdict")
        self._bad = counter("feedback_bad_verdict")

    def process(self, element):
        self._received.inc()
        try:
            verdict = parse_verdict(element)
        except BadInput:
            self._bad.inc()
            return
        yield verdict


class ParseVerdicts(beam.PTransform):
    """Message bodies or JSON lines -> verdict dicts; bad ones are counted (``feedback_bad_verdict``)."""

    def expand(self, raw):
        return raw | "Parse" >> beam.ParDo(ParseVerdictFn())


# -------------------------------------------------------------------------------------- reports


def minimal_report(obj: Any) -> dict:
    """The report fields the feedback needs; raises BadInput."""
    if not isinstance(obj, dict):
        raise BadInput("not a JSON object")
    rid = obj.get("report_id")
    if not isinstance(rid, str) or not rid:
        raise BadInput("no report_id")
    for key in ("detector", "detector_version", "detection_type"):
        if not isinstance(obj.get(key), str) or not obj.get(key):
            raise BadInput(f"no {key}")
    try:
        created = format_time(parse_time(obj.get("created_at")))
    except (ValueError, TypeError):
        raise BadInput("created_at is not an RFC 3339 time") from None
    out = {key: obj.get(key) for key in REPORT_FIELDS}
    out["created_at"] = created
    for key in ("score", "distance", "threshold"):
        value = out[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise BadInput(f"{key} is not a number")
        out[key] = None if value is None else float(value)
    return out


class ParseReportFn(beam.DoFn):
    """Report JSON -> :func:`minimal_report`. With ``public_key``, reports whose provider signature
    does not verify are counted (``feedback_unverified_report``) and dropped."""

    def __init__(self, public_key: Optional[str] = None):
        self._public_key_path = public_key
        self._public_key = None
        self._received = counter("feedback_report")
        self._bad = counter("feedback_bad_report")
        self._unverified = counter("feedback_unverified_report")

    def setup(self):
        if self._public_key_path:
            from csadetect.core.keys import load_public_key

            self._public_key = load_public_key(self._public_key_path)

    def process(self, element):
        self._received.inc()
        try:
            obj = _decode(element)
        except (ValueError, UnicodeDecodeError):
            self._bad.inc()
            return
        if self._public_key is not None:
            from csadetect.reports.crypto import ReportSignatureError, verify_report

            try:
                verify_report(obj, self._public_key)
            except ReportSignatureError:
                self._unverified.inc()
                return
        try:
            report = minimal_report(obj)
        except BadInput:
            self._bad.inc()
            return
        yield report


class ParseReports(beam.PTransform):
    """Report messages or JSON lines -> minimal report dicts."""

    def __init__(self, public_key: Optional[str] = None):
        super().__init__()
        self._public_key = public_key

    def expand(self, raw):
        return raw | "Parse" >> beam.ParDo(ParseReportFn(self._public_key))


# ----------------------------------------------------------------------------------------- join


def joined_record(report: dict, verdict: Optional[dict], previous_verdict: Optional[dict] = None,
                  emitted_before: bool = False) -> dict:
    """What :class:`JoinVerdicts` emits. ``verdict`` None: a report without a verdict (yet), for the
    notification schedule. ``previous_verdict``: the verdict this one supersedes (streaming);
    ``emitted_before``: a record for this report went out before (its notification too)."""
    return {"report": report, "verdict": verdict, "previous_verdict": previous_verdict,
            "emitted_before": emitted_before}


class _BatchJoinFn(beam.DoFn):
    """Batch: buffer the report and the best verdict per report_id, emit once when the input ends
    (an event-time timer at the end of the global window)."""

    REPORT_STATE = ReadModifyWriteStateSpec("report", PickleCoder())
    VERDICT_STATE = ReadModifyWriteStateSpec("verdict", PickleCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def __init__(self):
        self._joined = counter("feedback_joined")
        self._unknown = counter("feedback_unknown_report")
        self._duplicate = counter("feedback_duplicate_verdict")
        self._duplicate_report = counter("feedback_duplicate_report")

    def process(
        self,
        element,
        win=beam.DoFn.WindowParam,
        report_state=beam.DoFn.StateParam(REPORT_STATE),
        verdict_state=beam.DoFn.StateParam(VERDICT_STATE),
        flush=beam.DoFn.TimerParam(FLUSH),
    ):
        _, (tag, value) = element
        if tag == REPORT:
            if report_state.read() is not None:
                self._duplicate_report.inc()
            else:
                report_state.write(value)
        else:
            best = verdict_state.read()
            if best is not None:
                self._duplicate.inc()
            if best is None or verdict_order(value) > verdict_order(best):
                verdict_state.write(value)
        flush.set(win.max_timestamp())

    @on_timer(FLUSH)
    def flush(
        self,
        report_state=beam.DoFn.StateParam(REPORT_STATE),
        verdict_state=beam.DoFn.StateParam(VERDICT_STATE),
    ):
        report, verdict = report_state.read(), verdict_state.read()
        report_state.clear()
        verdict_state.clear()
        if report is None:
            if verdict is not None:
                self._unknown.inc()  # dropped: no content, no id in any log
            return
        if verdict is not None:
            self._joined.inc()
        yield joined_record(report, verdict)


class _StreamingJoinFn(beam.DoFn):
    """Streaming: emit as soon as a report and a verdict meet. A verdict whose report has not been
    seen waits ``unknown_grace_seconds`` (processing time) for it, then is counted as unknown and
    dropped. State for a report is cleared ``retention_seconds`` after it arrived (Art. 22)."""

    REPORT_STATE = ReadModifyWriteStateSpec("report", PickleCoder())
    VERDICT_STATE = ReadModifyWriteStateSpec("verdict", PickleCoder())  # the best verdict so far
    EMITTED = ReadModifyWriteStateSpec("emitted", BooleanCoder())  # a record went out for this report
    GRACE = TimerSpec("grace", TimeDomain.REAL_TIME)
    EXPIRE = TimerSpec("expire", TimeDomain.REAL_TIME)

    def __init__(self, unknown_grace_seconds: float, retention_seconds: float):
        self._grace = unknown_grace_seconds
        self._retention = retention_seconds
        self._joined = counter("feedback_joined")
        self._unknown = counter("feedback_unknown_report")
        self._duplicate = counter("feedback_duplicate_verdict")
        self._superseded = counter("feedback_superseded_verdict")
        self._duplicate_report = counter("feedback_duplicate_report")
        self._expired = counter("feedback_state_expired")

    def process(
        self,
        element,
        report_state=beam.DoFn.StateParam(REPORT_STATE),
        verdict_state=beam.DoFn.StateParam(VERDICT_STATE),
        emitted_state=beam.DoFn.StateParam(EMITTED),
        grace=beam.DoFn.TimerParam(GRACE),
        expire=beam.DoFn.TimerParam(EXPIRE),
    ):
        _, (tag, value) = element
        now = Timestamp.now()
        report, best = report_state.read(), verdict_state.read()
        if tag == REPORT:
            if report is not None:
                self._duplicate_report.inc()
                return
            report_state.write(value)
            expire.set(now + self._retention)
            emitted_state.write(True)
            if best is not None:  # its verdict came first and waited
                self._joined.inc()
            yield joined_record(value, best)
            return
        if best is not None:
            self._duplicate.inc()
            if verdict_order(value) <= verdict_order(best):
                return
        verdict_state.write(value)
        if report is None:
            grace.set(now + self._grace)
            return
        if best is None:
            self._joined.inc()
        else:
            self._superseded.inc()
        yield joined_record(report, value, best, bool(emitted_state.read()))
        emitted_state.write(True)

    @on_timer(GRACE)
    def grace_over(
        self,
        report_state=beam.DoFn.StateParam(REPORT_STATE),
        verdict_state=beam.DoFn.StateParam(VERDICT_STATE),
    ):
        if report_state.read() is None and verdict_state.read() is not None:
            self._unknown.inc()
            verdict_state.clear()

    @on_timer(EXPIRE)
    def expire(
        self,
        report_state=beam.DoFn.StateParam(REPORT_STATE),
        verdict_state=beam.DoFn.StateParam(VERDICT_STATE),
        emitted_state=beam.DoFn.StateParam(EMITTED),
    ):
        self._expired.inc()
        report_state.clear()
        verdict_state.clear()
        emitted_state.clear()


class JoinVerdicts(beam.PTransform):
    """``(reports, verdicts)`` -> joined records (:func:`joined_record`), one key per report_id.
    Verdicts for report ids never seen are counted (``feedback_unknown_report``) and dropped; of
    several verdicts for one report the latest ``decided_at`` wins and is counted once."""

    def __init__(self, streaming: bool = False, unknown_grace_seconds: float = 600.0,
                 retention_seconds: float = 365 * 24 * 3600.0):
        super().__init__()
        self._streaming = streaming
        self._grace = unknown_grace_seconds
        self._retention = retention_seconds

    def expand(self, inputs):
        reports, verdicts = inputs
        keyed_reports = reports | "KeyReports" >> beam.Map(lambda r: (r["report_id"], (REPORT, r))).with_output_types(
            Tuple[str, Tuple[str, Dict[str, Any]]])
        keyed_verdicts = verdicts | "KeyVerdicts" >> beam.Map(
            lambda v: (v["report_id"], (VERDICT, v))).with_output_types(Tuple[str, Tuple[str, Dict[str, Any]]])
        both = (keyed_reports, keyed_verdicts) | "Merge" >> beam.Flatten()
        fn = _StreamingJoinFn(self._grace, self._retention) if self._streaming else _BatchJoinFn()
        return both | "Join" >> beam.ParDo(fn)


# ------------------------------------------------------------------------------------ precision


def precision_delta(joined):
    """``((detector, version), (d_confirmed, d_unfounded, detection_type))`` for a joined record:
    +1 for its verdict, -1 for the verdict it supersedes (nothing when the label is unchanged)."""
    verdict = joined["verdict"]
    if verdict is None:
        return
    previous = joined.get("previous_verdict")
    if previous is not None and previous["verdict"] == verdict["verdict"]:
        return
    report = joined["report"]
    dc = (verdict["verdict"] == "confirmed") - (previous is not None and previous["verdict"] == "confirmed")
    du = (verdict["verdict"] == "manifestly_unfounded") - (
        previous is not None and previous["verdict"] == "manifestly_unfounded")
    yield (report["detector"], report["detector_version"]), (int(dc), int(du), report["detection_type"])


class PrecisionCombineFn(beam.CombineFn):
    """Sums ``(d_confirmed, d_unfounded, detection_type)`` deltas."""

    def create_accumulator(self):
        return (0, 0, None)

    def add_input(self, acc, delta):
        return (acc[0] + delta[0], acc[1] + delta[1], acc[2] or delta[2])

    def merge_accumulators(self, accs):
        confirmed = unfounded = 0
        kind = None
        for c, u, t in accs:
            confirmed, unfounded, kind = confirmed + c, unfounded + u, kind or t
        return (confirmed, unfounded, kind)

    def extract_output(self, acc):
        return acc


def precision_record(detector: str, detector_version: str, detection_type: Optional[str], confirmed: int,
                     unfounded: int, at: str) -> dict:
    """precision = confirmed / verdicts with its 95% Wilson interval (docs/data.md)."""
    from csadetect.tuning.tune import wilson

    n = confirmed + unfounded
    low, high = wilson(confirmed, n)
    return {
        "at": at,
        "detector": detector,
        "detector_version": detector_version,
        "detection_type": detection_type,
        "verdicts": n,
        "confirmed": confirmed,
        "manifestly_unfounded": unfounded,
        "precision": confirmed / n if n else None,
        "precision_low": low,
        "precision_high": high,
    }


class _PrecisionRecordFn(beam.DoFn):
    def __init__(self, now: Optional[str]):
        self._now = now

    def process(self, element):
        (detector, version), (confirmed, unfounded, kind) = element
        yield precision_record(detector, version, kind, confirmed, unfounded, clock(self._now))


class PrecisionPerDetector(beam.PTransform):
    """Joined records -> one precision record per (detector, detector_version).

    Batch: one record each, at the end. Streaming: the global window with an accumulating trigger
    re-emits a detector's record whenever its counts change: per element by default
    (``every_seconds=0``: every verdict updates precision and can raise an alert at once; Centre
    verdicts are few, so this is cheap), or at most once every ``every_seconds`` of processing
    time (``Repeatedly(AfterProcessingTime)``) for a busier stream."""

    def __init__(self, streaming: bool = False, now: Optional[str] = None, every_seconds: float = 0):
        super().__init__()
        self._streaming = streaming
        self._now = now
        self._every = every_seconds

    def expand(self, joined):
        deltas = joined | "Deltas" >> beam.FlatMap(precision_delta).with_output_types(
            Tuple[Tuple[str, str], Tuple[int, int, Optional[str]]])
        if self._streaming:
            fire = trigger.AfterProcessingTime(self._every) if self._every > 0 else trigger.AfterCount(1)
            deltas = deltas | "GlobalAccumulating" >> beam.WindowInto(
                window.GlobalWindows(),
                trigger=trigger.Repeatedly(fire),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                timestamp_combiner=window.TimestampCombiner.OUTPUT_AT_LATEST,
            )
        return (
            deltas
            | "Count" >> beam.CombinePerKey(PrecisionCombineFn())
            | "Record" >> beam.ParDo(_PrecisionRecordFn(self._now))
        )


# --------------------------------------------------------------------------------------- alerts


class _StderrNow(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test capture, a redirected worker)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def alert_logger() -> logging.Logger:
    """``csadetect.alert``: bare lines (``ALERT ...``) on stderr, not repeated by the root logger."""
    log = logging.getLogger(ALERT_LOGGER)
    if not any(isinstance(h, _StderrNow) for h in log.handlers):
        handler = _StderrNow()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.WARNING)
        log.propagate = False
    return log


def alert_line(alert: dict) -> str:
    return (f"ALERT precision below floor: detector={alert['detector']} "
            f"detector_version={alert['detector_version']} precision={alert['precision']:.4f} "
            f"floor={alert['floor']:.4f} n={alert['verdicts']}")


class AlertFn(beam.DoFn):
    """Keyed by (detector, detector_version): an alert when precision falls below ``floor`` with at
    least ``min_verdicts`` verdicts. In streaming it fires once on the way down and re-arms when
    precision recovers, so an updated record per verdict does not repeat the alert."""

    ALERTING = ReadModifyWriteStateSpec("alerting", BooleanCoder())

    def __init__(self, floor: float, min_verdicts: int):
        self._floor = floor
        self._min = min_verdicts
        self._alerts = counter("feedback_alert")

    def setup(self):
        self._log = alert_logger()

    def process(self, element, alerting=beam.DoFn.StateParam(ALERTING)):
        _, record = element
        below = (record["verdicts"] >= self._min and record["precision"] is not None
                 and record["precision"] < self._floor)
        if not below:
            if alerting.read():
                alerting.clear()
            return
        if alerting.read():
            return
        alerting.write(True)
        alert = {
            "at": record["at"],
            "detector": record["detector"],
            "detector_version": record["detector_version"],
            "precision": record["precision"],
            "floor": self._floor,
            "verdicts": record["verdicts"],
        }
        self._alerts.inc()
        self._log.warning(alert_line(alert))
        yield alert


class Alerts(beam.PTransform):
    """Precision records -> alert records (and one ``ALERT`` log line each)."""

    def __init__(self, floor: float, min_verdicts: int):
        super().__init__()
        self._floor = floor
        self._min = min_verdicts

    def expand(self, precision):
        return (
            precision
            | "KeyByDetector" >> beam.Map(lambda r: ((r["detector"], r["detector_version"]), r)).with_output_types(
                Tuple[Tuple[str, str], Dict[str, Any]])
            | "BelowFloor" >> beam.ParDo(AlertFn(self._floor, self._min))
        )


# ------------------------------------------------------------------------------------- examples


def labelled_example(joined: dict) -> Optional[dict]:
    """A tune-ready example without ids or personal data; None when there is nothing new to say
    (no verdict, or a superseding verdict with the same label)."""
    verdict = joined["verdict"]
    if verdict is None:
        return None
    previous = joined.get("previous_verdict")
    if previous is not None and previous["verdict"] == verdict["verdict"]:
        return None
    report = joined["report"]
    example = {key: report.get(key) for key in EXAMPLE_FIELDS}
    example.update(label=verdict["verdict"], reason=verdict.get("reason"), decided_at=verdict["decided_at"])
    return example


class LabelledExamples(beam.PTransform):
    """Joined records -> labelled examples (``examples-*.jsonl``)."""

    def expand(self, joined):
        def examples(j):
            example = labelled_example(j)
            if example is not None:
                counter("feedback_example").inc()
                yield example

        return joined | "Example" >> beam.FlatMap(examples)


# -------------------------------------------------------------------------------- notifications


def schedule_notification(report: dict, verdict: Optional[dict], now: str, notify_after_days: int) -> dict:
    """The Art. 12(2) notification for a report given its verdict (None: none yet).

    manifestly_unfounded: due at once (``now``); otherwise (confirmed, or no verdict yet) due
    ``notify_after_days`` after the report's ``created_at`` (trigger ``three_months``). When the
    Centre asked for a delay the status is ``delayed`` and ``due_at`` is ``delay_until`` (never
    earlier than the due time without the delay) or null (until the Centre says otherwise).
    ``decided_at`` (the verdict's, null without one) orders records for the same report:
    see :func:`supersedes`."""
    if verdict is not None and verdict["verdict"] == "manifestly_unfounded":
        trigger_name, due = "manifestly_unfounded", format_time(parse_time(now))
    else:
        trigger_name = "three_months"
        due = format_time(parse_time(report["created_at"]) + timedelta(days=notify_after_days))
    status = "scheduled"
    if verdict is not None and verdict.get("delay_notification"):
        status = "delayed"
        until = verdict.get("delay_until")
        due = None if until is None else max(until, due, key=parse_time)
    return {
        "notification_id": notification_id(report["report_id"]),
        "report_id": report["report_id"],
        "provider_id": report.get("provider_id"),
        "service": report.get("service"),
        "account": report.get("account"),
        "due_at": due,
        "trigger": trigger_name,
        "status": status,
        "decided_at": None if verdict is None else verdict["decided_at"],
    }


def supersedes(new: dict, old: dict) -> bool:
    """Whether notification record ``new`` replaces ``old`` (same ``notification_id``): a record
    made from a verdict replaces one made without, a later verdict an earlier one. Pub/Sub does
    not keep order, so consumers compare with this rather than trust arrival order."""
    def key(record):
        return (record.get("decided_at") is not None, record.get("decided_at") or "")

    return key(new) > key(old)


def _schedule(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "decided_at"}


class ScheduleNotificationFn(beam.DoFn):
    """Joined record -> notification record, unless it is the same as the one already sent out
    for this report (streaming: a confirming verdict after the report's own record)."""

    def __init__(self, notify_after_days: int, now: Optional[str] = None):
        self._days = notify_after_days
        self._now = now
        self._count = counter("feedback_notification")

    def process(self, joined):
        now = clock(self._now)
        record = schedule_notification(joined["report"], joined["verdict"], now, self._days)
        unchanged = False
        if joined.get("emitted_before"):
            before = schedule_notification(joined["report"], joined.get("previous_verdict"), now, self._days)
            unchanged = _schedule(before) == _schedule(record)  # the user-facing schedule is the same
        if not unchanged:
            self._count.inc()
            yield record


class ScheduleNotifications(beam.PTransform):
    def __init__(self, notify_after_days: int, now: Optional[str] = None):
        super().__init__()
        self._days = notify_after_days
        self._now = now

    def expand(self, joined):
        return joined | "Schedule" >> beam.ParDo(ScheduleNotificationFn(self._days, self._now))
