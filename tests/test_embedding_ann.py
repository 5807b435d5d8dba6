"""Embedding indexes by mode (``match.embedding_index``): flat (exact), ivf and hnsw (approximate
FAISS) give the matches of a brute-force search on planted near-duplicates; ``auto`` picks by
size; small groups and the delta overlay stay exact; settings are validated; memory is counted.
Recall at scale is measured in benchmarks/bench_embeddings.py, not here (no timed tests)."""
from __future__ import annotations

import faiss
import numpy as np
import pydantic
import pytest

from csadetect.config.settings import MatchSettings
from csadetect.core.keys import generate_keypair
from csadetect.indicators.index import IndicatorIndex, load_index
from csadetect.indicators.rows import Indicator
from csadetect.indicators.snapshot import Snapshot, build_snapshot
from csadetect.signals.embedding import (
    APPROX_MIN_ROWS,
    AUTO_APPROXIMATE,
    HNSW_FIRST_K,
    HNSW_M,
    VectorIndex,
    embedding_value,
    index_kind,
    ivf_nlist,
)

DIM = 128
THRESHOLD = 0.9835  # a threshold near the reference model's calibrated one (synthetic vectors: any value near 1 works)
MODES = ("flat", "ivf", "hnsw", "auto")


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _near(rng, x, cos):
    """Unit vectors at cosine ``cos`` (one per row) of the unit rows ``x``."""
    u = rng.standard_normal(x.shape).astype(np.float32)
    u = _unit(u - (u * x).sum(axis=1, keepdims=True) * x)
    return _unit(np.asarray(cos, np.float32)[:, None] * x + np.sqrt(1 - np.square(cos))[:, None] * u)


@pytest.fixture(scope="module")
def planted():
    """4000 rows: 3200 random unit vectors and 200 "known images" of 4 rows each (the image and
    three views at cosine 0.97-0.995 of it); 300 queries: 250 near-duplicates of rows (cosine
    0.975-1.0 of one row, so some fall below the threshold) and 50 random ones."""
    rng = np.random.default_rng(14)
    images = _unit(rng.standard_normal((200, DIM)))
    views = [_near(rng, images, rng.uniform(0.97, 0.995, 200)) for _ in range(3)]
    db = np.concatenate([_unit(rng.standard_normal((3200, DIM))), images, *views])
    db = db[rng.permutation(len(db))]
    targets = rng.integers(0, len(db), 250)
    queries = np.concatenate([_near(rng, db[targets], rng.uniform(0.975, 1.0, 250)),
                              _unit(rng.standard_normal((50, DIM)))])
    sims = queries @ db.T
    clear = np.abs(sims - THRESHOLD).min(axis=1) > 1e-4  # drop the few queries so close to it that rounding decides
    assert clear.sum() > 280
    return db, queries[clear], sims[clear]


def _index(vectors, settings, version="m1"):
    rows = [Indicator(f"e{i}", "embedding", embedding_value(v, version)) for i, v in enumerate(vectors)]
    return IndicatorIndex.from_snapshot(Snapshot.in_memory(rows), settings)


def _kinds(index, segment="base"):
    seg = getattr(index._state, segment)
    return {key: ix.kind for key, (ix, _) in seg.indexes["embedding"].groups.items()}


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_matches_brute_force_on_planted_near_duplicates(planted, mode):
    db, queries, sims = planted
    settings = MatchSettings(embedding_index=mode, embedding_exact_below=len(db))  # auto: exactly at the limit
    index = _index(db, settings)
    assert _kinds(index) == {("m1", DIM): AUTO_APPROXIMATE if mode == "auto" else mode}
    found = 0
    for q, s in zip(queries, sims):
        want = {f"e{i}": float(s[i]) for i in np.flatnonzero(s >= THRESHOLD)}
        got = {m.indicator_id: m.similarity for m in index.match_embeddings(q[None], "m1", THRESHOLD)}
        assert got.keys() == want.keys()
        assert all(got[k] == pytest.approx(want[k], abs=1e-5) for k in want)
        found += len(want)
    assert found > 150  # the planted pairs are there (and the 50 random queries match nothing)


def test_views_of_an_image_in_one_call_give_the_best_similarity_per_row(planted):
    db, queries, sims = planted
    want = {f"e{i}": float(sims[:4, i].max()) for i in np.flatnonzero((sims[:4] >= THRESHOLD).any(axis=0))}
    assert want
    for mode in ("flat", "ivf", "hnsw"):
        got = _index(db, MatchSettings(embedding_index=mode)).match_embeddings(queries[:4], "m1", THRESHOLD)
        assert {m.indicator_id: pytest.approx(m.similarity, abs=1e-5) for m in got} == want
        assert [m.distance for m in got] == sorted(m.distance for m in got)


@pytest.mark.parametrize("mode", ("ivf", "hnsw"))
def test_more_matches_than_the_first_top_k_are_all_found(mode):
    """HNSW searches the top k and widens while the k-th still matches; IVF range-searches."""
    rng = np.random.default_rng(5)
    base = _unit(rng.standard_normal((1, DIM)))
    copies = _near(rng, np.repeat(base, 3 * HNSW_FIRST_K, axis=0), rng.uniform(0.99, 1.0, 3 * HNSW_FIRST_K))
    db = np.concatenate([_unit(rng.standard_normal((2000, DIM))), copies])
    index = _index(db, MatchSettings(embedding_index=mode))
    assert _kinds(index) == {("m1", DIM): mode}
    got = {m.indicator_id for m in index.match_embeddings(base, "m1", THRESHOLD)}
    assert got == {f"e{i}" for i in range(2000, len(db))}


def test_auto_picks_by_size_and_small_groups_stay_exact():
    s = MatchSettings(embedding_index="auto", embedding_exact_below=50_000)
    assert index_kind(49_999, s) == "flat" and index_kind(50_000, s) == AUTO_APPROXIMATE
    assert index_kind(10_000_000, s) == AUTO_APPROXIMATE
    for mode in ("ivf", "hnsw"):
        forced = MatchSettings(embedding_index=mode, embedding_exact_below=0)
        assert index_kind(APPROX_MIN_ROWS - 1, forced) == "flat" and index_kind(APPROX_MIN_ROWS, forced) == mode
    assert index_kind(10_000_000, MatchSettings(embedding_index="flat")) == "flat"
    assert index_kind(APPROX_MIN_ROWS, MatchSettings(embedding_index="auto", embedding_exact_below=0)) == AUTO_APPROXIMATE
    assert ivf_nlist(1_000_000) == 1000 and ivf_nlist(1_000_000, 4) == 4000 and ivf_nlist(4000, 4) == 102
    assert ivf_nlist(APPROX_MIN_ROWS) == 25


def test_each_group_is_sized_on_its_own():
    """Model versions are separate groups: a big one gets the approximate index, a small one stays flat."""
    rng = np.random.default_rng(6)
    big, small = _unit(rng.standard_normal((1500, DIM))), _unit(rng.standard_normal((20, DIM)))
    rows = [Indicator(f"b{i}", "embedding", embedding_value(v, "m1")) for i, v in enumerate(big)]
    rows += [Indicator(f"s{i}", "embedding", embedding_value(v, "m2")) for i, v in enumerate(small)]
    settings = MatchSettings(embedding_index="auto", embedding_exact_below=1000)
    index = IndicatorIndex.from_snapshot(Snapshot.in_memory(rows), settings)
    assert _kinds(index) == {("m1", DIM): AUTO_APPROXIMATE, ("m2", DIM): "flat"}
    assert [m.indicator_id for m in index.match_embeddings(small[3:4], "m2", THRESHOLD)] == ["s3"]
    assert [m.indicator_id for m in index.match_embeddings(big[7:8], "m1", THRESHOLD)] == ["b7"]
    assert index.match_embeddings(big[7:8], "m2", THRESHOLD) == []


@pytest.mark.parametrize("mode", ("ivf", "hnsw"))
def test_delta_overlay_stays_exact_and_tombstones_apply(tmp_path, mode):
    rng = np.random.default_rng(7)
    db = _unit(rng.standard_normal((1200, DIM)))
    generate_keypair(tmp_path / "keys")
    key, pub = tmp_path / "keys" / "private.pem", tmp_path / "keys" / "public.pem"
    build_snapshot([Indicator(f"e{i}", "embedding", embedding_value(v, "m1")) for i, v in enumerate(db)],
                   tmp_path / "db", key)
    index = load_index(str(tmp_path / "db"), pub, MatchSettings(embedding_index=mode, embedding_exact_below=0))
    assert _kinds(index) == {("m1", DIM): mode}
    new = _unit(rng.standard_normal((3, DIM)))
    build_snapshot([Indicator(f"n{i}", "embedding", embedding_value(v, "m1")) for i, v in enumerate(new)],
                   tmp_path / "db", key, base="latest", disable_ids=["e5"])
    assert index.refresh(str(tmp_path / "db"), pub)
    assert _kinds(index, "overlay") == {("m1", DIM): "flat"}
    assert index.match_embeddings(db[5:6], "m1", THRESHOLD) == []
    assert [m.indicator_id for m in index.match_embeddings(db[6:7], "m1", THRESHOLD)] == ["e6"]
    assert [m.indicator_id for m in index.match_embeddings(new[1:2], "m1", THRESHOLD)] == ["n1"]


@pytest.mark.parametrize("mode", ("flat", "ivf", "hnsw"))
def test_nbytes_counts_what_faiss_stores(mode):
    """memory_stats' figure agrees with FAISS's own serialisation of the index (within 2%)."""
    rng = np.random.default_rng(8)
    mat = _unit(rng.standard_normal((3000, DIM)))
    ix = VectorIndex(mat, MatchSettings(embedding_index=mode))
    assert ix.kind == mode
    stored = len(faiss.serialize_index(ix.index))
    assert ix.nbytes == pytest.approx(stored, rel=0.02)
    floor = {"flat": 0, "ivf": 8, "hnsw": 2 * HNSW_M * 4 * 0.9}[mode]
    assert ix.nbytes >= 3000 * (DIM * 4 + floor)


def test_settings_are_validated():
    for bad in ({"embedding_index": "annoy"}, {"embedding_index": "exact"}, {"embedding_exact_below": -1},
                {"embedding_ivf_nprobe": 0}, {"embedding_hnsw_ef_search": 0}):
        with pytest.raises(pydantic.ValidationError):
            MatchSettings(**bad)
    assert MatchSettings().embedding_index == "auto"


@pytest.mark.parametrize("mode", ("flat", "ivf", "hnsw"))
def test_nearest_embedding_is_the_best_similarity_of_any_query_vector(planted, mode):
    """``IndicatorIndex.nearest_embedding`` (what the region gate reads): the largest similarity of
    any query vector to any row of its model version, by one top-1 search; -1.0 for another
    version's rows or without rows."""
    db, queries, sims = planted
    index = _index(db, MatchSettings(embedding_index=mode))
    for k in range(0, 60, 3):
        want = float(sims[k:k + 3].max())
        got = index.nearest_embedding(queries[k:k + 3], "m1")
        assert got == pytest.approx(want, abs=1e-5) if mode == "flat" else got <= want + 1e-5
        if mode == "flat" or want >= THRESHOLD:  # an approximate index finds a near-duplicate's row
            assert got == pytest.approx(want, abs=1e-5)
    assert index.nearest_embedding(queries[:3], "other-model") == -1.0
    assert index.nearest_embedding(np.zeros((0, DIM), np.float32), "m1") == -1.0
    empty = IndicatorIndex.from_snapshot(Snapshot.in_memory([]), MatchSettings())
    assert empty.nearest_embedding(queries[:3], "m1") == -1.0
