"""Memory-mapped snapshots: a full version carries its index files, workers map them (nothing
built, nothing copied), matches equal the in-memory index's, deltas and tombstones apply on top,
a damaged file is refused before it is used, and `indicators compact` folds a chain into a base."""
from __future__ import annotations

import base64
import json
import mmap
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csadetect.cli.main import main as cli_main
from csadetect.config.settings import MatchSettings
from csadetect.core.keys import generate_keypair, load_private_key, sign
from csadetect.indicators import mapped, snapshot_build, snapshot_load
from csadetect.indicators.index import IndicatorIndex, load_index
from csadetect.indicators.snapshot import SnapshotError, build_snapshot, compact, load_snapshot
from csadetect.signals.hamming import MultiIndexHash

N_PDQ = MultiIndexHash.FLAT_BELOW + 4_000  # enough pdq rows for the mapped multi-index tables


def _is_mapped(array) -> bool:
    """A read-only view of a memory-mapped file (nothing copied)."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, mmap.mmap) and not array.flags.writeable


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    generate_keypair(str(d))
    return str(d / "private.pem"), str(d / "public.pem")


def _table(codes: np.ndarray, prefix: str = "p", md5: int = 50) -> pa.Table:
    n = len(codes)
    rng = np.random.default_rng(len(codes))
    ids = [f"{prefix}{i:06d}" for i in range(n)] + [f"{prefix}m{i:04d}" for i in range(md5)]
    values = [c.tobytes().hex() for c in codes] + [rng.bytes(16).hex() for _ in range(md5)]
    kinds = ["pdq"] * n + ["md5"] * md5
    categories = [("A1", "B2", "unspecified")[i % 3] for i in range(n + md5)]
    sources = [("eu-centre", "ncmec")[i % 2] for i in range(n + md5)]
    return pa.table({"indicator_id": ids, "kind": kinds, "value": values, "category": categories, "source": sources})


@pytest.fixture(scope="module")
def built(tmp_path_factory, keys):
    private, public = keys
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 256, (N_PDQ, 32), dtype=np.uint8)
    db = str(tmp_path_factory.mktemp("mapped") / "db")
    table = _table(codes)
    manifest = build_snapshot(table, db, private, disable_ids=["p000003"])
    return {"db": db, "codes": codes, "manifest": manifest, "table": table, "rng": rng}


def _near(code: np.ndarray, bits: int, rng) -> bytes:
    unpacked = np.unpackbits(code)
    unpacked[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(unpacked).tobytes()


def _queries(codes, rng, k=200):
    picks = rng.integers(0, len(codes), k)
    return [_near(codes[i], int(b), rng) for i, b in zip(picks, rng.integers(0, 40, k))]


def _matches(index, queries):
    return [sorted((m.indicator_id, m.distance, m.category, m.source) for m in index.match_pdq([q])) for q in queries]


def test_full_version_carries_mapped_tables_and_workers_map_them(built, keys):
    _, public = keys
    m = built["manifest"]
    assert {mapped.ROWS_FILE, mapped.ORDER_FILE, mapped.OFFSETS_FILE, mapped.CATEGORY_FILE} <= set(m["files"])
    assert m["index"]["mih"] is True and m["index"]["layout"] == {"pdq": [0, N_PDQ], "md5": [N_PDQ, N_PDQ + 50]}
    index = load_index(built["db"], public)
    pdq = index._state.base.indexes["pdq"].index
    assert isinstance(pdq, MultiIndexHash)
    for array in (pdq._order, pdq._offsets, pdq.codes, index._state.base.category_codes):
        assert _is_mapped(array)  # mapped read-only: shared, not copied
    legacy = IndicatorIndex.from_snapshot(load_snapshot(built["db"], public), MatchSettings())
    queries = _queries(built["codes"], built["rng"])
    got = _matches(index, queries)
    assert got == _matches(legacy, queries) and sum(map(len, got)) >= 150  # the same as the built-in-memory index
    assert len(index) == len(legacy) == N_PDQ + 50 - 1
    # the tombstoned row of the full build does not match; exact kinds work from the mapped values
    assert index.match_pdq([built["codes"][3].tobytes()]) == []
    md5 = built["table"]["value"][N_PDQ + 7].as_py()
    (hit,) = index.match({"md5": md5})
    assert (hit.indicator_id, hit.kind, hit.distance) == ("pm0007", "md5", 0)


@pytest.mark.parametrize("mode", ["multihash", "flat"])
def test_deltas_apply_on_the_mapped_base(tmp_path, keys, built, mode):
    private, public = keys
    db = str(tmp_path / "db")
    codes = built["codes"]
    build_snapshot(built["table"], db, private)
    rng = np.random.default_rng(11)
    extra = rng.integers(0, 256, (30, 32), dtype=np.uint8)
    build_snapshot(_table(extra, prefix="x", md5=0), db, private, base="latest", disable_ids=["p000010", "p000011"])
    settings = MatchSettings(pdq_index=mode)
    index = load_index(db, public, settings)
    assert index.version == 2 and index._state.overlay is not None
    assert index.match_pdq([codes[10].tobytes()]) == [] and index.match_pdq([codes[11].tobytes()]) == []
    assert [m.indicator_id for m in index.match_pdq([extra[5].tobytes()])] == ["x000005"]
    assert [m.indicator_id for m in index.match_pdq([codes[12].tobytes()])] == ["p000012"]
    legacy = IndicatorIndex.from_snapshot(load_snapshot(db, public), settings)
    queries = _queries(codes, rng, 100) + [e.tobytes() for e in extra[:10]]
    assert _matches(index, queries) == _matches(legacy, queries)


def test_a_damaged_index_file_is_refused_before_mapping(tmp_path, keys, built):
    private, public = keys
    db = str(tmp_path / "db")
    manifest = build_snapshot(built["table"], db, private)
    path = os.path.join(db, "versions", "1", mapped.ORDER_FILE)
    with open(path, "r+b") as fh:
        fh.seek(os.path.getsize(path) // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 1]))
    with pytest.raises(SnapshotError, match="checksum mismatch for pdq_mih_order.npy in version 1"):
        load_index(db, public)
    assert cli_main(["indicators", "verify", "--public-key", public, db]) != 0  # verify checks the mapped files too
    os.remove(path)
    with pytest.raises(SnapshotError, match="pdq_mih_order.npy is missing from version 1"):
        load_index(db, public)
    assert manifest["files"][mapped.ORDER_FILE]["bytes"] > 0


def test_a_version_written_in_chunks_equals_one_written_at_once(tmp_path, keys, monkeypatch):
    """A version's files are written WRITE_CHUNK rows at a time from the sort order (no sorted copy
    of the table is made): with chunks of 997 rows, from shuffled input with tombstones, every
    file holds what one chunk writes, in the canonical order, and both match alike."""
    private, public = keys
    codes = np.random.default_rng(11).integers(0, 256, (N_PDQ, 32), dtype=np.uint8)
    table = _table(codes)
    table = table.take(np.random.default_rng(2).permutation(table.num_rows))
    dead = ["p000003", "pm0007"]
    one = build_snapshot(table, str(tmp_path / "one"), private, disable_ids=dead)
    monkeypatch.setattr(snapshot_build, "WRITE_CHUNK", 997)
    seen = []
    many = build_snapshot(table, str(tmp_path / "many"), private, disable_ids=dead, progress=seen.append)
    n, tables = table.num_rows, 256 // many["index"]["mih_bits"]
    assert seen == list(range(997, n, 997)) + [n] * (1 + tables)  # each chunk, then each multi-index table
    folders = [tmp_path / name / "versions" / "1" for name in ("one", "many")]
    groups = [pq.ParquetFile(f / "indicators.parquet").metadata.num_row_groups for f in folders]
    assert groups == [1, -(-table.num_rows // 997)]
    assert one["index"] == many["index"] and one["counts"] == many["counts"] and one["index"]["mih"]
    assert one["index"]["categories"] == ["A1", "B2", "unspecified"]
    assert one["index"]["sources"] == ["eu-centre", "ncmec"]
    assert set(one["files"]) == set(many["files"])
    for name in one["files"]:
        if name.endswith(".npy"):
            a, b = (np.load(f / name) for f in folders)
            assert a.dtype == b.dtype and np.array_equal(a, b), name
    rows = [pa.ipc.open_file(str(f / mapped.ROWS_FILE)).read_all() for f in folders]
    assert rows[0].equals(rows[1]) and rows[0]["value"].null_count == N_PDQ
    for f in folders:  # a pdq row's value is a null of no bytes, not its hash hidden behind the null
        assert os.path.getsize(f / mapped.ROWS_FILE) < 32 * table.num_rows
    tables = [load_snapshot(str(f.parent.parent), public).table.drop_columns(["added_at", "disabled_at"])
              for f in folders]
    assert tables[0].equals(tables[1])
    expected = [f"p{i:06d}" for i in range(N_PDQ)] + [f"pm{i:04d}" for i in range(50)]  # pdq first, then by id
    assert tables[0]["indicator_id"].to_pylist() == expected
    assert np.array_equal(np.load(folders[0] / "pdq_codes.npy"), codes)
    disabled = np.load(folders[1] / mapped.DISABLED_FILE)
    assert [expected[i] for i in disabled] == dead
    a, b = load_index(str(tmp_path / "one"), public), load_index(str(tmp_path / "many"), public)
    for q in codes[:40]:
        assert a.match_pdq([q.tobytes()]) == b.match_pdq([q.tobytes()])


def test_a_snapshot_without_index_files_still_loads(tmp_path, keys):
    """Snapshots written before the index files existed are loaded into memory as before."""
    private, public = keys
    db = str(tmp_path / "db")
    codes = np.random.default_rng(3).integers(0, 256, (40, 32), dtype=np.uint8)
    manifest = build_snapshot(_table(codes, md5=2), db, private)
    folder = os.path.join(db, "versions", "1")
    for name in (mapped.ROWS_FILE, mapped.CATEGORY_FILE, mapped.SOURCE_FILE, mapped.DISABLED_FILE):
        os.remove(os.path.join(folder, name))
        del manifest["files"][name]
    del manifest["index"]  # as written before the index files existed, and signed again
    raw = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    with open(os.path.join(folder, "manifest.json"), "wb") as fh:
        fh.write(raw)
    with open(os.path.join(folder, "manifest.sig"), "wb") as fh:
        fh.write(base64.b64encode(sign(load_private_key(private), raw)) + b"\n")
    assert not mapped.has_index_files(load_snapshot(db, public).manifest)
    index = load_index(db, public)
    assert [m.indicator_id for m in index.match_pdq([codes[1].tobytes()])] == ["p000001"]


def test_compact_folds_the_chain_into_a_new_mapped_base(tmp_path, keys, built, capsys, monkeypatch):
    private, public = keys
    db = str(tmp_path / "db")
    codes = built["codes"]
    build_snapshot(built["table"], db, private)
    extra = np.random.default_rng(5).integers(0, 256, (20, 32), dtype=np.uint8)
    build_snapshot(_table(extra, prefix="y", md5=0), db, private, base="latest", disable_ids=["p000020"])
    before = load_index(db, public)
    with pytest.raises(SnapshotError, match="version 1 of .* is already a full snapshot"):
        compact(db, private, version=1)
    with monkeypatch.context() as m:
        m.setattr(snapshot_load, "_chain", None)  # the chain is streamed, never loaded whole
        assert cli_main(["indicators", "compact", "--key", private, db]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == 3 and out["type"] == "full" and out["parent"] is None
    assert load_snapshot(db, public, 3).table.equals(load_snapshot(db, public, 2).table)  # exactly the resolved rows
    after = load_index(db, public)
    assert after.version == 3 and after._state.overlay is None  # one mapped base, no overlay
    assert len(after) == len(before)
    queries = _queries(codes, np.random.default_rng(9), 100) + [e.tobytes() for e in extra]
    assert _matches(after, queries) == _matches(before, queries)
    assert after.match_pdq([codes[20].tobytes()]) == []  # the tombstone survives compaction
    # a running worker at version 2 moves to the compacted base by a full load (no delta path)
    assert before.refresh(db, public) is True and before.version == 3
    assert _matches(before, queries) == _matches(after, queries)


def test_an_object_store_version_is_copied_once_per_machine_then_mapped(tmp_path, keys, built, monkeypatch):
    """Through Beam's FileSystems (the path gs:// takes): the first load copies the version's
    index files into the cache (checking every checksum), a second process-like load reuses the
    copy, a damaged source file is refused, and a newer version replaces the older copy."""
    from csadetect.core import fs

    private, public = keys
    db, cache = str(tmp_path / "db"), str(tmp_path / "cache")
    build_snapshot(built["table"], db, private)
    monkeypatch.setattr(fs, "FORCE_BEAM", True)
    index = load_index(db, public, cache_dir=cache)
    (root,) = os.listdir(cache)
    copies = [d for d in os.listdir(os.path.join(cache, root)) if d.startswith("v")]
    assert len(copies) == 1 and copies[0].startswith("v1-")
    copied = os.path.join(cache, root, copies[0])
    assert sorted(os.listdir(copied)) == sorted(mapped._needed(built["manifest"]))
    pdq = index._state.base.indexes["pdq"].index
    assert _is_mapped(pdq._order) and os.path.join(copied, mapped.ORDER_FILE) in open("/proc/self/maps").read()
    stamp = os.stat(os.path.join(copied, mapped.ORDER_FILE)).st_mtime_ns
    again = load_index(db, public, cache_dir=cache)  # another worker process on the machine
    assert os.stat(os.path.join(copied, mapped.ORDER_FILE)).st_mtime_ns == stamp
    queries = _queries(built["codes"], np.random.default_rng(2), 50)
    assert _matches(again, queries) == _matches(index, queries)
    # a new full version: copied next to nothing (the old copy goes), and refused when damaged
    build_snapshot(built["table"].slice(0, N_PDQ), db, private)
    path = os.path.join(db, "versions", "2", mapped.CATEGORY_FILE)
    original = open(path, "rb").read()
    with open(path, "wb") as fh:
        fh.write(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(SnapshotError, match="checksum mismatch for category_codes.npy in version 2"):
        load_index(db, public, cache_dir=cache)
    with open(path, "wb") as fh:
        fh.write(original)
    assert index.refresh(db, public) is True and index.version == 2
    assert [d for d in os.listdir(os.path.join(cache, root)) if d.startswith("v")] == [
        d for d in os.listdir(os.path.join(cache, root)) if d.startswith("v2-")]


def test_wide_substring_tables_are_written_and_mapped(tmp_path, keys, built, monkeypatch):
    """Large snapshots carry 22-bit substring tables (fewer candidates per probe): the manifest
    says so, the mapped index uses them, and matches equal the in-memory 16-bit index's."""
    private, public = keys
    db = str(tmp_path / "db")
    monkeypatch.setattr(MultiIndexHash, "WIDE_FROM", MultiIndexHash.FLAT_BELOW)  # 70k rows count as large here
    manifest = build_snapshot(built["table"], db, private)
    assert manifest["index"]["mih_bits"] == 22
    index = load_index(db, public)
    pdq = index._state.base.indexes["pdq"].index
    assert (pdq.bits, pdq.tables, pdq.nflip) == (22, 11, 2) and _is_mapped(pdq._order)
    monkeypatch.setattr(MultiIndexHash, "WIDE_FROM", 1 << 40)
    legacy = IndicatorIndex.from_snapshot(load_snapshot(db, public), MatchSettings())
    assert legacy._state.base.indexes["pdq"].index.bits == 16
    queries = _queries(built["codes"], np.random.default_rng(8), 200)
    assert _matches(index, queries) == _matches(legacy, queries)


def test_rows_of_by_binary_search_equals_the_hash_join(built, keys):
    """A delta's few ids are found in the mapped base by binary search within each kind's run;
    the rows equal those a hash join over every id finds (ids of both kinds, absent ids)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    _, public = keys
    seg = load_index(built["db"], public)._state.base
    wanted = pa.chunked_array([["p000000", "p012345", f"p{N_PDQ - 1:06d}", "pm0000", "pm0049", "zz-absent", "p0",
                                "pm0025", "a-absent"]])
    rows = seg.rows_of(wanted)
    joined = np.flatnonzero(pc.is_in(seg.ids, value_set=wanted).to_numpy(zero_copy_only=False))
    assert rows.tolist() == joined.tolist() and len(rows) == 6
    assert seg.rows_of(pa.chunked_array([[f"p{i:06d}" for i in range(2_000)]])).tolist() == list(range(2_000))  # the join path
