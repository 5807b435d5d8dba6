"""Feedback pipeline tests: the DoFns called directly, the batch graph on the FnApiRunner with
assert_that, and ``run`` / ``main`` end to end on files (with ``--now`` and signed reports)."""
from __future__ import annotations

import argparse
import glob
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import GlobalWindow

from csadetect.config.profiles import FN_API_RUNNER
from csadetect.config.settings import load_settings
from csadetect.tuning.tune import TuneError, read_examples, wilson
from csadetect.cli.feedback import register
from csadetect.feedback.notifications import notification_id, schedule_notification, supersedes
from csadetect.feedback.precision import alert_line, example_id, labelled_example, precision_delta, precision_record
from csadetect.feedback.verdicts import joined_record, minimal_report
from csadetect.pipelines.feedback import Sources, build_pipeline, counter_values, main
from csadetect.transforms.feedback import (
    AlertFn,
    ParseReportFn,
    ParseVerdictFn,
    PrecisionCombineFn,
    ScheduleNotificationFn,
    _BatchJoinFn,
    _StreamingJoinFn,
)

NOW = "2026-11-28T10:00:00Z"
CREATED = "2026-11-02T09:30:00Z"
DUE_3M = "2027-01-31T09:30:00Z"  # CREATED + 90 days
CLF = ("new-material-classifier", "clf-v1", "new")
HASH = ("known-hash", "indicators-v7", "known")
GROOM = ("grooming-text", "groom-v2", "grooming")


def report(rid, detector=CLF, score=None, distance=None, account=None, created_at=CREATED):
    name, version, kind = detector
    return {
        "report_id": rid, "schema_version": "1.2", "provider_id": "prov-1", "created_at": created_at,
        "signature": None, "detection_type": kind, "detector": name, "detector_version": version,
        "score": score, "threshold": 0.85 if score is not None else None, "distance": distance,
        "indicator_ids": ["ind-1"] if kind == "known" else [], "categories": [], "matches": [],
        "review_status": "auto_confirmed", "reviewed_at": None, "content_kind": "image", "mime": "image/jpeg",
        "content_md5": "d41d8cd98f00b204e9800998ecf8427e", "content_sha256": "e3b0c44298fc1c149afbf4c8996fb924",
        "content_pdq": None, "evidence_encrypted": "x25519-aesgcm-v1:k:sealed", "event_id": f"event-of-{rid}",
        "service": "photos", "occurred_at": "2026-11-02T09:00:00Z", "account": account or f"account-of-{rid}",
        "ip": "192.0.2.1", "port": 443, "time_zone": None, "country": "DE", "device": "phone",
        "content_removed": False, "urgent": False, "legal_basis": "order", "order_id": "ORDER-1",
        "conversation_id": None, "risk_patterns": None, "reported_to_third_country": None, "account_action": "none",
    }


def verdict(rid, label, day=20, reason=None, **extra):
    return dict({"report_id": rid, "verdict": label, "reason": reason or f"centre reason {label}",
                 "decided_at": f"2026-11-{day:02d}T12:00:00Z", "delay_notification": False}, **extra)


class FakeState:
    def __init__(self, value=None):
        self.value = value

    def read(self):
        return self.value

    def write(self, value):
        self.value = value

    def clear(self):
        self.value = None


class FakeTimer:
    def __init__(self):
        self.at = None

    def set(self, at):
        self.at = at

    def clear(self):
        self.at = None


# ------------------------------------------------------------------------------- unit: parsing


def test_parse_verdict_normalises_and_drops_bad_input():
    fn = ParseVerdictFn()
    raw = {"report_id": "r1", "verdict": "manifestly_unfounded", "reason": "benign",
           "decided_at": "2026-11-28T11:00:00+01:00", "delay_notification": True, "delay_until": "2027-02-01T00:00:00Z"}
    (v,) = list(fn.process(json.dumps(raw).encode()))
    assert v == {"report_id": "r1", "verdict": "manifestly_unfounded", "reason": "benign",
                 "decided_at": "2026-11-28T10:00:00Z", "delay_notification": True,
                 "delay_until": "2027-02-01T00:00:00Z"}
    from apache_beam.io.gcp.pubsub import PubsubMessage

    (v,) = list(fn.process(PubsubMessage(json.dumps(verdict("r2", "confirmed")).encode(), {})))
    assert v["verdict"] == "confirmed" and v["delay_notification"] is False and v["delay_until"] is None
    bad = [b"{not json", b"[]", json.dumps({"verdict": "confirmed", "decided_at": NOW}),
           json.dumps(verdict("r", "maybe")), json.dumps(dict(verdict("r", "confirmed"), decided_at="yesterday")),
           json.dumps(dict(verdict("r", "confirmed"), decided_at="2026-11-28T10:00:00")),  # no offset
           json.dumps(dict(verdict("r", "confirmed"), delay_notification="yes"))]
    for line in bad:
        assert list(fn.process(line)) == [], line


def test_parse_report_keeps_only_what_feedback_needs():
    fn = ParseReportFn()
    fn.setup()
    (r,) = list(fn.process(json.dumps(report("r1", CLF, score=0.93)).encode()))
    assert r == {"report_id": "r1", "provider_id": "prov-1", "service": "photos", "account": "account-of-r1",
                 "created_at": CREATED, "detection_type": "new", "detector": CLF[0], "detector_version": CLF[1],
                 "score": 0.93, "distance": None, "threshold": 0.85}
    assert list(fn.process(b"not json")) == []
    assert list(fn.process(json.dumps(dict(report("r2"), created_at=None)))) == []
    assert list(fn.process(json.dumps(dict(report("r3"), detector=None)))) == []
    with pytest.raises(ValueError):
        minimal_report(dict(report("r4"), score="high"))


def test_parse_report_verifies_signatures(tmp_path):
    from csadetect.reports.crypto import sign_report
    from csadetect.core.keys import generate_keypair

    private, public = generate_keypair(tmp_path / "keys")
    signed = sign_report(report("r1"), private)
    tampered = dict(sign_report(report("r2"), private), account="someone-else")
    fn = ParseReportFn(public)
    fn.setup()
    assert [r["report_id"] for r in fn.process(json.dumps(signed))] == ["r1"]
    assert list(fn.process(json.dumps(tampered))) == []
    assert list(fn.process(json.dumps(report("r3")))) == []  # unsigned


# ---------------------------------------------------------------------------------- unit: join


def _batch_join(elements):
    fn = _BatchJoinFn()
    rs, vs, timer = FakeState(), FakeState(), FakeTimer()
    for el in elements:
        assert list(fn.process(el, win=GlobalWindow(), report_state=rs, verdict_state=vs, flush=timer) or []) == []
    assert timer.at == GlobalWindow().max_timestamp()
    return list(fn.flush(report_state=rs, verdict_state=vs) or [])


def test_batch_join_latest_verdict_wins_whatever_the_order():
    rep = minimal_report(report("r1"))
    early, late = verdict("r1", "manifestly_unfounded", day=5), verdict("r1", "confirmed", day=9)
    for order in ([early, late], [late, early], [late, early, early]):
        els = [("r1", ("verdict", v)) for v in order] + [("r1", ("report", rep))]
        (out,) = _batch_join(els)
        assert out == joined_record(rep, late)
    # only the report: a record for the notification schedule, no verdict
    assert _batch_join([("r1", ("report", rep))]) == [joined_record(rep, None)]
    # a verdict for a report never seen: dropped
    assert _batch_join([("zz", ("verdict", verdict("zz", "confirmed")))]) == []


def test_streaming_join_emits_at_once_and_corrects_superseded_verdicts():
    fn = _StreamingJoinFn(unknown_grace_seconds=60, retention_seconds=3600)
    st = {"report_state": FakeState(), "verdict_state": FakeState(), "emitted_state": FakeState(),
          "grace": FakeTimer(), "expire": FakeTimer()}
    rep = minimal_report(report("r1"))
    first, revised = verdict("r1", "manifestly_unfounded", day=5), verdict("r1", "confirmed", day=9)
    # the verdict comes first and waits for its report
    assert list(fn.process(("r1", ("verdict", first)), **st) or []) == []
    assert st["grace"].at is not None
    assert list(fn.process(("r1", ("report", rep)), **st)) == [joined_record(rep, first)]
    assert st["expire"].at is not None
    # an older duplicate changes nothing; a later decision supersedes, saying what it replaces
    assert list(fn.process(("r1", ("verdict", verdict("r1", "confirmed", day=1))), **st) or []) == []
    assert list(fn.process(("r1", ("verdict", revised)), **st)) == [joined_record(rep, revised, first, True)]
    assert list(fn.process(("r1", ("report", rep)), **st) or []) == []  # a redelivered report
    # a verdict whose report never comes is dropped when the grace period ends
    st2 = {k: (FakeState() if "state" in k else FakeTimer()) for k in st}
    list(fn.process(("zz", ("verdict", verdict("zz", "confirmed"))), **st2) or [])
    fn.grace_over(report_state=st2["report_state"], verdict_state=st2["verdict_state"])
    assert st2["verdict_state"].read() is None
    fn.expire(report_state=st["report_state"], verdict_state=st["verdict_state"], emitted_state=st["emitted_state"])
    assert st["report_state"].read() is None


# ----------------------------------------------------------------------- unit: outputs of a join


def test_precision_deltas_count_a_superseded_verdict_once():
    rep = minimal_report(report("r1", HASH, distance=3.0))
    c, u = verdict("r1", "confirmed"), verdict("r1", "manifestly_unfounded", day=21)
    assert list(precision_delta(joined_record(rep, None))) == []
    assert list(precision_delta(joined_record(rep, c))) == [((HASH[0], HASH[1]), (1, 0, "known"))]
    assert list(precision_delta(joined_record(rep, u, c, True))) == [((HASH[0], HASH[1]), (-1, 1, "known"))]
    assert list(precision_delta(joined_record(rep, dict(c, day=22), c, True))) == []
    fn = PrecisionCombineFn()
    acc = fn.create_accumulator()
    for d in [(1, 0, "known"), (1, 0, "known"), (0, 1, "known"), (-1, 1, "known")]:
        acc = fn.add_input(acc, d)
    assert fn.extract_output(fn.merge_accumulators([acc, fn.create_accumulator()])) == (1, 2, "known")


def test_precision_record_and_wilson_interval():
    rec = precision_record(CLF[0], CLF[1], "new", 3, 1, NOW)
    low, high = wilson(3, 4)
    assert rec == {"at": NOW, "detector": CLF[0], "detector_version": CLF[1], "detection_type": "new",
                   "verdicts": 4, "confirmed": 3, "manifestly_unfounded": 1, "precision": 0.75,
                   "precision_low": low, "precision_high": high}
    assert 0.0 < low < 0.75 < high <= 1.0
    assert precision_record("d", "v", None, 0, 0, NOW)["precision"] is None


def test_alert_fires_below_the_floor_once_and_rearms(capsys):
    fn = AlertFn(floor=0.8, min_verdicts=3)
    fn.setup()
    state = FakeState()

    def feed(confirmed, n):
        rec = precision_record("det", "v1", "new", confirmed, n - confirmed, NOW)
        return list(fn.process((("det", "v1"), rec), alerting=state) or [])

    assert feed(0, 2) == []  # too few verdicts to judge
    (alert,) = feed(1, 3)
    assert alert == {"at": NOW, "detector": "det", "detector_version": "v1", "precision": 1 / 3,
                     "floor": 0.8, "verdicts": 3}
    assert feed(1, 4) == []  # still below: no repeat
    assert feed(9, 10) == []  # recovered (0.9)
    assert len(feed(9, 12)) == 1  # below again (0.75): alerts again
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("ALERT")]
    assert lines == [alert_line(alert), alert_line(dict(alert, precision=0.75, verdicts=12))]
    assert lines[0] == "ALERT precision below floor: detector=det detector_version=v1 precision=0.3333 floor=0.8000 n=3"


def test_labelled_example_has_no_ids_or_personal_data():
    rep = minimal_report(report("r1", CLF, score=0.91))
    ex = labelled_example(joined_record(rep, verdict("r1", "confirmed", reason="matches category A1")))
    assert ex == {"example_id": example_id("r1"), "detector": CLF[0], "detector_version": CLF[1],
                  "detection_type": "new", "score": 0.91, "distance": None, "threshold": 0.85, "label": "confirmed",
                  "reason": "matches category A1", "decided_at": "2026-11-20T12:00:00Z"}
    assert labelled_example(joined_record(rep, None)) is None
    # the key is opaque: not the report id, nor the notification's id of the same report
    assert len(ex["example_id"]) == 32 and "r1" not in ex["example_id"] and ex["example_id"] != notification_id("r1")
    assert example_id("r1") != example_id("r2")


def test_notification_schedule():
    rep = minimal_report(report("r1"))
    base = {"notification_id": notification_id("r1"), "report_id": "r1", "provider_id": "prov-1",
            "service": "photos", "account": "account-of-r1"}
    unfounded = schedule_notification(rep, verdict("r1", "manifestly_unfounded"), NOW, 90)
    assert unfounded == dict(base, due_at=NOW, trigger="manifestly_unfounded", status="scheduled",
                             decided_at="2026-11-20T12:00:00Z")
    confirmed = schedule_notification(rep, verdict("r1", "confirmed"), NOW, 90)
    assert confirmed["due_at"] == DUE_3M and confirmed["trigger"] == "three_months"
    assert confirmed["status"] == "scheduled"
    assert schedule_notification(rep, None, NOW, 90)["due_at"] == DUE_3M  # no verdict (yet)
    assert schedule_notification(rep, None, NOW, 30)["due_at"] == "2026-12-02T09:30:00Z"
    delayed = schedule_notification(rep, verdict("r1", "confirmed", delay_notification=True,
                                                 delay_until="2027-06-01T00:00:00Z"), NOW, 90)
    assert delayed["status"] == "delayed" and delayed["due_at"] == "2027-06-01T00:00:00Z"
    open_ended = schedule_notification(rep, verdict("r1", "manifestly_unfounded", delay_notification=True), NOW, 90)
    assert open_ended["status"] == "delayed" and open_ended["due_at"] is None
    short = schedule_notification(rep, verdict("r1", "confirmed", delay_notification=True,
                                               delay_until="2026-12-01T00:00:00Z"), NOW, 90)
    assert short["due_at"] == DUE_3M  # a delay never brings the notification forward
    # one id per report: reruns and later verdicts replace, never add
    assert notification_id("r1") == notification_id("r1") != notification_id("r2")
    assert supersedes(unfounded, schedule_notification(rep, None, NOW, 90))
    assert supersedes(schedule_notification(rep, verdict("r1", "confirmed", day=25), NOW, 90), unfounded)
    assert not supersedes(unfounded, confirmed)  # same decided_at: keep what is there


def test_notification_not_repeated_when_unchanged():
    fn = ScheduleNotificationFn(90, NOW)
    rep = minimal_report(report("r1"))
    c = verdict("r1", "confirmed")
    assert len(list(fn.process(joined_record(rep, None)))) == 1
    assert list(fn.process(joined_record(rep, c, None, True))) == []  # same schedule as without a verdict
    (changed,) = fn.process(joined_record(rep, verdict("r1", "manifestly_unfounded", day=22), c, True))
    assert changed["trigger"] == "manifestly_unfounded"


# ------------------------------------------------------------------------- batch graph (FnApiRunner)


def _world(tmp_path, sign_with=None):
    """Reports of three detectors, verdicts for two: the classifier 3/4 (one report decided twice,
    the later decision counts), the hash matcher 1/3; a verdict for an unknown report; junk."""
    reports = [report(f"a{i}", CLF, score=s) for i, s in enumerate((0.97, 0.91, 0.88, 0.86))]
    reports += [report(f"b{i}", HASH, distance=float(d)) for i, d in enumerate((0, 12, 29))]
    reports.append(report("g0", GROOM, score=0.95))  # no verdict yet
    verdicts = [
        verdict("a0", "confirmed", 20), verdict("a0", "confirmed", 20),  # sent twice
        verdict("a1", "manifestly_unfounded", 10), verdict("a1", "confirmed", 21),  # revised: confirmed wins
        verdict("a2", "confirmed", 20), verdict("a3", "manifestly_unfounded", 20),
        verdict("b0", "confirmed", 20), verdict("b1", "manifestly_unfounded", 20),
        verdict("b2", "manifestly_unfounded", 20, delay_notification=True, delay_until="2027-03-01T00:00:00Z"),
        verdict("no-such-report", "confirmed", 20),
    ]
    if sign_with:
        from csadetect.reports.crypto import sign_report

        reports = [sign_report(r, sign_with) for r in reports]
        reports.append(dict(sign_report(report("x9", CLF, score=0.5), sign_with), score=0.99))  # altered
    (tmp_path / "reports").mkdir(exist_ok=True)
    (tmp_path / "reports" / "reports-00000-of-00001.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in reports))
    (tmp_path / "verdicts.jsonl").write_text("".join(json.dumps(v) + "\n" for v in verdicts) + "garbage\n")
    return reports


def _settings(tmp_path, **feedback):
    fb = {"out_dir": str(tmp_path / "feedback"), "notifications_dir": str(tmp_path / "notifications"),
          "precision_floor": 0.5, "min_verdicts": 3}
    fb.update(feedback)
    return load_settings(overrides={"feedback": fb, "sinks": {"report_dir": str(tmp_path / "reports")}})


def _lines(directory, pattern):
    return [json.loads(l) for f in sorted(glob.glob(str(Path(directory) / pattern))) for l in open(f) if l.strip()]


def _no_ids(tmp_path, reports):
    text = "".join(open(f).read() for f in glob.glob(str(tmp_path / "feedback" / "**" / "*.jsonl"), recursive=True))
    assert text
    for r in reports:
        for secret in (r["report_id"], r["account"], r["event_id"], r["content_sha256"], r["ip"]):
            assert f'"{secret}"' not in text, secret
    assert "no-such-report" not in text


def test_batch_pipeline(tmp_path):
    reports = _world(tmp_path)
    settings = _settings(tmp_path)
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    outs = build_pipeline(p, settings, Sources(report_glob=str(tmp_path / "reports" / "*.jsonl"),
                                               verdict_glob=str(tmp_path / "verdicts.jsonl")), now=NOW, run_id="run-1")
    assert outs["run_id"] == "run-1"
    assert_that(
        outs["precision"] | beam.Map(lambda r: (r["detector"], r["detector_version"], r["detection_type"],
                                                r["confirmed"], r["manifestly_unfounded"], r["precision"], r["at"])),
        equal_to([(CLF[0], CLF[1], "new", 3, 1, 0.75, NOW), (HASH[0], HASH[1], "known", 1, 2, 1 / 3, NOW)]),
        label="Precision",
    )
    assert_that(
        outs["alerts"] | beam.Map(lambda a: (a["detector"], a["detector_version"], a["verdicts"], a["floor"])),
        equal_to([(HASH[0], HASH[1], 3, 0.5)]), label="Alerts",
    )
    assert_that(
        outs["examples"] | beam.Map(lambda e: (e["detector"], e["score"], e["distance"], e["label"])),
        equal_to([(CLF[0], 0.97, None, "confirmed"), (CLF[0], 0.91, None, "confirmed"),
                  (CLF[0], 0.88, None, "confirmed"), (CLF[0], 0.86, None, "manifestly_unfounded"),
                  (HASH[0], None, 0.0, "confirmed"), (HASH[0], None, 12.0, "manifestly_unfounded"),
                  (HASH[0], None, 29.0, "manifestly_unfounded")]),
        label="Examples",
    )
    assert_that(
        outs["notifications"] | beam.Map(lambda n: (n["report_id"], n["trigger"], n["status"], n["due_at"])),
        equal_to([
            ("a0", "three_months", "scheduled", DUE_3M), ("a1", "three_months", "scheduled", DUE_3M),
            ("a2", "three_months", "scheduled", DUE_3M), ("a3", "manifestly_unfounded", "scheduled", NOW),
            ("b0", "three_months", "scheduled", DUE_3M), ("b1", "manifestly_unfounded", "scheduled", NOW),
            ("b2", "manifestly_unfounded", "delayed", "2027-03-01T00:00:00Z"),
            ("g0", "three_months", "scheduled", DUE_3M),
        ]),
        label="Notifications",
    )
    result = p.run()
    result.wait_until_finish()
    counts = counter_values(result)
    assert counts["feedback_joined"] == 7 and counts["feedback_unknown_report"] == 1
    assert counts["feedback_duplicate_verdict"] == 2 and counts["feedback_bad_verdict"] == 1
    assert counts["feedback_alert"] == 1

    out = tmp_path / "feedback" / "run-1"  # the run's own directory: a second run replaces nothing
    assert sorted(p.name for p in (tmp_path / "feedback").iterdir()) == ["run-1"]
    # the classifier's examples feed `csadetect tune` as they are
    (new_file,) = glob.glob(str(out / "examples-new-*.jsonl"))
    scores, labels = read_examples(new_file, "score", "label")
    order = np.argsort(scores)
    assert scores[order].tolist() == [0.86, 0.88, 0.91, 0.97]
    assert labels[order].tolist() == [False, True, True, True]
    (known_file,) = glob.glob(str(out / "examples-known-*.jsonl"))
    with pytest.raises(TuneError):  # hash matches have a distance, not a score: kept apart
        read_examples(known_file)
    assert not glob.glob(str(out / "examples-grooming-*.jsonl"))  # no verdict, no example
    examples = _lines(out, "examples-*.jsonl")
    for ex in examples:
        assert set(ex) == {"example_id", "detector", "detector_version", "detection_type", "score", "distance",
                           "threshold", "label", "reason", "decided_at"}
    # one opaque key a report: a reader counts the report once across runs and revisions
    assert sorted(ex["example_id"] for ex in examples) == sorted(
        example_id(r["report_id"]) for r in reports if r["report_id"] in {"a0", "a1", "a2", "a3", "b0", "b1", "b2"})
    (hash_precision,) = [r for r in _lines(out, "precision-*.jsonl") if r["detector"] == HASH[0]]
    assert (hash_precision["precision_low"], hash_precision["precision_high"]) == pytest.approx(wilson(1, 3))
    assert _lines(out, "alerts-*.jsonl") == [{"at": NOW, "detector": HASH[0], "detector_version": HASH[1],
                                              "precision": 1 / 3, "floor": 0.5, "verdicts": 3}]
    notes = _lines(tmp_path / "notifications" / "run-1", "notifications-*.jsonl")
    assert len(notes) == 8 and len({n["notification_id"] for n in notes}) == 8
    assert {n["account"] for n in notes} == {f"account-of-{r['report_id']}" for r in reports}
    for n in notes:
        assert set(n) == {"notification_id", "report_id", "provider_id", "service", "account", "due_at",
                          "trigger", "status", "decided_at"}
    _no_ids(tmp_path, reports)


def test_streaming_graph_builds_with_either_trigger():
    from apache_beam.options.pipeline_options import PipelineOptions

    settings = load_settings(overrides={"feedback": {"out_dir": "/tmp/unused-fb", "notifications_dir": None,
                                                     "notifications_topic": "projects/example-project/topics/notes"}})
    sources = Sources(report_subscription="projects/example-project/subscriptions/reports",
                      verdict_subscription="projects/example-project/subscriptions/verdicts").validate(streaming=True)
    triggers, stateful = {}, {}

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            if node.full_label.endswith("PrecisionPerDetector/GlobalAccumulating"):
                windowing = list(node.outputs.values())[0].windowing
                assert windowing.accumulation_mode == beam.transforms.trigger.AccumulationMode.ACCUMULATING
                triggers[every] = repr(windowing.triggerfn)
            if node.full_label.endswith("PrecisionPerDetector/Count"):
                stateful[every] = type(getattr(node.transform, "fn", None)).__name__

    for every in (0, 30):
        p = beam.Pipeline(options=PipelineOptions(["--streaming"]))
        outs = build_pipeline(p, settings, sources, streaming=True, precision_every_seconds=every)
        assert set(outs) == {"joined", "precision", "alerts", "examples", "notifications", "run_id"}
        p.visit(Visitor())
    # per verdict: running totals in per-key state; rate-limited: the accumulating global window
    assert triggers == {30: "Repeatedly(AfterProcessingTime(delay=30))"}
    assert stateful == {0: "_RunningTotalsFn"}  # at 30 s "Count" is the CombinePerKey composite


def test_streaming_precision_pane_after_the_watermark_still_reaches_a_file_window():
    """Under load the second verdict's pane fires after the watermark passed the sink's 5 s file
    window of its timestamp: stamped with the time it is made, the running total still arrives
    (before, the file window dropped it as late and precision stayed at one verdict)."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.testing.test_stream import TestStream

    from csadetect.transforms.feedback import PrecisionPerDetector

    def joined(rid, at):
        return beam.window.TimestampedValue(joined_record(report(rid, HASH), verdict(rid, "confirmed")), at)

    stream = (TestStream().advance_watermark_to(0).add_elements([joined("a", 1)])
              .advance_watermark_to(100).add_elements([joined("b", 2)])  # behind the watermark: late
              .advance_watermark_to_infinity())
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with BeamTestPipeline(runner="BundleBasedDirectRunner", options=options) as p:
        totals = (p | stream | PrecisionPerDetector(streaming=True, now=NOW)
                  | beam.WindowInto(beam.window.FixedWindows(5))  # what WriteRecords does in streaming
                  | beam.Map(lambda r: (r["detector"], r["verdicts"])) | beam.GroupByKey()  # what a file window holds
                  | beam.FlatMapTuple(lambda d, counts: [(d, n) for n in counts]))
        assert_that(totals, equal_to([(HASH[0], 1), (HASH[0], 2)]))  # both running totals reach a window


# ------------------------------------------------------------------------------- run / main / CLI


def _cli(argv):
    """``csadetect feedback ...`` as csadetect/cli/main.py parses it (passthrough options)."""
    parser = argparse.ArgumentParser(prog="csadetect")
    parser.add_argument("--config", default=None)
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args, extra = parser.parse_known_args(argv)
    assert getattr(args, "passthrough", False)
    args.extra = extra
    return args.func(args)


def test_run_end_to_end_with_now_and_signatures(tmp_path, capsys):
    from csadetect.core.keys import generate_keypair

    private, public = generate_keypair(tmp_path / "keys")
    reports = _world(tmp_path, sign_with=private)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"sinks": {"report_dir": str(tmp_path / "reports")},
                                  "feedback": {"out_dir": str(tmp_path / "feedback"), "min_verdicts": 3,
                                               "notifications_dir": str(tmp_path / "notifications")}}))
    argv = ["--config", str(config), "feedback", "--verdict_glob", str(tmp_path / "verdicts.jsonl"),
            "--precision_floor", "0.5", "--now", NOW, "--public_key", public]  # reports: <report_dir>/*.jsonl
    assert _cli(argv) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["verdicts_joined"] == 7 and summary["unknown_report"] == 1
    assert summary["duplicate_verdict"] == 2 and summary["unverified_report"] == 1
    assert summary["alerts"] == 1 and summary["notifications"] == 8
    assert [(p["detector"], p["verdicts"], p["confirmed"]) for p in summary["precision"]] == [
        (HASH[0], 3, 1), (CLF[0], 4, 3)]
    assert summary["precision"][1]["precision"] == 0.75
    alert_lines = [l for l in captured.err.splitlines() if l.startswith("ALERT")]
    assert len(alert_lines) == 1 and f"detector={HASH[0]}" in alert_lines[0] and "n=3" in alert_lines[0]
    # the ids here are short ("a0"): match them as whole words, so the tmp_path that pytest names
    # after this test (".../test_run_end_to_end_with_now_a0/", printed with the effective options)
    # does not count as a leak
    def leaked(value, text):
        return re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text) is not None

    for r in reports:
        assert not leaked(r["report_id"], captured.err) and not leaked(r["account"], captured.err)
        assert not leaked(r["report_id"], captured.out)
    assert "no-such-report" not in captured.err
    run_id = summary["run_id"]
    assert f"csadetect feedback: run id {run_id}" in captured.err
    precision = _lines(tmp_path / "feedback" / run_id, "precision-*.jsonl")
    assert {p["at"] for p in precision} == {NOW}
    _no_ids(tmp_path, reports)

    # a rerun writes its own run directory: the first run's files stay as they were, and the
    # notification ids are the same (consumers upsert by them)
    files = {p: p.read_bytes() for p in tmp_path.glob("*/" + run_id + "/*.jsonl")}
    first = sorted(n["notification_id"] for n in _lines(tmp_path / "notifications" / run_id, "*.jsonl"))
    rerun = ["--config", str(config), "--verdict_glob", str(tmp_path / "verdicts.jsonl"),
             "--precision_floor", "0.5", "--now", NOW, "--public_key", public]
    assert main(rerun) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"]
    assert second != run_id and sorted(p.name for p in (tmp_path / "feedback").iterdir()) == sorted([run_id, second])
    assert {p: p.read_bytes() for p in tmp_path.glob("*/" + run_id + "/*.jsonl")} == files and len(files) >= 5
    assert sorted(n["notification_id"] for n in _lines(tmp_path / "notifications" / second, "*.jsonl")) == first
    # a run never writes into a run directory that holds records: one line
    assert main(rerun + ["--run_id", run_id]) == 2
    err = capsys.readouterr().err
    (line,) = [l for l in err.splitlines() if l.startswith("error:")]
    assert f"run {run_id} already holds records in" in line
    assert err.strip() == line  # the refusal alone: no effective-options block before it


def test_bad_options_fail_with_one_line(tmp_path, capsys):
    _world(tmp_path)
    base = ["--report_glob", str(tmp_path / "reports" / "*.jsonl"), "--out_dir", str(tmp_path / "o")]
    assert main(base) == 2  # no verdict input
    assert main(base + ["--verdict_glob", "v", "--verdict_subscription", "projects/p/subscriptions/s"]) == 2
    assert main(base + ["--verdict_subscription", "projects/p/subscriptions/s"]) == 2  # needs --streaming
    assert main(base + ["--verdict_glob", "v", "--now", "tomorrow"]) == 2
    assert main(base + ["--verdict_glob", "v", "--precision_floor", "1.5"]) == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
    assert len(errors) == 5
    assert main(["--help"]) == 0
    assert "--verdict_subscription" in capsys.readouterr().out


def test_real_clock_when_now_is_not_given(tmp_path, capsys):
    _world(tmp_path)
    settings_args = ["--report_glob", str(tmp_path / "reports" / "*.jsonl"), "--verdict_glob",
                     str(tmp_path / "verdicts.jsonl"), "--out_dir", str(tmp_path / "feedback"),
                     "--notifications_dir", str(tmp_path / "notifications"), "--min_verdicts", "3"]
    before = datetime.now(timezone.utc).replace(microsecond=0)
    assert main(settings_args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(summary["precision"]) == 2
    (at,) = {p["at"] for p in _lines(tmp_path / "feedback", "*/precision-*.jsonl")}
    at = datetime.fromisoformat(at.replace("Z", "+00:00"))
    assert before <= at <= datetime.now(timezone.utc) + timedelta(seconds=1)
    unfounded = [n for n in _lines(tmp_path / "notifications", "*/*.jsonl") if n["trigger"] == "manifestly_unfounded"
                 and n["status"] == "scheduled"]
    assert {n["due_at"] for n in unfounded} == {at.strftime("%Y-%m-%dT%H:%M:%SZ")}
