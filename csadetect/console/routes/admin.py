"""For supervisors: the audit log page (the latest 500 entries, or one report's); and the empty
favicon (204, rather than an error page)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from csadetect.console.deps import ConsoleDep, SupervisorDep
from csadetect.console.storage import REPORT_ID
from csadetect.console.views import render

router = APIRouter()


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, ctx: SupervisorDep, console: ConsoleDep, report_id: str = ""):
    rid = report_id if REPORT_ID.match(report_id or "") else None
    return render(request, "audit.html", ctx=ctx, entries=console.store.audit_entries(500, rid), report_id=rid,
                  audit_log=console.config.audit_log)


@router.get("/favicon.ico")
def favicon():
    return Response(status_code=204)
