"""False-positive controls on known-material matches (docs/false-positives.md).

Plain Python under the ``GuardMatches`` step (:mod:`csadetect.transforms.guard`), which applies
them in this order to the matches of every item that ``MatchIndicators`` found:

1. the allow-list (:class:`AllowList`, :func:`suppress`): a second signed snapshot, in the indicator
   database's format, of hashes the provider knows to be benign. An item that matches it loses
   known matches by the rule of :func:`suppress`;
2. per-source and per-category thresholds (:class:`Thresholds`): a match farther than the
   strictest threshold that applies to its indicator is dropped;
3. the flood guard (:class:`FloodGuard`): an indicator whose matches exceed a share of the items
   seen in a sliding window is quarantined; its matches then go to human review instead of
   confirming on their own, until a new snapshot version is loaded or a release record
   (:func:`write_release`, ``csadetect quarantine release``; read by :class:`ReleaseWatcher`) lifts it.

Nothing here knows about Beam or about events: the cores see matches, indicator ids (the EU
Centre's, not user data) and counts.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import re
import secrets
import threading
import time
from typing import Callable, Iterable, Mapping, Optional, Sequence

from csadetect.config.settings import AllowListSettings, ConfigError, FloodGuardSettings, MatchSettings
from csadetect.core import fs
from csadetect.core.timeutil import utc_iso, utc_now
from csadetect.indicators.index import IndicatorIndex, Match, load_index
from csadetect.indicators.rows import MAX_ID_BYTES
from csadetect.signals import SIGNAL_TYPES, get

# ------------------------------------------------------------------------------------ allow-list


def suppress(matches: Sequence[Match], allowed: Sequence[Match]) -> tuple[list[Match], list[Match]]:
    """``(kept, suppressed)``: the item's known ``matches`` once its ``allowed`` matches (against
    the allow-list) have taken their share. The rule:

    * an allowed **exact** match (an MD5, SHA-1 or SHA-256 digest: the uploaded bytes are a file
      the provider declared benign) suppresses **every** known match of the item;
    * an allowed **perceptual** match of kind K (pdq, vpdq, embedding, within the allow-list's
      threshold) suppresses the item's known matches **of kind K** only: a picture that looks like
      an allowed one is not thereby a byte-identical copy of a known file, so exact known matches
      and perceptual matches of other kinds stay.
    """
    if not allowed:
        return list(matches), []
    if any(get(a.kind).exact for a in allowed):
        return [], list(matches)
    kinds = {a.kind for a in allowed}
    kept = [m for m in matches if m.kind not in kinds]
    return kept, [m for m in matches if m.kind in kinds]


class AllowList:
    """The allow-list of one worker process: its verified snapshot's index, brought to the newest
    signed version every ``poll_seconds`` by :meth:`refresh` (deltas applied; a version that does
    not verify, or a rollback, raises SnapshotError and the last good one stays)."""

    def __init__(self, settings: AllowListSettings, match: MatchSettings, clock: Callable[[], float] = time.monotonic):
        if not settings.path:
            raise ConfigError("allow_list.path is not set")
        self.settings = settings
        if settings.pdq_threshold is not None:
            match = match.model_copy(update={"pdq_threshold": settings.pdq_threshold})
        self._match = match
        self._clock = clock
        self._lock = threading.Lock()
        self.index: IndicatorIndex = load_index(settings.path, settings.public_key, match, min_version=settings.min_version)
        self._next_poll = clock() + settings.poll_seconds

    @property
    def version(self) -> int:
        return self.index.version

    def due(self) -> bool:
        return self._clock() >= self._next_poll

    def refresh(self) -> bool:
        """Move to the newest verified allow-list version; True when it changed. Raises
        SnapshotError (or an OSError of the storage) with the last good version kept."""
        with self._lock:
            self._next_poll = self._clock() + self.settings.poll_seconds
            return self.index.refresh(self.settings.path, self.settings.public_key, self.settings.min_version)

    def matches(self, image=None, video=None, embeddings=None, embedding_version: Optional[str] = None,
                embedding_threshold: Optional[float] = None) -> list[Match]:
        """The allow-list entries an item's hashes match (an ImageHashes or VideoHashes; for
        images also their embedding vectors, at the embedding model's threshold)."""
        index = self.index
        if video is not None:
            return index.match_video(video)
        if embeddings is not None and embedding_threshold is not None:
            return index.match_image(image, embeddings, embedding_version, embedding_threshold)
        return index.match_image(image)


# ------------------------------------------------------------------------------------ thresholds


def _distance_kinds() -> list[str]:
    """The kinds whose matches have a distance to limit (the exact digests always match at 0)."""
    return [name for name, signal in SIGNAL_TYPES.items() if not signal.exact]


class Thresholds:
    """Per-source and per-category maximum distances (``match.thresholds``). ``limit(match)`` is
    the strictest (smallest) threshold that applies to the match's indicator, by its source and
    by its category, for the match's kind; a match farther than it is dropped (:meth:`keep`).
    They can only tighten: the index never returns a match beyond the global threshold."""

    def __init__(self, by_source: Mapping[str, Mapping[str, float]] = (),
                 by_category: Mapping[str, Mapping[str, float]] = ()):
        self.by_source = {name: dict(limits) for name, limits in dict(by_source).items()}
        self.by_category = {name: dict(limits) for name, limits in dict(by_category).items()}

    @classmethod
    def from_settings(cls, match: MatchSettings) -> "Thresholds":
        """From ``match.thresholds``; raises ConfigError (one line) for a kind that is not a
        registered signal type, or an exact one (a threshold on a distance that is always 0)."""
        settings = match.thresholds
        kinds = _distance_kinds()
        for group in ("by_source", "by_category"):
            for name, limits in getattr(settings, group).items():
                for kind in limits:
                    if kind not in kinds:
                        why = ("matches exactly (distance 0): a threshold does not apply" if kind in SIGNAL_TYPES
                               else "is not a kind")
                        raise ConfigError(f"invalid config at match.thresholds.{group}.{name}.{kind}: {kind!r} {why} "
                                          f"(kinds with a distance: {', '.join(kinds)})")
        return cls(settings.by_source, settings.by_category)

    def __bool__(self) -> bool:
        return bool(self.by_source or self.by_category)

    def limit(self, match: Match) -> Optional[float]:
        """The strictest threshold that applies to ``match``, or None."""
        found = [limits[match.kind] for limits in (self.by_source.get(match.source), self.by_category.get(match.category))
                 if limits and match.kind in limits]
        return min(found) if found else None

    def keep(self, match: Match) -> bool:
        limit = self.limit(match)
        return limit is None or match.distance <= limit

    def apply(self, matches: Iterable[Match]) -> tuple[list[Match], list[Match]]:
        """``(kept, dropped)``."""
        kept, dropped = [], []
        for m in matches:
            (kept if self.keep(m) else dropped).append(m)
        return kept, dropped

    def without_effect(self, match: MatchSettings) -> list[str]:
        """``group.name.kind`` of the thresholds looser than the global one of their kind (they
        change nothing: the index never returns those matches), for a start-up warning."""
        out = []
        for group in ("by_source", "by_category"):
            for name, limits in getattr(self, group).items():
                for kind, limit in limits.items():
                    overall = get(kind).threshold(match)
                    if overall is not None and limit >= overall:
                        out.append(f"match.thresholds.{group}.{name}.{kind} ({limit:g} >= {overall:g})")
        return out


# ------------------------------------------------------------------------------------ flood guard


@dataclasses.dataclass(frozen=True)
class Quarantine:
    """One quarantined indicator: when (the guard's clock), under which snapshot version, and the
    window's counts that tripped it."""

    indicator_id: str
    since: float
    version: Optional[int]
    matches: int
    items: int

    @property
    def share(self) -> float:
        return self.matches / self.items if self.items else 0.0


@dataclasses.dataclass(frozen=True)
class Observed:
    """What :meth:`FloodGuard.observe` found for one item: the indicators it quarantined now, the
    ones a newer snapshot version released, and which of the item's indicators are quarantined."""

    quarantined: tuple[Quarantine, ...] = ()
    released: tuple[str, ...] = ()
    held: frozenset = frozenset()


class FloodGuard:
    """A sliding window over one worker process's traffic: the items seen and, per indicator id,
    the items it matched. The window is ``buckets`` slices of ``window_seconds / buckets``; an
    indicator is quarantined when, after an item, its matches in the window are at least
    ``min_matches`` and more than ``share`` of the items in the window. A quarantine ends when an
    item matched against a newer snapshot version than the one it was made under arrives
    (:meth:`observe`), or by :meth:`release`; either also clears the indicator's counts, so it has to
    flood again to be quarantined again. Thread-safe."""

    def __init__(self, window_seconds: float, share: float, min_matches: int, buckets: int = 60,
                 clock: Callable[[], float] = time.monotonic):
        if window_seconds <= 0 or not 0 < share <= 1 or min_matches < 1 or buckets < 1:
            raise ValueError("window_seconds > 0, 0 < share <= 1, min_matches >= 1 and buckets >= 1")
        self.window_seconds = float(window_seconds)
        self.share = float(share)
        self.min_matches = int(min_matches)
        self._width = self.window_seconds / buckets
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: collections.deque = collections.deque()  # [slice number, items, Counter of ids]
        self._items = 0
        self._matches: collections.Counter = collections.Counter()
        self._quarantined: dict[str, Quarantine] = {}

    @classmethod
    def from_settings(cls, settings: FloodGuardSettings, clock: Callable[[], float] = time.monotonic) -> "FloodGuard":
        return cls(settings.window_seconds, settings.share, settings.min_matches, clock=clock)

    @property
    def quarantined(self) -> dict[str, Quarantine]:
        with self._lock:
            return dict(self._quarantined)

    def counts(self) -> tuple[int, dict[str, int]]:
        """``(items, {indicator id: matches})`` in the window now."""
        with self._lock:
            self._expire(self._clock())
            return self._items, dict(+self._matches)

    def _expire(self, now: float) -> None:
        oldest = int((now - self.window_seconds) // self._width)
        while self._buckets and self._buckets[0][0] <= oldest:
            _, items, ids = self._buckets.popleft()
            self._items -= items
            for ident, count in ids.items():
                left = self._matches[ident] - count
                if left > 0:
                    self._matches[ident] = left
                else:
                    self._matches.pop(ident, None)

    def _forget(self, ident: str) -> None:
        self._matches.pop(ident, None)
        for _, _, ids in self._buckets:
            ids.pop(ident, None)

    def observe(self, indicator_ids: Iterable[str], version: Optional[int] = None) -> Observed:
        """Count one item and the indicators it matched (each once), matched against snapshot
        ``version``; quarantine those that now flood."""
        ids = set(indicator_ids)
        now = self._clock()
        with self._lock:
            released = []
            if version is not None:
                released = [i for i, q in self._quarantined.items() if q.version is not None and q.version < version]
                for ident in released:
                    del self._quarantined[ident]
                    self._forget(ident)
            self._expire(now)
            number = int(now // self._width)
            if not self._buckets or self._buckets[-1][0] != number:
                self._buckets.append([number, 0, collections.Counter()])
            bucket = self._buckets[-1]
            bucket[1] += 1
            bucket[2].update(ids)
            self._items += 1
            self._matches.update(ids)
            new = []
            for ident in sorted(ids - self._quarantined.keys()):
                count = self._matches[ident]
                if count >= self.min_matches and count > self.share * self._items:
                    record = Quarantine(ident, now, version, count, self._items)
                    self._quarantined[ident] = record
                    new.append(record)
            held = frozenset(ids & self._quarantined.keys())
        return Observed(tuple(new), tuple(sorted(released)), held)

    def release(self, indicator_id: str) -> bool:
        """Lift the quarantine of ``indicator_id`` (and clear its counts); False when it was not
        quarantined."""
        with self._lock:
            if self._quarantined.pop(indicator_id, None) is None:
                return False
            self._forget(indicator_id)
            return True


# ------------------------------------------------------------------------------------ releases

RELEASE_GLOB = "release-*.json"
_ID_TEXT = re.compile(r"[^\s\x00-\x1f\x7f]+")  # the indicator id rule of csadetect.indicators.rows


def check_indicator_id(value: str) -> str:
    """``value`` when it can be an indicator id (1-128 bytes, no whitespace or control
    characters); else ValueError."""
    if not isinstance(value, str) or not _ID_TEXT.fullmatch(value) or len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise ValueError(f"an indicator id is 1-{MAX_ID_BYTES} bytes without spaces or control characters")
    return value


def write_release(release_dir: str, indicator_id: str, note: str = "", now=None) -> dict:
    """Write one release record for ``indicator_id`` under ``release_dir`` (local path or any Beam
    filesystem): a new file ``release-<UTC time>-<random>.json`` that is never overwritten.
    Returns the record with its ``path``."""
    check_indicator_id(indicator_id)
    when = now or utc_now()
    record = {"indicator_id": indicator_id, "released_at": utc_iso(when), "note": note or ""}
    name = f"release-{when:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.json"
    path = fs.join(release_dir, name)
    data = (json.dumps(record, sort_keys=True) + "\n").encode()
    if fs.via_beam(path):
        if fs.exists(path):
            raise FileExistsError(path)
        with fs.open_write(path) as fh:
            fh.write(data)
    else:
        os.makedirs(release_dir, exist_ok=True)
        with open(path, "xb") as fh:  # exclusive: an existing record is never replaced
            fh.write(data)
    return record | {"path": path}


def _release_files(release_dir: str) -> list[str]:
    if not fs.via_beam(release_dir):
        if not os.path.isdir(release_dir):
            return []
        return sorted(os.path.join(release_dir, n) for n in os.listdir(release_dir)
                      if n.startswith("release-") and n.endswith(".json"))
    return sorted(m.path for m in fs.match(fs.join(release_dir, RELEASE_GLOB)))


def read_release(path: str) -> Optional[dict]:
    """A release record, or None when it is not one (unreadable JSON, no valid indicator id)."""
    try:
        record = json.loads(fs.read_text(path))
        check_indicator_id(record["indicator_id"])
    except (ValueError, KeyError, TypeError):
        return None
    return record if isinstance(record, dict) else None


def read_releases(release_dir: str) -> list[dict]:
    """Every release record under ``release_dir``, oldest first (each with its ``path``); files
    that are not records are left out."""
    out = []
    for path in _release_files(release_dir):
        record = read_release(path)
        if record is not None:
            out.append(record | {"path": path})
    return out


class ReleaseWatcher:
    """The release records one worker process has not applied yet. The records present when it
    starts count as seen (they released quarantines of earlier processes); :meth:`poll` returns the
    indicator ids of the records written since, once each, and the number of files that were not
    records."""

    def __init__(self, release_dir: str, poll_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.release_dir = release_dir
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: Optional[set] = None
        try:
            self._seen = set(_release_files(release_dir))
        except OSError:  # storage not reachable now: the first poll that can list it is the start
            pass
        self._next_poll = clock() + poll_seconds

    def due(self) -> bool:
        return self._clock() >= self._next_poll

    def poll(self) -> tuple[list[str], int]:
        with self._lock:
            self._next_poll = self._clock() + self.poll_seconds
            files = _release_files(self.release_dir)
            if self._seen is None:
                self._seen = set(files)
                return [], 0
            ids, bad = [], 0
            for path in files:
                if path in self._seen:
                    continue
                self._seen.add(path)
                record = read_release(path)
                if record is None:
                    bad += 1
                else:
                    ids.append(record["indicator_id"])
            return ids, bad

