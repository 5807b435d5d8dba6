"""HashMedia: images -> PDQ (+ dihedral, + trimmed views, + sub-images); videos -> vPDQ frames; both -> the
digests of the bytes of every registered digest signal type (MD5, SHA-1, SHA-256).

The plaintext content is dropped here: what leaves this stage holds hashes and the content sealed
for the provider's evidence key (when configured) only, plus, when an
embedding model is configured, the model-sized thumbnails of the image's views (64x64 px) and the
picture reduced to at most 256 px a side that the query-side region views are cut from, which
``EmbedImages`` turns into vectors and drops in the very next step."""
from __future__ import annotations

from typing import Optional

import apache_beam as beam
from apache_beam import pvalue

from csadetect.config.settings import Limits, MatchSettings
from csadetect.events.event import dead_letter
from csadetect.media.hashing import MediaError, hash_image_with_views, hash_video_upload
from csadetect.media.regions import preprocessor
from csadetect.models.embedding import staged_model_inputs
from csadetect.reports.crypto import load_evidence_private_key, seal_content
from csadetect.signals import digests
from csadetect.signals.embedding import query_regions
from csadetect.reports.hits import HashedItem
from csadetect.transforms.common import DEAD_LETTER, counter, guarded

TEXT = "text"

_VIDEO_SUFFIX = {
    "video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm",
    "video/x-matroska": ".mkv", "video/x-msvideo": ".avi", "video/mpeg": ".mpg",
}


class HashMediaFn(beam.DoFn):
    def __init__(self, limits: Limits, match: MatchSettings, embed_size: int = 0, embed_flip: bool = False,
                 evidence_key: Optional[str] = None):
        self._limits = limits
        self._match = match
        self._embed_size = embed_size
        self._embed_flip = embed_flip
        self._evidence_key = evidence_key
        self._digests = digests()  # the digest signal types registered when the graph is built
        self._preprocess = None
        self._seal_for = None

    def setup(self):
        self._preprocess = preprocessor(self._match)  # match.preprocess views, match.sub_images cells
        if self._evidence_key:
            self._seal_for = load_evidence_private_key(self._evidence_key).public_key()

    def _sealed(self, event) -> Optional[str]:
        if self._seal_for is None:
            return None
        return seal_content(event.content, event.mime, self._seal_for, event.event_id)

    @guarded("hash")
    def process(self, event):
        if event.kind == "text":
            yield pvalue.TaggedOutput(TEXT, event)
            return
        try:
            if event.kind == "image":
                hashes, pictures = hash_image_with_views(
                    event.content, max_pixels=self._limits.max_pixels, preprocess=self._preprocess,
                    digests=self._digests, frames=self._match.image_frames, value=self._match.value_view,
                    inverted=self._match.inverted_view,
                )
                views, pixels, source = (), None, None
                if self._embed_size:  # the region views are cut in EmbedImages, from the small source
                    views, pixels, source = staged_model_inputs(
                        pictures, self._embed_size, self._embed_flip, query_regions(self._match))
                item = HashedItem(event.without_content(), image=hashes, views=views, pixels=pixels,
                                  region_source=source, evidence=self._sealed(event))
            else:
                hashes = hash_video_upload(event.content, self._match, self._limits, self._digests,
                                           suffix=_VIDEO_SUFFIX.get(event.mime or "", ".mp4"))
                item = HashedItem(event.without_content(), video=hashes, evidence=self._sealed(event))
        except MediaError as exc:
            counter("dead_lettered").inc()
            counter(f"dead_letter_{event.kind}").inc()
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter("hash", str(exc), event.event_id))
            return
        counter(f"hashed_{event.kind}").inc()
        yield item


class HashMedia(beam.PTransform):
    """Outputs: main = HashedItem, ``text`` = text Events, ``dead_letter`` = DeadLetter."""

    def __init__(self, limits: Limits, match: MatchSettings, embed_size: int = 0, embed_flip: bool = False,
                 evidence_key: Optional[str] = None):
        """``embed_size`` > 0: also keep ``embed_size``-pixel thumbnails of the image's views for
        ``EmbedImages`` (``embed_flip``: plus the mirrored image). ``evidence_key``: the provider's
        X25519 evidence key (PEM path); the content is sealed for it before it is dropped."""
        super().__init__()
        self._limits = limits
        self._match = match
        self._embed = (embed_size, embed_flip, evidence_key)

    def expand(self, events):
        fn = HashMediaFn(self._limits, self._match, *self._embed)
        return events | "Hash" >> beam.ParDo(fn).with_outputs(
            DEAD_LETTER, TEXT, main="hashed"
        )
