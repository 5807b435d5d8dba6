"""Evidence on the console's server: opened with the EU Centre's key only when a page asks for it,
kept in memory only (never written to disk, never cached), and rendered for the reviewer.

* Images: the default view is made here, on the server: greyscale, shrunk to a few pixels and
  blown up again with a Gaussian blur, so the clear picture never reaches the browser until the
  reviewer reveals it. The revealed picture is re-encoded as PNG (EXIF orientation applied,
  metadata dropped).
* Conversations (grooming): the page gets the structure only (sender, time, which messages are
  evidence, the risk-pattern names, and each text's length for a placeholder); the texts come only
  with a reveal.
* Videos: no preview is made (the default view is a placeholder); a reveal streams the video.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from PIL import Image, ImageFilter, ImageOps

from csadetect.media import decoders  # noqa: F401 - registers HEIF (HEIC) with Pillow: HEIC evidence is shown
from csadetect.reports import crypto

BLUR_LONG_SIDE = 16  # pixels the picture is reduced to before it is blown up again
VIEW_LONG_SIDE = 480  # size of the blurred view
PLACEHOLDER_MAX = 160  # longest placeholder bar, in characters


class EvidenceUnavailable(ValueError):
    """Evidence that cannot be shown (none, no key, does not decrypt, not decodable); one line."""


@dataclass
class Evidence:
    kind: str  # image | video | conversation | text | other
    mime: Optional[str]
    content: bytes
    conversation: Optional[dict] = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return len(self.content)


def sealed_for(report: dict) -> Optional[str]:
    """The fingerprint of the centre key the report's evidence is sealed for (from the sealed
    token, ``<version>:<key_id>:<base64>``), or None when there is none or it is malformed."""
    token = report.get("evidence_encrypted")
    if not isinstance(token, str):
        return None
    parts = token.split(":")
    return parts[1][:64] if len(parts) == 3 and parts[1] else None


def sealed_for_another_key(report: dict, centre_key_id: Optional[str]) -> Optional[dict]:
    """``{sealed_for, console_key}`` when the evidence is sealed for a centre key other than the
    console's (``centre_key_id``, its fingerprint); None when it is the console's, or unknown."""
    target = sealed_for(report)
    if target is None or centre_key_id is None or target == centre_key_id:
        return None
    return {"sealed_for": target, "console_key": centre_key_id}


def open_report_evidence(report: dict, centre_key) -> Evidence:
    """Decrypt a report's evidence with the centre key; raises :class:`EvidenceUnavailable`."""
    if not report.get("evidence_encrypted"):
        raise EvidenceUnavailable("this report carries no evidence")
    if centre_key is None:
        raise EvidenceUnavailable("no centre key configured (csadetect console --centre-key PEM)")
    try:
        mime, content = crypto.open_evidence(report, centre_key)
    except crypto.EvidenceError as exc:
        raise EvidenceUnavailable(str(exc)) from None
    mime = (mime or report.get("mime") or "").lower() or None
    if report.get("detection_type") == "grooming" or (mime or "").startswith("application/json"):
        conv = _conversation(content)
        if conv is not None:
            return Evidence("conversation", mime, content, conv)
    if (mime or "").startswith("image/"):
        return Evidence("image", mime, content)
    if (mime or "").startswith("video/"):
        return Evidence("video", mime, content)
    if (mime or "").startswith("text/"):
        return Evidence("text", mime, content)
    return Evidence("other", mime, content)


def _conversation(content: bytes) -> Optional[dict]:
    try:
        conv = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(conv, dict) or not isinstance(conv.get("messages"), list):
        return None
    return conv


def _load_image(content: bytes, max_pixels: int, draft: Optional[tuple] = None) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(content))
        w, h = img.size
        if w * h > max_pixels:
            raise EvidenceUnavailable(f"the picture has {w}x{h} pixels, more than the console decodes ({max_pixels})")
        if draft is not None and img.format == "JPEG":
            img.draft("L", draft)
        img.load()
        return ImageOps.exif_transpose(img)
    except EvidenceUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds; one line, no content
        raise EvidenceUnavailable(f"the picture cannot be decoded ({type(exc).__name__})") from None


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def view_size(size: tuple[int, int], long_side: int = VIEW_LONG_SIDE) -> tuple[int, int]:
    w, h = size
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def blurred_image(content: bytes, max_pixels: int) -> bytes:
    """The default view of a picture: greyscale (one channel), heavily blurred, PNG."""
    img = _load_image(content, max_pixels, draft=(4 * BLUR_LONG_SIDE, 4 * BLUR_LONG_SIDE))
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        flat = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(flat, img)
    grey = img.convert("L")
    tiny = grey.resize(view_size(grey.size, BLUR_LONG_SIDE), Image.Resampling.BOX)
    out = tiny.resize(view_size(grey.size), Image.Resampling.BICUBIC)
    return _png(out.filter(ImageFilter.GaussianBlur(radius=VIEW_LONG_SIDE / 40)))


def clear_image(content: bytes, max_pixels: int) -> bytes:
    """The revealed picture, re-encoded as PNG (orientation applied, metadata dropped)."""
    img = _load_image(content, max_pixels)
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if "A" in img.getbands() or img.mode == "P" else "RGB")
    return _png(img)


def _text_len(message: dict) -> int:
    text = message.get("text")
    return len(text) if isinstance(text, str) else 0


def conversation_view(conv: dict) -> dict:
    """What the page shows before a reveal: every message without its text (sender, time,
    placeholder length), which messages are evidence and their risk-pattern names."""
    evidence: dict[Any, list] = {}
    for e in conv.get("evidence") or []:
        if isinstance(e, dict):
            evidence.setdefault(e.get("message_index"), []).append(
                {"pattern": str(e.get("pattern")), "score": e.get("score")})
    flagged_senders = set()
    messages = []
    for m in conv.get("messages") or []:
        if not isinstance(m, dict):
            continue
        patterns = evidence.get(m.get("index"), [])
        if patterns:
            flagged_senders.add(m.get("sender"))
        messages.append({
            "index": m.get("index"),
            "sender": None if m.get("sender") is None else str(m.get("sender")),
            "sent_at": m.get("sent_at"),
            "event_id": m.get("event_id"),
            "placeholder": max(3, min(PLACEHOLDER_MAX, _text_len(m))),
            "patterns": patterns,
        })
    for m in messages:
        m["side"] = "flagged" if m["sender"] in flagged_senders else "other"
    patterns = sorted({p["pattern"] for ps in evidence.values() for p in ps})
    return {
        "conversation_id": conv.get("conversation_id"),
        "messages": messages,
        "flagged_at_message": conv.get("flagged_at_message"),
        "accounts": [str(a) for a in conv.get("accounts") or []],
        "patterns": patterns,
        "evidence_messages": sum(1 for m in messages if m["patterns"]),
    }


def conversation_texts(conv: dict) -> dict:
    """What a reveal sends: the texts by message index."""
    return {"messages": [{"index": m.get("index"), "text": m.get("text") if isinstance(m.get("text"), str) else ""}
                         for m in conv.get("messages") or [] if isinstance(m, dict)]}


def plain_text_view(content: bytes) -> tuple[dict, dict]:
    """Text evidence that is not a conversation, as one block: (the view, the texts)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        text = content.decode("utf-8", "replace")
    return {"conversation_id": None, "flagged_at_message": None, "accounts": [], "patterns": [],
            "evidence_messages": 0,
            "messages": [{"index": 0, "sender": None, "sent_at": None, "event_id": None, "patterns": [],
                          "placeholder": max(3, min(PLACEHOLDER_MAX, len(text))), "side": "other"}]}, \
        {"messages": [{"index": 0, "text": text}]}
