"""Single rows of a version by id (:mod:`csadetect.indicators.snapshot_rows`), what ``csadetect match``
says of a match: each row as ``load_snapshot`` resolves it, deltas over the base, reading only the
row groups that can hold the id, from the verified file; and ``match`` no longer loads a version whole."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csadetect.core.keys import generate_keypair
from csadetect.indicators import snapshot_build
from csadetect.indicators.rows import Indicator
from csadetect.indicators.snapshot import SnapshotError, build_snapshot, load_snapshot
from csadetect.indicators.snapshot_rows import RowLookup

IDS = [f"id-{i:02d}" for i in range(24)] + ["A", "é", "z-9"]
KINDS = {"pdq": 64, "md5": 32, "sha1": 40}
ROW = st.tuples(st.sampled_from(sorted(KINDS)), st.integers(0, 3), st.sampled_from(["", "a note", "ñ"]))
VERSION = st.dictionaries(st.sampled_from(IDS), ROW, min_size=1, max_size=len(IDS))


def indicators(rows: dict) -> list[Indicator]:
    return [Indicator(i, kind, f"{value + 1:0{KINDS[kind]}x}", note=note) for i, (kind, value, note) in rows.items()]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=VERSION, deltas=st.lists(st.tuples(VERSION, st.lists(st.sampled_from(IDS), max_size=3)), max_size=2),
       chunk=st.integers(1, 6))
def test_each_row_is_the_resolved_row_of_the_version(base, deltas, chunk, keys, tmp_path_factory, monkeypatch):
    """Random bases written in row groups of 1-6 rows, with deltas that change, add, move to another
    kind and disable rows: every id's row is the one ``load_snapshot`` gives, an id it lacks or asked
    with another kind gives None."""
    monkeypatch.setattr(snapshot_build, "WRITE_CHUNK", chunk)
    private, public = keys
    db = tmp_path_factory.mktemp("db")
    build_snapshot(indicators(base), db, private)
    known = set(base)
    for changed, disabled in deltas:
        known |= set(changed)
        build_snapshot(indicators(changed), db, private, base="latest", disable_ids=[i for i in disabled if i in known])
    snapshot = load_snapshot(db, public)
    want = {row["indicator_id"]: row for row in snapshot.table.to_pylist()}
    pairs = [(kind, ident) for ident in IDS for kind in KINDS]
    with RowLookup(db, public, snapshot.version) as rows:
        for kind, ident in pairs:
            assert rows.row(kind, ident) == (want[ident] if want.get(ident, {}).get("kind") == kind else None)
    with RowLookup(db, public, snapshot.version) as bulk:  # the same answers, read at once
        bulk.prefetch(pairs)
        read = bulk.groups_read
        assert read <= bulk._reader.num_row_groups
        for kind, ident in pairs:
            assert bulk.row(kind, ident) == (want[ident] if want.get(ident, {}).get("kind") == kind else None)
        assert bulk.groups_read == read  # answered from what the prefetch read


def test_a_lookup_reads_only_the_row_groups_that_can_hold_the_id(keys, tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot_build, "WRITE_CHUNK", 10)  # 300 rows: 30 row groups
    private, public = keys
    rows = {f"id-{i:03d}": ("pdq", i, f"n{i}") for i in range(200)} | {f"m-{i:03d}": ("md5", i, "") for i in range(100)}
    build_snapshot(indicators(rows), tmp_path / "db", private)
    with RowLookup(tmp_path / "db", public, 1) as lookup:
        assert lookup.row("pdq", "id-123")["note"] == "n123" and lookup.groups_read == 1
        assert lookup.row("pdq", "id-125")["note"] == "n125" and lookup.groups_read == 1  # the group was kept
        assert lookup.row("md5", "m-042")["value"] == f"{43:032x}" and lookup.groups_read == 2
        assert lookup.row("pdq", "id-999") is None and lookup.groups_read == 2  # no group's ids reach it
    assert lookup._stack is None  # the file was let go


def test_a_base_that_fails_its_checksum_is_refused_at_the_first_lookup(keys, tmp_path):
    private, public = keys
    build_snapshot(indicators({"a": ("pdq", 1, "")}), tmp_path / "db", private)
    data = tmp_path / "db" / "versions" / "1" / "indicators.parquet"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 1
    data.write_bytes(bytes(raw))
    lookup = RowLookup(tmp_path / "db", public, 1)  # nothing is read yet
    with pytest.raises(SnapshotError, match="checksum mismatch for indicators.parquet in version 1"):
        lookup.row("pdq", "a")


def test_match_describes_with_the_delta_rows_and_never_loads_the_base_whole(keys, tmp_path, capsys, monkeypatch):
    """``csadetect match`` of hash values: the notes of the latest rows (a delta's over the base's),
    with the index mapped as workers load it; the full base is never read into memory whole."""
    from csadetect.cli import matching
    from csadetect.indicators import snapshot_load
    from tests.cli_helpers import run_cli

    private, public = keys
    db = tmp_path / "db"
    build_snapshot([Indicator("a", "pdq", "f" * 64, note="base note"), Indicator("b", "pdq", "0" * 64, note="kept")],
                   db, private)
    build_snapshot([Indicator("a", "pdq", "f" * 64, note="delta note")], db, private, base="latest")
    load_version = snapshot_load._load_version

    def deltas_only(db_dir, version, public_key):
        manifest, table, codes = load_version(db_dir, version, public_key)
        assert manifest["type"] == "delta", "match loaded the full base whole"
        return manifest, table, codes

    monkeypatch.setattr(snapshot_load, "_load_version", deltas_only)
    probes = tmp_path / "probes.txt"
    probes.write_text("f" * 64 + "\n" + "0" * 64 + "\nnot hex\n" + "0f" * 32 + "\n")
    for piece in (1, 2, 50_000):  # the list matched a piece at a time, each piece's rows read at once
        monkeypatch.setattr(matching, "PREFETCH", piece)
        code, out, err = run_cli(capsys, "match", "--no-embedding", "--kind", "pdq", "--indicators", db,
                                 "--public-key", public, "--hashes", probes)
        assert code == 1 and [line["input"].rsplit(":", 1)[1] for line in out] == ["1", "2", "3", "4"], err
        assert [[(m["indicator_id"], m["note"]) for m in line.get("matches", [])] for line in out] == [
            [("a", "delta note")], [("b", "kept")], [], []]
        assert "error" in out[2]


def test_a_match_without_its_row_is_an_error_not_a_line_without_a_note():
    """The index and the data file are one signed version; should a match's row be missing, match
    says so in one line instead of printing the match without its note."""
    from csadetect.cli.matching import _Matcher
    from csadetect.config.settings import load_settings
    from csadetect.indicators.index import Match

    class NoRows:
        version = 7

        def row(self, kind, indicator_id):
            return None

    matcher = _Matcher(NoRows(), None, load_settings())
    with pytest.raises(SnapshotError, match=r"^version 7: matched indicator 'x-1' \(md5\) is not in its data file$"):
        matcher.describe(Match("x-1", "md5", 0, "csam-a1"))
