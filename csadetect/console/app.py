"""The review console as a FastAPI application: ``create_app(config) -> FastAPI``.

Server-rendered Jinja2 templates (autoescaped) and one small vanilla script; no CDN, no external
fonts, nothing loaded from outside. Every page needs a login; every POST needs the session's CSRF
token; every response carries a strict Content-Security-Policy (self only), ``X-Frame-Options:
DENY``, ``Referrer-Policy: no-referrer`` and, except static files, ``Cache-Control: no-store``.
The routes are one ``APIRouter`` per area (:mod:`csadetect.console.routes`); what they share is the
:class:`~csadetect.console.state.Console` on ``app.state.console``, reached through the
dependencies in :mod:`csadetect.console.deps`. Every refusal (401 and the redirect to the login
page, 403, 429, a spent evidence link) is audited here as ``refused`` with its status, method,
route template and reason, never the URL or anything sent. See ``docs/console.md`` for what a
reviewer sees and why.
"""
from __future__ import annotations

import re
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Callable, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from csadetect.console.deps import NeedLogin, Refused, clear_session_cookie
from csadetect.console.routes import admin, auth, evidence, queue, report
from csadetect.console.state import Console, ConsoleConfig, ConsoleError
from csadetect.console.storage import REPORT_ID, ConsoleStorage
from csadetect.console.views import render

__all__ = ["ConsoleConfig", "ConsoleError", "create_app"]

HERE = Path(__file__).resolve().parent
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src 'self'; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


async def security_headers(request: Request, call_next):
    response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    if not request.url.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response


AUDITED_STATUSES = (401, 403, 429)
_METHOD = re.compile(r"^[A-Z]{3,7}$")
_ROUTE = re.compile(r"^/[A-Za-z0-9/{}_.-]{0,120}$")


def audit_refusal(request: Request, status: int, reason: str) -> None:
    """One ``refused`` audit entry: who (when logged in), the report (a stored report's id in the route), and
    ``"<status> <METHOD> <route template> <reason>"``; never the URL, a token or a form field."""
    route = getattr(request.scope.get("route"), "path", None)
    path = route if isinstance(route, str) and _ROUTE.match(route) else "/unmatched"
    method = request.method if _METHOD.match(request.method) else "OTHER"
    console = request.app.state.console
    report_id = request.scope.get("path_params", {}).get("report_id")
    if not (isinstance(report_id, str) and REPORT_ID.match(report_id) and console.store.has_report(report_id)):
        report_id = None  # only a report the console holds, never an id someone made up
    ctx = getattr(request.state, "ctx", None)
    console.audit(ctx.username if ctx else None, "refused", report_id, f"{status} {method} {path} {reason}")


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def need_login(request: Request, exc: NeedLogin):
    await run_in_threadpool(audit_refusal, request, 401, "session_expired" if exc.expired else "no_session")
    if request.method == "GET" and not _wants_json(request):
        response = RedirectResponse("/login?expired=1" if exc.expired else "/login", status_code=303)
    else:
        response = JSONResponse({"error": "session expired, log in again" if exc.expired else "log in first"},
                                status_code=401)
    clear_session_cookie(response, request.app.state.console)
    return response


async def http_error(request: Request, exc: HTTPException):
    if isinstance(exc, Refused) or exc.status_code in AUDITED_STATUSES:
        await run_in_threadpool(audit_refusal, request, exc.status_code, getattr(exc, "reason", "refused"))
    message = exc.detail if isinstance(exc.detail, str) else "error"
    if _wants_json(request) or request.method != "GET" and request.headers.get("x-csrf-token") is not None:
        return JSONResponse({"error": message}, status_code=exc.status_code)
    ctx = getattr(request.state, "ctx", None)
    return render(request, "error.html", exc.status_code, ctx, status=exc.status_code, message=message)


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.console.start()
    try:
        yield
    finally:
        app.state.console.stop()


def create_app(config: ConsoleConfig, *, clock: Optional[Callable[[], float]] = None,
               store: Optional[ConsoleStorage] = None) -> FastAPI:
    """The console for ``config`` (validated, keys loaded and the database opened here, before
    anything is served). ``clock`` (seconds since the epoch) and ``store`` (by default the SQLite
    file ``config.db``) are injectable for tests. Reports are read and background work started
    when the application starts (its lifespan)."""
    if not isinstance(config, ConsoleConfig):
        raise ConsoleError("create_app needs a ConsoleConfig")
    app = FastAPI(title="csadetect review console", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.console = Console(config, clock or time.time, store)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.middleware("http")(security_headers)
    app.add_exception_handler(NeedLogin, need_login)
    app.add_exception_handler(HTTPException, http_error)
    for area in (auth, queue, report, evidence, admin):
        app.include_router(area.router)
    return app
