"""``csadetect publish FILE|DIR|- --topic projects/P/topics/T``: upload events onto a Pub/Sub topic
for a streaming run (docs/streaming-local.md), built from files:

* an image or video file (by its extension; the mime types of ``limits.allowed_*_mimes``): one
  ``image``/``video`` event with the file inline (``content_b64``), service ``photos``/``videos``;
* a ``.json`` file holding a conversation ``{"conversation_id", "participants_minor", "messages":
  [{"sender", "text", "sent_at"?}]}`` (or a list of them): one ``text`` event per message, service
  ``chat``; a ``.json`` file holding one event object passes through;
* a ``.jsonl`` file (or ``-``, standard input) of upload events: passed through line by line;
* a directory: each file in it, in name order (not recursive).

Every event is checked with :func:`csadetect.events.event.parse_event` (docs/events.md) before it
is sent; what fails is refused with one line each (the file, the line and the rule: never content)
and not sent. Exit code 0 when everything was published, 1 when something was refused.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import mimetypes
import os
import sys
import uuid
from typing import Iterable, Iterator, Optional

import pybase64

from csadetect.cli.output import emit, handled, say
from csadetect.config.settings import ConfigError, Limits, load_settings
from csadetect.core import pubsub
from csadetect.core.timeutil import utc_iso
from csadetect.events.event import EventError, parse_event

_handled = handled(lambda: (pubsub.PubSubError, ConfigError))
EVENT_FILES = (".jsonl", ".ndjson")
SERVICES = {"image": "photos", "video": "videos", "text": "chat"}


@dataclasses.dataclass(frozen=True)
class Built:
    """One event to send (``data``), or a refusal (``reason``); ``where`` names the file (and line)."""

    where: str
    data: Optional[bytes] = None
    event_id: Optional[str] = None
    reason: Optional[str] = None


@dataclasses.dataclass
class Defaults:
    """What built events carry besides their content."""

    provider: str = "demo-provider"
    account: str = "local-publisher"
    service: Optional[str] = None  # None: photos / videos / chat by kind
    id_prefix: str = dataclasses.field(default_factory=lambda: "pub-" + uuid.uuid4().hex[:12])
    _n: int = 0

    def next_id(self) -> str:
        self._n += 1
        return f"{self.id_prefix}-{self._n}"


def _checked(where: str, event: dict, limits: Limits) -> Built:
    data = json.dumps(event).encode("utf-8")
    return _checked_bytes(where, data, limits)


def _checked_bytes(where: str, data: bytes, limits: Limits) -> Built:
    try:
        parsed = parse_event(data, limits=limits)
    except EventError as exc:
        return Built(where, reason=exc.reason)
    if len(data) > pubsub.MAX_MESSAGE_BYTES:
        return Built(where, reason=f"event of {len(data)} bytes is over Pub/Sub's {pubsub.MAX_MESSAGE_BYTES}-byte "
                                   "message limit (send large files by content_uri)")
    return Built(where, data=data, event_id=parsed.event_id)


def media_kind(path: str, limits: Limits) -> Optional[tuple[str, str]]:
    """``(kind, mime)`` of a media file by its name, when its mime type is one the pipeline accepts."""
    mime = (mimetypes.guess_type(path)[0] or "").lower()
    if mime in limits.allowed_image_mimes:
        return "image", mime
    if mime in limits.allowed_video_mimes:
        return "video", mime
    return None


def media_event(path: str, defaults: Defaults, limits: Limits) -> Built:
    """An ``image``/``video`` upload event with the file inline."""
    kind_mime = media_kind(path, limits)
    if kind_mime is None:
        return Built(path, reason="not an image, video, .json conversation or .jsonl event file (by its extension)")
    kind, mime = kind_mime
    size = os.path.getsize(path)
    if size == 0:
        return Built(path, reason="empty file")
    if size > limits.max_content_bytes:
        return Built(path, reason=f"file of {size} bytes is over limits.max_content_bytes ({limits.max_content_bytes})")
    with open(path, "rb") as fh:
        content = fh.read()
    event = {"event_id": defaults.next_id(), "provider": defaults.provider, "service": defaults.service or SERVICES[kind],
             "kind": kind, "occurred_at": utc_iso(), "account": defaults.account, "mime": mime,
             "content_b64": pybase64.b64encode(content).decode("ascii")}
    return _checked(path, event, limits)


def conversation_events(where: str, conversation, defaults: Defaults, limits: Limits) -> Iterator[Built]:
    """One ``text`` event per message of a conversation object."""
    if not (isinstance(conversation, dict) and isinstance(conversation.get("messages"), list)
            and "conversation_id" in conversation and "participants_minor" in conversation):
        yield Built(where, reason="not a conversation: needs conversation_id, participants_minor and a messages list")
        return
    for i, message in enumerate(conversation["messages"], 1):
        here = f"{where} message {i}"
        if not isinstance(message, dict):
            yield Built(here, reason="a message must be an object with sender and text")
            continue
        sender = message.get("sender")
        if not isinstance(sender, str) or not sender.strip():
            yield Built(here, reason="a message needs a non-empty string 'sender'")
            continue
        event = {"event_id": defaults.next_id(), "provider": defaults.provider,
                 "service": defaults.service or SERVICES["text"], "kind": "text",
                 "occurred_at": message.get("sent_at") or message.get("occurred_at") or utc_iso(),
                 "account": message.get("account") or sender, "conversation_id": conversation["conversation_id"],
                 "sender": sender, "text": message.get("text"),
                 "participants_minor": conversation["participants_minor"]}
        yield _checked(here, event, limits)


def json_file_events(path: str, defaults: Defaults, limits: Limits) -> Iterator[Built]:
    """A ``.json`` file: a conversation, a list of conversations, or one event object."""
    try:
        with open(path, "rb") as fh:
            obj = json.loads(fh.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        yield Built(path, reason="not valid UTF-8 JSON")
        return
    if isinstance(obj, dict) and "kind" in obj:
        yield _checked(path, obj, limits)
        return
    for i, conversation in enumerate(obj if isinstance(obj, list) else [obj], 1):
        yield from conversation_events(path if not isinstance(obj, list) else f"{path} conversation {i}",
                                       conversation, defaults, limits)


def jsonl_events(where: str, lines: Iterable[bytes], limits: Limits) -> Iterator[Built]:
    """Upload events, one a line, passed through once each is valid (blank lines skipped)."""
    for n, line in enumerate(lines, 1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        yield _checked_bytes(f"{where}:{n}", line, limits)


def file_events(path: str, defaults: Defaults, limits: Limits) -> Iterator[Built]:
    lower = path.lower()
    try:
        if lower.endswith(EVENT_FILES):
            with open(path, "rb") as fh:
                yield from jsonl_events(path, fh, limits)
        elif lower.endswith(".json"):
            yield from json_file_events(path, defaults, limits)
        else:
            yield media_event(path, defaults, limits)
    except OSError as exc:
        yield Built(path, reason=f"cannot read it ({exc.strerror or type(exc).__name__})")


def build_events(paths: Iterable[str], defaults: Defaults, limits: Limits, stdin=None) -> Iterator[Built]:
    """Every event (or refusal) of ``paths``: files, directories (their files, by name) and ``-``."""
    for path in paths:
        if path == "-":
            yield from jsonl_events("-", stdin if stdin is not None else sys.stdin.buffer, limits)
        elif os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if not n.startswith("."))
            files = [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
            if not files:
                yield Built(path, reason="directory holds no files")
            for f in files:
                yield from file_events(f, defaults, limits)
        elif os.path.exists(path):
            yield from file_events(path, defaults, limits)
        else:
            yield Built(path, reason="no such file or directory")


@_handled
def cmd_publish(args) -> int:
    settings = load_settings(getattr(args, "config", None))
    client = topic = None
    if not args.dry_run:  # the topic first: a missing topic or an unreachable emulator is one line, nothing read
        if not args.topic:
            raise pubsub.PubSubError("give --topic projects/P/topics/T (or --dry-run)")
        topic = pubsub.topic_path(args.topic, args.project or pubsub.default_project())
        client = pubsub.publisher()
        pubsub.check_topic(client, topic)
    defaults = Defaults(provider=args.provider, account=args.account, service=args.service)
    built = list(build_events(args.paths, defaults, settings.limits))
    good = [b for b in built if b.data is not None]
    refused = [b for b in built if b.data is None]
    for b in refused:
        say(f"refused {b.where}: {b.reason}")
    if args.dry_run:
        for b in good:
            emit(json.loads(b.data))
        say(f"dry run: {len(good)} valid event(s) not published; refused {len(refused)}")
        return 1 if refused else 0
    published = 0
    with pubsub.errors(f"topic {topic}"):
        futures = [client.publish(topic, b.data, event_id=b.event_id) for b in good]
        for f in futures:
            f.result(timeout=60)
            published += 1
    say(f"published {published} event(s) to {topic}; refused {len(refused)}")
    emit({"topic": topic, "published": published, "refused": len(refused)})
    return 1 if refused else 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``publish``."""
    p = subparsers.add_parser("publish", help="publish upload events built from media files, chat JSON or "
                              "JSON Lines events (docs/events.md) to a Pub/Sub topic")
    p.add_argument("paths", nargs="+", metavar="FILE|DIR|-",
                   help="media files, .json conversations, .jsonl events, directories of them, or - (events on stdin)")
    p.add_argument("--topic", default=None, metavar="projects/P/topics/T", help="where to publish (T with --project)")
    p.add_argument("--project", default=None, help="for a short --topic name")
    p.add_argument("--provider", default="demo-provider", help="the events' provider (default demo-provider)")
    p.add_argument("--account", default="local-publisher", help="the uploading account of media events")
    p.add_argument("--service", default=None,
                   help="the events' service (default: photos, videos or chat by kind; detection orders match on it)")
    p.add_argument("--dry-run", action="store_true", help="print the events as JSON lines instead of publishing")
    p.set_defaults(func=cmd_publish)
    return p
