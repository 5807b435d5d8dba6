"""The streaming feedback pipeline against the real Pub/Sub emulator: reports on one topic, EU Centre
verdicts on another; precision, alerts and examples arrive as files, notifications on a topic.
A later verdict that supersedes one already counted corrects precision instead of adding to it."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pubsub_emulator import PubSubAdmin, stop

pytestmark = [pytest.mark.emulator, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent

NEW = ("new-material-classifier", "clf-stream-v1", "new")
KNOWN = ("known-hash", "indicators-v9", "known")
CREATED = "2026-11-01T08:00:00Z"
DUE_3M = "2027-01-30T08:00:00Z"  # CREATED + 90 days




def _report(rid, detector, n):
    name, version, kind = detector
    return {
        "report_id": rid, "schema_version": "1.2", "provider_id": "prov-stream", "created_at": CREATED,
        "detection_type": kind, "detector": name, "detector_version": version,
        "score": 0.9 + n / 100 if kind == "new" else None, "threshold": 0.85 if kind == "new" else None,
        "distance": 4.0 + n if kind == "known" else None, "service": "photos",
        "account": f"stream-account-{rid}", "event_id": f"stream-event-{rid}", "ip": "192.0.2.7",
        "occurred_at": "2026-11-01T07:59:00Z", "review_status": "auto_confirmed",
    }


def _verdict(rid, verdict, day, **extra):
    return dict({"report_id": rid, "verdict": verdict, "reason": "stream reason",
                 "decided_at": f"2026-11-{day:02d}T12:00:00Z", "delay_notification": False}, **extra)


def _latest(messages):
    """Latest notification per id, ordered as consumers must order them (not by arrival)."""
    from csadetect.feedback.notifications import supersedes

    out = {}
    for m in messages:
        record = json.loads(m.data)
        assert m.attributes["notification_id"] == record["notification_id"]
        old = out.get(record["notification_id"])
        if old is None or supersedes(record, old):
            out[record["notification_id"]] = record
    return out


def _records(out_dir, prefix):
    rows = []
    for path in sorted(glob.glob(str(out_dir / "*" / f"{prefix}-*.jsonl"))):  # the run's directory
        rows += [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return rows


def _wait(check, timeout, what, proc, log_path, tick=None):
    """Poll ``check`` until it returns something true. ``tick`` publishes a harmless message: the
    DirectRunner moves a Pub/Sub read's watermark (wall clock) only when a pull returns, and an
    idle pull waits up to 30 s, so windowed file output of a quiet stream would lag by that much."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            break
        if tick is not None:
            tick()
        time.sleep(1)
    logs = log_path.read_text(errors="replace")[-3000:]
    pytest.fail(f"timed out waiting for {what}; pipeline log tail:\n{logs}")


def test_stream_feedback(emulator, tmp_path):
    from csadetect.feedback.notifications import notification_id

    admin = PubSubAdmin(emulator)
    reports_topic = admin.topic("fb-reports")
    reports_sub = admin.subscription(reports_topic, "fb-reports-pipeline")
    verdicts_topic = admin.topic("fb-verdicts")
    verdicts_sub = admin.subscription(verdicts_topic, "fb-verdicts-pipeline")
    notes_topic = admin.topic("fb-notifications")
    notes_sub = admin.subscription(notes_topic, "fb-notifications-reader")

    reports = [_report(f"sa{i}", NEW, i) for i in range(4)] + [_report(f"sb{i}", KNOWN, i) for i in range(3)]
    reports.append(_report("sc0", NEW, 9))  # no verdict: notified three months after the report
    verdicts = [
        _verdict("sa0", "confirmed", 10), _verdict("sa2", "confirmed", 10), _verdict("sa3", "confirmed", 11),
        _verdict("sa1", "manifestly_unfounded", 11, delay_notification=True, delay_until="2027-03-01T00:00:00Z"),
        _verdict("sb0", "confirmed", 12), _verdict("sb1", "manifestly_unfounded", 12),
        _verdict("sb2", "manifestly_unfounded", 13),
        _verdict("unknown-stream-report", "confirmed", 13),
    ]
    out_dir = tmp_path / "feedback"
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=emulator, PYTHONPATH=str(REPO))
    log_path = tmp_path / "pipeline.log"
    cmd = [
        sys.executable, "-m", "csadetect.pipelines.feedback", "--streaming", "--runner", "DirectRunner",
        "--report_subscription", reports_sub, "--verdict_subscription", verdicts_sub,
        "--notifications_topic", notes_topic, "--notifications_dir", "", "--out_dir", str(out_dir),
        "--precision_floor", "0.5", "--min_verdicts", "3", "--window_seconds", "2",
        "--unknown_grace_seconds", "5",
    ]
    notes = []

    def tick():  # an invalid verdict and report: counted as bad and dropped
        admin.publish(reports_topic, b"{}")
        admin.publish(verdicts_topic, b"{}")

    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            for r in reports:
                admin.publish(reports_topic, json.dumps(r).encode(), report_id=r["report_id"])
            for v in verdicts:
                admin.publish(verdicts_topic, json.dumps(v).encode())
            admin.publish(verdicts_topic, b"{not json")

            expected = {
                "sa0": ("three_months", "scheduled", DUE_3M),
                "sa1": ("manifestly_unfounded", "delayed", "2027-03-01T00:00:00Z"),
                "sa2": ("three_months", "scheduled", DUE_3M),
                "sa3": ("three_months", "scheduled", DUE_3M),
                "sb0": ("three_months", "scheduled", DUE_3M),
                "sb1": ("manifestly_unfounded", "scheduled", None),  # due at once: the time it was scheduled
                "sb2": ("manifestly_unfounded", "scheduled", None),
                "sc0": ("three_months", "scheduled", DUE_3M),
            }

            def notes_match():
                notes.extend(admin.pull(notes_sub))
                latest = _latest(notes)
                got = {r["report_id"]: (r["trigger"], r["status"], r["due_at"]) for r in latest.values()}
                want = {k: v if v[2] is not None else (v[0], v[1], got.get(k, (0, 0, None))[2])
                        for k, v in expected.items()}
                return got == want and all(got[k][2] for k in ("sb1", "sb2")) and latest

            latest = _wait(notes_match, 60, "the notifications", proc, log_path, tick)
            for rid, record in ((r["report_id"], r) for r in latest.values()):
                assert record["notification_id"] == notification_id(rid)
                assert record["account"] == f"stream-account-{rid}" and record["provider_id"] == "prov-stream"
                assert set(record) == {"notification_id", "report_id", "provider_id", "service", "account",
                                       "due_at", "trigger", "status", "decided_at"}

            def precision_is(detector, confirmed, n):
                return lambda: [p for p in _records(out_dir, "precision")
                                if (p["detector"], p["detector_version"]) == detector[:2]
                                and p["confirmed"] == confirmed and p["verdicts"] == n]

            _wait(precision_is(NEW, 3, 4), 30, "precision 3/4 for the classifier", proc, log_path, tick)
            _wait(precision_is(KNOWN, 1, 3), 30, "precision 1/3 for the hash matcher", proc, log_path, tick)
            alerts = _wait(lambda: _records(out_dir, "alerts"), 30, "the alert", proc, log_path, tick)
            assert [(a["detector"], a["detector_version"], a["verdicts"]) for a in alerts] == [
                (KNOWN[0], KNOWN[1], 3)]
            assert alerts[0]["precision"] == pytest.approx(1 / 3) and alerts[0]["floor"] == 0.5

            # the Centre revises sb1: counted once (3 verdicts, now 2 confirmed), notification replaced
            admin.publish(verdicts_topic, json.dumps(_verdict("sb1", "confirmed", 20)).encode())
            _wait(precision_is(KNOWN, 2, 3), 30, "the corrected precision 2/3", proc, log_path, tick)

            def revised():
                notes.extend(admin.pull(notes_sub))
                record = _latest(notes).get(notification_id("sb1"))
                return record if record and record["trigger"] == "three_months" else None

            record = _wait(revised, 30, "the revised notification", proc, log_path, tick)
            assert record["status"] == "scheduled" and record["due_at"] == DUE_3M
            def revised_example():
                rows = _records(out_dir, "examples-known")
                return rows if len(rows) >= 4 else None

            examples = _wait(revised_example, 30, "the revised example", proc, log_path, tick)
            time.sleep(3)  # anything extra would arrive now
            notes.extend(admin.pull(notes_sub))
            alerts = _records(out_dir, "alerts")
        finally:
            stop(proc)
    admin.close()
    logs = log_path.read_text(errors="replace")
    assert len(alerts) == 1, alerts  # recovering above the floor raises nothing
    alert_lines = [line for line in logs.splitlines() if line.startswith("ALERT")]
    assert len(alert_lines) == 1 and "detector=known-hash" in alert_lines[0] and "n=3" in alert_lines[0]
    assert "unknown-stream-report" not in {json.loads(m.data)["report_id"] for m in notes}
    examples_new = _records(out_dir, "examples-new")
    assert sorted(e["label"] for e in examples_new) == ["confirmed"] * 3 + ["manifestly_unfounded"]
    assert sorted(e["label"] for e in examples) == ["confirmed", "confirmed", "manifestly_unfounded",
                                                    "manifestly_unfounded"]  # sb1 as first decided, then revised
    # no id or personal data anywhere but in the notifications, and nothing in the logs
    files_text = "".join(Path(p).read_text() for p in glob.glob(str(out_dir / "*" / "*.jsonl")))
    for r in reports:
        for secret in (r["report_id"], r["account"], r["event_id"]):
            assert secret not in files_text
            assert secret not in logs
    assert "stream reason" not in logs and "unknown-stream-report" not in logs
