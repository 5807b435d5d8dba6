"""MatchIndicators: look hashed items up in the signed indicator database.

The thin Beam part only. The indexes live in one :class:`~csadetect.indicators.live.LiveIndex`
per worker process (``apache_beam.utils.shared.Shared``), whose daemon thread polls for a new
signed snapshot version every ``indicators.poll_seconds``, prepares it off the matching path and
swaps it in with one assignment: matching never pauses for a swap, and each item is answered by one
version. A snapshot that does not verify is refused and the last good one stays in use. The
thread's swaps and refusals reach the counters ``snapshot_swapped`` and ``snapshot_rejected``
from here (Beam metrics belong to a bundle's thread). In streaming runs the process also holds its
LiveIndex between bundles (:func:`csadetect.transforms.common.keep_alive`), so it is loaded once
and then only swapped.

Deferred region views: an image's query-side region views are embedded here (the model shared
with EmbedImages, one copy per process), after its own vectors, so that they can be cut from the
mirrored image when its mirror lies nearer some embedding row, or from both when neither is clearly
nearer, and also from the image or its mirror turned a quarter, a half or three quarters when that lies
clearly nearer than both and near some row (``match.embedding_query_turns``, ``match.embedding_query_turn_gate``;
``IndicatorIndex.region_orientations``).
With ``match.embedding_query_region_gate`` set, only an image that nothing matched and one of whose
own vectors lies within the gate of some row gets them; every other image skips them. Either way
the picture they are cut from is dropped here; the counter ``region_views_embedded`` counts the
images that needed them, ``region_views_mirrored`` those cut from the mirror alone,
``region_views_both_ways`` those cut more than one way (96 more model inputs each way) and
``region_views_turned`` those cut from a turn of the image too."""
from __future__ import annotations

import dataclasses
import logging

import apache_beam as beam
import faiss
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from csadetect.config.settings import IndicatorSettings, MatchSettings
from csadetect.indicators.live import LiveIndex
from csadetect.reports.hits import MatchedItem
from csadetect.signals.embedding import (MIRROR_SUFFIX, TURN_SUFFIXES, region_gate_similarity, region_orientation,
                                         view_thresholds)
from csadetect.transforms.common import NAMESPACE, counter, guarded, is_streaming, keep_alive
from csadetect.transforms.embed import loaded_model, region_vectors, turned_vectors

LOG = logging.getLogger(__name__)

__all__ = ["LiveIndex", "MatchIndicators", "MatchIndicatorsFn"]  # LiveIndex: its old import path still works


class _Holder:
    """Weak-referenceable wrapper that Shared can cache per process."""

    def __init__(self, live):
        self.live = live


class MatchIndicatorsFn(beam.DoFn):
    def __init__(self, indicators: IndicatorSettings, match: MatchSettings, shared_handle: shared.Shared,
                 embedding=None, keep_alive: bool = False):
        self._indicators = indicators
        self._match = match
        self._shared = shared_handle
        self._embedding = embedding  # csadetect.models.embedding.EmbeddingSpec or None
        self._keep_alive = keep_alive  # hold the LiveIndex between bundles (streaming: common.keep_alive)
        self._live = None
        self._checked_version = None  # the index version whose embedding rows were checked

    def setup(self):
        if self._match.faiss_threads:
            faiss.omp_set_num_threads(self._match.faiss_threads)
        tag = f"{self._indicators.path}|{self._indicators.public_key}|{self._match.model_dump_json()}"
        holder = self._shared.acquire(lambda: _Holder(LiveIndex(self._indicators, self._match).start()), tag=tag)
        self._holder = holder  # keep the shared object alive while this DoFn lives ...
        if self._keep_alive:
            keep_alive(f"match|{tag}", holder)  # ... and between bundles
        self._live = holder.live
        self._version_gauge = Metrics.gauge(NAMESPACE, "indicator_version")  # the progress line's index version

    # no tagged outputs on this step (adding them renames it on Dataflow): a dead letter travels on
    # the main output to Decide, which passes it to its dead-letter output
    @guarded("match", to_main=True)
    def process(self, item):
        for name, n in self._live.take_counts().items():  # the polling thread's swaps and refusals
            counter(name).inc(n)
        index = self._live.current()  # one version for this item, whatever a swap does meanwhile
        self._version_gauge.set(int(index.version))
        if item.event.order_for("known") is None:
            # no active detection order covers known-material detection on this service
            yield MatchedItem(item=item, matches=(), index_version=index.version)
            return
        if item.image is not None:
            spec = self._embedding
            if spec is not None and index.version != self._checked_version:
                self._checked_version = index.version
                problem = index.embedding_version_problem(spec.version)
                if problem:  # Dataflow (not checked at launch) or a new snapshot: said once per version
                    LOG.error("%s", problem)
                    counter("embedding_rows_of_other_model").inc()
            if spec is not None and item.embeddings is not None and item.region_source is not None:
                # the region views were left to this stage: cut from the image, its mirror or a turn of it
                gate = region_gate_similarity(spec.threshold, self._match.embedding_query_region_gate)
                turned = (lambda: turned_vectors(item, loaded_model(spec.path))) \
                    if self._match.embedding_query_turns else None
                matches, embedded = index.match_image_gated(
                    item.image, item.embeddings, item.views[:len(item.embeddings)], spec.version, spec.threshold,
                    gate, lambda orientation: region_vectors(item, loaded_model(spec.path), orientation), turned,
                    self._match.embedding_query_turn_gate)
                if embedded is not None:
                    counter("region_views_embedded").inc()
                    ways = {region_orientation(name) for name in embedded[0]}
                    if len(ways) > 1:  # the orientation's cost: 96 more views when two ways
                        counter("region_views_both_ways").inc()
                    elif ways == {MIRROR_SUFFIX}:
                        counter("region_views_mirrored").inc()
                    if ways & set(TURN_SUFFIXES):
                        counter("region_views_turned").inc()
            elif spec is not None and item.embeddings is not None:
                thresholds = view_thresholds(item.views, spec.threshold, len(item.embeddings))
                matches = index.match_image(item.image, item.embeddings, spec.version, thresholds)
            else:
                matches = index.match_image(item.image)
            if item.embeddings is not None or item.region_source is not None:
                # the image's own vector, for ClassifyNew; the region views' picture goes
                item = dataclasses.replace(item, embeddings=None if item.embeddings is None else item.embeddings[:1],
                                           region_source=None)
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
        fn = MatchIndicatorsFn(self._indicators, self._match, self._shared, self._embedding,
                               keep_alive=is_streaming(hashed))
        return hashed | "Lookup" >> beam.ParDo(fn)
