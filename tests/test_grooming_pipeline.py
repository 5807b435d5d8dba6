"""Per-conversation grooming state in Beam: flags once with evidence, scans only conversations with
a minor, and the event-time timer clears the state after inactivity."""
from __future__ import annotations

import datetime as dt

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.test_stream import TestStream as BeamTestStream
from apache_beam.testing.util import assert_that, equal_to

from csadetect.events import Event
from transforms.grooming import ClassifyGrooming

pytest.importorskip("tensorflow")

GROOMING = [
    ("adult", "hey, saw your drawings online, you are really talented"),
    ("kid", "thanks!! i like drawing anime"),
    ("adult", "how old are you? you seem really mature for your age"),
    ("kid", "13"),
    ("adult", "are your parents around when you are online? is anyone watching"),
    ("kid", "no they are at work"),
    ("adult", "this is just between us ok, don't tell your mom about me, she wouldn't understand"),
    ("adult", "let's move to a private app, add me on snap, delete this chat"),
    ("adult", "i can buy you a gift card for your game, you deserve it"),
    ("adult", "we should meet up this weekend, i can pick you up, don't tell anyone"),
    ("adult", "send me a selfie so i know it's really you"),
]
BENIGN = [
    ("mom", "did you finish your homework?"),
    ("kid", "almost, just maths left"),
    ("mom", "ok, grandma wants a video call at 6, turn on your camera then"),
    ("kid", "ok! can we keep the surprise party a secret from dad"),
    ("mom", "yes it's our secret, don't tell him. i'll get the gift card for his present"),
    ("kid", "where do we meet after practice?"),
    ("mom", "at the school gate, coach said practice ends at 5"),
]


def _events(cid, lines, minor=True, start="2026-11-28T10:00:00"):
    t0 = dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc)
    out = []
    for i, (sender, text) in enumerate(lines):
        when = (t0 + dt.timedelta(minutes=i)).isoformat().replace("+00:00", "Z")
        out.append(Event(event_id=f"{cid}-{i}", provider="p", service="chat", kind="text", occurred_at=when,
                         account=f"acct-{sender}", conversation_id=cid, sender=sender, text=text,
                         participants_minor=minor))
    return out


def test_flags_grooming_once_with_evidence_and_skips_adults_and_benign():
    events = _events("groom", GROOMING) + _events("family", BENIGN) + _events("adults", GROOMING, minor=False)
    with BeamTestPipeline(runner="FnApiRunner") as p:
        flagged = p | beam.Create(events) | ClassifyGrooming()

        def check(results):
            assert [r["conversation_id"] for r in results] == ["groom"], [r["conversation_id"] for r in results]
            r = results[0]
            assert 0 <= r["flagged_at_message"] < len(GROOMING)
            assert r["score"] >= r["threshold"]
            assert r["evidence"], "a flag must carry evidence"
            assert all({"pattern", "message_index", "score"} <= set(e) for e in r["evidence"])
            assert {m["index"] for m in r["messages"]} >= {e["message_index"] for e in r["evidence"]}

        assert_that(flagged, check)


def test_state_is_cleared_after_inactivity():
    """Two bursts of the same conversation, 10 days apart: the timer clears the first burst's state,
    so the second burst starts again at message index 0 (and can be flagged again)."""
    first = _events("c1", GROOMING, start="2026-11-01T10:00:00")
    second = _events("c1", GROOMING, start="2026-11-11T10:00:00")
    stamp = lambda e: beam.window.TimestampedValue(e, dt.datetime.fromisoformat(e.occurred_at.replace("Z", "+00:00")).timestamp())  # noqa: E731
    stream = (
        BeamTestStream()
        .add_elements([stamp(e) for e in first])
        .advance_watermark_to(dt.datetime(2026, 11, 10, tzinfo=dt.timezone.utc).timestamp())
        .add_elements([stamp(e) for e in second])
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with BeamTestPipeline(runner="BundleBasedDirectRunner", options=options) as p:
        flagged = p | stream | ClassifyGrooming(inactivity_seconds=3 * 24 * 3600)
        assert_that(
            flagged | beam.Map(lambda r: (r["conversation_id"], r["event_id"].split("-")[0], r["flagged_at_message"] < len(GROOMING))),
            equal_to([("c1", "c1", True), ("c1", "c1", True)]),
        )


def test_without_inactivity_gap_a_conversation_is_flagged_once():
    events = _events("c2", GROOMING) + _events("c2", GROOMING, start="2026-11-28T11:00:00")
    with BeamTestPipeline(runner="FnApiRunner") as p:
        flagged = p | beam.Create(events) | ClassifyGrooming()
        assert_that(flagged | beam.Map(lambda r: r["conversation_id"]), equal_to(["c2"]))
