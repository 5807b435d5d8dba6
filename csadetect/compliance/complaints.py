"""Users' complaints and their outcomes (Art. 34), for the provider's complaint handling and the
transparency report.

The store is one append-only event log, ``stores.complaints_dir/complaints.jsonl``
(docs/data.md, "Complaints"):

* ``{"complaint_id", "event": "received", "at", "report_id", "channel", "grounds"}`` when a
  complaint arrives (``channel``: ``cli`` or ``topic``; ``grounds``: one of :data:`GROUNDS`;
  ``report_id`` may be null, and is set to null, with ``"report_redacted": true``, by retention once
  that report is deleted);
* ``{"complaint_id", "event": "outcome", "at", "outcome", "note"}`` when it is decided
  (``outcome``: one of :data:`OUTCOMES`; every outcome is final, so there is at most one).

**No free text is stored.** A complaint is recorded by its category (``grounds``) and the report
it concerns, never by what the user wrote: the message body of a complaint arriving on a topic is
read for ``report_id``, ``grounds`` and ``received_at`` only, and every other field is dropped
unread. The only text is an optional ``note`` on an outcome, at most :data:`NOTE_MAX` characters
on one line, meant for a case reference ("see ticket 123"), not for content or personal data.
Nothing here logs a message body: a rejected message is reported by its Pub/Sub message id and a
fixed reason.

Writes are appends under an exclusive ``flock`` on the log (:func:`locked`), so two operators
cannot both decide the same complaint. Retention (``csadetect.compliance.retention``) rewrites the
log under the same lock to replace the ``report_id`` of a deleted report by null (with
``"report_redacted": true``); the complaint itself stays. The directory must be a local (or
mounted) path. The command line is ``csadetect.cli.complaints``.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import statistics
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator, Optional

from csadetect.core import pubsub
from csadetect.core.ids import check_id, derived_id
from csadetect.core.timeutil import parse_time, utc_iso

log = logging.getLogger("csadetect.compliance.complaints")

LOG_NAME = "complaints.jsonl"
GROUNDS = ("wrongly_detected", "account_action", "content_removed", "other")
OUTCOMES = ("upheld", "rejected", "withdrawn")
CHANNELS = ("cli", "topic")
STATUSES = ("open",) + OUTCOMES
NOTE_MAX = 200


class ComplaintError(ValueError):
    """A complaint request that cannot be carried out; the message is one line (never content)."""


class DuplicateComplaint(ComplaintError):
    """The complaint id is already in the log (a redelivered topic message)."""


# ------------------------------------------------------------------------------- validation


def check_grounds(grounds) -> str:
    if grounds not in GROUNDS:
        raise ComplaintError(f"grounds must be one of {', '.join(GROUNDS)}")
    return grounds


def check_outcome(outcome) -> str:
    if outcome not in OUTCOMES:
        raise ComplaintError(f"outcome must be one of {', '.join(OUTCOMES)}")
    return outcome


def check_report_id(report_id) -> Optional[str]:
    if report_id is None:
        return None
    try:
        return check_id(report_id, "report_id")
    except ValueError as exc:
        raise ComplaintError(str(exc)) from None


def check_note(note) -> Optional[str]:
    if note is None:
        return None
    text = " ".join(str(note).split())
    if len(text) > NOTE_MAX:
        raise ComplaintError(f"the note is longer than {NOTE_MAX} characters (a short reference only, no content)")
    return text or None


def _time(value) -> datetime:
    """A time of the log or of a message: RFC 3339, zone-less taken as UTC (ValueError otherwise)."""
    return parse_time(value, assume_utc=True)


def _at(when) -> str:
    """An RFC 3339 UTC string for ``when`` (datetime, naive = UTC; RFC 3339 string; None = now)."""
    if when is None or isinstance(when, datetime):
        return utc_iso(when)
    try:
        return utc_iso(_time(when))
    except ValueError:
        raise ComplaintError("time must be RFC 3339 (e.g. 2026-11-28T10:00:00Z)") from None


# ------------------------------------------------------------------------------------ the log


def log_path(directory: str) -> str:
    text = str(directory)
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text:
        raise ComplaintError(f"stores.complaints_dir {text} is not a local path: the complaints log needs appends")
    return os.path.join(text, LOG_NAME)


@contextmanager
def locked(directory: str) -> Iterator[int]:
    """An exclusive lock on the log for a read-check-append; yields an O_APPEND descriptor.

    Retention rewrites the log (redacting the ids of deleted reports: temporary file, then
    ``os.replace``) under this same lock. A writer that opened the log before such a rewrite and
    got the lock after it holds the replaced file, so it opens the log again until the file it
    locked is the one at the path: no append is lost to a rewrite."""
    path = log_path(directory)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            mine, current = os.fstat(fd), os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino):
            break
        os.close(fd)  # replaced while we waited: lock the new file
    try:
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _append(fd: int, event: dict) -> None:
    os.write(fd, (json.dumps(event, sort_keys=True) + "\n").encode("utf-8"))
    os.fsync(fd)


def read_events(directory: str) -> list:
    """Every event of the log, in order; a damaged line is skipped with a warning (by line number)."""
    path = log_path(directory)
    if not os.path.exists(path):
        return []
    events = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict) and isinstance(event.get("complaint_id"), str):
                events.append(event)
            else:
                log.warning("%s:%d: not a complaint event, skipped", path, lineno)
    return events


def _state(events: list) -> dict:
    """``{complaint_id: complaint}``, received order; the first outcome of a complaint is final."""
    out: dict = {}
    for e in events:
        cid = e["complaint_id"]
        if e.get("event") == "received" and cid not in out:
            out[cid] = {"complaint_id": cid, "received_at": e.get("at"), "report_id": e.get("report_id"),
                        "channel": e.get("channel"), "grounds": e.get("grounds"), "status": "open",
                        "decided_at": None, "note": None}
        elif e.get("event") == "outcome" and cid in out and out[cid]["status"] == "open":
            out[cid].update(status=e.get("outcome"), decided_at=e.get("at"), note=e.get("note"))
    return out


def complaints_state(directory: str, status: Optional[str] = None) -> list:
    """Current complaints (received order) with ``status`` open, upheld, rejected or withdrawn."""
    if status is not None and status not in STATUSES:
        raise ComplaintError(f"status must be one of {', '.join(STATUSES)}")
    complaints = list(_state(read_events(directory)).values())
    return [c for c in complaints if status is None or c["status"] == status]


def new_complaint_id() -> str:
    return "cmp-" + uuid.uuid4().hex[:12]


def add_complaint(directory: str, grounds: str, report_id: Optional[str] = None, channel: str = "cli",
                  at=None, complaint_id: Optional[str] = None) -> dict:
    """Append a ``received`` event; returns it. A given ``complaint_id`` already in the log raises
    :class:`DuplicateComplaint` (a redelivered message is recorded once)."""
    check_grounds(grounds)
    check_report_id(report_id)
    if channel not in CHANNELS:
        raise ComplaintError(f"channel must be one of {', '.join(CHANNELS)}")
    event = {"complaint_id": complaint_id or new_complaint_id(), "event": "received", "at": _at(at),
             "report_id": report_id, "channel": channel, "grounds": grounds}
    with locked(directory) as fd:
        if complaint_id and complaint_id in _state(read_events(directory)):
            raise DuplicateComplaint(f"complaint {complaint_id} is already recorded")
        _append(fd, event)
    return event


def record_outcome(directory: str, complaint_id: str, outcome: str, note: Optional[str] = None, at=None) -> dict:
    """Append the (final) ``outcome`` event of an open complaint; returns it."""
    check_outcome(outcome)
    note = check_note(note)
    event = {"complaint_id": complaint_id, "event": "outcome", "at": _at(at), "outcome": outcome, "note": note}
    with locked(directory) as fd:
        current = _state(read_events(directory)).get(complaint_id)
        if current is None:
            raise ComplaintError(f"no complaint {complaint_id}")
        if current["status"] != "open":
            raise ComplaintError(f"complaint {complaint_id} is already decided ({current['status']})")
        _append(fd, event)
    return event


def _within(value, start: Optional[datetime], end: Optional[datetime]) -> bool:
    try:
        when = _time(value)
    except ValueError:
        return False
    return (start is None or when >= start) and (end is None or when < end)


def counts(directory: str, start: Optional[datetime] = None, end: Optional[datetime] = None) -> dict:
    """Complaints received in ``[start, end)`` (by grounds and channel), outcomes decided in it (by
    outcome, with the median days from receipt), and how many were open at ``end`` (received before
    it without an outcome before it), as ``csadetect.compliance.transparency`` counts them. No ids."""
    complaints = complaints_state(directory)
    received = [c for c in complaints if _within(c["received_at"], start, end)]
    decided = [c for c in complaints if c["status"] != "open" and _within(c["decided_at"], start, end)]
    open_at_end = [c for c in complaints if _within(c["received_at"], None, end)
                   and (c["status"] == "open" or not _within(c["decided_at"], None, end))]
    days = [(_time(c["decided_at"]) - _time(c["received_at"])).total_seconds() / 86400 for c in decided]
    return {
        "start": utc_iso(start) if start else None,
        "end": utc_iso(end) if end else None,
        "received": len(received),
        "grounds": {g: sum(c["grounds"] == g for c in received) for g in GROUNDS},
        "channels": {ch: sum(c["channel"] == ch for c in received) for ch in CHANNELS},
        "outcomes": {o: sum(c["status"] == o for c in decided) for o in OUTCOMES},
        "open": len(open_at_end),
        "median_days_to_outcome": round(statistics.median(days), 3) if days else None,
    }


# ------------------------------------------------------------------------------------ topic


@dataclass
class PullResult:
    pulled: int = 0
    added: list = field(default_factory=list)  # complaint ids written
    duplicates: int = 0  # redelivered messages already recorded
    rejected: int = 0  # malformed messages (acked, not recorded)

    def summary(self) -> dict:
        return {"pulled": self.pulled, "added": len(self.added), "duplicates": self.duplicates,
                "rejected": self.rejected, "complaint_ids": list(self.added)}


def parse_message(data: bytes) -> dict:
    """``{"report_id", "grounds", "received_at"}`` from a complaint message body; other fields are
    ignored. Raises ComplaintError with a reason that never quotes the body."""
    try:
        obj = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ComplaintError("not UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise ComplaintError("not a JSON object")
    grounds = check_grounds(obj.get("grounds"))
    report_id = check_report_id(obj.get("report_id"))
    received_at = obj.get("received_at")
    if received_at is not None:
        if not isinstance(received_at, str):
            raise ComplaintError("received_at must be an RFC 3339 string")
        received_at = _at(received_at)
    return {"report_id": report_id, "grounds": grounds, "received_at": received_at}


def topic_complaint_id(subscription: str, message_id: str) -> str:
    """Deterministic in the message, so a redelivery is recognised and recorded once."""
    return "cmp-" + derived_id(subscription, message_id, length=12)


def _publish_time(message):
    stamp = getattr(message, "publish_time", None)
    try:
        return utc_iso(stamp) if stamp and stamp.timestamp() > 0 else None
    except (AttributeError, TypeError, ValueError, OSError):
        return None


def _take(directory: str, subscription: str, message, result: PullResult) -> None:
    """Record one message (or count it as rejected or a duplicate); raises only when writing fails."""
    try:
        body = parse_message(message.data)
    except ComplaintError as exc:
        result.rejected += 1
        print(f"rejected complaint message {message.message_id}: {exc}", file=sys.stderr, flush=True)
        return
    try:
        event = add_complaint(directory, body["grounds"], body["report_id"], "topic",
                              body["received_at"] or _publish_time(message),
                              topic_complaint_id(subscription, message.message_id))
    except DuplicateComplaint:
        result.duplicates += 1
        return
    result.added.append(event["complaint_id"])


def _pull_once(client, subscription: str, max_messages: int, timeout: float) -> list:
    from google.api_core import exceptions as gexc

    try:
        resp = client.pull(request={"subscription": subscription, "max_messages": max_messages}, timeout=timeout)
    except gexc.DeadlineExceeded:
        return []
    except gexc.GoogleAPICallError as exc:
        raise ComplaintError(f"pull from {subscription} failed: {exc.message or type(exc).__name__}") from None
    return list(resp.received_messages)


def pull_complaints(settings, subscription: str, max_messages: int = 100, timeout: float = 10.0) -> PullResult:
    """Synchronously pull up to ``max_messages`` complaint messages (honours
    ``PUBSUB_EMULATOR_HOST``), write each, then ack it; malformed messages are acked and counted
    as rejected. Stops at ``max_messages`` or when a pull returns nothing."""
    if not pubsub.SUBSCRIPTION.match(subscription or ""):
        raise ComplaintError("subscription must look like projects/P/subscriptions/S")
    if max_messages < 1:
        raise ComplaintError("--max must be at least 1")
    from google.cloud import pubsub_v1

    directory = settings.stores.complaints_dir
    log_path(directory)  # refuse a remote store before pulling anything
    result = PullResult()
    client = pubsub_v1.SubscriberClient()
    try:
        while result.pulled < max_messages:
            batch = _pull_once(client, subscription, min(max_messages - result.pulled, 1000), timeout)
            if not batch:
                break
            done = []
            try:
                for received in batch:
                    _take(directory, subscription, received.message, result)
                    done.append(received.ack_id)
                    result.pulled += 1
            finally:
                if done:  # only what is written (or rejected); the rest is redelivered
                    client.acknowledge(request={"subscription": subscription, "ack_ids": done})
    finally:
        client.close()
    return result
