"""docs/events.md stays true to csadetect.events.event: every field the parser reads is documented,
every example event parses, the limits table shows the real defaults, and the docs point to
docs/events.md rather than into ../shared (issue 13 item 4)."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from csadetect.config.settings import Limits
from csadetect.events import event as ev

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "events.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def blocks(lang: str) -> list[str]:
    return [body for tag, body in BLOCK.findall(TEXT) if tag == lang]


@pytest.mark.parametrize("name", ev._FIELDS + ev._CONTEXT_KEYS + ev.KINDS)
def test_every_field_and_kind_is_documented(name):
    assert f"`{name}`" in TEXT, f"docs/events.md does not mention `{name}`"


@pytest.mark.parametrize("mime", Limits().allowed_image_mimes + Limits().allowed_video_mimes)
def test_every_allowed_mime_is_documented(mime):
    assert f"`{mime}`" in TEXT


def test_limits_table_shows_the_defaults():
    limits = Limits()
    for field, info in Limits.model_fields.items():
        value = getattr(limits, field)
        if isinstance(value, tuple):
            continue
        row = re.search(rf"^\| `{field}` \| ([^|]+) \|", TEXT, re.M)
        assert row, f"limit {field} missing from docs/events.md"
        assert float(row.group(1).strip()) == float(value), f"{field}: doc says {row.group(1)}, default is {value}"


def test_every_example_parses_and_each_kind_has_one():
    examples = blocks("json")
    assert examples, "no ```json example in docs/events.md"
    kinds = []
    for body in examples:
        obj = json.loads(body)
        event = ev.parse_event(body.encode("utf-8"), {"event_id": obj["event_id"], "kind": obj["kind"]})
        assert event.event_id == obj["event_id"]
        assert set(obj) <= set(ev._FIELDS), set(obj) - set(ev._FIELDS)  # nothing the parser would ignore
        if event.kind == "text":
            assert event.text
        elif "content_b64" in obj:
            assert event.content
        else:
            assert event.content_uri
        if "context" in obj:
            assert event.context == obj["context"], "an example's context loses keys when parsed"
        kinds.append(event.kind)
    assert sorted(kinds) == sorted(ev.KINDS), kinds


def test_image_example_is_a_real_picture():
    from csadetect.media.hashing import load_image

    (image,) = [json.loads(b) for b in blocks("json") if json.loads(b)["kind"] == "image"]
    assert load_image(ev.parse_event(json.dumps(image)).content).size == (1, 1)


def test_dead_letter_example_has_exactly_the_record_fields():
    (body,) = blocks("jsonl")
    record = json.loads(body)
    assert list(record) == [f.name for f in dataclasses.fields(ev.DeadLetter)]
    letter = ev.dead_letter(record["stage"], record["reason"], record["event_id"])
    assert letter.to_json().keys() == record.keys()
    assert letter.reason == record["reason"]


def test_documented_dead_letter_reason_is_what_the_parser_says():
    (body,) = blocks("jsonl")
    record = json.loads(body)
    bad = {"event_id": record["event_id"], "provider": "p", "service": "s", "kind": "text",
           "occurred_at": "2026-03-02T15:45:00", "account": "a"}
    with pytest.raises(ev.EventError) as info:
        ev.parse_event(json.dumps(bad))
    assert info.value.reason == record["reason"]  # a time without a zone is refused


def _docs():
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", _docs(), ids=lambda p: str(p.relative_to(REPO)))
def test_docs_do_not_link_into_shared(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\]\(\.\./shared|\.\./shared/DESIGN", text), f"{path.name} points into ../shared"


def test_nothing_cites_design_section_3_for_the_event_format():
    pattern = re.compile(r"DESIGN(\.md)?`?\s*(§|section\s*)3\b")
    files = _docs() + sorted((REPO / "csadetect").rglob("*.py")) + sorted(
        p for p in (REPO / "deploy").rglob("*") if p.is_file())
    hits = [f"{p.relative_to(REPO)}:{n}" for p in files
            for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if pattern.search(line)]
    assert hits == [], "cite docs/events.md instead: " + ", ".join(hits)
