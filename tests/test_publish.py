"""``csadetect publish`` (csadetect/cli/publish.py) without Pub/Sub: the events it builds from media
files, chat JSON and JSON Lines are valid upload events (checked with the pipeline's own parser),
and what it cannot send is refused with one line naming the file and the rule, never content."""
from __future__ import annotations

import base64
import io
import json

import pytest

from csadetect.cli.main import main
from csadetect.cli.publish import Defaults, build_events
from csadetect.config.settings import load_settings
from csadetect.events.event import make_event, parse_event
from csadetect.media import synth

LIMITS = load_settings().limits
CHAT = {"conversation_id": "conv-homework", "participants_minor": True, "messages": [
    {"sender": "kid", "text": "did you finish question 4?", "sent_at": "2026-11-28T10:00:00Z"},
    {"sender": "friend", "text": "yes, the answer is 12"},
]}


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "uploads"
    d.mkdir()
    jpeg = synth.jpeg_bytes(synth.synthetic_image(11))
    (d / "a.jpg").write_bytes(jpeg)
    (d / "b.png").write_bytes(synth.png_bytes(synth.synthetic_image(12)))
    (d / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not decoded here")
    (d / "chat.json").write_text(json.dumps(CHAT))
    (d / "events.jsonl").write_text(json.dumps(make_event("evt-given", jpeg)) + "\n\n"
                                    + json.dumps({"event_id": "evt-no-kind", "provider": "p"}) + "\n")
    (d / "notes.txt").write_text("secret words that must never be echoed")
    (d / "empty.jpg").write_bytes(b"")
    (d / "bad.json").write_text("{secret words")
    (d / ".hidden.jpg").write_bytes(jpeg)
    return d, jpeg


def test_events_from_a_directory(files):
    d, jpeg = files
    built = list(build_events([str(d)], Defaults(id_prefix="t"), LIMITS))
    good = {b.where: parse_event(b.data, limits=LIMITS) for b in built if b.data is not None}
    refused = {b.where.rsplit("/", 1)[-1]: b.reason for b in built if b.data is None}

    a = good[str(d / "a.jpg")]
    assert (a.kind, a.mime, a.service, a.provider, a.content) == ("image", "image/jpeg", "photos", "demo-provider", jpeg)
    assert good[str(d / "b.png")].mime == "image/png"
    clip = good[str(d / "clip.mp4")]
    assert (clip.kind, clip.mime, clip.service) == ("video", "video/mp4", "videos")
    m1, m2 = good[f"{d / 'chat.json'} message 1"], good[f"{d / 'chat.json'} message 2"]
    assert (m1.kind, m1.service, m1.conversation_id, m1.sender, m1.account, m1.participants_minor) == (
        "text", "chat", "conv-homework", "kid", "kid", True)
    assert m1.occurred_at == "2026-11-28T10:00:00Z" and m2.text == "yes, the answer is 12"
    assert good[f"{d / 'events.jsonl'}:1"].event_id == "evt-given"  # passed through as it was
    ids = [e.event_id for e in good.values()]
    assert len(set(ids)) == len(ids) and all(i.startswith("t-") for i in ids if i != "evt-given")

    assert refused == {
        "events.jsonl:3": "missing field 'service'",
        "notes.txt": "not an image, video, .json conversation or .jsonl event file (by its extension)",
        "empty.jpg": "empty file",
        "bad.json": "not valid UTF-8 JSON",
    }
    assert ".hidden.jpg" not in json.dumps([b.where for b in built])
    assert "secret" not in json.dumps([b.reason for b in built])


def test_jsonl_passes_events_through_byte_for_byte(files):
    d, jpeg = files
    line = (d / "events.jsonl").read_bytes().splitlines()[0]
    built = list(build_events([str(d / "events.jsonl")], Defaults(), LIMITS))
    assert built[0].data == line and built[0].event_id == "evt-given"


def test_stdin_events_and_refusals():
    good = json.dumps(make_event("evt-stdin", b"\xff\xd8\xff")).encode()
    stdin = io.BytesIO(good + b"\n" + b"{not json\n" + json.dumps(dict(make_event("evt-b64", b"x"),
                                                                         content_b64="@@")).encode() + b"\n")
    built = list(build_events(["-"], Defaults(), LIMITS, stdin=stdin))
    assert [b.event_id for b in built] == ["evt-stdin", None, None]
    assert [b.reason for b in built[1:]] == ["invalid JSON (JSONDecodeError at position 1)", "bad base64 in 'content_b64'"]
    assert [b.where for b in built] == ["-:1", "-:2", "-:3"]


def test_conversations_list_and_broken_conversations(tmp_path):
    path = tmp_path / "chats.json"
    path.write_text(json.dumps([CHAT, {"conversation_id": "c2", "messages": []},
                                {"conversation_id": "c3", "participants_minor": "yes", "messages": [{"sender": "a", "text": "hi"}]},
                                {"conversation_id": "c4", "participants_minor": False, "messages": ["hi"]},
                                {"conversation_id": "c5", "participants_minor": False, "messages": [{"sender": " "}]}]))
    built = list(build_events([str(path)], Defaults(), LIMITS))
    assert [b.data is not None for b in built] == [True, True, False, False, False, False]
    assert built[5].reason == "a message needs a non-empty string 'sender'"
    assert built[2].reason == "not a conversation: needs conversation_id, participants_minor and a messages list"
    assert built[3].reason == "text event needs a boolean field 'participants_minor'"
    assert built[4].reason == "a message must be an object with sender and text"
    assert built[2].where == f"{path} conversation 2"


def test_oversized_media_and_missing_paths(tmp_path):
    limits = LIMITS.model_copy(update={"max_content_bytes": 10})
    (tmp_path / "big.jpg").write_bytes(b"x" * 11)
    built = list(build_events([str(tmp_path / "big.jpg"), str(tmp_path / "nope.jpg"), str(tmp_path / "void")],
                              Defaults(), limits))
    assert [b.reason for b in built] == ["file of 11 bytes is over limits.max_content_bytes (10)",
                                         "no such file or directory", "no such file or directory"]
    (tmp_path / "empty").mkdir()
    assert [b.reason for b in build_events([str(tmp_path / "empty")], Defaults(), LIMITS)] == ["directory holds no files"]


def test_service_and_provider_flags_reach_the_events(files):
    d, _ = files
    built = list(build_events([str(d / "a.jpg")], Defaults(provider="prov", account="acct-9", service="files"), LIMITS))
    event = parse_event(built[0].data, limits=LIMITS)
    assert (event.provider, event.account, event.service) == ("prov", "acct-9", "files")


def test_dry_run_prints_the_events_and_exits_1_when_something_was_refused(files, capsys):
    d, jpeg = files
    assert main(["publish", "--dry-run", str(d / "a.jpg"), str(d / "chat.json")]) == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["kind"] for e in events] == ["image", "text", "text"]
    assert base64.b64decode(events[0]["content_b64"]) == jpeg
    assert "dry run: 3 valid event(s) not published; refused 0" in err

    assert main(["publish", "--dry-run", str(d / "notes.txt")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and f"refused {d / 'notes.txt'}: not an image" in err and "secret" not in err


def test_publish_needs_a_topic(files, capsys):
    d, _ = files
    assert main(["publish", str(d / "a.jpg")]) == 1
    assert capsys.readouterr().err.strip() == "error: give --topic projects/P/topics/T (or --dry-run)"
