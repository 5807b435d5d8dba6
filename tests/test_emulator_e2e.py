"""Issue 4 end to end on the real Pub/Sub emulator: uploads and conversations in; confirmed hits and
review items out; reviewer verdicts on the verdict topic confirm some items and reject others;
the EU Centre's verdicts go to the feedback topic; the streaming feedback pipeline computes
precision per detector and schedules notifications. Nothing of rejected or non-hit items may
remain in any store, message or log."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from csadetect.reports import crypto
from csadetect.review.store import ReviewStore
from csadetect.media import synth
from csadetect.events.event import make_event
from tests.pubsub_emulator import PubSubAdmin, stop

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(600)




def _indicators(work: Path):
    from csadetect.config.settings import MatchSettings
    from csadetect.indicators.rows import from_media
    from csadetect.core.keys import generate_keypair
    from csadetect.indicators.snapshot import build_snapshot
    from csadetect.models.embedding import EmbeddingModel

    media = work / "media"
    media.mkdir(parents=True)
    known, paths = {}, []
    for i in range(2):
        known[i] = synth.synthetic_image(300 + i)  # as in test_emulator_known: PDQ misses the crop of known[1]
        path = media / f"known-{i}.jpg"
        path.write_bytes(synth.jpeg_bytes(known[i]))
        paths.append(str(path))
    generate_keypair(work / "keys")
    rows = from_media(paths, MatchSettings(), category="e2e", embedder=EmbeddingModel.load())
    build_snapshot(rows, work / "db", work / "keys" / "private.pem")
    return known, paths


def _pull_until(admin, sub, want, timeout, got=None, procs=(), until=None, tick=None):
    """Pull JSON messages until ``want`` arrived (or ``until(got)`` holds), a pipeline died, or the
    timeout passed; ``tick()`` before each pull."""
    got = list(got or [])
    done = until or (lambda g: len(g) >= want)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done(got):
        if any(p.poll() is not None for p in procs):
            break  # a pipeline died: its log says why
        if tick:
            tick()
        got += [json.loads(m.data) for m in admin.pull(sub)]
        if not done(got):
            time.sleep(1)
    return got


def _records(pattern):
    out = []
    for path in glob.glob(pattern):
        with open(path) as fh:
            out += [json.loads(line) for line in fh if line.strip()]
    return out



def test_hit_review_report_verdict_precision(emulator, tmp_path, report_keys):
    from csadetect.demo import DEMO_CHATS
    from csadetect.media.hashing import hash_image
    from training import classifier_corpus

    admin = PubSubAdmin(emulator)
    topics = {n: admin.topic(n) for n in ("uploads", "hits", "review", "verdicts", "feedback", "notifications")}
    subs = {
        "uploads": admin.subscription(topics["uploads"], "uploads-pipeline"),
        "hits": admin.subscription(topics["hits"], "hits-centre"),
        "hits_feedback": admin.subscription(topics["hits"], "hits-feedback"),
        "review": admin.subscription(topics["review"], "review-console"),
        "verdicts": admin.subscription(topics["verdicts"], "verdicts-pipeline"),
        "feedback": admin.subscription(topics["feedback"], "feedback-pipeline"),
        "notifications": admin.subscription(topics["notifications"], "notifier"),
    }
    known, paths = _indicators(tmp_path / "db")
    out = tmp_path / "out"
    keys = report_keys["paths"]

    uploads, secrets = [], []
    uploads.append(make_event("auto-exact", Path(paths[0]).read_bytes()))
    uploads.append(make_event("auto-recompressed", synth.jpeg_bytes(known[1], quality=40)))
    uploads.append(make_event("review-crop", synth.jpeg_bytes(synth.corner_crop(known[1]))))
    uploads.append(make_event("review-new-a", synth.jpeg_bytes(classifier_corpus.positive_example(900001))))
    rejected = make_event("rejected-new-zq", synth.jpeg_bytes(classifier_corpus.positive_example(900005)),
                          account="rejected-account-zq")
    uploads.append(rejected)
    secrets += ["rejected-new-zq", "rejected-account-zq"]
    for i in range(3):
        data = synth.jpeg_bytes(synth.synthetic_image(7700 + i))
        uploads.append(make_event(f"nonhit-{i}-zq", data, account=f"nonhit-account-{i}-zq"))
        secrets += [f"nonhit-{i}-zq", f"nonhit-account-{i}-zq", hashlib.sha256(data).hexdigest(),
                    hash_image(data).pdq.hex()]
    chats = []
    for cid, minor, turns in DEMO_CHATS:
        for i, (sender, text) in enumerate(turns):
            chats.append({"event_id": f"{cid}-{i}", "provider": "p", "service": "chat", "kind": "text",
                          "occurred_at": f"2026-11-28T10:{i:02d}:00Z", "account": f"acct-{cid}-{sender}",
                          "conversation_id": cid, "sender": sender, "text": text, "participants_minor": minor})
    secrets += ["conv-family", "acct-conv-family-mom", "birthday surprise", "conv-adults"]

    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({"reports": report_keys["reports"], "stores": {"stats_dir": str(out / "stats")}}))
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=emulator, PYTHONPATH=str(REPO))
    detect_log, feedback_log = tmp_path / "detect.log", tmp_path / "feedback.log"
    detect = subprocess.Popen(
        [sys.executable, "-m", "csadetect.pipelines.detect", "--config", str(cfg), "--streaming", "--runner", "DirectRunner",
         "--input_subscription", subs["uploads"], "--report_topic", topics["hits"], "--report_dir", "",
         "--review_topic", topics["review"], "--review_dir", str(out / "review"),
         "--verdict_subscription", subs["verdicts"], "--dead_letter_dir", "", "--window_seconds", "5",
         "--indicators", str(tmp_path / "db" / "db"), "--public_key", str(tmp_path / "db" / "keys" / "public.pem")],
        cwd=REPO, env=env, stdout=open(detect_log, "wb"), stderr=subprocess.STDOUT)
    feedback = subprocess.Popen(
        [sys.executable, "-m", "csadetect.pipelines.feedback", "--config", str(cfg), "--streaming", "--runner", "DirectRunner",
         "--report_subscription", subs["hits_feedback"], "--verdict_subscription", subs["feedback"],
         "--out_dir", str(out / "feedback"), "--notifications_topic", topics["notifications"],
         "--notifications_dir", "", "--min_verdicts", "1", "--precision_floor", "0.8",
         "--public_key", keys["provider_public_key"], "--window_seconds", "5"],
        cwd=REPO, env=env, stdout=open(feedback_log, "wb"), stderr=subprocess.STDOUT)
    try:
        for event in uploads + chats:
            admin.publish(topics["uploads"], json.dumps(event).encode())
        # 1. known copies are reported at once; four hits wait for a reviewer
        reports = _pull_until(admin, subs["hits"], 2, 300, procs=(detect, feedback))
        items = _pull_until(admin, subs["review"], 4, 120)
        items = _pull_until(admin, subs["review"], 5, 5, items)  # a fifth (a copy, a non-hit) would come now
        by_key = {i.get("conversation_id") or i["event_id"]: i for i in items}
        assert sorted(r["event_id"] for r in reports) == ["auto-exact", "auto-recompressed"], detect_log.read_text()[-3000:]
        assert sorted(by_key) == ["conv-risk", "rejected-new-zq", "review-crop", "review-new-a"], sorted(by_key)
        assert len(items) == 4, [i.get("conversation_id") or i["event_id"] for i in items]
        for item in items:
            assert item["review_status"] == "pending" and item["review_evidence"] and item["evidence_encrypted"] is None
        store = ReviewStore(str(out / "review"))  # every run's items (this run's: <review>/<RUN_ID>/)
        assert len(store.ids()) == 4  # the review store

        # 2. reviewers: confirm three through the verdict topic, reject one
        for key in ("review-crop", "review-new-a", "conv-risk"):
            v = {"report_id": by_key[key]["report_id"], "verdict": "confirm", "reviewer": "r1"}
            admin.publish(topics["verdicts"], json.dumps(v).encode())
        admin.publish(topics["verdicts"], json.dumps(
            {"report_id": by_key["rejected-new-zq"]["report_id"], "verdict": "reject", "reviewer": "r2"}).encode())
        reports = _pull_until(admin, subs["hits"], 5, 120, reports)
        by_event = {r.get("conversation_id") or r["event_id"]: r for r in reports}
        assert sorted(by_event) == ["auto-exact", "auto-recompressed", "conv-risk", "review-crop", "review-new-a"]
        for r in reports:
            crypto.verify_report(r, keys["provider_public_key"])
            mime, content = crypto.open_evidence(r, keys["centre_private_key"])
            assert content and r["order_id"]
        assert by_event["conv-risk"]["review_status"] == "confirmed" and by_event["conv-risk"]["risk_patterns"]
        conversation = json.loads(crypto.open_evidence(by_event["conv-risk"], keys["centre_private_key"])[1])
        assert conversation["conversation_id"] == "conv-risk" and conversation["messages"]
        deadline = time.monotonic() + 30
        while store.ids() and time.monotonic() < deadline:
            time.sleep(1)
        assert store.ids() == []  # decided items leave the store

        # 3. the Centre's verdicts: the new-material report is manifestly unfounded
        for key, r in by_event.items():
            verdict = "manifestly_unfounded" if key == "review-new-a" else "confirmed"
            admin.publish(topics["feedback"], json.dumps({
                "report_id": r["report_id"], "verdict": verdict, "reason": "e2e",
                "decided_at": "2026-11-28T12:00:00Z", "delay_notification": key == "conv-risk"}).encode())
        def unfounded(notes):
            return any(n["trigger"] == "manifestly_unfounded" and n["report_id"] == by_event["review-new-a"]["report_id"]
                       for n in notes)

        def delayed(notes):  # the Centre asked to delay telling the user about the grooming report
            return any(n["status"] == "delayed" and n["report_id"] == by_event["conv-risk"]["report_id"] for n in notes)

        def feedback_tick():
            # the DirectRunner moves a Pub/Sub watermark (and so closes windows) only when a pull
            # returns messages: an empty JSON object is a harmless tick (counted as a bad verdict)
            admin.publish(topics["feedback"], b"{}")

        notes = _pull_until(admin, subs["notifications"], 0, 120, until=lambda n: unfounded(n) and delayed(n),
                            tick=feedback_tick)
        assert unfounded(notes) and delayed(notes), notes
        precision = {}
        deadline = time.monotonic() + 300  # the DirectRunner closes file windows only as pulls move its watermark: slow on a loaded 2-core machine
        while time.monotonic() < deadline:
            feedback_tick()  # file windows close as the watermark moves
            for rec in _records(str(out / "feedback" / "*" / "precision-*.jsonl")):  # running totals: keep the latest
                old = precision.get(rec["detector"])
                if old is None or (rec["verdicts"], rec["at"]) > (old["verdicts"], old["at"]):
                    precision[rec["detector"]] = rec
            # the alert is written in its own file window, which can close after the precision records'
            alerted = any(a["detector"] == "new-material-classifier"
                          for a in _records(str(out / "feedback" / "*" / "alerts-*.jsonl")))
            if ({"known-hash", "new-material-classifier", "grooming-text", "known-embedding"} <= set(precision)
                    and precision["known-hash"]["verdicts"] == 2 and alerted):
                break
            time.sleep(2)
        assert precision["known-hash"]["precision"] == 1.0 and precision["known-hash"]["confirmed"] == 2
        assert precision["new-material-classifier"]["precision"] == 0.0
        assert precision["grooming-text"]["precision"] == 1.0
        alerts = _records(str(out / "feedback" / "*" / "alerts-*.jsonl"))
        assert any(a["detector"] == "new-material-classifier" for a in alerts)
        time.sleep(3)
        reports += [json.loads(m.data) for m in admin.pull(subs["hits"])]
        notes += [json.loads(m.data) for m in admin.pull(subs["notifications"])]
    finally:
        stop(detect)
        stop(feedback)
        admin.close()

    # 4. nothing of the rejected item or of non-hits remains anywhere
    assert len(reports) == 5
    stored = "".join(Path(p).read_text(errors="replace") for p in glob.glob(str(out / "**" / "*.jsonl"), recursive=True))
    everything = (stored + detect_log.read_text(errors="replace") + feedback_log.read_text(errors="replace")
                  + json.dumps(reports) + json.dumps(notes))
    for secret in secrets:
        assert secret not in everything, secret
    assert by_key["rejected-new-zq"]["report_id"] not in stored + json.dumps(reports) + json.dumps(notes)
