"""Digests of a file's bytes (MD5, SHA-1, SHA-256, ...): what the digest signal types share.

A digest type is named after its :mod:`hashlib` algorithm. :mod:`csadetect.media.hashing` hashes
the bytes of every file with the algorithms of the registered digest types
(:func:`csadetect.signals.digests`), so registering one is all it takes for files to be hashed
with it. Matching is exact: the indicators' digests as a sorted fixed-width byte array, looked up
with ``np.searchsorted``; the distance is 0 and a match confirms without review.
"""
from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np
import pyarrow as pa

from csadetect.config.settings import MatchSettings
from csadetect.signals.base import HexSignal, Hit, Media, SignalIndex, hex_to_codes


class DigestIndex(SignalIndex):
    def __init__(self, values: pa.ChunkedArray, rows: np.ndarray, nbytes: int):
        digests = hex_to_codes(values, nbytes).view(f"S{nbytes}").ravel()
        order = np.argsort(digests, kind="stable")
        self.keys, self.rows = digests[order], rows[order].astype(np.int32)

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.rows.nbytes

    def query(self, hexdigest: str) -> list[Hit]:
        if not len(self.keys):
            return []
        key = np.array([bytes.fromhex(hexdigest)], dtype=self.keys.dtype)
        lo, hi = np.searchsorted(self.keys, key, "left")[0], np.searchsorted(self.keys, key, "right")[0]
        return [Hit(int(row), 0) for row in self.rows[lo:hi]]


class DigestSignal(HexSignal):
    """An exact digest of the bytes; subclasses set :attr:`name` (the hashlib algorithm) and
    :attr:`evidence`."""

    content = ("image", "video")
    unit = "exact"
    default_threshold = 0
    exact = True
    digest = True

    @property
    def nbytes(self) -> int:
        return hashlib.new(self.name).digest_size

    def distance(self, a: str, b: str) -> int:
        return int(self.validate(a) != self.validate(b))

    def examples(self) -> list[str]:
        return [hashlib.new(self.name, data).hexdigest() for data in (b"", b"csadetect")]

    def build_index(self, values: pa.ChunkedArray, rows: np.ndarray, settings: MatchSettings,
                    packed: Optional[np.ndarray] = None) -> DigestIndex:
        return DigestIndex(values, rows, self.nbytes)

    def indicator_values(self, media: Media, settings: MatchSettings) -> list[tuple[str, str]]:
        return [("", media.hashes.digests[self.name])]

    def describe(self, hashes) -> dict:
        return {self.name: hashes.digests[self.name]}

    def probe(self, hashes, settings: MatchSettings) -> Optional[str]:
        return hashes.digests.get(self.name) or None

    def value_probe(self, value: str, settings: MatchSettings) -> str:
        return self.validate(value)
