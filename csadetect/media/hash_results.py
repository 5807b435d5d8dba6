"""What hashing gives back: :class:`ImageHashes`, :class:`VideoHashes` (its frames as
:class:`VideoFrame`) and :class:`PdqResult`, the :class:`MediaError` every refusal raises, and the
digests of the bytes that both carry (:func:`crypto_hashes`, by default :data:`DIGESTS`).

Callers import these from :mod:`csadetect.media.hashing`; they live apart so that the PDQ, RGB
conversion and video modules (:mod:`.pdq`, :mod:`.rgb`, :mod:`.video`) share them without
importing the module that assembles them.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import ClassVar, Sequence

from csadetect.media import vpdq_worker

DIGESTS = ("md5", "sha1", "sha256")  # hashlib algorithms for the bytes of every file, by default


class MediaError(ValueError):
    """Media that cannot be decoded or hashed. The message is a one-line reason, no content."""


@dataclasses.dataclass(frozen=True)
class PdqResult:
    pdq: bytes  # 32 bytes, reference bit order (np.packbits of pdqhash's bit vector)
    quality: int
    dihedral: tuple[bytes, ...] = ()  # the 8 dihedral hashes (first is `pdq`)

    @property
    def hex(self) -> str:
        return self.pdq.hex()


class _Digests:
    """``md5`` and ``sha256`` of the bytes, the two digests a report carries, from ``digests``."""

    digests: dict[str, str]  # hashlib algorithm -> hex digest of the bytes

    @property
    def md5(self) -> str:
        return self.digests["md5"]

    @property
    def sha256(self) -> str:
        return self.digests["sha256"]


@dataclasses.dataclass(frozen=True)
class ImageHashes(_Digests):
    content: ClassVar[str] = "image"

    pdq: bytes
    quality: int
    dihedral: tuple[bytes, ...]
    digests: dict[str, str]
    width: int
    height: int
    # extra PDQ hashes of preprocessed versions (e.g. borders removed): (name, PdqResult)
    variants: tuple[tuple[str, PdqResult], ...] = ()


@dataclasses.dataclass(frozen=True)
class VideoFrame:
    frame: int
    quality: int
    pdq: bytes
    timestamp: float
    cropped: bool = False  # the frame's picture inside letterbox/pillarbox bars (csadetect.media.letterbox)
    cleaned: bool = False  # that picture (or the frame) with static overlays painted out (csadetect.media.overlay)
    framed: bool = False  # the frame inside its own bars (a still picture's; only looked up among PDQ rows)

    @classmethod
    def from_worker(cls, frame: int, quality: int, hexhash: str, timestamp: float, view: str) -> "VideoFrame":
        """A frame as :mod:`csadetect.media.vpdq_worker` gives it (``view``: one of its ``VIEWS``)."""
        if view not in vpdq_worker.VIEWS:
            raise ValueError(f"unknown frame view {view!r}")
        return cls(frame=frame, quality=quality, pdq=bytes.fromhex(hexhash), timestamp=timestamp,
                   cropped=view == "cropped", cleaned=view == "cleaned", framed=view == "framed")

    @property
    def view(self) -> str:
        """Which view of the frame this hash is: ``framed``, ``cleaned``, ``cropped`` or ``whole`` (the
        worker's ``""``), the inverse of :meth:`from_worker` (as a match line names it)."""
        return "framed" if self.framed else "cleaned" if self.cleaned else "cropped" if self.cropped else "whole"


@dataclasses.dataclass(frozen=True)
class VideoHashes(_Digests):
    content: ClassVar[str] = "video"

    digests: dict[str, str]
    frames: tuple[VideoFrame, ...]


def crypto_hashes(data: bytes, algorithms: Sequence[str] = DIGESTS) -> dict[str, str]:
    """Hex digests of ``data``, one per hashlib algorithm."""
    return {name: hashlib.new(name, data).hexdigest() for name in algorithms}
