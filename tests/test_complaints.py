"""Complaints (Art. 34): the append-only event log, outcomes, counts, the CLI, and pulling from
the real Pub/Sub emulator (malformed and redelivered messages included)."""
from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

import pytest

from csadetect.cli.complaints import register
from csadetect.compliance.complaints import (
    LOG_NAME, ComplaintError, PullResult, _take, add_complaint, complaints_state, counts, parse_message,
    pull_complaints, read_events, record_outcome,
)
from csadetect.config.settings import load_settings


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.fixture
def cdir(tmp_path):
    return str(tmp_path / "complaints")


def test_add_resolve_list(cdir):
    a = add_complaint(cdir, "wrongly_detected", report_id="r-1", at=t("2026-11-01T10:00:00"))
    b = add_complaint(cdir, "account_action", at="2026-11-02T10:00:00Z")
    assert a["complaint_id"].startswith("cmp-") and len(a["complaint_id"]) == 16
    assert a == {"complaint_id": a["complaint_id"], "event": "received", "at": "2026-11-01T10:00:00Z",
                 "report_id": "r-1", "channel": "cli", "grounds": "wrongly_detected"}
    assert [c["status"] for c in complaints_state(cdir)] == ["open", "open"]

    out = record_outcome(cdir, a["complaint_id"], "upheld", note="  ticket\n 77 ", at="2026-11-05T10:00:00Z")
    assert out == {"complaint_id": a["complaint_id"], "event": "outcome", "at": "2026-11-05T10:00:00Z",
                   "outcome": "upheld", "note": "ticket 77"}
    state = {c["complaint_id"]: c for c in complaints_state(cdir)}
    assert state[a["complaint_id"]]["status"] == "upheld"
    assert state[a["complaint_id"]]["decided_at"] == "2026-11-05T10:00:00Z"
    assert state[b["complaint_id"]]["status"] == "open"
    assert [c["complaint_id"] for c in complaints_state(cdir, "open")] == [b["complaint_id"]]
    assert [c["complaint_id"] for c in complaints_state(cdir, "upheld")] == [a["complaint_id"]]
    events = read_events(cdir)  # the log is append-only: three events, in order
    assert [e["event"] for e in events] == ["received", "received", "outcome"]


def test_refusals_are_one_line(cdir):
    a = add_complaint(cdir, "other")
    cases = [
        (lambda: record_outcome(cdir, a["complaint_id"], "accepted"), "outcome must be one of"),
        (lambda: record_outcome(cdir, "cmp-nosuchthing", "upheld"), "no complaint cmp-nosuchthing"),
        (lambda: add_complaint(cdir, "because I said so"), "grounds must be one of"),
        (lambda: add_complaint(cdir, "other", report_id="bad id with spaces"), "report_id must be"),
        (lambda: add_complaint(cdir, "other", channel="email"), "channel must be one of"),
        (lambda: record_outcome(cdir, a["complaint_id"], "rejected", note="x" * 201), "longer than 200"),
        (lambda: complaints_state(cdir, "closed"), "status must be one of"),
        (lambda: add_complaint(cdir, "other", at="last tuesday"), "RFC 3339"),
    ]
    for call, message in cases:
        with pytest.raises(ComplaintError, match=message) as exc:
            call()
        assert "\n" not in str(exc.value)
    record_outcome(cdir, a["complaint_id"], "withdrawn")
    with pytest.raises(ComplaintError, match="already decided \\(withdrawn\\)"):
        record_outcome(cdir, a["complaint_id"], "upheld")
    assert complaints_state(cdir)[0]["status"] == "withdrawn"
    assert len(read_events(cdir)) == 2  # nothing refused was written


def test_counts_in_a_date_range(cdir):
    ids = {}
    for name, grounds, at in [
        ("before", "other", "2026-09-30T23:59:59Z"),
        ("a", "wrongly_detected", "2026-10-01T00:00:00Z"),
        ("b", "wrongly_detected", "2026-10-15T00:00:00Z"),
        ("c", "content_removed", "2026-11-20T00:00:00Z"),
        ("d", "account_action", "2026-12-30T00:00:00Z"),
        ("after", "other", "2027-01-01T00:00:00Z"),
    ]:
        ids[name] = add_complaint(cdir, grounds, at=at)["complaint_id"]
    record_outcome(cdir, ids["before"], "rejected", at="2026-10-02T00:00:00Z")  # decided in range
    record_outcome(cdir, ids["a"], "upheld", at="2026-10-03T00:00:00Z")
    record_outcome(cdir, ids["b"], "rejected", at="2026-10-20T00:00:00Z")
    record_outcome(cdir, ids["c"], "upheld", at="2027-01-05T00:00:00Z")  # decided after the range
    got = counts(cdir, t("2026-10-01T00:00:00"), t("2027-01-01T00:00:00"))
    assert got == {
        "start": "2026-10-01T00:00:00Z", "end": "2027-01-01T00:00:00Z",
        "received": 4,
        "grounds": {"wrongly_detected": 2, "account_action": 1, "content_removed": 1, "other": 0},
        "channels": {"cli": 4, "topic": 0},
        "outcomes": {"upheld": 1, "rejected": 2, "withdrawn": 0},
        "open": 2,  # c (decided only after the range) and d
        "median_days_to_outcome": 2.0,  # of 1 day and a second, 2 days, 5 days
    }
    assert counts(cdir)["received"] == 6
    assert not any(i in json.dumps(got) for i in ids.values())  # counts carry no ids


def test_parse_message_never_quotes_the_body():
    assert parse_message(b'{"grounds": "other", "text": "my secret words"}') == {
        "report_id": None, "grounds": "other", "received_at": None}
    assert parse_message(b'{"grounds": "other", "report_id": "r-9", "received_at": "2026-11-28T11:00:00+01:00"}') == {
        "report_id": "r-9", "grounds": "other", "received_at": "2026-11-28T10:00:00Z"}
    for body in (b"secret-words{", b'["secret-words"]', b'{"grounds": "secret-words"}', b"\xff\xfe",
                 b'{"grounds": "other", "report_id": "secret words"}',
                 b'{"grounds": "other", "received_at": "secret-words"}'):
        with pytest.raises(ComplaintError) as exc:
            parse_message(body)
        assert "secret" not in str(exc.value)


def test_remote_directory_is_refused(tmp_path):
    with pytest.raises(ComplaintError, match="not a local path"):
        add_complaint("gs://bucket/complaints", "other")


# ----------------------------------------------------------------------------------------- CLI


@pytest.fixture
def config(tmp_path, cdir):
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"stores": {"complaints_dir": cdir, "stats_dir": str(tmp_path / "stats")}}))
    return str(path)


def cli(config: str, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="csadetect")
    parser.add_argument("--config", default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["--config", config, *argv])
    return args.func(args)


def test_cli_add_resolve_list(config, capsys):
    assert cli(config, "complaints", "add", "--report-id", "r-1", "--grounds", "wrongly_detected") == 0
    added = json.loads(capsys.readouterr().out)
    assert added["event"] == "received" and added["channel"] == "cli" and added["report_id"] == "r-1"
    cid = added["complaint_id"]
    assert cli(config, "complaints", "add", "--grounds", "other") == 0
    capsys.readouterr()

    assert cli(config, "complaints", "resolve", cid, "--outcome", "rejected", "--note", "ref 5") == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "rejected"
    assert cli(config, "complaints", "resolve", cid, "--outcome", "upheld") == 1
    assert capsys.readouterr().err.strip() == f"error: complaint {cid} is already decided (rejected)"
    assert cli(config, "complaints", "resolve", cid, "--outcome", "maybe") == 1
    assert capsys.readouterr().err.strip().startswith("error: outcome must be one of")

    assert cli(config, "complaints", "list") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [c["status"] for c in lines] == ["rejected", "open"]
    assert cli(config, "complaints", "list", "--status", "open") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 1 and lines[0]["grounds"] == "other"
    assert cli(config, "complaints", "counts") == 0
    assert json.loads(capsys.readouterr().out)["outcomes"]["rejected"] == 1


def test_cli_counts_takes_days_as_the_transparency_report_does(config, capsys):
    """--start/--end: a day (00:00 UTC) or an RFC 3339 time, the same rule as ``transparency --from``."""
    for at in ("2026-03-01T10:00:00Z", "2026-03-31T23:59:59Z", "2026-04-01T00:00:00Z"):
        assert cli(config, "complaints", "add", "--grounds", "other", "--at", at) == 0
    capsys.readouterr()
    assert cli(config, "complaints", "counts", "--start", "2026-03-01", "--end", "2026-04-01") == 0
    by_day = json.loads(capsys.readouterr().out)
    assert cli(config, "complaints", "counts", "--start", "2026-03-01T00:00:00Z", "--end", "2026-04-01T00:00:00") == 0
    assert json.loads(capsys.readouterr().out) == by_day and by_day["received"] == 2
    assert cli(config, "complaints", "counts", "--start", "2026-02-30") == 1
    assert capsys.readouterr().err.strip() == ("error: --start: not a valid date: '2026-02-30' "
                                               "(use YYYY-MM-DD or RFC 3339)")


# -------------------------------------------------------------------------------- the emulator




@pytest.mark.emulator
@pytest.mark.slow
def test_pull_from_the_emulator(emulator, config, cdir, capsys, monkeypatch):
    from tests.pubsub_emulator import PubSubAdmin

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator)
    admin = PubSubAdmin(emulator)
    topic = admin.topic("complaints")
    sub = admin.subscription(topic, "complaints-handler")
    admin.publish(topic, json.dumps({"report_id": "r-1", "grounds": "wrongly_detected",
                                     "received_at": "2026-11-28T10:00:00Z", "text": "free text never kept"}).encode())
    admin.publish(topic, json.dumps({"grounds": "account_action"}).encode())
    admin.publish(topic, b"{not json at all: private words")
    admin.publish(topic, json.dumps({"grounds": "private words"}).encode())

    settings = load_settings(config)
    result = pull_complaints(settings, sub, max_messages=10, timeout=10)
    assert result.pulled == 4 and len(result.added) == 2 and result.rejected == 2 and result.duplicates == 0
    err = capsys.readouterr().err
    assert err.count("rejected complaint message") == 2 and "private" not in err
    state = {c["report_id"]: c for c in complaints_state(cdir)}
    assert state["r-1"]["channel"] == "topic" and state["r-1"]["received_at"] == "2026-11-28T10:00:00Z"
    assert state["r-1"]["grounds"] == "wrongly_detected" and state[None]["grounds"] == "account_action"
    assert state[None]["received_at"]  # the publish time
    assert "free text" not in open(f"{cdir}/{LOG_NAME}").read() and "private" not in open(f"{cdir}/{LOG_NAME}").read()

    # everything was acked: nothing comes back
    assert admin.pull(sub) == []
    # the CLI: one more message, then a summary line
    admin.publish(topic, json.dumps({"grounds": "content_removed", "report_id": "r-2"}).encode())
    assert cli(config, "complaints", "pull", "--subscription", sub, "--max", "5", "--timeout", "5") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["added"] == 1 and summary["rejected"] == 0 and len(complaints_state(cdir)) == 3
    assert cli(config, "complaints", "pull", "--subscription", "not/a/subscription") == 1
    assert capsys.readouterr().err.strip() == "error: subscription must look like projects/P/subscriptions/S"
    admin.close()


@pytest.mark.emulator
@pytest.mark.slow
def test_redelivered_message_is_recorded_once(emulator, config, cdir, monkeypatch):
    """A message whose ack was lost comes back: the same complaint id, so it is not recorded twice."""
    from google.cloud import pubsub_v1

    from tests.pubsub_emulator import PubSubAdmin

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator)
    admin = PubSubAdmin(emulator)
    topic = admin.topic("complaints-redelivery")
    sub = admin.subscription(topic, "complaints-redelivery-handler")
    admin.publish(topic, json.dumps({"grounds": "other", "report_id": "r-9"}).encode())
    client = pubsub_v1.SubscriberClient()
    resp = client.pull(request={"subscription": sub, "max_messages": 1}, timeout=10)
    first = PullResult()
    _take(cdir, sub, resp.received_messages[0].message, first)  # written, but never acked
    client.modify_ack_deadline(request={"subscription": sub, "ack_ids": [resp.received_messages[0].ack_id],
                                        "ack_deadline_seconds": 0})  # redeliver now
    client.close()
    result = pull_complaints(load_settings(config), sub, max_messages=5, timeout=10)
    assert result.pulled == 1 and result.duplicates == 1 and result.added == []
    assert [c["report_id"] for c in complaints_state(cdir)] == ["r-9"]
    assert admin.pull(sub) == []
    admin.close()
