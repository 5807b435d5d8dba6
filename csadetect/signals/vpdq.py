"""vPDQ: the PDQ hashes of a video's frames (Meta's ``vpdq``), matched by the share of frames found.

The value is the video's unique frame hashes with quality at or above ``match.quality_gate``, as
space-separated 64-hex strings (of frames cropped to the picture inside letterbox or pillarbox
bars, ``match.video_bars``: :mod:`csadetect.media.letterbox`). The index is a second binary index
over every frame hash of every video indicator, with an int32 frame -> row array.

The rule is Meta's vPDQ's two percentages. For a query video and an indicator, with frames of
quality >= gate only (the picture's quality where the video has bars: a frame whose cropped
picture is below the gate is left out whole, :func:`frame_groups`): the *query share* = (unique
query frames within ``match.pdq_threshold`` of some frame of the indicator) / (unique query
frames), Meta's ``query_match_percent`` (a frame of a video with bars is hashed whole and cropped,
and counts when either hash is found: :func:`frame_groups`; an indicator made from media keeps the
cropped hashes only); the *indicator share* = (the indicator's frames within the threshold of
some query frame) / (the indicator's frames), Meta's ``compared_match_percent``. It matches when
the query share >= ``match.video_frame_share`` and the indicator share >=
``match.video_indicator_share``. The
distance stays ``1 - query share`` (0.0 = every query frame found; smaller is better as for every
kind), so per-source thresholds on it keep their meaning; the indicator share is a second gate,
shown by :meth:`VpdqSignal.explain`. A vPDQ match of a video confirms without review.

An image is looked up among the indicators' frames too (``match.image_video_frames``, on by
default): a frame grab or a thumbnail of a known video is one frame, found when any of the hashes
PDQ looks an image up with (dihedral, views: :meth:`PdqSignal.probe`) is within the threshold of
some frame of the indicator. Its distance is 0.0 (its one frame found); the indicator share does
not apply (one picture is a vanishing share of any video's frames). Such a match is always sent
to review: a known video's frames include title cards, logos and other frames that are not the
material, which its share rule guards a video against and nothing guards a single picture against.
"""
from __future__ import annotations

import json
from typing import NamedTuple, Optional

import numpy as np
import pyarrow as pa

from csadetect.config.settings import MatchSettings
from csadetect.signals.base import Hit, Media, SignalError, SignalIndex, SignalType, hex_to_codes, parse_hex
from csadetect.signals.hamming import HASH_BYTES, as_queries, faiss_bytes, make_binary_index, range_search
from csadetect.signals.pdq import PdqSignal
from csadetect.signals.video_frames import frame_groups


class PictureProbe(NamedTuple):
    """An image looked up among video indicators' frames (``match.image_video_frames``): its hashes."""

    hashes: tuple[bytes, ...]


class VpdqIndex(SignalIndex):
    def __init__(self, values: pa.ChunkedArray, rows: np.ndarray, settings: MatchSettings):
        frames = [v.split() for v in values.to_pylist()]
        counts = np.array([len(f) for f in frames], dtype=np.int64)
        self.frame_rows = np.repeat(rows, counts).astype(np.int32)
        self.row_frames = dict(zip(np.asarray(rows).tolist(), counts.tolist()))  # row -> its frame count
        self.index = make_binary_index(settings.pdq_threshold, settings.pdq_index)
        if len(self.frame_rows):
            self.index.add(hex_to_codes([h for f in frames for h in f], HASH_BYTES))
        self.threshold = settings.pdq_threshold
        self.share = settings.video_frame_share
        self.indicator_share = settings.video_indicator_share

    @property
    def nbytes(self) -> int:
        return faiss_bytes(self.index) + self.frame_rows.nbytes + 16 * len(self.row_frames)

    def query(self, groups) -> list[Hit]:
        """``groups``: the query's frames (:func:`frame_groups`), each its hashes with quality at or
        above the gate (the whole frame's and, for a video with bars, its cropped picture's); or a
        :class:`PictureProbe` (an image: every indicator with a frame it finds, distance 0.0)."""
        if isinstance(groups, PictureProbe):
            return self._picture(groups.hashes)
        hashes = list(dict.fromkeys(h for g in groups for h in g))
        if not hashes:
            return []
        where = {h: i for i, h in enumerate(hashes)}
        member_hash, member_group = np.array([(where[h], gi) for gi, g in enumerate(groups) for h in g],
                                             dtype=np.int64).T.reshape(2, -1)
        qnum, pos, _ = range_search(self.index, as_queries(hashes), self.threshold + 1)
        rows = self.frame_rows[pos].astype(np.int64)
        n_hash, n_group = len(hashes), len(groups)
        row_hash = np.unique(rows * n_hash + qnum)  # (indicator, query hash) pairs found
        row_of, hash_of = row_hash // n_hash, row_hash % n_hash
        # each pair votes for every query frame holding that hash: one vote per (indicator, frame)
        order = np.argsort(member_hash, kind="stable")
        by_hash = member_group[order]
        starts = np.searchsorted(member_hash[order], np.arange(n_hash))
        counts = np.bincount(member_hash, minlength=n_hash)
        reps = counts[hash_of]
        first = np.repeat(starts[hash_of], reps)
        offset = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
        votes = np.unique(np.repeat(row_of, reps) * n_group + by_hash[first + offset])
        cand, found = np.unique(votes // n_group, return_counts=True)
        # the indicator's frames found (index positions, one per frame), per row
        rows_hit, frames_hit = np.unique(self.frame_rows[np.unique(pos)], return_counts=True)
        indicator_found = dict(zip(rows_hit.tolist(), frames_hit.tolist()))
        need = self.share * n_group - 1e-9
        hits = []
        for row, n in zip(cand.tolist(), found.tolist()):
            if n >= need and indicator_found[row] >= self.indicator_share * self.row_frames[row] - 1e-9:
                hits.append(Hit(row, round(1.0 - n / n_group, 6)))
        return hits

    def _picture(self, hashes: tuple[bytes, ...]) -> list[Hit]:
        if not hashes or not len(self.frame_rows):
            return []
        _, pos, _ = range_search(self.index, as_queries(list(dict.fromkeys(hashes))), self.threshold + 1)
        return [Hit(int(row), 0.0) for row in np.unique(self.frame_rows[pos])]


class VpdqSignal(SignalType):
    """vPDQ of a video: distance ``1 - share`` of the query's frames found."""

    name = "vpdq"
    content = ("video",)
    also_queried_by = ("image",)  # a frame grab of a known video (match.image_video_frames)
    unit = "1 − share of matching frames"
    default_threshold = round(1.0 - MatchSettings.model_fields["video_frame_share"].default, 6)
    evidence = 3
    threatexchange = "vpdq"  # its signal_str: a JSON list of "pdq_hex,quality,timestamp" (import only)

    def normalise(self, value: str) -> str:
        frames = [parse_hex(v, 2 * HASH_BYTES, "vpdq frame") for v in value.split()]
        return " ".join(dict.fromkeys(frames))  # unique, first-seen order

    def distance(self, a: str, b: str) -> float:
        """1 - the share of ``a``'s frames within the default PDQ threshold of a frame of ``b``."""
        qa, qb = hex_to_codes(self.validate(a).split()), hex_to_codes(self.validate(b).split())
        bits = np.bitwise_count(qa[:, None, :] ^ qb[None, :, :]).sum(axis=2)
        found = (bits.min(axis=1) <= MatchSettings.model_fields["pdq_threshold"].default).mean()
        return round(1.0 - float(found), 6)

    def examples(self) -> list[str]:
        a, b = PdqSignal().examples()
        return [f"{a} {b}", b]

    def build_index(self, values: pa.ChunkedArray, rows: np.ndarray, settings: MatchSettings,
                    packed: Optional[np.ndarray] = None) -> VpdqIndex:
        return VpdqIndex(values, rows, settings)

    def indicator_values(self, media: Media, settings: MatchSettings) -> list[tuple[str, str]]:
        """The frames' hashes, of the pictures inside the bars when the video has bars (an upload
        is hashed whole and cropped, so it matches with or without bars of its own); never the
        hashes with static overlays painted out (``cleaned``: only an upload's)."""
        frames = [f for f in media.hashes.frames if not f.cleaned and not f.framed]
        if any(f.cropped for f in frames):
            frames = [f for f in frames if f.cropped]
        good = [f.pdq.hex() for f in frames if f.quality >= settings.quality_gate]
        return [("", " ".join(good))] if good else []

    def warning(self, hashes, settings: MatchSettings) -> Optional[str]:
        if any(f.quality >= settings.quality_gate for f in hashes.frames):
            return None
        return f"no vPDQ frame reaches quality {settings.quality_gate}; only md5/sha256 rows added"

    def describe(self, hashes) -> dict:
        return {"vpdq": [{"frame": f.frame, "quality": f.quality, "pdq": f.pdq.hex(), "timestamp": round(f.timestamp, 3)}
                         | ({"cropped": True} if f.cropped else {}) | ({"cleaned": True} if f.cleaned else {})
                         | ({"framed": True} if f.framed else {})
                         for f in hashes.frames]}

    def probe(self, hashes, settings: MatchSettings):
        """A video's :func:`frame_groups`; an image's PDQ hashes as a :class:`PictureProbe`, with
        ``match.image_video_frames`` (else None)."""
        if hashes.content == "image":
            if not settings.image_video_frames:
                return None
            picture = PdqSignal().probe(hashes, settings)
            return PictureProbe(tuple(picture)) if picture else None
        return frame_groups(hashes.frames, settings.quality_gate) or None

    def auto_confirms(self, match, settings: MatchSettings, auto_confirm_similarity: Optional[float],
                      content: Optional[str] = None) -> bool:
        """A video's match confirms; an image's (a frame of a known video) goes to review."""
        return content == "video"

    def threshold(self, settings: MatchSettings) -> float:
        return round(1.0 - settings.video_frame_share, 6)

    def value_probe(self, value: str, settings: MatchSettings) -> list[tuple[bytes, ...]]:
        return [(bytes.fromhex(h),) for h in self.validate(value).split()]

    def import_value(self, value: str, settings: MatchSettings) -> str:
        """Also python-threatexchange's serialisation (``VPDQSignal``: a JSON list of
        ``"pdq_hex,quality,timestamp"``), keeping the frames whose quality reaches the gate."""
        text = value.strip()
        if not text.startswith("["):
            return self.validate(text)
        try:
            features = json.loads(text)
            parts = [str(f).split(",") for f in features]
            frames = [(h, int(q)) for h, q, _ in parts]
        except (ValueError, TypeError):
            raise SignalError("vpdq value is neither frame hashes nor a JSON list of \"pdq_hex,quality,timestamp\"") from None
        good = [h for h, quality in frames if quality >= settings.quality_gate]
        if not good:
            raise SignalError(f"no vpdq frame reaches quality {settings.quality_gate}")
        return self.validate(" ".join(good))

    def export_value(self, value: str) -> None:
        return None  # a snapshot keeps neither the frames' quality nor their timestamps

    def explain(self, hashes, value: str, settings: MatchSettings, views=None) -> dict:
        """Which of the video's frames (quality at or above the gate, the picture's where it has
        bars: :func:`frame_groups`; a frame counts when its whole or its cropped hash matches) are
        within the PDQ threshold of a frame of ``value``: their count, the count queried and the
        first one's frame number and timestamp; and how many of the indicator's frames the video
        matched. Of an image: the nearest frame's distance in bits (``bits``), the picture's view
        and transform with it (as PDQ's explain names them), and how many of the indicator's frames
        lie within the threshold."""
        indicator = hex_to_codes(value.split())
        if hashes.content == "image":
            return _explain_picture(hashes, indicator, settings)
        groups = frame_groups(hashes.frames, settings.quality_gate)
        kept = {h for g in groups for h in g}
        good = [f for f in hashes.frames if f.quality >= settings.quality_gate and f.pdq in kept]
        if not groups or not len(indicator):
            return {}
        queries = np.frombuffer(b"".join(f.pdq for f in good), dtype=np.uint8).reshape(-1, HASH_BYTES)
        bits = np.bitwise_count(queries[:, None, :] ^ indicator[None, :, :]).sum(axis=2)
        near = {f.pdq for f, d in zip(good, bits.min(axis=1)) if d <= settings.pdq_threshold}
        found = [g for g in groups if near.intersection(g)]
        out = {"frames_matched": len(found), "frames_queried": len(groups),
               "indicator_frames_matched": int((bits.min(axis=0) <= settings.pdq_threshold).sum()),
               "indicator_frames": len(indicator)}
        if found:
            first = next(f for f in good if f.pdq in found[0])
            out |= {"first_frame": first.frame, "first_timestamp": round(first.timestamp, 3)}
        return out


def _explain_picture(hashes, indicator: np.ndarray, settings: MatchSettings) -> dict:
    """:meth:`VpdqSignal.explain` of an image: its nearest hash (of those PDQ looks it up with) to any frame."""
    queries = PdqSignal().probe(hashes, settings)
    if not queries or not len(indicator):
        return {}
    codes = np.frombuffer(b"".join(queries), dtype=np.uint8).reshape(-1, HASH_BYTES)
    bits = np.bitwise_count(codes[:, None, :] ^ indicator[None, :, :]).sum(axis=2)
    best = int(bits.min())
    nearest = PdqSignal().explain(hashes, indicator[int(bits.min(axis=0).argmin())].tobytes().hex(), settings)
    return nearest | {"bits": best, "indicator_frames_matched": int((bits.min(axis=0) <= settings.pdq_threshold).sum()),
                      "indicator_frames": len(indicator)}
