"""Passwords, login throttling, server-side sessions and CSRF tokens for the console.

* Passwords are hashed with **argon2id** (``argon2-cffi``'s ``PasswordHasher``, RFC 9106
  parameters); a login for an unknown user still verifies against a dummy hash, so failures take
  the same time whether or not the user exists.
* Failed logins are counted per user name and, separately, per client address
  (:class:`LoginThrottle`). Once a key has ``login_max_failures`` (a name) or
  ``login_max_failures_per_client`` (an address, set high: a proxy's address is every
  reviewer's) failures, each further attempt must wait ``login_backoff_seconds`` after the last
  failure, doubling with every failure up to ``login_lockout_seconds``; an attempt that comes
  earlier is refused (429), even with the right password, **before any password is hashed**, so a
  blocked attempt costs no argon2 work. Failures are forgotten after ``login_forget_seconds``
  without another; a successful login clears its name's count. Password checks run at most
  ``login_hash_concurrency`` at a time (each argon2id check takes 64 MiB).
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
from collections import OrderedDict
from dataclasses import dataclass
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


@dataclass
class Attempt:
    """A login attempt let through by :meth:`LoginThrottle.begin`: counted as a failure (under
    both keys) until :meth:`LoginThrottle.succeeded` says otherwise, so that attempts running at
    the same time cannot pass the limit together."""

    account: str
    client: str


class _Counts:
    """Failures per key: ``[count, time of the last]``, oldest first, at most ``max_keys`` keys."""

    def __init__(self, limit: int, max_keys: int):
        self.limit = limit
        self.max_keys = max_keys
        self.keys: OrderedDict[str, list] = OrderedDict()


class LoginThrottle:
    """Failed logins per user name and per client address with exponential back-off; in memory.

    A key with ``n`` failures, ``n`` at or above its limit, is blocked until
    ``backoff * 2 ** (n - limit)`` seconds (at most ``max_wait``) after its last failure."""

    def __init__(self, max_failures: int, window_seconds: float, *, max_failures_per_client: Optional[int] = None,
                 backoff_seconds: float = 1.0, forget_seconds: Optional[float] = None, max_keys: int = 100_000):
        self.max_wait = float(window_seconds)
        self.backoff = float(backoff_seconds)
        self.forget = float(forget_seconds if forget_seconds is not None else max(window_seconds, 3600))
        self._accounts = _Counts(max_failures, max_keys)
        self._clients = _Counts(max_failures_per_client or max_failures * 10, max_keys)
        self._lock = threading.Lock()

    def _get(self, counts: _Counts, key: str, now: float) -> Optional[list]:
        rec = counts.keys.get(key)
        if rec is not None and now - rec[1] >= self.forget:
            del counts.keys[key]
            return None
        return rec

    def _wait(self, counts: _Counts, key: str, now: float) -> float:
        rec = self._get(counts, key, now)
        if rec is None or rec[0] < counts.limit:
            return 0.0
        until = rec[1] + min(self.backoff * 2.0 ** min(rec[0] - counts.limit, 60), self.max_wait)
        return max(0.0, until - now)

    def _count(self, counts: _Counts, key: str, now: float) -> None:
        rec = self._get(counts, key, now) or [0, now]
        rec[0], rec[1] = rec[0] + 1, now
        counts.keys[key] = rec
        counts.keys.move_to_end(key)
        while len(counts.keys) > counts.max_keys:  # the oldest first: forgotten ones, then the least recent
            counts.keys.popitem(last=False)

    def wait(self, account: str, client: str, now: float) -> float:
        """Seconds until a login for ``account`` from ``client`` may be tried (0: now)."""
        with self._lock:
            return max(self._wait(self._accounts, account, now), self._wait(self._clients, client, now))

    def begin(self, account: str, client: str, now: float) -> tuple[float, Optional[Attempt]]:
        """``(wait, None)`` when the attempt must be refused now (nothing is counted), else
        ``(0, attempt)`` with the attempt counted as a failure until :meth:`succeeded`."""
        with self._lock:
            wait = max(self._wait(self._accounts, account, now), self._wait(self._clients, client, now))
            if wait > 0:
                return wait, None
            self._count(self._accounts, account, now)
            self._count(self._clients, client, now)
            return 0.0, Attempt(account, client)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the name's failures are cleared and the address's count no
        longer holds this attempt (its earlier failures stay, so one valid account cannot reset it)."""
        with self._lock:
            self._accounts.keys.pop(attempt.account, None)
            rec = self._clients.keys.get(attempt.client)
            if rec is not None:
                rec[0] -= 1
                if rec[0] <= 0:
                    del self._clients.keys[attempt.client]
