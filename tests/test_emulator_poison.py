"""Streaming against the real Pub/Sub emulator (issue 12, item 1): each of the probe's poison
events is sent between valid ones; every valid event is reported once, every poison event is
dead-lettered with its stage and reason, and the pipeline keeps running (a valid event sent after
all of them is still reported, and the process has not exited)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from csadetect.events.event import make_event
from csadetect.media import synth
from tests.conftest import signed_indicator_db
from tests.pubsub_emulator import PubSubAdmin, wait_for, stop
from tests.test_poison import IMAGE, SECRET, poison_lines

pytestmark = [pytest.mark.emulator, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def indicator_db(tmp_path_factory):
    work = tmp_path_factory.mktemp("poison-db")
    known = [synth.jpeg_bytes(synth.synthetic_image(500 + i)) for i in range(3)]
    signed_indicator_db(work, known)
    return {"dir": work, "known": known}


def test_poison_events_do_not_stop_the_stream(emulator, indicator_db, tmp_path, report_keys):
    admin = PubSubAdmin(emulator)
    uploads = admin.topic("uploads")
    uploads_sub = admin.subscription(uploads, "uploads-pipeline")
    hits = admin.topic("hits")
    hits_sub = admin.subscription(hits, "hits-reader")
    dead = admin.topic("dead-letters")
    dead_sub = admin.subscription(dead, "dead-reader")

    known = indicator_db["known"]
    poison = poison_lines(IMAGE)
    bodies, valid = [], []
    for i, (_, line, _, _) in enumerate(poison):
        valid.append(f"ok-{i}")
        bodies += [json.dumps(make_event(f"ok-{i}", known[i % 3], account=SECRET)).encode(), line]

    db = indicator_db["dir"]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({
        "reports": report_keys["reports"], "stores": {"stats_dir": None},
        "embedding": {"enabled": False}, "new_material": {"enabled": False}, "grooming": {"enabled": False},
    }))
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=emulator, PYTHONPATH=str(REPO))
    cmd = [
        sys.executable, "-m", "csadetect.pipelines.detect", "--config", str(cfg), "--streaming", "--runner", "DirectRunner",
        "--input_subscription", uploads_sub, "--report_topic", hits, "--dead_letter_topic", dead,
        "--report_dir", "", "--dead_letter_dir", "", "--review_dir", "",
        "--indicators", str(db / "db"), "--public_key", str(db / "keys" / "public.pem"),
    ]
    log_path = tmp_path / "pipeline.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            for body in bodies:
                admin.publish(uploads, body)
            reports = wait_for(lambda: admin.pull(hits_sub), len(valid), timeout=150)
            dead_letters = wait_for(lambda: admin.pull(dead_sub), len(poison), timeout=30)
            running_after_poison = proc.poll() is None
            admin.publish(uploads, json.dumps(make_event("ok-last", known[0])).encode())
            last = wait_for(lambda: admin.pull(hits_sub), 1, timeout=60)
            time.sleep(3)  # anything extra (a second report of one event) would arrive now
            reports += last + admin.pull(hits_sub)
            dead_letters += admin.pull(dead_sub)
            still_running = proc.poll() is None
        finally:
            stop(proc)
    logs = log_path.read_text(errors="replace")
    assert running_after_poison and still_running, logs[-3000:]
    got = sorted(json.loads(m.data)["event_id"] for m in reports)
    assert got == sorted(valid + ["ok-last"]), logs[-3000:]  # each valid event once
    letters = [json.loads(m.data) for m in dead_letters]
    assert sorted((d["event_id"] or "") for d in letters) == sorted((eid or "") for _, _, eid, _ in poison), letters
    fragments = {eid: reason for _, _, eid, reason in poison}
    for d in letters:
        assert d["stage"] == "parse" and fragments[d["event_id"]] in d["reason"], d
    assert SECRET not in "".join(m.data.decode("utf-8") for m in dead_letters)
    assert "Giving up" not in logs
    admin.close()
