"""The SQL of the console's two SQLite files (:mod:`.sqlite`): the accounts file's tables (``users``,
``sessions``) and its append-only ``audit`` table, the report cache's tables with their append-only
triggers, and the migration of a database of the earlier single-file layout
(:class:`SchemaMigration`, which :class:`~csadetect.console.storage.sqlite.SQLiteConsoleStore` runs
when it opens one).
"""
from __future__ import annotations

import json

from csadetect.console.storage.interface import content_hash

ACCOUNTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS main.users (
    username    TEXT PRIMARY KEY,
    pw_hash     TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('reviewer', 'supervisor')),
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS main.sessions (
    token_hash  TEXT PRIMARY KEY,
    username    TEXT NOT NULL REFERENCES users (username),
    csrf        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    last_seen   REAL NOT NULL,
    exposures   INTEGER NOT NULL DEFAULT 0,
    break_base  INTEGER NOT NULL DEFAULT 0
);
"""
AUDIT_DDL = (  # the audit table and its guards, one statement each
    """CREATE TABLE IF NOT EXISTS main.audit (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    user      TEXT,
    action    TEXT NOT NULL,
    report_id TEXT,
    detail    TEXT,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE
)""",
    "CREATE TRIGGER IF NOT EXISTS main.audit_no_update BEFORE UPDATE ON audit "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS main.audit_no_delete BEFORE DELETE ON audit "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
)

CACHE_TABLES = ("reports", "report_versions", "verdicts", "info_requests", "outbox")
CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache.reports (
    report_id        TEXT PRIMARY KEY,
    report_json      TEXT NOT NULL,
    urgent           INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    detection_type   TEXT,
    detector         TEXT,
    provider_id      TEXT,
    status           TEXT NOT NULL DEFAULT 'new'
                     CHECK (status IN ('new', 'in_review', 'info_requested', 'confirmed', 'manifestly_unfounded',
                                       'archived')),
    signature_status TEXT NOT NULL CHECK (signature_status IN ('verified', 'invalid', 'not_checked')),
    signature_note   TEXT,
    ingested_at      TEXT NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1,
    content_hash     TEXT NOT NULL,
    key_fingerprint  TEXT,
    claimed_by       TEXT,
    claimed_at       REAL
);
CREATE INDEX IF NOT EXISTS cache.reports_queue ON reports (urgent DESC, created_at, report_id);
CREATE TABLE IF NOT EXISTS cache.report_versions (
    report_id        TEXT NOT NULL REFERENCES reports (report_id),
    version          INTEGER NOT NULL,
    content_hash     TEXT NOT NULL,
    report_json      TEXT NOT NULL,
    ingested_at      TEXT NOT NULL,
    signature_status TEXT NOT NULL,
    PRIMARY KEY (report_id, version)
);
CREATE TABLE IF NOT EXISTS cache.verdicts (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id          TEXT NOT NULL REFERENCES reports (report_id),
    verdict            TEXT NOT NULL CHECK (verdict IN ('confirmed', 'manifestly_unfounded')),
    reason             TEXT NOT NULL,
    note               TEXT,
    delay_notification INTEGER NOT NULL,
    delay_until        TEXT,
    decided_at         TEXT NOT NULL,
    decided_by         TEXT NOT NULL,
    supersedes         INTEGER REFERENCES verdicts (id),
    report_version     INTEGER
);
CREATE INDEX IF NOT EXISTS cache.verdicts_report ON verdicts (report_id, id);
CREATE TABLE IF NOT EXISTS cache.info_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id   TEXT NOT NULL UNIQUE,
    report_id    TEXT NOT NULL REFERENCES reports (report_id),
    missing      TEXT NOT NULL,
    note         TEXT,
    requested_at TEXT NOT NULL,
    requested_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cache.outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('verdict', 'info_request')),
    report_id  TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    file_done  INTEGER NOT NULL DEFAULT 0,
    topic_done INTEGER NOT NULL DEFAULT 0,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TRIGGER IF NOT EXISTS cache.verdicts_no_update BEFORE UPDATE ON verdicts
BEGIN SELECT RAISE(ABORT, 'the verdict history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS cache.verdicts_no_delete BEFORE DELETE ON verdicts
BEGIN SELECT RAISE(ABORT, 'the verdict history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS cache.info_requests_no_update BEFORE UPDATE ON info_requests
BEGIN SELECT RAISE(ABORT, 'requests for information are append-only'); END;
CREATE TRIGGER IF NOT EXISTS cache.info_requests_no_delete BEFORE DELETE ON info_requests
BEGIN SELECT RAISE(ABORT, 'requests for information are append-only'); END;
CREATE TRIGGER IF NOT EXISTS cache.report_versions_no_update BEFORE UPDATE ON report_versions
BEGIN SELECT RAISE(ABORT, 'report versions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS cache.report_versions_no_delete BEFORE DELETE ON report_versions
BEGIN SELECT RAISE(ABORT, 'report versions are append-only'); END;
"""
AUDIT_TRIGGERS = ("audit_no_update", "audit_no_delete")


def _statements(script: str) -> list[str]:
    """The statements of a schema script, one each (a trigger's body kept whole)."""
    out, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and (not text.startswith("CREATE TRIGGER") or text.endswith("END;")):
            out.append(text)
            current = []
    return out


class SchemaMigration:
    """The migration methods of :class:`~csadetect.console.storage.sqlite.SQLiteConsoleStore` (a
    mixin: they use its ``_conn`` and ``tx()``)."""

    def _tables(self, schema: str) -> set[str]:
        return {r["name"] for r in self._conn.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")}

    def _migrate(self) -> None:
        """Bring a database of the single-file layout up to date, losing nothing: its reports,
        verdicts, requests and outbox move to the cache file (copied and committed first, then
        dropped from the accounts file, so a crash in between only repeats the copy), and its
        audit table loses the list of actions the database used to check (Python checks them),
        every entry kept as it was, its ``seq`` counter included."""
        old = self._tables("main") & set(CACHE_TABLES)
        if old:
            with self.tx() as conn:
                if "reports" in old:
                    for row in conn.execute("SELECT * FROM main.reports").fetchall():
                        row = dict(row)
                        conn.execute(
                            "INSERT OR IGNORE INTO cache.reports (report_id, report_json, urgent, created_at, "
                            "detection_type, detector, provider_id, status, signature_status, signature_note, "
                            "ingested_at, version, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
                            (row["report_id"], row["report_json"], row["urgent"], row["created_at"],
                             row["detection_type"], row["detector"], row["provider_id"], row["status"],
                             row["signature_status"], row["signature_note"], row["ingested_at"],
                             content_hash(json.loads(row["report_json"]))))
                if "verdicts" in old:
                    conn.execute("INSERT OR IGNORE INTO cache.verdicts (id, report_id, verdict, reason, note, "
                                 "delay_notification, delay_until, decided_at, decided_by, supersedes, report_version) "
                                 "SELECT id, report_id, verdict, reason, note, delay_notification, delay_until, "
                                 "decided_at, decided_by, supersedes, 1 FROM main.verdicts ORDER BY id")
                if "info_requests" in old:
                    conn.execute("INSERT OR IGNORE INTO cache.info_requests SELECT * FROM main.info_requests ORDER BY id")
                if "outbox" in old:
                    conn.execute("INSERT OR IGNORE INTO cache.outbox SELECT * FROM main.outbox ORDER BY id")
            with self.tx() as conn:
                for table in ("outbox", "info_requests", "verdicts", "reports"):
                    if table in old:
                        conn.execute(f"DROP TABLE main.{table}")  # drops its triggers and indexes too
        audit_sql = self._conn.execute("SELECT sql FROM main.sqlite_master WHERE name = 'audit'").fetchone()
        if audit_sql and "CHECK (action IN" in audit_sql["sql"]:
            with self.tx() as conn:
                issued = conn.execute("SELECT seq FROM main.sqlite_sequence WHERE name = 'audit'").fetchone()
                for trigger in AUDIT_TRIGGERS:
                    conn.execute(f"DROP TRIGGER IF EXISTS main.{trigger}")
                conn.execute("ALTER TABLE main.audit RENAME TO audit_checked")
                for statement in AUDIT_DDL:  # (executescript would COMMIT: one by one)
                    conn.execute(statement)
                conn.execute("INSERT INTO main.audit (seq, at, user, action, report_id, detail, prev_hash, hash) "
                             "SELECT seq, at, user, action, report_id, detail, prev_hash, hash FROM main.audit_checked "
                             "ORDER BY seq")
                conn.execute("DROP TABLE main.audit_checked")
                if issued is not None:
                    conn.execute("UPDATE main.sqlite_sequence SET seq = max(seq, ?) WHERE name = 'audit'",
                                 (issued["seq"],))
