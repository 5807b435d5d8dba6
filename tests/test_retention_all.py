"""Retention covers every store (issue 12 item 6): records of every kind that carry an id (reports,
evidence, review items, the Centre's verdicts, requests for information, notifications, dead
letters, console database rows, a stats line with an id, complaints naming a report) are planted
past their date, the retention
command runs with an injected clock, and then no file under the stores holds a planted id, account
or evidence string, except what a hold keeps and the stores exempt by design (the deletion log, the
holds file and the console's hash-chained audit log, which hold ids only)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from csadetect.cli.complaints import register as register_complaints
from csadetect.compliance import retention
from csadetect.compliance.complaints import LOG_NAME, add_complaint, complaints_state, record_outcome
from csadetect.compliance.retention import RetentionResult, run_retention
from csadetect.compliance.transparency import collect
from csadetect.config.settings import load_settings
from csadetect.console.storage.memory import MemoryConsoleStore
from csadetect.console.storage.sqlite import SQLiteConsoleStore
from csadetect.core.stats import stat
from csadetect.core.timeutil import utc_iso
from csadetect.reports.schema import REVIEW_SCHEMA
from tests.test_retention import cli, report, review_item, write_jsonl, write_parquet

NOW = datetime(2027, 6, 15, 12, 0, 0, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=400)
YOUNG = NOW - timedelta(days=10)
T_OLD = OLD.timestamp()

# Report ids are lower-case hex (the console's pattern). GONE_* must vanish, HELD stays (on hold),
# KEPT stays (young), PENDING is a console report nobody ever decided (never in the audit log).
GONE_A, GONE_B, PENDING, HELD, KEPT = ("a0" * 8, "b0" * 8, "d0" * 8, "e0" * 8, "f0" * 8)
LATE_VERDICT = "c0" * 8  # a young verdict whose report an earlier run deleted (the deletion log)
DEAD = ("event-dead-old", "event-dead-undated")  # non-hits: never in any log
DEAD_YOUNG = "event-dead-young"
AUDITED = (GONE_A, PENDING)  # decided / asked about in the console: their ids stay in its audit log
# complaints: (complaint id, report id, outcome); GONE_A's report expires now, LATE_VERDICT's went in
# an earlier run, HELD's is on hold, KEPT's is young, the last names no report
COMPLAINTS = (("cmp-gone0000000a", GONE_A, "upheld"), ("cmp-late0000000c", LATE_VERDICT, None),
              ("cmp-held0000000e", HELD, "rejected"), ("cmp-kept0000000f", KEPT, None),
              ("cmp-none00000000", None, "withdrawn"))


def secrets_of(rid: str) -> list[str]:
    """Everything a report's records carry that must go with it (see tests.test_retention.report)."""
    return [rid, f"account-of-{rid}", f"event-of-{rid}", f"sealed-{rid}", f"review-sealed-{rid}"]


@pytest.fixture
def stores(tmp_path):
    root = tmp_path / "out"
    centre = root / "centre"
    overrides = {
        "sinks": {"report_dir": str(root / "reports"), "review_dir": str(root / "review"),
                  "dead_letter_dir": str(root / "dead_letters")},
        "stores": {"stats_dir": str(root / "stats"), "complaints_dir": str(root / "complaints")},
        "retention": {"days": 365, "dead_letter_days": 30, "holds_file": str(root / "holds.jsonl"),
                      "log_dir": str(root / "retention")},
        "feedback": {"out_dir": str(root / "feedback"), "notifications_dir": str(root / "notifications"),
                     "verdict_glob": str(root / "provider_verdicts" / "*.jsonl")},
        "console": {"reports_dir": str(root / "centre_reports"), "db": str(centre / "console.sqlite3"),
                    "audit_log": str(centre / "audit.jsonl"), "feedback_dir": str(centre / "verdicts"),
                    "provider_requests_dir": str(centre / "info_requests")},
    }
    for sub in ("reports", "review", "dead_letters", "stats", "notifications", "provider_verdicts",
                "centre_reports", "centre/verdicts", "centre/info_requests", "retention"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(overrides), encoding="utf-8")
    return {"root": root, "config": str(config), "settings": load_settings(str(config))}


def aged(path: Path, when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def plant(root: Path, settings) -> None:
    """One record of every kind per id, dated OLD (or undated in an OLD file), plus young controls."""
    rows = [report(GONE_A, OLD), report(GONE_B, OLD, evidence=False), report(HELD, OLD), report(KEPT, YOUNG)]
    write_parquet(root / "reports" / "reports-0.parquet", rows)
    write_jsonl(root / "reports" / "reports-0.jsonl", rows)
    write_jsonl(root / "centre_reports" / "reports-c.jsonl", [report(GONE_A, OLD), report(PENDING, OLD)])
    for rid, when in ((GONE_B, OLD), (HELD, OLD), (KEPT, YOUNG)):
        write_parquet(root / "review" / f"{rid}.parquet", [review_item(rid, when)], REVIEW_SCHEMA)

    def verdict(rid, when):
        return {"report_id": rid, "verdict": "confirmed", "reason": "matches_known_indicator",
                "decided_at": utc_iso(when), "delay_notification": False}

    # the Centre's verdicts: GONE_A's is young but its report goes (by id); LATE_VERDICT's report
    # went in an earlier run; an undated line in an old file
    write_jsonl(root / "centre" / "verdicts" / "verdicts-20260601.jsonl",
                [verdict(GONE_A, YOUNG), verdict(HELD, OLD), verdict(KEPT, YOUNG), verdict(LATE_VERDICT, YOUNG)])
    undated = root / "provider_verdicts" / "v.jsonl"
    write_jsonl(undated, [{"report_id": GONE_B, "verdict": "confirmed", "decided_at": "someday"}])
    aged(undated, OLD)
    (root / "retention" / "deletions.jsonl").write_text(
        json.dumps({"at": utc_iso(OLD), "store": "reports", "id": LATE_VERDICT}) + "\n", encoding="utf-8")
    write_jsonl(root / "centre" / "info_requests" / "info-requests-20260601.jsonl", [
        {"request_id": "1" * 32, "report_id": GONE_A, "missing": ["device"], "requested_at": utc_iso(OLD)}])

    def notification(rid, when):
        return {"notification_id": f"n-{rid}", "report_id": rid, "provider_id": "demo-provider", "service": "photos",
                "account": f"account-of-{rid}", "due_at": utc_iso(when), "trigger": "three_months",
                "status": "scheduled", "decided_at": utc_iso(when)}

    write_jsonl(root / "notifications" / "notifications-0.jsonl",
                [notification(GONE_A, OLD), notification(HELD, OLD), notification(KEPT, YOUNG)])
    write_jsonl(root / "notifications" / "notifications-1.jsonl",
                [dict(notification(GONE_B, OLD), decided_at=None, due_at=None), "not json at all"])
    aged(root / "notifications" / "notifications-1.jsonl", OLD)

    write_jsonl(root / "dead_letters" / "dead_letters-0.jsonl", [
        {"event_id": DEAD[0], "stage": "ParseEvents", "reason": "bad_time", "at": utc_iso(NOW - timedelta(days=40))},
        {"event_id": DEAD_YOUNG, "stage": "ParseEvents", "reason": "bad_time", "at": utc_iso(NOW - timedelta(days=5))}])
    write_jsonl(root / "dead_letters" / "dead_letters-1.jsonl", [{"event_id": DEAD[1], "stage": "HashMedia"}])
    aged(root / "dead_letters" / "dead_letters-1.jsonl", OLD)

    good = stat("deleted", 2, at=OLD, store="reports")
    write_jsonl(root / "stats" / "stats-0.jsonl", [
        good, {"at": utc_iso(OLD), "metric": "hit", "value": 1, "labels": {"account": f"account-of-{GONE_A}"}}])

    complaints = settings.stores.complaints_dir
    for n, (cid, rid, outcome) in enumerate(COMPLAINTS):
        add_complaint(complaints, "wrongly_detected" if rid else "other", rid, at=OLD + timedelta(days=n),
                      complaint_id=cid)
        if outcome:
            record_outcome(complaints, cid, outcome, note="ticket 5", at=OLD + timedelta(days=n + 3))

    store = SQLiteConsoleStore(settings.console.db, settings.console.audit_log)
    try:
        store.add_user("rita", "h", "reviewer", T_OLD)
        for rid, when in ((GONE_A, OLD), (GONE_B, OLD), (PENDING, OLD), (HELD, OLD), (KEPT, YOUNG)):
            store.add_report(report(rid, when), "verified", None, when.timestamp())
        for rid in (GONE_A, HELD):
            v = verdict(rid, OLD)
            store.add_verdict(dict(v), f"note on {rid}", "rita", None, v, T_OLD, "verdict")
        store.add_info_request({"request_id": "2" * 32, "report_id": PENDING, "provider_id": "demo-provider",
                                "missing": ["device"], "note": f"about account-of-{PENDING}",
                                "requested_at": utc_iso(OLD)}, "rita", T_OLD)
    finally:
        store.close()


def every_file(root: Path, exempt: tuple = ()) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(p.name == e or p.name.startswith(e) for e in exempt)}


EXEMPT = ("deletions.jsonl", "holds.jsonl", "audit.jsonl")  # ids only, by design (docs/data.md)


def test_nothing_of_an_expired_report_is_left_in_any_store(stores, caplog, capsys):
    root, config, settings = stores["root"], stores["config"], stores["settings"]
    plant(root, settings)
    assert cli(config, "retention", "hold", HELD, "--reason", "LE ref 9", "--now", utc_iso(NOW)) == 0
    with caplog.at_level(logging.DEBUG):
        assert cli(config, "retention", "run", "--now", utc_iso(NOW)) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["deleted"] == {"reports": 3, "review": 1, "evidence": 3, "console": 3, "verdicts": 3,
                                  "info_requests": 1, "notifications": 3, "complaints": 2, "dead_letters": 2,
                                  "stats": 1}
    assert summary["held"] == 1 and summary["errors"] == 0

    # 1. no file under the stores (bar the id-only logs) holds anything of the expired reports or the
    #    old dead letters, the SQLite file and its WAL included (deleted pages are zeroed)
    files = every_file(root, EXEMPT)
    db = Path(settings.console.db)
    assert db in files
    for rid in (GONE_A, GONE_B, PENDING, LATE_VERDICT):
        for secret in secrets_of(rid):
            hits = [str(p) for p, data in files.items() if secret.encode() in data
                    and not (p == db and secret in AUDITED)]  # the audit log, inside the database file
            assert hits == [], (secret, hits)
    for event_id in DEAD:
        assert not [p for p, data in files.items() if event_id.encode() in data], event_id
    # ... and in the database only the audit log names the audited ids (who did what, when: no content)
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            text = json.dumps(conn.execute(f"SELECT * FROM {table}").fetchall())
            if table != "audit":
                assert not [rid for rid in AUDITED if rid in text], table
        audit = json.dumps(conn.execute("SELECT * FROM audit").fetchall())
        assert all(rid in audit for rid in AUDITED)  # untouched
    finally:
        conn.close()

    # 2. the held report is still everywhere it was; young records stay
    for secret in secrets_of(HELD):
        if secret == f"review-sealed-{HELD}":
            continue  # only the review item carries it, checked below
        assert any(secret.encode() in data for data in files.values()), secret
    assert (root / "review" / f"{HELD}.parquet").exists() and (root / "review" / f"{KEPT}.parquet").exists()
    for store_dir in ("reports", "notifications", "centre/verdicts", "complaints"):
        text = b"".join(p.read_bytes() for p in (root / store_dir).iterdir())
        assert HELD.encode() in text and KEPT.encode() in text, store_dir
    assert DEAD_YOUNG in (root / "dead_letters" / "dead_letters-0.jsonl").read_text()
    assert json.loads((root / "stats" / "stats-0.jsonl").read_text().splitlines()[0])["metric"] == "deleted"
    kept = SQLiteConsoleStore(str(db))
    try:
        assert kept.has_report(HELD) and kept.has_report(KEPT) and not kept.has_report(GONE_A)
        assert [v["report_id"] for v in kept.verdicts(HELD)] == [HELD]
        assert {o["report_id"] for o in kept.pending_outbox()} == {HELD}
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):  # the guards are back
            kept.execute("DELETE FROM verdicts")
    finally:
        kept.close()

    # 3. deletions are logged by id only; non-hits (dead letters) never by id, only counted
    log_lines = [json.loads(line) for line in (root / "retention" / "deletions.jsonl").read_text().splitlines()]
    named = {(e["store"], e["id"]) for e in log_lines if "id" in e}
    assert ("console", GONE_A) in named and ("verdicts", LATE_VERDICT) in named and ("notifications", GONE_B) in named
    assert {e["store"]: e["count"] for e in log_lines if "count" in e} == {
        "dead_letters": 2, "stats": 1, "notifications": 1}
    assert all(set(e) in ({"at", "store", "id"}, {"at", "store", "count"}) for e in log_lines)
    everything_logged = caplog.text + (root / "retention" / "deletions.jsonl").read_text()
    for secret in (*DEAD, DEAD_YOUNG, f"account-of-{GONE_A}", f"sealed-{GONE_A}", KEPT):
        assert secret not in everything_logged


def test_dry_run_changes_no_store_and_finds_the_same(stores, capsys):
    root, config, settings = stores["root"], stores["config"], stores["settings"]
    plant(root, settings)
    before = every_file(root)
    assert cli(config, "retention", "run", "--now", utc_iso(NOW), "--dry-run") == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert every_file(root) == before
    assert summary["deleted"]["console"] == 4 and summary["deleted"]["dead_letters"] == 2  # HELD is not held here
    assert summary["deleted"]["complaints"] == 3  # GONE_A, LATE_VERDICT and (not held here) HELD


def test_second_run_deletes_nothing_more(stores):
    root, settings = stores["root"], stores["settings"]
    plant(root, settings)
    store = SQLiteConsoleStore(settings.console.db)
    try:
        run_retention(settings, NOW, console=store)
        files = every_file(root, ("console.sqlite3",))
        again = run_retention(settings, NOW, console=store)
    finally:
        store.close()
    assert sum(again.counts().values()) == 0
    assert every_file(root, ("console.sqlite3",)) == files


def test_undated_rows_take_their_file_date(stores):
    root, settings = stores["root"], stores["settings"]
    young = root / "notifications" / "young.jsonl"
    old = root / "notifications" / "old.jsonl"
    for path, when in ((young, YOUNG), (old, OLD)):
        write_jsonl(path, [{"report_id": KEPT, "account": "account-x"}, "garbage"])
        aged(path, when)
    result = run_retention(settings, NOW)
    assert result.undated == 4 and result.counts()["notifications"] == 2
    assert young.exists() and not old.exists()


def test_rewrite_keeps_the_file_date_so_undated_rows_still_age(stores):
    root, settings = stores["root"], stores["settings"]
    path = root / "notifications" / "mixed.jsonl"
    write_jsonl(path, [{"report_id": GONE_A, "decided_at": utc_iso(OLD)}, {"report_id": KEPT}])
    aged(path, YOUNG)
    run_retention(settings, NOW)
    assert path.read_text().count(KEPT) == 1 and GONE_A not in path.read_text()
    assert abs(path.stat().st_mtime - YOUNG.timestamp()) < 1


@pytest.mark.parametrize("make", [MemoryConsoleStore, lambda: SQLiteConsoleStore(":memory:")])
def test_console_store_purge_contract(make):
    store = make()
    try:
        store.add_user("rita", "h", "reviewer", T_OLD)
        for rid in (GONE_A, KEPT):
            store.add_report(report(rid, OLD), "verified", None, T_OLD)
            v = {"report_id": rid, "verdict": "confirmed", "reason": "r", "decided_at": utc_iso(OLD),
                 "delay_notification": False}
            store.add_verdict(dict(v), None, "rita", None, v, T_OLD, "verdict")
        seen = []
        gone = store.purge_reports(lambda rid, created, ingested: seen.append((rid, created, ingested)) or rid == GONE_A)
        assert gone == [GONE_A] and sorted(s[0] for s in seen) == [GONE_A, KEPT]
        assert all(created == utc_iso(OLD) and ingested == utc_iso(OLD) for _, created, ingested in seen)
        assert not store.has_report(GONE_A) and store.verdicts(GONE_A) == [] and store.outbox_for(GONE_A) == []
        assert store.has_report(KEPT) and len(store.verdicts(KEPT)) == 1
        # ids handed out after a purge are still unique
        store.add_report(report(PENDING, OLD), "verified", None, T_OLD)
        v = {"report_id": PENDING, "verdict": "confirmed", "reason": "r", "decided_at": utc_iso(OLD),
             "delay_notification": False}
        vid = store.add_verdict(dict(v), None, "rita", None, v, T_OLD, "verdict")
        assert vid != store.verdicts(KEPT)[0]["id"]
        assert store.audit_entries(report_id=GONE_A)  # the audit log is untouched
    finally:
        store.close()


def test_result_counts_every_store():
    result = RetentionResult(NOW, NOW, False)
    result.add("dead_letters", None)
    result.add("verdicts", GONE_A)
    assert result.counts()["dead_letters"] == 1 and result.deleted["dead_letters"] == []
    assert result.counts()["verdicts"] == 1


# ------------------------------------------------------------------------------- complaints


def complaints_cli(config: str, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="csadetect")
    parser.add_argument("--config", default=None)
    register_complaints(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["--config", config, *argv])
    return args.func(args)


def complaint_counts(config: str, settings, capsys) -> tuple:
    """What ``csadetect complaints counts`` prints and what the transparency report counts."""
    capsys.readouterr()
    assert complaints_cli(config, "complaints", "counts", "--start", utc_iso(OLD - timedelta(days=1)),
                          "--end", utc_iso(NOW)) == 0
    printed = json.loads(capsys.readouterr().out)
    report = collect(settings, OLD - timedelta(days=1), NOW)
    return printed, report["complaints"], report["headline"]["complaints_received"]


def test_complaints_lose_the_ids_of_deleted_reports_and_keep_their_counts(stores, caplog, capsys):
    root, config, settings = stores["root"], stores["config"], stores["settings"]
    plant(root, settings)
    assert cli(config, "retention", "hold", HELD, "--reason", "LE ref 9", "--now", utc_iso(NOW)) == 0
    before = complaint_counts(config, settings, capsys)
    assert before[0]["received"] == 5 and before[0]["outcomes"] == {"upheld": 1, "rejected": 1, "withdrawn": 1}
    path = root / "complaints" / LOG_NAME
    mode = path.stat().st_mode
    with caplog.at_level(logging.DEBUG):
        assert cli(config, "retention", "run", "--now", utc_iso(NOW)) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["deleted"]["complaints"] == 2

    # the expired reports' ids are nowhere in the complaints directory (no temporary file either)
    files = {p: p.read_bytes() for p in (root / "complaints").rglob("*") if p.is_file()}
    assert list(files) == [path]
    for rid in (GONE_A, LATE_VERDICT):
        assert rid.encode() not in files[path], rid
    assert HELD.encode() in files[path] and KEPT.encode() in files[path]
    assert path.stat().st_mode == mode

    # every complaint is still there, with its grounds, dates and outcome; only the id went
    state = {c["complaint_id"]: c for c in complaints_state(settings.stores.complaints_dir)}
    assert list(state) == [cid for cid, _, _ in COMPLAINTS]
    assert {cid: c["report_id"] for cid, c in state.items()} == {
        "cmp-gone0000000a": None, "cmp-late0000000c": None, "cmp-held0000000e": HELD,
        "cmp-kept0000000f": KEPT, "cmp-none00000000": None}
    gone = state["cmp-gone0000000a"]
    assert gone["status"] == "upheld" and gone["grounds"] == "wrongly_detected" and gone["note"] == "ticket 5"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    redacted = [e["complaint_id"] for e in events if e.get("report_redacted")]
    assert redacted == ["cmp-gone0000000a", "cmp-late0000000c"]
    assert all(e["event"] == "received" and e["report_id"] is None for e in events if e.get("report_redacted"))
    assert complaint_counts(config, settings, capsys) == before

    # logged by report id only (never a complaint id), like every other deletion
    log_lines = [json.loads(line) for line in (root / "retention" / "deletions.jsonl").read_text().splitlines()]
    assert {e["id"] for e in log_lines if e.get("store") == "complaints"} == {GONE_A, LATE_VERDICT}
    for cid, _, _ in COMPLAINTS:
        assert cid not in caplog.text

    # a second run finds nothing more, and leaves the file as it is
    text = path.read_bytes()
    assert run_retention(settings, NOW).counts()["complaints"] == 0
    assert path.read_bytes() == text


def test_complaint_filed_after_its_report_went_is_redacted_next_run(stores):
    root, settings = stores["root"], stores["settings"]
    write_jsonl(root / "reports" / "r.jsonl", [report(GONE_A, OLD)])
    run_retention(settings, NOW)
    add_complaint(settings.stores.complaints_dir, "wrongly_detected", GONE_A, at=NOW, complaint_id="cmp-after000000a")
    result = run_retention(settings, NOW + timedelta(days=1))
    assert result.deleted["complaints"] == [GONE_A]
    assert GONE_A not in (root / "complaints" / LOG_NAME).read_text()
    assert complaints_state(settings.stores.complaints_dir)[0]["complaint_id"] == "cmp-after000000a"


def test_complaints_rewrite_loses_no_concurrent_append(stores, monkeypatch):
    """A complaint added while retention rewrites the log is kept: one written by the complaints
    module waits for the lock and then appends to the new file; one appended without the lock
    makes retention read the file again."""
    root, settings = stores["root"], stores["settings"]
    cdir = settings.stores.complaints_dir
    write_jsonl(root / "reports" / "r.jsonl", [report(GONE_A, OLD), report(GONE_B, OLD)])
    add_complaint(cdir, "wrongly_detected", GONE_A, at=OLD, complaint_id="cmp-first000000a")
    path = root / "complaints" / LOG_NAME
    original_replace, original_write = retention._replace_atomically, retention._write_lines
    writers: list = []
    raw = []

    def write_lines(tmp, lines):  # first attempt: someone appends without taking the lock
        original_write(tmp, lines)
        if os.path.dirname(tmp) == str(path.parent) and not raw:
            raw.append(1)
            with open(path, "ab") as fh:
                fh.write((json.dumps({"complaint_id": "cmp-raw00000000b", "event": "received", "at": utc_iso(OLD),
                                      "report_id": GONE_B, "channel": "cli", "grounds": "other"}) + "\n").encode())

    def replace(target, write, before):
        if target == str(path) and not writers:  # the complaints module writes while the lock is held
            t = threading.Thread(target=add_complaint, args=(cdir, "other", GONE_A),
                                 kwargs={"at": NOW, "complaint_id": "cmp-during00000c"})
            t.start()
            writers.append(t)
            time.sleep(0.3)  # it has opened the (soon replaced) file and waits for the lock
        original_replace(target, write, before)

    monkeypatch.setattr(retention, "_write_lines", write_lines)
    monkeypatch.setattr(retention, "_replace_atomically", replace)
    result = run_retention(settings, NOW)
    writers[0].join(10)
    assert raw and not writers[0].is_alive() and result.errors == []
    ids = [c["complaint_id"] for c in complaints_state(cdir)]
    assert ids == ["cmp-first000000a", "cmp-raw00000000b", "cmp-during00000c"]
    text = path.read_text()
    # the complaint added during the run lands in the new file either after the rewrite (its id is
    # then the next run's to clear) or just before a re-read (cleared now): never lost, never twice
    assert GONE_B not in text and text.count(GONE_A) <= 1
    assert sorted(result.deleted["complaints"]) == sorted([GONE_A, GONE_B])
