"""vPDQ: the PDQ hashes of a video's frames (Meta's ``vpdq``), matched by the share of frames found.

The value is the video's unique frame hashes with quality at or above ``match.quality_gate``, as
space-separated 64-hex strings. The index is a second binary index over every frame hash of every
video indicator, with an int32 frame -> row array. For a query video, ``share`` = (unique query
frames with quality >= gate that are within ``match.pdq_threshold`` of some frame of the
indicator) / (unique query frames with quality >= gate). It matches when ``share >=
match.video_frame_share``; the distance is ``1 - share`` (0.0 = every query frame found), so
smaller is better as for every kind. A vPDQ match confirms without review.
"""
from __future__ import annotations

import json
from typing import Optional

import numpy as np
import pyarrow as pa

from csadetect.config.settings import MatchSettings
from csadetect.signals.base import Hit, Media, SignalError, SignalIndex, SignalType, hex_to_codes, parse_hex
from csadetect.signals.hamming import HASH_BYTES, as_queries, faiss_bytes, make_binary_index, range_search
from csadetect.signals.pdq import PdqSignal


class VpdqIndex(SignalIndex):
    def __init__(self, values: pa.ChunkedArray, rows: np.ndarray, settings: MatchSettings):
        frames = [v.split() for v in values.to_pylist()]
        self.frame_rows = np.repeat(rows, [len(f) for f in frames]).astype(np.int32)
        self.index = make_binary_index(settings.pdq_threshold, settings.pdq_index)
        if len(self.frame_rows):
            self.index.add(hex_to_codes([h for f in frames for h in f], HASH_BYTES))
        self.threshold = settings.pdq_threshold
        self.share = settings.video_frame_share

    @property
    def nbytes(self) -> int:
        return faiss_bytes(self.index) + self.frame_rows.nbytes

    def query(self, good: list[bytes]) -> list[Hit]:
        """``good``: the query's unique frame hashes with quality at or above the gate."""
        need = self.share * len(good) - 1e-9
        qnum, pos, _ = range_search(self.index, as_queries(good), self.threshold + 1)
        rows = self.frame_rows[pos].astype(np.int64)
        pairs = np.unique(rows * len(good) + qnum)  # one vote per (indicator, query frame)
        cand, found = np.unique(pairs // len(good), return_counts=True)
        hits = []
        for row, n in zip(cand, found):
            if n >= need:
                share = n / len(good)
                hits.append(Hit(int(row), round(1.0 - share, 6)))
        return hits


class VpdqSignal(SignalType):
    """vPDQ of a video: distance ``1 - share`` of the query's frames found."""

    name = "vpdq"
    content = ("video",)
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
        good = [f.pdq.hex() for f in media.hashes.frames if f.quality >= settings.quality_gate]
        return [("", " ".join(good))] if good else []

    def warning(self, hashes, settings: MatchSettings) -> Optional[str]:
        if any(f.quality >= settings.quality_gate for f in hashes.frames):
            return None
        return f"no vPDQ frame reaches quality {settings.quality_gate}; only md5/sha256 rows added"

    def describe(self, hashes) -> dict:
        return {"vpdq": [{"frame": f.frame, "quality": f.quality, "pdq": f.pdq.hex(), "timestamp": round(f.timestamp, 3)}
                         for f in hashes.frames]}

    def probe(self, hashes, settings: MatchSettings) -> Optional[list[bytes]]:
        good = list(dict.fromkeys(f.pdq for f in hashes.frames if f.quality >= settings.quality_gate))
        return good or None

    def auto_confirms(self, match, settings: MatchSettings, auto_confirm_similarity: Optional[float]) -> bool:
        return True

    def threshold(self, settings: MatchSettings) -> float:
        return round(1.0 - settings.video_frame_share, 6)

    def value_probe(self, value: str, settings: MatchSettings) -> list[bytes]:
        return [bytes.fromhex(h) for h in self.validate(value).split()]

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
        """Which of the video's frames (quality at or above the gate) are within the PDQ
        threshold of a frame of ``value``: their count, the count queried and the first one's
        frame number and timestamp."""
        indicator = hex_to_codes(value.split())
        good = {}
        for frame in hashes.frames:
            if frame.quality >= settings.quality_gate:
                good.setdefault(frame.pdq, frame)
        if not good or not len(indicator):
            return {}
        queries = np.frombuffer(b"".join(good), dtype=np.uint8).reshape(-1, HASH_BYTES)
        bits = np.bitwise_count(queries[:, None, :] ^ indicator[None, :, :]).sum(axis=2).min(axis=1)
        found = [frame for frame, near in zip(good.values(), bits <= settings.pdq_threshold) if near]
        out = {"frames_matched": len(found), "frames_queried": len(good)}
        if found:
            out |= {"first_frame": found[0].frame, "first_timestamp": round(found[0].timestamp, 3)}
        return out
