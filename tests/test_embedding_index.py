"""Embedding indicators: the FAISS inner-product index (exact, per model version), thresholds,
tombstones through deltas, and memory."""
from __future__ import annotations

import types

import numpy as np
import pytest

from csadetect.config.settings import MatchSettings
from csadetect.indicators.index import IndicatorIndex, load_index
from csadetect.indicators.rows import Indicator, IndicatorError
from csadetect.core.keys import generate_keypair
from csadetect.indicators.snapshot import Snapshot, build_snapshot
from csadetect.signals.embedding import (REGION_VIEW_DISTANCE_SHARE, STRIP_VIEW_DISTANCE_SHARE, embedding_value,
                                         split_embedding, view_thresholds, view_weights)


def _unit(rng, n, dim=16):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _index(rows):
    return IndicatorIndex.from_snapshot(Snapshot.in_memory(rows), MatchSettings())


def test_value_round_trip_and_validation():
    v = np.array([0.6, 0.8], np.float32)
    value = embedding_value(v, "model-1.0")
    assert value.startswith("model-1.0:")
    version, back = split_embedding(value)
    assert version == "model-1.0" and np.array_equal(back, v)
    assert Indicator("a", "embedding", value).value == value
    assert split_embedding(embedding_value(v, None))[0] is None
    with pytest.raises(IndicatorError, match="model version"):
        Indicator("a", "embedding", "bad version:" + value.split(":")[1])
    with pytest.raises(IndicatorError, match="NaN"):
        Indicator("a", "embedding", embedding_value(np.array([np.nan, 1], np.float32), "m"))


def test_matches_equal_brute_force_at_inclusive_threshold():
    rng = np.random.default_rng(1)
    db = _unit(rng, 300)
    rows = [Indicator(f"e{i}", "embedding", embedding_value(v, "m1"), category=f"c{i % 3}") for i, v in enumerate(db)]
    index = _index(rows)
    queries = _unit(rng, 3)
    queries[0] = db[7] * 0.5  # not normalised: the index normalises queries
    sims = queries / np.linalg.norm(queries, axis=1, keepdims=True) @ db.T
    threshold = float(np.sort(sims.max(axis=0))[-5])  # exactly the 5th best row similarity: inclusive
    got = index.match_embeddings(queries, "m1", threshold)
    best = sims.max(axis=0)
    want = {f"e{i}" for i in np.flatnonzero(best >= threshold)}
    assert {m.indicator_id for m in got} == want and len(want) == 5
    for m in got:
        i = int(m.indicator_id[1:])
        assert m.kind == "embedding" and m.similarity == pytest.approx(best[i], abs=1e-5)
        assert m.distance == pytest.approx(1 - m.similarity, abs=1e-6) and m.category == f"c{i % 3}"
    assert got[0].indicator_id == "e7" and got[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert [m.distance for m in got] == sorted(m.distance for m in got)


def test_other_model_versions_and_dims_never_compared():
    rng = np.random.default_rng(2)
    v = _unit(rng, 1)[0]
    rows = [
        Indicator("same", "embedding", embedding_value(v, "m1")),
        Indicator("other-version", "embedding", embedding_value(v, "m2")),
        Indicator("unversioned", "embedding", embedding_value(v, None)),
        Indicator("other-dim", "embedding", embedding_value(np.ones(8, np.float32), "m1")),
    ]
    index = _index(rows)
    got = {m.indicator_id for m in index.match_embeddings(v[None], "m1", 0.99)}
    assert got == {"same", "unversioned"}
    assert index.memory_stats()["embedding_index"] == 3 * 16 * 4 + 8 * 4 + 4 * 4


def test_rows_of_another_model_only_are_named():
    """An index whose embedding rows were all made by another model would never match the
    configured model's queries: embedding_version_problem says so in one line (the pipeline stops
    at launch on it, and a worker logs it once per snapshot version)."""
    rng = np.random.default_rng(5)
    v = _unit(rng, 2)
    old = _index([Indicator("a", "embedding", embedding_value(v[0], "emb-0.1")), Indicator("p", "pdq", "f" * 64)])
    assert old.embedding_versions() == {"emb-0.1"}
    problem = old.embedding_version_problem("emb-0.2")
    assert problem.startswith("the indicator database (version 1) has embedding rows of model emb-0.1 only, "
                              "but the configured embedding model is emb-0.2") and "\n" not in problem
    assert old.embedding_version_problem("emb-0.1") is None
    mixed = _index([Indicator("a", "embedding", embedding_value(v[0], "emb-0.1")),
                    Indicator("b", "embedding", embedding_value(v[1], "emb-0.2"))])
    assert mixed.embedding_version_problem("emb-0.2") is None
    unversioned = _index([Indicator("a", "embedding", embedding_value(v[0], None))])
    assert unversioned.embedding_version_problem("emb-0.2") is None  # rows without a version match any model
    assert _index([Indicator("p", "pdq", "f" * 64)]).embedding_version_problem("emb-0.2") is None
    # at launch: one line before the graph is built
    from csadetect.config.settings import ConfigError
    from csadetect.pipelines.detect import ResolvedModels, check_embedding_rows

    spec = types.SimpleNamespace(version="emb-0.2")
    with pytest.raises(ConfigError, match="has embedding rows of model emb-0.1 only"):
        check_embedding_rows(old, ResolvedModels(embedding=spec))
    check_embedding_rows(mixed, ResolvedModels(embedding=spec))
    check_embedding_rows(old, ResolvedModels())  # embedding off: nothing to check


def test_tombstoned_embedding_stops_matching(tmp_path):
    rng = np.random.default_rng(3)
    db = _unit(rng, 5)
    generate_keypair(tmp_path / "keys")
    rows = [Indicator(f"e{i}", "embedding", embedding_value(v, "m1")) for i, v in enumerate(db)]
    build_snapshot(rows, tmp_path / "db", tmp_path / "keys" / "private.pem")
    index = load_index(str(tmp_path / "db"), tmp_path / "keys" / "public.pem")
    assert [m.indicator_id for m in index.match_embeddings(db[2:3], "m1", 0.999)] == ["e2"]
    build_snapshot([], tmp_path / "db", tmp_path / "keys" / "private.pem", base="latest", disable_ids=["e2"])
    assert index.refresh(str(tmp_path / "db"), tmp_path / "keys" / "public.pem")
    assert index.match_embeddings(db[2:3], "m1", 0.999) == []
    assert [m.indicator_id for m in index.match_embeddings(db[3:4], "m1", 0.999)] == ["e3"]


def test_view_thresholds_hold_region_views_nearer_and_strips_nearer_still():
    names = ("image", "image:flip", "cell", "image-a80tl", "image-a80c", "image-a94r", "image:flip-a88t")
    t = view_thresholds(names, 0.9963)
    near = 1 - 0.0037 * REGION_VIEW_DISTANCE_SHARE
    nearer = 1 - 0.0037 * STRIP_VIEW_DISTANCE_SHARE
    assert STRIP_VIEW_DISTANCE_SHARE < REGION_VIEW_DISTANCE_SHARE < 1
    assert t == pytest.approx([0.9963, 0.9963, 0.9963, near, near, nearer, nearer])
    assert view_weights(names) == pytest.approx([1, 1, 1] + [1 / REGION_VIEW_DISTANCE_SHARE] * 2
                                                + [1 / STRIP_VIEW_DISTANCE_SHARE] * 2)
    assert view_thresholds(names, 0.9963, n_vectors=3) == 0.9963  # names that do not name the vectors: one threshold


def test_each_query_vector_keeps_its_own_threshold():
    """The lowest threshold is searched, then each vector keeps only rows at its own: a row that one
    vector reaches at 0.99 matches through it only while that vector's threshold allows it."""
    rng = np.random.default_rng(3)
    db = _unit(rng, 50)
    rows = [Indicator(f"e{i}", "embedding", embedding_value(v, "m1")) for i, v in enumerate(db)]
    index = _index(rows)
    other = _unit(rng, 1)[0]
    other -= other @ db[4] * db[4]
    other /= np.linalg.norm(other)
    q = np.stack([0.99 * db[4] + np.sqrt(1 - 0.99 ** 2) * other, _unit(rng, 1)[0]]).astype(np.float32)
    assert {m.indicator_id for m in index.match_embeddings(q, "m1", 0.98)} == {"e4"}
    assert {m.indicator_id for m in index.match_embeddings(q, "m1", np.array([0.98, 0.5]))} >= {"e4"}
    assert "e4" not in {m.indicator_id for m in index.match_embeddings(q, "m1", np.array([0.995, 0.98]))}
    with pytest.raises(ValueError, match="3 thresholds for 2 query vectors"):
        index.match_embeddings(q, "m1", np.array([0.9, 0.9, 0.9]))
