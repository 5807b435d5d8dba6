"""Pipeline tests: DoFns called directly, the batch graph on the FnApiRunner with assert_that, and
the same graph translated for Dataflow offline."""
from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to, is_not_empty

from csadetect.config.profiles import FN_API_RUNNER
from csadetect.media import synth
from csadetect.events.event import make_event
from csadetect.config.settings import MatchSettings, load_settings
from csadetect.pipelines.detect import Source, build_pipeline, outcome_counts
from csadetect.transforms.common import DEAD_LETTER
from csadetect.transforms.parse import ParseEventFn


@pytest.fixture(scope="module")
def world(tmp_path_factory, report_keys):
    """A signed snapshot of 3 known images, and an events file mixing hits, non-hits and junk."""
    from csadetect.indicators.rows import from_media
    from csadetect.core.keys import generate_keypair
    from csadetect.indicators.snapshot import build_snapshot

    work = tmp_path_factory.mktemp("pipeline")
    known = [synth.synthetic_image(40 + i) for i in range(3)]
    paths = []
    for i, img in enumerate(known):
        p = work / f"known-{i}.jpg"
        p.write_bytes(synth.jpeg_bytes(img))
        paths.append(str(p))
    generate_keypair(work / "keys")
    build_snapshot(from_media(paths, MatchSettings()), work / "db", work / "keys" / "private.pem")
    lines = [
        json.dumps(make_event("hit-a", Path(paths[0]).read_bytes())),
        json.dumps(make_event("hit-b", synth.jpeg_bytes(synth.letterbox(known[1]), 60))),
        json.dumps(make_event("hit-a", Path(paths[0]).read_bytes())),  # redelivery
        json.dumps(make_event("uri-hit", b"", content_uri=paths[2]) | {"content_b64": None}),
        json.dumps(make_event("miss-1", synth.jpeg_bytes(synth.synthetic_image(999)), account="acct-miss")),
        json.dumps(make_event("missing-file", b"") | {"content_b64": None, "content_uri": str(work / "nope.jpg")}),
        "not json at all",
        json.dumps(make_event("junk-img", b"GIF89a....")),
    ]
    # content_b64=None must not be sent: drop the key
    lines = [json.dumps({k: v for k, v in json.loads(l).items() if v is not None}) if l.startswith("{") else l for l in lines]
    events = work / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    settings = load_settings(overrides={
        "indicators": {"path": str(work / "db"), "public_key": str(work / "keys" / "public.pem")},
        "sinks": {"report_dir": str(work / "out" / "reports"), "dead_letter_dir": str(work / "out" / "dead")},
        "reports": report_keys["reports"], "stores": {"stats_dir": str(work / "out" / "stats")},
        "content": {"allowed_uri_prefixes": [str(work) + "/"]},  # the uri-hit event's folder
    })
    return {"work": work, "events": str(events), "settings": settings}


def test_parse_fn_routes_bad_input_to_dead_letters():
    fn = ParseEventFn(load_settings().limits)
    out = list(fn.process(b"{oops"))
    assert len(out) == 1 and out[0].tag == DEAD_LETTER
    assert out[0].value.stage == "parse" and "invalid JSON" in out[0].value.reason
    ok = list(fn.process(json.dumps(make_event("e", b"abc")).encode()))
    assert ok[0].event_id == "e"


def test_batch_pipeline_reports_dead_letters_and_counters(world):
    settings = world["settings"]
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    outs = build_pipeline(p, settings, Source(glob=world["events"]))
    assert_that(outs["reports"] | beam.Map(lambda r: r["event_id"]), equal_to(["hit-a", "hit-b", "uri-hit"]), label="Reports")
    assert_that(
        outs["dead_letters"] | beam.Map(lambda d: (d.event_id, d.stage)),
        equal_to([(None, "parse"), ("missing-file", "content"), ("junk-img", "hash")]),
        label="DeadLetters",
    )
    result = p.run()
    result.wait_until_finish()
    counts = outcome_counts(result)
    assert counts["received"] == 8
    assert counts["received"] == counts["hit"] + counts["non_hit"] + counts["dead_lettered"]
    assert counts["hit"] == 4 and counts["non_hit"] == 1 and counts["dead_lettered"] == 3
    assert counts["report"] == 3 and counts["duplicate_report"] == 1

    out, run = world["work"] / "out", outs["run_id"]
    assert sorted(os.listdir(out / "reports")) == [run]  # the run's own directory, nothing else
    tables = [pq.read_table(f) for f in glob.glob(str(out / "reports" / run / "*.parquet"))]
    rows = [r for t in tables for r in t.to_pylist()]
    assert sorted(r["event_id"] for r in rows) == ["hit-a", "hit-b", "uri-hit"]
    jsonl = [json.loads(l) for f in glob.glob(str(out / "reports" / run / "*.jsonl")) for l in open(f)]
    assert {r["report_id"] for r in jsonl} == {r["report_id"] for r in rows}
    everything = "".join(open(f).read() for f in glob.glob(str(out / "**" / "*.jsonl"), recursive=True))
    assert "miss-1" not in everything and "acct-miss" not in everything
    dead = [json.loads(l) for f in glob.glob(str(out / "dead" / run / "*.jsonl")) for l in open(f)]
    assert len(dead) == 3 and all(set(d) == {"event_id", "stage", "reason", "at"} for d in dead)
    assert glob.glob(str(out / "stats" / run / "stats-*.jsonl"))
    left = [p for p in glob.glob(str(out / "**" / ".temp*"), recursive=True)]
    assert left == []  # the file writes' temporary folders are gone


def test_report_ids_are_deterministic(world):
    from csadetect.reports.schema import report_id

    assert report_id("p", "e", "known-hash") == report_id("p", "e", "known-hash")
    assert report_id("p", "e", "known-hash") != report_id("p", "e2", "known-hash")
    # within a run the same event gives the same id; another run gives another id
    assert report_id("p", "e", "known-hash", "run-1") == report_id("p", "e", "known-hash", "run-1")
    assert report_id("p", "e", "known-hash", "run-1") != report_id("p", "e", "known-hash", "run-2")
    assert report_id("p", "e", "known-hash", "run-1") != report_id("p", "e", "known-hash")


def test_dataflow_translation_offline(world, tmp_path):
    """The streaming graph translates for Dataflow with no cloud account (nothing is submitted)."""
    from csadetect.pipelines.detect import run

    config = tmp_path / "orders.json"  # a real order: the demo order is refused on Dataflow
    config.write_text(json.dumps({"orders": [{
        "order_id": "ORDER-1", "authority": "test authority", "detection_types": ["known", "new", "grooming"],
        "services": ["photos"], "start": "2026-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"}]}))
    result = run([
        f"--config={config}", "--runner=DataflowRunner", "--dry_run=True", "--no_auth", "--project=example-project",
        "--region=us-central1", "--temp_location=gs://example-bucket/tmp",
        "--staging_location=gs://example-bucket/staging", "--sdk_location=container", "--streaming",
        "--input_subscription=projects/example-project/subscriptions/uploads",
        "--report_topic=projects/example-project/topics/hits", "--report_dir=", "--dead_letter_dir=",
        "--dead_letter_topic=projects/example-project/topics/dead-letters",
        f"--indicators={world['settings'].indicators.path}", f"--public_key={world['settings'].indicators.public_key}",
    ])
    assert result is not None


def test_media_glob_source(world, tmp_path):
    """Plain media files as the source: each file becomes an upload event read through its URI."""
    import shutil

    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(world["work"] / "known-1.jpg", media / "a.jpg")
    (media / "b.jpg").write_bytes(synth.jpeg_bytes(synth.synthetic_image(4242)))
    (media / "c.png").write_bytes(synth.png_bytes(synth.add_border(synth.synthetic_image(42), 0.1)))
    settings = world["settings"].model_copy(update={"sinks": world["settings"].sinks.model_copy(
        update={"report_dir": str(tmp_path / "reports"), "dead_letter_dir": None})})
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    outs = build_pipeline(p, settings, Source(media_glob=str(media / "*")))
    assert_that(outs["reports"] | beam.Map(lambda r: os.path.basename(r["event_id"]) != ""), equal_to([True, True]))
    result = p.run()
    result.wait_until_finish()
    counts = outcome_counts(result)
    assert counts["received"] == 3 and counts["hit"] == 2 and counts["non_hit"] == 1


@pytest.mark.parametrize("workers", [1, 2, 0])
def test_no_stateful_step_shares_the_hashing_stage_with_several_local_workers(world, workers):
    """The FnApiRunner (the local runner in batch) never splits a stateful stage over
    --direct_num_workers, so a stateful step fused into the stage that hashes would put all the
    work on one worker (issue 15, item 4): with several workers the stateful steps (report dedup,
    grooming conversation state) come after a Reshuffle; with one (and on Dataflow, whose step
    names tests/test_dataflow_translation.py pins) the graph has no such break."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    mode = "in_memory" if workers == 1 else "multi_processing"
    p = beam.Pipeline(runner=FN_API_RUNNER, options=PipelineOptions(
        [f"--direct_num_workers={workers}", f"--direct_running_mode={mode}"]))
    build_pipeline(p, world["settings"], Source(glob=world["events"]))
    _, stages = FnApiRunner().create_stages(p.to_runner_api())
    hashing = [s for s in stages if any("HashMedia" in t.unique_name for t in s.transforms)]
    assert hashing, "no stage hashes: the test no longer looks at the pipeline"
    stateful = [s for s in stages if s.is_stateful()]
    names = {t.unique_name for s in stateful for t in s.transforms}
    assert any("DedupReports/FirstPerId" in n for n in names) and any("ConversationState" in n for n in names)
    assert any(s.is_stateful() for s in hashing) == (workers == 1)
