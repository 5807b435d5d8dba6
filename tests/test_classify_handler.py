"""``NewMaterialHandler.get_num_bytes``: RunInference's batch-size figure from the embeddings the
batch carries, without pickling the batch (Beam's default), whose items carry sealed uploads."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from apache_beam.ml.inference.base import KeyedModelHandler

from csadetect.events.event import dead_letter, make_event, parse_event
from csadetect.reports.hits import HashedItem, MatchedItem
from csadetect.transforms.classify import NewMaterialHandler, NewMaterialPolicy

POLICY = NewMaterialPolicy("unused-model-path", "v1", "emb-v1", review_threshold=0.5, report_threshold=0.9)


def matched(event_id: str, embeddings, evidence) -> MatchedItem:
    event = parse_event(json.dumps(make_event(event_id, b"benign bytes")).encode()).without_content()
    return MatchedItem(HashedItem(event, embeddings=embeddings, evidence=evidence), matches=(), index_version=1)


def test_num_bytes_counts_embeddings_and_never_pickles_the_batch():
    unpicklable = threading.Lock()  # where the sealed upload would be: pickling the batch fails on it
    batch = [
        matched("e1", np.zeros((2, 128), np.float32), unpicklable),
        matched("e2", np.zeros((1, 64), np.float32), unpicklable),
        matched("e3", None, unpicklable),  # a video or an item without an embedding
        dead_letter("match", "match failed (ValueError)", "e4"),  # dead letters pass through RunInference
    ]
    handler = NewMaterialHandler(POLICY)
    assert handler.get_num_bytes(batch) == 2 * 128 * 4 + 64 * 4
    assert handler.get_num_bytes([]) == 0
    # as RunInference calls it: through the KeyedModelHandler that carries timestamps as keys
    assert KeyedModelHandler(handler).get_num_bytes([(i, item) for i, item in enumerate(batch)]) > 2 * 128 * 4
    with pytest.raises(TypeError):  # what Beam's default would have done with the same batch
        super(NewMaterialHandler, handler).get_num_bytes(batch)


def test_models_are_kept_between_bundles():
    """RunInference's Shared lets a model go when the streaming DirectRunner tears its DoFn down
    after a bundle; the handlers load through ``kept``, so the next bundle gets the same model
    instead of loading it again. Another model path loads another model."""
    from csadetect.transforms.common import kept

    loads = []
    first = kept("test-model|a", lambda: loads.append("a") or object())
    assert kept("test-model|a", lambda: loads.append("a") or object()) is first
    other = kept("test-model|b", lambda: loads.append("b") or object())
    assert other is not first and loads == ["a", "b"]
    policy = NewMaterialPolicy(None, "v1", "emb-v1", review_threshold=0.5, report_threshold=0.9)  # the reference model
    handler = NewMaterialHandler(policy)
    model = handler.load_model()
    assert handler.load_model() is model
    assert NewMaterialHandler(policy).load_model() is model  # a new DoFn in the same process
