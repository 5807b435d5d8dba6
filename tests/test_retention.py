"""Retention (Art. 22) with an injected clock: what is past ``retention.days`` goes (reports,
their evidence, review items), holds keep it, files are rewritten intact, and only ids are logged."""
from __future__ import annotations

import argparse
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csadetect.reports.schema import REPORT_SCHEMA, REVIEW_SCHEMA, to_json_line
from csadetect.cli.retention import register
from csadetect.compliance.retention import RetentionError, active_holds, release_hold, run_retention, set_hold
from csadetect.config.settings import load_settings
from csadetect.core.stats import read_stats
from csadetect.core.timeutil import utc_iso

NOW = datetime(2027, 6, 15, 12, 0, 0, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=395)  # ~13 months
YOUNG = NOW - timedelta(days=335)  # ~11 months


def report(rid: str, created: datetime, evidence: bool = True) -> dict:
    row = {f.name: None for f in REPORT_SCHEMA}
    row.update(
        report_id=rid, schema_version="1.2", provider_id="demo-provider", created_at=utc_iso(created),
        signature=f"sig-{rid}", detection_type="known", detector="known-hash", detector_version="indicators-v1",
        distance=3.0, indicator_ids=["ind-1"], categories=["test"],
        matches=[{"indicator_id": "ind-1", "kind": "pdq", "distance": 3.0, "category": "test"}],
        review_status="auto_confirmed", content_kind="image", mime="image/jpeg", content_sha256="ab" * 32,
        evidence_encrypted=f"sealed-{rid}" if evidence else None, event_id=f"event-of-{rid}", service="uploads",
        occurred_at=utc_iso(created), account=f"account-of-{rid}", ip="192.0.2.7", port=4242,
        content_removed=False, urgent=False, legal_basis="detection order o-1 issued by A (Art. 7)", order_id="o-1",
        account_action="none",
    )
    return row


def review_item(rid: str, queued: datetime) -> dict:
    row = report(rid, queued, evidence=False)
    row.update(review_status="pending", signature=None, queued_at=utc_iso(queued),
               expires_at=utc_iso(queued + timedelta(days=14)), review_evidence=f"review-sealed-{rid}")
    return row


def write_parquet(path: Path, rows: list, schema=REPORT_SCHEMA) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="zstd")


def write_jsonl(path: Path, rows: list) -> None:
    path.write_text("".join(to_json_line(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "out"
    for sub in ("reports", "review"):
        (root / sub).mkdir(parents=True)
    overrides = {  # every store under tmp_path: nothing of the checkout's out/ is touched
        "sinks": {"report_dir": str(root / "reports"), "review_dir": str(root / "review"),
                  "dead_letter_dir": str(root / "dead_letters")},
        "stores": {"stats_dir": str(root / "stats"), "complaints_dir": str(root / "complaints")},
        "retention": {"days": 365, "holds_file": str(root / "holds.jsonl"), "log_dir": str(root / "retention")},
        "feedback": {"out_dir": str(root / "feedback"), "notifications_dir": str(root / "notifications")},
        "console": {"reports_dir": str(root / "reports"), "db": str(root / "centre" / "console.sqlite3"),
                    "audit_log": str(root / "centre" / "audit.jsonl"), "feedback_dir": str(root / "centre" / "verdicts"),
                    "provider_requests_dir": str(root / "centre" / "info_requests")},
    }
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(overrides), encoding="utf-8")  # JSON is YAML
    return {"root": root, "settings": load_settings(str(config)), "config": str(config)}


def populate(root: Path) -> dict:
    """Two report files holding old and young reports (both formats), two files with only old
    reports, and old and young review items."""
    rows = {r["report_id"]: r for r in (
        report("old-a", OLD), report("young-a", YOUNG), report("old-b", OLD, evidence=False),
        report("young-b", YOUNG), report("old-c", OLD),
    )}
    mixed = [rows["old-a"], rows["young-a"], rows["old-b"], rows["young-b"]]
    write_parquet(root / "reports" / "reports-00000-of-00001.parquet", mixed)
    write_jsonl(root / "reports" / "reports-00000-of-00001.jsonl", mixed)
    write_parquet(root / "reports" / "reports-old-only.parquet", [rows["old-c"]])
    write_jsonl(root / "reports" / "reports-old-only.jsonl", [rows["old-c"]])
    for rid, queued in (("rev-old", OLD), ("rev-young", YOUNG)):
        write_parquet(root / "review" / f"{rid}.parquet", [review_item(rid, queued)], REVIEW_SCHEMA)
    return rows


def core(counts: dict) -> dict:
    """The report stores' counts; every other store must have deleted nothing here."""
    assert all(n == 0 for s, n in counts.items() if s not in ("reports", "review", "evidence")), counts
    return {s: counts[s] for s in ("reports", "review", "evidence")}


def deletion_log(root: Path) -> list:
    path = root / "retention" / "deletions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def deleted_stats(root: Path) -> dict:
    totals: dict = {}
    if not (root / "stats").exists():
        return totals
    for rec in read_stats(str(root / "stats")):
        assert rec["metric"] == "deleted"
        totals[rec["labels"]["store"]] = totals.get(rec["labels"]["store"], 0) + rec["value"]
    return totals


def test_old_reports_go_young_stay_files_rewritten(store):
    root, settings = store["root"], store["settings"]
    rows = populate(root)
    result = run_retention(settings, NOW)

    assert core(result.counts()) == {"reports": 3, "review": 1, "evidence": 3}
    assert sorted(result.deleted["reports"]) == ["old-a", "old-b", "old-c"]
    assert sorted(result.deleted["evidence"]) == ["old-a", "old-c", "rev-old"]  # old-b had none
    assert result.deleted["review"] == ["rev-old"]
    assert result.files_rewritten == 2 and result.files_removed == 3

    mixed = root / "reports" / "reports-00000-of-00001.parquet"
    pfile = pq.ParquetFile(mixed)
    assert pfile.schema_arrow.equals(REPORT_SCHEMA)
    assert str(pfile.metadata.row_group(0).column(0).compression) == "ZSTD"
    assert pq.read_table(mixed, schema=REPORT_SCHEMA).to_pylist() == [rows["young-a"], rows["young-b"]]
    lines = (root / "reports" / "reports-00000-of-00001.jsonl").read_text().splitlines()
    assert lines == [to_json_line(rows["young-a"]), to_json_line(rows["young-b"])]  # byte for byte
    assert not (root / "reports" / "reports-old-only.parquet").exists()
    assert not (root / "reports" / "reports-old-only.jsonl").exists()
    assert sorted(p.name for p in (root / "reports").iterdir()) == [
        "reports-00000-of-00001.jsonl", "reports-00000-of-00001.parquet"]  # no temp file left
    assert sorted(p.name for p in (root / "review").iterdir()) == ["rev-young.parquet"]
    assert deleted_stats(root) == {"reports": 3, "review": 1, "evidence": 3}


def test_deletion_log_holds_exactly_the_deleted_ids(store, caplog):
    root, settings = store["root"], store["settings"]
    populate(root)
    with caplog.at_level(logging.INFO, logger="csadetect.compliance.retention"):
        run_retention(settings, NOW)
    entries = deletion_log(root)
    assert all(set(e) == {"at", "store", "id"} and e["at"] == utc_iso(NOW) for e in entries)
    assert sorted((e["store"], e["id"]) for e in entries) == sorted([
        ("reports", "old-a"), ("reports", "old-b"), ("reports", "old-c"),
        ("evidence", "old-a"), ("evidence", "old-c"), ("evidence", "rev-old"), ("review", "rev-old"),
    ])
    written = "".join(p.read_text() for p in (root / "retention").iterdir())
    written += "".join(p.read_text() for p in (root / "stats").iterdir()) + caplog.text
    for rid in ("old-a", "old-b", "old-c", "rev-old"):
        for leak in (f"account-of-{rid}", f"event-of-{rid}", f"sealed-{rid}", "192.0.2.7", "ab" * 32):
            assert leak not in written
    assert "deleted reports old-a" in caplog.text
    stats_text = "".join(p.read_text() for p in (root / "stats").iterdir())
    assert "old-a" not in stats_text and "rev-old" not in stats_text  # stats never hold ids


def test_hold_keeps_an_old_report_until_released(store):
    root, settings = store["root"], store["settings"]
    populate(root)
    set_hold(settings, "old-a", "LE request ref 42", NOW - timedelta(days=1))
    set_hold(settings, "rev-old", "LE request ref 43", NOW - timedelta(days=1))
    assert sorted(active_holds(settings)) == ["old-a", "rev-old"]

    first = run_retention(settings, NOW)
    assert sorted(first.deleted["reports"]) == ["old-b", "old-c"]
    assert first.deleted["review"] == [] and first.held == {"old-a", "rev-old"}
    kept = pq.read_table(root / "reports" / "reports-00000-of-00001.parquet").column("report_id").to_pylist()
    assert kept == ["old-a", "young-a", "young-b"]
    assert (root / "review" / "rev-old.parquet").exists()

    release_hold(settings, "old-a", NOW)
    release_hold(settings, "rev-old", NOW)
    assert active_holds(settings) == {}
    second = run_retention(settings, NOW + timedelta(hours=1))
    assert {s: ids for s, ids in second.deleted.items() if ids} == {"reports": ["old-a"], "review": ["rev-old"], "evidence": ["old-a", "rev-old"]}
    kept = pq.read_table(root / "reports" / "reports-00000-of-00001.parquet").column("report_id").to_pylist()
    assert kept == ["young-a", "young-b"]
    assert not (root / "review" / "rev-old.parquet").exists()
    ids = [e["id"] for e in deletion_log(root) if e["store"] == "reports"]
    assert sorted(ids) == ["old-a", "old-b", "old-c"]


def test_holds_latest_line_wins_and_refusals(store):
    settings = store["settings"]
    set_hold(settings, "r-1", "first", NOW)
    set_hold(settings, "r-1", "second", NOW)
    assert active_holds(settings)["r-1"]["reason"] == "second"
    release_hold(settings, "r-1", NOW)
    set_hold(settings, "r-1", "third", NOW)
    assert active_holds(settings)["r-1"]["reason"] == "third"
    with pytest.raises(RetentionError, match="not on hold"):
        release_hold(settings, "r-2", NOW)
    with pytest.raises(RetentionError, match="needs a reason"):
        set_hold(settings, "r-2", "   ", NOW)
    with pytest.raises(RetentionError, match="longer than"):
        set_hold(settings, "r-2", "x" * 500, NOW)
    with pytest.raises(RetentionError, match="report id"):
        set_hold(settings, "../etc", "why", NOW)


def test_dry_run_deletes_nothing(store):
    root, settings = store["root"], store["settings"]
    populate(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    result = run_retention(settings, NOW, dry_run=True)
    assert core(result.counts()) == {"reports": 3, "review": 1, "evidence": 3}
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert after == before
    assert deletion_log(root) == [] and not (root / "stats").exists()


def test_second_run_is_idempotent(store):
    root, settings = store["root"], store["settings"]
    populate(root)
    run_retention(settings, NOW)
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    again = run_retention(settings, NOW)
    assert core(again.counts()) == {"reports": 0, "review": 0, "evidence": 0}
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files
    assert len(deletion_log(root)) == 7
    assert deleted_stats(root) == {"reports": 3, "review": 1, "evidence": 3}


def test_young_reports_untouched_and_undated_rows_kept(store):
    root, settings = store["root"], store["settings"]
    undated = report("undated", OLD)
    undated["created_at"] = "not a time"
    write_parquet(root / "reports" / "r.parquet", [report("young-a", YOUNG), undated])
    (root / "reports" / "r.jsonl").write_text(to_json_line(undated) + "\n{broken\n", encoding="utf-8")
    before = {p: p.read_bytes() for p in (root / "reports").iterdir()}
    result = run_retention(settings, NOW)
    assert core(result.counts()) == {"reports": 0, "review": 0, "evidence": 0}
    assert result.undated == 3
    assert {p: p.read_bytes() for p in (root / "reports").iterdir()} == before


def test_boundary_is_retention_days(store):
    root, settings = store["root"], store["settings"]
    write_parquet(root / "reports" / "r.parquet", [
        report("just-inside", NOW - timedelta(days=365) + timedelta(seconds=1)),
        report("just-past", NOW - timedelta(days=365) - timedelta(seconds=1)),
    ])
    assert run_retention(settings, NOW).deleted["reports"] == ["just-past"]


def test_unreadable_file_is_reported_and_the_rest_done(store):
    root, settings = store["root"], store["settings"]
    (root / "reports" / "broken.parquet").write_bytes(b"PAR1 not really")
    write_jsonl(root / "reports" / "r.jsonl", [report("old-a", OLD)])
    result = run_retention(settings, NOW)
    assert result.deleted["reports"] == ["old-a"]
    assert len(result.errors) == 1 and "broken.parquet" in result.errors[0]


def test_stale_temp_file_removed_and_one_run_at_a_time(store):
    import fcntl
    import os

    root, settings = store["root"], store["settings"]
    write_jsonl(root / "reports" / ".retention-abc123.jsonl", [report("old-a", OLD)])  # an interrupted run's
    run_retention(settings, NOW)
    assert list((root / "reports").iterdir()) == []
    fd = os.open(root / "retention" / ".retention.lock", os.O_WRONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(RetentionError, match="another retention run"):
            run_retention(settings, NOW)
        assert run_retention(settings, NOW, dry_run=True).dry_run  # a dry run needs no lock
    finally:
        os.close(fd)


def test_remote_store_is_refused_with_one_line(store):
    settings = load_settings(store["config"], {"sinks": {"report_dir": "gs://bucket/reports"}})
    with pytest.raises(RetentionError, match="not a local path") as exc:
        run_retention(settings, NOW)
    assert "\n" not in str(exc.value)


# ----------------------------------------------------------------------------------------- CLI


def cli(config: str, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="csadetect")
    parser.add_argument("--config", default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["--config", config, *argv])
    return args.func(args)


def test_cli_run_hold_release(store, capsys):
    root, config = store["root"], store["config"]
    populate(root)
    now = utc_iso(NOW)
    assert cli(config, "retention", "hold", "old-a", "--reason", "LE ref 7", "--now", now) == 0
    capsys.readouterr()
    assert cli(config, "retention", "holds") == 0
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["report_id"] for line in out] == ["old-a"]

    assert cli(config, "retention", "run", "--now", now, "--dry-run") == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert summary["dry_run"] is True and core(summary["deleted"]) == {"reports": 2, "review": 1, "evidence": 2}
    assert "would delete" in cap.err and summary["held"] == 1

    assert cli(config, "retention", "run", "--now", now) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dry_run"] is False and core(summary["deleted"]) == {"reports": 2, "review": 1, "evidence": 2}

    assert cli(config, "retention", "release", "old-a", "--now", now) == 0
    capsys.readouterr()
    assert cli(config, "retention", "run", "--now", now) == 0
    assert core(json.loads(capsys.readouterr().out)["deleted"]) == {"reports": 1, "review": 0, "evidence": 1}


def test_cli_errors_are_one_line(store, capsys):
    config = store["config"]
    assert cli(config, "retention", "release", "nobody") == 1
    assert cli(config, "retention", "run", "--now", "yesterday") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: report nobody is not on hold", "error: --now is not an RFC 3339 time: 'yesterday'"]


def test_cli_holds_file_not_utf8_is_one_line(store, capsys):
    holds = store["root"] / "holds.jsonl"
    holds.write_bytes(b"\xbc\xff\x00 not text\n")
    assert cli(store["config"], "retention", "holds") == 1
    assert capsys.readouterr().err == f"error: {holds}:1: not valid JSON\n"
    assert holds.read_bytes() == b"\xbc\xff\x00 not text\n"


def test_cli_run_refuses_before_deleting_when_stats_dir_or_console_db_is_wrong(store, tmp_path, capsys):
    """A file where stores.stats_dir should be, or a console.db that is not SQLite: one line, exit 1,
    and nothing deleted (before: every old report deleted, then a failure writing the counters; or a
    sqlite3 traceback)."""
    root = store["root"]
    populate(root)
    before = sorted(p.name for p in (root / "reports").iterdir())
    not_a_dir = tmp_path / "stats-file"
    not_a_dir.write_text("x\n")
    not_sqlite = tmp_path / "console.db"
    not_sqlite.write_text("not a database\n")
    for key, value, message in (
            ("stores", {"stats_dir": str(not_a_dir)}, f"error: stores.stats_dir {not_a_dir} is not a directory: "
                                                     "nothing deleted\n"),
            ("console", {"db": str(not_sqlite)}, f"error: console database {not_sqlite} is not an SQLite database")):
        overrides = json.loads(Path(store["config"]).read_text())
        overrides[key].update(value)
        config = tmp_path / f"{key}.yaml"
        config.write_text(json.dumps(overrides))
        assert cli(str(config), "retention", "run", "--now", utc_iso(NOW)) == 1
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
        assert sorted(p.name for p in (root / "reports").iterdir()) == before
        assert deletion_log(root) == []
    assert not_sqlite.read_text() == "not a database\n" and not Path(f"{not_sqlite}.cache").exists()


def test_a_kept_review_decision_past_retention_goes(store):
    """The pipeline keeps a decided item's verdict and report a day (``ReviewStore.decide``, under the
    run's ``_decided`` folder); one left behind past retention (a stopped pipeline never swept it) is
    deleted and logged like a review item."""
    from csadetect.review.store import DECIDED, DECISION_SCHEMA

    root, settings = store["root"], store["settings"]
    folder = root / "review" / "run-1" / DECIDED
    folder.mkdir(parents=True)
    for rid, at in (("dec-old", OLD), ("dec-young", YOUNG)):
        write_parquet(folder / f"{rid}.parquet", [{"report_id": rid, "created_at": utc_iso(at), "report": "{}"}],
                      DECISION_SCHEMA)
    result = run_retention(settings, NOW)
    assert result.deleted["review"] == ["dec-old"]
    assert sorted(p.name for p in folder.iterdir()) == ["dec-young.parquet"]
