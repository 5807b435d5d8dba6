"""User notifications (Art. 12(2); docs/feedback.md): when the provider tells the user about a
report, given the Centre's verdict.

One notification per report (:func:`notification_id`): a rerun or a later verdict replaces the
earlier record instead of adding a second one, and :func:`supersedes` says which record wins,
since Pub/Sub does not keep order.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Optional

from csadetect.core.ids import derived_id
from csadetect.core.timeutil import parse_time, utc_iso


def notification_id(report_id: str) -> str:
    """One notification per report: records for the same report share this id, so a rerun or a
    later verdict replaces the earlier record instead of adding a second notification."""
    return derived_id("notification", report_id)


def schedule_notification(report: dict, verdict: Optional[dict], now: str, notify_after_days: int) -> dict:
    """The Art. 12(2) notification for a report given its verdict (None: none yet).

    manifestly_unfounded: due at once (``now``); otherwise (confirmed, or no verdict yet) due
    ``notify_after_days`` after the report's ``created_at`` (trigger ``three_months``). When the
    Centre asked for a delay the status is ``delayed`` and ``due_at`` is ``delay_until`` (never
    earlier than the due time without the delay) or null (until the Centre says otherwise).
    ``decided_at`` (the verdict's, null without one) orders records for the same report:
    see :func:`supersedes`."""
    if verdict is not None and verdict["verdict"] == "manifestly_unfounded":
        trigger_name, due = "manifestly_unfounded", utc_iso(parse_time(now))
    else:
        trigger_name = "three_months"
        due = utc_iso(parse_time(report["created_at"]) + timedelta(days=notify_after_days))
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
    """The user-facing part of a notification record (without ``decided_at``)."""
    return {k: v for k, v in record.items() if k != "decided_at"}


def notification_for(joined: dict, now: str, notify_after_days: int) -> Optional[dict]:
    """The notification record of a joined record, or None when it schedules the same as the
    record already sent for this report (streaming: a confirming verdict after the report's own)."""
    record = schedule_notification(joined["report"], joined["verdict"], now, notify_after_days)
    if joined.get("emitted_before"):
        before = schedule_notification(joined["report"], joined.get("previous_verdict"), now, notify_after_days)
        if _schedule(before) == _schedule(record):
            return None
    return record
