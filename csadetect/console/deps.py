"""The FastAPI dependencies the console's routes share: the :class:`~csadetect.console.state.Console`
on ``app.state``, the logged-in user of a request (:class:`Ctx`, from the session cookie, with the
idle and absolute timeouts), the CSRF check every state-changing request passes, the supervisor
check, and a report (404) or its opened evidence (409) by id; and :class:`Refused`, the error of a
refusal the audit log names (``app.py`` audits every refusal).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from starlette.exceptions import HTTPException

from csadetect.console import auth, evidence as ev
from csadetect.console.state import Console
from csadetect.console.storage import REPORT_ID

SESSION_COOKIE = "csadetect_session"
LOGIN_COOKIE = "csadetect_login_csrf"


class Refused(HTTPException):
    """A request refused for a reason the audit log names: ``csrf``, ``login_csrf``, ``role``,
    ``link_expired`` (one lower-case word; the message stays what the user reads)."""

    def __init__(self, status_code: int, message: str, reason: str):
        super().__init__(status_code, message)
        self.reason = reason


class NeedLogin(Exception):
    """No session, or it ended (``expired``): a redirect to the login page, or 401 for scripts."""

    def __init__(self, expired: bool = False):
        self.expired = expired


@dataclass
class Ctx:
    """The logged-in user of a request."""

    username: str
    role: str
    token_hash: str
    csrf: str
    exposures: int
    break_base: int

    @property
    def supervisor(self) -> bool:
        return self.role == "supervisor"


def get_console(request: Request) -> Console:
    return request.app.state.console


ConsoleDep = Annotated[Console, Depends(get_console)]


def clear_session_cookie(response: Response, console: Console) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=console.config.secure_cookie)


def session(request: Request, console: ConsoleDep) -> Ctx:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise NeedLogin(False)
    h = auth.token_hash(token)
    s = console.store.get_session(h)
    if s is None:
        raise NeedLogin(True)
    now = console.clock()
    if not console.session_alive(s, now):
        console.store.delete_session(h)
        raise NeedLogin(True)
    console.store.touch_session(h, now)
    ctx = Ctx(s["username"], s["role"], h, s["csrf"], s["exposures"], s["break_base"])
    request.state.ctx = ctx
    return ctx


SessionDep = Annotated[Ctx, Depends(session)]


async def csrf(request: Request, ctx: SessionDep) -> Ctx:
    """Every state-changing request: the session's token in X-CSRF-Token or the form."""
    token = request.headers.get("x-csrf-token")
    if token is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            token = form.get("csrf_token")
    if not auth.same(token if isinstance(token, str) else None, ctx.csrf):
        raise Refused(403, "missing or invalid CSRF token: reload the page and try again", "csrf")
    return ctx


CsrfDep = Annotated[Ctx, Depends(csrf)]


def supervisor(ctx: SessionDep) -> Ctx:
    if not ctx.supervisor:
        raise Refused(403, "supervisors only", "role")
    return ctx


SupervisorDep = Annotated[Ctx, Depends(supervisor)]


def load_report(console: Console, report_id: str) -> dict:
    """The report's row, or 404."""
    if not REPORT_ID.match(report_id or ""):
        raise HTTPException(404, "no such report")
    row = console.store.get_report(report_id)
    if row is None:
        raise HTTPException(404, "no such report")
    return row


def open_evidence(console: Console, row: dict) -> ev.Evidence:
    """The report's evidence, decrypted in memory, or 409."""
    try:
        return ev.open_report_evidence(row["report"], console.centre_key)
    except ev.EvidenceUnavailable as exc:
        raise HTTPException(409, f"evidence unavailable: {exc}") from None
