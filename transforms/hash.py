"""HashMedia: images -> PDQ (+ dihedral, + trimmed views), MD5, SHA-256; videos -> vPDQ frames.

The content bytes are dropped here: what leaves this stage holds hashes only."""
from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue

from csadetect.events import dead_letter
from csadetect.hashing import MediaError, hash_image, hash_video
from csadetect.settings import Limits, MatchSettings
from transforms.common import DEAD_LETTER, HashedItem, counter

TEXT = "text"

_VIDEO_SUFFIX = {
    "video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm",
    "video/x-matroska": ".mkv", "video/x-msvideo": ".avi", "video/mpeg": ".mpg",
}


class HashMediaFn(beam.DoFn):
    def __init__(self, limits: Limits, match: MatchSettings):
        self._limits = limits
        self._match = match
        self._preprocess = None

    def setup(self):
        if self._match.preprocess:
            from csadetect.preprocess import views

            self._preprocess = views

    def process(self, event):
        if event.kind == "text":
            yield pvalue.TaggedOutput(TEXT, event)
            return
        try:
            if event.kind == "image":
                hashes = hash_image(event.content, max_pixels=self._limits.max_pixels, preprocess=self._preprocess)
                item = HashedItem(event.without_content(), image=hashes)
            else:
                hashes = hash_video(
                    event.content,
                    seconds_per_hash=self._match.video_seconds_per_hash,
                    max_frames=self._limits.max_video_frames,
                    suffix=_VIDEO_SUFFIX.get(event.mime or "", ".mp4"),
                )
                item = HashedItem(event.without_content(), video=hashes)
        except MediaError as exc:
            counter("dead_lettered").inc()
            counter(f"dead_letter_{event.kind}").inc()
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter("hash", str(exc), event.event_id))
            return
        counter(f"hashed_{event.kind}").inc()
        yield item


class HashMedia(beam.PTransform):
    """Outputs: main = HashedItem, ``text`` = text Events, ``dead_letter`` = DeadLetter."""

    def __init__(self, limits: Limits, match: MatchSettings):
        super().__init__()
        self._limits = limits
        self._match = match

    def expand(self, events):
        return events | "Hash" >> beam.ParDo(HashMediaFn(self._limits, self._match)).with_outputs(
            DEAD_LETTER, TEXT, main="hashed"
        )
