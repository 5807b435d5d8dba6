"""The review console's audit log (issue 5, hash-chained in issue 12): the table refusing UPDATE
and DELETE, its JSON Lines mirror holding exactly the table and no content in either; the audit
page for supervisors only; every refusal (401, 403, 410) and every evidence fetch, blurred or
clear, written down; ``csadetect console audit verify`` finding every change and deletion made to
the SQLite file with its triggers dropped and to the JSON Lines mirror; and a database from
before the chain refused.

FastAPI's TestClient against the app, on the reports of console_helpers.py (benign and
synthetic)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from csadetect.cli.main import main
from csadetect.console.storage import StoreError
from csadetect.console.storage import chain
from csadetect.console.storage.sqlite import SQLiteConsoleStore
from tests.console_helpers import CHAT, PASSWORD, T0, audit_file, audit_of, csrf_of, login, rid
from tests.console_helpers import console, crafted  # noqa: F401 - the fixtures


# ------------------------------------------------------------------------------- audit


def test_audit_log_is_append_only_and_holds_no_content(console, crafted, tmp_path):
    client, app, _ = console
    c = client()
    login(c, "rita")
    known = rid(crafted, "known")
    groom = rid(crafted, "grooming")
    token = csrf_of(c)
    h = {"X-CSRF-Token": token, "Accept": "application/json"}
    for report in (known, groom):
        c.get(f"/reports/{report}")
        c.get(c.post(f"/reports/{report}/reveal", headers=h).json()["url"])
    c.post(f"/reports/{groom}/verdict", follow_redirects=False, data={
        "csrf_token": token, "verdict": "confirmed", "reason": "grooming_confirmed", "note": "clear meeting request"})
    store = app.state.console.store
    for sql in ("UPDATE audit SET user = 'mallory'", "DELETE FROM audit", "UPDATE verdicts SET verdict = 'confirmed'",
                "DELETE FROM verdicts"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store.execute(sql)
    table = list(reversed(store.audit_entries()))
    mirror = audit_file(tmp_path)
    assert mirror == table  # the JSON Lines mirror holds exactly the table
    assert all(set(e) == {"seq", "at", "user", "action", "report_id", "detail", "prev_hash", "hash"} for e in mirror)
    assert [e["action"] for e in mirror] == ["user_added"] * 3 + [
        "login", "view_report", "claim", "reveal_evidence", "fetch_evidence", "view_report", "claim",
        "reveal_evidence", "fetch_evidence", "verdict"]
    text = json.dumps([{k: v for k, v in e.items() if k not in ("prev_hash", "hash")} for e in mirror])
    assert (tmp_path / "centre" / "audit.jsonl").read_text().count("\n") == len(mirror)
    forbidden = [t for _, t in CHAT if len(t) > 3] + ["clear meeting request", "acct-", "conv-risk", PASSWORD,
                                         crafted["reports"]["known"]["report"]["content_md5"],
                                         crafted["reports"]["known"]["report"]["content_pdq"]]
    assert not [f for f in forbidden if f in text]
    with pytest.raises(StoreError):
        store.audit(T0, "rita", "exported_everything")
    with pytest.raises(StoreError):
        store.audit(T0, "rita", "view_report", "free text is not a report id")


def test_audit_page_for_supervisors_only(console):
    client, _, _ = console
    rita, sam = client(), client()
    login(rita, "rita")
    login(sam, "sam")
    assert rita.get("/audit").status_code == 403
    page = sam.get("/audit")
    assert page.status_code == 200 and "append-only" in page.text.lower() and "<code>login</code>" in page.text
    assert "<code>403 GET /audit role</code>" in page.text  # rita's refusal, on the page


def test_every_refusal_and_every_evidence_fetch_is_audited(console, crafted):
    client, app, _ = console
    known, groom = rid(crafted, "known"), rid(crafted, "grooming")
    anon = client()
    assert anon.get(f"/reports/{known}/evidence/blurred", follow_redirects=False).status_code == 303
    assert anon.post(f"/reports/{known}/reveal", headers={"Accept": "application/json"}).status_code == 401
    assert anon.get(f"/reports/{'ab' * 16}?q=anything", follow_redirects=False).status_code == 303
    anon.get("/login")
    assert anon.post("/login", data={"username": "rita", "password": PASSWORD, "csrf_token": "forged"}).status_code == 403
    rita, sam = client(), client()
    login(rita, "rita")
    login(sam, "sam")
    h = {"X-CSRF-Token": csrf_of(rita), "Accept": "application/json"}
    assert rita.post(f"/reports/{known}/reveal", headers={"Accept": "application/json"}).status_code == 403
    assert rita.get("/audit").status_code == 403
    assert rita.get(f"/reports/{known}/evidence/blurred").status_code == 200
    url = rita.post(f"/reports/{known}/reveal", headers=h).json()["url"]
    assert sam.get(url).status_code == 410  # another session's link
    assert rita.get(url).status_code == 200
    assert rita.get(url).status_code == 410  # spent
    assert rita.post(f"/reports/{groom}/verdict", headers=h, follow_redirects=False, data={
        "verdict": "confirmed", "reason": "grooming_confirmed"}).status_code == 303
    assert rita.post(f"/reports/{groom}/verdict", headers=h, data={
        "verdict": "manifestly_unfounded", "reason": "benign_content"}).status_code == 403
    refused = [(e["user"], e["report_id"], e["detail"]) for e in audit_of(app, "refused")]
    assert refused == [
        (None, known, "401 GET /reports/{report_id}/evidence/blurred no_session"),
        (None, known, "401 POST /reports/{report_id}/reveal no_session"),
        (None, None, "401 GET /reports/{report_id} no_session"),  # a made-up id is not written down
        (None, None, "403 POST /login login_csrf"),
        ("rita", known, "403 POST /reports/{report_id}/reveal csrf"),
        ("rita", None, "403 GET /audit role"),
        ("sam", None, "410 GET /evidence/{token} link_expired"),
        ("rita", None, "410 GET /evidence/{token} link_expired"),
        ("rita", groom, "403 POST /reports/{report_id}/verdict role"),
    ]
    assert [(e["user"], e["report_id"]) for e in audit_of(app, "view_blurred")] == [("rita", known)]
    assert [(e["user"], e["report_id"]) for e in audit_of(app, "fetch_evidence")] == [("rita", known)]
    text = json.dumps(app.state.console.store.audit_entries(5000))
    assert not [s for s in (url.rsplit("/", 1)[1], "forged", PASSWORD, "ab" * 16, "anything") if s in text]


# ------------------------------------------------------------- audit verify (issue 12)


def _verify(db, log, capsys) -> tuple[int, str]:
    code = main(["console", "audit", "verify", "--db", str(db), "--audit-log", str(log)])
    captured = capsys.readouterr()
    return code, captured.err


def _copy_db(src: Path, dst: Path) -> Path:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def _tamper(db: Path, *sql: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    for statement in sql:
        conn.execute(statement)
    conn.close()


def test_audit_verify_detects_any_change_or_deletion(console, crafted, tmp_path, capsys):
    client, app, _ = console
    c = client()
    login(c, "rita")
    known = rid(crafted, "known")
    c.get(f"/reports/{known}")
    c.get(c.post(f"/reports/{known}/reveal", headers={"X-CSRF-Token": csrf_of(c)}).json()["url"])
    c.get("/audit")  # refused: rita is no supervisor
    db, log = tmp_path / "centre" / "console.db", tmp_path / "centre" / "audit.jsonl"
    n = len(app.state.console.store.audit_chain()[0])
    assert n == 9  # 3 users added, login, view_report, claim, reveal, fetch, refused
    code, err = _verify(db, log, capsys)
    assert code == 0 and "audit log ok: 9 entries" in err
    lines = log.read_text().splitlines(keepends=True)

    def case(name, sql=(), mirror=None):
        d = _copy_db(db, tmp_path / f"{name}.db")
        if sql:
            _tamper(d, *sql)
        m = tmp_path / f"{name}.jsonl"
        m.write_text("".join(mirror if mirror is not None else lines))
        return _verify(d, m, capsys)

    # the database, edited with its triggers dropped
    assert case("changed", ["UPDATE audit SET user = 'sam' WHERE seq = 4"]) == (
        1, "error: audit log: database: entry seq 4 was changed (its hash does not match its content)\n")
    assert case("deleted", ["DELETE FROM audit WHERE seq = 5"])[1].endswith("database: entry seq 5 is missing\n")
    assert case("first", ["DELETE FROM audit WHERE seq = 1"])[1].endswith("database: entry seq 1 is missing\n")
    assert "entry seq 9 is missing (the newest was removed)" in case("newest", ["DELETE FROM audit WHERE seq = 9"])[1]
    code, err = case("newest-and-counter", ["DELETE FROM audit WHERE seq = 9",
                                            "UPDATE sqlite_sequence SET seq = 8 WHERE name = 'audit'"])
    assert code == 1 and "database: entry seq 9 is missing (it is in" in err
    rows = [dict(zip(chain.ENTRY_FIELDS, r)) for r in sqlite3.connect(db).execute(
        f"SELECT {', '.join(chain.ENTRY_FIELDS)} FROM audit ORDER BY seq")]
    forged, prev = [], None  # a consistent chain recomputed after a change: the mirror shows it
    for row in rows:
        row = chain.chained(dict(row, user="sam") if row["seq"] == 5 else row, row["seq"], prev)
        forged.append(row)
        prev = row["hash"]
    code, err = case("rechained", ["DELETE FROM audit"] + [
        "INSERT INTO audit (seq, at, user, action, report_id, detail, prev_hash, hash) VALUES ({})".format(
            ", ".join("NULL" if r[k] is None else str(r[k]) if k == "seq" else f"'{r[k]}'" for k in chain.ENTRY_FIELDS))
        for r in forged])
    assert code == 1 and "database and" in err and "differ at entry seq 5" in err
    # the JSON Lines mirror, edited or cut
    edited = list(lines)
    edited[2] = edited[2].replace('"user_added"', '"user_changed"')
    assert case("m-edit", mirror=edited)[1].endswith("m-edit.jsonl: entry seq 3 was changed (its hash does not match "
                                                     "its content)\n")
    assert case("m-delete", mirror=lines[:3] + lines[4:])[1].endswith("m-delete.jsonl: entry seq 4 is missing\n")
    assert "entry seq 9 is missing (it is in the database)" in case("m-cut", mirror=lines[:-1])[1]
    assert "line 2 is not JSON" in case("m-junk", mirror=[lines[0], "{not json\n"] + lines[2:])[1]
    assert main(["console", "audit", "verify", "--db", str(tmp_path / "nothing.db"), "--no-audit-log"]) == 1
    assert not (tmp_path / "nothing.db").exists()  # verify creates nothing
    assert "console database" in capsys.readouterr().err
    code = main(["console", "audit", "verify", "--db", str(db), "--no-audit-log"])
    assert code == 0 and json.loads(capsys.readouterr().out)["mirror_entries"] is None


def test_old_database_without_the_chain_fails_fast(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, user TEXT, "
                 "action TEXT NOT NULL, report_id TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="predates the hash-chained audit log"):
        SQLiteConsoleStore(str(db))
