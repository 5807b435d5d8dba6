"""What the console's pages show and how: the labels of statuses and Art. 13 fields (verdicts and
reasons come from :mod:`csadetect.console.reasons`), the formatting filters, the Jinja2 templates
(autoescaped, strict) and :func:`render`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from csadetect.console.deps import Ctx
from csadetect.console.reasons import REASONS, VERDICT_LABELS
from csadetect.core.timeutil import parse_time
from csadetect.reports.schema import FIELD_DOCS, REPORT_SCHEMA
from csadetect.signals import SIGNAL_TYPES

MISSING_FIELDS: dict[str, str] = {
    "evidence": "Evidence (missing or cannot be opened)",
    "account": "User account concerned",
    "occurred_at": "When the content was shared",
    "ip_port": "IP address and port",
    "time_zone": "Time zone",
    "country": "Location (country)",
    "device": "Device information",
    "legal_basis": "Detection order relied on",
    "content_removed": "Whether the content was removed",
    "account_action": "Action taken on the account",
    "conversation_context": "More of the conversation",
    "other": "Other (explain in the note)",
}
STATUS_LABELS = {"open": "Open", "new": "New", "in_review": "In review", "info_requested": "Information requested",
                 "confirmed": "Confirmed", "manifestly_unfounded": "Manifestly unfounded", "archived": "Archived",
                 "all": "All"}
DONE_MESSAGES = {
    "verdict": "Verdict recorded and sent to the provider.",
    "changed": "Verdict changed; the new verdict was sent to the provider.",
    "info_request": "Request for missing information sent to the provider.",
    "break": "Welcome back.",
    "released": "Claim released: the report is back in the queue for anyone.",
    "archived": "Report archived: it left the queue and is kept (status Archived).",
}


def _when(value: Any) -> str:
    if not value:
        return "—"
    try:
        return parse_time(str(value), assume_utc=True).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, TypeError):
        return str(value)


def ago(value: Any, now: float) -> str:
    try:
        seconds = now - parse_time(str(value), assume_utc=True).timestamp()
    except (ValueError, TypeError):
        return ""
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
    return str(value)


# what a match's distance counts, per kind, from the signal types
_DISTANCE_UNITS = {name: SIGNAL_TYPES[name].unit for name in SIGNAL_TYPES}


def _field_value(name: str, value: Any) -> str:
    """One Art. 13 field, readable."""
    if name == "evidence_encrypted":
        if not value:
            return "none"
        parts = str(value).split(":")
        size = len(parts[-1]) * 3 // 4
        return (f"sealed for the EU Centre ({parts[0]}, centre key {parts[1] if len(parts) > 2 else '?'}, "
                f"about {size:,} bytes)")
    if name == "signature":
        if not value:
            return "not signed"
        parts = str(value).split(":")
        return f"{parts[0]} by provider key {parts[1]}" if len(parts) == 3 else "malformed"
    if name == "matches":
        if not value:
            return "—"
        return "; ".join(f"{m.get('indicator_id')} ({m.get('kind')}, distance {_num(m.get('distance'))}, "
                         f"{m.get('category')})" for m in value)
    if value is None:
        return "— (not given)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "— (none)"
    if name.endswith("_at") and isinstance(value, str):
        return _when(value)
    if isinstance(value, float):
        return _num(value, 4)
    return str(value)


FIELD_LABELS = {
    "report_id": "Report id", "schema_version": "Schema version", "provider_id": "Provider (Art. 13(1)(a))",
    "created_at": "Report made", "signature": "Provider signature (Art. 13(1)(b))", "detection_type": "Detection type",
    "detector": "Detector", "detector_version": "Detector version", "score": "Score", "threshold": "Threshold",
    "distance": "Best distance", "indicator_ids": "Indicators matched", "categories": "Indicator categories",
    "matches": "Matches", "review_status": "Provider review", "reviewed_at": "Reviewed by the provider",
    "content_kind": "Content kind", "mime": "MIME type", "content_md5": "MD5", "content_sha256": "SHA-256",
    "content_pdq": "PDQ", "evidence_encrypted": "Evidence", "event_id": "Event id",
    "service": "Service (Annex III)", "occurred_at": "Content shared", "account": "User account (Art. 13(1)(e))",
    "ip": "IP address", "port": "Source port", "time_zone": "Time zone", "country": "Country", "device": "Device",
    "content_removed": "Content removed", "urgent": "Urgent (Art. 13(1)(j))", "legal_basis": "Legal basis (Art. 7)",
    "order_id": "Detection order", "conversation_id": "Conversation", "risk_patterns": "Risk patterns",
    "reported_to_third_country": "Third-country authority informed", "account_action": "Action on the account",
}


def art13_fields(report: dict) -> list[dict]:
    return [{"name": name, "label": FIELD_LABELS.get(name, name), "doc": FIELD_DOCS.get(name, ""),
             "value": _field_value(name, report.get(name)), "missing": report.get(name) is None}
            for name in REPORT_SCHEMA.names]


def changed_fields(before: dict, after: dict) -> list[str]:
    """The Art. 13 fields (labels) in which two versions of a report differ."""
    names = list(REPORT_SCHEMA.names) + sorted((set(before) | set(after)) - set(REPORT_SCHEMA.names))
    return [FIELD_LABELS.get(n, n) for n in names if before.get(n) != after.get(n)]


def detection_summary(report: dict) -> str:
    kind = report.get("detection_type")
    if kind == "known":
        matches = report.get("matches") or []
        best = matches[0] if matches else {}
        return (f"distance {_num(report.get('distance'))} ({best.get('kind', '?')}), "
                f"{len(matches)} indicator{'s' if len(matches) != 1 else ''}")
    if kind in ("new", "grooming"):
        text = f"score {_num(report.get('score'))} (threshold {_num(report.get('threshold'))})"
        if kind == "grooming" and report.get("risk_patterns"):
            text += " · " + ", ".join(report["risk_patterns"])
        return text
    return ""


TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent / "templates")),
                               autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
TEMPLATES.filters.update(when=_when, num=_num)
TEMPLATES.globals.update(STATUS_LABELS=STATUS_LABELS, VERDICT_LABELS=VERDICT_LABELS, REASONS=REASONS,
                         MISSING_FIELDS=MISSING_FIELDS, DISTANCE_UNITS=_DISTANCE_UNITS)


def render(request: Request, name: str, code: int = 200, ctx: Optional[Ctx] = None, **values) -> HTMLResponse:
    """The page ``name`` for the user ``ctx`` (None before a login: then ``login_csrf`` is the
    login form's token)."""
    config = request.app.state.console.config
    values.setdefault("flash", None)
    values.setdefault("error", None)
    page = TEMPLATES.get_template(name).render(
        user=ctx, csrf=ctx.csrf if ctx else values.pop("login_csrf", ""), config=config,
        break_due=bool(ctx and ctx.exposures - ctx.break_base >= config.break_after_reveals),
        request_path=request.url.path, **values)
    return HTMLResponse(page, status_code=code)
