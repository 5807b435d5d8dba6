"""EmbedImages: image thumbnails -> L2-normalised embedding vectors, through Beam's RunInference.

RunInference batches items (``embedding.batching``: min/max batch size, and in streaming a max
batch duration), keeps one model copy per worker process, and can swap the model when a new
path arrives on its side input. Every thumbnail of every item in a batch goes through the model in
one call. The thumbnails are dropped here: what leaves this stage holds vectors, not pixels, and
the small picture HashMedia keeps for the query-side region views (``HashedItem.region_source``, a
quarter of the bytes of the cut views).

In the pipeline the region views are not embedded here (``defer_regions``): the item keeps its
``region_source`` and ``MatchIndicators`` embeds them (:func:`region_vectors`) once the image's own
vectors have been looked up, from the mirrored image when the mirror lies nearer the rows, and with
``match.embedding_query_region_gate`` set only for an image that nothing matched and whose own
vectors came near some row; then it drops the source.

Element timestamps are carried through as RunInference keys and restored afterwards: Beam's
``BatchElements`` stamps its batches at the end of the window, which would break the event-time
timers downstream (report de-duplication)."""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional, Sequence

import apache_beam as beam
import numpy as np

from csadetect.models.embedding import EmbeddingModel, region_view_inputs
from csadetect.models.loader import BatchedModelHandler
from csadetect.reports.hits import HashedItem
from csadetect.transforms.common import RunInferenceKeepingTimestamps, batching_kwargs, counter, kept, record_failure


class ImageEmbeddingHandler(BatchedModelHandler[HashedItem, HashedItem, EmbeddingModel]):
    """RunInference handler: HashedItem with ``pixels`` in, HashedItem with ``embeddings`` out
    (videos and items without pixels pass through untouched). ``model_uri``: the setting
    ``embedding.model`` as resolved by ``EmbeddingSpec`` (None: the reference model)."""

    def __init__(self, model_uri: Optional[str], defer_regions: bool = False, **kwargs):
        """``defer_regions``: embed the thumbnails only and hand the region views' source on to
        ``MatchIndicators`` (the pipeline's way)."""
        super().__init__(model_uri, **kwargs)
        self.defer_regions = defer_regions

    def load_model(self) -> EmbeddingModel:
        return loaded_model(self.model_uri)

    def run_inference(self, batch: Sequence[HashedItem], model: EmbeddingModel,
                      inference_args=None) -> Iterable[HashedItem]:
        """The batch in one model call; if that fails, item by item, and an item that fails on its
        own becomes a DeadLetter (``MatchIndicators`` and ``Decide`` hand it to the dead letters)."""
        try:
            return self._embed(batch, model)
        except Exception:
            out = []
            for item in batch:
                try:
                    out.extend(self._embed([item], model))
                except Exception as exc:
                    out.append(record_failure("embed", exc, item))
            return out

    def _embed(self, batch: Sequence[HashedItem], model: EmbeddingModel) -> list:
        todo = [i for i, item in enumerate(batch) if item.pixels is not None and len(item.pixels)]
        out = list(batch)
        if todo:
            if self.defer_regions:
                inputs = [batch[i].pixels for i in todo]
            else:
                inputs = [_model_inputs(batch[i], model.input_size) for i in todo]
            vectors = model.embed_arrays(np.concatenate(inputs), batch_size=256)
            start = 0
            for i, arr in zip(todo, inputs):
                k = len(arr)
                source = batch[i].region_source if self.defer_regions else None
                out[i] = dataclasses.replace(batch[i], pixels=None, region_source=source,
                                             embeddings=vectors[start : start + k])
                start += k
            counter("embedded_image").inc(len(todo))
        return out

    def get_num_bytes(self, batch: Sequence[HashedItem]) -> int:
        return sum(getattr(getattr(item, "pixels", None), "nbytes", 0)
                   + getattr(getattr(item, "region_source", None), "nbytes", 0) for item in batch)


def loaded_model(model_uri: Optional[str]) -> EmbeddingModel:
    """The embedding model at ``model_uri``, loaded once per worker process (shared by this stage
    and ``MatchIndicators``' deferred region views)."""
    return kept(f"embedding-model|{model_uri}", lambda: EmbeddingModel.load(model_uri))


def region_vectors(item: HashedItem, model: EmbeddingModel, orientation: str = "") -> tuple[tuple[str, ...], np.ndarray]:
    """The names and vectors of ``item``'s query-side region views that EmbedImages deferred: the
    views named after its ``embeddings``, cut from its ``region_source``, or from it mirrored or turned
    (``orientation``; named ``image:flip-a80tl``, ``image:r90-a80tl`` ...:
    :func:`csadetect.signals.embedding.oriented_region_names`)."""
    names = tuple(item.views[len(item.embeddings):])
    if item.region_source is None or not names:
        return (), np.zeros((0, model.dim), np.float32)
    return model.embed_region_views(item.region_source, names, orientation)


def turned_vectors(item: HashedItem, model: EmbeddingModel) -> tuple[tuple[str, ...], np.ndarray]:
    """The names and vectors of ``item``'s ``region_source`` and its mirror turned a quarter, a half and three
    quarters (``match.embedding_query_turns``: they choose which way :func:`region_vectors` cuts)."""
    if item.region_source is None:
        return (), np.zeros((0, model.dim), np.float32)
    return model.embed_turned(item.region_source, item.views[0])


def _model_inputs(item: HashedItem, size: int) -> np.ndarray:
    """Every model input of ``item``, one per name in ``item.views``: its thumbnails, then the region
    views cut from its ``region_source`` (named after the thumbnails)."""
    if item.region_source is None:
        return item.pixels
    return np.concatenate([item.pixels, region_view_inputs(item.region_source, item.views[len(item.pixels):], size)])


class EmbedImages(beam.PTransform):
    def __init__(self, model_path: Optional[str], batching=None, streaming: bool = False, defer_regions: bool = False):
        """``defer_regions``: leave the query-side region views to ``MatchIndicators`` (the
        pipeline's way: it cuts them from the image or its mirror)."""
        super().__init__()
        self._handler = ImageEmbeddingHandler(model_path, defer_regions=defer_regions,
                                              **batching_kwargs(batching, streaming))

    def expand(self, hashed):
        return hashed | "Infer" >> RunInferenceKeepingTimestamps.transform(self._handler)
