"""Signal types: one class per kind of indicator value behind one interface, and the registry.

The interface is :class:`~csadetect.signals.base.SignalType` (with its index,
:class:`~csadetect.signals.base.SignalIndex`); each kind has its own module: :mod:`.pdq`,
:mod:`.vpdq`, :mod:`.md5`, :mod:`.sha1`, :mod:`.sha256` (the last three on :mod:`.digest`) and
:mod:`.embedding`. Indicator rows, snapshots, the index, ``csadetect hash``, ``indicators
from-media``/``build``, ``match`` and the pipeline all go through this registry, so adding a kind
is one new module and one ``register(...)`` line below.

The order of registration is the order of the kinds in a snapshot (PDQ first), in ``csadetect
hash`` output and in ``indicators info`` counts. Matches and the rows of one file list the
perceptual kinds first, then the exact ones (:func:`ordered`); reports list the strongest evidence
first (``SignalType.evidence``).
"""
from __future__ import annotations

from csadetect.signals.base import Hit, Media, SignalError, SignalIndex, SignalType, hex_to_codes
from csadetect.signals.embedding import EmbeddingSignal
from csadetect.signals.md5 import Md5Signal
from csadetect.signals.pdq import PdqSignal
from csadetect.signals.sha1 import Sha1Signal
from csadetect.signals.sha256 import Sha256Signal
from csadetect.signals.vpdq import VpdqSignal

__all__ = ["SIGNAL_TYPES", "Hit", "Media", "SignalError", "SignalIndex", "SignalType", "describe", "digests",
           "for_content", "for_query", "get", "hex_to_codes", "names", "ordered", "register"]

SIGNAL_TYPES: dict[str, SignalType] = {}


def register(signal: SignalType) -> SignalType:
    """Add a signal type (an instance); its name becomes a valid ``kind``."""
    if signal.name in SIGNAL_TYPES:
        raise ValueError(f"signal type {signal.name!r} is already registered")
    SIGNAL_TYPES[signal.name] = signal
    return signal


def get(name: str) -> SignalType:
    """The signal type of a kind; raises SignalError for an unknown one."""
    try:
        return SIGNAL_TYPES[name]
    except KeyError:
        raise SignalError(f"unknown kind {name!r} (expected one of {', '.join(SIGNAL_TYPES)})") from None


def names() -> tuple[str, ...]:
    """Every kind, in registration order."""
    return tuple(SIGNAL_TYPES)


def ordered() -> list[SignalType]:
    """The types with the perceptual ones first, then the exact ones, each in registration order:
    the order of the matches of one item and of the indicator rows of one file."""
    return sorted(SIGNAL_TYPES.values(), key=lambda signal: signal.exact)


def for_content(content: str) -> list[SignalType]:
    """The types computed from ``content`` ("image" or "video"), in :func:`ordered` order."""
    return [signal for signal in ordered() if content in signal.content]


def for_query(content: str) -> list[SignalType]:
    """The types an item of ``content`` is looked up with: those computed from it and those whose
    rows it is also compared with (``SignalType.also_queried_by``), in :func:`ordered` order."""
    return [signal for signal in ordered() if content in signal.content or content in signal.also_queried_by]


def digests() -> tuple[str, ...]:
    """The hashlib algorithms of the digest types: what files' bytes are hashed with."""
    return tuple(signal.name for signal in SIGNAL_TYPES.values() if signal.digest)


def describe(hashes) -> dict:
    """What ``csadetect hash`` prints for a file's hashes (an ImageHashes or VideoHashes)."""
    out: dict = {}
    for signal in SIGNAL_TYPES.values():
        if signal.from_media and hashes.content in signal.content:
            out.update(signal.describe(hashes))
    return out


register(PdqSignal())
register(Md5Signal())
register(Sha256Signal())
register(VpdqSignal())
register(EmbeddingSignal())
register(Sha1Signal())
