"""Holds on reports (``retention.holds_file``): an append-only JSON Lines log of ``{"report_id",
"reason", "set_at"}`` and ``{"report_id", "released_at"}``, the latest line per id wins; a held id
is never deleted by a retention run (:mod:`.retention`). No pyarrow is needed here, so
``csadetect retention hold|release|holds`` stay light.
"""
from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Optional

from csadetect.compliance.retention_files import RetentionError, _append_lines, _local
from csadetect.core.ids import check_id
from csadetect.core.timeutil import utc_iso

REASON_MAX = 200


def check_report_id(report_id: str) -> str:
    try:
        return check_id(report_id, "report id")
    except ValueError as exc:
        raise RetentionError(str(exc)) from None


def _holds_path(settings) -> str:
    return _local(settings.retention.holds_file, "retention.holds_file")


def active_holds(settings) -> dict:
    """``{report_id: {"report_id", "reason", "set_at"}}`` for every id whose latest line is a hold."""
    path = _holds_path(settings)
    latest: dict = {}
    if not os.path.exists(path):
        return latest
    with open(path, "rb") as fh:  # bytes: a line that is not UTF-8 is refused with its number below
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:  # UnicodeDecodeError included
                raise RetentionError(f"{path}:{lineno}: not valid JSON") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("report_id"), str):
                raise RetentionError(f"{path}:{lineno}: not a hold record")
            latest[rec["report_id"]] = rec
    return {rid: rec for rid, rec in latest.items() if "released_at" not in rec}


def set_hold(settings, report_id: str, reason: str, now: Optional[datetime] = None) -> dict:
    """Put ``report_id`` on hold (again, with a new reason, if it already is); returns the line."""
    check_report_id(report_id)
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise RetentionError("a hold needs a reason")
    if len(reason) > REASON_MAX:
        raise RetentionError(f"the reason is longer than {REASON_MAX} characters (keep it a short reference)")
    rec = {"report_id": report_id, "reason": reason, "set_at": utc_iso(now)}
    _append_lines(_holds_path(settings), [rec])
    return rec


def release_hold(settings, report_id: str, now: Optional[datetime] = None) -> dict:
    """Release the hold on ``report_id``; RetentionError when it is not on hold."""
    check_report_id(report_id)
    if report_id not in active_holds(settings):
        raise RetentionError(f"report {report_id} is not on hold")
    rec = {"report_id": report_id, "released_at": utc_iso(now)}
    _append_lines(_holds_path(settings), [rec])
    return rec
