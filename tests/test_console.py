"""The EU Centre's review console (issue 5): its settings, the storage interface (the store
contract on both implementations, the hash-chained audit log included, one walk through every
area of the console on the in-memory store, and nothing outside ``storage/`` calling the store
beyond the interface) and the CLI.

The other API tests, with FastAPI's TestClient: test_console_auth.py (login, sessions, CSRF,
throttling), test_console_reports.py (queue, report page, evidence), test_console_verdicts.py
(verdicts, requests for information, the feedback pipeline, the Pub/Sub path on the real
emulator) and test_console_audit.py (the audit log, refusals, ``audit verify``); their helpers
are in console_helpers.py. Browser tests are in test_console_browser.py.

Every report here is benign and synthetic: generated pictures (``csadetect.media.synth``) and a
synthetic chat that shows grooming *risk patterns* and is never sexual."""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import csadetect.cli.console
import csadetect.console
from csadetect.cli.console import config_from_args
from csadetect.cli.main import main
from csadetect.config.settings import ConfigError, load_settings
from csadetect.console.app import ConsoleError, create_app
from csadetect.console.storage import ConsoleStorage, StoreError
from csadetect.console.storage import chain
from csadetect.console.storage.memory import MemoryConsoleStore
from csadetect.console.storage.sqlite import SQLiteConsoleStore
from tests.console_helpers import (PASSWORD, QUEUE_ORDER, T0, Clock, add_users, audit_file, console_config, csrf_of,
                                   login, queue_ids, records, rid)
from tests.console_helpers import crafted  # noqa: F401 - the fixture


# ---------------------------------------------------------------------------- settings


def test_console_settings_section_and_validation(tmp_path, crafted):
    s = load_settings().console
    assert s.host == "127.0.0.1" and s.port == 8080 and s.reveal_seconds == 10 and s.session_idle_seconds == 900
    with pytest.raises(ConfigError, match="session_max_seconds"):
        load_settings(overrides={"console": {"session_idle_seconds": 600, "session_max_seconds": 60}})
    with pytest.raises(ConfigError, match="Extra inputs"):
        load_settings(overrides={"console": {"nope": 1}})
    with pytest.raises(ConsoleError, match="verdicts go nowhere"):
        create_app(console_config(tmp_path, crafted["paths"], crafted["reports_dir"], feedback_dir=None))
    with pytest.raises(ConsoleError, match="centre key"):
        create_app(console_config(tmp_path, crafted["paths"], crafted["reports_dir"],
                                  centre_key=str(tmp_path / "missing.pem")))
    with pytest.raises(ConsoleError, match="provider public key"):
        create_app(console_config(tmp_path, crafted["paths"], crafted["reports_dir"],
                                  provider_public_key=crafted["paths"]["centre_public_key"]))


# ----------------------------------------------------------------------- store contract


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path):
    """Each implementation of the storage interface, mirroring its audit log to ``audit.jsonl``."""
    audit_log = str(tmp_path / "audit.jsonl")
    s = (SQLiteConsoleStore(str(tmp_path / "c.db"), audit_log) if request.param == "sqlite"
         else MemoryConsoleStore(audit_log))
    yield s
    s.close()


def test_store_contract_users_and_sessions(store):
    assert store.add_user("ann", "h1", "reviewer", T0) == "user_added"
    for bad in (("ann", "reviewer"), ("bad name!", "reviewer"), ("bob", "admin")):
        with pytest.raises(StoreError):
            store.add_user(bad[0], "h", bad[1], T0)
    store.create_session("t1", "ann", "c1", T0)
    store.touch_session("t1", T0 + 5)
    assert store.add_exposure("t1") == {"exposures": 1, "break_base": 0}
    store.acknowledge_break("t1")
    assert store.get_session("t1") == {"token_hash": "t1", "username": "ann", "csrf": "c1", "created_at": T0,
                                       "last_seen": T0 + 5, "exposures": 1, "break_base": 1, "role": "reviewer"}
    assert store.add_user("ann", "h2", "supervisor", T0, replace=True) == "user_changed"
    assert store.get_session("t1") is None  # a changed user logs in again
    store.set_password_hash("ann", "h3")
    assert store.get_user("ann") == {"username": "ann", "pw_hash": "h3", "role": "supervisor",
                                     "created_at": "2026-11-28T12:00:00Z"}
    assert store.users() == [{"username": "ann", "role": "supervisor", "created_at": "2026-11-28T12:00:00Z"}]
    assert store.user_count() == 1 and store.get_user("bob") is None
    for token, at in (("idle", T0), ("old", T0 - 1000), ("busy", T0)):
        store.create_session(token, "ann", "c", at)
    store.touch_session("busy", T0 + 100)
    assert store.purge_sessions(idle_before=T0 + 50, created_before=T0 - 500) == 2
    assert [t for t in ("idle", "old", "busy") if store.get_session(t)] == ["busy"]
    store.delete_session("busy")
    assert store.get_session("busy") is None


def test_store_contract_reports_and_queue(store, crafted):
    reports = {name: item["report"] for name, item in crafted["reports"].items()}
    ids = {name: r["report_id"] for name, r in reports.items()}
    for name, r in reports.items():
        assert store.add_report(r, "invalid" if name == "tampered" else "verified", None, T0)
    assert not store.add_report(reports["known"], "verified", None, T0)  # one per report_id
    with pytest.raises(StoreError):
        store.add_report(dict(reports["known"], report_id="not-hex"), "verified", None, T0)
    with pytest.raises(StoreError):
        store.add_report(dict(reports["known"], report_id="ab" * 16), "perhaps", None, T0)
    assert store.queue_ids() == [ids[n] for n in QUEUE_ORDER]
    rows, total = store.queue({"status": "open"}, limit=2)
    assert total == 5 and [r["report_id"] for r in rows] == [ids[n] for n in QUEUE_ORDER[:2]]
    assert rows[0]["report"] == reports["grooming"] and rows[0]["status"] == "new" and rows[0]["urgent"] == 1
    rows, _ = store.queue({"detection_type": "known", "status": "all"})
    assert [r["report_id"] for r in rows] == [ids[n] for n in ("known_urgent", "tampered", "known")]
    assert store.facets() == {"detection_type": ["grooming", "known", "new"],
                              "detector": ["grooming-text", "known-hash", "new-material-classifier"],
                              "provider_id": ["demo-provider", "other-provider"]}
    store.mark_in_review(ids["known"])
    assert store.get_report(ids["known"])["status"] == "in_review"
    assert store.get_report(ids["tampered"])["signature_status"] == "invalid"
    assert store.counts({"detection_type": "known", "status": "confirmed"}) == {
        "new": 2, "in_review": 1, "info_requested": 0, "confirmed": 0, "manifestly_unfounded": 0, "archived": 0,
        "open": 3, "all": 3}
    assert store.queue_ids("in_review") == [ids["known"]]
    assert store.has_report(ids["new"]) and not store.has_report("ab" * 16) and store.get_report("ab" * 16) is None


def test_store_contract_decisions_outbox_and_audit(store, crafted, tmp_path):
    store.add_user("rita", "h", "reviewer", T0)
    store.add_user("sam", "h", "supervisor", T0)
    known, new = (crafted["reports"][n]["report"] for n in ("known", "new"))
    for r in (known, new):
        store.add_report(r, "verified", None, T0)
    known, new = known["report_id"], new["report_id"]
    first = {"report_id": known, "verdict": "confirmed", "reason": "matches_known_indicator",
             "decided_at": "2026-11-28T12:00:00Z", "delay_notification": False}
    v1 = store.add_verdict(dict(first), "seen", "rita", None, first, T0, "verdict")
    with pytest.raises(StoreError, match="in the meantime"):
        store.add_verdict(dict(first), None, "sam", None, first, T0, "verdict_changed")
    second = dict(first, verdict="manifestly_unfounded", reason="benign_content", decided_at="2026-11-28T12:00:01Z")
    v2 = store.add_verdict(dict(second), None, "sam", v1, second, T0, "verdict_changed")
    assert [(v["id"], v["verdict"], v["decided_by"], v["supersedes"], v["note"]) for v in store.verdicts(known)] == [
        (v1, "confirmed", "rita", None, "seen"), (v2, "manifestly_unfounded", "sam", v1, None)]
    assert store.latest_verdict(known)["id"] == v2 and store.latest_verdict(new) is None
    assert store.get_report(known)["status"] == "manifestly_unfounded"
    request = {"request_id": "a" * 32, "report_id": new, "provider_id": "other-provider", "missing": ["device"],
               "note": None, "requested_at": "2026-11-28T12:00:00Z"}
    store.add_info_request(request, "rita", T0)
    assert [(r["missing"], r["requested_by"]) for r in store.info_requests(new)] == [(["device"], "rita")]
    assert store.get_report(new)["status"] == "info_requested"
    with pytest.raises(StoreError, match="verdict already"):
        store.add_info_request(dict(request, request_id="b" * 32, report_id=known), "rita", T0)
    pending = store.pending_outbox()
    assert [(o["kind"], o["report_id"], o["payload"]) for o in pending] == [
        ("verdict", known, first), ("verdict", known, second), ("info_request", new, request)]
    store.outbox_progress(pending[0]["id"], True, True, None)
    store.outbox_progress(pending[1]["id"], True, False, "publishing to t: TimeoutError")
    assert [o["id"] for o in store.pending_outbox()] == [pending[1]["id"], pending[2]["id"]]
    assert [{k: o[k] for k in ("kind", "file_done", "topic_done", "attempts", "last_error")}
            for o in store.outbox_for(known)] == [
        {"kind": "verdict", "file_done": 1, "topic_done": 1, "attempts": 1, "last_error": None},
        {"kind": "verdict", "file_done": 1, "topic_done": 0, "attempts": 1, "last_error": "publishing to t: TimeoutError"}]
    assert {k for o in store.outbox_for(known) for k in o} == {
        "id", "kind", "created_at", "file_done", "topic_done", "attempts", "last_error"}
    assert store.audit(T0, "rita", "view_report", known)["seq"] == 6
    for bad in (("rita", "exported_everything", None), ("rita", "view_report", "free text"), ("no one!", "login", None)):
        with pytest.raises(StoreError):
            store.audit(T0, *bad)
    entries = store.audit_entries()
    assert [(e["seq"], e["action"]) for e in entries] == [
        (6, "view_report"), (5, "request_info"), (4, "verdict_changed"), (3, "verdict"), (2, "user_added"),
        (1, "user_added")]
    assert store.audit_entries(2, known) == [entries[0], entries[2]]
    mirror = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert mirror == list(reversed(entries))


def test_store_contract_audit_is_hash_chained(store, tmp_path):
    store.add_user("rita", "h", "reviewer", T0)
    store.audit(T0, "rita", "login")
    store.audit(T0, None, "refused", None, "401 GET / no_session")
    for bad in ("401 GET https://x/?q=secret no_session", "free text", "401 GET / Reason With Caps"):
        with pytest.raises(StoreError):
            store.audit(T0, None, "refused", None, bad)
    entries, issued = store.audit_chain()
    assert [e["seq"] for e in entries] == [1, 2, 3] and issued == 3
    assert entries[0]["prev_hash"] == chain.GENESIS and entries[1]["prev_hash"] == entries[0]["hash"]
    assert all(e["hash"] == hashlib.sha256(chain.canonical(e)).hexdigest() for e in entries)
    assert chain.verify(entries, issued, str(tmp_path / "audit.jsonl")) == (
        None, {"entries": 3, "head": entries[-1]["hash"], "mirror_entries": 3})
    assert store.audit_entries() == list(reversed(entries))


def test_console_on_the_in_memory_store(tmp_path, crafted):
    """A walk through every area of the console on the second implementation of the interface."""
    cfg = console_config(tmp_path, crafted["paths"], crafted["reports_dir"])
    app = create_app(cfg, clock=Clock(), store=MemoryConsoleStore(cfg.audit_log))
    add_users(app.state.console.store)
    known, new = rid(crafted, "known"), rid(crafted, "new")
    with TestClient(app) as c:
        assert login(c, "sam").status_code == 303
        assert queue_ids(c.get("/").text) == [rid(crafted, n) for n in QUEUE_ORDER]
        assert "ind-a-pdq" in c.get(f"/reports/{known}").text
        assert c.get(f"/reports/{known}/evidence/blurred").headers["content-type"] == "image/png"
        h = {"X-CSRF-Token": csrf_of(c), "Accept": "application/json"}
        assert c.get(c.post(f"/reports/{known}/reveal", headers=h).json()["url"]).status_code == 200
        assert c.post("/break", headers=h).status_code == 200
        assert c.post(f"/reports/{known}/verdict", headers=h, follow_redirects=False, data={
            "verdict": "confirmed", "reason": "matches_known_indicator"}).status_code == 303
        assert c.post(f"/reports/{new}/info-request", headers=h, follow_redirects=False,
                      data={"missing": ["device"]}).status_code == 303
        assert "<code>request_info</code>" in c.get("/audit").text
        assert c.post("/logout", headers=h, follow_redirects=False).status_code == 303
    assert [m["report_id"] for m in records(tmp_path / "centre" / "verdicts")] == [known]
    assert [e["action"] for e in audit_file(tmp_path)][3:] == [
        "login", "view_report", "claim", "view_blurred", "reveal_evidence", "fetch_evidence", "verdict",
        "request_info", "logout"]


def test_the_console_uses_its_store_through_the_interface_only():
    """Routes, ingest and the CLI call only what :class:`ConsoleStorage` declares."""
    declared = {name for name in dir(ConsoleStorage) if not name.startswith("_")}
    sources = [*Path(csadetect.console.__file__).parent.rglob("*.py"), Path(csadetect.cli.console.__file__)]
    used = {name for path in sources if "storage" not in path.parts
            for name in re.findall(r"\bstore\.(\w+)", path.read_text())}
    assert used and used <= declared, used - declared


# --------------------------------------------------------------------------------- CLI


def test_cli_adduser_users_and_serve_refuses_without_users(tmp_path, monkeypatch, capsys, crafted):
    db = str(tmp_path / "c.db")
    common = ["--db", db, "--audit-log", str(tmp_path / "audit.jsonl")]
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["console", "adduser", "ann", "--role", "reviewer", "--password-stdin", *common]) == 1
    assert "at least 12 characters" in capsys.readouterr().err
    serve = ["console", "--reports", str(crafted["reports_dir"]), "--port", "0", *common]
    assert main(serve) == 1
    assert "no users" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["console", "adduser", "ann", "--role", "supervisor", "--password-stdin", *common]) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "user_added"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["console", "adduser", "ann", "--role", "reviewer", "--password-stdin", *common]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["console", "users", "--db", db]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == {"username": "ann", "role": "supervisor", "created_at": json.loads(out)["created_at"]}
    assert "argon2" not in out
    assert main(["console", "adduser", "bad name!", "--role", "reviewer", "--password-stdin", *common]) == 1
    with pytest.raises(SystemExit):
        main(["console", "--reports", "x", "--subscription", "projects/p/subscriptions/s"])


def test_cli_serve_warns_of_a_report_store_that_does_not_exist(tmp_path, monkeypatch, capsys):
    """A mistyped --reports would serve an empty console for good: serving starts (the pipeline may
    not have written yet) with one warning line naming the path."""
    db = str(tmp_path / "c.db")
    common = ["--db", db, "--audit-log", str(tmp_path / "audit.jsonl")]
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["console", "adduser", "ann", "--role", "supervisor", "--password-stdin", *common]) == 0
    common += ["--feedback-dir", str(tmp_path / "v"), "--provider-requests-dir", str(tmp_path / "r")]
    served = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: served.append(kw["port"]))
    capsys.readouterr()
    assert main(["console", "--reports", str(tmp_path / "repotrs"), "--port", "8123", *common]) == 0
    warnings = [l for l in capsys.readouterr().err.splitlines() if "report store" in l and l.startswith("warning")]
    assert served == [8123] and len(warnings) == 1 and "repotrs does not exist" in warnings[0]
    (tmp_path / "repotrs").mkdir()
    assert main(["console", "--reports", str(tmp_path / "repotrs"), "--port", "8123", *common]) == 0
    assert "does not exist" not in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["text", "directory"])
def test_cli_db_that_is_not_sqlite_is_one_line_and_left_alone(tmp_path, monkeypatch, capsys, kind):
    """--db naming a text file or a directory: one line, exit 1 (it was a sqlite3 traceback), the
    file unchanged and no report cache file made beside it."""
    db = tmp_path / "notes.txt"
    if kind == "text":
        db.write_text("my notes\n")
        message = f"error: console database {db} is not an SQLite database"
    else:
        db.mkdir()
        message = f"error: console database {db} is a directory"
    for argv in (["users"], ["reset-cache"], ["adduser", "ann", "--role", "reviewer", "--password-stdin"]):
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        assert main(["console", *argv, "--db", str(db)]) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, (argv, err)
    assert main(["console", "--db", str(db), "--reports", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(message)
    assert (db.read_text() == "my notes\n") if kind == "text" else list(db.iterdir()) == []
    assert not Path(f"{db}.cache").exists()


def test_cli_config_from_args_overrides_the_settings(tmp_path):
    args = argparse.Namespace(config=None, reports=None, subscription="projects/p/subscriptions/s", host=None, port=9000,
                              centre_key=None, provider_public_key=None, feedback_topic="projects/p/topics/v",
                              feedback_dir="", provider_requests_topic=None, provider_requests_dir=None,
                              db=str(tmp_path / "x.db"), audit_log=None, secure_cookie=True)
    cfg = config_from_args(args)
    assert cfg.subscription == "projects/p/subscriptions/s" and cfg.reports_dir is None
    assert cfg.port == 9000 and cfg.feedback_dir is None and cfg.feedback_topic == "projects/p/topics/v"
    assert cfg.secure_cookie and cfg.host == "127.0.0.1"


def test_other_commands_do_not_import_the_console():
    """The console's web stack (FastAPI, uvicorn) and its store readers are imported by the console's
    handlers only: imported with the command line, every command paid ~0.7 s for them."""
    import subprocess
    import sys

    heavy = ("fastapi", "uvicorn", "starlette", "csadetect.console.app", "csadetect.console.state")
    code = ("import sys; from csadetect.cli.main import build_parser; build_parser(); "  # every command's parser
            f"print([name for name in {heavy!r} if name in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
