"""What the console asks of its state, as one abstract class (after HMA's ``storage/interface.py``).

The routes, the ingest and ``csadetect console`` talk to :class:`ConsoleStorage` only; the
console runs on :class:`~csadetect.console.storage.sqlite.SQLiteConsoleStore`, and
:class:`~csadetect.console.storage.memory.MemoryConsoleStore` keeps the same state in memory (the
store contract tests in ``tests/test_console.py`` run against both). Another database is one more
module next to them and one line in :func:`csadetect.console.storage.open_store`.

Records are plain dicts, named after the SQLite columns (``docs/console.md``). Every implementation
keeps these rules:

* verdicts, requests for information, superseded report versions and the audit log are
  append-only;
* a report is kept per ``report_id`` and ``version``: the same body again (by its content hash)
  changes nothing, the same body checked with another provider key (``key_fingerprint``) is
  re-checked in place (``signature_rechecked``), a changed body is the next version (the one
  before is kept, verdicts name the version they were made on, ``report_version``);
* an open report is held by at most one reviewer (a claim: ``claimed_by``, ``claimed_at``); a
  claim older than ``stale_before`` has expired; decisions refuse a report someone else holds;
* the report cache (reports, versions, verdicts, requests, outbox) is kept apart from the staff
  accounts, sessions and the audit log: :meth:`ConsoleStorage.reset_cache` clears the first only;
* a decision is stored with its outgoing message (the outbox) and its audit entry in one step;
* an audit entry is ``{seq, at, user, action, report_id, detail, prev_hash, hash}`` (who did what
  to which report, never content), ``user``, ``report_id`` and ``detail`` checked against strict
  patterns, hash-chained (:mod:`.chain`: ``prev_hash`` is the entry before's ``hash``), and every
  entry is also appended to the JSON Lines file ``audit_log`` when one is configured, in ``seq``
  order, before the entry is committed (an entry the mirror could not take is not written).
"""
from __future__ import annotations

import abc
import hashlib
import json
import os
import re
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from csadetect.console.storage.chain import chained
from csadetect.core.timeutil import utc_iso

STATUSES = ("new", "in_review", "info_requested", "confirmed", "manifestly_unfounded", "archived")
OPEN_STATUSES = ("new", "in_review", "info_requested")
ROLES = ("reviewer", "supervisor")
AUDIT_ACTIONS = ("login", "login_failed", "login_blocked", "logout", "refused", "view_report", "view_blurred",
                 "reveal_evidence", "fetch_evidence", "verdict", "verdict_changed", "request_info", "user_added",
                 "user_changed", "claim", "claim_released", "claim_expired", "archive", "report_version",
                 "signature_rechecked", "cache_reset")
OUTCOMES = ("added", "unchanged", "rechecked", "new_version")  # what storing a report did
SIGNATURE_STATES = ("verified", "invalid", "not_checked")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
REPORT_ID = re.compile(r"^[0-9a-f]{8,64}$")
# what a refusal was: "<status> <METHOD> <route template> <reason>", e.g. "403 POST /reports/{report_id}/verdict csrf"
DETAIL = re.compile(r"^[0-9]{3} [A-Z]{3,7} /[A-Za-z0-9/{}_.-]{0,120} [a-z_]{1,32}$")


class StoreError(ValueError):
    """A bad value for the store (user name, role, report id, action); the message is one line."""


def iso_at(ts: float) -> str:
    """Seconds since the epoch (the console's clock) as RFC 3339 UTC, ``2026-11-28T10:00:00Z``."""
    return utc_iso(datetime.fromtimestamp(ts, timezone.utc))


# The checks every implementation makes, with one message each.


def check_username(name: Any) -> str:
    if not isinstance(name, str) or not USERNAME.match(name):
        raise StoreError("a user name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def check_report_id(rid: Any) -> str:
    if not isinstance(rid, str) or not REPORT_ID.match(rid):
        raise StoreError("not a report id")
    return rid


def check_new_user(username: str, role: str) -> None:
    check_username(username)
    if role not in ROLES:
        raise StoreError(f"role must be one of {', '.join(ROLES)}")


def user_exists_error(username: str) -> StoreError:
    return StoreError(f"user {username} exists (use --replace to set a new password or role)")


def content_hash(report: dict) -> str:
    """SHA-256 of the report as stored (JSON, keys sorted): what tells a changed report body."""
    return hashlib.sha256(json.dumps(report, sort_keys=True).encode("utf-8")).hexdigest()


def claim_holder(row: Optional[dict], stale_before: Optional[float]) -> Optional[str]:
    """Who holds the report of ``row`` now (None: nobody, or the claim is older than ``stale_before``)."""
    if not row or not row.get("claimed_by"):
        return None
    if stale_before is not None and (row.get("claimed_at") or 0) < stale_before:
        return None
    return row["claimed_by"]


def held_by_other_error(holder: str) -> StoreError:
    return StoreError(f"{holder} is reviewing this report (claimed); wait until they release it or the claim expires")


def check_signature_status(status: str) -> None:
    if status not in SIGNATURE_STATES:
        raise StoreError("bad signature status")


def audit_record(now: float, user: Optional[str], action: str, report_id: Optional[str],
                 detail: Optional[str] = None) -> dict:
    """A checked audit entry without its ``seq`` and hashes; raises :class:`StoreError`."""
    if action not in AUDIT_ACTIONS:
        raise StoreError(f"unknown audit action {action!r}")
    if user is not None:
        check_username(user)
    if report_id is not None:
        check_report_id(report_id)
    if detail is not None and (not isinstance(detail, str) or not DETAIL.match(detail)):
        raise StoreError("an audit detail is '<status> <METHOD> <route> <reason>'")
    return {"at": iso_at(now), "user": user, "action": action, "report_id": report_id, "detail": detail}


def next_entry(record: dict, last: Optional[dict], last_issued: int = 0) -> dict:
    """``record`` chained after ``last`` (the newest entry, or None): the next ``seq`` (after
    ``last_issued`` too, so a removed newest entry leaves a gap) and the hashes."""
    seq = max(last["seq"] if last else 0, last_issued) + 1
    return chained(record, seq, last["hash"] if last else None)


class ConsoleStorage(abc.ABC):
    """The console's users, reports, verdicts, requests, outbox, sessions and audit log.

    ``now`` arguments are seconds since the epoch (the console's clock); a bad value raises
    :class:`StoreError`."""

    def __init__(self, audit_log: Optional[str] = None):
        self.audit_log = audit_log
        self._mirror_lock = threading.Lock()

    def _mirror(self, entry: dict) -> None:
        """Append one audit entry to the JSON Lines file (owner-only, synced), if configured.
        Called with the store's lock held and before the entry is committed."""
        if not self.audit_log:
            return
        line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
        with self._mirror_lock:
            os.makedirs(os.path.dirname(os.path.abspath(self.audit_log)), exist_ok=True)
            fd = os.open(self.audit_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    @abc.abstractmethod
    def close(self) -> None:
        """Release the storage."""

    # ------------------------------------------------------------------------------ users

    @abc.abstractmethod
    def add_user(self, username: str, pw_hash: str, role: str, now: float, replace: bool = False) -> str:
        """Add a user (or, with ``replace``, set an existing user's password and role and end their
        sessions); returns the audit action written (``user_added`` or ``user_changed``)."""

    @abc.abstractmethod
    def get_user(self, username: str) -> Optional[dict]:
        """``{username, pw_hash, role, created_at}`` or None."""

    @abc.abstractmethod
    def set_password_hash(self, username: str, pw_hash: str) -> None:
        """Store a re-hashed password (argon2 parameters upgraded at login)."""

    @abc.abstractmethod
    def users(self) -> list[dict]:
        """``{username, role, created_at}`` by name (never the hashes)."""

    @abc.abstractmethod
    def user_count(self) -> int:
        ...

    # ---------------------------------------------------------------------------- reports

    def add_report(self, report: dict, signature_status: str, signature_note: Optional[str], now: float) -> bool:
        """:meth:`store_report` without a provider key; True when the report is new."""
        return self.store_report(report, signature_status, signature_note, None, now) == "added"

    @abc.abstractmethod
    def store_report(self, report: dict, signature_status: str, signature_note: Optional[str],
                     key_fingerprint: Optional[str], now: float) -> str:
        """Store a report, checked with the provider key ``key_fingerprint`` (None: not checked).
        Returns ``added`` (a new id), ``unchanged`` (the same body, checked with the same key),
        ``rechecked`` (the same body, its signature status replaced by a check with another key:
        audited ``signature_rechecked``) or ``new_version`` (another body: the version before is
        kept in the history, the report's review state, claim and verdicts stay, an archived report
        is open again; audited ``report_version``)."""

    @abc.abstractmethod
    def report_state(self, report_id: str) -> Optional[dict]:
        """``{version, content_hash, key_fingerprint, signature_status}`` of a stored report, or None."""

    @abc.abstractmethod
    def report_versions(self, report_id: str) -> list[dict]:
        """Every version of a report, oldest first: ``{version, content_hash, ingested_at,
        signature_status, report}`` (the last is the current one)."""

    @abc.abstractmethod
    def has_report(self, report_id: str) -> bool:
        ...

    @abc.abstractmethod
    def get_report(self, report_id: str) -> Optional[dict]:
        """The report's row (``status``, ``signature_status``, the queue columns...) with the
        report itself under ``report``; None when there is none."""

    @abc.abstractmethod
    def queue(self, filters: dict, limit: int = 500) -> tuple[list[dict], int]:
        """Rows matching ``filters`` (detection_type, detector, provider_id, status: a status,
        ``open`` or ``all``), urgent first (Art. 48(4)), then the oldest (then by id); and how many
        match."""

    @abc.abstractmethod
    def queue_ids(self, status: str = "open") -> list[str]:
        """The ids of the reports with ``status`` in queue order."""

    @abc.abstractmethod
    def counts(self, filters: dict) -> dict[str, int]:
        """Reports per status under the other filters, plus ``open`` and ``all``."""

    @abc.abstractmethod
    def facets(self) -> dict[str, list[str]]:
        """The values the queue can be filtered on: sorted, per detection_type, detector, provider_id."""

    @abc.abstractmethod
    def mark_in_review(self, report_id: str) -> None:
        """A ``new`` report becomes ``in_review``."""

    # ----------------------------------------------------------------------------- claims

    @abc.abstractmethod
    def claim(self, report_id: str, user: str, now: float, stale_before: float) -> Optional[str]:
        """``user`` takes an open report unless someone else holds a claim made since
        ``stale_before``; returns who holds it afterwards (None for a closed report). A new claim
        is audited ``claim`` (after ``claim_expired`` for a stale one it replaces) and a ``new``
        report becomes ``in_review``; renewing one's own claim is not audited again."""

    @abc.abstractmethod
    def release(self, report_id: str, user: str, now: float, force: bool = False) -> bool:
        """End ``user``'s claim (``force``: anyone's, for a supervisor); audited
        ``claim_released``; an ``in_review`` report is ``new`` again. False when there was none."""

    @abc.abstractmethod
    def expire_claims(self, stale_before: float, now: float) -> list[str]:
        """End every claim made before ``stale_before`` (audited ``claim_expired``, no user); returns the ids."""

    @abc.abstractmethod
    def archive(self, report_id: str, user: str, now: float, stale_before: float) -> None:
        """Take an open report without a verdict out of the queue (status ``archived``, nothing
        deleted; audited ``archive``). Refused (:class:`StoreError`) when it is decided or held by
        someone else."""

    # --------------------------------------------------------------------------- verdicts

    @abc.abstractmethod
    def verdicts(self, report_id: str) -> list[dict]:
        """The report's verdicts, oldest first: ``{id, report_id, verdict, reason, note,
        delay_notification, delay_until, decided_at, decided_by, supersedes}``."""

    @abc.abstractmethod
    def latest_verdict(self, report_id: str) -> Optional[dict]:
        ...

    @abc.abstractmethod
    def add_verdict(self, verdict: dict, note: Optional[str], decided_by: str, supersedes: Optional[int],
                    message: dict, now: float, action: str, stale_before: Optional[float] = None,
                    version: Optional[int] = None) -> int:
        """Record a verdict with its feedback ``message`` (to the outbox), set the report's status,
        end its claim and write the audit entry ``action``; returns the verdict id. The verdict
        records the report version it was made on. ``supersedes`` must be the report's latest
        verdict (None for the first), else :class:`StoreError` (someone else decided in the
        meantime); so must ``version`` be the current version when given, and with
        ``stale_before`` a claim by someone else refuses it too."""

    # ---------------------------------------------------------------------- info requests

    @abc.abstractmethod
    def info_requests(self, report_id: str) -> list[dict]:
        """``{id, request_id, report_id, missing, note, requested_at, requested_by}``, oldest first."""

    @abc.abstractmethod
    def add_info_request(self, message: dict, requested_by: str, now: float,
                         stale_before: Optional[float] = None) -> None:
        """Record a request for information with its outbox message and audit entry; the report
        becomes ``info_requested`` and its claim ends. Refused (:class:`StoreError`) once the
        report has a verdict, or (with ``stale_before``) while someone else holds it."""

    # ----------------------------------------------------------------------------- outbox

    @abc.abstractmethod
    def pending_outbox(self) -> list[dict]:
        """Undelivered messages, oldest first: ``{id, kind, report_id, payload, created_at,
        file_done, topic_done, attempts, last_error}``."""

    @abc.abstractmethod
    def outbox_for(self, report_id: str) -> list[dict]:
        """A report's messages without their payload."""

    @abc.abstractmethod
    def outbox_progress(self, entry_id: int, file_done: bool, topic_done: bool, error: Optional[str]) -> None:
        """One delivery attempt: what is done now, and the error if any."""

    # --------------------------------------------------------------------------- sessions

    @abc.abstractmethod
    def create_session(self, token_hash: str, username: str, csrf: str, now: float) -> None:
        ...

    @abc.abstractmethod
    def get_session(self, token_hash: str) -> Optional[dict]:
        """``{token_hash, username, csrf, created_at, last_seen, exposures, break_base, role}``."""

    @abc.abstractmethod
    def touch_session(self, token_hash: str, now: float) -> None:
        ...

    @abc.abstractmethod
    def delete_session(self, token_hash: str) -> None:
        ...

    @abc.abstractmethod
    def purge_sessions(self, idle_before: float, created_before: float) -> int:
        """End the sessions idle since before ``idle_before`` or made before ``created_before``."""

    @abc.abstractmethod
    def purge_reports(self, due: Callable[[str, str, str], bool]) -> list[str]:
        """Retention (Art. 22, ``csadetect retention run``): delete every report for which
        ``due(report_id, created_at, ingested_at)`` is true, with its verdicts, requests for
        information and outbox messages, leaving no copy behind; returns the ids deleted. Users,
        sessions and the audit log are untouched (the audit log holds report ids, never content)."""

    @abc.abstractmethod
    def reset_cache(self, now: float, user: Optional[str] = None) -> dict:
        """Empty the report cache (reports, versions, verdicts, requests, outbox, claims) and keep
        the users, sessions and audit log; audited ``cache_reset``. Refused (:class:`StoreError`)
        while the outbox holds undelivered messages. Returns what was removed, counted per kind."""

    @abc.abstractmethod
    def add_exposure(self, token_hash: str) -> dict:
        """Count one reveal; returns ``{exposures, break_base}``."""

    @abc.abstractmethod
    def acknowledge_break(self, token_hash: str) -> None:
        """The reviewer took a break: reveals count from here."""

    # ------------------------------------------------------------------------------ audit

    @abc.abstractmethod
    def audit(self, now: float, user: Optional[str], action: str, report_id: Optional[str] = None,
              detail: Optional[str] = None) -> dict:
        """Append one audit entry, chained to the one before (and mirror it); returns it."""

    @abc.abstractmethod
    def audit_chain(self) -> tuple[list[dict], Optional[int]]:
        """Every audit entry, oldest first, as stored (for ``console audit verify``), and the
        highest ``seq`` ever handed out (None when the store cannot tell)."""

    @abc.abstractmethod
    def audit_entries(self, limit: int = 500, report_id: Optional[str] = None) -> list[dict]:
        """The latest entries first, for one report or all."""
