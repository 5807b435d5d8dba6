"""Upload events (format: docs/events.md): parsing and validation.

``parse_event`` turns a Pub/Sub message body (plus optional attributes) into an :class:`Event` or
raises :class:`EventError`. An EventError carries the event id when it could be read and a
one-line reason; it never carries content, text, account ids or hashes.

Validation is strict so that no later stage meets input it cannot encode: the body must be UTF-8
JSON; no string field may hold a lone surrogate; identifier fields (ids, account, provider,
service, kind, mime, sender, ``content_uri``) must be printable (no control or format characters);
``occurred_at`` must stay within years 1 to 9999 once moved to UTC. :func:`dead_letter` makes the
id and reason of a :class:`DeadLetter` printable (escaped, cut to length), never raw.
"""
from __future__ import annotations

import binascii
import dataclasses
import json
from typing import Any, Mapping, Optional

import pybase64

from csadetect.config.settings import Limits
from csadetect.core.timeutil import parse_time, utc_iso

KINDS = ("image", "video", "text")
_CONTEXT_KEYS = ("ip", "port", "country", "device", "time_zone")
# identifier-like fields: printable characters only (no control, format or surrogate code points)
_FIELDS = ("event_id", "provider", "service", "kind", "occurred_at", "account", "mime", "content_b64", "content_uri",
           "context", "conversation_id", "sender", "text", "participants_minor")
_ID_FIELDS = ("event_id", "provider", "service", "kind", "account", "mime", "conversation_id", "sender")
_MAX_ID_CHARS = 256
_INT64 = 2**63


class EventError(ValueError):
    def __init__(self, reason: str, event_id: Optional[str] = None):
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


@dataclasses.dataclass(frozen=True)
class Event:
    event_id: str
    provider: str
    service: str
    kind: str
    occurred_at: str
    account: str
    mime: Optional[str] = None
    content: Optional[bytes] = dataclasses.field(default=None, repr=False)
    content_uri: Optional[str] = None
    conversation_id: Optional[str] = None
    sender: Optional[str] = None
    text: Optional[str] = dataclasses.field(default=None, repr=False)
    participants_minor: Optional[bool] = None
    context: Optional[dict] = None
    # set by csadetect.transforms.orders.ApplyOrders: ((detection_type, order_id, legal_basis), ...) of the
    # detection orders active for this event's service; None = not gated (direct unit use only)
    orders: Optional[tuple] = None

    def __repr__(self) -> str:  # never print content or identifiers by accident
        return f"Event(event_id={self.event_id!r}, kind={self.kind!r})"

    __str__ = __repr__

    def order_for(self, detection_type: str) -> Optional[tuple]:
        """``(order_id, legal_basis)`` of the order that lets ``detection_type`` run on this event;
        None when no active order covers it. Ungated events (``orders is None``) get ``("", "")``."""
        if self.orders is None:
            return ("", "")
        for dtype, order_id, basis in self.orders:
            if dtype == detection_type:
                return (order_id, basis)
        return None

    def without_content(self) -> "Event":
        return dataclasses.replace(self, content=None, text=None)


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """What a bad event leaves behind: its id (when readable), the stage and a one-line reason."""

    event_id: Optional[str]
    stage: str
    reason: str
    at: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def printable(text, max_chars: int = _MAX_ID_CHARS) -> str:
    """``text`` as one printable line: non-printable characters (control, format, lone
    surrogates, line breaks) escaped as ``\\xNN`` / ``\\uNNNN``, cut to ``max_chars`` with ``...``."""
    text = str(text)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def printable_id(event_id) -> Optional[str]:
    """An event id as it may appear in a dead letter: None stays None, anything else becomes a
    printable string of at most 256 characters (never the raw value when that is not printable)."""
    if event_id is None:
        return None
    if isinstance(event_id, str) and event_id.isprintable() and len(event_id) <= _MAX_ID_CHARS:
        return event_id
    return printable(event_id if isinstance(event_id, str) else type(event_id).__name__)


def dead_letter(stage: str, reason: str, event_id: Optional[str] = None) -> DeadLetter:
    """A dead letter with a one-line printable reason (at most 200 characters) and a printable id."""
    reason = printable(" ".join(str(reason).split()), 200)
    return DeadLetter(event_id=printable_id(event_id), stage=printable(stage, 64), reason=reason, at=utc_iso())


def _is_utf8(text: str) -> bool:
    """False when ``text`` holds a lone surrogate (which no UTF-8 encoder, sink or model accepts)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _surrogate_field(obj: Any) -> Optional[str]:
    """The top-level field under which any string (key or value, at any depth) holds a lone
    surrogate; None when there is none. Fields an event's kind does not use are checked too, so
    nothing undecodable is carried on and none slips through by being ignored."""
    for key, value in obj.items():
        stack = [key, value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if not _is_utf8(item):
                    return key if key in _FIELDS else "(an unknown field)"  # never echo a sender's text
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return None


def _check_printable(key: str, value: str, event_id: Optional[str]) -> None:
    """Identifier-like fields: printable characters only (lone surrogates were refused before, by
    :func:`_surrogate_field`, for every field at once)."""
    if not value.isprintable():
        raise EventError(f"field '{key}' holds control or other non-printable characters", event_id)


def _str_field(obj: Mapping[str, Any], key: str, event_id: Optional[str], required: bool = True, max_len: int = 512):
    value = obj.get(key)
    if value is None:
        if required:
            raise EventError(f"missing field '{key}'", event_id)
        return None
    if not isinstance(value, str):
        raise EventError(f"field '{key}' must be a string, got {type(value).__name__}", event_id)
    if required and not value.strip():
        raise EventError(f"field '{key}' is empty", event_id)
    if len(value) > max_len:
        raise EventError(f"field '{key}' is longer than {max_len} characters", event_id)
    if key in _ID_FIELDS:
        _check_printable(key, value, event_id)
    return value


def _context(value, event_id: Optional[str]) -> Optional[dict]:
    """The known context keys whose values are short printable strings or 64-bit integers."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise EventError("field 'context' must be an object", event_id)
    out = {}
    for key in _CONTEXT_KEYS:
        item = value.get(key)
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, int) and -_INT64 <= item < _INT64:
            out[key] = item
        elif isinstance(item, str) and len(item) <= _MAX_ID_CHARS:
            _check_printable(f"context.{key}", item, event_id)
            out[key] = item
    return out or None


def parse_event(data: bytes | str, attributes: Optional[Mapping[str, str]] = None, limits: Limits = Limits()) -> Event:
    """Parse and validate one event. Raises EventError (never returns a half-valid event)."""
    attributes = dict(attributes or {})
    attr_id = attributes.get("event_id") if isinstance(attributes.get("event_id"), str) else None
    if attr_id is not None and not (attr_id.isprintable() and 0 < len(attr_id) <= _MAX_ID_CHARS):
        raise EventError("attribute 'event_id' must be a printable string of at most 256 characters",
                         printable_id(attr_id))
    size = len(data)
    if size > limits.max_event_bytes:
        raise EventError(f"event of {size} bytes exceeds the limit of {limits.max_event_bytes}", attr_id)
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise EventError("not valid UTF-8", attr_id) from None
    elif not isinstance(data, str):
        raise EventError(f"event body must be bytes or text, got {type(data).__name__}", attr_id)
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as exc:
        raise EventError(f"invalid JSON (JSONDecodeError at position {exc.pos})", attr_id) from None
    except RecursionError:
        raise EventError("invalid JSON (nested too deeply)", attr_id) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise EventError(f"invalid JSON ({type(exc).__name__})", attr_id) from None
    if not isinstance(obj, dict):
        raise EventError(f"event must be a JSON object, got {type(obj).__name__}", attr_id)

    raw_id = obj.get("event_id", attr_id)
    if raw_id is None:
        raise EventError("missing field 'event_id'", None)
    if not (isinstance(raw_id, str) and 0 < len(raw_id) <= _MAX_ID_CHARS):
        raise EventError("field 'event_id' must be a non-empty string of at most 256 characters",
                         printable_id(raw_id) if isinstance(raw_id, str) and raw_id else None)
    if not raw_id.isprintable():  # a lone surrogate is not printable either
        raise EventError("field 'event_id' holds control, surrogate or other non-printable characters",
                         printable_id(raw_id))
    event_id = raw_id
    bad = _surrogate_field(obj)
    if bad is not None:
        raise EventError(f"field '{bad}' holds a lone surrogate (not valid Unicode)", event_id)
    if attr_id is not None and attr_id != event_id:
        raise EventError("attribute 'event_id' disagrees with the body", event_id)

    provider = _str_field(obj, "provider", event_id)
    service = _str_field(obj, "service", event_id)
    kind = _str_field(obj, "kind", event_id)
    if kind not in KINDS:
        raise EventError("unknown kind (expected image, video or text)", event_id)
    if attributes.get("kind") not in (None, kind):
        raise EventError("attribute 'kind' disagrees with the body", event_id)
    occurred_raw = _str_field(obj, "occurred_at", event_id)
    try:
        occurred_at = utc_iso(parse_time(occurred_raw, field="occurred_at"), timespec="auto")
    except (ValueError, OverflowError):  # OverflowError: out of range once moved to UTC
        raise EventError("field 'occurred_at' is not an RFC 3339 time with a zone, within years 1 to 9999",
                         event_id) from None
    account = _str_field(obj, "account", event_id)

    context = _context(obj.get("context"), event_id)

    fields: dict[str, Any] = dict(
        event_id=event_id, provider=provider, service=service, kind=kind,
        occurred_at=occurred_at, account=account, context=context or None,
    )

    if kind == "text":
        text = obj.get("text")
        if not isinstance(text, str):
            raise EventError("text event needs a string field 'text'", event_id)
        if len(text) > limits.max_text_chars:
            raise EventError(f"text longer than {limits.max_text_chars} characters", event_id)
        minor = obj.get("participants_minor")
        if not isinstance(minor, bool):
            raise EventError("text event needs a boolean field 'participants_minor'", event_id)
        fields.update(
            text=text,
            participants_minor=minor,
            conversation_id=_str_field(obj, "conversation_id", event_id),
            sender=_str_field(obj, "sender", event_id),
        )
        return Event(**fields)

    mime = _str_field(obj, "mime", event_id, max_len=100).lower()
    allowed = limits.allowed_image_mimes if kind == "image" else limits.allowed_video_mimes
    if mime not in allowed:
        raise EventError(f"unsupported mime for kind {kind}", event_id)
    b64 = obj.get("content_b64")
    uri = obj.get("content_uri")
    if (b64 is None) == (uri is None):
        raise EventError("exactly one of 'content_b64' and 'content_uri' is required", event_id)
    if b64 is not None:
        if not isinstance(b64, str):
            raise EventError("field 'content_b64' must be a string", event_id)
        if len(b64) * 3 // 4 > limits.max_content_bytes + 3:
            raise EventError(f"content exceeds the limit of {limits.max_content_bytes} bytes", event_id)
        try:
            content = pybase64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise EventError("bad base64 in 'content_b64'", event_id) from None
        if not content:
            raise EventError("content is empty", event_id)
        if len(content) > limits.max_content_bytes:
            raise EventError(f"content exceeds the limit of {limits.max_content_bytes} bytes", event_id)
        fields.update(mime=mime, content=content)
    else:
        if not isinstance(uri, str) or not uri.strip():
            raise EventError("field 'content_uri' must be a non-empty string", event_id)
        _check_printable("content_uri", uri, event_id)
        fields.update(mime=mime, content_uri=uri)
    return Event(**fields)


def make_event(
    event_id: str,
    content: bytes,
    kind: str = "image",
    mime: str = "image/jpeg",
    provider: str = "demo-provider",
    service: str = "photos",
    account: str = "acct-0",
    occurred_at: Optional[str] = None,
    **extra: Any,
) -> dict:
    """Build an event dict (JSON-ready) for tests, the demo and producers."""
    out = {
        "event_id": event_id, "provider": provider, "service": service, "kind": kind,
        "occurred_at": occurred_at or utc_iso(), "account": account, "mime": mime,
        "content_b64": pybase64.b64encode(content).decode("ascii"),
    }
    out.update(extra)
    return out
