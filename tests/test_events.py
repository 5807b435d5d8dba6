"""Event validation: every bad event yields a one-line reason and the id when readable, never content."""
from __future__ import annotations

import base64
import json

import pytest

from csadetect.media import synth
from csadetect.events.event import EventError, make_event, parse_event
from csadetect.config.settings import Limits

IMG = synth.jpeg_bytes(synth.synthetic_image(1, (64, 48)))


def _bytes(obj) -> bytes:
    return json.dumps(obj).encode()


def test_valid_image_event():
    e = parse_event(_bytes(make_event("e1", IMG, occurred_at="2026-11-28T10:00:00+01:00", context={"ip": "192.0.2.1", "secret": 1})))
    assert e.event_id == "e1" and e.kind == "image" and e.content == IMG
    assert e.occurred_at == "2026-11-28T09:00:00Z"
    assert e.context == {"ip": "192.0.2.1"}  # unknown context keys are not carried
    assert "acct" not in repr(e) and "content" not in repr(e)


def test_valid_text_event():
    e = parse_event(_bytes({
        "event_id": "t1", "provider": "p", "service": "chat", "kind": "text", "occurred_at": "2026-11-28T10:00:00Z",
        "account": "a", "conversation_id": "c", "sender": "a", "text": "hello", "participants_minor": True,
    }))
    assert e.kind == "text" and e.participants_minor is True and e.text == "hello"


def test_attributes_may_repeat_id_and_kind():
    e = parse_event(_bytes(make_event("e2", IMG)), {"event_id": "e2", "kind": "image"})
    assert e.event_id == "e2"
    with pytest.raises(EventError, match="disagrees"):
        parse_event(_bytes(make_event("e2", IMG)), {"event_id": "other"})


SECRET = "acct-SECRET-123"


@pytest.mark.parametrize(
    "mutate,reason,event_id",
    [
        (lambda e: b"{not json", "invalid JSON", None),
        (lambda e: b"[1,2]", "must be a JSON object", None),
        (lambda e: _bytes({k: v for k, v in e.items() if k != "event_id"}), "missing field 'event_id'", None),
        (lambda e: _bytes({**e, "event_id": 5}), "event_id", None),
        (lambda e: _bytes({k: v for k, v in e.items() if k != "provider"}), "missing field 'provider'", "e9"),
        (lambda e: _bytes({**e, "service": ["x"]}), "'service' must be a string", "e9"),
        (lambda e: _bytes({**e, "kind": "audio"}), "unknown kind", "e9"),
        (lambda e: _bytes({**e, "occurred_at": "yesterday"}), "RFC 3339", "e9"),
        (lambda e: _bytes({**e, "occurred_at": "2026-11-28T10:00:00"}), "RFC 3339", "e9"),
        (lambda e: _bytes({**e, "content_b64": "@@not base64@@"}), "bad base64", "e9"),
        (lambda e: _bytes({**e, "content_b64": ""}), "empty", "e9"),
        (lambda e: _bytes({**e, "mime": "application/pdf"}), "unsupported mime", "e9"),
        (lambda e: _bytes({**e, "content_uri": "gs://b/o"}), "exactly one", "e9"),
        (lambda e: _bytes({k: v for k, v in e.items() if k != "content_b64"}), "exactly one", "e9"),
        (lambda e: _bytes({**e, "kind": "text"}), "text", "e9"),
        (lambda e: _bytes({**e, "context": "x"}), "context", "e9"),
    ],
)
def test_bad_events(mutate, reason, event_id):
    base = make_event("e9", IMG, account=SECRET)
    with pytest.raises(EventError) as info:
        parse_event(mutate(base))
    assert reason in info.value.reason
    assert info.value.event_id == event_id
    assert "\n" not in info.value.reason
    assert SECRET not in info.value.reason and base["content_b64"][:20] not in info.value.reason


def test_size_limits():
    limits = Limits(max_event_bytes=2000, max_content_bytes=1000, max_text_chars=5)
    big = make_event("big", b"x" * 1400)
    with pytest.raises(EventError, match="exceeds the limit"):
        parse_event(_bytes(big), limits=limits)
    with pytest.raises(EventError, match="exceeds the limit"):
        parse_event(b" " * 3000, limits=limits)
    text = {"event_id": "t", "provider": "p", "service": "s", "kind": "text", "occurred_at": "2026-11-28T10:00:00Z",
            "account": "a", "conversation_id": "c", "sender": "a", "text": "too long", "participants_minor": False}
    with pytest.raises(EventError, match="longer than 5"):
        parse_event(_bytes(text), limits=limits)


def test_content_b64_roundtrip():
    e = make_event("x", IMG)
    assert base64.b64decode(e["content_b64"]) == IMG


@pytest.mark.parametrize("extra, field", [
    (', "conversation_id": "c\\ud800"', "conversation_id"),        # a field images do not use
    (', "context": {"device": ["\\udfff"]}', "context"),             # nested, in a dropped value
    (', "x\\ud800y": "anything"', "(an unknown field)"),             # in a key: never echoed
])
def test_a_lone_surrogate_anywhere_in_the_body_is_refused(extra, field):
    body = json.dumps(make_event("evt-s", b"abc"))[:-1] + extra + "}"
    with pytest.raises(EventError) as err:
        parse_event(body.encode())
    assert str(err.value).startswith(f"field '{field}' holds a lone surrogate") and err.value.event_id == "evt-s"
    assert "anything" not in str(err.value) and "\\u" not in str(err.value)
