"""The image-model path of the pipeline: EmbedImages -> MatchIndicators (PDQ + embedding) ->
ClassifyNew -> Decide, with the DESIGN §6 policy, on benign generated images."""
from __future__ import annotations

import dataclasses
import base64
import glob
import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from csadetect.config.profiles import FN_API_RUNNER
from csadetect.media import synth
from csadetect.events.event import make_event
from csadetect.config.settings import load_settings
from csadetect.pipelines.detect import Source, build_pipeline, outcome_counts, resolve_models
from csadetect.signals.embedding import EMBEDDING_BOXES, EMBEDDING_REGIONS, EMBEDDING_TURNS

POSITIVE_SEEDS = (900001, 900005)  # classifier_corpus.positive_example: the proxy class the classifier flags
HARD_NEGATIVE_SEED = 910007


@pytest.fixture(scope="module")
def world(tmp_path_factory, report_keys):
    from csadetect.indicators.rows import from_media
    from csadetect.core.keys import generate_keypair
    from csadetect.indicators.snapshot import build_snapshot
    from training import classifier_corpus
    from csadetect.models.embedding import EmbeddingModel

    work = tmp_path_factory.mktemp("pipeline_new")
    known = [synth.synthetic_image(60 + i) for i in range(3)]
    paths = []
    for i, img in enumerate(known):
        path = work / f"known-{i}.jpg"
        path.write_bytes(synth.jpeg_bytes(img))
        paths.append(str(path))
    generate_keypair(work / "keys")
    settings = load_settings()
    rows = from_media(paths, settings.match, embedder=EmbeddingModel.load())
    # image, 5% crop, ±3° rotations, the region, box and turned-and-cropped rows (all on by default)
    assert sum(r.kind == "embedding" for r in rows) == 3 * (4 + sum(len(a) for _, a in EMBEDDING_REGIONS + EMBEDDING_BOXES)
                                                            + len(EMBEDDING_TURNS))
    build_snapshot(rows, work / "db", work / "keys" / "private.pem")
    crop = synth.corner_crop(known[0])  # PDQ misses it, the embedding finds it (its 60%-area region row)
    events = [
        make_event("exact", open(paths[1], "rb").read()),
        make_event("cropped", synth.jpeg_bytes(crop)),
        *[make_event(f"new-{s}", synth.jpeg_bytes(classifier_corpus.positive_example(s))) for s in POSITIVE_SEEDS],
        make_event("parts", synth.jpeg_bytes(classifier_corpus.negative_example(HARD_NEGATIVE_SEED, hard=True)),
                   account="acct-parts"),
        make_event("other", synth.jpeg_bytes(synth.synthetic_image(4243)), account="acct-other"),
    ]
    path = work / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    base = {
        "indicators": {"path": str(work / "db"), "public_key": str(work / "keys" / "public.pem")},
        "grooming": {"enabled": False},
        "reports": report_keys["reports"],
    }
    return {"work": work, "events": str(path), "base": base}


def _settings(world, name, **extra):
    out = world["work"] / name
    over = dict(world["base"], sinks={"report_dir": str(out / "reports"), "review_dir": str(out / "review"),
                                      "dead_letter_dir": None}, **extra)
    return load_settings(overrides=over), out


def _records(folder):
    """Report files (JSON Lines) of every run, or the review store (one Parquet file per item, every run)."""
    if folder.name == "review":
        from csadetect.review.store import ReviewStore

        return list(ReviewStore(str(folder)).items())
    return [json.loads(line) for f in glob.glob(str(folder / "**" / "*.jsonl"), recursive=True) for line in open(f)]


def _run_reporting_the_exact_copy(world, settings) -> dict:
    """The pipeline over the world's events, asserting that the exact copy is the one report; its counters."""
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    outs = build_pipeline(p, settings, Source(glob=world["events"]))
    assert_that(outs["reports"] | beam.Map(lambda r: r["event_id"]), equal_to(["exact"]), label="Reports")
    result = p.run()
    result.wait_until_finish()
    return outcome_counts(result)


def test_policy_review_required(world):
    """Default policy: the exact copy is reported; the crop (embedding near-duplicate) and the
    new-material images wait for a reviewer; the hard negative and the unrelated image leave nothing."""
    settings, out = _settings(world, "review")
    counts = _run_reporting_the_exact_copy(world, settings)
    assert counts["received"] == 6 == counts["hit"] + counts["non_hit"]
    assert counts["hit"] == 4 and counts["non_hit"] == 2 and counts["hit_review"] == 3
    assert counts["hit_new_image"] == 2 and counts["embedded_image"] == 6

    review = {r["event_id"]: r for r in _records(out / "review")}
    assert sorted(review) == ["cropped", *[f"new-{s}" for s in POSITIVE_SEEDS]]
    crop = review["cropped"]
    assert crop["detection_type"] == "known" and crop["detector"] == "known-embedding"
    assert [m["kind"] for m in crop["matches"]] == ["embedding"] and crop["review_status"] == "pending"
    for seed in POSITIVE_SEEDS:
        r = review[f"new-{seed}"]
        assert r["detection_type"] == "new" and r["detector"] == "new-material-classifier"
        assert r["score"] >= r["threshold"] and r["detector_version"] and r["matches"] == []
    everything = json.dumps(_records(out / "reports") + list(review.values()))
    for gone in ('"parts"', '"other"', "acct-parts", "acct-other"):
        assert gone not in everything


def test_the_region_gate_keeps_the_outcome(world):
    """``match.embedding_query_region_gate`` through the whole graph: EmbedImages embeds the
    thumbnails only, MatchIndicators the region views of the uploads that pass the gate. The same
    reports and review items as without it; no more uploads pay for region views than matched
    nothing without them (new x 2, parts, other)."""
    settings, out = _settings(world, "gated", match={"embedding_query_region_gate": 30})
    counts = _run_reporting_the_exact_copy(world, settings)
    assert counts["hit"] == 4 and counts["non_hit"] == 2 and counts["embedded_image"] == 6
    assert counts.get("region_views_embedded", 0) <= 4
    review = {r["event_id"]: r for r in _records(out / "review")}
    assert sorted(review) == ["cropped", *[f"new-{s}" for s in POSITIVE_SEEDS]]
    assert [m["kind"] for m in review["cropped"]["matches"]] == ["embedding"]


def test_evidence_sealed_and_reports_signed(world, report_keys):
    """Review items carry the content sealed for the provider's evidence key (bound to the event);
    the report carries it re-sealed for the Centre (bound to the report) and verifies with the
    provider's public key; both cite the detection order."""
    from csadetect.reports import crypto

    settings, out = _settings(world, "review")  # written by test_policy_review_required
    if not (out / "review").exists():
        pytest.skip("needs test_policy_review_required's output")
    paths = report_keys["paths"]
    events = {e["event_id"]: e for e in map(json.loads, open(world["events"]))}
    for item in _records(out / "review"):
        assert item["evidence_encrypted"] is None and item["signature"] is None
        mime, content = crypto.open_content(item["review_evidence"], paths["evidence_key"], item["event_id"])
        assert content == base64.b64decode(events[item["event_id"]]["content_b64"])
        with pytest.raises(crypto.EvidenceError):  # bound to its event
            crypto.open_content(item["review_evidence"], paths["evidence_key"], "another-event")
        assert item["order_id"] == "DEMO-ORDER-2026-1" and "DEMO-ORDER-2026-1" in item["legal_basis"]
        assert item["queued_at"] < item["expires_at"]
    (report,) = _records(out / "reports")
    crypto.verify_report(report, paths["provider_public_key"])
    mime, content = crypto.open_evidence(report, paths["centre_private_key"])
    assert content == base64.b64decode(events["exact"]["content_b64"]) and mime == "image/jpeg"
    assert report["order_id"] == "DEMO-ORDER-2026-1"


def test_policy_without_review_reports_above_report_threshold(world):
    """``require_review: false``: scores >= report_threshold are reported at once as new material."""
    settings, out = _settings(world, "noreview", new_material={"require_review": False, "report_threshold": 0.5,
                                                              "review_threshold": 0.5})
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    outs = build_pipeline(p, settings, Source(glob=world["events"]))
    assert_that(outs["reports"] | beam.Map(lambda r: r["event_id"]),
                equal_to(["exact", *[f"new-{s}" for s in POSITIVE_SEEDS]]))
    result = p.run()
    result.wait_until_finish()
    reports = {r["event_id"]: r for r in _records(out / "reports")}
    assert reports[f"new-{POSITIVE_SEEDS[0]}"]["review_status"] == "auto_confirmed"
    assert reports[f"new-{POSITIVE_SEEDS[0]}"]["detection_type"] == "new"


def test_models_off_keeps_the_hash_path(world):
    settings, out = _settings(world, "off", embedding={"enabled": False}, new_material={"enabled": False})
    models = resolve_models(settings)
    assert models.embedding is None and models.new_material is None
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    outs = build_pipeline(p, settings, Source(glob=world["events"]), models=models)
    assert_that(outs["reports"] | beam.Map(lambda r: r["event_id"]), equal_to(["exact"]))
    result = p.run()
    result.wait_until_finish()
    assert _records(out / "review") == []
    assert "ClassifyNew" not in str(p.to_runner_api())


def test_config_errors_are_one_line(tmp_path):
    from csadetect.config.settings import ConfigError

    with pytest.raises(ConfigError, match="needs embedding.enabled"):
        load_settings(overrides={"embedding": {"enabled": False}})
    with pytest.raises(ConfigError, match="report_threshold must be >= review_threshold"):
        load_settings(overrides={"new_material": {"review_threshold": 0.9, "report_threshold": 0.5}})
    bad = load_settings(overrides={"new_material": {"model": str(tmp_path / "nope")}})
    with pytest.raises(ConfigError, match="new-material classifier not found"):
        resolve_models(bad)
    (tmp_path / "emb").mkdir()
    (tmp_path / "emb" / "metadata.json").write_text(json.dumps({"version": "other-emb", "threshold": 0.9, "dim": 128}))
    mismatch = load_settings(overrides={"embedding": {"model": str(tmp_path / "emb")}})
    with pytest.raises(ConfigError, match="trained on embedding"):
        resolve_models(mismatch)


def test_embedding_handler_batched_equals_one_by_one():
    """RunInference's batch of items (several views each) gives each item the vectors it gets alone."""
    from csadetect.models.embedding import EmbeddingModel, model_inputs
    from csadetect.reports.hits import HashedItem
    from csadetect.transforms.embed import ImageEmbeddingHandler
    from csadetect.events.event import parse_event

    handler = ImageEmbeddingHandler(None)
    model = handler.load_model()
    items = []
    for i in range(3):
        img = synth.synthetic_image(700 + i, (200, 150))
        pics = [("image", img)] + ([("trim", img.crop((10, 10, 150, 120)))] if i == 1 else [])
        views, pixels = model_inputs(pics, model.input_size, flip=True)
        event = parse_event(json.dumps(make_event(f"e{i}", synth.jpeg_bytes(img))).encode())
        items.append(HashedItem(event.without_content(), views=views, pixels=pixels))
    batched = handler.run_inference(items, model)
    for item, out in zip(items, batched):
        alone = handler.run_inference([item], model)[0]
        assert out.pixels is None and out.embeddings.shape == (len(item.views), model.dim)
        assert np.allclose(out.embeddings, alone.embeddings, atol=1e-5)
        assert np.allclose(np.linalg.norm(out.embeddings, axis=1), 1, atol=1e-5)
