"""LiveIndex: the indicator index of one worker process, kept fresh off the matching path.

A daemon thread per process polls the snapshot location every ``indicators.poll_seconds``. When a
newer signed version is there, it verifies it and prepares the new :class:`IndicatorIndex` (the
deltas applied to a copy, or the full snapshot loaded) while queries go on against the current
one; the prepared index then replaces the current one with a single assignment. A query holds one
index object for its whole lookup, and that object never changes: it answers from the old
version or from the new one, never from a mix, and matching never waits for a swap. A version
that does not verify is refused and the last good one stays in service; a storage error just
waits for the next poll.

Plain Python, no Beam: the thread cannot record Beam metrics (they belong to a bundle's thread),
so swaps and refusals are kept as pending counts (:meth:`LiveIndex.take_counts`) that the Beam
stage (:mod:`csadetect.transforms.match`) adds to its counters ``snapshot_swapped`` and
``snapshot_rejected``. docs/streaming-local.md "Indicator freshness" has the measured delay.
"""
from __future__ import annotations

import collections
import copy
import logging
import threading
import weakref
from typing import Callable, Optional

from csadetect.config.settings import IndicatorSettings, MatchSettings
from csadetect.indicators.index import IndicatorIndex, load_index
from csadetect.indicators.snapshot import SnapshotError

LOG = logging.getLogger(__name__)

SWAPPED = "snapshot_swapped"
REJECTED = "snapshot_rejected"


def newer_index(index: IndicatorIndex, settings: IndicatorSettings) -> Optional[IndicatorIndex]:
    """A new index at the database's highest signed version, or None when ``index`` is already
    there. ``index`` itself is left unchanged (its refresh runs on a shallow copy, which replaces
    only the copy's state). Raises SnapshotError for a version that does not verify, a rollback or
    one below ``settings.min_version``."""
    candidate = copy.copy(index)
    if not candidate.refresh(settings.path, settings.public_key, settings.min_version):
        return None
    return candidate


Prepare = Callable[[IndicatorIndex, IndicatorSettings], Optional[IndicatorIndex]]


class LiveIndex:
    """The current :class:`IndicatorIndex` of one worker process (``current()``, never blocks) and
    its refresh: ``refresh()`` once, or ``start()`` a daemon thread that refreshes every
    ``poll_seconds`` until ``stop()`` or until this object is garbage-collected.

    ``prepare`` makes the next index from the current one (default :func:`newer_index`); tests
    pass a slower one to hold a refresh half-way."""

    def __init__(self, indicators: IndicatorSettings, match: MatchSettings, *, prepare: Prepare = newer_index):
        self._settings = indicators
        self._prepare = prepare
        self._refreshing = threading.Lock()  # one refresh at a time; queries never take it
        self._counts_lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.index = load_index(indicators.path, indicators.public_key, match, min_version=indicators.min_version,
                                cache_dir=indicators.cache_dir)
        LOG.info("indicator snapshot version %s loaded (%d indicators)", self.index.version, len(self.index))

    @property
    def version(self) -> int:
        return self.index.version

    def current(self) -> IndicatorIndex:
        """The index to answer one item with. Hold it for the whole lookup: it is never modified,
        a swap only replaces which object ``current()`` returns."""
        return self.index

    def refresh(self) -> bool:
        """Move to the newest verified version if there is one (deltas applied without a full
        rebuild). Returns True when the index was swapped. A version that does not verify is
        refused (logged, counted as ``snapshot_rejected``); any other error (storage) is logged;
        in both cases the last good version stays in service."""
        with self._refreshing:
            before = self.index
            try:
                new = self._prepare(before, self._settings)
            except SnapshotError as exc:
                self._count(REJECTED)
                LOG.error("indicator snapshot refused: %s; keeping version %s", exc, before.version)
                return False
            except Exception as exc:  # storage hiccup: keep serving the last good version
                LOG.warning("indicator snapshot poll failed (%s); keeping version %s", type(exc).__name__, before.version)
                return False
            if new is None or new.version == before.version:
                return False
            self.index = new  # the swap: one assignment
            self._count(SWAPPED)
            LOG.info("indicator snapshot swapped from version %s to %s (%d indicators)",
                     before.version, new.version, len(new))
            return True

    # ------------------------------------------------------------------ counts for the Beam stage

    def _count(self, name: str) -> None:
        with self._counts_lock:
            self._counts[name] += 1

    def take_counts(self) -> dict[str, int]:
        """Swaps and refusals since the last call (``{"snapshot_swapped": n, ...}``), each handed
        out once even when several threads of the process ask."""
        if not self._counts:  # the common case, without the lock
            return {}
        with self._counts_lock:
            out, self._counts = dict(self._counts), collections.Counter()
        return out

    # ------------------------------------------------------------------ the polling thread

    def start(self) -> "LiveIndex":
        """Start the polling thread (once; later calls do nothing). Returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=_poll, args=(weakref.ref(self), self._stop, self._settings.poll_seconds),
                name="csadetect-indicator-poll", daemon=True)
            weakref.finalize(self, self._stop.set)  # collected: the thread wakes up and ends
            self._thread.start()
        return self

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop the polling thread; a refresh under way finishes (and swaps) first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def polling(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def _poll(ref: "weakref.ref[LiveIndex]", stop: threading.Event, seconds: float) -> None:
    """The polling thread's loop. It holds the LiveIndex only while refreshing, so the object can
    be collected (and the thread end) once its last user lets go."""
    while not stop.wait(seconds):
        live = ref()
        if live is None:
            return
        live.refresh()  # catches and logs every Exception: the thread lives on
        del live
