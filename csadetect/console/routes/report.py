"""A report: its page (every Art. 13 field, the detection, the evidence as a placeholder or a
blurred view, the verdict history, requests and deliveries), its verdict (a supervisor may change
it; the message goes to the feedback outbox) and requests for missing information (to the provider
outbox). Opening a report puts it in review; every step is audited by the store."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Optional

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.exceptions import HTTPException

from csadetect.console import evidence as ev
from csadetect.console.deps import ConsoleDep, CsrfDep, Refused, SessionDep, load_report
from csadetect.console.state import Console
from csadetect.console.storage import StoreError, iso_at
from csadetect.console.views import (
    DONE_MESSAGES, MISSING_FIELDS, REASONS, VERDICT_LABELS, art13_fields, detection_summary, render,
)
from csadetect.core.timeutil import parse_time

router = APIRouter()
NOTE_MAX = 2000


def next_open(console: Console, report_id: str) -> Optional[str]:
    """The open report after ``report_id`` in queue order (wrapping round), if any."""
    ids = console.store.queue_ids("open")
    if report_id in ids:
        i = ids.index(report_id)
        rest = ids[i + 1:] + ids[:i]
    else:
        rest = ids
    return rest[0] if rest else None


def _parse_delay_until(value: str, now: float) -> Optional[str]:
    value = (value or "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, "delay until: not a date (YYYY-MM-DD)") from None
    when = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    if when.timestamp() <= now:
        raise HTTPException(400, "delay until: the date must be in the future")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _evidence_view(report: dict, centre_key) -> dict:
    """What the page shows of the evidence before a reveal (kind, size, a conversation's structure)."""
    evidence = {"kind": None, "error": None, "size": None, "mime": None, "conversation": None}
    try:
        opened = ev.open_report_evidence(report, centre_key)
        evidence.update(kind=opened.kind, size=opened.size, mime=opened.mime)
        if opened.kind == "conversation":
            evidence["conversation"] = ev.conversation_view(opened.conversation)
        elif opened.kind in ("text", "other"):
            evidence["kind"] = "conversation"
            evidence["conversation"] = ev.plain_text_view(opened.content)[0]
        del opened
    except ev.EvidenceUnavailable as exc:
        evidence["error"] = str(exc)
    return evidence


@router.get("/reports/{report_id}", response_class=HTMLResponse)
def report_page(request: Request, report_id: str, ctx: SessionDep, console: ConsoleDep, done: str = ""):
    report = load_report(console, report_id)["report"]
    console.audit(ctx.username, "view_report", report_id)
    console.store.mark_in_review(report_id)
    row = console.store.get_report(report_id)
    verdicts = console.store.verdicts(report_id)
    latest = verdicts[-1] if verdicts else None
    return render(
        request, "report.html", ctx=ctx, row=row, report=report, fields=art13_fields(report),
        evidence=_evidence_view(report, console.centre_key), verdicts=verdicts, latest=latest,
        info_requests=console.store.info_requests(report_id), outbox=console.store.outbox_for(report_id),
        can_decide=latest is None or ctx.supervisor, can_confirm=row["signature_status"] != "invalid",
        next_id=next_open(console, report_id), summary=detection_summary(report), flash=DONE_MESSAGES.get(done),
        audit=console.store.audit_entries(50, report_id) if ctx.supervisor else [],
    )


@router.post("/reports/{report_id}/verdict")
def decide(report_id: str, ctx: CsrfDep, console: ConsoleDep, verdict: str = Form(""), reason: str = Form(""),
           note: str = Form(""), delay_notification: str = Form(""), delay_until: str = Form(""),
           based_on: str = Form("")):
    row = load_report(console, report_id)
    if verdict not in REASONS:
        raise HTTPException(400, "choose a verdict: confirmed or manifestly unfounded")
    if reason not in REASONS[verdict]:
        raise HTTPException(400, f"choose a reason from the list for '{VERDICT_LABELS[verdict]}'")
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise HTTPException(400, f"the note is longer than {NOTE_MAX} characters")
    if reason == "other" and not note:
        raise HTTPException(400, "reason 'other' needs a note")
    latest = console.store.latest_verdict(report_id)
    if latest is not None and not ctx.supervisor:
        raise Refused(403, "this report has a verdict already: only a supervisor can change it", "role")
    if verdict == "confirmed" and row["signature_status"] == "invalid":
        raise HTTPException(409, "cannot confirm: the provider's signature does not verify")
    now = console.clock()
    decided = datetime.fromtimestamp(int(now), timezone.utc)
    if latest is not None:  # a revision must be later than what it revises (the feedback pipeline keeps the latest)
        decided = max(decided, parse_time(latest["decided_at"], field="decided_at") + timedelta(seconds=1))
    delay = delay_notification in ("1", "on", "true", "yes")
    until = _parse_delay_until(delay_until, now) if delay else None
    message = {"report_id": report_id, "verdict": verdict, "reason": reason,
               "decided_at": decided.strftime("%Y-%m-%dT%H:%M:%SZ"), "delay_notification": delay}
    if until:
        message["delay_until"] = until
    try:
        supersedes = int(based_on) if based_on.strip() else None
    except ValueError:
        raise HTTPException(400, "bad form") from None
    try:
        console.store.add_verdict(dict(message), note or None, ctx.username, supersedes, message, now,
                                  "verdict_changed" if latest is not None else "verdict")
    except StoreError as exc:
        raise HTTPException(409, str(exc)) from None
    console.outbox.deliver()
    if latest is not None:
        return RedirectResponse(f"/reports/{report_id}?done=changed", status_code=303)
    following = next_open(console, report_id)
    return RedirectResponse(f"/reports/{following}?done=verdict" if following else "/?done=verdict",
                            status_code=303)


@router.post("/reports/{report_id}/info-request")
def info_request(report_id: str, ctx: CsrfDep, console: ConsoleDep, missing: list[str] = Form(default=[]),
                 note: str = Form("")):
    row = load_report(console, report_id)
    note = note.strip()
    if not missing or any(m not in MISSING_FIELDS for m in missing):
        raise HTTPException(400, "tick what is missing (from the list)")
    if len(note) > NOTE_MAX:
        raise HTTPException(400, f"the note is longer than {NOTE_MAX} characters")
    if "other" in missing and not note:
        raise HTTPException(400, "'other' needs a note")
    now = console.clock()
    message = {"request_id": uuid.uuid4().hex, "report_id": report_id, "provider_id": row["provider_id"],
               "missing": sorted(set(missing), key=list(MISSING_FIELDS).index), "note": note or None,
               "requested_at": iso_at(now)}
    try:
        console.store.add_info_request(message, ctx.username, now)
    except StoreError as exc:
        raise HTTPException(409, str(exc)) from None
    console.outbox.deliver()
    following = next_open(console, report_id)
    return RedirectResponse(f"/reports/{following}?done=info_request" if following and following != report_id
                            else "/?done=info_request", status_code=303)
