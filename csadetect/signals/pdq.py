"""PDQ: Meta's perceptual hash of an image (256 bits), matched within a Hamming distance.

The value is 64 hex characters. It is computed by :func:`csadetect.media.hashing.hash_image`, with
the 8 dihedral hashes (rotations and mirrors) of the image and of each preprocessed view; a query
looks all of those whose quality passes ``match.quality_gate`` up in one batched range search and
keeps the best distance per indicator. A match confirms without review at or below
``match.auto_confirm_distance``.

A picture's value channel (the largest of red, green and blue at each pixel) is hashed too on both
sides (``match.value_view``, :mod:`csadetect.media.view_value`): an upload's ``value`` variant (and
``<view>-value`` of each preprocessed view and sub-image) and an indicator's ``-value`` row, so a copy
whose hue was turned still meets its original, framed or not.

A video is looked up here too (``match.video_frames_pdq``, on by default): the PDQ hashes of its
hashed frames, whole, inside the video's bars, with static overlays painted out and inside each
frame's own bars (:func:`csadetect.signals.video_frames.picture_hashes`), so a known picture shown
in a video (a slideshow, a still held for a second) matches as the picture would. Each frame is
compared as a picture is, at the same threshold; one frame is enough.

The snapshot stores the PDQ rows' hashes already parsed (``pdq_codes.npy``), so loading a large
snapshot parses no hex. Rows of one kind are contiguous in a segment (the snapshot sorts rows by
kind, PDQ first), so a position of the binary index is a row number plus an offset: no position ->
row array.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

from csadetect.config.settings import MatchSettings
from csadetect.media.hashing import hamming
from csadetect.media.view_value import VALUE
from csadetect.signals.base import HexSignal, Hit, Media, SignalError, SignalIndex, hex_to_codes
from csadetect.signals.hamming import (HASH_BYTES, MultiIndexHash, as_queries, best, faiss_bytes, make_binary_index,
                                       range_search)
from csadetect.signals.video_frames import picture_hashes

# The 8 dihedral hashes of a picture in the order PDQ computes them (``ImageHashes.dihedral``):
# each names the transform of the *uploaded* picture whose hash matched, so a picture uploaded
# rotated by 90 degrees matches its indicator through "rotate-270" (tested on Meta's dih/ images).
# The names are PDQ's: "flip-x" mirrors top to bottom, "flip-y" left to right, "flip-plus-1" and
# "flip-minus-1" about the two diagonals.
DIHEDRAL = ("original", "rotate-90", "rotate-180", "rotate-270", "flip-x", "flip-y", "flip-plus-1", "flip-minus-1")


class PdqIndex(SignalIndex):
    """A binary index (:func:`~csadetect.signals.hamming.make_binary_index`) over the rows' codes."""

    def __init__(self, codes: np.ndarray, rows: Sequence[int], settings: MatchSettings, tables=None):
        """``tables``: a snapshot's prebuilt multi-index tables of ``codes`` (memory-mapped, see
        :mod:`csadetect.indicators.mapped`), used as they are (nothing copied) when ``settings``
        choose multi-index hashing; FAISS flat copies the codes either way."""
        if len(rows) and rows[-1] - rows[0] + 1 != len(rows):
            raise SignalError("pdq rows of a segment must be contiguous")
        if len(codes) != len(rows):
            raise SignalError("pdq codes do not match the pdq rows")
        self.first = int(rows[0]) if len(rows) else 0
        self.threshold = settings.pdq_threshold
        self.index = make_binary_index(settings.pdq_threshold, settings.pdq_index)
        if isinstance(self.index, MultiIndexHash) and tables is not None:
            order, offsets, bits = tables
            self.index = MultiIndexHash.from_tables(self.threshold, codes, order, offsets, bits)
        elif len(rows):
            self.index.add(np.ascontiguousarray(codes, dtype=np.uint8))

    @property
    def nbytes(self) -> int:
        return faiss_bytes(self.index)

    def query(self, hashes) -> list[Hit]:
        unique = dict.fromkeys(bytes(h) for h in hashes)  # e.g. the dihedral hashes of a symmetric picture
        _, pos, dist = range_search(self.index, as_queries(unique), self.threshold + 1)
        if len(unique) > 1:  # one query's positions are unique already
            pos, dist = best(pos, dist)
        return [Hit(self.first + int(p), int(d)) for p, d in zip(pos, dist)]


class PdqSignal(HexSignal):
    """PDQ of an image: distance in bits (0-256), confirmed without review up to
    ``match.auto_confirm_distance``."""

    name = "pdq"
    content = ("image",)
    also_queried_by = ("video",)  # a video's frames, as pictures (match.video_frames_pdq)
    unit = "bits (of 256)"
    default_threshold = MatchSettings.model_fields["pdq_threshold"].default
    evidence = 4
    nbytes = HASH_BYTES
    aliases = ("hash_pdq", "photo_pdq")  # ThreatExchange's indicator type; python-threatexchange calls it pdq
    threatexchange = "pdq"

    def distance(self, a: str, b: str) -> int:
        return hamming(bytes.fromhex(self.validate(a)), bytes.fromhex(self.validate(b)))

    def examples(self) -> list[str]:
        return ["98736629670cc19fc9f23862f66cce1f599e32c78e236c78619d202e9e66c157",
                "e162474a56babaadce4ccfe2231f4abdcac5342e31032bdd2eaca68bca87d516"]

    def build_index(self, values: pa.ChunkedArray, rows: np.ndarray, settings: MatchSettings,
                    packed: Optional[np.ndarray] = None, tables=None) -> PdqIndex:
        return PdqIndex(hex_to_codes(values, HASH_BYTES) if packed is None else packed, rows, settings, tables)

    def indicator_values(self, media: Media, settings: MatchSettings) -> list[tuple[str, str]]:
        """The picture's PDQ; and its value channel's (``-value``, :mod:`csadetect.media.view_value`)
        when it was hashed (``match.value_view``), passes the quality gate and is not the picture's own."""
        hashes = media.hashes
        rows = [("", hashes.pdq.hex())]
        value = dict(hashes.variants).get(VALUE)
        if value is not None and value.quality >= settings.quality_gate and value.pdq != hashes.pdq:
            rows.append((f"-{VALUE}", value.pdq.hex()))
        return rows

    def warning(self, hashes, settings: MatchSettings) -> Optional[str]:
        if hashes.quality < settings.quality_gate:
            return f"PDQ quality {hashes.quality} is below the gate {settings.quality_gate}"
        return None

    def describe(self, hashes) -> dict:
        return {"pdq": hashes.pdq.hex(), "quality": hashes.quality}

    def probe(self, hashes, settings: MatchSettings) -> Optional[list[bytes]]:
        """The dihedral hashes of the image and of its preprocessed views whose quality passes the
        gate; of a video, its frames' hashes that do (:func:`picture_hashes`), with
        ``match.video_frames_pdq`` (else None)."""
        if hashes.content == "video":
            return (picture_hashes(hashes.frames, settings.quality_gate) or None) if settings.video_frames_pdq else None
        queries: list[bytes] = []
        for result in [hashes] + [v for _, v in hashes.variants]:
            if result.quality >= settings.quality_gate:
                queries.extend(result.dihedral or (result.pdq,))
        return queries

    def auto_confirms(self, match, settings: MatchSettings, auto_confirm_similarity: Optional[float],
                      content: Optional[str] = None) -> bool:
        return match.distance <= settings.auto_confirm_distance

    def threshold(self, settings: MatchSettings) -> int:
        return settings.pdq_threshold

    def value_probe(self, value: str, settings: MatchSettings) -> list[bytes]:
        return [bytes.fromhex(self.validate(value))]

    def explain(self, hashes, value: str, settings: MatchSettings, views=None) -> dict:
        """The view (``original`` or a preprocessed one, e.g. borders trimmed) and the dihedral
        transform (:data:`DIHEDRAL`) whose hash is nearest to ``value``, among those :meth:`probe`
        queries with; the first of equals (the original picture, untransformed, first). Of a
        video: the frame (number, timestamp) and its view (``whole``, ``cropped``, ``cleaned``,
        ``framed``) nearest to ``value``, the first of equals."""
        target = bytes.fromhex(value)
        if hashes.content == "video":
            return _explain_frame(hashes, target, settings)
        found = None
        for view, result in [("original", hashes)] + list(hashes.variants):
            if result.quality < settings.quality_gate:
                continue
            for number, code in enumerate(result.dihedral or (result.pdq,)):
                bits = hamming(code, target)
                if found is None or bits < found[0]:
                    found = (bits, view, DIHEDRAL[number], result.quality)
        if found is None:
            return {}
        return {"view": found[1], "transform": found[2], "quality": found[3]}


def _explain_frame(hashes, target: bytes, settings: MatchSettings) -> dict:
    """:meth:`PdqSignal.explain` of a video: which of the hashes :func:`picture_hashes` looks up is nearest."""
    queried = set(picture_hashes(hashes.frames, settings.quality_gate))
    found = None
    for f in hashes.frames:
        if f.pdq not in queried:
            continue
        bits = hamming(f.pdq, target)
        if found is None or bits < found[0]:
            found = (bits, f)
    if found is None:
        return {}
    f = found[1]
    return {"view": f.view, "frame": f.frame, "timestamp": round(f.timestamp, 3), "quality": f.quality}
