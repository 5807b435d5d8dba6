"""MatchIndicators: look hashed items up in the signed indicator database.

The FAISS indexes are loaded once per worker process (``apache_beam.utils.shared.Shared``) and
swapped atomically when a new signed snapshot version appears (polled every
``indicators.poll_seconds``). A snapshot that does not verify is refused and the last good one
stays in use."""
from __future__ import annotations

import dataclasses
import logging
import threading
import time

import apache_beam as beam
import faiss
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from csadetect.config.settings import IndicatorSettings, MatchSettings
from csadetect.indicators.index import load_index
from csadetect.indicators.snapshot import SnapshotError
from csadetect.reports.hits import MatchedItem
from csadetect.transforms.common import NAMESPACE, counter, guarded

LOG = logging.getLogger(__name__)


class LiveIndex:
    """Holds the current IndicatorIndex of one worker process and refreshes it when due."""

    def __init__(self, indicators: IndicatorSettings, match: MatchSettings, clock=time.monotonic):
        self._settings = indicators
        self._match = match
        self._clock = clock
        self._lock = threading.Lock()
        self.index = load_index(indicators.path, indicators.public_key, match, min_version=indicators.min_version)
        self._next_poll = clock() + indicators.poll_seconds
        LOG.info("indicator snapshot version %s loaded (%d indicators)", self.index.version, len(self.index))

    @property
    def version(self):
        return self.index.version

    def current(self):
        if self._clock() >= self._next_poll:
            self.refresh()
        return self.index

    def refresh(self) -> bool:
        """Move to the newest verified snapshot if there is one (deltas are applied to the live
        index, no full rebuild). Returns True when the version changed."""
        with self._lock:
            self._next_poll = self._clock() + self._settings.poll_seconds
            before = self.index.version
            try:
                changed = self.index.refresh(self._settings.path, self._settings.public_key, self._settings.min_version)
            except SnapshotError as exc:
                counter("snapshot_rejected").inc()
                LOG.error("indicator snapshot refused: %s; keeping version %s", exc, before)
                return False
            except Exception as exc:  # storage hiccup: keep serving the last good version
                LOG.warning("indicator snapshot poll failed (%s); keeping version %s", type(exc).__name__, before)
                return False
            if changed:
                counter("snapshot_swapped").inc()
                LOG.info("indicator snapshot swapped from version %s to %s (%d indicators)",
                         before, self.index.version, len(self.index))
            return changed


class _Holder:
    """Weak-referenceable wrapper that Shared can cache per process."""

    def __init__(self, live):
        self.live = live


class MatchIndicatorsFn(beam.DoFn):
    def __init__(self, indicators: IndicatorSettings, match: MatchSettings, shared_handle: shared.Shared,
                 embedding=None):
        self._indicators = indicators
        self._match = match
        self._shared = shared_handle
        self._embedding = embedding  # csadetect.models.embedding.EmbeddingSpec or None
        self._live = None

    def setup(self):
        if self._match.faiss_threads:
            faiss.omp_set_num_threads(self._match.faiss_threads)
        tag = f"{self._indicators.path}|{self._indicators.public_key}|{self._match.model_dump_json()}"
        holder = self._shared.acquire(lambda: _Holder(LiveIndex(self._indicators, self._match)), tag=tag)
        self._holder = holder  # keep the shared object alive while this DoFn lives
        self._live = holder.live
        self._version_gauge = Metrics.gauge(NAMESPACE, "indicator_version")  # the progress line's index version

    # no tagged outputs on this step (adding them renames it on Dataflow): a dead letter travels on
    # the main output to Decide, which passes it to its dead-letter output
    @guarded("match", to_main=True)
    def process(self, item):
        index = self._live.current()
        self._version_gauge.set(int(index.version))
        if item.event.order_for("known") is None:
            # no active detection order covers known-material detection on this service
            yield MatchedItem(item=item, matches=(), index_version=index.version)
            return
        if item.image is not None:
            spec = self._embedding
            if spec is not None and item.embeddings is not None:
                matches = index.match_image(item.image, item.embeddings, spec.version, spec.threshold)
            else:
                matches = index.match_image(item.image)
            if item.embeddings is not None:
                item = dataclasses.replace(item, embeddings=item.embeddings[:1])  # the image's own vector, for ClassifyNew
        else:
            matches = index.match_video(item.video)
        yield MatchedItem(item=item, matches=tuple(matches), index_version=index.version)


class MatchIndicators(beam.PTransform):
    """``embedding`` (an EmbeddingSpec): also look items' embedding vectors up, at its threshold."""

    def __init__(self, indicators: IndicatorSettings, match: MatchSettings, embedding=None):
        super().__init__()
        self._indicators = indicators
        self._match = match
        self._embedding = embedding
        self._shared = shared.Shared()

    def expand(self, hashed):
        fn = MatchIndicatorsFn(self._indicators, self._match, self._shared, self._embedding)
        return hashed | "Lookup" >> beam.ParDo(fn)
