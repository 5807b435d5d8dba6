"""Human review: the review store, verdicts (confirm -> signed report, reject -> nothing), expiry,
and the `csadetect review` command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from csadetect.reports import crypto
from csadetect.reports.crypto import ReportKeys
from csadetect.reports.records import grooming_report
from csadetect.reports.schema import REVIEW_SCHEMA, report_id
from csadetect.review.store import ReviewError, ReviewStore, apply_verdict, expire, parse_verdict, review_item
from csadetect.transforms.review import ExpireReviewFn
from csadetect.config.settings import ProviderSettings, load_settings
from csadetect.core.stats import read_stats

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def _report(event_id: str, detector: str = "new-material-classifier") -> dict:
    r = {k: None for k in REVIEW_SCHEMA.names}
    r.update(report_id=report_id("p", event_id, detector), schema_version="1.2", provider_id="p",
             created_at="2026-11-01T12:00:00Z", detection_type="new", detector=detector, detector_version="m1",
             score=0.97, threshold=0.93, indicator_ids=[], categories=[], matches=[], content_kind="image",
             mime="image/jpeg", event_id=event_id, service="photos", occurred_at="2026-11-01T11:59:00Z",
             account="acct-secret-77", legal_basis="detection order O-1 issued by A (Art. 7)", order_id="O-1",
             content_removed=False, urgent=False, account_action="none")
    return r


@pytest.fixture
def setup(tmp_path, report_keys):
    keys = ReportKeys.load(load_settings(overrides={"reports": report_keys["reports"]}).reports)
    store = ReviewStore(str(tmp_path / "review"))
    items = {}
    for eid in ("e-1", "e-2", "e-3"):
        token = crypto.seal_content(f"benign picture {eid}".encode(), "image/jpeg", keys.evidence_public(), eid)
        item = review_item(_report(eid), token, ttl_seconds=3600, now=T0)
        store.put(item)
        items[eid] = item
    return {"keys": keys, "store": store, "items": items, "paths": report_keys["paths"], "tmp": tmp_path}


def test_store_roundtrip_and_ids(setup):
    store, items = setup["store"], setup["items"]
    assert store.ids() == sorted(i["report_id"] for i in items.values())
    got = store.get(items["e-1"]["report_id"])
    assert got == items["e-1"] and got["review_status"] == "pending" and got["expires_at"] == "2026-11-01T13:00:00Z"
    with pytest.raises(ReviewError, match="not a report id"):
        store.get("../../etc/passwd")
    assert ReviewStore(str(setup["tmp"] / "nothing-here")).ids() == []


def test_confirm_makes_a_signed_report_with_centre_evidence(setup):
    item = setup["items"]["e-1"]
    verdict = parse_verdict({"report_id": item["report_id"], "verdict": "confirm", "reviewer": "alice",
                             "decided_at": "2026-11-01T12:30:00Z"})
    report, stats = apply_verdict(setup["store"], verdict, setup["keys"])
    assert report["review_status"] == "confirmed" and report["reviewed_at"] == "2026-11-01T12:30:00Z"
    assert "review_evidence" not in report and "queued_at" not in report
    crypto.verify_report(report, setup["paths"]["provider_public_key"])
    mime, content = crypto.open_evidence(report, setup["paths"]["centre_private_key"])
    assert content == b"benign picture e-1" and mime == "image/jpeg"
    assert setup["store"].get(item["report_id"]) is None  # left the queue
    seconds = [s for s in stats if s["metric"] == "review_seconds"]
    assert [s["metric"] for s in stats].count("reported") == 1
    assert seconds[0]["value"] == 1800 and seconds[0]["labels"] == {"decision": "confirmed",
                                                                    "detector": "new-material-classifier"}
    with pytest.raises(ReviewError, match="no pending review item"):  # a second verdict
        apply_verdict(setup["store"], verdict, setup["keys"])


def test_reject_leaves_only_a_counter(setup):
    item = setup["items"]["e-2"]
    verdict = parse_verdict({"report_id": item["report_id"], "verdict": "reject", "reviewer": "bob"})
    report, stats = apply_verdict(setup["store"], verdict, setup["keys"])
    assert report is None and setup["store"].get(item["report_id"]) is None
    text = json.dumps(stats)
    for secret in (item["report_id"], "acct-secret-77", "e-2", "bob"):
        assert secret not in text
    assert {s["metric"] for s in stats} == {"review_decided", "review_seconds"}


def test_bad_verdicts_are_refused():
    for bad, why in [({"verdict": "confirm", "reviewer": "a"}, "report_id"),
                     ({"report_id": "ab" * 16, "verdict": "maybe", "reviewer": "a"}, "one of"),
                     ({"report_id": "ab" * 16, "verdict": "reject"}, "reviewer"),
                     ("{nope", "not JSON")]:
        with pytest.raises(ReviewError, match=why):
            parse_verdict(bad)


def test_expiry_deletes_items_and_logs_ids_only(setup):
    log_dir = str(setup["tmp"] / "deletions")
    deleted, stats = expire(setup["store"], T0 + timedelta(minutes=59), log_dir)
    assert deleted == [] and len(setup["store"].ids()) == 3
    deleted, stats = expire(setup["store"], T0 + timedelta(hours=1), log_dir)
    assert len(deleted) == 3 and setup["store"].ids() == []
    assert sum(s["value"] for s in stats if s["metric"] == "deleted" and s["labels"]["store"] == "evidence") == 3
    lines = [json.loads(l) for f in Path(log_dir).glob("*.jsonl") for l in f.read_text().splitlines()]
    assert sorted(l["id"] for l in lines) == sorted(deleted) and all(set(l) == {"at", "store", "id"} for l in lines)


def test_an_item_another_sweep_took_first_is_not_counted_twice(setup, monkeypatch):
    """Two sweeps at once (the pipeline's and ``csadetect review expire``): the one that finds the
    item gone between reading and deleting it neither fails nor counts it."""
    store = setup["store"]
    taken = setup["items"]["e-2"]["report_id"]
    read = store.get

    def get_then_lose(rid):
        item = read(rid)
        if rid == taken:
            os.remove(store.locate(rid))  # the other sweep deletes it now
        return item

    monkeypatch.setattr(store, "get", get_then_lose)
    deleted, stats = expire(store, T0 + timedelta(hours=2), str(setup["tmp"] / "deletions"))
    assert len(deleted) == 2 and taken not in deleted and store.ids() == []
    assert sum(s["value"] for s in stats if s["metric"] == "deleted" and s["labels"]["store"] == "review") == 2
    assert sum(s["value"] for s in stats if s["metric"] == "review_decided") == 2


def test_expiry_deletes_what_a_stopped_worker_left_half_written(setup):
    """A worker stopped between writing ``<id>.parquet.tmp`` and renaming it leaves a file no reader
    sees (it may hold sealed evidence): the sweep deletes it once it is an hour old, logs its id, and
    leaves a write under way and the pending items alone."""
    store, log_dir = setup["store"], str(setup["tmp"] / "deletions")
    rid = setup["items"]["e-1"]["report_id"]
    pending = Path(store.path(rid))
    old_item = pending.with_name("ab" * 16 + ".parquet.tmp")
    old_decision = pending.parent / "_decided" / ("cd" * 16 + ".parquet.tmp")
    fresh = pending.with_name("ef" * 16 + ".parquet.tmp")
    old_decision.parent.mkdir()
    for path in (old_item, old_decision, fresh):
        path.write_bytes(pending.read_bytes()[:100])  # half a file
    now = T0 + timedelta(minutes=30)  # the items expire at T0 + 1 h
    long_ago = (now - timedelta(hours=1, seconds=1)).timestamp()
    for path in (old_item, old_decision):
        os.utime(path, (long_ago, long_ago))
    os.utime(fresh, (now.timestamp() - 60, now.timestamp() - 60))
    deleted, stats = expire(store, now, log_dir)
    assert deleted == [] and len(store.ids()) == 3  # nothing pending had expired
    assert not old_item.exists() and not old_decision.exists() and fresh.exists()
    assert [s["value"] for s in stats if s["metric"] == "deleted" and s["labels"]["store"] == "review"] == [2]
    lines = [json.loads(l) for f in Path(log_dir).glob("*.jsonl") for l in f.read_text().splitlines()]
    assert sorted(l["id"] for l in lines) == ["ab" * 16, "cd" * 16]


def test_cli_decide_confirm_and_reject(setup, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({
        "reports": {k: v for k, v in setup["paths"].items() if k in ("signing_key", "evidence_key", "centre_public_key")},
        "sinks": {"review_dir": setup["store"].root, "report_dir": str(tmp_path / "reports")},
        "stores": {"stats_dir": str(tmp_path / "stats")},
    }))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "csadetect", "--config", str(cfg), "review", *argv],
                              cwd=REPO, capture_output=True, text=True, env=env, timeout=120)

    listed = cli("list")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3
    assert "review_evidence" not in listed.stdout and "acct-secret-77" not in listed.stdout
    one, two = setup["items"]["e-1"]["report_id"], setup["items"]["e-2"]["report_id"]
    shown = cli("show", one, "--evidence-out", str(tmp_path / "ev.bin"))
    assert shown.returncode == 0 and (tmp_path / "ev.bin").read_bytes() == b"benign picture e-1"
    assert (tmp_path / "ev.bin").stat().st_mode & 0o777 == 0o600  # decrypted evidence: owner only, whatever the umask
    ok = cli("decide", one, "--confirm", "--reviewer", "alice")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["reported"] is True
    (jsonl,) = (tmp_path / "reports").glob("*.jsonl")
    report = json.loads(jsonl.read_text())
    crypto.verify_report(report, setup["paths"]["provider_public_key"])
    rej = cli("decide", two, "--reject", "--reviewer", "bob")
    assert rej.returncode == 0 and json.loads(rej.stdout)["reported"] is False
    again = cli("decide", two, "--confirm", "--reviewer", "bob")
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "no pending review item" in again.stderr
    decided = [s for s in read_stats(str(tmp_path / "stats")) if s["metric"] == "review_decided"]
    assert sorted(s["labels"]["decision"] for s in decided) == ["confirmed", "rejected"]


def test_streaming_sweep_runs_at_most_once_per_interval(setup):
    """ExpireReviewFn is driven by traffic: the first element sweeps, the next ones within
    ``sweep_seconds`` do not. Items queued at T0 with a 1 h TTL are long expired by the real clock."""
    clock = {"t": 1000.0}
    fn = ExpireReviewFn(setup["store"].root, 60, None, clock=lambda: clock["t"])
    stats = list(fn.process("tick"))
    assert setup["store"].ids() == [] and sum(s["metric"] == "review_decided" for s in stats) == 3
    setup["store"].put(setup["items"]["e-1"])
    clock["t"] += 59
    assert list(fn.process("tick")) == [] and len(setup["store"].ids()) == 1
    clock["t"] += 1
    assert list(fn.process("tick")) and setup["store"].ids() == []


def _flag(patterns):
    return {
        "conversation_id": "conv-x", "score": 0.9, "threshold": 0.7, "flagged_at_message": 3, "model_version": "g1",
        "evidence": [{"pattern": p, "message_index": 1, "score": 0.9} for p in patterns],
        "messages": [{"index": i, "event_id": f"m{i}", "sender": "adult" if i % 2 else "kid", "sent_at": "t",
                      "text": f"benign message {i}"} for i in range(4)],
        "accounts": ["acct-adult", "acct-kid"], "sender_accounts": [("adult", "acct-adult"), ("kid", "acct-kid")],
        "provider": "p", "service": "chat", "event_id": "m3", "occurred_at": "2026-11-28T10:00:00Z",
        "order": ("O-1", "detection order O-1 issued by A (Art. 7)"),
    }


def test_grooming_report_is_urgent_on_a_meeting_request_and_carries_no_text():
    calm = grooming_report(_flag(["age_check", "secrecy"]), ProviderSettings())
    assert calm["urgent"] is False and calm["risk_patterns"] == ["age_check", "secrecy"]
    assert calm["account"] == "acct-adult"  # the sender of the risk messages
    assert calm["order_id"] == "O-1" and calm["conversation_id"] == "conv-x"
    assert "benign message" not in json.dumps(calm)
    urgent = grooming_report(_flag(["secrecy", "meeting"]), ProviderSettings())
    assert urgent["urgent"] is True
    assert grooming_report(_flag(["meeting"]), ProviderSettings(), urgent_patterns=())["urgent"] is False


def test_cli_keygen_refuses_to_replace_keys_without_force(tmp_path, capsys):
    """``review keygen`` takes ``--force`` as every other keygen does (``--overwrite``, its old name, still works)."""
    from csadetect.cli.main import main

    keys = tmp_path / "keys"
    assert main(["review", "keygen", "--out", str(keys)]) == 0
    first = (keys / "private.pem").read_bytes()
    capsys.readouterr()
    assert main(["review", "keygen", "--out", str(keys)]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and err.count("\n") == 1
    assert (keys / "private.pem").read_bytes() == first
    assert main(["review", "keygen", "--out", str(keys), "--force"]) == 0
    second = (keys / "private.pem").read_bytes()
    assert second != first
    assert main(["review", "keygen", "--out", str(keys), "--overwrite"]) == 0
    assert (keys / "private.pem").read_bytes() != second


def test_keygen_refusal_writes_nothing(tmp_path, capsys):
    """An existing evidence key alone refuses too, before a new signing key is written beside it."""
    from csadetect.cli.main import main

    keys = tmp_path / "keys"
    crypto.generate_evidence_keypair(keys)
    assert main(["review", "keygen", "--out", str(keys)]) == 1
    assert "evidence_private.pem already exists" in capsys.readouterr().err
    assert not (keys / "private.pem").exists()


def _cli_config(setup, tmp_path, **sections) -> str:
    cfg = {
        "reports": {k: v for k, v in setup["paths"].items()
                    if k in ("signing_key", "evidence_key", "centre_public_key")},
        "sinks": {"review_dir": setup["store"].root, "report_dir": str(tmp_path / "reports")},
        "stores": {"stats_dir": str(tmp_path / "stats")},
        "retention": {"log_dir": str(tmp_path / "retention")},
    }
    for name, values in sections.items():
        cfg[name].update(values)
    path = tmp_path / "cfg.yaml"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_cli_decide_keeps_the_item_when_the_report_cannot_be_written(setup, tmp_path, capsys):
    """A file where the report (or stats) directory should be: one line, exit 1, and the item is
    still pending (it was deleted before the report was written, and the report was lost)."""
    from csadetect.cli.main import main

    in_the_way = tmp_path / "in-the-way"
    in_the_way.write_text("not a directory\n")
    one = setup["items"]["e-1"]["report_id"]
    for sections, setting in (({"sinks": {"report_dir": str(in_the_way)}}, "sinks.report_dir"),
                              ({"stores": {"stats_dir": str(in_the_way)}}, "stores.stats_dir")):
        cfg = _cli_config(setup, tmp_path, **sections)
        assert main(["--config", cfg, "review", "decide", one, "--confirm", "--reviewer", "alice"]) == 1
        err = capsys.readouterr().err
        assert err == f"error: {setting} {in_the_way} is not a directory: nothing changed\n"
        assert setup["store"].get(one) == setup["items"]["e-1"]
    assert in_the_way.read_text() == "not a directory\n"


def test_apply_verdict_leaves_the_item_pending_when_delivery_fails(setup):
    one = setup["items"]["e-1"]["report_id"]

    def deliver(report):
        assert report is not None and report["review_status"] == "confirmed"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        apply_verdict(setup["store"], parse_verdict({"report_id": one, "verdict": "confirm", "reviewer": "a"}),
                      setup["keys"], deliver)
    assert setup["store"].get(one) == setup["items"]["e-1"]
    delivered = []
    apply_verdict(setup["store"], parse_verdict({"report_id": one, "verdict": "confirm", "reviewer": "a"}),
                  setup["keys"], delivered.append)
    assert len(delivered) == 1 and setup["store"].get(one) is None


def test_cli_show_refuses_to_replace_an_existing_evidence_file(setup, tmp_path, capsys):
    from csadetect.cli.main import main

    cfg = _cli_config(setup, tmp_path)
    one = setup["items"]["e-1"]["report_id"]
    target = tmp_path / "ev.bin"
    target.write_bytes(b"an earlier file")
    assert main(["--config", cfg, "review", "show", one, "--evidence-out", str(target)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"error: {target} exists; pass --force to replace it\n"
    assert target.read_bytes() == b"an earlier file"
    assert main(["--config", cfg, "review", "show", one, "--evidence-out", str(target), "--force"]) == 0
    assert target.read_bytes() == b"benign picture e-1"


def test_cli_expire_refuses_before_deleting_when_the_log_dir_is_a_file(setup, tmp_path, capsys):
    """The deletion log must be writable before anything is deleted (ids deleted unlogged otherwise)."""
    from csadetect.cli.main import main

    in_the_way = tmp_path / "in-the-way"
    in_the_way.write_text("x\n")
    cfg = _cli_config(setup, tmp_path, retention={"log_dir": str(in_the_way)})
    assert main(["--config", cfg, "review", "expire", "--now", "2026-11-02T00:00:00Z"]) == 1
    assert capsys.readouterr().err == f"error: retention.log_dir {in_the_way} is not a directory: nothing changed\n"
    assert len(setup["store"].ids()) == 3


def test_cli_list_names_an_unreadable_item_in_one_line(setup, tmp_path, capsys):
    from csadetect.cli.main import main

    cfg = _cli_config(setup, tmp_path)
    broken = Path(setup["store"].root) / ("0" * 32 + ".parquet")
    broken.write_text("not parquet\n")
    assert main(["--config", cfg, "review", "list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {broken}: not a readable review item (Parquet)")
    assert broken.read_text() == "not parquet\n"


def _verdict(rid: str, verdict: str = "confirm") -> dict:
    return parse_verdict({"report_id": rid, "verdict": verdict, "reviewer": "alice",
                          "decided_at": "2026-11-01T12:30:00Z"})


def test_a_verdict_applied_again_by_the_pipeline_gives_the_same_report(setup):
    """A retried bundle applies its verdict again after the first try took the item out of the store:
    with ``replay`` the kept report comes back (no stats: never counted twice) instead of a refusal
    that would lose it; a reject after it is refused; a rejected item leaves nothing behind; the kept
    report is swept a day after it was kept (not after the verdict's own time, which may be old)."""
    from csadetect.core.timeutil import utc_now

    store, keys = setup["store"], setup["keys"]
    one = setup["items"]["e-1"]["report_id"]
    report, stats = apply_verdict(store, _verdict(one), keys, replay=True)
    assert report["review_status"] == "confirmed"
    # the pipeline counts reports where it writes them: no "reported" here (the CLI's path has it)
    assert sorted(s["metric"] for s in stats) == ["review_decided", "review_seconds"]
    assert one not in store.ids() and store.get(one) is None
    assert (Path(store.root) / "_decided" / f"{one}.parquet").is_file()
    again, stats = apply_verdict(store, _verdict(one), keys, replay=True)
    assert again == report and stats == []
    with pytest.raises(ReviewError, match=f"review item {one} was confirmed already"):
        apply_verdict(store, _verdict(one, "reject"), keys, replay=True)
    with pytest.raises(ReviewError, match="no pending review item"):  # outside the pipeline: refused as before
        apply_verdict(store, _verdict(one), keys)
    two = setup["items"]["e-2"]["report_id"]
    assert apply_verdict(store, _verdict(two, "reject"), keys, replay=True)[0] is None
    assert store.decision(two) is None and not (Path(store.root) / "_decided" / f"{two}.parquet").exists()
    with pytest.raises(ReviewError, match="no pending review item"):
        apply_verdict(store, _verdict(two, "reject"), keys, replay=True)
    three = setup["items"]["e-3"]["report_id"]
    _, stats = apply_verdict(store, _verdict(three), keys)
    assert "reported" in [s["metric"] for s in stats] and store.decision(three) is None
    # the sweep keeps kept reports for a day from when they were kept, then deletes them
    expire(store, utc_now() + timedelta(hours=23))
    assert store.decision(one) is not None
    expire(store, utc_now() + timedelta(hours=25))
    assert store.decision(one) is None
    with pytest.raises(ReviewError, match="no pending review item"):
        apply_verdict(store, _verdict(one), keys, replay=True)


def test_apply_verdict_fn_retried_emits_the_report_again(setup, tmp_path):
    """The DoFn as a runner retries it: the same verdict message processed twice (the first try's
    output lost with its bundle) yields the same report both times; the item lay in a run's directory."""
    from csadetect.transforms.review import ApplyVerdictFn

    root = str(tmp_path / "runs-review")
    ReviewStore(root, run_id="run-1").put(setup["items"]["e-3"])
    rid = setup["items"]["e-3"]["report_id"]
    settings = load_settings(overrides={"reports": {k: v for k, v in setup["paths"].items()
                                                    if k in ("signing_key", "evidence_key", "centre_public_key")}})
    fn = ApplyVerdictFn(root, settings.reports)
    fn.setup()
    message = json.dumps({"report_id": rid, "verdict": "confirm", "reviewer": "bob"}).encode()
    first = list(fn.process(message))
    retried = list(fn.process(message))
    reports = [o for o in first if isinstance(o, dict)]
    assert len(reports) == 1 and retried == reports
    assert any(getattr(o, "tag", None) == "stats" for o in first)
    assert (tmp_path / "runs-review" / "run-1" / "_decided" / f"{rid}.parquet").is_file()
    assert ReviewStore(root).ids() == []


def test_a_refused_verdict_logs_no_id_and_a_failed_one_names_its_report(setup, tmp_path, caplog, monkeypatch):
    """A refusal logs the reason without the report id (it may be a rejected item's); a verdict that
    fails otherwise (a storage error) becomes a dead letter naming its report id, to be sent again."""
    from csadetect.transforms.review import ApplyVerdictFn

    settings = load_settings(overrides={"reports": {k: v for k, v in setup["paths"].items()
                                                    if k in ("signing_key", "evidence_key", "centre_public_key")}})
    fn = ApplyVerdictFn(setup["store"].root, settings.reports)
    fn.setup()
    gone = "ab" * 16
    with caplog.at_level("WARNING"):
        assert list(fn.process(json.dumps({"report_id": gone, "verdict": "confirm", "reviewer": "r"}))) == []
    assert "verdict refused: no pending review item <id>" in caplog.text and gone not in caplog.text
    one = setup["items"]["e-1"]["report_id"]

    def broken(self, report_id):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ReviewStore, "get", broken)
    (letter,) = list(fn.process(json.dumps({"report_id": one, "verdict": "confirm", "reviewer": "r"}).encode()))
    assert letter.value.event_id == one and "verdict failed (OSError)" in letter.value.reason
    monkeypatch.undo()
    assert setup["store"].get(one) == setup["items"]["e-1"]  # still pending: the verdict can be sent again


def test_expiry_skips_an_unreadable_item_and_logs_what_it_deleted(setup, tmp_path):
    store = setup["store"]
    broken = Path(store.root) / ("0" * 32 + ".parquet")
    broken.write_text("not parquet\n")
    deleted, stats = expire(store, T0 + timedelta(hours=2), str(tmp_path / "log"))
    assert sorted(deleted) == sorted(i["report_id"] for i in setup["items"].values())
    logged = [json.loads(line)["id"] for f in (tmp_path / "log").glob("deletions-*.jsonl") for line in f.open()]
    assert sorted(logged) == sorted(deleted) and broken.exists()


def test_apply_verdicts_emits_one_report_per_id_when_a_verdict_arrives_twice(setup):
    """Pub/Sub may deliver a verdict twice: the second replays the kept report, which the transform's
    FirstPerId step drops (TestPipeline + assert_that, the FnApiRunner)."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from csadetect.config.profiles import FN_API_RUNNER
    from csadetect.transforms.review import STATS, ApplyVerdicts

    ids = {eid: setup["items"][eid]["report_id"] for eid in ("e-1", "e-2", "e-3")}
    settings = load_settings(overrides={"reports": {k: v for k, v in setup["paths"].items()
                                                    if k in ("signing_key", "evidence_key", "centre_public_key")}})

    def message(eid, verdict="confirm"):
        return json.dumps({"report_id": ids[eid], "verdict": verdict, "reviewer": "r"}).encode()

    # one after the other, so the second e-1 finds the decision the first kept
    with BeamTestPipeline(runner=FN_API_RUNNER) as p:
        first = p | "First" >> beam.Create([message("e-1"), message("e-2"), message("e-3", "reject")])
        out = first | "Once" >> ApplyVerdicts(setup["store"].root, settings.reports)
        assert_that(out["reports"] | beam.Map(lambda r: r["report_id"]), equal_to([ids["e-1"], ids["e-2"]]),
                    label="Reports")
    with BeamTestPipeline(runner=FN_API_RUNNER) as p:
        again = p | "Again" >> beam.Create([message("e-1"), message("e-1")])
        out = again | "Twice" >> ApplyVerdicts(setup["store"].root, settings.reports)
        assert_that(out["reports"] | beam.Map(lambda r: r["report_id"]), equal_to([ids["e-1"]]), label="OnePerId")
        assert_that(out[STATS], equal_to([]), label="NoStats")


def test_cli_list_names_a_review_store_that_does_not_exist(tmp_path, capsys):
    from csadetect.cli.main import main

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({"sinks": {"review_dir": str(tmp_path / "reveiw")}}))  # a typo
    assert main(["--config", str(cfg), "review", "list"]) == 0
    err = capsys.readouterr().err
    assert "0 item(s) pending review (no review store at" in err and "reveiw" in err
    (tmp_path / "reveiw").mkdir()
    assert main(["--config", str(cfg), "review", "list"]) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == "0 item(s) pending review"
