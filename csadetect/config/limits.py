"""What an event may bring in: the size limits on messages, images, videos and text (``limits``) and
where an event's ``content_uri`` may point (``content``). :mod:`csadetect.config.settings` re-exports
both sections.
"""
from __future__ import annotations

import os

from pydantic import Field, field_validator

from csadetect.config.base import _Strict
from csadetect.core import fs


class Limits(_Strict):
    max_event_bytes: int = Field(16_000_000, gt=0, description="max size of one Pub/Sub message body")
    max_content_bytes: int = Field(12_000_000, gt=0, description="max decoded content size")
    max_pixels: int = Field(50_000_000, gt=0, description="decompression-bomb guard")
    max_video_frames: int = Field(3_600, gt=0, description="max hashed vPDQ frames per video (estimated from "
                                  "the container's metadata before decoding, counted again after)")
    max_video_seconds: float = Field(600, gt=0, description="max video duration, from the container's metadata")
    max_video_pixels: int = Field(8_294_400, gt=0, description="max width*height of a video frame (3840x2160)")
    max_video_decoded_frames: int = Field(36_000, gt=0, description="max frames a video may hold (metadata's "
                                          "frame count, or duration * frame rate): what decoding costs")
    video_budget_seconds: float = Field(300, gt=0, description="wall-clock budget for probing and decoding one "
                                        "video; the decoder process is killed when it runs out")
    max_video_memory_bytes: int = Field(1 << 30, ge=64 << 20, description="data-segment limit of the video "
                                        "decoder process (RLIMIT_DATA): a backstop for what metadata misstates")
    max_text_chars: int = Field(10_000, gt=0)
    allowed_image_mimes: tuple[str, ...] = (
        "image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff",
        "image/heic", "image/heif", "image/avif",  # csadetect.media.decoders
    )
    allowed_video_mimes: tuple[str, ...] = (
        "video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "video/x-msvideo", "video/mpeg",
    )


_SPECIAL_DIRS = ("/proc", "/sys", "/dev")


class ContentSettings(_Strict):
    """Where ``content_uri`` may point (issue 12 item 3). An event's URI is read only when it starts
    with one of ``allowed_uri_prefixes``; by default none is, so no URI is read at all."""
    allowed_uri_prefixes: tuple[str, ...] = Field((), description="URI prefixes content_uri may start with, "
                                                  "each ending in '/' (e.g. gs://provider-uploads/); empty: none")
    read_timeout_seconds: float = Field(30, gt=0, description="wall-clock limit for reading one content_uri")

    @field_validator("allowed_uri_prefixes")
    @classmethod
    def _safe_prefixes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in v:
            if not prefix.endswith("/"):
                raise ValueError("each allowed_uri_prefixes entry must end with '/' (a folder, not a name stem)")
            if fs.is_url(prefix):
                if prefix.lower().startswith("file://"):
                    raise ValueError("give a local allowed_uri_prefixes entry as an absolute directory, not file://")
                if not prefix.split("://", 1)[1].strip("/"):
                    raise ValueError("an allowed_uri_prefixes URL must name a bucket or host, not a whole scheme")
                continue
            if not os.path.isabs(prefix):
                raise ValueError("a local allowed_uri_prefixes entry must be an absolute directory")
            real = os.path.realpath(prefix)
            if real == "/" or any(real == d or real.startswith(d + "/") for d in _SPECIAL_DIRS):
                raise ValueError("allowed_uri_prefixes may not allow '/', /proc, /sys or /dev")
        return v
