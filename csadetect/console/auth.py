"""Passwords, login throttling, server-side sessions and CSRF tokens for the console.

* Passwords are hashed with **argon2id** (``argon2-cffi``'s ``PasswordHasher``, RFC 9106
  parameters); a login for an unknown user still verifies against a dummy hash, so failures take
  the same time whether or not the user exists.
* Failed logins are counted per user name and per client address; after
  ``login_max_failures`` within ``login_lockout_seconds`` further attempts are refused (429) until
  the window has passed, even with the right password.
* A session is a random 256-bit token in an ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure``
  when configured); the server keeps only its SHA-256, with the user, a CSRF token, the login time
  and the last request. A session ends after ``session_idle_seconds`` without a request or
  ``session_max_seconds`` after login.
* CSRF: every state-changing request carries the session's token, in the form field
  ``csrf_token`` or the ``X-CSRF-Token`` header; the login form uses a double-submit token bound to
  a short-lived cookie. A missing or wrong token is refused with 403.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import defaultdict, deque
from typing import Optional

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_CHARS = 12


class AuthError(ValueError):
    """A password that does not meet the policy; the message is one line."""


def _hasher() -> PasswordHasher:
    return PasswordHasher(type=Type.ID)


_DUMMY: dict = {}


def hash_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise AuthError(f"a password has at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > 1024:
        raise AuthError("a password has at most 1024 characters")
    return _hasher().hash(password)


def verify_password(pw_hash: Optional[str], password: str) -> bool:
    """True when ``password`` matches ``pw_hash``; with no hash (unknown user) a dummy hash is
    verified instead so that the time taken does not tell whether the user exists."""
    hasher = _hasher()
    if pw_hash is None:
        if "hash" not in _DUMMY:
            _DUMMY["hash"] = hasher.hash(secrets.token_urlsafe(24))
        pw_hash, result = _DUMMY["hash"], False
    else:
        result = True
    try:
        hasher.verify(pw_hash, password[:1024])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return result


def rehash(password: str) -> str:
    """A fresh hash with the current parameters, for a password that just verified at login."""
    return _hasher().hash(password)


def needs_rehash(pw_hash: str) -> bool:
    try:
        return _hasher().check_needs_rehash(pw_hash)
    except Exception:  # noqa: BLE001 - an unparsable hash is rehashed on the next login
        return True


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same(a: Optional[str], b: Optional[str]) -> bool:
    """Constant-time comparison of two tokens (False when either is missing)."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class LoginThrottle:
    """Failed logins per key (user name, client address) within a window; in memory."""

    def __init__(self, max_failures: int, window_seconds: float):
        self.max_failures = max_failures
        self.window = window_seconds
        self._failures: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque:
        q = self._failures[key]
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            self._failures.pop(key, None)
            q = deque()
        return q

    def blocked(self, keys: list[str], now: float) -> bool:
        with self._lock:
            return any(len(self._trim(k, now)) >= self.max_failures for k in keys)

    def failed(self, keys: list[str], now: float) -> None:
        with self._lock:
            if len(self._failures) > 10_000:  # many names tried: forget what is outside the window
                for k in list(self._failures):
                    self._trim(k, now)
            for k in keys:
                q = self._trim(k, now)
                q.append(now)
                self._failures[k] = q

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
