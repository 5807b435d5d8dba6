"""Portability checked locally: the batch detection pipeline (``csadetect.pipelines.detect.run``) on the
FnApiRunner with two SDK worker *processes* (``--direct_running_mode=multi_processing
--direct_num_workers=2``: every DoFn pickled, shipped over the Fn API and set up in another
process, each loading its own indicator index and models through ``Shared``), against the same
events in a single process. Both must give the same reports, review items and dead letters.

Signatures and ciphertexts are randomised (ephemeral X25519 keys, fresh nonces), and
``created_at``/``queued_at``/``expires_at`` are wall-clock times: those fields are not compared;
instead every signature is verified and every evidence token is opened and must give the same
bytes in both runs. Scores may differ in the last bits (RunInference batches differ between
the runs), so floats are compared with a tolerance.
"""
from __future__ import annotations

import base64
import glob
import json
import math
import os
from pathlib import Path

import pytest

from csadetect.media import synth
from csadetect.events.event import make_event

pytest.importorskip("tensorflow")

REPO = Path(__file__).resolve().parent.parent
POSITIVE_SEEDS = (900001, 900005)  # training.classifier_corpus.positive_example: the classifier's proxy class
GROOMING = [  # a synthetic grooming-risk conversation (benign proxy, never sexual)
    ("adult", "hey, saw your drawings online, you are really talented"),
    ("kid", "thanks!! i like drawing anime"),
    ("adult", "how old are you? you seem really mature for your age"),
    ("kid", "13"),
    ("adult", "are your parents around when you are online? is anyone watching"),
    ("kid", "no they are at work"),
    ("adult", "this is just between us ok, don't tell your mom about me, she wouldn't understand"),
    ("adult", "let's move to a private app, add me on snap, delete this chat"),
    ("adult", "we should meet up this weekend, i can pick you up, don't tell anyone"),
]
BENIGN = [
    ("mom", "did you finish your homework?"),
    ("kid", "almost, just maths left"),
    ("mom", "ok, grandma wants a video call at 6, turn on your camera then"),
]
REPORT_VOLATILE = {"created_at", "signature", "evidence_encrypted"}
REVIEW_VOLATILE = REPORT_VOLATILE | {"queued_at", "expires_at", "review_evidence"}


def chat_events(cid: str, turns, minor: bool = True) -> list[dict]:
    return [{
        "event_id": f"{cid}-{i}", "provider": "demo-provider", "service": "chat", "kind": "text",
        "occurred_at": f"2026-11-28T10:{i:02d}:00Z", "account": f"acct-{cid}-{sender}", "conversation_id": cid,
        "sender": sender, "text": text, "participants_minor": minor,
    } for i, (sender, text) in enumerate(turns)]


def build_world(work: Path, db: str | None = None) -> dict:
    """A small signed indicator DB (PDQ, MD5, SHA-256 and embedding rows of 3 generated pictures)
    under ``work/db`` (or ``db``: any Beam filesystem URL), its keys under ``work/keys``, and
    ``work/events.jsonl``: known copies (exact, letterboxed, a redelivery, a URI), a heavy crop
    only the embedding finds, two pictures of the classifier's proxy class, unrelated pictures,
    a grooming-risk chat and a benign one with a minor, adults' chat, and malformed events."""
    from csadetect.indicators.rows import from_media
    from csadetect.core.keys import generate_keypair
    from csadetect.indicators.snapshot import build_snapshot
    from training import classifier_corpus
    from csadetect.models.embedding import EmbeddingModel
    from csadetect.config.settings import load_settings

    work.mkdir(parents=True, exist_ok=True)
    known = [synth.synthetic_image(60 + i) for i in range(3)]
    paths = []
    for i, img in enumerate(known):
        path = work / f"known-{i}.jpg"
        path.write_bytes(synth.jpeg_bytes(img))
        paths.append(str(path))
    generate_keypair(work / "keys")
    rows = from_media(paths, load_settings().match, embedder=EmbeddingModel.load())
    db = db or str(work / "db")
    build_snapshot(rows, db, work / "keys" / "private.pem")
    images = [
        make_event("exact", Path(paths[1]).read_bytes()),
        make_event("letterbox", synth.jpeg_bytes(synth.letterbox(known[2]), 70)),
        make_event("exact", Path(paths[1]).read_bytes()),  # redelivered: one report
        {k: v for k, v in make_event("by-uri", b"", content_uri=paths[2]).items() if k != "content_b64"},
        make_event("cropped", synth.jpeg_bytes(synth.corner_crop(known[0]))),  # only the embedding finds it
        *[make_event(f"new-{s}", synth.jpeg_bytes(classifier_corpus.positive_example(s))) for s in POSITIVE_SEEDS],
        make_event("parts", synth.jpeg_bytes(classifier_corpus.negative_example(910007, hard=True)), account="acct-parts"),
        make_event("other", synth.jpeg_bytes(synth.synthetic_image(4243)), account="acct-other"),
    ]
    lines = [json.dumps(e) for e in images]
    lines += [json.dumps(e) for e in chat_events("conv-risk", GROOMING) + chat_events("conv-family", BENIGN)
              + chat_events("conv-adults", GROOMING, minor=False)]
    lines += [
        "{not json",
        json.dumps(make_event("bad-b64", b"x") | {"content_b64": "***"}),
        json.dumps(make_event("junk-img", b"GIF89a not really")),
        json.dumps({k: v for k, v in make_event("missing-file", b"", content_uri=str(work / "nope.jpg")).items()
                    if k != "content_b64"}),
    ]
    events = work / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    config = work / "config.yaml"  # the by-uri event's folder is an allowed content_uri prefix
    config.write_text(json.dumps({"content": {"allowed_uri_prefixes": [str(work) + "/"]}}))
    return {"work": work, "events": str(events), "db": db, "public_key": str(work / "keys" / "public.pem"),
            "config": str(config)}


def run_args(world: dict, out: Path, report_keys: dict) -> list[str]:
    keys = report_keys["reports"]
    return [
        f"--input_glob={world['events']}", f"--indicators={world['db']}", f"--public_key={world['public_key']}",
        f"--report_dir={out / 'reports'}", f"--review_dir={out / 'review'}", f"--dead_letter_dir={out / 'dead'}",
        f"--stats_dir={out / 'stats'}", f"--signing_key={keys['signing_key']}", f"--evidence_key={keys['evidence_key']}",
        f"--centre_public_key={keys['centre_public_key']}", f"--config={world['config']}", "--runner=FnApiRunner",
        "--run_id=compare-1",  # one run id for both runs (in their own folders): the same report ids
    ]


def jsonl(folder: Path) -> list[dict]:
    """The records of every run under ``folder`` (``<folder>/<RUN_ID>/*.jsonl``)."""
    return [json.loads(line) for f in sorted(glob.glob(str(folder / "**" / "*.jsonl"), recursive=True))
            for line in open(f) if line.strip()]


def outputs(out: Path) -> dict:
    from csadetect.review.store import ReviewStore

    review = list(ReviewStore(str(out / "review")).items()) if (out / "review").exists() else []
    return {"reports": {r["report_id"]: r for r in jsonl(out / "reports")},
            "review": {r["report_id"]: r for r in review},
            "dead": sorted((d["event_id"] or "", d["stage"], d["reason"]) for d in jsonl(out / "dead"))}


def same(a, b, where="") -> None:
    """Deep equality with a tolerance for floats (model scores, embedding distances)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6), f"{where}: {a} != {b}"
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), f"{where}: {a} != {b}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def stable(record: dict, volatile) -> dict:
    return {k: v for k, v in record.items() if k not in volatile}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("multiprocess"))


@pytest.mark.slow
def test_multi_processing_matches_a_single_process(world, report_keys, tmp_path, monkeypatch):
    from csadetect.reports import crypto
    from csadetect.pipelines.detect import run, summary

    # the SDK worker processes are started as `python -m apache_beam.runners.worker.sdk_worker_main`
    # with this environment: they must import the project's packages from any working directory
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    from apache_beam.runners.portability import local_job_service

    started = []  # SDK worker subprocesses Beam starts (none in the single-process run)
    real_run = local_job_service.SubprocessSdkWorker.run
    monkeypatch.setattr(local_job_service.SubprocessSdkWorker, "run",
                        lambda self: (started.append(self._worker_id), real_run(self))[1])
    single = run(run_args(world, tmp_path / "single", report_keys))
    assert started == []
    multi = run(run_args(world, tmp_path / "multi", report_keys)
                + ["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert len(set(started)) == 2, started  # two worker processes ran the graph
    counts = summary(single)
    assert summary(multi) == counts  # counters are collected from both worker processes
    assert counts["received"] == counts["hit"] + counts["non_hit"] + counts["dead_lettered"]
    one, two = outputs(tmp_path / "single"), outputs(tmp_path / "multi")

    # what the world must produce (so that "the same" is not "both empty")
    assert sorted(r["event_id"] for r in one["reports"].values()) == ["by-uri", "exact", "letterbox"]
    assert sorted(r["detector"] for r in one["review"].values()) == [
        "grooming-text", "known-embedding", "new-material-classifier", "new-material-classifier"]
    assert {d[1] for d in one["dead"]} == {"parse", "content", "hash"} and len(one["dead"]) == 4

    paths = report_keys["paths"]
    events = {e["event_id"]: e for e in map(json.loads, (line for line in open(world["events"]) if line.startswith('{"')))}
    assert one["reports"].keys() == two["reports"].keys()
    for rid, a in one["reports"].items():
        b = two["reports"][rid]
        same(stable(a, REPORT_VOLATILE), stable(b, REPORT_VOLATILE), f"report {a['event_id']}")
        for r in (a, b):
            crypto.verify_report(r, paths["provider_public_key"])
        (mime_a, content_a), (mime_b, content_b) = (crypto.open_evidence(r, paths["centre_private_key"]) for r in (a, b))
        assert (mime_a, content_a) == (mime_b, content_b)
        if "content_b64" in events.get(a["event_id"], {}):
            assert content_a == base64.b64decode(events[a["event_id"]]["content_b64"])

    assert one["review"].keys() == two["review"].keys()
    for rid, a in one["review"].items():
        b = two["review"][rid]
        same(stable(a, REVIEW_VOLATILE), stable(b, REVIEW_VOLATILE), f"review item {a['event_id']}")
        opened = [crypto.open_content(r["review_evidence"], paths["evidence_key"], r["event_id"]) for r in (a, b)]
        assert opened[0] == opened[1]
        if a["detector"] == "grooming-text":
            conversation = json.loads(opened[0][1])
            assert conversation["conversation_id"] == "conv-risk" and a["conversation_id"] == "conv-risk"

    assert one["dead"] == two["dead"]
    everything = json.dumps([one, two], default=str)
    for gone in ("acct-parts", "acct-other", "conv-family", "conv-adults"):
        assert gone not in everything
