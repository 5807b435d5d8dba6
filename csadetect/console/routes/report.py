"""A report: its page (every Art. 13 field, the detection, the evidence as a placeholder or a
blurred view, the versions the provider sent, the verdict history, requests and deliveries), its
verdict (with a reason of its detection type, :mod:`csadetect.console.reasons`; a supervisor may
change it; the message goes to the feedback outbox), requests for missing information (to the
provider outbox), releasing a claim and archiving.

Opening an open report claims it for the reviewer (it is ``in_review``, with its assignee) unless
someone else holds it: then the page says who, and the decisions are refused until they release
it or the claim expires (``Console.claim_seconds``). A report whose evidence is sealed for another
centre key says so with both fingerprints and can be archived (a supervisor can archive any open
report without a verdict). Every step is audited by the store."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Optional

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.exceptions import HTTPException

from csadetect.console import evidence as ev
from csadetect.console.deps import ConsoleDep, CsrfDep, Refused, SessionDep, load_report
from csadetect.console.reasons import NEEDS_NOTE, check_reason, reasons_for
from csadetect.console.state import Console
from csadetect.console.storage import OPEN_STATUSES, StoreError, claim_holder, iso_at
from csadetect.console.views import (
    DONE_MESSAGES, MISSING_FIELDS, art13_fields, changed_fields, detection_summary, render,
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


def _evidence_view(report: dict, centre_key, centre_key_id=None) -> dict:
    """What the page shows of the evidence before a reveal (kind, size, a conversation's
    structure), or why it cannot be opened (``other_key``: sealed for another centre key)."""
    evidence = {"kind": None, "error": None, "size": None, "mime": None, "conversation": None,
                "other_key": ev.sealed_for_another_key(report, centre_key_id)}
    if evidence["other_key"]:
        evidence["error"] = (f"sealed for another key: the evidence is sealed for centre key "
                             f"{evidence['other_key']['sealed_for']}, this console has centre key "
                             f"{evidence['other_key']['console_key']}")
        return evidence
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


def may_archive(console: Console, ctx, row: dict, has_verdict: bool) -> bool:
    """An open report without a verdict, whose evidence is sealed for another key (anyone) or any (a supervisor)."""
    if row["status"] not in OPEN_STATUSES or has_verdict:
        return False
    return ctx.supervisor or ev.sealed_for_another_key(row["report"], console.centre_key_id) is not None


def _versions_view(console: Console, row: dict) -> list[dict]:
    """The versions of a report changed by the provider, newest first, each with what changed."""
    if row.get("version", 1) <= 1:
        return []
    versions = console.store.report_versions(row["report_id"])
    out = []
    for before, after in zip([None] + versions[:-1], versions):
        out.append({"version": after["version"], "ingested_at": after["ingested_at"],
                    "content_hash": after["content_hash"], "signature_status": after["signature_status"],
                    "changed": changed_fields(before["report"], after["report"]) if before else []})
    return list(reversed(out))


@router.get("/reports/{report_id}", response_class=HTMLResponse)
def report_page(request: Request, report_id: str, ctx: SessionDep, console: ConsoleDep, done: str = ""):
    load_report(console, report_id)
    console.audit(ctx.username, "view_report", report_id)
    stale_before = console.stale_before()
    console.store.claim(report_id, ctx.username, console.clock(), stale_before)
    row = console.store.get_report(report_id)
    report = row["report"]
    verdicts = console.store.verdicts(report_id)
    latest = verdicts[-1] if verdicts else None
    holder = claim_holder(row, stale_before) if row["status"] in OPEN_STATUSES else None
    held_by_other = holder is not None and holder != ctx.username
    return render(
        request, "report.html", ctx=ctx, row=row, report=report, fields=art13_fields(report),
        evidence=_evidence_view(report, console.centre_key, console.centre_key_id), verdicts=verdicts, latest=latest,
        info_requests=console.store.info_requests(report_id), outbox=console.store.outbox_for(report_id),
        can_decide=(latest is None or ctx.supervisor) and not held_by_other and row["status"] != "archived",
        can_confirm=row["signature_status"] != "invalid", holder=holder, held_by_other=held_by_other,
        claim_expires=iso_at((row["claimed_at"] or 0) + console.claim_seconds) if holder else None,
        can_release=holder is not None and (holder == ctx.username or ctx.supervisor),
        can_archive=may_archive(console, ctx, row, latest is not None) and not held_by_other,
        offered=reasons_for(report.get("detection_type")), versions=_versions_view(console, row),
        next_id=next_open(console, report_id), summary=detection_summary(report), flash=DONE_MESSAGES.get(done),
        audit=console.store.audit_entries(50, report_id) if ctx.supervisor else [],
    )


def _refuse_if_held(console: Console, ctx, row: dict) -> None:
    holder = claim_holder(row, console.stale_before()) if row["status"] in OPEN_STATUSES else None
    if holder is not None and holder != ctx.username:
        raise HTTPException(409, f"{holder} is reviewing this report (claimed); wait until they release it or the "
                                 "claim expires")


@router.post("/reports/{report_id}/verdict")
def decide(report_id: str, ctx: CsrfDep, console: ConsoleDep, verdict: str = Form(""), reason: str = Form(""),
           note: str = Form(""), delay_notification: str = Form(""), delay_until: str = Form(""),
           based_on: str = Form(""), version: str = Form("")):
    row = load_report(console, report_id)
    problem = check_reason(row["detection_type"], verdict, reason)
    if problem:
        raise HTTPException(400, problem)
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise HTTPException(400, f"the note is longer than {NOTE_MAX} characters")
    if reason in NEEDS_NOTE and not note:
        raise HTTPException(400, f"reason '{reason}' needs a note")
    latest = console.store.latest_verdict(report_id)
    if latest is not None and not ctx.supervisor:
        raise Refused(403, "this report has a verdict already: only a supervisor can change it", "role")
    if row["status"] == "archived":
        raise HTTPException(409, "this report is archived")
    _refuse_if_held(console, ctx, row)
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
        seen_version = int(version) if version.strip() else None
    except ValueError:
        raise HTTPException(400, "bad form") from None
    try:
        console.store.add_verdict(dict(message), note or None, ctx.username, supersedes, message, now,
                                  "verdict_changed" if latest is not None else "verdict",
                                  stale_before=console.stale_before(), version=seen_version)
    except StoreError as exc:
        raise HTTPException(409, str(exc)) from None
    console.outbox.deliver()
    if latest is not None:
        return RedirectResponse(f"/reports/{report_id}?done=changed", status_code=303)
    following = next_open(console, report_id)
    return RedirectResponse(f"/reports/{following}?done=verdict" if following else "/?done=verdict",
                            status_code=303)


@router.post("/reports/{report_id}/release")
def release(report_id: str, ctx: CsrfDep, console: ConsoleDep):
    """End the caller's claim (a supervisor: anyone's); the report goes back to the queue."""
    load_report(console, report_id)
    if not console.store.release(report_id, ctx.username, console.clock(), force=ctx.supervisor):
        raise HTTPException(409, "you hold no claim on this report")
    return RedirectResponse("/?done=released", status_code=303)


@router.post("/reports/{report_id}/archive")
def archive(report_id: str, ctx: CsrfDep, console: ConsoleDep):
    """Take the report out of the queue without deleting it (audited ``archive``)."""
    row = load_report(console, report_id)
    if not may_archive(console, ctx, row, console.store.latest_verdict(report_id) is not None):
        if row["status"] in OPEN_STATUSES and console.store.latest_verdict(report_id) is None:
            raise Refused(403, "only a report whose evidence is sealed for another key can be archived "
                               "(a supervisor can archive any open report)", "role")
        raise HTTPException(409, "only an open report without a verdict can be archived")
    _refuse_if_held(console, ctx, row)
    try:
        console.store.archive(report_id, ctx.username, console.clock(), console.stale_before())
    except StoreError as exc:
        raise HTTPException(409, str(exc)) from None
    return RedirectResponse("/?done=archived", status_code=303)


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
    if row["status"] == "archived":
        raise HTTPException(409, "this report is archived")
    _refuse_if_held(console, ctx, row)
    now = console.clock()
    message = {"request_id": uuid.uuid4().hex, "report_id": report_id, "provider_id": row["provider_id"],
               "missing": sorted(set(missing), key=list(MISSING_FIELDS).index), "note": note or None,
               "requested_at": iso_at(now)}
    try:
        console.store.add_info_request(message, ctx.username, now, stale_before=console.stale_before())
    except StoreError as exc:
        raise HTTPException(409, str(exc)) from None
    console.outbox.deliver()
    following = next_open(console, report_id)
    return RedirectResponse(f"/reports/{following}?done=info_request" if following and following != report_id
                            else "/?done=info_request", status_code=303)
