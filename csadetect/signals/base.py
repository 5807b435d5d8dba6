"""The interface every signal type implements (issue 11), after python-threatexchange's
``SignalType`` / ``SignalTypeIndex``.

A *signal type* is one kind of value an indicator can hold: a PDQ hash, an MD5 digest, an
embedding, ... Everything the rest of the system needs to know about a kind lives in its class, so
no other module compares kind names: how a value is validated and normalised, how it is computed
from a hashed file (:mod:`csadetect.media.hashing`), the index its values are matched with, what a
distance counts, the default threshold and whether a match confirms without review. Each type has
its own module in this package and one registration line in :mod:`csadetect.signals`.
"""
from __future__ import annotations

import abc
import dataclasses
import re
from typing import Any, ClassVar, NamedTuple, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csadetect.config.settings import MatchSettings

_HEX_RE = re.compile(r"[0-9a-f]+")


class SignalError(ValueError):
    """A value its signal type cannot read; the message is one line."""


class Hit(NamedTuple):
    """One indexed row within the threshold of a query."""

    row: int
    distance: Union[int, float]  # in the unit of the signal type; 0 = identical
    similarity: Optional[float] = None  # for similarity-scored types (embeddings): distance = 1 - it


@dataclasses.dataclass(frozen=True)
class Media:
    """A known file as the signal types see it when it becomes indicator rows."""

    hashes: Any  # csadetect.media.hashing.ImageHashes or VideoHashes
    picture: Any = None  # the decoded image (PIL), for images
    embedder: Any = None  # an embedding model (``embed(images)``, ``version``), or None


class SignalIndex(abc.ABC):
    """Match structures over the values of one signal type in one segment of the indicator index.
    Rows are the segment's row numbers; the segment maps them to ids, categories and tombstones."""

    @abc.abstractmethod
    def query(self, probe) -> list[Hit]:
        """The rows within the threshold of ``probe`` (what :meth:`SignalType.probe` gives), the
        best hit per row."""

    @property
    @abc.abstractmethod
    def nbytes(self) -> int:
        """Bytes the structures hold (for ``IndicatorIndex.memory_stats``)."""


class SignalType(abc.ABC):
    """One kind of indicator value. Instances are registered in :mod:`csadetect.signals`."""

    name: ClassVar[str]  # the ``kind`` of indicator rows and matches
    content: ClassVar[tuple[str, ...]]  # the content it is computed from: "image", "video"
    # other content whose hashes are also looked up among its rows (PDQ: a video's frames, as pictures)
    also_queried_by: ClassVar[tuple[str, ...]] = ()
    unit: ClassVar[str]  # what a distance counts, for people (the review console shows it)
    default_threshold: ClassVar[Optional[float]]  # largest distance that matches by default
    evidence: ClassVar[int]  # rank in a report's list of matches: strongest evidence (lowest) first
    exact: ClassVar[bool] = False  # only identical values match (distance 0)
    digest: ClassVar[bool] = False  # a hashlib digest of the bytes, named by its algorithm
    from_media: ClassVar[bool] = True  # ``indicators from-media`` writes it and ``csadetect hash`` prints it
    detector: ClassVar[str] = "known-hash"  # the report's detector when only this kind of signal matched
    # other names of this kind in hash lists (lower case): python-threatexchange signal types, HMA /
    # ThreatExchange indicator types, spellings like "sha-256" (csadetect.indicators.formats)
    aliases: ClassVar[tuple[str, ...]] = ()
    threatexchange: ClassVar[Optional[str]] = None  # the python-threatexchange signal type it exports as
    # a bare value shows it may be of this kind (hex of a width); False where any text of the
    # right alphabet reads as one (embeddings' base64), so a hash list never is taken for it
    recognisable: ClassVar[bool] = True

    def validate(self, value: str) -> str:
        """The canonical form of ``value``; raises SignalError (one line) when it is not valid."""
        if not isinstance(value, str) or not value.strip():
            raise SignalError("value is empty")
        return self.normalise(value)

    @abc.abstractmethod
    def normalise(self, value: str) -> str:
        """:meth:`validate` for a non-empty string."""

    @abc.abstractmethod
    def distance(self, a: str, b: str) -> float:
        """The distance of two values, in :attr:`unit` (the index's answer for one pair)."""

    @abc.abstractmethod
    def examples(self) -> list[str]:
        """Valid values in canonical form (for tests and demos), at least two distinct ones."""

    @abc.abstractmethod
    def build_index(self, values: pa.ChunkedArray, rows: np.ndarray, settings: MatchSettings,
                    packed: Optional[np.ndarray] = None) -> SignalIndex:
        """The index over ``values`` (canonical, of this type), which are the segment's ``rows``.
        ``packed``: the values as stored beside the snapshot, already parsed (PDQ codes), or None."""

    def check_column(self, values: pa.ChunkedArray) -> None:
        """Check a column of values imported without a Python object per row (a trusted Arrow
        table); raises SignalError. By default they are trusted."""

    def indicator_values(self, media: Media, settings: MatchSettings) -> list[tuple[str, str]]:
        """``(id suffix, value)`` of each indicator row a known file gives (``from-media``)."""
        return []

    def warning(self, hashes, settings: MatchSettings) -> Optional[str]:
        """Why the rows of a known file may not match as hoped (e.g. low quality), or None."""
        return None

    def describe(self, hashes) -> dict:
        """The fields ``csadetect hash`` prints for this type."""
        return {}

    def probe(self, hashes, settings: MatchSettings):
        """What the index is queried with for a hashed item (None: nothing to look up)."""
        return None

    def auto_confirms(self, match, settings: MatchSettings, auto_confirm_similarity: Optional[float],
                      content: Optional[str] = None) -> bool:
        """Whether ``match`` (an indicator match of this type) of an item of ``content`` ("image",
        "video"; None when unknown) confirms without human review."""
        return self.exact

    def threshold(self, settings: MatchSettings) -> Optional[float]:
        """The largest distance that matches under ``settings`` (what ``csadetect match`` reports)."""
        return self.default_threshold

    def value_probe(self, value: str, settings: MatchSettings):
        """What the index is queried with for a bare value of this kind (``match --hashes``), or
        None when a bare value cannot be looked up."""
        return None

    def import_value(self, value: str, settings: MatchSettings) -> str:
        """A value as another tool writes it (e.g. python-threatexchange's serialisation) in this
        type's canonical form; raises SignalError. By default the canonical form itself."""
        return self.validate(value)

    def export_value(self, value: str) -> Optional[str]:
        """The value as python-threatexchange writes it, or None when it cannot be written so."""
        return value if self.threatexchange else None

    def explain(self, hashes, value: str, settings: MatchSettings, views=None) -> dict:
        """How a hashed item matched the indicator ``value``: e.g. which view and dihedral transform
        of a picture (PDQ), which frames of a video (vPDQ), which of the picture's embedding inputs
        (``views``: their names and vectors, when an embedding model ran). Empty when there is
        nothing to say."""
        return {}


class HexSignal(SignalType):
    """A fixed-width binary value written as lower-case hex."""

    nbytes: int

    def normalise(self, value: str) -> str:
        return parse_hex(value, 2 * self.nbytes, self.name)

    def check_column(self, values: pa.ChunkedArray) -> None:
        hex_to_codes(values, self.nbytes)


def parse_hex(value: str, length: int, what: str) -> str:
    """``value`` as ``length`` lower-case hex characters; raises SignalError naming ``what``."""
    v = value.strip().lower()
    if len(v) != length:
        raise SignalError(f"{what} value must be {length} hex characters, got {len(v)}")
    if not _HEX_RE.fullmatch(v):
        raise SignalError(f"{what} value is not hexadecimal")
    return v


_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i


def hex_to_codes(values: Union[pa.Array, pa.ChunkedArray, Sequence[str]], nbytes: int = 32) -> np.ndarray:
    """Lowercase hex strings of exactly ``2 * nbytes`` characters -> (n, nbytes) uint8, vectorised."""
    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pa.array(list(values), pa.string())
    if len(values) == 0:
        return np.zeros((0, nbytes), dtype=np.uint8)
    lengths = pc.binary_length(values)
    if pc.min(lengths).as_py() != 2 * nbytes or pc.max(lengths).as_py() != 2 * nbytes or values.null_count:
        raise SignalError(f"a {nbytes}-byte hash value is not {2 * nbytes} hex characters")
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    out = np.empty((len(values), nbytes), dtype=np.uint8)
    done = 0
    for chunk in chunks:
        if len(chunk):
            nib = _NIBBLE[_hex_chars(chunk, 2 * nbytes)]
            if (nib == 255).any():
                raise SignalError(f"invalid (or upper-case) hex in a {nbytes}-byte hash value")
            out[done:done + len(chunk)] = (nib[:, 0::2] << 4) | nib[:, 1::2]
            done += len(chunk)
    return out


def _hex_chars(chunk: pa.Array, width: int) -> np.ndarray:
    """The characters of a string array whose values are all ``width`` long, as an (n, width) uint8
    view of its data buffer (no Python object per value; contiguous, as every length is equal)."""
    if pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type):
        offset_type = np.dtype(np.int64 if pa.types.is_large_string(chunk.type) else np.int32)
        _, offsets, data = chunk.buffers()
        first = int(np.frombuffer(offsets, dtype=offset_type, count=1, offset=chunk.offset * offset_type.itemsize)[0])
        return np.frombuffer(data, dtype=np.uint8, count=len(chunk) * width, offset=first).reshape(len(chunk), width)
    chars = np.asarray(chunk.to_numpy(zero_copy_only=False), dtype=f"S{width}")
    return chars.view(np.uint8).reshape(len(chars), width)
