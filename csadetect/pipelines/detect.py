"""The detection pipeline: uploads -> validated events -> hashes -> indicator matches -> reports.

``build_pipeline`` only wires the named transforms of ``transforms/``; ``run(argv)`` parses options,
validates the configuration and the indicator snapshot *before* building the graph, runs it and
prints a summary. Every run writes under its own run id (``--run_id``, or a new one: printed at
start and in the summary), one directory level under each configured directory
(:mod:`csadetect.core.runs`, docs/data.md "Runs"); a run refuses to start when its directory
already holds records. Pipeline options (runner, streaming, ...) pass straight through.

    python -m csadetect.pipelines.detect --input_glob 'events/*.jsonl' --runner FnApiRunner
    python -m csadetect.pipelines.detect --input_subscription projects/P/subscriptions/S --streaming \
        --runner DirectRunner --report_topic projects/P/topics/hits
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
from typing import Optional

import apache_beam as beam

from csadetect.config.profiles import DETECT_KEYS
from csadetect.config.settings import ConfigError, Settings
from csadetect.core import runs
from csadetect.core.timeutil import utc_iso, utc_now
from csadetect.indicators.controls import AllowList, Thresholds
from csadetect.indicators.index import load_index
from csadetect.indicators.snapshot import SnapshotError, check_head
from csadetect.models import ModelError
from csadetect.models.classifier import NewMaterialClassifier
from csadetect.models.embedding import EmbeddingModel, EmbeddingSpec
from csadetect.models.grooming import GroomingModel
from csadetect.pipelines import counter_values, note_index_version, pipeline_main
from csadetect.pipelines.options import (
    DetectOptions, graph_run_id, help_options, launch, local_storage, new_pipeline, print_effective,
    run_and_wait, start_run,
)
from csadetect.pipelines.sources import ReadEvents, Source, check_input_files, check_pubsub
from csadetect.reports.crypto import ReportKeyError, ReportKeys
from csadetect.transforms.classify import ClassifyNew, NewMaterialPolicy
from csadetect.transforms.common import DEAD_LETTER
from csadetect.transforms.content import ResolveContent
from csadetect.transforms.decide import REVIEW, Decide, DropUnscanned
from csadetect.transforms.embed import EmbedImages
from csadetect.transforms.guard import GuardMatches
from csadetect.transforms.grooming import ClassifyGrooming
from csadetect.transforms.hash import TEXT, HashMedia
from csadetect.transforms.match import MatchIndicators
from csadetect.transforms.orders import NOT_COVERED, ApplyOrders
from csadetect.transforms.parse import ParseEvents
from csadetect.transforms.report import BuildReports, DedupReports, SealAndSign
from csadetect.transforms.review import STATS, ApplyVerdicts, ExpireReview, QueueForReview, WriteReviewItems
from csadetect.transforms.sinks import WriteDeadLetters, WriteReports
from csadetect.transforms.stats import WriteStats, stat_of

LOG = logging.getLogger("csadetect.detect")


def effective_settings(settings: Settings, opts: DetectOptions) -> Settings:
    """Command-line overrides on top of the config file."""
    ind, sinks = {}, {}
    if opts.indicators:
        ind["path"] = opts.indicators
    if opts.public_key:
        ind["public_key"] = opts.public_key
    if opts.poll_seconds:
        ind["poll_seconds"] = opts.poll_seconds
    for key in ("report_dir", "report_topic", "dead_letter_dir", "dead_letter_topic", "review_dir", "review_topic"):
        value = getattr(opts, key)
        if value is not None:
            sinks[key] = value or None
    update = {
        "indicators": settings.indicators.model_copy(update=ind),
        "sinks": settings.sinks.model_copy(update=sinks),
    }
    if opts.verdict_subscription is not None:
        update["review"] = settings.review.model_copy(update={"verdict_subscription": opts.verdict_subscription or None})
    keys = {k: getattr(opts, k) or None for k in ("signing_key", "evidence_key", "centre_public_key")
            if getattr(opts, k) is not None}
    if keys:
        update["reports"] = settings.reports.model_copy(update=keys)
    if opts.stats_dir is not None:
        update["stores"] = settings.stores.model_copy(update={"stats_dir": opts.stats_dir or None})
    return settings.model_copy(update=update)


def check_video_probe() -> None:
    """Videos are checked against their limits from container metadata before any frame is decoded
    (``ffprobe``); without it every video would be dead-lettered, so refuse to start instead."""
    if shutil.which("ffprobe") is None:
        raise ConfigError("ffprobe not found on PATH: videos cannot be checked against their limits before "
                          "decoding (install FFmpeg: `make sysdeps`, or the worker image's ffmpeg package)")


def check_orders(settings: Settings, now=None) -> list:
    """Refuse to start without an active detection order (Art. 7); warn about enabled detectors
    that no active order covers. Returns the active orders."""
    now = now or utc_now()
    active = settings.active_orders(now)
    if not active:
        known = ", ".join(f"{o.order_id} ({o.start:%Y-%m-%d} to {o.end:%Y-%m-%d})" for o in settings.orders) or "none"
        raise ConfigError(f"no active detection order at {utc_iso(now)} (Art. 7): configured orders: {known}; "
                          "detection may only run under an order (config key `orders`)")
    for o in active:
        LOG.info("detection order %s (%s): %s on %s until %s", o.order_id, o.authority, ", ".join(o.detection_types),
                 ", ".join(o.services), utc_iso(o.end))
    enabled = {"known": True, "new": settings.new_material.enabled, "grooming": settings.grooming.enabled}
    for dtype, on in enabled.items():
        if on and not any(dtype in o.detection_types for o in active):
            LOG.warning("%s detection is enabled but no active order covers it: it will not run", dtype)
    return active


def check_report_keys(settings: Settings):
    """Load the report keys once at start-up (a missing key stops here with one line)."""
    try:
        keys = ReportKeys.load(settings.reports)
    except ReportKeyError as exc:
        raise ConfigError(f"{exc} (the provider's keys: `csadetect review keygen --out KEYDIR`, which prints the "
                          "`reports:` config section; the EU Centre's: `csadetect reports centre-keygen --out KEYDIR`)") from None
    if keys.signing is None:
        LOG.warning("reports.signing_key is not set: reports will NOT be signed")
    if not keys.seals_evidence:
        LOG.warning("reports.evidence_key / centre_public_key not set: reports and review items carry no evidence")
    return keys


@dataclasses.dataclass(frozen=True)
class ResolvedModels:
    """What the graph needs to know about the configured image models (from their metadata)."""

    embedding: Optional[EmbeddingSpec] = None
    new_material: Optional[NewMaterialPolicy] = None


def resolve_models(settings: Settings) -> ResolvedModels:
    """Read the image models' metadata (no TensorFlow) and check they fit together. Raises
    ConfigError with one line for a missing or mismatched model."""
    embedding = new_material = None
    try:
        if settings.embedding.enabled:
            embedding = EmbeddingSpec.resolve(settings.embedding)
        if settings.new_material.enabled:
            new_material = NewMaterialPolicy.resolve(settings.new_material)
    except ModelError as exc:
        raise ConfigError(f"{exc} (set embedding.enabled / new_material.enabled: false to run without it)") from None
    if new_material is not None and new_material.embedding_version not in (None, embedding.version):
        raise ConfigError(
            f"new-material classifier {new_material.version} was trained on embedding "
            f"{new_material.embedding_version}, but the configured embedding model is {embedding.version}"
        )
    return ResolvedModels(embedding, new_material)


def build_pipeline(
    pipeline: beam.Pipeline,
    settings: Settings,
    source: Source,
    streaming: bool = False,
    window_seconds: int = 60,
    models: Optional[ResolvedModels] = None,
    clock=None,
    run_id: Optional[str] = None,
):
    """Wire the detection graph onto ``pipeline``. Returns a dict of the main PCollections and the
    ``run_id``. ``models``: from :func:`resolve_models` (resolved here when not given); ``clock``: a
    callable returning the current UTC datetime for the detection-order check (tests inject one);
    ``run_id``: the run (:mod:`csadetect.core.runs`; a new one when not given): reports, dead
    letters, stats and review items go to its directory under each configured directory, and it is
    part of every report id. :func:`run` checks that those directories hold no records yet."""
    models = models if models is not None else resolve_models(settings)
    emb = models.embedding
    run_id = graph_run_id(run_id)
    sinks = settings.sinks
    in_run = {name: runs.run_dir(base, run_id) if base else None
              for name, base in (("reports", sinks.report_dir), ("dead_letters", sinks.dead_letter_dir),
                                 ("stats", settings.stores.stats_dir))}
    evidence_key = settings.reports.evidence_key if settings.reports.include_evidence else None
    raw = pipeline | "ReadEvents" >> ReadEvents(source)
    parsed = raw | "ParseEvents" >> ParseEvents(settings.limits)
    gated = parsed.events | "ApplyOrders" >> ApplyOrders(settings.orders, clock)
    resolved = gated.covered | "ResolveContent" >> ResolveContent(settings.limits, settings.content, source.media_glob)
    hashed = resolved.events | "HashMedia" >> HashMedia(
        settings.limits, settings.match, emb.input_size if emb else 0, settings.embedding.flip, evidence_key
    )
    if settings.grooming.enabled:
        g = settings.grooming
        flagged = hashed[TEXT] | "ClassifyGrooming" >> ClassifyGrooming(
            g.model, g.threshold, g.inactivity_seconds, unsupported_languages=g.unsupported_languages,
            undo_obfuscation=g.undo_obfuscation)
    else:
        hashed[TEXT] | "TextNotScanned" >> DropUnscanned()
        flagged = None
    items = hashed.hashed
    if emb is not None:
        # the region views are embedded by MatchIndicators, from the image or its mirror
        items = items | "EmbedImages" >> EmbedImages(emb.path, settings.embedding.batching, streaming, defer_regions=True)
    matched = items | "MatchIndicators" >> MatchIndicators(settings.indicators, settings.match, emb)
    # allow-list, per-source/category thresholds, flood guard (docs/false-positives.md)
    controlled = matched | "GuardMatches" >> GuardMatches(
        settings.match, settings.allow_list, settings.flood_guard, emb, settings.embedding.auto_confirm_similarity)
    matched = controlled.matched
    if models.new_material is not None:
        matched = matched | "ClassifyNew" >> ClassifyNew(models.new_material, settings.new_material.batching, streaming)
    decided = matched | "Decide" >> Decide(settings.match, settings.embedding.auto_confirm_similarity)

    # confirmed hits -> reports: one per report_id, evidence re-sealed for the Centre, signed
    sealed = (
        decided.confirmed
        | "BuildReports" >> BuildReports(settings.provider, run_id)
        | "DedupReports" >> DedupReports()
        | "SealAndSign" >> SealAndSign(settings.reports)
    )
    reports = sealed.reports
    # every stage's dead letters (stage, one-line reason, printable event id; never content)
    dead_letters = [parsed[DEAD_LETTER], gated[DEAD_LETTER], resolved[DEAD_LETTER], hashed[DEAD_LETTER],
                    decided[DEAD_LETTER], sealed[DEAD_LETTER]]
    stats = [
        gated.covered | "StatScanned" >> beam.Map(lambda e: stat_of("scanned", kind=e.kind)(e)),
        gated[NOT_COVERED] | "StatNotCovered" >> beam.Map(lambda kind: stat_of("not_covered", kind=kind)(kind)),
        reports | "StatHit" >> beam.Map(lambda r: stat_of("hit", kind=r["content_kind"], detector=r["detector"])(r)),
    ]
    all_reports = [reports]

    # hits awaiting a human: the review queue (store + topic); verdicts turn them into reports
    review_sources = [decided[REVIEW], controlled[REVIEW]] + ([flagged] if flagged is not None else [])
    queued = (
        review_sources
        | "MergeReview" >> beam.Flatten()
        | "QueueForReview" >> QueueForReview(settings.provider, settings.reports, settings.review.ttl_seconds,
                                            settings.grooming.urgent_patterns, run_id)
    )
    # a redelivered event queues its item once (and counts once): queued again after its verdict,
    # it would go back to a reviewer, its evidence stored again
    review = queued.items | "DedupReview" >> DedupReports(kept=None, duplicate="duplicate_review_item")
    dead_letters.append(queued[DEAD_LETTER])
    if sinks.review_dir or sinks.review_topic:
        review | "WriteReview" >> WriteReviewItems(sinks.review_dir, sinks.review_topic, run_id)
    stats += [
        review | "StatReviewHit" >> beam.Map(lambda r: stat_of("hit", kind=r["content_kind"], detector=r["detector"])(r)),
        review | "StatReviewQueued" >> beam.Map(lambda r: stat_of("review_queued", detector=r["detector"])(r)),
    ]
    if settings.review.verdict_subscription:
        check_review_store(settings)
        verdicts = (
            pipeline
            | "ReadVerdicts" >> beam.io.ReadFromPubSub(subscription=settings.review.verdict_subscription)
            | "ApplyVerdicts" >> ApplyVerdicts(sinks.review_dir, settings.reports)
        )
        all_reports.append(verdicts["reports"])
        stats.append(verdicts[STATS])
        dead_letters.append(verdicts[DEAD_LETTER])
        if streaming:
            stats.append(
                raw
                | "ExpireReview" >> ExpireReview(sinks.review_dir, settings.review.sweep_seconds, settings.retention.log_dir)
            )
    if len(all_reports) > 1:
        all_reports = all_reports | "MergeReports" >> beam.Flatten()
    else:
        all_reports = all_reports[0]
    all_reports | "WriteReports" >> WriteReports(
        in_run["reports"], sinks.report_topic, sinks.formats, streaming=streaming, window_seconds=window_seconds
    )
    stats.append(all_reports | "StatReported" >> beam.Map(
        lambda r: stat_of("reported", detector=r["detector"], detector_version=r["detector_version"])(r)))

    dead = dead_letters | "MergeDeadLetters" >> beam.Flatten()
    dead | "WriteDeadLetters" >> WriteDeadLetters(
        in_run["dead_letters"], sinks.dead_letter_topic, streaming=streaming, window_seconds=window_seconds
    )
    stats.append(dead | "StatDeadLettered" >> beam.Map(lambda d: stat_of("dead_lettered")(d)))
    if settings.stores.stats_dir:
        stats | "MergeStats" >> beam.Flatten() | "WriteStats" >> WriteStats(in_run["stats"], streaming, window_seconds)
    return {"reports": all_reports, "dead_letters": dead, "review": review, "grooming": flagged, "run_id": run_id}


def run_bases(settings: Settings) -> list:
    """The configured directories a run writes its own directory under (reports, dead letters,
    review store, stats)."""
    s = settings.sinks
    return [d for d in (s.report_dir, s.dead_letter_dir, s.review_dir, settings.stores.stats_dir) if d]


def check_review_store(settings: Settings) -> None:
    """Reviewer verdicts (``review.verdict_subscription``) are applied to the review store: one line
    when there is none, before anything loads."""
    if settings.review.verdict_subscription and not settings.sinks.review_dir:
        raise ConfigError("review.verdict_subscription needs sinks.review_dir (the review store)")


def check_indicators(settings: Settings):
    """Load and verify the snapshot once before the graph is built, so a missing, tampered or
    rolled-back database (``CURRENT`` below the highest signed version, or a version below
    ``indicators.min_version``) stops start-up with one clear line instead of failing inside every
    worker."""
    ind = settings.indicators
    try:
        found = check_head(ind.path, ind.public_key, ind.min_version)
        return load_index(ind.path, ind.public_key, settings.match, version=found.latest, min_version=ind.min_version,
                          cache_dir=ind.cache_dir)
    except (SnapshotError, OSError, ValueError) as exc:
        raise ConfigError(f"indicator database {settings.indicators.path}: {exc}") from None


def check_embedding_rows(index, models: ResolvedModels) -> None:
    """Embedding rows made by another model only (an index built before the embedding model
    changed) would never match the configured model's queries: ConfigError with one line, before
    the graph is built, instead of embedding matches lost without a sign."""
    if models.embedding is not None:
        problem = index.embedding_version_problem(models.embedding.version)
        if problem:
            raise ConfigError(problem)


def check_fp_controls(settings: Settings, load_allow_list: bool = True) -> None:
    """The false-positive controls at start-up (docs/false-positives.md): the thresholds' kinds
    (one line for one that is not a kind with a distance), a warning for thresholds that cannot
    change anything, and (``load_allow_list``) the allow-list snapshot loaded and verified once, so
    a missing, tampered or rolled-back allow-list stops start-up with one line."""
    thresholds = Thresholds.from_settings(settings.match)
    for key in thresholds.without_effect(settings.match):
        LOG.warning("%s is not stricter than the global threshold: it changes nothing", key)
    allow = settings.allow_list
    if allow.path and load_allow_list:
        try:
            check_head(allow.path, allow.public_key, allow.min_version)  # CURRENT not rolled back
            index = AllowList(allow, settings.match).index
        except (SnapshotError, OSError, ValueError) as exc:
            raise ConfigError(f"allow-list database {allow.path}: {exc}") from None
        LOG.info("allow-list: snapshot version %s, %d entries", index.version, len(index))
    fg = settings.flood_guard
    if fg.enabled:
        LOG.info("flood guard: an indicator matching more than %g of a worker's items in %gs (at least %d matches) "
                 "is quarantined%s", fg.share, fg.window_seconds, fg.min_matches,
                 f"; release records: {fg.release_dir}" if fg.release_dir else "")


def check_grooming_model(settings: Settings):
    """Load the grooming model once at start-up: a missing or corrupt model stops here."""
    try:
        model = GroomingModel.load(settings.grooming.model)
    except ModelError as exc:
        raise ConfigError(f"{exc} (set grooming.enabled: false to run without it)") from None
    LOG.info("grooming model %s loaded (threshold %.3f)", model.version, settings.grooming.threshold or model.threshold)
    return model


def check_image_models(settings: Settings, models: ResolvedModels) -> None:
    """Load the image models once at start-up so a corrupt file stops here, not in a worker."""
    try:
        if models.embedding is not None:
            EmbeddingModel.load(models.embedding.path)
            LOG.info("embedding model %s loaded (near-duplicate similarity >= %.4f)",
                     models.embedding.version, models.embedding.threshold)
        if models.new_material is not None:
            NewMaterialClassifier.load(models.new_material.model_path)
            p = models.new_material
            LOG.info("new-material classifier %s loaded (review >= %.3f, report >= %.3f, review required: %s)",
                     p.version, p.review_threshold, p.report_threshold, p.require_review)
    except ModelError as exc:
        raise ConfigError(f"{exc} (set embedding.enabled / new_material.enabled: false to run without it)") from None


outcome_counts = counter_values  # the detection pipeline's name for it


def run(argv=None, save_main_session: bool = False):
    start = launch(argv, DetectOptions, effective_settings, save_main_session,
                   quiet=("faiss.loader", "apache_beam.io.fileio", "apache_beam.runners.worker.statecache"))
    options, opts, std, profile, settings = start.options, start.opts, start.std, start.profile, start.settings
    source = Source.from_options(opts).validate()
    if not (std.runner or "").lower().startswith("dataflow"):
        check_input_files(source)  # a glob matching nothing: one line before anything else, not a traceback
    if source.unbounded and not std.streaming:
        raise ConfigError("a Pub/Sub subscription or a Kafka topic needs --streaming")
    if settings.review.verdict_subscription and not std.streaming:
        raise ConfigError("a verdict subscription needs --streaming (or apply verdicts with `csadetect review decide`)")
    check_review_store(settings)
    sinks = settings.sinks  # a missing subscription or topic: one line before the models load (local runners)
    check_pubsub([source.subscription, settings.review.verdict_subscription],
                 [sinks.report_topic, sinks.dead_letter_topic, sinks.review_topic], std.runner)
    run_id = start_run("csadetect run", run_bases(settings), opts.run_id, std.runner)  # a refusal: its line alone
    print_effective(options, settings, DETECT_KEYS, profile, "csadetect run")  # one stderr block, secrets masked
    local = local_storage(options, settings)
    if local:
        LOG.warning("%s workers cannot reach this machine's disk; use gs:// paths: %s", std.runner, ", ".join(local))
    check_orders(settings)
    if not (std.runner or "").lower().startswith("dataflow"):
        index = check_indicators(settings)
        LOG.info("indicators: snapshot version %s, %d indicators", index.version, len(index))
        note_index_version(index.version)
    check_fp_controls(settings, load_allow_list=not (std.runner or "").lower().startswith("dataflow"))
    models = resolve_models(settings)
    if not (std.runner or "").lower().startswith("dataflow"):  # on Dataflow the worker image brings FFmpeg
        check_embedding_rows(index, models)
        check_video_probe()
        if settings.grooming.enabled:
            check_grooming_model(settings)
        check_image_models(settings, models)
        check_report_keys(settings)  # on Dataflow the workers hold the keys
    with new_pipeline(options) as pipeline:
        build_pipeline(pipeline, settings, source, std.streaming, opts.window_seconds, models, run_id=run_id)
        result = run_and_wait(pipeline, std)
    if not getattr(std, "no_wait_until_finish", False):
        runs.remove_temp_dirs(run_bases(settings))  # what Beam's file writes left (streaming)
    try:
        result.run_id = run_id
    except AttributeError:  # a result type that takes no attributes: the id was printed at start
        pass
    return result


def summary(result) -> dict:
    counts = outcome_counts(result)
    out = {k: counts.get(k, 0) for k in ("received", "hit", "non_hit", "dead_lettered", "report", "hit_review")}
    return {"run_id": getattr(result, "run_id", None), **out}


def main(argv=None) -> int:
    return pipeline_main(argv, "csadetect run", __doc__, help_options(DetectOptions), run, summary)


if __name__ == "__main__":
    sys.exit(main())
