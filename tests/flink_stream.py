"""A benign upload stream for the Flink runs (tests/test_flink_cluster.py, benchmarks/bench_flink.py):
known copies (hits), pictures the classifier sends to review, ordinary pictures and chats
(non-hits) and malformed events, published to Kafka; the detection pipeline started on the local
cluster; and readers of what reached the sinks, with duplicates collapsed by their ids (a replay
after a restore may write a window's file again).

Every picture is generated (``csadetect.media.synth``, ``training.classifier_corpus``); every chat
is ordinary small talk."""
from __future__ import annotations

import collections
import glob
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Stream:
    events: list                      # bytes, in publishing order
    hits: set = field(default_factory=set)          # event ids that must each get exactly one report
    review: set = field(default_factory=set)        # event ids that must each get one review item
    malformed: int = 0                # events that must each get one dead letter
    secrets: list = field(default_factory=list)     # strings of non-hits that must appear nowhere

    def __len__(self):
        return len(self.events)


def build_indicators(work: Path, report_keys: dict) -> dict:
    """Two known pictures in a signed indicator snapshot, and the pipeline config; returns paths."""
    from csadetect.config.settings import MatchSettings
    from csadetect.core.keys import generate_keypair
    from csadetect.indicators.rows import from_media
    from csadetect.indicators.snapshot import build_snapshot
    from csadetect.media import synth
    from csadetect.models.embedding import EmbeddingModel

    media = work / "media"
    media.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(2):
        path = media / f"known-{i}.jpg"
        path.write_bytes(synth.jpeg_bytes(synth.synthetic_image(300 + i)))
        paths.append(str(path))
    generate_keypair(work / "keys")
    rows = from_media(paths, MatchSettings(), category="flink", embedder=EmbeddingModel.load())
    build_snapshot(rows, work / "db", work / "keys" / "private.pem")
    out = work / "out"
    cfg = work / "config.yaml"
    import yaml

    orders = yaml.safe_load((REPO / "tests" / "data" / "test_orders.yaml").read_text())["orders"]  # not the demo's
    for order in orders:
        order["start"], order["end"] = str(order["start"]), str(order["end"])
    # the stream is 20 % copies of two pictures: the flood guard would rightly quarantine both
    # indicators and send their matches to review (docs/false-positives.md), so it is off here
    cfg.write_text(json.dumps({"reports": report_keys["reports"], "stores": {"stats_dir": str(out / "stats")},
                               "orders": orders, "flood_guard": {"enabled": False}}, default=str))
    return {"known": paths, "config": str(cfg), "db": str(work / "db"), "public_key": str(work / "keys" / "public.pem"),
            "out": str(out)}


def build_stream(known: list, n: int = 1000, seed: int = 7, tag: str = "s") -> Stream:
    """``n`` events: ~20 % known copies, ~2 % for review, ~8 % malformed, the rest non-hits, shuffled."""
    from csadetect.events.event import make_event
    from csadetect.media import synth
    from training import classifier_corpus

    rng = random.Random(seed)
    exact = Path(known[0]).read_bytes()
    recompressed = synth.jpeg_bytes(Image.open(known[1]), quality=40)
    # the recipes of tests/test_emulator_e2e.py: pictures of the classifier's proxy class go to review,
    # textured synthetic pictures are ordinary non-hits for every detector
    # seeds the reference classifier scores >= its report threshold + 0.01 (well above review)
    review_pics = [synth.jpeg_bytes(classifier_corpus.positive_example(s)) for s in classifier_corpus.DEMO_POSITIVE_SEEDS[:4]]
    # seeds the reference classifier newmat-ref-0.2 scores below 0.15 (it scores some synthetic pictures,
    # e.g. 7709 and 7710, at 0.67 and 0.97: a known weakness, see the issue-17 closing note)
    plain = [synth.jpeg_bytes(synth.synthetic_image(s)) for s in
             (7700, 7702, 7703, 7706, 7707, 7708, 7711, 7719, 7724, 7725, 7730, 7731)]
    s = Stream(events=[])
    n_hit, n_review, n_bad = n // 5, max(4, n // 50), n * 8 // 100
    n_chat = n // 10
    n_plain = n - n_hit - n_review - n_bad - n_chat
    items = []
    for i in range(n_hit):
        eid = f"{tag}-hit-{i:05d}"
        items.append(make_event(eid, exact if i % 2 else recompressed, account=f"acct-hit-{i % 7}"))
        s.hits.add(eid)
    for i in range(n_review):
        eid = f"{tag}-review-{i:05d}"
        items.append(make_event(eid, review_pics[i % len(review_pics)], account="acct-review"))
        s.review.add(eid)
    for i in range(n_plain):
        eid = f"{tag}-plainzq-{i:05d}"
        items.append(make_event(eid, plain[i % len(plain)], account=f"acct-plainzq-{i % 11}"))
        s.secrets.append(eid)
    for i in range(n_chat):
        eid = f"{tag}-chatzq-{i:05d}"
        items.append({"event_id": eid, "provider": "p", "service": "chat", "kind": "text",
                      "occurred_at": "2026-12-03T10:00:00Z", "account": f"acct-chatzq-{i % 5}",
                      "conversation_id": f"{tag}-convzq-{i % 9}", "sender": f"u{i % 2}",
                      "text": rng.choice(["see you at the match on saturday", "did you finish the homework?",
                                          "the bus is late again", "happy birthday to your dad!"]),
                      "participants_minor": False})
        s.secrets.append(eid)
    bad = [b"{not json", b"", json.dumps({"event_id": "x"}).encode(), json.dumps([1, 2, 3]).encode(),
           json.dumps({"kind": "image", "content_b64": "!!!"}).encode(), b"\xff\xfe\x00garbage"]
    events = [json.dumps(e).encode() for e in items]
    for i in range(n_bad):
        events.append(bad[i % len(bad)])
    s.malformed = n_bad
    rng.shuffle(events)
    s.events = events
    return s


def create_topic(bootstrap: str, topic: str, partitions: int = 2) -> None:
    """The topic, before the pipeline starts: KafkaIO reads the partitions that exist at start."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def publish(bootstrap: str, topic: str, events: list) -> None:
    from kafka import KafkaProducer

    create_topic(bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=16 << 20, linger_ms=20, acks="all")
    for value in events:
        producer.send(topic, value)
    producer.flush()
    producer.close()


def start_pipeline(cluster, paths: dict, topic: str, log: Path, parallelism: int = 1,
                   checkpoint_ms: int = 2000, group: str = "csadetect", extra: tuple = ()) -> subprocess.Popen:
    out = Path(paths["out"])
    cmd = [sys.executable, "-m", "csadetect.pipelines.detect", "--config", paths["config"],
           "--read_via", "kafka", "--kafka_bootstrap_servers", cluster.kafka_bootstrap, "--kafka_topic", topic,
           "--kafka_consumer_config", "auto.offset.reset=earliest", "--kafka_consumer_config", f"group.id={group}",
           "--report_dir", str(out / "reports"), "--review_dir", str(out / "review"),
           "--dead_letter_dir", str(out / "dead"), "--window_seconds", "2",
           "--indicators", paths["db"], "--public_key", paths["public_key"],
           *cluster.pipeline_args(parallelism=parallelism, checkpoint_ms=checkpoint_ms), *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def _jsonl(pattern: str) -> list:
    out = []
    for path in sorted(glob.glob(pattern, recursive=True)):
        if "/.temp" in path:
            continue
        with open(path) as fh:
            out += [json.loads(line) for line in fh if line.strip()]
    return out


def reports(out: str) -> list:
    return _jsonl(f"{out}/reports/**/*.jsonl")


def dead_letters(out: str) -> list:
    return _jsonl(f"{out}/dead/**/*.jsonl")


def review_items(out: str) -> list:
    rows = []
    for path in sorted(glob.glob(f"{out}/review/**/*.parquet", recursive=True)):
        if "/.temp" not in path:
            rows += pq.read_table(path).to_pylist()
    return rows


def stats(out: str) -> list:
    return _jsonl(f"{out}/stats/**/*.jsonl")


def counts(out: str) -> collections.Counter:
    """The id-free stats summed per metric, and ``hit:<detector>`` per detector."""
    c = collections.Counter()
    for rec in stats(out):
        c[rec["metric"]] += rec["value"]
        if rec["metric"] == "hit":
            c["hit:" + rec["labels"].get("detector", "")] += rec["value"]
    return c


def wait_for(predicate, timeout: float, procs=(), every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if any(p.poll() is not None for p in procs):
            return predicate()
        time.sleep(every)
    return predicate()
