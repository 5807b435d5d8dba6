"""The feedback pipeline: EU Centre verdicts joined to the provider's reports -> precision per
detector and version, alerts, labelled examples and user notifications (DESIGN §8, Art. 83(1)(a),
Art. 12(2); ``docs/feedback.md``).

``build_pipeline`` only wires the named transforms of ``csadetect/transforms/feedback.py``; ``run(argv)``
parses options, validates the configuration before the graph is built and runs it; ``main``
prints one JSON summary line. Pipeline options (runner, streaming, ...) pass straight through.
Every run writes under its own run id, ``<feedback.out_dir>/<RUN_ID>/`` and
``<feedback.notifications_dir>/<RUN_ID>/`` (:mod:`csadetect.core.runs`): a second run replaces
nothing of the first's.

    python -m csadetect.pipelines.feedback --verdict_glob 'verdicts/*.jsonl' --report_glob 'out/reports/**.jsonl'

The reports default to every run's, ``<sinks.report_dir>/**.jsonl`` (the top level and each
``<RUN_ID>/``, :mod:`csadetect.core.runs`); one run's are ``--report_glob '<report_dir>/<RUN_ID>/*.jsonl'``.
    python -m csadetect.pipelines.feedback --streaming --report_subscription projects/P/subscriptions/R \
        --verdict_subscription projects/P/subscriptions/V --notifications_topic projects/P/topics/N
"""
from __future__ import annotations

import dataclasses
import json
import logging
import sys
from typing import Optional

import apache_beam as beam

from csadetect.config.profiles import FEEDBACK_KEYS
from csadetect.config.settings import ConfigError, Settings
from csadetect.core import fs, runs
from csadetect.core.keys import load_public_key
from csadetect.core.timeutil import parse_time, utc_iso
from csadetect.pipelines import counter_values, pipeline_main
from csadetect.pipelines.options import (
    FeedbackOptions, graph_run_id, help_options, launch, local_storage, new_pipeline, print_effective,
    run_and_wait, start_run,
)
from csadetect.pipelines.sources import check_globs
from csadetect.transforms.feedback import (
    Alerts,
    JoinVerdicts,
    LabelledExamples,
    ParseReports,
    ParseVerdicts,
    PrecisionPerDetector,
    ScheduleNotifications,
)
from csadetect.transforms.sinks import WriteRecords

LOG = logging.getLogger("csadetect.feedback")
DETECTION_TYPES = ("known", "new", "grooming")
SUMMARY_COUNTERS = {
    "reports": "feedback_report",
    "verdicts": "feedback_verdict",
    "verdicts_joined": "feedback_joined",
    "unknown_report": "feedback_unknown_report",
    "duplicate_verdict": "feedback_duplicate_verdict",
    "bad_verdict": "feedback_bad_verdict",
    "bad_report": "feedback_bad_report",
    "unverified_report": "feedback_unverified_report",
    "alerts": "feedback_alert",
    "notifications": "feedback_notification",
    "examples": "feedback_example",
}


@dataclasses.dataclass(frozen=True)
class Sources:
    report_glob: Optional[str] = None
    report_subscription: Optional[str] = None
    verdict_glob: Optional[str] = None
    verdict_subscription: Optional[str] = None

    def validate(self, streaming: bool) -> "Sources":
        if bool(self.report_glob) == bool(self.report_subscription):
            raise ConfigError("give exactly one report input: --report_glob or --report_subscription")
        if bool(self.verdict_glob) == bool(self.verdict_subscription):
            raise ConfigError("give exactly one verdict input: --verdict_glob or --verdict_subscription")
        if (self.report_subscription or self.verdict_subscription) and not streaming:
            raise ConfigError("a Pub/Sub subscription needs --streaming")
        return self


def _read(pbegin, label: str, glob: Optional[str], subscription: Optional[str]):
    if subscription:
        return pbegin | f"{label}PubSub" >> beam.io.ReadFromPubSub(subscription=subscription)
    return pbegin | f"{label}Files" >> beam.io.ReadFromText(glob)


def effective_settings(settings: Settings, opts: FeedbackOptions) -> Settings:
    """Command-line overrides on top of the config file."""
    fb = {}
    for key in ("out_dir", "notifications_dir", "notifications_topic", "precision_floor", "min_verdicts"):
        value = getattr(opts, key)
        if value is not None:
            fb[key] = value if not isinstance(value, str) else (value or None)
    if opts.verdict_glob is not None:
        fb["verdict_glob"] = opts.verdict_glob or None
    if opts.verdict_subscription is not None:
        fb["subscription"] = opts.verdict_subscription or None
    try:
        feedback = type(settings.feedback).model_validate(dict(settings.feedback.model_dump(), **fb))
    except Exception as exc:  # pydantic ValidationError: one line
        first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first["loc"]) or "feedback"
        raise ConfigError(f"invalid option for feedback.{where}: {first['msg']}") from None
    return settings.model_copy(update={"feedback": feedback})


def sources_from(settings: Settings, opts: FeedbackOptions, streaming: bool) -> Sources:
    fb = settings.feedback
    report_glob = opts.report_glob
    if not report_glob and not opts.report_subscription and settings.sinks.report_dir:
        report_glob = runs.pattern(settings.sinks.report_dir.rstrip("/"), ".jsonl")  # every run's reports
    verdict_glob, verdict_sub = fb.verdict_glob, fb.subscription
    if verdict_glob and verdict_sub:  # both configured: the one given on the command line wins
        if opts.verdict_subscription:
            verdict_glob = None
        else:
            verdict_sub = None
    return Sources(report_glob or None, opts.report_subscription or None, verdict_glob, verdict_sub).validate(streaming)


def build_pipeline(
    pipeline: beam.Pipeline,
    settings: Settings,
    sources: Sources,
    streaming: bool = False,
    now: Optional[str] = None,
    public_key: Optional[str] = None,
    window_seconds: int = 60,
    precision_every_seconds: float = 0.0,
    unknown_grace_seconds: float = 600.0,
    run_id: Optional[str] = None,
):
    """Wire the feedback graph onto ``pipeline``. Returns a dict of the main PCollections:
    ``joined``, ``precision``, ``alerts``, ``examples`` and ``notifications``, and the ``run_id``.
    ``now``: the clock for batch runs (None: the real time). ``run_id``: the run
    (:mod:`csadetect.core.runs`; a new one when not given): its files go to its own directory under
    ``feedback.out_dir`` and ``feedback.notifications_dir``, so a second run never replaces the
    first's; :func:`run` checks that those directories hold no records yet."""
    fb = settings.feedback
    run_id = graph_run_id(run_id)
    out_dir, notifications_dir = (runs.run_dir(d, run_id) if d else None for d in (fb.out_dir, fb.notifications_dir))
    reports = (
        _read(pipeline, "ReadReports", sources.report_glob, sources.report_subscription)
        | "ParseReports" >> ParseReports(public_key)
    )
    verdicts = (
        _read(pipeline, "ReadVerdicts", sources.verdict_glob, sources.verdict_subscription)
        | "ParseVerdicts" >> ParseVerdicts()
    )
    joined = (reports, verdicts) | "JoinVerdicts" >> JoinVerdicts(
        streaming, unknown_grace_seconds, settings.retention.days * 24 * 3600.0)
    precision = joined | "PrecisionPerDetector" >> PrecisionPerDetector(streaming, now, precision_every_seconds)
    alerts = precision | "Alerts" >> Alerts(fb.precision_floor, fb.min_verdicts)
    examples = joined | "LabelledExamples" >> LabelledExamples()
    notifications = joined | "ScheduleNotifications" >> ScheduleNotifications(fb.notify_after_days, now)

    def write(pcoll, label, prefix, directory, topic=None, id_attribute=None):
        if directory or topic:
            pcoll | label >> WriteRecords(prefix, directory, topic, ("jsonl",), None, id_attribute,
                                          streaming, window_seconds)

    write(precision, "WritePrecision", "precision", out_dir)
    write(alerts, "WriteAlerts", "alerts", out_dir)
    if out_dir:
        # one file per detection type: `csadetect tune` reads one model's scores at a time, and
        # hash matches (no score, a distance) would not mix with classifier scores
        for kind in DETECTION_TYPES:
            write(examples | f"Examples{kind.capitalize()}" >> beam.Filter(lambda e, k=kind: e["detection_type"] == k),
                  f"WriteExamples{kind.capitalize()}", f"examples-{kind}", out_dir)
    write(notifications, "WriteNotifications", "notifications", notifications_dir, fb.notifications_topic,
          "notification_id")
    return {"joined": joined, "precision": precision, "alerts": alerts, "examples": examples,
            "notifications": notifications, "run_id": run_id}


def run_bases(settings: Settings) -> list:
    """The configured directories a feedback run writes its own directory under."""
    return [d for d in (settings.feedback.out_dir, settings.feedback.notifications_dir) if d]


def read_precision(out_dir: Optional[str], run_id: str, at: str) -> list[dict]:
    """The precision records run ``run_id`` wrote (``at`` is the run's clock) under ``out_dir``."""
    if not out_dir:
        return []
    records = []
    for match in fs.match(fs.join(runs.run_dir(out_dir, run_id), "precision-*.jsonl")):
        for line in fs.read_text(match.path).splitlines():
            if line.strip():
                record = json.loads(line)
                if record.get("at") == at:
                    records.append(record)
    return sorted(records, key=lambda r: (r["detector"], r["detector_version"]))


class FeedbackRun:
    """What :func:`run` returns: the Beam result, the run's clock, its settings and its run id."""

    def __init__(self, result, at: str, settings: Settings, run_id: str):
        self.result = result
        self.at = at
        self.settings = settings
        self.run_id = run_id

    def summary(self) -> dict:
        counts = counter_values(self.result)
        out = {"run_id": self.run_id, **{key: counts.get(name, 0) for key, name in SUMMARY_COUNTERS.items()}}
        out["precision"] = [
            {k: r[k] for k in ("detector", "detector_version", "verdicts", "confirmed", "precision",
                               "precision_low", "precision_high")}
            for r in read_precision(self.settings.feedback.out_dir, self.run_id, self.at)
        ]
        return out


def run(argv=None, save_main_session: bool = False) -> FeedbackRun:
    start = launch(argv, FeedbackOptions, effective_settings, save_main_session)
    options, opts, std, profile, settings = start.options, start.opts, start.std, start.profile, start.settings
    sources = sources_from(settings, opts, std.streaming)
    if not (std.runner or "").lower().startswith("dataflow"):  # a glob matching nothing: one line, not a traceback
        check_globs((("--report_glob", sources.report_glob), ("--verdict_glob", sources.verdict_glob)))
    if opts.now:
        try:
            parse_time(opts.now)
        except ValueError:
            raise ConfigError(f"--now {opts.now!r} is not an RFC 3339 time with a UTC offset") from None
    run_id = start_run("csadetect feedback", run_bases(settings), opts.run_id, std.runner)  # a refusal: its line alone
    print_effective(options, settings, FEEDBACK_KEYS, profile, "csadetect feedback")  # one stderr block, secrets masked
    local = local_storage(options, settings, ("feedback.out_dir", "feedback.notifications_dir"))
    if local:
        LOG.warning("%s workers cannot reach this machine's disk; use gs:// paths: %s", std.runner, ", ".join(local))
    if opts.public_key and not (std.runner or "").lower().startswith("dataflow"):  # on Dataflow the workers load it
        try:
            load_public_key(opts.public_key)
        except Exception as exc:
            raise ConfigError(f"--public_key: {exc}") from None
    # batch: one clock for the whole run (every record of the run has the same `at`);
    # streaming: the real time of each update unless --now pins it
    now = opts.now or (None if std.streaming else utc_iso())
    fb = settings.feedback
    LOG.info("feedback: precision floor %.3f after %d verdicts; notifications %d days after a report",
             fb.precision_floor, fb.min_verdicts, fb.notify_after_days)
    with new_pipeline(options) as pipeline:
        build_pipeline(pipeline, settings, sources, std.streaming, now, opts.public_key, opts.window_seconds,
                       opts.precision_every_seconds, opts.unknown_grace_seconds, run_id)
        result = run_and_wait(pipeline, std)
    if not getattr(std, "no_wait_until_finish", False):
        runs.remove_temp_dirs(run_bases(settings))  # what Beam's file writes left (streaming)
    return FeedbackRun(result, now, settings, run_id)


def main(argv=None) -> int:
    return pipeline_main(argv, "csadetect feedback", __doc__, help_options(FeedbackOptions), run,
                         lambda outcome: outcome.summary())


if __name__ == "__main__":
    sys.exit(main())
