"""IndicatorIndex: PDQ recall equal to brute force, dihedral, exact hashes, vPDQ, deltas."""
from __future__ import annotations

import os

import numpy as np
import pytest

from csadetect.media.hashing import ImageHashes, PdqResult, VideoFrame, VideoHashes, file_digests, hash_image, hash_video_file
from csadetect.config.settings import MatchSettings
from csadetect.indicators.index import IndicatorIndex, Match, load_index
from csadetect.indicators.rows import Indicator, from_media, read_hashes
from csadetect.core.keys import generate_keypair
from csadetect.indicators.snapshot import (
    Snapshot,
    SnapshotError,
    build_snapshot,
    load_delta,
)
from csadetect.signals.hamming import MultiIndexHash
from tests.conftest import need_shared

MODES = ["multihash", "flat"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread_faiss():
    """One FAISS thread, as on a pipeline worker: an OpenMP region per single-hash query is slow
    on small shared machines. Restored afterwards."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _settings(mode, **kw):
    return MatchSettings(pdq_index=mode, **kw)


def _snapshot(rows, version=1) -> Snapshot:
    """An in-memory snapshot (no signing) for index tests."""
    return Snapshot.in_memory(rows, version)


def _index(rows, mode="auto", **kw):
    return IndicatorIndex.from_snapshot(_snapshot(rows), _settings(mode, **kw))


def _brute(db: np.ndarray, query: np.ndarray, threshold: int) -> dict[int, int]:
    """{db position: distance} within ``threshold`` (inclusive), by numpy popcount."""
    d = np.bitwise_count(np.bitwise_xor(db.view(np.uint64), query.view(np.uint64)[None, :])).sum(axis=1)
    hits = np.flatnonzero(d <= threshold)
    return {int(i): int(d[i]) for i in hits}


def _flip(code: np.ndarray, bits: int, rng) -> np.ndarray:
    unpacked = np.unpackbits(code)
    unpacked[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(unpacked)


@pytest.fixture(scope="module")
def random_db():
    """20k hashes: 16k uniform plus 4k in tight clusters, so queries have several neighbours at
    all distances, and 600 queries flipped by 0..40 bits (with many at exactly 31 and 32)."""
    rng = np.random.default_rng(1234)
    uniform = rng.integers(0, 256, (16_000, 32), dtype=np.uint8)
    centres = rng.integers(0, 256, (100, 32), dtype=np.uint8)
    clustered = np.stack([_flip(centres[i % 100], int(rng.integers(0, 24)), rng) for i in range(4_000)])
    db = np.concatenate([uniform, clustered])
    sources = rng.integers(0, len(db), 600)
    flips = np.concatenate([rng.integers(0, 41, 400), np.full(100, 31), np.full(100, 32)])
    queries = np.stack([_flip(db[s], int(k), rng) for s, k in zip(sources, flips)])
    rows = [Indicator(f"r{i:05d}", "pdq", c.tobytes().hex()) for i, c in enumerate(db)]
    return db, queries, rows


@pytest.mark.parametrize("mode", MODES)
def test_pdq_recall_equals_brute_force(random_db, mode):
    db, queries, rows = random_db
    index = _index(rows, mode)
    assert len(index) == len(db)
    seen_distances = set()
    for q in queries:
        expected = {f"r{i:05d}": d for i, d in _brute(db, q, 31).items()}
        got = {m.indicator_id: m.distance for m in index.match_pdq([q.tobytes()])}
        assert got == expected
        seen_distances |= set(expected.values())
    assert {0, 31} <= seen_distances and max(seen_distances) == 31
    # the boundary: a hash exactly 32 bits away never matches, one at 31 always does
    rng = np.random.default_rng(5)
    for bits, should in ((31, True), (32, False)):
        q = _flip(db[7], bits, rng)
        ids = {m.indicator_id: m.distance for m in index.match_pdq([q.tobytes()])}
        assert (ids.get("r00007") == bits) is should


@pytest.mark.parametrize("mode", MODES)
def test_pdq_batched_query_keeps_best_distance(random_db, mode):
    db, queries, rows = random_db
    index = _index(rows, mode)
    batch = [q.tobytes() for q in queries[:50]]
    expected: dict[str, int] = {}
    for q in queries[:50]:
        for i, d in _brute(db, q, 31).items():
            key = f"r{i:05d}"
            expected[key] = min(d, expected.get(key, 999))
    got = index.match_pdq(batch)
    assert {m.indicator_id: m.distance for m in got} == expected
    assert len(got) == len(expected)  # one match per indicator
    assert [m.distance for m in got] == sorted(m.distance for m in got)


def test_threshold_above_31_uses_flat_and_is_exact(random_db):
    db, queries, rows = random_db
    index = _index(rows[:5000], "auto", pdq_threshold=40, auto_confirm_distance=40)
    import faiss

    assert isinstance(index._state.base.indexes["pdq"].index, faiss.IndexBinaryFlat)
    for q in queries[:100]:
        expected = {f"r{i:05d}": d for i, d in _brute(db[:5000], q, 40).items()}
        assert {m.indicator_id: m.distance for m in index.match_pdq([q.tobytes()])} == expected


def test_memory_per_indicator_flat(random_db):
    db, _, rows = random_db
    index = _index(rows, "flat")
    stats = index.memory_stats()
    non_id = sum(v for k, v in stats.items() if k != "ids")
    assert non_id / len(db) <= 40
    assert stats["pdq_index"] == 32 * len(db)


@pytest.mark.parametrize("mode", MODES)
def test_needles_vs_haystack(mode):
    base = need_shared("pdq", "reg-test-input")
    haystack = read_hashes(str(base / "haystack.txt"), "pdq")  # 64 hex digits: the kind is never guessed
    needles = read_hashes(str(base / "needles.txt"), "pdq")
    index = _index(haystack, mode)
    codes = np.stack([np.frombuffer(bytes.fromhex(r.value), np.uint8) for r in haystack])
    total = 0
    for needle in needles:
        q = np.frombuffer(bytes.fromhex(needle.value), np.uint8)
        expected = {haystack[i].indicator_id: d for i, d in _brute(codes, q, 31).items()}
        got = {m.indicator_id: m.distance for m in index.match_pdq([q.tobytes()])}
        assert got == expected, needle.indicator_id
        total += len(got)
    assert total >= len(needles)  # the haystack holds variants of the needles


def test_dihedral_images_match_the_original():
    dih = need_shared("pdq", "reg-test-input", "dih")
    original = hash_image((dih / "bridge-1-original.jpg").read_bytes())
    index = _index([Indicator("bridge", "pdq", original.pdq.hex(), category="test")], "auto")
    names = sorted(os.listdir(dih))
    assert len(names) == 8
    for name in names:
        matches = index.match_image(hash_image((dih / name).read_bytes()))
        assert [(m.indicator_id, m.kind, m.category) for m in matches] == [("bridge", "pdq", "test")], name
        assert matches[0].distance <= 31
    other = hash_image(need_shared("pdq", "reg-test-input", "labelme-subset", "q0122.jpg").read_bytes())
    assert other.quality >= 50 and index.match_image(other) == []


def _fake_image(main: bytes, quality=100, md5="00" * 16, sha256="00" * 32, variants=()):
    dihedral = (main,) + tuple(bytes([i]) * 32 for i in range(1, 8))
    return ImageHashes(main, quality, dihedral, {"md5": md5, "sha256": sha256}, 10, 10, tuple(variants))


def test_match_image_quality_gate_and_variants():
    rng = np.random.default_rng(3)
    known, other = rng.bytes(32), rng.bytes(32)
    index = _index([
        Indicator("k", "pdq", known.hex()),
        Indicator("k-md5", "md5", "11" * 16),
    ])
    assert [m.indicator_id for m in index.match_image(_fake_image(known))] == ["k"]
    # below the quality gate the PDQ hash is not used, but exact hashes still match
    assert [m.indicator_id for m in index.match_image(_fake_image(known, quality=49, md5="11" * 16))] == ["k-md5"]
    # a preprocessed variant carries its own quality
    variant = PdqResult(known, 80, (known,) + (other,) * 7)
    assert [m.indicator_id for m in index.match_image(_fake_image(other, variants=[("trim", variant)]))] == ["k"]
    low = PdqResult(known, 20, (known,) * 8)
    assert index.match_image(_fake_image(other, variants=[("trim", low)])) == []
    # a dihedral hash (not the first) matching counts
    rotated = ImageHashes(other, 100, (other, other, known) + (other,) * 5, {"md5": "00" * 16, "sha256": "00" * 32}, 1, 1)
    assert index.match_image(rotated) == [Match("k", "pdq", 0, "unspecified")]


def test_exact_hashes():
    # digests with leading/trailing zero bytes guard against fixed-width byte string padding
    md5s = ["ab" + "00" * 15, "00" * 15 + "ab", "ab" + "00" * 14 + "01", "0123456789abcdef" * 2]
    shas = ["00" * 32, "ff" * 31 + "00"]
    rows = [Indicator(f"m{i}", "md5", v, category=f"c{i}") for i, v in enumerate(md5s)]
    rows += [Indicator(f"s{i}", "sha256", v) for i, v in enumerate(shas)]
    index = _index(rows)
    for i, v in enumerate(md5s):
        assert index.match_image(_fake_image(b"\0" * 32, quality=0, md5=v, sha256="12" * 32)) == [
            Match(f"m{i}", "md5", 0, f"c{i}")]
    assert index.match_image(_fake_image(b"\0" * 32, quality=0, md5="ab" + "00" * 14 + "02", sha256="12" * 32)) == []
    got = index.match_image(_fake_image(b"\0" * 32, quality=0, md5="cd" * 16, sha256="ff" * 31 + "00"))
    assert got == [Match("s1", "sha256", 0, "unspecified")]


def test_md5_sha256_from_media():
    base = need_shared("pdq", "reg-test-input", "labelme-subset")
    paths = [str(base / "q0122.jpg"), str(base / "q0291.jpg")]
    rows = from_media(paths, MatchSettings(value_view=False))  # one pdq row a picture (value rows: test_value_view.py)
    assert sorted(r.kind for r in rows) == ["md5", "md5", "pdq", "pdq", "sha256", "sha256"]
    index = _index(rows)
    data = (base / "q0122.jpg").read_bytes()
    kinds = {m.kind: m for m in index.match_image(hash_image(data))}
    assert set(kinds) == {"pdq", "md5", "sha256"} and kinds["pdq"].distance == 0
    prefix = __import__("hashlib").sha256(data).hexdigest()[:16]
    assert {m.indicator_id for m in kinds.values()} == {f"{prefix}-pdq", f"{prefix}-md5", f"{prefix}-sha256"}
    # the same picture re-encoded: perceptual match only
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, "PNG")
    assert [m.kind for m in index.match_image(hash_image(buf.getvalue()))] == ["pdq"]


def _frames(codes, quality=100):
    return [VideoFrame(i, quality, c, float(i)) for i, c in enumerate(codes)]


def _video(frames):
    return VideoHashes({}, tuple(frames))


def test_vpdq_share_rule():
    rng = np.random.default_rng(11)
    known = [rng.bytes(32) for _ in range(10)]
    index = _index([Indicator("vid", "vpdq", " ".join(c.hex() for c in known), category="v")])
    strangers = [rng.bytes(32) for _ in range(5)]
    near = lambda c: _flip(np.frombuffer(c, np.uint8), 20, rng).tobytes()  # noqa: E731
    # 4 of 5 query frames found (one within 20 bits): share 0.8 -> match, distance 0.2
    m = index.match_video(_video(_frames([known[0], near(known[3]), known[5], known[9], strangers[0]])))
    assert m == [Match("vid", "vpdq", 0.2, "v")]
    # 3 of 5 -> no match
    assert index.match_video(_video(_frames([known[0], known[1], known[2], strangers[0], strangers[1]]))) == []
    # duplicate frames count once; low-quality frames are ignored
    frames = _frames([known[0], known[0], known[1]]) + _frames([strangers[2]] * 3, quality=10)
    assert index.match_video(_video(frames)) == [Match("vid", "vpdq", 0.0, "v")]
    # nothing above the gate: no perceptual match
    assert index.match_video(_video(_frames(known, quality=10))) == []


def test_vpdq_real_videos(tmp_path):
    videos = need_shared("vpdq", "videos")
    settings = MatchSettings(video_seconds_per_hash=1.0)
    known = str(videos / "pattern-sd-grey-bar.mp4")
    rows = from_media([known], settings, category="v")
    assert sorted(r.kind for r in rows) == ["md5", "sha256", "vpdq"]
    index = _index(rows)
    same = index.match_video(VideoHashes(file_digests(known), tuple(hash_video_file(known, seconds_per_hash=1.0))))
    assert {m.kind for m in same} == {"vpdq", "md5", "sha256"}
    assert [m.distance for m in same if m.kind == "vpdq"] == [0.0]
    other = str(videos / "doorknob-hd-no-bar.mp4")
    assert index.match_video(VideoHashes(file_digests(other), tuple(hash_video_file(other, seconds_per_hash=1.0)))) == []


# ------------------------------------------------------------------------------- deltas


@pytest.fixture
def db(tmp_path):
    private, public = generate_keypair(tmp_path / "keys")
    return str(tmp_path / "db"), private, public


def _codes(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.bytes(32) for _ in range(n)]


def _ids(index, codes):
    return {m.indicator_id for c in codes for m in index.match_pdq([c])}


@pytest.mark.parametrize("mode", MODES)
def test_apply_delta_matches_fresh_load(db, mode):
    path, private, public = db
    settings = _settings(mode)
    codes = _codes(200, 1)
    rows = [Indicator(f"p{i}", "pdq", c.hex()) for i, c in enumerate(codes)] + [Indicator("m", "md5", "22" * 16)]
    build_snapshot(rows, path, private)
    live = load_index(path, public, settings)
    assert live.version == 1 and len(live) == 201

    added = _codes(3, 2)
    build_snapshot(
        [Indicator(f"n{i}", "pdq", c.hex(), category="new") for i, c in enumerate(added)],
        path, private, base="latest", disable_ids=["p0", "p1", "m"])
    live.apply_delta(load_delta(path, public, 2))
    assert live.version == 2 and len(live) == 201
    assert _ids(live, codes[:2]) == set() and _ids(live, codes[2:4]) == {"p2", "p3"}
    assert _ids(live, added) == {"n0", "n1", "n2"}
    assert live.match_image(_fake_image(b"\1" * 32, quality=0, md5="22" * 16)) == []

    # v3: disable one added in v2, move p5 to a new hash, re-categorise p6
    build_snapshot(
        [Indicator("p5", "pdq", added[0].hex()), Indicator("p6", "pdq", codes[6].hex(), category="moved")],
        path, private, base="latest", disable_ids=["n1"])
    live.apply_delta(load_delta(path, public, 3))
    fresh = load_index(path, public, settings)
    queries = codes + added
    assert len(live) == len(fresh) == 200
    for q in queries:
        assert live.match_pdq([q]) == fresh.match_pdq([q])
    assert {m.indicator_id: m.category for m in live.match_pdq([codes[6]])} == {"p6": "moved"}
    assert _ids(live, [codes[5]]) == set() and _ids(live, [added[0]]) == {"n0", "p5"}


def test_apply_delta_checks_parent_and_refresh(db):
    path, private, public = db
    codes = _codes(20, 3)
    build_snapshot([Indicator(f"p{i}", "pdq", c.hex()) for i, c in enumerate(codes)], path, private)
    live = load_index(path, public)
    build_snapshot([], path, private, base="latest", disable_ids=["p0"])
    build_snapshot([], path, private, base="latest", disable_ids=["p1"])
    with pytest.raises(SnapshotError, match="delta version 3 applies to version 2, index is at 1"):
        live.apply_delta(load_delta(path, public, 3))
    assert live.refresh(path, public) is True and live.version == 3
    assert _ids(live, codes[:3]) == {"p2"} and live.refresh(path, public) is False

    # a tampered new version is refused; the index keeps serving its last good version
    build_snapshot([], path, private, base="latest", disable_ids=["p2"])
    with open(os.path.join(path, "versions", "4", "delta.parquet"), "ab") as fh:
        fh.write(b"x")
    with pytest.raises(SnapshotError, match="checksum mismatch for delta.parquet in version 4"):
        live.refresh(path, public)
    assert live.version == 3 and _ids(live, codes[:3]) == {"p2"}

    # a new full snapshot: refresh reloads
    build_snapshot([Indicator("only", "pdq", codes[0].hex())], path, private)
    assert live.refresh(path, public) and live.version == 5 and len(live) == 1
    assert _ids(live, codes[:3]) == {"only"}


def test_memory_and_len_after_delta(db):
    path, private, public = db
    build_snapshot([Indicator(f"p{i}", "pdq", c.hex()) for i, c in enumerate(_codes(50, 4))], path, private)
    live = load_index(path, public)
    before = live.memory_bytes()
    build_snapshot([Indicator("x", "pdq", "ab" * 32)], path, private, base="latest")
    live.refresh(path, public)
    assert len(live) == 51 and live.memory_bytes() > before
    assert live.memory_stats()["overlay"] > 0 and live.memory_stats()["active"] == 50


def test_the_compiled_search_is_built():
    """`make install` compiles csadetect/signals/_mih.c (setup.py); without it matching falls back
    to numpy, slower. A machine with a C compiler (this project needs one for vpdq) must have it."""
    from csadetect.signals import hamming

    assert hamming._mih is not None and MultiIndexHash.compiled


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("threshold,bits", [(15, 16), (31, 16), (40, 16), (31, 22), (40, 22)])
def test_multi_index_tables_equal_brute_force(random_db, monkeypatch, threshold, bits, compiled):
    """The multi-index tables themselves (not the FAISS flat fallback used below FLAT_BELOW
    hashes), 16 x 16-bit and 11 x 22-bit substrings, searched by the compiled loop and by numpy:
    single and batched range searches equal brute force, also across chunk borders."""
    db, queries, _ = random_db
    monkeypatch.setattr(MultiIndexHash, "FLAT_BELOW", 0)
    monkeypatch.setattr(MultiIndexHash, "compiled", compiled)
    monkeypatch.setattr(MultiIndexHash, "CHUNK", 5_000)  # force many chunks in the batched path
    mih = MultiIndexHash(threshold, bits=bits)
    mih.add(db)
    assert mih._order is not None, "tables not built"
    expected = [_brute(db, q, threshold) for q in queries]
    lims, dist, pos = mih.range_search(queries, threshold + 1)
    for i, exp in enumerate(expected):
        got = {int(p): int(d) for p, d in zip(pos[lims[i]:lims[i + 1]], dist[lims[i]:lims[i + 1]])}
        assert got == exp, i
    for i in (0, 400, 599):
        l1, d1, p1 = mih.range_search(queries[i:i + 1], threshold + 1)
        assert {int(p): int(d) for p, d in zip(p1, d1)} == expected[i]


def test_compiled_search_with_64_bit_offsets_and_bad_buffers(random_db, monkeypatch):
    """Beyond 268M hashes the directory needs int64 offsets: the compiled loop reads either width;
    buffers that do not fit together are refused, not read past their end."""
    from csadetect.signals import _mih

    db, queries, _ = random_db
    monkeypatch.setattr(MultiIndexHash, "FLAT_BELOW", 0)
    mih = MultiIndexHash(31, bits=16)
    mih.add(db)
    narrow = mih.range_search(queries, 32)
    mih._offsets = mih._offsets.astype(np.int64)
    wide = mih.range_search(queries, 32)
    assert all(np.array_equal(a, b) for a, b in zip(narrow, wide)) and len(narrow[2]) > 100
    with pytest.raises(ValueError, match="do not fit"):
        _mih.search(mih.codes, mih._order[:-1], mih._offsets, True, queries, mih._flips, 16, 32)
    with pytest.raises(ValueError, match="do not fit"):
        _mih.search(mih.codes, mih._order, mih._offsets, False, queries, mih._flips, 16, 32)  # int64 read as uint32


def test_substring_keys():
    """16-bit substrings are bytes 2t, 2t+1 little-endian (what earlier snapshots' tables hold);
    22-bit ones straddle 64-bit words correctly."""
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    for t in range(16):
        assert np.array_equal(MultiIndexHash.keys(codes, t, 16), codes.view("<u2")[:, t])
    bits = np.unpackbits(codes, axis=1, bitorder="little")  # bit i of the little-endian 256-bit number
    for t in range(11):
        expected = (bits[:, 22 * t:22 * t + 22].astype(np.uint64) << np.arange(22, dtype=np.uint64)).sum(axis=1)
        assert np.array_equal(MultiIndexHash.keys(codes, t, 22), expected.astype(np.uint32)), t
    assert MultiIndexHash.bits_for(1_000_000) == 16 and MultiIndexHash.bits_for(10_000_000) == 22
    with pytest.raises(ValueError, match="beyond what 16 tables with 1 flips find exactly"):
        big = MultiIndexHash(31, bits=16)
        big.FLAT_BELOW = 0
        big.add(codes)
        big.range_search(codes[:1], 40)
