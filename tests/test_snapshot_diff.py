"""``indicators diff`` joins two versions' rows as it reads them, a batch at a time, in their
canonical order (:mod:`csadetect.indicators.snapshot_diff`): the same lists as comparing the two
versions row by row, id by id, whatever the batches, and for ids that changed kind (they sit at
two places in that order)."""
from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csadetect.indicators import snapshot_diff
from csadetect.indicators.snapshot_diff import diff_batches
from csadetect.indicators.snapshot_tables import SCHEMA, sort_order, take_rows

IDS = ["a", "b", "c", "d", "e", "f", "A", "é", "a-1"]
KINDS = ["pdq", "md5", "sha1"]
ROW = st.fixed_dictionaries({
    "kind": st.sampled_from(KINDS), "value": st.sampled_from(["v1", "v2"]), "category": st.sampled_from(["x", "y"]),
    "source": st.sampled_from(["s", "t"]), "note": st.sampled_from(["", "n"]),
    "disabled_at": st.sampled_from([None, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"])})
VERSION = st.dictionaries(st.sampled_from(IDS), ROW, max_size=len(IDS))


def by_hand(a: dict, b: dict) -> dict:
    """The rule, id by id."""
    out = {"added": sorted(set(b) - set(a)), "removed": sorted(set(a) - set(b)),
           "disabled": [], "enabled": [], "changed": []}
    for i in sorted(set(a) & set(b)):
        off_a, off_b = a[i]["disabled_at"] is not None, b[i]["disabled_at"] is not None
        if off_b and not off_a:
            out["disabled"].append(i)
        elif off_a and not off_b:
            out["enabled"].append(i)
        elif any(a[i][f] != b[i][f] for f in ("kind", "value", "category", "source", "note")):
            out["changed"].append(i)
    return out


def batches(rows: dict, cuts: list) -> list:
    """The rows in the canonical order (kind, then id), cut into batches (some empty)."""
    table = pa.table({f.name: [({"indicator_id": i, "added_at": None} | r)[f.name] for i, r in rows.items()]
                      for f in SCHEMA}, schema=SCHEMA)
    table = take_rows(table, sort_order(table))
    edges = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})
    return [table.slice(s, e - s) for s, e in zip(edges, edges[1:])] + [table.slice(0, 0)]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=VERSION, b=VERSION, cuts_a=st.lists(st.integers(0, 20), max_size=5),
       cuts_b=st.lists(st.integers(0, 20), max_size=5), same=st.booleans(), piece=st.integers(1, 12))
def test_the_batched_join_gives_the_lists_of_comparing_id_by_id(a, b, cuts_a, cuts_b, same, piece, monkeypatch):
    monkeypatch.setattr(snapshot_diff, "PIECE", piece)
    if same:  # many ids in both versions, with few changes: the usual diff of two versions
        b = {**a, **dict(list(b.items())[:2])}
    got = diff_batches(batches(a, cuts_a), batches(b, cuts_b), 1, 2)
    assert got == {"from": 1, "to": 2, **by_hand(a, b)}


def test_nothing_and_everything():
    rows = {"a": {"kind": "pdq", "value": "v", "category": "x", "source": "s", "note": "", "disabled_at": None}}
    assert diff_batches([], [], 1, 1) == {"from": 1, "to": 1, "added": [], "removed": [], "disabled": [],
                                          "enabled": [], "changed": []}
    assert diff_batches([], batches(rows, []), None, 3)["added"] == ["a"]
    assert diff_batches(batches(rows, []), [], 3, None)["removed"] == ["a"]


def test_the_command_reads_each_version_verified_and_a_batch_at_a_time(tmp_path, capsys, monkeypatch):
    """``indicators diff DB 1 2`` with batches of 3 rows: the lists of comparing the loaded versions,
    a kind changed included; a base file that fails its checksum fails the diff with one line."""
    from csadetect.core.keys import generate_keypair
    from csadetect.indicators import snapshot_load
    from csadetect.indicators.rows import Indicator
    from csadetect.indicators.snapshot import build_snapshot, load_snapshot
    from tests.cli_helpers import run_cli

    monkeypatch.setattr(snapshot_load, "READ_BATCH", 3)
    private, public = generate_keypair(tmp_path / "keys")
    db = tmp_path / "db"
    rows = [Indicator(f"p{i}", "pdq", f"{i:064x}") for i in range(10)] + [Indicator("m", "md5", "0" * 32)]
    build_snapshot(rows, db, private)
    changes = [Indicator("p3", "pdq", "f" * 64), Indicator("m", "sha1", "0" * 40), Indicator("new", "md5", "1" * 32)]
    build_snapshot(changes, db, private, base="latest", disable_ids=["p7"])
    code, out, err = run_cli(capsys, "indicators", "diff", "--public-key", public, db, 1, 2)
    assert code == 0 and out == [{"from": 1, "to": 2, "added": ["new"], "removed": [], "disabled": ["p7"],
                                  "enabled": [], "changed": ["m", "p3"]}], err
    by_id = {v: {r.indicator_id: r.__dict__ for r in load_snapshot(db, public, v).rows()} for v in (1, 2)}
    assert out[0] == {"from": 1, "to": 2, **by_hand(by_id[1], by_id[2])}
    data = db / "versions" / "1" / "indicators.parquet"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 1
    data.write_bytes(bytes(raw))
    code, out, err = run_cli(capsys, "indicators", "diff", "--public-key", public, db, 1, 2)
    assert code == 1 and out == [] and err.count("\n") == 1 and "checksum mismatch for indicators.parquet" in err
