"""The queue (``/``): open reports, urgent first (Art. 48(4)) then the oldest, filtered by
detection type, detector, provider and status, with the counts per status and the ingest's; each
row shows who holds its claim (the assignee), its version when the provider changed it, and when
its evidence is sealed for another centre key."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from csadetect.console import evidence as ev
from csadetect.console.deps import ConsoleDep, SessionDep
from csadetect.console.storage import OPEN_STATUSES, claim_holder
from csadetect.console.views import DONE_MESSAGES, STATUS_LABELS, ago, detection_summary, render

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def queue(request: Request, ctx: SessionDep, console: ConsoleDep, detection_type: str = "", detector: str = "",
          provider: str = "", status: str = "open", done: str = ""):
    if status not in STATUS_LABELS:
        status = "open"
    filters = {"detection_type": detection_type, "detector": detector, "provider_id": provider, "status": status}
    rows, total = console.store.queue(filters)
    now = console.clock()
    stale_before = console.stale_before()
    items = [{
        "report_id": r["report_id"], "urgent": bool(r["urgent"]), "created_at": r["created_at"],
        "age": ago(r["created_at"], now), "detection_type": r["detection_type"], "detector": r["detector"],
        "provider_id": r["provider_id"], "service": r["report"].get("service"),
        "content_kind": r["report"].get("content_kind"), "status": r["status"],
        "signature_status": r["signature_status"], "summary": detection_summary(r["report"]),
        "version": r["version"], "other_key": ev.sealed_for_another_key(r["report"], console.centre_key_id),
        "assignee": claim_holder(r, stale_before) if r["status"] in OPEN_STATUSES else None,
    } for r in rows]
    base = {k: v for k, v in (("detection_type", detection_type), ("detector", detector),
                              ("provider", provider)) if v}
    config = console.config
    return render(request, "queue.html", ctx=ctx, items=items, total=total,
                  counts=console.store.counts(filters), facets=console.store.facets(), filters=filters,
                  base=base, status=status, flash=DONE_MESSAGES.get(done),
                  source=config.subscription or config.reports_dir, ingest=dict(console.ingest.counts))
