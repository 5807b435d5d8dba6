"""The console's store stays true (issue 13 §7): report versions and signature re-checks, claims
with expiry and release, archiving, the report cache apart from the staff accounts and the audit
log (``reset_cache``), the migration of a single-file database, and ``csadetect console
reset-cache`` / ``--run``. The contract tests run on both implementations of the storage interface.

Every report here is benign and synthetic (generated pictures, a synthetic chat)."""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
from pathlib import Path

import pytest

from csadetect.cli.console import config_from_args
from csadetect.cli.main import main
from csadetect.config.settings import ConfigError
from csadetect.console.ingest import ReportIngest
from csadetect.console.storage import StoreError, cache_path, content_hash
from csadetect.console.storage import chain
from csadetect.console.storage.memory import MemoryConsoleStore
from csadetect.console.storage.sqlite import SQLiteConsoleStore
from csadetect.core import keys as signing
from tests.conftest import make_report_keys
from tests.console_helpers import T0, craft_reports

MINUTE = 60.0


@pytest.fixture(scope="module")
def two_demos(tmp_path_factory):
    """The same reports (same ids) made twice with fresh keys, as two ``make demo`` runs make them."""
    base = tmp_path_factory.mktemp("two-demos")
    out = {}
    for name in ("first", "second"):
        paths = make_report_keys(base / name / "keys")["paths"]
        out[name] = {"paths": paths, "reports": craft_reports(paths, base / name / "reports"),
                     "dir": base / name / "reports"}
    return out


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path):
    audit_log = str(tmp_path / "audit.jsonl")
    s = (SQLiteConsoleStore(str(tmp_path / "c.db"), audit_log) if request.param == "sqlite"
         else MemoryConsoleStore(audit_log))
    s.add_user("rita", "h", "reviewer", T0)
    s.add_user("vera", "h", "reviewer", T0)
    yield s
    s.close()


def actions(store) -> list[tuple]:
    return [(e["action"], e["user"], e["report_id"]) for e in reversed(store.audit_entries())][2:]


def report(two_demos, demo: str, name: str) -> dict:
    return two_demos[demo]["reports"][name]["report"]


# ------------------------------------------------------------------------- contract


def test_store_contract_versions_and_rechecks(store, two_demos):
    first, second = report(two_demos, "first", "known"), report(two_demos, "second", "known")
    rid = first["report_id"]
    assert rid == second["report_id"] and content_hash(first) != content_hash(second)
    assert store.store_report(first, "not_checked", None, None, T0) == "added"
    assert store.store_report(first, "not_checked", None, None, T0 + 1) == "unchanged"
    assert store.report_state(rid) == {"version": 1, "content_hash": content_hash(first), "key_fingerprint": None,
                                       "signature_status": "not_checked"}
    # the same body, checked with a key now: re-checked in place, audited
    assert store.store_report(first, "verified", None, "k1", T0 + 2) == "rechecked"
    assert store.get_report(rid)["signature_status"] == "verified" and store.get_report(rid)["key_fingerprint"] == "k1"
    assert store.store_report(first, "invalid", "wrong key", "k2", T0 + 3) == "rechecked"
    assert store.get_report(rid)["signature_note"] == "wrong key"
    # a decision on version 1, then the provider sends a changed body with the same id: version 2
    v = {"report_id": rid, "verdict": "confirmed", "reason": "matches_known_indicator",
         "decided_at": "2026-11-28T12:00:00Z", "delay_notification": False}
    store.add_verdict(dict(v), None, "rita", None, v, T0 + 4, "verdict")
    assert store.store_report(second, "verified", None, "k2", T0 + 5) == "new_version"
    row = store.get_report(rid)
    assert (row["version"], row["report"], row["status"]) == (2, second, "confirmed")  # the review state stays
    assert [(x["version"], x["report"], x["signature_status"]) for x in store.report_versions(rid)] == [
        (1, first, "invalid"), (2, second, "verified")]
    assert [x["report_version"] for x in store.verdicts(rid)] == [1]  # the verdict names the version it was made on
    assert store.store_report(second, "verified", None, "k2", T0 + 6) == "unchanged"
    with pytest.raises(StoreError, match="changed report"):  # a decision on the page of version 1
        store.add_verdict(dict(v), None, "rita", store.latest_verdict(rid)["id"], v, T0 + 7, "verdict_changed",
                          version=1)
    assert actions(store) == [("signature_rechecked", None, rid), ("signature_rechecked", None, rid),
                              ("verdict", "rita", rid), ("report_version", None, rid)]
    assert store.add_report(report(two_demos, "first", "new"), "verified", None, T0)  # the short form still works
    assert not store.add_report(report(two_demos, "first", "new"), "verified", None, T0)


def test_store_contract_claims(store, two_demos):
    rid = report(two_demos, "first", "known")["report_id"]
    other = report(two_demos, "first", "new")["report_id"]
    for name in ("known", "new"):
        store.add_report(report(two_demos, "first", name), "verified", None, T0)
    stale = lambda now: now - 30 * MINUTE  # noqa: E731
    assert store.claim(rid, "rita", T0, stale(T0)) == "rita"
    row = store.get_report(rid)
    assert (row["status"], row["claimed_by"], row["claimed_at"]) == ("in_review", "rita", T0)
    assert store.claim(rid, "vera", T0 + MINUTE, stale(T0 + MINUTE)) == "rita"  # vera sees who holds it
    assert store.claim(rid, "rita", T0 + 2 * MINUTE, stale(T0 + 2 * MINUTE)) == "rita"  # renewed, not audited again
    assert store.get_report(rid)["claimed_at"] == T0 + 2 * MINUTE
    v = {"report_id": rid, "verdict": "manifestly_unfounded", "reason": "wrong_match",
         "decided_at": "2026-11-28T12:00:00Z", "delay_notification": False}
    with pytest.raises(StoreError, match="rita is reviewing"):
        store.add_verdict(dict(v), None, "vera", None, v, T0 + 3 * MINUTE, "verdict", stale_before=stale(T0 + 3 * MINUTE))
    request = {"request_id": "c" * 32, "report_id": rid, "provider_id": "demo-provider", "missing": ["device"],
               "note": None, "requested_at": "2026-11-28T12:00:00Z"}
    with pytest.raises(StoreError, match="rita is reviewing"):
        store.add_info_request(request, "vera", T0 + 3 * MINUTE, stale_before=stale(T0 + 3 * MINUTE))
    with pytest.raises(StoreError, match="rita is reviewing"):
        store.archive(rid, "vera", T0 + 3 * MINUTE, stale(T0 + 3 * MINUTE))
    assert not store.release(rid, "vera", T0 + 3 * MINUTE)  # not hers
    # 31 minutes after rita's last look the claim is stale: vera takes it (the old one expires, audited)
    later = T0 + 33 * MINUTE
    assert store.claim(rid, "vera", later, stale(later)) == "vera"
    assert store.release(rid, "vera", later + 1)
    assert (store.get_report(rid)["status"], store.get_report(rid)["claimed_by"]) == ("new", None)
    # expiry in the background; a supervisor's forced release
    store.claim(rid, "rita", later + 2, stale(later + 2))
    store.claim(other, "vera", later + 40 * MINUTE, stale(later + 40 * MINUTE))
    assert store.expire_claims(stale(later + 40 * MINUTE), later + 40 * MINUTE) == [rid]
    assert store.release(other, "sam", later + 41 * MINUTE, force=True)
    # a decision ends the claim; a closed report cannot be claimed
    store.claim(rid, "rita", later + 42 * MINUTE, stale(later + 42 * MINUTE))
    store.add_verdict(dict(v), None, "rita", None, v, later + 43 * MINUTE, "verdict",
                      stale_before=stale(later + 43 * MINUTE))
    assert store.get_report(rid)["claimed_by"] is None
    assert store.claim(rid, "vera", later + 44 * MINUTE, stale(later + 44 * MINUTE)) is None
    assert actions(store) == [
        ("claim", "rita", rid), ("claim_expired", None, rid), ("claim", "vera", rid), ("claim_released", "vera", rid),
        ("claim", "rita", rid), ("claim", "vera", other), ("claim_expired", None, rid),
        ("claim_released", "sam", other), ("claim", "rita", rid), ("verdict", "rita", rid)]


def test_store_contract_archive_and_reset_cache(store, two_demos, tmp_path):
    known, new = (report(two_demos, "first", n) for n in ("known", "new"))
    for r in (known, new):
        store.add_report(r, "verified", None, T0)
    store.archive(known["report_id"], "rita", T0, T0 - 1800)
    assert store.get_report(known["report_id"])["status"] == "archived"
    assert known["report_id"] not in store.queue_ids("open") and store.queue_ids("archived") == [known["report_id"]]
    assert store.counts({})["archived"] == 1 and store.has_report(known["report_id"])  # kept, not deleted
    with pytest.raises(StoreError, match="open report without a verdict"):
        store.archive(known["report_id"], "rita", T0, T0 - 1800)
    # a new version (re-sealed for the right key) puts it back in the queue
    assert store.store_report(report(two_demos, "second", "known"), "verified", None, None, T0 + 1) == "new_version"
    assert store.get_report(known["report_id"])["status"] == "new"
    v = {"report_id": new["report_id"], "verdict": "confirmed", "reason": "new_material_confirmed",
         "decided_at": "2026-11-28T12:00:00Z", "delay_notification": False}
    store.add_verdict(dict(v), None, "rita", None, v, T0 + 2, "verdict")
    with pytest.raises(StoreError, match="not delivered yet"):  # nothing decided is lost
        store.reset_cache(T0 + 3)
    store.outbox_progress(store.pending_outbox()[0]["id"], True, True, None)
    store.create_session("tok", "rita", "csrf", T0)
    assert store.reset_cache(T0 + 4, "rita") == {"reports": 2, "report_versions": 1, "verdicts": 1,
                                                 "info_requests": 0, "outbox": 1}
    assert store.queue_ids("all") == [] and store.verdicts(new["report_id"]) == [] and not store.has_report(new["report_id"])
    assert [u["username"] for u in store.users()] == ["rita", "vera"] and store.get_session("tok")["username"] == "rita"
    entries, issued = store.audit_chain()
    assert entries[-1]["action"] == "cache_reset" and chain.verify(entries, issued, str(tmp_path / "audit.jsonl"))[0] is None
    assert store.store_report(new, "verified", None, None, T0 + 5) == "added"  # read again from the store


# ------------------------------------------------------------------------- sqlite files


def test_accounts_and_cache_are_two_files_and_reset_keeps_the_accounts(tmp_path, two_demos):
    db = tmp_path / "centre" / "console.sqlite3"
    store = SQLiteConsoleStore(str(db), str(tmp_path / "audit.jsonl"))
    store.add_user("rita", "h", "reviewer", T0)
    store.add_report(report(two_demos, "first", "known"), "verified", None, T0)
    store.close()
    assert cache_path(str(db)) == str(db) + ".cache"
    tables = lambda path: {r[0] for r in sqlite3.connect(path).execute(  # noqa: E731
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"users", "sessions", "audit"} <= tables(db) and not tables(db) & {"reports", "verdicts", "outbox"}
    assert {"reports", "report_versions", "verdicts", "info_requests", "outbox"} <= tables(cache_path(str(db)))
    assert oct(db.stat().st_mode & 0o777) == oct(Path(cache_path(str(db))).stat().st_mode & 0o777) == "0o600"
    secret = report(two_demos, "first", "known")["account"]
    assert main(["console", "reset-cache", "--db", str(db), "--audit-log", str(tmp_path / "audit.jsonl")]) == 0
    assert secret.encode() not in Path(cache_path(str(db))).read_bytes()  # deleted pages zeroed, file vacuumed
    again = SQLiteConsoleStore(str(db), str(tmp_path / "audit.jsonl"))
    try:
        assert again.user_count() == 1 and again.queue_ids("all") == []
        assert [e["action"] for e in again.audit_entries()][:2] == ["cache_reset", "user_added"]
    finally:
        again.close()
    assert main(["console", "audit", "verify", "--db", str(db), "--audit-log", str(tmp_path / "audit.jsonl")]) == 0


# The single-file layout of the console's database before issue 13 (csadetect/console/storage/sqlite.py
# as it was): users, reports, verdicts, requests, outbox, sessions and the audit log in one file.
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username    TEXT PRIMARY KEY,
    pw_hash     TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('reviewer', 'supervisor')),
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    report_id        TEXT PRIMARY KEY,
    report_json      TEXT NOT NULL,
    urgent           INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    detection_type   TEXT,
    detector         TEXT,
    provider_id      TEXT,
    status           TEXT NOT NULL DEFAULT 'new'
                     CHECK (status IN ('new', 'in_review', 'info_requested', 'confirmed', 'manifestly_unfounded')),
    signature_status TEXT NOT NULL CHECK (signature_status IN ('verified', 'invalid', 'not_checked')),
    signature_note   TEXT,
    ingested_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_queue ON reports (urgent DESC, created_at, report_id);
CREATE TABLE IF NOT EXISTS verdicts (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id          TEXT NOT NULL REFERENCES reports (report_id),
    verdict            TEXT NOT NULL CHECK (verdict IN ('confirmed', 'manifestly_unfounded')),
    reason             TEXT NOT NULL,
    note               TEXT,
    delay_notification INTEGER NOT NULL,
    delay_until        TEXT,
    decided_at         TEXT NOT NULL,
    decided_by         TEXT NOT NULL,
    supersedes         INTEGER REFERENCES verdicts (id)
);
CREATE INDEX IF NOT EXISTS verdicts_report ON verdicts (report_id, id);
CREATE TABLE IF NOT EXISTS info_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id   TEXT NOT NULL UNIQUE,
    report_id    TEXT NOT NULL REFERENCES reports (report_id),
    missing      TEXT NOT NULL,
    note         TEXT,
    requested_at TEXT NOT NULL,
    requested_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
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
CREATE TABLE IF NOT EXISTS sessions (
    token_hash  TEXT PRIMARY KEY,
    username    TEXT NOT NULL REFERENCES users (username),
    csrf        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    last_seen   REAL NOT NULL,
    exposures   INTEGER NOT NULL DEFAULT 0,
    break_base  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS audit (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    user      TEXT,
    action    TEXT NOT NULL CHECK (action IN ('login', 'login_failed', 'login_blocked', 'logout', 'refused',
                                              'view_report', 'view_blurred', 'reveal_evidence', 'fetch_evidence',
                                              'verdict', 'verdict_changed', 'request_info', 'user_added',
                                              'user_changed')),
    report_id TEXT,
    detail    TEXT,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS verdicts_no_update BEFORE UPDATE ON verdicts
BEGIN SELECT RAISE(ABORT, 'the verdict history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS verdicts_no_delete BEFORE DELETE ON verdicts
BEGIN SELECT RAISE(ABORT, 'the verdict history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS info_requests_no_update BEFORE UPDATE ON info_requests
BEGIN SELECT RAISE(ABORT, 'requests for information are append-only'); END;
CREATE TRIGGER IF NOT EXISTS info_requests_no_delete BEFORE DELETE ON info_requests
BEGIN SELECT RAISE(ABORT, 'requests for information are append-only'); END;
"""


def _old_database(db: Path, mirror: Path, rid: str, body: dict) -> list[dict]:
    """A database of the old layout with a user, a decided report and a chained audit log (mirrored)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(OLD_SCHEMA)
    conn.execute("INSERT INTO users VALUES ('sam', 'argon-hash', 'supervisor', '2026-11-28T12:00:00Z')")
    conn.execute("INSERT INTO reports (report_id, report_json, urgent, created_at, detection_type, detector, provider_id, "
                 "status, signature_status, signature_note, ingested_at) VALUES (?, ?, 0, ?, 'known', 'known-hash', "
                 "'demo-provider', 'confirmed', 'verified', NULL, '2026-11-28T12:00:00Z')",
                 (rid, json.dumps(body, sort_keys=True), body["created_at"]))
    conn.execute("INSERT INTO verdicts (report_id, verdict, reason, note, delay_notification, decided_at, decided_by) "
                 "VALUES (?, 'confirmed', 'matches_known_indicator', 'seen', 0, '2026-11-28T12:00:00Z', 'sam')", (rid,))
    conn.execute("INSERT INTO outbox (kind, report_id, payload, created_at, file_done, topic_done) "
                 "VALUES ('verdict', ?, '{}', '2026-11-28T12:00:00Z', 1, 1)", (rid,))
    entries, prev = [], None
    for seq, (user, action, report_id) in enumerate((("sam", "user_added", None), ("sam", "login", None),
                                                     ("sam", "verdict", rid)), 1):
        entry = chain.chained({"at": "2026-11-28T12:00:00Z", "user": user, "action": action, "report_id": report_id,
                               "detail": None}, seq, prev)
        prev = entry["hash"]
        conn.execute("INSERT INTO audit VALUES (:seq, :at, :user, :action, :report_id, :detail, :prev_hash, :hash)", entry)
        entries.append(entry)
    conn.close()
    mirror.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
    return entries


def test_single_file_database_is_migrated_without_losing_accounts_or_the_audit_log(tmp_path, two_demos, capsys):
    db, mirror = tmp_path / "console.sqlite3", tmp_path / "audit.jsonl"
    body = report(two_demos, "first", "known")
    rid = body["report_id"]
    old_entries = _old_database(db, mirror, rid, body)
    store = SQLiteConsoleStore(str(db), str(mirror))
    try:
        assert store.get_user("sam")["pw_hash"] == "argon-hash"
        row = store.get_report(rid)
        assert (row["report"], row["status"], row["version"], row["content_hash"]) == (body, "confirmed", 1,
                                                                                      content_hash(body))
        assert [(v["reason"], v["note"], v["report_version"]) for v in store.verdicts(rid)] == [
            ("matches_known_indicator", "seen", 1)]
        assert store.audit_chain()[0] == old_entries  # every entry as it was
        store.audit(T0, "sam", "claim_released", rid)  # an action the old table's CHECK did not know
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store.execute("DELETE FROM audit")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store.execute("DELETE FROM verdicts")
    finally:
        store.close()
    main_tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "reports" not in main_tables and "verdicts" not in main_tables
    assert main(["console", "audit", "verify", "--db", str(db), "--audit-log", str(mirror)]) == 0
    assert "audit log ok: 4 entries" in capsys.readouterr().err
    reopened = SQLiteConsoleStore(str(db), str(mirror))  # opening again changes nothing
    try:
        assert reopened.verdicts(rid)[0]["note"] == "seen" and reopened.user_count() == 1
    finally:
        reopened.close()


# ------------------------------------------------------------------------------ ingest


def test_ingest_rechecks_signatures_when_the_key_changes(tmp_path, two_demos):
    """A start without the provider key, then with it, then with another provider's key."""
    demo = two_demos["first"]
    store = SQLiteConsoleStore(str(tmp_path / "c.db"))
    try:
        ids = {n: r["report"]["report_id"] for n, r in demo["reports"].items()}
        assert ReportIngest(store, None).read_store(str(demo["dir"]))["added"] == 5
        assert {store.get_report(i)["signature_status"] for i in ids.values()} == {"not_checked"}
        key = signing.load_public_key(demo["paths"]["provider_public_key"])
        ingest = ReportIngest(store, key)
        counts = ingest.read_store(str(demo["dir"]))
        assert counts["rechecked"] == 5 and counts["added"] == 0
        assert {n: store.get_report(i)["signature_status"] for n, i in ids.items()} == {
            "known": "verified", "known_urgent": "verified", "new": "verified", "tampered": "invalid",
            "grooming": "verified"}
        assert store.get_report(ids["known"])["key_fingerprint"] == signing.raw_key_id(key)
        assert ingest.read_store(str(demo["dir"])) == {}  # unchanged files are not read again
        assert ReportIngest(store, key).read_store(str(demo["dir"]))["duplicate"] == 10  # jsonl + parquet: same
        assert ReportIngest(store, None).read_store(str(demo["dir"]))["duplicate"] == 10  # no key now: check stands
        other = signing.load_public_key(two_demos["second"]["paths"]["provider_public_key"])
        assert ReportIngest(store, other).read_store(str(demo["dir"]))["rechecked"] == 5
        assert store.get_report(ids["known"])["signature_status"] == "invalid"
        assert "not" in store.get_report(ids["known"])["signature_note"]
    finally:
        store.close()


def test_ingest_reads_a_rewritten_file_and_a_fresh_demo_is_a_new_version(tmp_path, two_demos):
    folder = tmp_path / "reports"
    folder.mkdir()
    first, second = (two_demos[d]["dir"] / "reports-00000-of-00001.jsonl" for d in ("first", "second"))
    target = folder / "reports.jsonl"
    target.write_bytes(first.read_bytes())
    store = MemoryConsoleStore()
    ingest = ReportIngest(store)
    assert ingest.read_store(str(folder))["added"] == 5
    stat = target.stat()
    target.write_bytes(second.read_bytes())
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same mtime: ctime and the content still tell
    assert ingest.read_store(str(folder))["new_version"] == 5
    rid = two_demos["second"]["reports"]["known"]["report"]["report_id"]
    assert store.get_report(rid)["version"] == 2 and store.get_report(rid)["report"] == (
        two_demos["second"]["reports"]["known"]["report"])


# --------------------------------------------------------------------------------- CLI


def test_run_option_reads_one_run_and_names_the_runs_there(tmp_path, capsys):
    store = tmp_path / "reports"
    for run in ("20261128T1000Z", "20261129T1000Z"):
        (store / run).mkdir(parents=True)
    (store / ".hidden").mkdir()
    args = lambda *a: argparse.Namespace(config=None, reports=str(store), run=a[0] if a else None)  # noqa: E731
    assert config_from_args(args("20261129T1000Z")).reports_dir == str(store / "20261129T1000Z")
    assert config_from_args(args()).reports_dir == str(store)  # every run by default
    with pytest.raises(ConfigError) as err:
        config_from_args(args("20261130T1000Z"))
    assert str(err.value) == (f"--run 20261130T1000Z: no such run in {store} (runs there: 20261128T1000Z, "
                              "20261129T1000Z)")
    with pytest.raises(ConfigError, match="run id"):
        config_from_args(args("../etc"))
    assert main(["console", "--reports", str(store), "--run", "nope", "--db", str(tmp_path / "c.db")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs there: 20261128T1000Z, 20261129T1000Z" in err and "Traceback" not in err


def test_reset_cache_refuses_while_the_outbox_waits(tmp_path, two_demos, capsys):
    db = tmp_path / "console.sqlite3"
    store = SQLiteConsoleStore(str(db))
    store.add_user("rita", "h", "reviewer", T0)
    r = report(two_demos, "first", "new")
    store.add_report(r, "verified", None, T0)
    v = {"report_id": r["report_id"], "verdict": "confirmed", "reason": "new_material_confirmed",
         "decided_at": "2026-11-28T12:00:00Z", "delay_notification": False}
    store.add_verdict(dict(v), None, "rita", None, v, T0, "verdict")
    store.close()
    assert main(["console", "reset-cache", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not delivered yet" in err
    again = SQLiteConsoleStore(str(db))
    try:
        assert again.verdicts(r["report_id"]) and again.has_report(r["report_id"])
    finally:
        again.close()
