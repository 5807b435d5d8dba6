"""Property-based fuzzing of the event schema (issue 12, item 1) with hypothesis.

Whatever the body (random bytes, random JSON, a valid event with any field replaced by anything:
lone surrogates, control characters, huge or negative numbers, odd times), ``parse_event``
either returns an Event that every later stage can encode, or raises ``EventError`` with a
one-line printable reason that never quotes the input. Example counts are bounded so that this
runs in ``make test`` in seconds."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csadetect.events.event import Event, EventError, dead_letter, make_event, parse_event

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
ID_FIELDS = ("event_id", "provider", "service", "kind", "account", "mime", "conversation_id", "sender", "content_uri")
FIELDS = ID_FIELDS + ("occurred_at", "text", "participants_minor", "content_b64", "context")

# any code point, lone surrogates and control characters included
ANY_CHAR = st.characters(exclude_categories=())
ANY_TEXT = st.text(ANY_CHAR, max_size=40)
NUMBERS = st.one_of(st.integers(), st.integers(min_value=-(10**300), max_value=10**300),
                    st.floats(allow_nan=True, allow_infinity=True))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | NUMBERS | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
TIMES = st.one_of(
    st.builds(
        "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}".format,
        st.integers(0, 10000), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25), st.integers(0, 61),
        st.integers(0, 61),
        st.sampled_from(["Z", "+14:00", "-14:00", "+23:59", "-23:59", "+24:00", "", "+00:00", ".999999Z"]),
    ),
    ANY_TEXT,
)
BASE_IMAGE = make_event("fuzz-1", b"\xff\xd8\xff fake jpeg", occurred_at="2026-11-28T10:00:00Z")
BASE_TEXT = {"event_id": "fuzz-2", "provider": "p", "service": "chat", "kind": "text",
             "occurred_at": "2026-11-28T10:00:00Z", "account": "a", "conversation_id": "c", "sender": "s",
             "text": "hello", "participants_minor": True}


def _strings(value):
    """Every string inside a JSON value (keys included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def check(data, planted=()) -> None:
    """The property: a valid, encodable Event, or an EventError with a safe one-line reason."""
    try:
        event = parse_event(data)
    except EventError as exc:
        reason = exc.reason
        assert isinstance(reason, str) and reason and reason.isprintable(), repr(reason)
        for text in planted:
            if isinstance(text, str) and len(text) >= 12:
                assert text not in reason
        letter = dead_letter("parse", reason, exc.event_id)
        json.dumps(letter.to_json(), ensure_ascii=False).encode("utf-8")  # a sink can write it
        assert letter.event_id is None or letter.event_id.isprintable()
        return
    assert isinstance(event, Event)
    for name in ID_FIELDS:
        value = getattr(event, name)
        assert value is None or (value.isprintable() and value.encode("utf-8"))
    if event.text is not None:
        event.text.encode("utf-8")
    json.dumps(event.context or {}, ensure_ascii=False).encode("utf-8")


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(data):
    check(data)


@FUZZ
@given(JSON_VALUES)
def test_random_json(value):
    try:
        body = json.dumps(value)
    except ValueError:  # e.g. an integer too long to print
        return
    check(body.encode("utf-8", "surrogatepass"), list(_strings(value)))


@FUZZ
@given(st.sampled_from([BASE_IMAGE, BASE_TEXT]), st.sampled_from(FIELDS), JSON_VALUES | TIMES)
def test_one_field_replaced_by_anything(base, field, value):
    event = {**base, field: value}
    check(json.dumps(event).encode(), list(_strings(value)))


@FUZZ
@given(st.sampled_from([BASE_IMAGE, BASE_TEXT]), TIMES)
def test_odd_times(base, when):
    check(json.dumps({**base, "occurred_at": when}).encode(), [when])


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), ANY_TEXT, max_size=len(FIELDS)), st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=3))
def test_fields_and_attributes(fields, attributes):
    body = json.dumps({**BASE_TEXT, **fields}).encode()
    try:
        event = parse_event(body, attributes)
    except EventError as exc:
        assert exc.reason.isprintable()
        assert exc.event_id is None or exc.event_id.isprintable()
        return
    assert event.event_id.isprintable()
