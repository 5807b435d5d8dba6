"""The console's state in memory: :class:`MemoryConsoleStore`, the second implementation of
:class:`~csadetect.console.storage.interface.ConsoleStorage` (after HMA's ``storage/mocked.py``).

The store contract tests and one walk through the console in ``tests/test_console.py`` run on it,
which shows that the interface holds everything the console needs. Nothing survives a restart;
the audit log is still mirrored to its JSON Lines file. Records are kept as the SQLite store
returns them (the report as JSON text), and copies are handed out.
"""
from __future__ import annotations

import copy
import json
import threading
from typing import Optional

from csadetect.console.storage.interface import (
    OPEN_STATUSES, STATUSES, ConsoleStorage, StoreError, audit_record, check_new_user, check_report_id,
    check_signature_status, check_username, claim_holder, content_hash, held_by_other_error, iso_at, next_entry,
    user_exists_error,
)

_FACETS = ("detection_type", "detector", "provider_id")


def _next_id(rows: list) -> int:
    """The id after the last one (rows are appended in id order; a purge may remove some)."""
    return (rows[-1]["id"] if rows else 0) + 1


def _with_report(row: dict) -> dict:
    row = dict(row)
    row["report"] = json.loads(row.pop("report_json"))
    return row


_CLAIM_FREE = {"claimed_by": None, "claimed_at": None}


class MemoryConsoleStore(ConsoleStorage):
    """Dicts and lists behind one lock."""

    def __init__(self, audit_log: Optional[str] = None):
        super().__init__(audit_log)
        self._lock = threading.RLock()
        self._users: dict[str, dict] = {}
        self._reports: dict[str, dict] = {}
        self._versions: list[dict] = []
        self._verdicts: list[dict] = []
        self._requests: list[dict] = []
        self._outbox: list[dict] = []
        self._sessions: dict[str, dict] = {}
        self._audit: list[dict] = []

    def close(self) -> None:
        pass

    def _append_audit(self, now: float, user: Optional[str], action: str, report_id: Optional[str],
                      detail: Optional[str] = None) -> dict:
        """The next entry of the chain, mirrored first (with the lock held), then kept."""
        entry = next_entry(audit_record(now, user, action, report_id, detail),
                           self._audit[-1] if self._audit else None)
        self._mirror(entry)
        self._audit.append(entry)
        return dict(entry)

    def _to_outbox(self, kind: str, report_id: str, message: dict, now: float) -> None:
        self._outbox.append({"id": _next_id(self._outbox), "kind": kind, "report_id": report_id,
                             "payload": json.dumps(message, sort_keys=True), "created_at": iso_at(now),
                             "file_done": 0, "topic_done": 0, "attempts": 0, "last_error": None})

    def add_user(self, username: str, pw_hash: str, role: str, now: float, replace: bool = False) -> str:
        check_new_user(username, role)
        with self._lock:
            user = self._users.get(username)
            if user and not replace:
                raise user_exists_error(username)
            if user:
                user.update(pw_hash=pw_hash, role=role)
                self._sessions = {h: s for h, s in self._sessions.items() if s["username"] != username}
                action = "user_changed"
            else:
                self._users[username] = {"username": username, "pw_hash": pw_hash, "role": role,
                                         "created_at": iso_at(now)}
                action = "user_added"
            self._append_audit(now, username, action, None)
        return action

    def get_user(self, username: str) -> Optional[dict]:
        with self._lock:
            user = self._users.get(username)
            return dict(user) if user else None

    def set_password_hash(self, username: str, pw_hash: str) -> None:
        with self._lock:
            if username in self._users:
                self._users[username]["pw_hash"] = pw_hash

    def users(self) -> list[dict]:
        with self._lock:
            return [{k: u[k] for k in ("username", "role", "created_at")} for _, u in sorted(self._users.items())]

    def user_count(self) -> int:
        return len(self._users)

    def store_report(self, report: dict, signature_status: str, signature_note: Optional[str],
                     key_fingerprint: Optional[str], now: float) -> str:
        rid = check_report_id(report.get("report_id"))
        check_signature_status(signature_status)
        digest = content_hash(report)
        columns = {"report_json": json.dumps(report, sort_keys=True), "urgent": int(bool(report.get("urgent"))),
                   "created_at": report["created_at"], **{name: report.get(name) for name in _FACETS},
                   "signature_status": signature_status, "signature_note": signature_note,
                   "ingested_at": iso_at(now), "content_hash": digest, "key_fingerprint": key_fingerprint}
        with self._lock:
            row = self._reports.get(rid)
            if row is None:
                self._reports[rid] = {"report_id": rid, **columns, "status": "new", "version": 1, **_CLAIM_FREE}
                return "added"
            if row["content_hash"] == digest:
                if row["key_fingerprint"] == key_fingerprint:
                    return "unchanged"
                self._append_audit(now, None, "signature_rechecked", rid)
                row.update(signature_status=signature_status, signature_note=signature_note,
                           key_fingerprint=key_fingerprint)
                return "rechecked"
            self._append_audit(now, None, "report_version", rid)
            self._versions.append({k: row[k] for k in ("report_id", "version", "content_hash", "report_json",
                                                       "ingested_at", "signature_status")})
            row.update(columns, version=row["version"] + 1,
                       status="new" if row["status"] == "archived" else row["status"])
            return "new_version"

    def report_state(self, report_id: str) -> Optional[dict]:
        with self._lock:
            row = self._reports.get(report_id)
            return {k: row[k] for k in ("version", "content_hash", "key_fingerprint", "signature_status")} if row else None

    def report_versions(self, report_id: str) -> list[dict]:
        with self._lock:
            rows = [v for v in self._versions if v["report_id"] == report_id]
            if report_id in self._reports:
                rows.append(self._reports[report_id])
            return [{"version": r["version"], "content_hash": r["content_hash"], "ingested_at": r["ingested_at"],
                     "signature_status": r["signature_status"], "report": json.loads(r["report_json"])} for r in rows]

    def has_report(self, report_id: str) -> bool:
        return report_id in self._reports

    def get_report(self, report_id: str) -> Optional[dict]:
        with self._lock:
            row = self._reports.get(report_id)
            return _with_report(row) if row else None

    def _matching(self, filters: dict, with_status: bool = True) -> list[dict]:
        status = filters.get("status") if with_status else None
        statuses = OPEN_STATUSES if status == "open" else (status,) if status in STATUSES else STATUSES
        rows = [r for r in self._reports.values() if r["status"] in statuses
                and all(r[name] == filters[name] for name in _FACETS if filters.get(name))]
        return sorted(rows, key=lambda r: (-r["urgent"], r["created_at"], r["report_id"]))

    def queue(self, filters: dict, limit: int = 500) -> tuple[list[dict], int]:
        with self._lock:
            rows = self._matching(filters)
            return [_with_report(r) for r in rows[:limit]], len(rows)

    def queue_ids(self, status: str = "open") -> list[str]:
        with self._lock:
            return [r["report_id"] for r in self._matching({"status": status})]

    def counts(self, filters: dict) -> dict[str, int]:
        with self._lock:
            rows = self._matching(filters, with_status=False)
        out = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
        out["open"] = sum(out[s] for s in OPEN_STATUSES)
        out["all"] = len(rows)
        return out

    def facets(self) -> dict[str, list[str]]:
        with self._lock:
            return {name: sorted({r[name] for r in self._reports.values() if r[name] is not None}) for name in _FACETS}

    def mark_in_review(self, report_id: str) -> None:
        with self._lock:
            row = self._reports.get(report_id)
            if row and row["status"] == "new":
                row["status"] = "in_review"

    def _holder_other(self, rid: str, user: str, stale_before: Optional[float]) -> None:
        if stale_before is None:
            return
        holder = claim_holder(self._reports.get(rid), stale_before)
        if holder is not None and holder != user:
            raise held_by_other_error(holder)

    @staticmethod
    def _unclaim(row: dict) -> None:
        row.update(_CLAIM_FREE)
        if row["status"] == "in_review":
            row["status"] = "new"

    def claim(self, report_id: str, user: str, now: float, stale_before: float) -> Optional[str]:
        rid = check_report_id(report_id)
        check_username(user)
        with self._lock:
            row = self._reports.get(rid)
            if row is None or row["status"] not in OPEN_STATUSES:
                return None
            holder = claim_holder(row, stale_before)
            if holder is not None and holder != user:
                return holder
            if holder is None:
                if row["claimed_by"]:
                    self._append_audit(now, None, "claim_expired", rid)
                self._append_audit(now, user, "claim", rid)
            row.update(claimed_by=user, claimed_at=now)
            if row["status"] == "new":
                row["status"] = "in_review"
            return user

    def release(self, report_id: str, user: str, now: float, force: bool = False) -> bool:
        rid = check_report_id(report_id)
        with self._lock:
            row = self._reports.get(rid)
            if row is None or not row["claimed_by"] or (row["claimed_by"] != user and not force):
                return False
            self._append_audit(now, user, "claim_released", rid)
            self._unclaim(row)
            return True

    def expire_claims(self, stale_before: float, now: float) -> list[str]:
        with self._lock:
            gone = sorted(rid for rid, r in self._reports.items() if r["claimed_by"] and r["claimed_at"] < stale_before)
            for rid in gone:
                self._append_audit(now, None, "claim_expired", rid)
                self._unclaim(self._reports[rid])
            return gone

    def archive(self, report_id: str, user: str, now: float, stale_before: float) -> None:
        rid = check_report_id(report_id)
        with self._lock:
            row = self._reports.get(rid)
            if row is None:
                raise StoreError("no such report")
            if row["status"] not in OPEN_STATUSES or self.latest_verdict(rid):
                raise StoreError("only an open report without a verdict can be archived")
            self._holder_other(rid, user, stale_before)
            self._append_audit(now, user, "archive", rid)
            row.update(_CLAIM_FREE, status="archived")

    def verdicts(self, report_id: str) -> list[dict]:
        with self._lock:
            return [dict(v) for v in self._verdicts if v["report_id"] == report_id]

    def latest_verdict(self, report_id: str) -> Optional[dict]:
        history = self.verdicts(report_id)
        return history[-1] if history else None

    def add_verdict(self, verdict: dict, note: Optional[str], decided_by: str, supersedes: Optional[int],
                    message: dict, now: float, action: str, stale_before: Optional[float] = None,
                    version: Optional[int] = None) -> int:
        rid = check_report_id(verdict["report_id"])
        with self._lock:
            report, latest = self._reports.get(rid), self.latest_verdict(rid)
            if report is None:
                raise StoreError("no such report")
            if (latest["id"] if latest else None) != supersedes:
                raise StoreError("the verdict changed in the meantime; reload the report")
            if version is not None and version != report["version"]:
                raise StoreError(f"the provider sent a changed report (now version {report['version']}) since you "
                                 "opened it; reload the report")
            self._holder_other(rid, decided_by, stale_before)
            self._append_audit(now, decided_by, action, rid)
            vid = _next_id(self._verdicts)
            self._verdicts.append({
                "id": vid, "report_id": rid, "verdict": verdict["verdict"], "reason": verdict["reason"], "note": note,
                "delay_notification": int(bool(verdict["delay_notification"])),
                "delay_until": verdict.get("delay_until"), "decided_at": verdict["decided_at"],
                "decided_by": decided_by, "supersedes": supersedes, "report_version": report["version"]})
            report.update(_CLAIM_FREE, status=verdict["verdict"])
            self._to_outbox("verdict", rid, message, now)
        return vid

    def info_requests(self, report_id: str) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._requests if r["report_id"] == report_id]

    def add_info_request(self, message: dict, requested_by: str, now: float,
                         stale_before: Optional[float] = None) -> None:
        rid = check_report_id(message["report_id"])
        with self._lock:
            report = self._reports[rid]
            if self.latest_verdict(rid):
                raise StoreError("this report has a verdict already")
            self._holder_other(rid, requested_by, stale_before)
            self._append_audit(now, requested_by, "request_info", rid)
            self._requests.append({
                "id": _next_id(self._requests), "request_id": message["request_id"], "report_id": rid,
                "missing": list(message["missing"]), "note": message.get("note"),
                "requested_at": message["requested_at"], "requested_by": requested_by})
            report.update(_CLAIM_FREE, status="info_requested")
            self._to_outbox("info_request", rid, message, now)

    def pending_outbox(self) -> list[dict]:
        with self._lock:
            return [dict(o, payload=json.loads(o["payload"])) for o in self._outbox
                    if not (o["file_done"] and o["topic_done"])]

    def outbox_for(self, report_id: str) -> list[dict]:
        with self._lock:
            return [{k: v for k, v in o.items() if k not in ("report_id", "payload")}
                    for o in self._outbox if o["report_id"] == report_id]

    def outbox_progress(self, entry_id: int, file_done: bool, topic_done: bool, error: Optional[str]) -> None:
        with self._lock:
            for o in self._outbox:
                if o["id"] == entry_id:
                    o.update(file_done=int(file_done), topic_done=int(topic_done), attempts=o["attempts"] + 1,
                             last_error=error)

    def create_session(self, token_hash: str, username: str, csrf: str, now: float) -> None:
        with self._lock:
            self._sessions[token_hash] = {"token_hash": token_hash, "username": username, "csrf": csrf,
                                          "created_at": now, "last_seen": now, "exposures": 0, "break_base": 0}

    def get_session(self, token_hash: str) -> Optional[dict]:
        with self._lock:
            s = self._sessions.get(token_hash)
            return dict(s, role=self._users[s["username"]]["role"]) if s else None

    def touch_session(self, token_hash: str, now: float) -> None:
        with self._lock:
            if token_hash in self._sessions:
                self._sessions[token_hash]["last_seen"] = now

    def delete_session(self, token_hash: str) -> None:
        with self._lock:
            self._sessions.pop(token_hash, None)

    def purge_sessions(self, idle_before: float, created_before: float) -> int:
        with self._lock:
            old = [h for h, s in self._sessions.items() if s["last_seen"] < idle_before or s["created_at"] < created_before]
            for h in old:
                del self._sessions[h]
            return len(old)

    def purge_reports(self, due) -> list[str]:
        with self._lock:
            gone = {rid for rid, r in self._reports.items() if due(rid, r["created_at"], r["ingested_at"])}
            for rid in gone:
                del self._reports[rid]
            self._verdicts = [v for v in self._verdicts if v["report_id"] not in gone]
            self._requests = [r for r in self._requests if r["report_id"] not in gone]
            self._outbox = [o for o in self._outbox if o["report_id"] not in gone]
            self._versions = [v for v in self._versions if v["report_id"] not in gone]
            return sorted(gone)

    def reset_cache(self, now: float, user: Optional[str] = None) -> dict:
        with self._lock:
            pending = len(self.pending_outbox())
            if pending:
                raise StoreError(f"{pending} verdict(s) or request(s) are not delivered yet: start the console so "
                                 "the outbox delivers them, then reset the cache")
            counts = {"reports": len(self._reports), "report_versions": len(self._versions),
                      "verdicts": len(self._verdicts), "info_requests": len(self._requests), "outbox": len(self._outbox)}
            self._append_audit(now, user, "cache_reset", None)
            self._reports, self._versions, self._verdicts, self._requests, self._outbox = {}, [], [], [], []
            return counts

    def add_exposure(self, token_hash: str) -> dict:
        with self._lock:
            s = self._sessions[token_hash]
            s["exposures"] += 1
            return {"exposures": s["exposures"], "break_base": s["break_base"]}

    def acknowledge_break(self, token_hash: str) -> None:
        with self._lock:
            if token_hash in self._sessions:
                self._sessions[token_hash]["break_base"] = self._sessions[token_hash]["exposures"]

    def audit(self, now: float, user: Optional[str], action: str, report_id: Optional[str] = None,
              detail: Optional[str] = None) -> dict:
        with self._lock:
            return self._append_audit(now, user, action, report_id, detail)

    def audit_chain(self) -> tuple[list[dict], Optional[int]]:
        with self._lock:
            return [dict(e) for e in self._audit], len(self._audit)

    def audit_entries(self, limit: int = 500, report_id: Optional[str] = None) -> list[dict]:
        with self._lock:
            entries = [e for e in reversed(self._audit) if not report_id or e["report_id"] == report_id]
            return [dict(e) for e in entries[:limit]]
