"""GuardMatches: the false-positive controls between ``MatchIndicators`` and ``ClassifyNew``/``Decide``
(docs/false-positives.md; the logic is :mod:`csadetect.indicators.controls`).

For every matched item, in this order:

1. **allow-list**: an item that also matches the allow-list (a second signed snapshot of known
   benign hashes, ``allow_list.*``) loses known matches by the rule of
   :func:`~csadetect.indicators.controls.suppress` (counter ``fp_allow_listed``: matches;
   ``fp_allow_listed_items``: items left without a known match);
2. **thresholds**: a match farther than its indicator's source or category threshold
   (``match.thresholds``) is dropped (``fp_threshold_dropped``);
3. **flood guard**: the item and the indicators it still matches are counted in the worker
   process's sliding window; an indicator that floods is quarantined (one warning line naming the
   indicator, ``flood_quarantined``). An item whose matches would confirm it only through
   quarantined indicators goes to the ``review`` output instead (``flood_held``; counted as
   ``Decide`` counts a known hit sent to review); every other item goes on to ``Decide``, which
   routes it as before. A quarantine ends with a new snapshot version or a release record
   (``csadetect quarantine release``) polled every ``flood_guard.poll_seconds``
   (``flood_released``).

An item whose matches all went is handed on without matches (then it is an item without a known
match, as if ``MatchIndicators`` had found none). The allow-list index, the window and the
release records are per worker process (``apache_beam.utils.shared.Shared``); an allow-list
version that does not verify is refused and the last good one stays (``allow_list_rejected``).
Nothing about an item reaches a log line or a counter name.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Optional

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.utils import shared

from csadetect.config.settings import AllowListSettings, FloodGuardSettings, MatchSettings
from csadetect.indicators.controls import AllowList, FloodGuard, ReleaseWatcher, Thresholds, suppress
from csadetect.indicators.snapshot import SnapshotError
from csadetect.signals.embedding import view_thresholds
from csadetect.transforms.common import counter, guarded, is_streaming, keep_alive
from csadetect.transforms.decide import REVIEW, needs_review

LOG = logging.getLogger(__name__)


class ProcessControls:
    """The controls' state of one worker process: the allow-list, the flood guard's window and
    the release records it has applied."""

    def __init__(self, allow_list: AllowListSettings, flood_guard: FloodGuardSettings, match: MatchSettings,
                 clock: Callable[[], float] = time.monotonic, keep: bool = False):
        self.allow = AllowList(allow_list, match, clock) if allow_list.path else None
        if self.allow is not None:
            LOG.info("allow-list version %s loaded (%d entries)", self.allow.version, len(self.allow.index))
        self.guard = FloodGuard.from_settings(flood_guard, clock) if flood_guard.enabled else None
        self.releases = (ReleaseWatcher(flood_guard.release_dir, flood_guard.poll_seconds, clock)
                         if self.guard is not None and flood_guard.release_dir else None)

    def poll(self) -> None:
        """A new allow-list version and new release records, when due."""
        if self.allow is not None and self.allow.due():
            self._refresh_allow_list()
        if self.releases is not None and self.releases.due():
            self._apply_releases()

    def _refresh_allow_list(self) -> None:
        before = self.allow.version
        try:
            changed = self.allow.refresh()
        except SnapshotError as exc:
            counter("allow_list_rejected").inc()
            LOG.error("allow-list snapshot refused: %s; keeping version %s", exc, before)
            return
        except Exception as exc:  # storage hiccup: keep the last good version
            LOG.warning("allow-list poll failed (%s); keeping version %s", type(exc).__name__, before)
            return
        if changed:
            counter("allow_list_swapped").inc()
            LOG.info("allow-list swapped from version %s to %s (%d entries)", before, self.allow.version,
                     len(self.allow.index))

    def _apply_releases(self) -> None:
        try:
            ids, bad = self.releases.poll()
        except Exception as exc:  # storage hiccup: try again at the next poll
            LOG.warning("flood guard: reading release records failed (%s)", type(exc).__name__)
            return
        if bad:
            counter("flood_release_unreadable").inc(bad)
            LOG.warning("flood guard: %d file(s) in %s are not release records", bad, self.releases.release_dir)
        for ident in ids:
            if self.guard.release(ident):  # only a quarantined indicator (an id of the snapshot) is named
                counter("flood_released").inc()
                LOG.warning("flood guard: indicator %s released by a release record: its matches confirm again", ident)


class _Holder:
    """Weak-referenceable wrapper that Shared can cache per process."""

    def __init__(self, controls: ProcessControls):
        self.controls = controls


class GuardMatchesFn(beam.DoFn):
    def __init__(self, match: MatchSettings, allow_list: AllowListSettings, flood_guard: FloodGuardSettings,
                 shared_handle: shared.Shared, embedding=None, auto_confirm_similarity=None,
                 clock: Callable[[], float] = time.monotonic, keep: bool = False):
        self._match = match
        self._allow_list = allow_list
        self._flood_guard = flood_guard
        self._shared = shared_handle
        self._embedding = embedding  # csadetect.models.embedding.EmbeddingSpec or None
        self._auto_similarity = auto_confirm_similarity
        self._clock = clock  # tests pass a fake one
        self._keep = keep  # hold the per-process controls between bundles (streaming: common.keep_alive)
        self._thresholds = Thresholds.from_settings(match)
        self._controls: Optional[ProcessControls] = None

    def setup(self):
        tag = "|".join(s.model_dump_json() for s in (self._allow_list, self._flood_guard, self._match))
        holder = self._shared.acquire(
            lambda: _Holder(ProcessControls(self._allow_list, self._flood_guard, self._match, self._clock)), tag=tag)
        self._holder = holder  # keep the shared object alive while this DoFn lives ...
        if self._keep:
            keep_alive(f"guard|{tag}", holder)  # ... and between bundles: the flood guard's window lives on
        self._controls = holder.controls

    def _allowed(self, item):
        spec = self._embedding
        if spec is not None and item.embeddings is not None and item.image is not None:
            thresholds = view_thresholds(item.views, spec.threshold, len(item.embeddings))
            return self._controls.allow.matches(item.image, None, item.embeddings, spec.version, thresholds)
        return self._controls.allow.matches(item.image, item.video)

    def _held(self, matched, held) -> bool:
        """Whether the item's matches confirm it only through quarantined indicators."""
        if not held or needs_review(matched, self._match, self._auto_similarity):
            return False  # nothing quarantined, or Decide sends it to review anyway
        rest = tuple(m for m in matched.matches if m.indicator_id not in held)
        return needs_review(dataclasses.replace(matched, matches=rest), self._match, self._auto_similarity)

    # the dead letter of a failure here travels on the main output to Decide (as MatchIndicators'
    # do), which hands it to the dead letters; DeadLetters from MatchIndicators pass on untouched
    @guarded("guard", to_main=True)
    def process(self, matched):
        controls = self._controls
        controls.poll()
        matches = list(matched.matches)
        if matches and controls.allow is not None:
            matches, suppressed = suppress(matches, self._allowed(matched.item))
            if suppressed:
                counter("fp_allow_listed").inc(len(suppressed))
                if not matches:
                    counter("fp_allow_listed_items").inc()
        if matches and self._thresholds:
            matches, dropped = self._thresholds.apply(matches)
            if dropped:
                counter("fp_threshold_dropped").inc(len(dropped))
        if len(matches) != len(matched.matches):
            matched = dataclasses.replace(matched, matches=tuple(matches))
        held = frozenset()
        if controls.guard is not None:
            seen = controls.guard.observe([m.indicator_id for m in matches], matched.index_version)
            for record in seen.quarantined:
                counter("flood_quarantined").inc()
                LOG.warning(
                    "flood guard: indicator %s quarantined (snapshot version %s): %d matches among the %d items "
                    "in this worker's %gs window (share %.4f > %g); its matches go to review until a new snapshot "
                    "version or `csadetect quarantine release %s`",
                    record.indicator_id, record.version, record.matches, record.items,
                    controls.guard.window_seconds, record.share, controls.guard.share, record.indicator_id)
            for ident in seen.released:
                counter("flood_released").inc()
                LOG.warning("flood guard: indicator %s released by snapshot version %s", ident, matched.index_version)
            held = seen.held
        if self._held(matched, held):
            counter("flood_held").inc()
            counter("hit").inc()  # as Decide counts a known hit it sends to review
            counter(f"hit_known_{matched.item.event.kind}").inc()
            counter("hit_review").inc()
            yield pvalue.TaggedOutput(REVIEW, matched)
            return
        yield matched


class GuardMatches(beam.PTransform):
    """Outputs: main (``matched``) = MatchedItem (and dead letters) for ``ClassifyNew``/``Decide``;
    ``review`` = MatchedItem held for review by the flood guard. Raises ConfigError (one line) at
    construction for a threshold on a kind that is not one (``match.thresholds``)."""

    def __init__(self, match: MatchSettings, allow_list: AllowListSettings, flood_guard: FloodGuardSettings,
                 embedding=None, auto_confirm_similarity=None):
        super().__init__()
        self._args = (match, allow_list, flood_guard)
        self._embedding = embedding
        self._auto_similarity = auto_confirm_similarity
        Thresholds.from_settings(match)  # fail here, while the graph is built
        self._shared = shared.Shared()

    def expand(self, matched):
        fn = GuardMatchesFn(*self._args, self._shared, self._embedding, self._auto_similarity,
                            keep=is_streaming(matched))
        return matched | "Guard" >> beam.ParDo(fn).with_outputs(REVIEW, main="matched")
