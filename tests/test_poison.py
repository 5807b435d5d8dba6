"""No single event can stop the pipeline (issue 12, item 1): the probe's poison lines are
dead-lettered at parse time, the shared ``guarded`` wrapper turns any per-element exception of a
stage into a dead letter (stage, one-line reason, printable id, never content), and the outcome
counters stay balanced."""
from __future__ import annotations

import glob
import inspect
import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam import pvalue
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from csadetect.config.profiles import FN_API_RUNNER
from csadetect.config.settings import load_settings
from csadetect.core.timeutil import parse_time
from csadetect.events.event import DeadLetter, EventError, dead_letter, make_event, parse_event, printable_id
from csadetect.media import synth
from csadetect.pipelines.detect import Source, build_pipeline, outcome_counts
from csadetect.pipelines.sources import _encode_line
from csadetect.transforms.common import DEAD_LETTER, element_event_id, guarded
from csadetect.transforms.grooming import ConversationStateFn
from tests.conftest import signed_indicator_db

SECRET = "acct-SECRET-77"


def _text_event(event_id: str, **extra) -> dict:
    return {"event_id": event_id, "provider": "p", "service": "chat", "kind": "text",
            "occurred_at": "2026-11-28T10:00:00Z", "account": SECRET, "conversation_id": "conv-1",
            "sender": "a", "text": "hello there", "participants_minor": True, **extra}


def poison_lines(image: bytes) -> list[tuple[str, bytes, str | None, str]]:
    """(name, line, expected dead-letter event id, reason fragment): the probe's seven lines that
    each stopped a batch run, plus a control character in an id."""
    img = make_event("p-base", image, account=SECRET)
    dump = lambda obj: json.dumps(obj).encode()  # noqa: E731 (json escapes the surrogate: \\ud800)
    return [
        ("overflow-time", dump({**img, "event_id": "p-time", "occurred_at": "0001-01-01T00:00:00+14:00"}),
         "p-time", "occurred_at"),
        ("surrogate-event-id", dump({**img, "event_id": "p-id-\ud800"}), "p-id-\\ud800", "event_id"),
        ("surrogate-account", dump({**img, "event_id": "p-acct", "account": "x\ud800"}), "p-acct", "'account'"),
        ("surrogate-conversation", dump(_text_event("p-conv", conversation_id="c\udfff")), "p-conv",
         "'conversation_id'"),
        ("surrogate-text", dump(_text_event("p-text", text="hi \ud83d there")), "p-text", "'text'"),
        ("surrogate-sender", dump(_text_event("p-sender", sender="\udc00")), "p-sender", "'sender'"),
        ("invalid-utf8", b'{"event_id": "p-utf8", "account": "\xff\xfe' + SECRET.encode() + b'"}', None,
         "not valid UTF-8"),
        ("control-in-id", dump({**img, "event_id": "p-ctl\x1b[2J"}), "p-ctl\\x1b[2J", "event_id"),
    ]


IMAGE = synth.jpeg_bytes(synth.synthetic_image(7, (64, 48)))


@pytest.mark.parametrize("name,line,event_id,reason", poison_lines(IMAGE), ids=lambda v: v if isinstance(v, str) else "")
def test_poison_lines_are_refused_at_parse_time(name, line, event_id, reason):
    with pytest.raises(EventError) as info:
        parse_event(line)
    err = info.value
    assert reason in err.reason and err.event_id == event_id
    assert err.reason.isprintable() and SECRET not in err.reason
    letter = dead_letter("parse", err.reason, err.event_id)
    assert (letter.event_id is None or letter.event_id.isprintable()) and letter.reason.isprintable()
    json.dumps(letter.to_json()).encode("utf-8")  # a sink can always write it


def test_parse_time_overflow_is_a_value_error():
    for text in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        with pytest.raises(ValueError, match="out of range"):
            parse_time(text, field="occurred_at")


def test_printable_ids_and_reasons():
    assert printable_id(None) is None and printable_id("ok-1") == "ok-1"
    assert printable_id("a\ud800b") == "a\\ud800b"
    assert printable_id("x\n\x00") == "x\\n\\x00"
    long = printable_id("\x01" * 1000)
    assert len(long) <= 256 and long.isprintable()
    assert printable_id(12) == "int"
    letter = dead_letter("hash", "bad\r\nthing \u202e", "id\u202e")
    assert letter.reason.isprintable() and letter.event_id == "id\\u202e"


def test_file_lines_are_bytes_and_surrogates_stay_invalid():
    assert _encode_line(b"\xff") == b"\xff"
    with pytest.raises(EventError, match="not valid UTF-8"):
        parse_event(_encode_line('{"event_id": "\ud800"}'))


class _Boom(beam.DoFn):
    @guarded("demo")
    def process(self, element):
        yield "partial"  # held back: a failing element emits nothing but its dead letter
        raise KeyError(f"content {SECRET}")


class _BoomMain(beam.DoFn):
    @guarded("demo_main", to_main=True)
    def process(self, element):
        raise RuntimeError(SECRET)
        yield element  # pragma: no cover


def test_guarded_turns_an_exception_into_a_dead_letter():
    event = parse_event(json.dumps(make_event("ev-1", IMAGE, account=SECRET)).encode())
    out = list(_Boom().process(event))
    assert len(out) == 1 and isinstance(out[0], pvalue.TaggedOutput) and out[0].tag == DEAD_LETTER
    letter = out[0].value
    assert (letter.stage, letter.event_id, letter.reason) == ("demo", "ev-1", "demo failed (KeyError)")
    assert SECRET not in json.dumps(letter.to_json())
    main = list(_BoomMain().process(("conv", (event, b"vec"))))
    assert len(main) == 1 and isinstance(main[0], DeadLetter) and main[0].event_id == "ev-1"
    # a dead letter handed on by an earlier stage passes untouched (unkeyed)
    passed = list(_Boom().process(("", letter)))
    assert passed[0].tag == DEAD_LETTER and passed[0].value is letter
    assert list(_BoomMain().process(letter)) == [letter]


def test_guarded_keeps_beam_parameters_visible():
    params = inspect.signature(ConversationStateFn.process).parameters
    assert {"timestamp", "window_state", "info_state", "expiry"} <= set(params)


def test_element_event_id_never_raises():
    class Odd:
        def __getattr__(self, name):
            raise RuntimeError("no")

    assert element_event_id(Odd()) is None and element_event_id(b"x") is None
    assert element_event_id({"event_id": "r1"}) == "r1" and element_event_id(("k", {"event_id": "r2"})) == "r2"


# --- the batch graph -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory, report_keys):
    work = tmp_path_factory.mktemp("poison")
    known = [synth.jpeg_bytes(synth.synthetic_image(60 + i)) for i in range(4)]
    signed_indicator_db(work, known)
    settings = load_settings(overrides={
        "indicators": {"path": str(work / "db"), "public_key": str(work / "keys" / "public.pem")},
        "sinks": {"report_dir": str(work / "out" / "reports"), "dead_letter_dir": str(work / "out" / "dead")},
        "reports": report_keys["reports"],
    })
    return {"work": work, "known": known, "settings": settings}


def _run(settings, lines: list[bytes], path: Path, expect_reports, expect_dead):
    path.write_bytes(b"\n".join(lines) + b"\n")
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    outs = build_pipeline(p, settings, Source(glob=str(path)))
    assert_that(outs["reports"] | beam.Map(lambda r: r["event_id"]), equal_to(expect_reports), label="Reports")
    assert_that(outs["dead_letters"] | beam.Map(lambda d: (d.event_id, d.stage, d.reason)),
                expect_dead, label="DeadLetters")
    result = p.run()
    result.wait_until_finish()
    return outcome_counts(result)


def test_each_poison_line_between_valid_events(world, tmp_path):
    """Every valid event reported once; every poison line dead-lettered at parse with its reason."""
    poison = poison_lines(IMAGE)
    lines, valid = [], []
    for i, (_, line, _, _) in enumerate(poison):
        ok = f"ok-{i}"
        lines += [json.dumps(make_event(ok, world["known"][i % 4], account=SECRET)).encode(), line]
        valid.append(ok)
    expected = sorted(((eid or ""), "parse") for _, _, eid, _ in poison)
    fragments = {eid: reason for _, _, eid, reason in poison}

    def check(actual):
        assert sorted(((e or ""), s) for e, s, _ in actual) == expected, actual
        for eid, _, reason in actual:
            assert fragments[eid] in reason and reason.isprintable() and SECRET not in reason

    counts = _run(world["settings"], lines, tmp_path / "events.jsonl", valid, check)
    assert counts["received"] == len(lines) == 2 * len(poison)
    assert counts["received"] == counts.get("hit", 0) + counts.get("non_hit", 0) + counts.get("dead_lettered", 0)
    assert counts["hit"] == len(poison) and counts["dead_lettered"] == len(poison)
    out = world["work"] / "out" / "dead"
    written = [json.loads(l) for f in glob.glob(str(out / "*" / "*.jsonl")) for l in open(f, encoding="utf-8")]
    assert {d["event_id"] for d in written} >= {eid for _, _, eid, _ in poison}


def test_unexpected_errors_in_any_stage_are_dead_lettered(world, tmp_path, monkeypatch):
    """A bug in one stage on one event (here: raised on purpose in Lookup, Decide, ToReport and
    Finalise) dead-letters that event with its stage and exception type; the others are reported."""
    import csadetect.transforms.decide as decide
    import csadetect.transforms.match as match
    import csadetect.transforms.report as report

    def failing(fn, event_id_of, victim, exc):
        def wrapper(*args, **kwargs):
            if event_id_of(*args) == victim:
                raise exc(f"quoting {SECRET}")
            return fn(*args, **kwargs)
        return wrapper

    real_matched = match.MatchedItem

    def matched(item=None, **kw):
        if item.event.event_id == "bad-match":
            raise LookupError(SECRET)
        return real_matched(item=item, **kw)

    monkeypatch.setattr(match, "MatchedItem", matched)
    monkeypatch.setattr(decide, "needs_review", failing(decide.needs_review, lambda m, *a: m.item.event.event_id,
                                                        "bad-decide", ZeroDivisionError))
    monkeypatch.setattr(report, "pending_report", failing(report.pending_report, lambda m, *a: m.item.event.event_id,
                                                          "bad-report", TypeError))
    monkeypatch.setattr(report, "finalise_report", failing(report.finalise_report, lambda r, *a: r["event_id"],
                                                           "bad-seal", ValueError))
    ids = ["good-1", "bad-match", "bad-decide", "bad-report", "bad-seal", "good-2"]
    lines = [json.dumps(make_event(eid, world["known"][i % 4], account=SECRET)).encode() for i, eid in enumerate(ids)]
    expect = [("bad-match", "match", "match failed (LookupError)"),
              ("bad-decide", "decide", "decide failed (ZeroDivisionError)"),
              ("bad-report", "report", "report failed (TypeError)"),
              ("bad-seal", "seal", "seal failed (ValueError)")]
    counts = _run(world["settings"], lines, tmp_path / "events.jsonl", ["good-1", "good-2"], equal_to(expect))
    assert counts["received"] == 6
    assert counts["received"] == counts.get("hit", 0) + counts.get("non_hit", 0) + counts.get("dead_lettered", 0)
    assert counts["dead_lettered"] == 2 and counts["hit_dead_lettered"] == 2  # report and seal: after Decide
    assert counts["error_match_LookupError"] == 1 and counts["error_seal_ValueError"] == 1
