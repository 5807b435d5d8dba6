"""EU Centre verdicts and the reports they judge, as the feedback reads them (docs/data.md).

* :func:`parse_verdict` validates a Centre verdict; :func:`minimal_report` keeps the few report
  fields the feedback needs (data minimisation: the evidence, hashes and incident data are dropped
  at once). Both raise :class:`BadInput` with a short reason that never quotes the content.
* :func:`verdict_order` and :func:`later_verdict`: of several verdicts for one report the latest
  ``decided_at`` wins, whatever order they arrive in.
* :func:`joined_record`: a report with its verdict, as the join emits it.
"""
from __future__ import annotations

import json
from typing import Any, Optional

from csadetect.core.timeutil import parse_time, utc_iso
from csadetect.reports.crypto import loads_strict

VERDICTS = ("confirmed", "manifestly_unfounded")
# What the feedback keeps of a report: the detector (precision, examples) and who to notify.
REPORT_FIELDS = (
    "report_id", "provider_id", "service", "account", "created_at",
    "detection_type", "detector", "detector_version", "score", "distance", "threshold",
)


class BadInput(ValueError):
    """A report or verdict that cannot be used; the message is a short reason without content."""


def decode(element) -> Any:
    """The JSON of a message body, a JSON line or a Pub/Sub message (``.data``, ``.attributes``),
    parsed strictly (:func:`csadetect.reports.crypto.loads_strict`: a repeated key raises
    ValueError), as signed reports must be."""
    data = element.data if hasattr(element, "data") and hasattr(element, "attributes") else element
    return loads_strict(data)


def _time(value, field: str) -> str:
    """``value`` as an RFC 3339 UTC string; BadInput when it is not a time with a zone."""
    try:
        return utc_iso(parse_time(value, field=field))
    except ValueError:
        raise BadInput(f"{field} is not an RFC 3339 time") from None


def parse_verdict(element) -> dict:
    """A Centre verdict (bytes, str or PubsubMessage) -> a normalised dict; raises BadInput."""
    try:
        obj = decode(element)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("not JSON") from None
    if not isinstance(obj, dict):
        raise BadInput("not a JSON object")
    rid = obj.get("report_id")
    if not isinstance(rid, str) or not rid.strip():
        raise BadInput("no report_id")
    if obj.get("verdict") not in VERDICTS:
        raise BadInput("verdict is not confirmed or manifestly_unfounded")
    decided_at = _time(obj.get("decided_at"), "decided_at")
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
        delay_until = _time(delay_until, "delay_until")
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


def later_verdict(verdict: dict, best: Optional[dict]) -> bool:
    """Whether ``verdict`` wins over ``best``, the winner so far (None: there is none yet)."""
    return best is None or verdict_order(verdict) > verdict_order(best)


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
    created = _time(obj.get("created_at"), "created_at")
    out = {key: obj.get(key) for key in REPORT_FIELDS}
    out["created_at"] = created
    for key in ("score", "distance", "threshold"):
        value = out[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise BadInput(f"{key} is not a number")
        out[key] = None if value is None else float(value)
    return out


def joined_record(report: dict, verdict: Optional[dict], previous_verdict: Optional[dict] = None,
                  emitted_before: bool = False) -> dict:
    """What the join emits. ``verdict`` None: a report without a verdict (yet), for the
    notification schedule. ``previous_verdict``: the verdict this one supersedes (streaming);
    ``emitted_before``: a record for this report went out before (its notification too)."""
    return {"report": report, "verdict": verdict, "previous_verdict": previous_verdict,
            "emitted_before": emitted_before}
