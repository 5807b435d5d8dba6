"""Login and logout: the login form with its double-submit CSRF token, login throttling per user
name and per client address with exponential back-off (429, refused before any password is hashed),
the argon2id check (at most ``login_hash_concurrency`` at once; re-hashed when the parameters
changed), a new server-side session in an ``HttpOnly``, ``SameSite=Strict`` cookie, and the audit
entries ``login``, ``login_failed``, ``login_blocked`` and ``logout``."""
from __future__ import annotations

import math

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from csadetect.console import auth
from csadetect.console.deps import LOGIN_COOKIE, SESSION_COOKIE, ConsoleDep, CsrfDep, Refused, clear_session_cookie
from csadetect.console.storage import USERNAME
from csadetect.console.views import render

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, console: ConsoleDep, expired: int = 0, bye: int = 0):
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        s = console.store.get_session(auth.token_hash(token))
        if s and console.session_alive(s, console.clock()):
            return RedirectResponse("/", status_code=303)
    login_csrf = auth.new_token()
    flash = ("Your session timed out. Log in again." if expired else
             "You are logged out." if bye else None)
    response = render(request, "login.html", login_csrf=login_csrf, flash=flash)
    response.set_cookie(LOGIN_COOKIE, login_csrf, max_age=1800, path="/login", httponly=True, samesite="strict",
                        secure=console.config.secure_cookie)
    return response


@router.post("/login")
def login(request: Request, console: ConsoleDep, username: str = Form(""), password: str = Form(""),
          csrf_token: str = Form("")):
    if not auth.same(request.cookies.get(LOGIN_COOKIE), csrf_token):
        raise Refused(403, "missing or invalid CSRF token: reload the login page and try again", "login_csrf")
    config = console.config
    now = console.clock()
    name = username.strip()
    valid = bool(USERNAME.match(name))
    user = console.store.get_user(name) if valid else None
    who = user["username"] if user else None
    # keys: the name (every malformed name shares one) and the address the request came from
    client = request.client.host if request.client else "?"
    wait, attempt = console.throttle.begin(name.lower() if valid else "", client, now)
    if attempt is None:  # refused before any hashing: a blocked attempt costs no argon2 work
        seconds = math.ceil(wait)
        console.audit(who, "login_blocked", None, "429 POST /login throttled")
        response = render(request, "login.html", 429, login_csrf=csrf_token,
                          error=f"Too many failed logins. Try again in {seconds} s." if seconds < 120 else
                          f"Too many failed logins. Try again in {math.ceil(seconds / 60)} min.")
        response.headers["Retry-After"] = str(seconds)
        return response
    with console.hash_slots:
        ok = auth.verify_password(user["pw_hash"] if user else None, password)
    if not ok:
        console.audit(who, "login_failed")
        return render(request, "login.html", 401, login_csrf=csrf_token, error="Wrong user name or password.")
    console.throttle.succeeded(attempt)
    if auth.needs_rehash(user["pw_hash"]):
        with console.hash_slots:
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


@router.post("/logout")
def logout(ctx: CsrfDep, console: ConsoleDep):
    console.store.delete_session(ctx.token_hash)
    console.audit(ctx.username, "logout")
    response = RedirectResponse("/login?bye=1", status_code=303)
    clear_session_cookie(response, console)
    return response
