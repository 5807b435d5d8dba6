"""The console's state in two SQLite files (stdlib ``sqlite3``): :class:`SQLiteConsoleStore`, the
:class:`~csadetect.console.storage.interface.ConsoleStorage` the console runs on.

The accounts file (``console.db``) holds ``users`` (argon2id hashes, role), ``sessions``
(server-side; only a SHA-256 of the session token is stored) and ``audit``. The report cache
(``console.db`` + ``.cache``, attached as schema ``cache``) holds ``reports`` (the current version
of each report as received, with the columns the queue sorts and filters on, the console's
``status``, the content hash, the provider key the signature was checked with, and the claim),
``report_versions`` (every earlier version), ``verdicts`` (every verdict and every change, who,
when and on which version), ``info_requests`` and ``outbox`` (verdict and request messages until
they are delivered to the feedback/provider topic and files). ``csadetect console reset-cache``
empties the cache and never touches the accounts file. A database of the earlier single-file
layout is migrated when it is opened (:meth:`SQLiteConsoleStore._migrate`). The schema's SQL and
the migration are :mod:`.sqlite_schema`.

The audit table, the verdicts, the requests and the report versions are **append-only**: SQLite
triggers abort any UPDATE or DELETE. The triggers stop mistakes, not the file's owner; what shows a change made with
them dropped is the audit log's hash chain (:mod:`.chain`, ``csadetect console audit verify``).
One connection behind one lock; WAL unless the database is ``:memory:``. ``read_only`` opens an
existing file without creating or changing anything (for ``audit verify``).
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from csadetect.console.storage.interface import (
    OPEN_STATUSES, STATUSES, ConsoleStorage, StoreError, audit_record, check_new_user, check_report_id,
    check_signature_status, check_username, claim_holder, content_hash, held_by_other_error, iso_at, next_entry,
    user_exists_error,
)
from csadetect.console.storage.sqlite_schema import (
    ACCOUNTS_SCHEMA, AUDIT_DDL, CACHE_SCHEMA, CACHE_TABLES, SchemaMigration, _statements,
)
# re-exported: the schema's names, as they were importable from csadetect.console.storage.sqlite
from csadetect.console.storage.sqlite_schema import AUDIT_TRIGGERS  # noqa: F401


def cache_path(db: str) -> str:
    """The report cache's file next to the accounts file ``db`` (``console.sqlite3.cache``)."""
    return db if db == ":memory:" else db + ".cache"


_QUEUE_ORDER = "ORDER BY urgent DESC, created_at ASC, report_id ASC"  # urgent first (Art. 48(4)), then the oldest


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_database_file(path: str) -> None:
    """StoreError (one line) when ``path`` is a directory or a non-empty file that is not SQLite."""
    if path == ":memory:":
        return
    if os.path.isdir(path):
        raise StoreError(f"console database {path} is a directory: give a file (--db PATH, console.db)")
    if os.path.isfile(path) and os.path.getsize(path) > 0:
        with open(path, "rb") as fh:
            if fh.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
                raise StoreError(f"console database {path} is not an SQLite database: give the console's "
                                 "database file or a new path (--db PATH, console.db)")


def _private_file(path: str) -> None:
    """Create ``path`` (and its folder) readable by the owner only, unless it exists."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


class SQLiteConsoleStore(SchemaMigration, ConsoleStorage):
    """Thread-safe access to the console's two SQLite files (one connection, one lock): ``path``
    (users, sessions, audit) with the report cache ``cache`` (default :func:`cache_path`) attached."""

    def __init__(self, path: str, audit_log: Optional[str] = None, read_only: bool = False,
                 cache: Optional[str] = None):
        super().__init__(audit_log)
        self.path = path
        self.cache = cache or cache_path(path)
        self._lock = threading.RLock()
        self._unmirrored: list[dict] = []
        if read_only:  # the accounts file only (``audit verify``)
            uri = Path(path).resolve().as_uri() + "?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=10)
            self._conn.row_factory = sqlite3.Row
            return
        for file in (path, self.cache):  # both checked before either is created
            _check_database_file(file)
        for file in (path, self.cache):
            if file != ":memory:":
                _private_file(file)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.row_factory = sqlite3.Row
        try:
            self._open()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"console database {path}: {exc}") from None

    def _open(self) -> None:
        path = self.path
        with self._lock:
            self._conn.execute("ATTACH DATABASE ? AS cache", (self.cache,))
            # freed space is zeroed in both files from the start: an updated row leaves no old copy behind
            self._conn.execute("PRAGMA main.secure_delete = ON")
            self._conn.execute("PRAGMA cache.secure_delete = ON")
            if path != ":memory:":
                self._conn.execute("PRAGMA main.journal_mode = WAL")
            if self.cache != ":memory:":
                self._conn.execute("PRAGMA cache.journal_mode = WAL")
            columns = {r["name"] for r in self._conn.execute("PRAGMA main.table_info(audit)")}
            if columns and "hash" not in columns:
                self._conn.close()
                raise StoreError("its audit table predates the hash-chained audit log: keep the file as the old "
                                 "record and point console.db at a new one")
            self._conn.executescript(ACCOUNTS_SCHEMA + ";\n".join(AUDIT_DDL) + ";\n" + CACHE_SCHEMA)
            self._migrate()
            self._conn.execute("PRAGMA foreign_keys = ON")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error). Audit entries
        written in it go to the mirror just before COMMIT, under the database's write lock, so the
        mirror keeps ``seq`` order even with another process (``console adduser``) writing."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._unmirrored = []
            try:
                yield self._conn
                for entry in self._unmirrored:
                    self._mirror(entry)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                self._unmirrored = []
            self._conn.execute("COMMIT")

    def _all(self, sql: str, args=()) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, args).fetchall()]

    def _one(self, sql: str, args=()) -> Optional[dict]:
        with self._lock:
            row = self._conn.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    def add_user(self, username: str, pw_hash: str, role: str, now: float, replace: bool = False) -> str:
        check_new_user(username, role)
        with self.tx() as conn:
            exists = conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone()
            if exists and not replace:
                raise user_exists_error(username)
            if exists:
                conn.execute("UPDATE users SET pw_hash = ?, role = ? WHERE username = ?", (pw_hash, role, username))
                conn.execute("DELETE FROM sessions WHERE username = ?", (username,))
                action = "user_changed"
            else:
                conn.execute("INSERT INTO users (username, pw_hash, role, created_at) VALUES (?, ?, ?, ?)",
                             (username, pw_hash, role, iso_at(now)))
                action = "user_added"
            self._audit_in(conn, now, username, action, None)
        return action

    def get_user(self, username: str) -> Optional[dict]:
        return self._one("SELECT username, pw_hash, role, created_at FROM users WHERE username = ?", (username,))

    def set_password_hash(self, username: str, pw_hash: str) -> None:
        with self.tx() as conn:
            conn.execute("UPDATE users SET pw_hash = ? WHERE username = ?", (pw_hash, username))

    def users(self) -> list[dict]:
        return self._all("SELECT username, role, created_at FROM users ORDER BY username")

    def user_count(self) -> int:
        return self._one("SELECT count(*) AS n FROM users")["n"]

    def store_report(self, report: dict, signature_status: str, signature_note: Optional[str],
                     key_fingerprint: Optional[str], now: float) -> str:
        rid = check_report_id(report.get("report_id"))
        check_signature_status(signature_status)
        body = json.dumps(report, sort_keys=True)
        digest = content_hash(report)
        columns = (int(bool(report.get("urgent"))), report["created_at"], report.get("detection_type"),
                   report.get("detector"), report.get("provider_id"))
        with self.tx() as conn:
            row = conn.execute("SELECT * FROM cache.reports WHERE report_id = ?", (rid,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO cache.reports (report_id, report_json, urgent, created_at, detection_type, detector, "
                    "provider_id, signature_status, signature_note, ingested_at, version, content_hash, "
                    "key_fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                    (rid, body, *columns, signature_status, signature_note, iso_at(now), digest, key_fingerprint))
                return "added"
            if row["content_hash"] == digest:
                if row["key_fingerprint"] == key_fingerprint:
                    return "unchanged"
                conn.execute("UPDATE cache.reports SET signature_status = ?, signature_note = ?, key_fingerprint = ? "
                             "WHERE report_id = ?", (signature_status, signature_note, key_fingerprint, rid))
                self._audit_in(conn, now, None, "signature_rechecked", rid)
                return "rechecked"
            conn.execute("INSERT INTO cache.report_versions (report_id, version, content_hash, report_json, "
                         "ingested_at, signature_status) VALUES (?, ?, ?, ?, ?, ?)",
                         (rid, row["version"], row["content_hash"], row["report_json"], row["ingested_at"],
                          row["signature_status"]))
            status = "new" if row["status"] == "archived" else row["status"]
            conn.execute(
                "UPDATE cache.reports SET report_json = ?, urgent = ?, created_at = ?, detection_type = ?, detector = ?, "
                "provider_id = ?, signature_status = ?, signature_note = ?, ingested_at = ?, version = ?, "
                "content_hash = ?, key_fingerprint = ?, status = ? WHERE report_id = ?",
                (body, *columns, signature_status, signature_note, iso_at(now), row["version"] + 1, digest,
                 key_fingerprint, status, rid))
            self._audit_in(conn, now, None, "report_version", rid)
            return "new_version"

    def report_state(self, report_id: str) -> Optional[dict]:
        return self._one("SELECT version, content_hash, key_fingerprint, signature_status FROM cache.reports "
                         "WHERE report_id = ?", (report_id,))

    def report_versions(self, report_id: str) -> list[dict]:
        rows = self._all("SELECT version, content_hash, ingested_at, signature_status, report_json FROM "
                         "cache.report_versions WHERE report_id = ? UNION ALL SELECT version, content_hash, ingested_at, "
                         "signature_status, report_json FROM cache.reports WHERE report_id = ? ORDER BY version",
                         (report_id, report_id))
        for row in rows:
            row["report"] = json.loads(row.pop("report_json"))
        return rows

    def has_report(self, report_id: str) -> bool:
        return self._one("SELECT 1 AS x FROM reports WHERE report_id = ?", (report_id,)) is not None

    def get_report(self, report_id: str) -> Optional[dict]:
        row = self._one("SELECT * FROM reports WHERE report_id = ?", (report_id,))
        if row is not None:
            row["report"] = json.loads(row.pop("report_json"))
        return row

    @staticmethod
    def _where(filters: dict, with_status: bool = True) -> tuple[str, list]:
        clauses, args = [], []
        for column in ("detection_type", "detector", "provider_id"):
            value = filters.get(column)
            if value:
                clauses.append(f"{column} = ?")
                args.append(value)
        status = filters.get("status") if with_status else None
        if status == "open":
            clauses.append(f"status IN ({', '.join('?' * len(OPEN_STATUSES))})")
            args += list(OPEN_STATUSES)
        elif status in STATUSES:
            clauses.append("status = ?")
            args.append(status)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def queue(self, filters: dict, limit: int = 500) -> tuple[list[dict], int]:
        where, args = self._where(filters)
        total = self._one(f"SELECT count(*) AS n FROM reports{where}", args)["n"]
        rows = self._all(
            f"SELECT * FROM reports{where} {_QUEUE_ORDER} LIMIT ?", args + [limit]
        )
        for row in rows:
            row["report"] = json.loads(row.pop("report_json"))
        return rows, total

    def queue_ids(self, status: str = "open") -> list[str]:
        where, args = self._where({"status": status})
        return [r["report_id"] for r in
                self._all(f"SELECT report_id FROM reports{where} {_QUEUE_ORDER}", args)]

    def counts(self, filters: dict) -> dict[str, int]:
        where, args = self._where(filters, with_status=False)
        got = {r["status"]: r["n"] for r in
               self._all(f"SELECT status, count(*) AS n FROM reports{where} GROUP BY status", args)}
        out = {s: got.get(s, 0) for s in STATUSES}
        out["open"] = sum(out[s] for s in OPEN_STATUSES)
        out["all"] = sum(got.values())
        return out

    def facets(self) -> dict[str, list[str]]:
        out = {}
        for column in ("detection_type", "detector", "provider_id"):
            out[column] = [r["v"] for r in self._all(
                f"SELECT DISTINCT {column} AS v FROM reports WHERE {column} IS NOT NULL ORDER BY v")]
        return out

    def mark_in_review(self, report_id: str) -> None:
        with self.tx() as conn:
            conn.execute("UPDATE cache.reports SET status = 'in_review' WHERE report_id = ? AND status = 'new'",
                         (report_id,))

    @staticmethod
    def _holder_other(conn: sqlite3.Connection, rid: str, user: str, stale_before: Optional[float]) -> None:
        """Raise when someone other than ``user`` holds ``rid`` (a claim made since ``stale_before``)."""
        if stale_before is None:
            return
        row = conn.execute("SELECT claimed_by, claimed_at FROM cache.reports WHERE report_id = ?", (rid,)).fetchone()
        holder = claim_holder(dict(row) if row else None, stale_before)
        if holder is not None and holder != user:
            raise held_by_other_error(holder)

    def claim(self, report_id: str, user: str, now: float, stale_before: float) -> Optional[str]:
        rid = check_report_id(report_id)
        check_username(user)
        with self.tx() as conn:
            row = conn.execute("SELECT status, claimed_by, claimed_at FROM cache.reports WHERE report_id = ?",
                               (rid,)).fetchone()
            if row is None or row["status"] not in OPEN_STATUSES:
                return None
            holder = claim_holder(dict(row), stale_before)
            if holder is not None and holder != user:
                return holder
            conn.execute("UPDATE cache.reports SET claimed_by = ?, claimed_at = ?, status = CASE status WHEN 'new' "
                         "THEN 'in_review' ELSE status END WHERE report_id = ?", (user, now, rid))
            if holder is None:
                if row["claimed_by"]:
                    self._audit_in(conn, now, None, "claim_expired", rid)
                self._audit_in(conn, now, user, "claim", rid)
            return user

    def release(self, report_id: str, user: str, now: float, force: bool = False) -> bool:
        rid = check_report_id(report_id)
        with self.tx() as conn:
            row = conn.execute("SELECT claimed_by FROM cache.reports WHERE report_id = ?", (rid,)).fetchone()
            if row is None or not row["claimed_by"] or (row["claimed_by"] != user and not force):
                return False
            conn.execute("UPDATE cache.reports SET claimed_by = NULL, claimed_at = NULL, status = CASE status "
                         "WHEN 'in_review' THEN 'new' ELSE status END WHERE report_id = ?", (rid,))
            self._audit_in(conn, now, user, "claim_released", rid)
            return True

    def expire_claims(self, stale_before: float, now: float) -> list[str]:
        with self.tx() as conn:
            gone = [r["report_id"] for r in conn.execute(
                "SELECT report_id FROM cache.reports WHERE claimed_by IS NOT NULL AND claimed_at < ? ORDER BY report_id",
                (stale_before,))]
            for rid in gone:
                conn.execute("UPDATE cache.reports SET claimed_by = NULL, claimed_at = NULL, status = CASE status "
                             "WHEN 'in_review' THEN 'new' ELSE status END WHERE report_id = ?", (rid,))
                self._audit_in(conn, now, None, "claim_expired", rid)
        return gone

    def archive(self, report_id: str, user: str, now: float, stale_before: float) -> None:
        rid = check_report_id(report_id)
        with self.tx() as conn:
            row = conn.execute("SELECT status FROM cache.reports WHERE report_id = ?", (rid,)).fetchone()
            if row is None:
                raise StoreError("no such report")
            if row["status"] not in OPEN_STATUSES or conn.execute(
                    "SELECT 1 FROM cache.verdicts WHERE report_id = ?", (rid,)).fetchone():
                raise StoreError("only an open report without a verdict can be archived")
            self._holder_other(conn, rid, user, stale_before)
            conn.execute("UPDATE cache.reports SET status = 'archived', claimed_by = NULL, claimed_at = NULL "
                         "WHERE report_id = ?", (rid,))
            self._audit_in(conn, now, user, "archive", rid)

    def verdicts(self, report_id: str) -> list[dict]:
        return self._all("SELECT * FROM verdicts WHERE report_id = ? ORDER BY id", (report_id,))

    def latest_verdict(self, report_id: str) -> Optional[dict]:
        return self._one("SELECT * FROM verdicts WHERE report_id = ? ORDER BY id DESC LIMIT 1", (report_id,))

    def add_verdict(self, verdict: dict, note: Optional[str], decided_by: str, supersedes: Optional[int],
                    message: dict, now: float, action: str, stale_before: Optional[float] = None,
                    version: Optional[int] = None) -> int:
        rid = check_report_id(verdict["report_id"])
        with self.tx() as conn:
            report = conn.execute("SELECT version FROM cache.reports WHERE report_id = ?", (rid,)).fetchone()
            if report is None:
                raise StoreError("no such report")
            latest = conn.execute("SELECT id FROM verdicts WHERE report_id = ? ORDER BY id DESC LIMIT 1",
                                  (rid,)).fetchone()
            if (latest["id"] if latest else None) != supersedes:
                raise StoreError("the verdict changed in the meantime; reload the report")
            if version is not None and version != report["version"]:
                raise StoreError(f"the provider sent a changed report (now version {report['version']}) since you "
                                 "opened it; reload the report")
            self._holder_other(conn, rid, decided_by, stale_before)
            cur = conn.execute(
                "INSERT INTO verdicts (report_id, verdict, reason, note, delay_notification, delay_until, decided_at, "
                "decided_by, supersedes, report_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rid, verdict["verdict"], verdict["reason"], note, int(bool(verdict["delay_notification"])),
                 verdict.get("delay_until"), verdict["decided_at"], decided_by, supersedes, report["version"]),
            )
            conn.execute("UPDATE cache.reports SET status = ?, claimed_by = NULL, claimed_at = NULL "
                         "WHERE report_id = ?", (verdict["verdict"], rid))
            conn.execute("INSERT INTO outbox (kind, report_id, payload, created_at) VALUES ('verdict', ?, ?, ?)",
                         (rid, json.dumps(message, sort_keys=True), iso_at(now)))
            self._audit_in(conn, now, decided_by, action, rid)
        return cur.lastrowid

    def info_requests(self, report_id: str) -> list[dict]:
        rows = self._all("SELECT * FROM info_requests WHERE report_id = ? ORDER BY id", (report_id,))
        for row in rows:
            row["missing"] = json.loads(row["missing"])
        return rows

    def add_info_request(self, message: dict, requested_by: str, now: float,
                         stale_before: Optional[float] = None) -> None:
        rid = check_report_id(message["report_id"])
        with self.tx() as conn:
            if conn.execute("SELECT 1 FROM verdicts WHERE report_id = ?", (rid,)).fetchone():
                raise StoreError("this report has a verdict already")
            self._holder_other(conn, rid, requested_by, stale_before)
            conn.execute(
                "INSERT INTO info_requests (request_id, report_id, missing, note, requested_at, requested_by) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (message["request_id"], rid, json.dumps(message["missing"]), message.get("note"),
                 message["requested_at"], requested_by),
            )
            conn.execute("UPDATE cache.reports SET status = 'info_requested', claimed_by = NULL, claimed_at = NULL "
                         "WHERE report_id = ?", (rid,))
            conn.execute("INSERT INTO outbox (kind, report_id, payload, created_at) VALUES ('info_request', ?, ?, ?)",
                         (rid, json.dumps(message, sort_keys=True), iso_at(now)))
            self._audit_in(conn, now, requested_by, "request_info", rid)

    def pending_outbox(self) -> list[dict]:
        rows = self._all("SELECT * FROM outbox WHERE file_done = 0 OR topic_done = 0 ORDER BY id")
        for row in rows:
            row["payload"] = json.loads(row["payload"])
        return rows

    def outbox_for(self, report_id: str) -> list[dict]:
        return self._all("SELECT id, kind, created_at, file_done, topic_done, attempts, last_error FROM outbox "
                         "WHERE report_id = ? ORDER BY id", (report_id,))

    def outbox_progress(self, entry_id: int, file_done: bool, topic_done: bool, error: Optional[str]) -> None:
        with self.tx() as conn:
            conn.execute("UPDATE outbox SET file_done = ?, topic_done = ?, attempts = attempts + 1, last_error = ? "
                         "WHERE id = ?", (int(file_done), int(topic_done), error, entry_id))

    def create_session(self, token_hash: str, username: str, csrf: str, now: float) -> None:
        with self.tx() as conn:
            conn.execute("INSERT INTO sessions (token_hash, username, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?)",
                         (token_hash, username, csrf, now, now))

    def get_session(self, token_hash: str) -> Optional[dict]:
        return self._one("SELECT s.*, u.role FROM sessions s JOIN users u ON u.username = s.username "
                         "WHERE s.token_hash = ?", (token_hash,))

    def touch_session(self, token_hash: str, now: float) -> None:
        with self.tx() as conn:
            conn.execute("UPDATE sessions SET last_seen = ? WHERE token_hash = ?", (now, token_hash))

    def delete_session(self, token_hash: str) -> None:
        with self.tx() as conn:
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    def purge_sessions(self, idle_before: float, created_before: float) -> int:
        with self.tx() as conn:
            return conn.execute("DELETE FROM sessions WHERE last_seen < ? OR created_at < ?",
                                (idle_before, created_before)).rowcount

    def purge_reports(self, due) -> list[str]:
        """Deleted pages are zeroed (``secure_delete``) and the WAL truncated afterwards, so no copy
        stays in the file. The append-only triggers of the verdicts and requests are dropped and
        re-created inside the one transaction: only this purge deletes from them."""
        with self._lock:
            self._conn.execute("PRAGMA secure_delete = ON")
            self._conn.execute("PRAGMA cache.secure_delete = ON")  # the reports live in the cache file
            with self.tx() as conn:
                rows = conn.execute("SELECT report_id, created_at, ingested_at FROM reports").fetchall()
                gone = sorted(r["report_id"] for r in rows if due(r["report_id"], r["created_at"], r["ingested_at"]))
                if gone:
                    guards = conn.execute("SELECT name, sql FROM cache.sqlite_master WHERE type = 'trigger' AND "
                                          "tbl_name IN ('verdicts', 'info_requests', 'outbox', 'reports', "
                                          "'report_versions')").fetchall()
                    for guard in guards:
                        conn.execute(f'DROP TRIGGER cache."{guard["name"]}"')
                    for rid in gone:
                        for table in ("outbox", "info_requests", "verdicts", "report_versions", "reports"):
                            conn.execute(f"DELETE FROM cache.{table} WHERE report_id = ?", (rid,))
                    for guard in guards:
                        conn.execute(guard["sql"].replace("CREATE TRIGGER ", "CREATE TRIGGER cache.", 1))
            if gone and self.path != ":memory:":
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if gone and self.cache != ":memory:":
                self._conn.execute("PRAGMA cache.wal_checkpoint(TRUNCATE)")
                self._conn.execute("VACUUM cache")  # rewrites the file: no stale copy in any page's free space
                self._conn.execute("PRAGMA cache.wal_checkpoint(TRUNCATE)")
        return gone

    def reset_cache(self, now: float, user: Optional[str] = None) -> dict:
        """The cache's tables are dropped and made again (deleted pages zeroed, the file vacuumed);
        the accounts file gets only the ``cache_reset`` audit entry."""
        with self._lock:
            pending = self._one("SELECT count(*) AS n FROM cache.outbox WHERE file_done = 0 OR topic_done = 0")["n"]
            if pending:
                raise StoreError(f"{pending} verdict(s) or request(s) are not delivered yet: start the console so "
                                 "the outbox delivers them, then reset the cache")
            counts = {table: self._one(f"SELECT count(*) AS n FROM cache.{table}")["n"] for table in CACHE_TABLES}
            self._conn.execute("PRAGMA cache.secure_delete = ON")
            with self.tx() as conn:
                for table in reversed(CACHE_TABLES):
                    conn.execute(f"DROP TABLE IF EXISTS cache.{table}")
                conn.execute("DELETE FROM cache.sqlite_sequence")
                for statement in _statements(CACHE_SCHEMA):
                    conn.execute(statement)
                self._audit_in(conn, now, user, "cache_reset", None)
            if self.cache != ":memory:":
                self._conn.execute("VACUUM cache")
                self._conn.execute("PRAGMA cache.wal_checkpoint(TRUNCATE)")
        return counts

    def add_exposure(self, token_hash: str) -> dict:
        with self.tx() as conn:
            conn.execute("UPDATE sessions SET exposures = exposures + 1 WHERE token_hash = ?", (token_hash,))
            row = conn.execute("SELECT exposures, break_base FROM sessions WHERE token_hash = ?", (token_hash,)).fetchone()
        return dict(row)

    def acknowledge_break(self, token_hash: str) -> None:
        with self.tx() as conn:
            conn.execute("UPDATE sessions SET break_base = exposures WHERE token_hash = ?", (token_hash,))

    def _audit_in(self, conn: sqlite3.Connection, now: float, user: Optional[str], action: str,
                  report_id: Optional[str], detail: Optional[str] = None) -> dict:
        """Insert the next entry of the chain (inside :meth:`tx`); it is mirrored before COMMIT."""
        record = audit_record(now, user, action, report_id, detail)
        last = conn.execute("SELECT seq, hash FROM main.audit ORDER BY seq DESC LIMIT 1").fetchone()
        issued = conn.execute("SELECT seq FROM main.sqlite_sequence WHERE name = 'audit'").fetchone()
        entry = next_entry(record, dict(last) if last else None, issued["seq"] if issued else 0)
        conn.execute("INSERT INTO audit (seq, at, user, action, report_id, detail, prev_hash, hash) VALUES "
                     "(:seq, :at, :user, :action, :report_id, :detail, :prev_hash, :hash)", entry)
        self._unmirrored.append(entry)
        return entry

    def audit(self, now: float, user: Optional[str], action: str, report_id: Optional[str] = None,
              detail: Optional[str] = None) -> dict:
        with self.tx() as conn:
            return dict(self._audit_in(conn, now, user, action, report_id, detail))

    def audit_chain(self) -> tuple[list[dict], Optional[int]]:
        with self._lock:
            rows = [dict(r) for r in self._conn.execute(
                "SELECT seq, at, user, action, report_id, detail, prev_hash, hash FROM audit ORDER BY seq")]
            issued = self._conn.execute("SELECT seq FROM main.sqlite_sequence WHERE name = 'audit'").fetchone()
        return rows, (issued["seq"] if issued else 0)

    def audit_entries(self, limit: int = 500, report_id: Optional[str] = None) -> list[dict]:
        if report_id:
            return self._all("SELECT * FROM audit WHERE report_id = ? ORDER BY seq DESC LIMIT ?", (report_id, limit))
        return self._all("SELECT * FROM audit ORDER BY seq DESC LIMIT ?", (limit,))

    def execute(self, sql: str, args=()) -> None:
        """Run one statement (tests use it to show that the audit log refuses changes)."""
        with self._lock:
            self._conn.execute(sql, args)
