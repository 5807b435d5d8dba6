"""The review console as a FastAPI application: ``create_app(config) -> FastAPI``.

Server-rendered Jinja2 templates (autoescaped) and one small vanilla script; no CDN, no external
fonts, nothing loaded from outside. Every page needs a login; every POST needs the session's CSRF
token; every response carries a strict Content-Security-Policy (self only), ``X-Frame-Options:
DENY``, ``Referrer-Policy: no-referrer`` and, except static files, ``Cache-Control: no-store``.
See ``docs/console.md`` for what a reviewer sees and why.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from csadetect.console import auth, evidence as ev
from csadetect.console.ingest import Background, Outbox, ReportIngest, SubscriptionPuller
from csadetect.console.store import REPORT_ID, USERNAME, ConsoleStore, StoreError, utc_iso
from csadetect.config.settings import ConfigError, ConsoleSettings

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "csadetect_session"
LOGIN_COOKIE = "csadetect_login_csrf"

ConsoleConfig = ConsoleSettings  # the `console:` settings section, with command-line overrides applied

REASONS: dict[str, dict[str, str]] = {
    "confirmed": {
        "matches_known_indicator": "Matches a known indicator",
        "new_material_confirmed": "New material: confirmed",
        "grooming_confirmed": "Grooming: confirmed",
    },
    "manifestly_unfounded": {
        "benign_content": "Benign content",
        "wrong_match": "Wrong match (not the indicated material)",
        "insufficient_evidence": "Insufficient evidence",
        "other": "Other (explain in the note)",
    },
}
VERDICT_LABELS = {"confirmed": "Confirmed", "manifestly_unfounded": "Manifestly unfounded"}
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
                 "confirmed": "Confirmed", "manifestly_unfounded": "Manifestly unfounded", "all": "All"}
DONE_MESSAGES = {
    "verdict": "Verdict recorded and sent to the provider.",
    "changed": "Verdict changed; the new verdict was sent to the provider.",
    "info_request": "Request for missing information sent to the provider.",
    "break": "Welcome back.",
}
NOTE_MAX = 2000
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src 'self'; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


class ConsoleError(ValueError):
    """The console cannot start (bad configuration, unreadable key); the message is one line."""


class NeedLogin(Exception):
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


@dataclass
class Grant:
    """A short-lived URL for revealed evidence: this session only, until ``expires``; images and
    texts once, videos (which browsers fetch in ranges) until it expires."""

    token_hash: str
    report_id: str
    expires: float
    reusable: bool


def _load_keys(config: ConsoleConfig):
    centre = provider = None
    if config.centre_key:
        from csadetect.reports import crypto

        try:
            centre = crypto.load_centre_private_key(config.centre_key)
        except (crypto.EvidenceError, OSError, ValueError) as exc:
            raise ConsoleError(f"centre key {config.centre_key}: {exc}") from None
    if config.provider_public_key:
        from csadetect.core import keys as signing

        try:
            provider = signing.load_public_key(config.provider_public_key)
        except (signing.SigningError, OSError, ValueError) as exc:
            raise ConsoleError(f"provider public key {config.provider_public_key}: {exc}") from None
    return centre, provider


class Console:
    """Everything the routes share: config, clock, store, keys, ingest, outbox, reveal grants."""

    def __init__(self, config: ConsoleConfig, clock: Callable[[], float]):
        try:
            config.validate_outputs()
        except ConfigError as exc:
            raise ConsoleError(str(exc)) from None
        self.config = config
        self.clock = clock
        self.centre_key, self.provider_key = _load_keys(config)
        try:
            self.store = ConsoleStore(config.db, config.audit_log)
        except Exception as exc:  # sqlite3.Error, OSError: one line
            raise ConsoleError(f"console database {config.db}: {exc}") from None
        self.ingest = ReportIngest(self.store, self.provider_key, clock)
        self.outbox = Outbox(self.store, config, clock)
        self.throttle = auth.LoginThrottle(config.login_max_failures, config.login_lockout_seconds)
        self.grants: dict[str, Grant] = {}
        self._grants_lock = threading.Lock()
        self.puller: Optional[SubscriptionPuller] = None
        self.background: Optional[Background] = None

    # -------------------------------------------------------------------- lifecycle

    def refresh(self) -> None:
        if self.config.reports_dir and not self.config.subscription:
            self.ingest.read_store(self.config.reports_dir)
        self.outbox.deliver()
        now = self.clock()
        self.store.purge_sessions(now - self.config.session_idle_seconds, now - self.config.session_max_seconds)
        with self._grants_lock:
            for token in [t for t, g in self.grants.items() if g.expires < now]:
                del self.grants[token]

    def start(self) -> None:
        self.refresh()
        if self.config.subscription:
            self.puller = SubscriptionPuller(self.ingest, self.config.subscription)
            self.puller.start()
        self.background = Background(self.config.refresh_seconds, self.refresh)
        self.background.start()

    def stop(self) -> None:
        for worker in (self.puller, self.background):
            if worker is not None:
                worker.stop()
        for worker in (self.puller, self.background):
            if worker is not None:
                worker.join(timeout=15)
        self.outbox.close()

    # ---------------------------------------------------------------------- helpers

    def now_iso(self) -> str:
        return utc_iso(self.clock())

    def audit(self, user: Optional[str], action: str, report_id: Optional[str] = None) -> None:
        self.store.audit(self.clock(), user, action, report_id)

    def grant(self, ctx: Ctx, report_id: str, reusable: bool) -> str:
        token = auth.new_token()
        with self._grants_lock:
            self.grants[token] = Grant(ctx.token_hash, report_id, self.clock() + self.config.reveal_seconds, reusable)
        return token

    def redeem(self, ctx: Ctx, token: str) -> Optional[Grant]:
        with self._grants_lock:
            grant = self.grants.get(token)
            if grant is None or grant.token_hash != ctx.token_hash:
                return None
            if grant.expires < self.clock():
                del self.grants[token]
                return None
            if not grant.reusable:
                del self.grants[token]
            return grant


# ------------------------------------------------------------------------ formatting


def _when(value: Any) -> str:
    if not value:
        return "—"
    try:
        from csadetect.core.stats import parse_time

        return parse_time(str(value)).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, TypeError):
        return str(value)


def _ago(value: Any, now: float) -> str:
    try:
        from csadetect.core.stats import parse_time

        seconds = now - parse_time(str(value)).timestamp()
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


_DISTANCE_UNITS = {"pdq": "bits (of 256)", "vpdq": "1 − share of matching frames", "md5": "exact", "sha256": "exact",
                   "embedding": "1 − cosine similarity"}


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
    from csadetect.reports.schema import FIELD_DOCS, REPORT_SCHEMA

    return [{"name": name, "label": FIELD_LABELS.get(name, name), "doc": FIELD_DOCS.get(name, ""),
             "value": _field_value(name, report.get(name)), "missing": report.get(name) is None}
            for name in REPORT_SCHEMA.names]


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


# ------------------------------------------------------------------------------- app


def create_app(config: ConsoleConfig, *, clock: Optional[Callable[[], float]] = None) -> FastAPI:
    """The console for ``config`` (validated, keys loaded and the database opened here, before
    anything is served). ``clock`` (seconds since the epoch) is injectable for tests. Reports are
    read and background work started when the application starts (its lifespan)."""
    import jinja2
    from contextlib import asynccontextmanager

    if not isinstance(config, ConsoleSettings):
        raise ConsoleError("create_app needs a ConsoleConfig")
    clock = clock or time.time
    console = Console(config, clock)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["num"] = _num
    env.globals.update(STATUS_LABELS=STATUS_LABELS, VERDICT_LABELS=VERDICT_LABELS, REASONS=REASONS,
                       MISSING_FIELDS=MISSING_FIELDS, DISTANCE_UNITS=_DISTANCE_UNITS)

    @asynccontextmanager
    async def lifespan(app):
        console.start()
        try:
            yield
        finally:
            console.stop()

    app = FastAPI(title="csadetect review console", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.console = console
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    # ----------------------------------------------------------------- plumbing

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        h = response.headers
        h["Content-Security-Policy"] = CSP
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = "no-referrer"
        h["X-Content-Type-Options"] = "nosniff"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        h["Cross-Origin-Resource-Policy"] = "same-origin"
        h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
        if not request.url.path.startswith("/static/"):
            h["Cache-Control"] = "no-store"
            h["Pragma"] = "no-cache"
        return response

    def wants_json(request: Request) -> bool:
        return "application/json" in request.headers.get("accept", "")

    def render(request: Request, name: str, code: int = 200, ctx: Optional[Ctx] = None, **values) -> HTMLResponse:
        values.setdefault("flash", None)
        values.setdefault("error", None)
        page = env.get_template(name).render(
            user=ctx, csrf=ctx.csrf if ctx else values.pop("login_csrf", ""), config=config,
            break_due=bool(ctx and ctx.exposures - ctx.break_base >= config.break_after_reveals),
            request_path=request.url.path, **values)
        return HTMLResponse(page, status_code=code)

    def clear_session_cookie(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=config.secure_cookie)

    @app.exception_handler(NeedLogin)
    async def need_login(request: Request, exc: NeedLogin):
        if request.method == "GET" and not wants_json(request):
            response = RedirectResponse("/login?expired=1" if exc.expired else "/login", status_code=303)
        else:
            response = JSONResponse({"error": "session expired, log in again" if exc.expired else "log in first"},
                                    status_code=401)
        clear_session_cookie(response)
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if wants_json(request) or request.method != "GET" and request.headers.get("x-csrf-token") is not None:
            return JSONResponse({"error": message}, status_code=exc.status_code)
        ctx = getattr(request.state, "ctx", None)
        return render(request, "error.html", exc.status_code, ctx, status=exc.status_code, message=message)

    def session(request: Request) -> Ctx:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise NeedLogin(False)
        h = auth.token_hash(token)
        s = console.store.get_session(h)
        if s is None:
            raise NeedLogin(True)
        now = clock()
        if now - s["last_seen"] > config.session_idle_seconds or now - s["created_at"] > config.session_max_seconds:
            console.store.delete_session(h)
            raise NeedLogin(True)
        console.store.touch_session(h, now)
        ctx = Ctx(s["username"], s["role"], h, s["csrf"], s["exposures"], s["break_base"])
        request.state.ctx = ctx
        return ctx

    async def csrf(request: Request, ctx: Ctx = Depends(session)) -> Ctx:
        """Every state-changing request: the session's token in X-CSRF-Token or the form."""
        token = request.headers.get("x-csrf-token")
        if token is None:
            content_type = request.headers.get("content-type", "")
            if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                form = await request.form()
                token = form.get("csrf_token")
        if not auth.same(token if isinstance(token, str) else None, ctx.csrf):
            raise HTTPException(403, "missing or invalid CSRF token: reload the page and try again")
        return ctx

    def supervisor(ctx: Ctx = Depends(session)) -> Ctx:
        if not ctx.supervisor:
            raise HTTPException(403, "supervisors only")
        return ctx

    def load_report(report_id: str) -> dict:
        if not REPORT_ID.match(report_id or ""):
            raise HTTPException(404, "no such report")
        row = console.store.get_report(report_id)
        if row is None:
            raise HTTPException(404, "no such report")
        return row

    def open_evidence(row: dict) -> ev.Evidence:
        try:
            return ev.open_report_evidence(row["report"], console.centre_key)
        except ev.EvidenceUnavailable as exc:
            raise HTTPException(409, f"evidence unavailable: {exc}") from None

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "?"

    # -------------------------------------------------------------------- login

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, expired: int = 0, bye: int = 0):
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            s = console.store.get_session(auth.token_hash(token))
            now = clock()
            if s and now - s["last_seen"] <= config.session_idle_seconds and now - s["created_at"] <= config.session_max_seconds:
                return RedirectResponse("/", status_code=303)
        login_csrf = auth.new_token()
        flash = ("Your session timed out. Log in again." if expired else
                 "You are logged out." if bye else None)
        response = render(request, "login.html", login_csrf=login_csrf, flash=flash)
        response.set_cookie(LOGIN_COOKIE, login_csrf, max_age=1800, path="/login", httponly=True, samesite="strict",
                            secure=config.secure_cookie)
        return response

    @app.post("/login")
    def login(request: Request, username: str = Form(""), password: str = Form(""), csrf_token: str = Form("")):
        if not auth.same(request.cookies.get(LOGIN_COOKIE), csrf_token):
            raise HTTPException(403, "missing or invalid CSRF token: reload the login page and try again")
        now = clock()
        name = username.strip()
        keys = [f"user:{name.lower()}", f"client:{client_of(request)}"]
        user = console.store.get_user(name) if USERNAME.match(name) else None
        who = user["username"] if user else None
        if console.throttle.blocked(keys, now):
            auth.verify_password(None, password)  # same work as any other failure
            console.audit(who, "login_failed")
            return render(request, "login.html", 429, login_csrf=csrf_token,
                          error=f"Too many failed logins. Try again in {config.login_lockout_seconds // 60 or 1} min.")
        if not auth.verify_password(user["pw_hash"] if user else None, password):
            console.throttle.failed(keys, now)
            console.audit(who, "login_failed")
            return render(request, "login.html", 401, login_csrf=csrf_token, error="Wrong user name or password.")
        console.throttle.succeeded(keys[0])
        if auth.needs_rehash(user["pw_hash"]):
            console.store.set_password_hash(user["username"], auth.rehash(password))
        old = request.cookies.get(SESSION_COOKIE)
        if old:
            console.store.delete_session(auth.token_hash(old))
        token = auth.new_token()
        console.store.create_session(auth.token_hash(token), user["username"], auth.new_token(), now)
        console.audit(user["username"], "login")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, token, path="/", httponly=True, samesite="strict",
                            secure=config.secure_cookie, max_age=config.session_max_seconds)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @app.post("/logout")
    def logout(ctx: Ctx = Depends(csrf)):
        console.store.delete_session(ctx.token_hash)
        console.audit(ctx.username, "logout")
        response = RedirectResponse("/login?bye=1", status_code=303)
        clear_session_cookie(response)
        return response

    # -------------------------------------------------------------------- queue

    @app.get("/", response_class=HTMLResponse)
    def queue(request: Request, detection_type: str = "", detector: str = "", provider: str = "",
              status: str = "open", done: str = "", ctx: Ctx = Depends(session)):
        if status not in STATUS_LABELS:
            status = "open"
        filters = {"detection_type": detection_type, "detector": detector, "provider_id": provider, "status": status}
        rows, total = console.store.queue(filters)
        now = clock()
        items = [{
            "report_id": r["report_id"], "urgent": bool(r["urgent"]), "created_at": r["created_at"],
            "age": _ago(r["created_at"], now), "detection_type": r["detection_type"], "detector": r["detector"],
            "provider_id": r["provider_id"], "service": r["report"].get("service"),
            "content_kind": r["report"].get("content_kind"), "status": r["status"],
            "signature_status": r["signature_status"], "summary": detection_summary(r["report"]),
        } for r in rows]
        base = {k: v for k, v in (("detection_type", detection_type), ("detector", detector),
                                  ("provider", provider)) if v}
        return render(request, "queue.html", ctx=ctx, items=items, total=total,
                      counts=console.store.counts(filters), facets=console.store.facets(), filters=filters,
                      base=base, status=status, flash=DONE_MESSAGES.get(done),
                      source=config.subscription or config.reports_dir, ingest=dict(console.ingest.counts))

    # ------------------------------------------------------------------- detail

    def next_open(report_id: str) -> Optional[str]:
        ids = console.store.queue_ids("open")
        if report_id in ids:
            i = ids.index(report_id)
            rest = ids[i + 1:] + ids[:i]
        else:
            rest = ids
        return rest[0] if rest else None

    @app.get("/reports/{report_id}", response_class=HTMLResponse)
    def report_page(request: Request, report_id: str, done: str = "", ctx: Ctx = Depends(session)):
        row = load_report(report_id)
        report = row["report"]
        console.audit(ctx.username, "view_report", report_id)
        console.store.mark_in_review(report_id)
        row = console.store.get_report(report_id)
        evidence = {"kind": None, "error": None, "size": None, "mime": None, "conversation": None}
        try:
            opened = ev.open_report_evidence(report, console.centre_key)
            evidence.update(kind=opened.kind, size=opened.size, mime=opened.mime)
            if opened.kind == "conversation":
                evidence["conversation"] = ev.conversation_view(opened.conversation)
            elif opened.kind in ("text", "other"):
                evidence["kind"] = "conversation"
                evidence["conversation"] = ev.plain_text_view(opened.content)[0]
            del opened
        except ev.EvidenceUnavailable as exc:
            evidence["error"] = str(exc)
        verdicts = console.store.verdicts(report_id)
        latest = verdicts[-1] if verdicts else None
        return render(
            request, "report.html", ctx=ctx, row=row, report=report, fields=art13_fields(report),
            evidence=evidence, verdicts=verdicts, latest=latest, info_requests=console.store.info_requests(report_id),
            outbox=console.store.outbox_for(report_id), can_decide=latest is None or ctx.supervisor,
            can_confirm=row["signature_status"] != "invalid", next_id=next_open(report_id),
            summary=detection_summary(report), flash=DONE_MESSAGES.get(done),
            audit=console.store.audit_entries(50, report_id) if ctx.supervisor else [],
        )

    @app.get("/reports/{report_id}/evidence/blurred")
    def blurred(report_id: str, ctx: Ctx = Depends(session)):
        opened = open_evidence(load_report(report_id))
        if opened.kind != "image":
            raise HTTPException(404, "no picture to show")
        try:
            png = ev.blurred_image(opened.content, config.max_pixels)
        except ev.EvidenceUnavailable as exc:
            raise HTTPException(409, f"evidence unavailable: {exc}") from None
        return Response(png, media_type="image/png")

    @app.post("/reports/{report_id}/reveal")
    def reveal(report_id: str, ctx: Ctx = Depends(csrf)):
        row = load_report(report_id)
        if ctx.exposures - ctx.break_base >= config.break_after_reveals:
            return JSONResponse({"error": "break_due", "exposures": ctx.exposures,
                                 "break_after": config.break_after_reveals}, status_code=409)
        opened = open_evidence(row)
        console.audit(ctx.username, "reveal_evidence", report_id)  # before anything is shown
        counts = console.store.add_exposure(ctx.token_hash)
        token = console.grant(ctx, report_id, reusable=opened.kind == "video")
        return {"url": f"/evidence/{token}", "kind": opened.kind, "mime": opened.mime,
                "seconds": config.reveal_seconds, "exposures": counts["exposures"],
                "break_due": counts["exposures"] - counts["break_base"] >= config.break_after_reveals,
                "break_after": config.break_after_reveals}

    @app.get("/evidence/{token}")
    def clear_evidence(token: str, ctx: Ctx = Depends(session)):
        grant = console.redeem(ctx, token)
        if grant is None:
            raise HTTPException(410, "this evidence link has expired: reveal again")
        opened = open_evidence(load_report(grant.report_id))
        if opened.kind == "image":
            try:
                return Response(ev.clear_image(opened.content, config.max_pixels), media_type="image/png")
            except ev.EvidenceUnavailable as exc:
                raise HTTPException(409, f"evidence unavailable: {exc}") from None
        if opened.kind == "conversation":
            return JSONResponse(ev.conversation_texts(opened.conversation))
        if opened.kind in ("text", "other"):
            return JSONResponse(ev.plain_text_view(opened.content)[1])
        if opened.kind == "video":
            mime = opened.mime if opened.mime in ("video/mp4", "video/webm", "video/ogg") else "application/octet-stream"
            return Response(opened.content, media_type=mime, headers={"Content-Disposition": "inline"})
        raise HTTPException(404, "nothing to show")

    @app.post("/break")
    def take_break(ctx: Ctx = Depends(csrf)):
        console.store.acknowledge_break(ctx.token_hash)
        return {"ok": True}

    # ----------------------------------------------------------------- verdicts

    @app.post("/reports/{report_id}/verdict")
    def decide(report_id: str, verdict: str = Form(""), reason: str = Form(""), note: str = Form(""),
                delay_notification: str = Form(""), delay_until: str = Form(""), based_on: str = Form(""),
                ctx: Ctx = Depends(csrf)):
        row = load_report(report_id)
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
            raise HTTPException(403, "this report has a verdict already: only a supervisor can change it")
        if verdict == "confirmed" and row["signature_status"] == "invalid":
            raise HTTPException(409, "cannot confirm: the provider's signature does not verify")
        now = clock()
        decided = datetime.fromtimestamp(int(now), timezone.utc)
        if latest is not None:  # a revision must be later than what it revises (the feedback pipeline keeps the latest)
            from csadetect.core.stats import parse_time

            decided = max(decided, parse_time(latest["decided_at"]) + timedelta(seconds=1))
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
        following = next_open(report_id)
        return RedirectResponse(f"/reports/{following}?done=verdict" if following else "/?done=verdict",
                                status_code=303)

    @app.post("/reports/{report_id}/info-request")
    def info_request(report_id: str, missing: list[str] = Form(default=[]), note: str = Form(""),
                     ctx: Ctx = Depends(csrf)):
        row = load_report(report_id)
        note = note.strip()
        if not missing or any(m not in MISSING_FIELDS for m in missing):
            raise HTTPException(400, "tick what is missing (from the list)")
        if len(note) > NOTE_MAX:
            raise HTTPException(400, f"the note is longer than {NOTE_MAX} characters")
        if "other" in missing and not note:
            raise HTTPException(400, "'other' needs a note")
        now = clock()
        message = {"request_id": uuid.uuid4().hex, "report_id": report_id, "provider_id": row["provider_id"],
                   "missing": sorted(set(missing), key=list(MISSING_FIELDS).index), "note": note or None,
                   "requested_at": utc_iso(now)}
        try:
            console.store.add_info_request(message, ctx.username, now)
        except StoreError as exc:
            raise HTTPException(409, str(exc)) from None
        console.outbox.deliver()
        following = next_open(report_id)
        return RedirectResponse(f"/reports/{following}?done=info_request" if following and following != report_id
                                else "/?done=info_request", status_code=303)

    # -------------------------------------------------------------------- audit

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, report_id: str = "", ctx: Ctx = Depends(supervisor)):
        rid = report_id if REPORT_ID.match(report_id or "") else None
        return render(request, "audit.html", ctx=ctx, entries=console.store.audit_entries(500, rid), report_id=rid,
                      audit_log=config.audit_log)

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    return app
