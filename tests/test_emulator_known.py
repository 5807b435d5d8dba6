"""End to end against the real Pub/Sub emulator: a mixed upload stream in, exactly the expected
reports, review items (grooming, an embedding near-duplicate, new material) and dead letters
out, and nothing of a non-hit anywhere (outputs, dead letters, logs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from csadetect.reports import crypto

from csadetect.media import synth
from csadetect.events.event import make_event
from tests.pubsub_emulator import PubSubAdmin, wait_for, stop

pytestmark = [pytest.mark.emulator, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent




@pytest.fixture(scope="module")
def indicator_db(tmp_path_factory):
    from csadetect.config.settings import MatchSettings
    from csadetect.indicators.rows import from_media
    from csadetect.core.keys import generate_keypair
    from csadetect.indicators.snapshot import build_snapshot

    work = tmp_path_factory.mktemp("known-db")
    media = work / "media"
    media.mkdir()
    known = {}
    paths = []
    for i in range(4):
        img = synth.synthetic_image(300 + i)
        known[i] = img
        p = media / f"known-{i}.jpg"
        p.write_bytes(synth.jpeg_bytes(img))
        paths.append(str(p))
    video = synth.synthetic_video(301, media / "known.mp4")
    if video is None:
        pytest.skip("ffmpeg CLI not installed (make sysdeps installs it)")
    paths.append(str(video))
    generate_keypair(work / "keys")
    from csadetect.models.embedding import EmbeddingModel

    rows = from_media(paths, MatchSettings(), category="test-known", embedder=EmbeddingModel.load())
    build_snapshot(rows, work / "db", work / "keys" / "private.pem")
    return {"dir": work, "known": known, "media": media, "video": Path(video)}


def test_stream_end_to_end(emulator, indicator_db, tmp_path, report_keys):
    admin = PubSubAdmin(emulator)
    uploads = admin.topic("uploads")
    uploads_sub = admin.subscription(uploads, "uploads-pipeline")
    hits = admin.topic("hits")
    hits_sub = admin.subscription(hits, "hits-reader")
    dead = admin.topic("dead-letters")
    dead_sub = admin.subscription(dead, "dead-reader")
    review = admin.topic("review")
    review_sub = admin.subscription(review, "review-reader")

    known, media = indicator_db["known"], indicator_db["media"]
    events, expected_hits, expected_review = [], set(), {"conv-risk"}
    non_hit_secrets = []  # things of non-hits that must never show up anywhere

    def add(eid, content, hit, **kw):
        ev = make_event(eid, content, **kw)
        events.append(json.dumps(ev).encode())
        if hit:
            expected_hits.add(eid)

    add("hit-exact", (media / "known-0.jpg").read_bytes(), True)
    add("hit-recompressed", synth.jpeg_bytes(known[1], quality=40), True)
    add("hit-border", synth.jpeg_bytes(synth.add_border(known[2], 0.15, (0, 0, 0))), True)
    add("hit-flipped", synth.jpeg_bytes(known[3].transpose(0)), True)
    add("hit-video", indicator_db["video"].read_bytes(), True, kind="video", mime="video/mp4")
    # PDQ misses this rotated, cropped copy; the embedding finds it; near-duplicates wait for a reviewer
    add("review-cropped", synth.jpeg_bytes(synth.corner_crop(known[1])), False)
    expected_review.add("review-cropped")
    from training import classifier_corpus

    add("review-new", synth.jpeg_bytes(classifier_corpus.positive_example(900001)), False)  # new-material classifier
    expected_review.add("review-new")
    import hashlib

    from csadetect.media.hashing import hash_image

    parts = synth.jpeg_bytes(classifier_corpus.negative_example(910007, hard=True))
    add("nonhit-parts-zq", parts, False, account="nonhit-parts-account-zq")
    non_hit_secrets += ["nonhit-parts-zq", "nonhit-parts-account-zq", hashlib.sha256(parts).hexdigest()]

    for i in range(5):
        data = synth.jpeg_bytes(synth.synthetic_image(9000 + i))
        account = f"nonhit-account-{i}-zq"
        add(f"nonhit-event-{i}-zq", data, False, account=account)
        non_hit_secrets += [f"nonhit-event-{i}-zq", account, hashlib.sha256(data).hexdigest(),
                            hashlib.md5(data).hexdigest(), hash_image(data).pdq.hex()]
    malformed = {
        "bad-b64": (json.dumps(dict(make_event("bad-b64", b"x"), content_b64="!!!")).encode(), "bad base64"),
        "bad-kind": (json.dumps(dict(make_event("bad-kind", b"x"), kind="audio")).encode(), "unknown kind"),
        "bad-truncated": (json.dumps(make_event("bad-truncated", synth.jpeg_bytes(known[0])[:700])).encode(), "truncated"),
        "bad-video": (json.dumps(make_event("bad-video", b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 3000,
                                            kind="video", mime="video/mp4")).encode(), "unreadable video"),
        None: (b"{this is not json", "invalid JSON"),
    }
    from csadetect.demo import DEMO_CHATS

    chats = []
    for cid, minor, turns in DEMO_CHATS:
        for i, (sender, text) in enumerate(turns):
            chats.append(json.dumps({
                "event_id": f"{cid}-{i}", "provider": "p", "service": "chat", "kind": "text",
                "occurred_at": f"2026-11-28T10:{i:02d}:00Z", "account": f"acct-{cid}-{sender}",
                "conversation_id": cid, "sender": sender, "text": text, "participants_minor": minor,
            }).encode())
    non_hit_secrets += ["conv-family", "acct-conv-family-mom", "birthday surprise", "conv-adults"]
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=emulator, PYTHONPATH=str(REPO))
    log_path = tmp_path / "pipeline.log"
    db = indicator_db["dir"]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({"reports": report_keys["reports"], "stores": {"stats_dir": None}}))
    cmd = [
        sys.executable, "-m", "csadetect.pipelines.detect", "--config", str(cfg), "--streaming", "--runner", "DirectRunner",
        "--input_subscription", uploads_sub, "--report_topic", hits, "--dead_letter_topic", dead,
        "--review_topic", review, "--review_dir", "",
        "--report_dir", "", "--dead_letter_dir", "",
        "--indicators", str(db / "db"), "--public_key", str(db / "keys" / "public.pem"),
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            for body in events:
                admin.publish(uploads, body)
            admin.publish(uploads, events[0])  # a redelivered upload: must not make a second report
            for body, _ in malformed.values():
                admin.publish(uploads, body)
            for body in chats:
                admin.publish(uploads, body)
            reports = wait_for(lambda: admin.pull(hits_sub), len(expected_hits), timeout=240)
            dead_letters = wait_for(lambda: admin.pull(dead_sub), len(malformed), timeout=60)
            flagged = wait_for(lambda: admin.pull(review_sub), len(expected_review), timeout=120)
            time.sleep(5)  # anything extra would arrive now
            reports += admin.pull(hits_sub)
            dead_letters += admin.pull(dead_sub)
            flagged += admin.pull(review_sub)
        finally:
            stop(proc)
    logs = log_path.read_text(errors="replace")
    assert proc.returncode is not None

    report_objs = [json.loads(m.data) for m in reports]
    assert sorted(r["event_id"] for r in report_objs) == sorted(expected_hits), logs[-3000:]
    for m, r in zip(reports, report_objs):
        assert m.attributes["report_id"] == r["report_id"]
        assert r["detection_type"] == "known" and r["indicator_ids"]
        assert r["distance"] <= 31
    dl = {d["event_id"]: d for d in (json.loads(m.data) for m in dead_letters)}
    assert set(dl) == set(malformed), dl
    for event_id, (body, reason) in malformed.items():
        assert reason in dl[event_id]["reason"], dl[event_id]
    items = [json.loads(m.data) for m in flagged]
    by_id = {f.get("conversation_id") or f["event_id"]: f for f in items}
    assert sorted(by_id) == sorted(expected_review) and len(items) == len(expected_review), items
    groom = by_id["conv-risk"]
    assert groom["detection_type"] == "grooming" and groom["review_status"] == "pending"
    assert groom["risk_patterns"] and groom["review_evidence"] and groom["order_id"]
    # the conversation travels sealed: none of its messages is readable on the review topic
    from csadetect.demo import DEMO_CHATS

    risk_texts = [text for cid, _, turns in DEMO_CHATS if cid == "conv-risk" for _, text in turns if len(text) > 8]
    review_text = "".join(m.data.decode() for m in flagged)
    assert not any(t in review_text for t in risk_texts)
    for m, r in zip(reports, report_objs):
        crypto.verify_report(r, report_keys["paths"]["provider_public_key"])
        assert crypto.open_evidence(r, report_keys["paths"]["centre_private_key"])[1]
    assert by_id["review-cropped"]["detector"] == "known-embedding" and by_id["review-cropped"]["review_status"] == "pending"
    new = by_id["review-new"]
    assert new["detection_type"] == "new" and new["score"] >= new["threshold"] and new["review_status"] == "pending"
    everything = logs + "".join(m.data.decode() for m in reports + dead_letters + flagged)
    for secret in non_hit_secrets:
        assert secret not in everything, "a non-hit left a trace"
    admin.close()
