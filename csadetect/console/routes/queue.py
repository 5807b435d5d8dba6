"""The queue (``/``): open reports, urgent first (Art. 48(4)) then the oldest, filtered by
detection type, detector, provider and status, with the counts per status and the ingest's."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from csadetect.console.deps import ConsoleDep, SessionDep
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
    items = [{
        "report_id": r["report_id"], "urgent": bool(r["urgent"]), "created_at": r["created_at"],
        "age": ago(r["created_at"], now), "detection_type": r["detection_type"], "detector": r["detector"],
        "provider_id": r["provider_id"], "service": r["report"].get("service"),
        "content_kind": r["report"].get("content_kind"), "status": r["status"],
        "signature_status": r["signature_status"], "summary": detection_summary(r["report"]),
    } for r in rows]
    base = {k: v for k, v in (("detection_type", detection_type), ("detector", detector),
                              ("provider", provider)) if v}
    config = console.config
    return render(request, "queue.html", ctx=ctx, items=items, total=total,
                  counts=console.store.counts(filters), facets=console.store.facets(), filters=filters,
                  base=base, status=status, flash=DONE_MESSAGES.get(done),
                  source=config.subscription or config.reports_dir, ingest=dict(console.ingest.counts))
