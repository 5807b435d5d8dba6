"""``indicators import`` collects a file's rows into Arrow a chunk at a time and finds repeated
values and ids by sorting (:class:`csadetect.indicators.imported.Collector`), not with a set and a
dict of every row: the same rows, lines, refusals (in line order) and merged count as collecting
them one by one, whatever the order of good rows, bad rows, refusals and repeats."""
from __future__ import annotations

import tempfile

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from csadetect.indicators import formats, snapshot_tables
from csadetect.indicators import imported as imported_module
from csadetect.indicators.imported import Collector, Imported
from csadetect.indicators.rows import Indicator, IndicatorError
from csadetect.indicators.snapshot_tables import Spill
from csadetect.signals import get

VALUES = ["0" * 32, "1" * 32, "2" * 32, "F" * 32, "f" * 32, "bad"]  # upper and lower case: one value
EVENTS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(["a", "b", "c", "d", " a"]), st.sampled_from(VALUES)),
    st.tuples(st.just("refuse"), st.just(""), st.just(""))), max_size=30)


def one_by_one(events, merge: bool):
    """The rule as it was: a set of (kind, value) and a dict of ids, row by row."""
    rows, lines, refused, merged, ids, values = [], [], [], 0, {}, set()
    for line, (what, ident, value) in enumerate(events, 2):
        if what == "refuse":
            refused.append((line, "refused by its reader"))
            continue
        try:
            row = Indicator(ident, "md5", value)
        except IndicatorError as exc:
            refused.append((line, str(exc)))
            continue
        if merge:
            if (row.kind, row.value) in values:
                merged += 1
                continue
            values.add((row.kind, row.value))
        if row.indicator_id in ids:
            first = ids[row.indicator_id]
            refused.append((line, f"duplicate indicator_id {row.indicator_id!r} (first on line {first})"))
            continue
        ids[row.indicator_id] = line
        rows.append(row)
        lines.append(line)
    return rows, lines, refused, merged


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=EVENTS, merge=st.booleans(), chunk=st.integers(1, 4))
def test_the_sorted_repeats_are_those_found_row_by_row(events, merge, chunk, monkeypatch):
    monkeypatch.setattr(snapshot_tables, "TABLE_CHUNK", chunk)
    imported = Imported("f", "csadetect")
    with Spill() as spill:
        rows = Collector(imported, merge, spill)
        for line, (what, ident, value) in enumerate(events, 2):
            if what == "refuse":
                rows.refuse(line, "refused by its reader")
            else:
                rows.add(line, {"indicator_id": ident, "kind": "md5", "value": value})
        rows.finish()
    assert (imported.rows, list(imported.lines), imported.refused, imported.merged) == one_by_one(events, merge)


def test_a_large_import_is_spilled_and_its_file_removed(tmp_path, monkeypatch):
    """More than a chunk of rows goes through an Arrow file in TMPDIR, gone once the import is read,
    and gone too when the file turns out unreadable part way (a value of no known kind)."""
    monkeypatch.setattr(snapshot_tables, "TABLE_CHUNK", 2)
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    listing = tmp_path / "md5.txt"
    listing.write_text("# kind: md5\n" + "".join(f"{i:032x}\n" for i in range(7)) + f"{3:032x}\n")
    imported = formats.read(str(listing))
    assert imported.table.num_rows == 7 and imported.merged == 1 and list(imported.lines) == list(range(2, 9))
    assert imported.table["indicator_id"].num_chunks == 4 and list(spill.iterdir()) == []
    listing.write_text("".join(f"{i:032x}\n" for i in range(5)) + "a" * 64 + "\n")
    with pytest.raises(IndicatorError, match="could be pdq or sha256"):
        formats.read(str(listing))
    assert list(spill.iterdir()) == []


def test_the_file_is_read_from_disk_line_by_line_as_its_whole_text_was(tmp_path, capsys):
    """Never held whole: a BOM is still dropped, lines still end where ``str.splitlines`` ends them
    (the line numbers of refusals), and bytes that are not UTF-8 anywhere in the file, past the
    first read block too, still fail the import with one line and write nothing."""
    from tests.cli_helpers import run_cli

    listing = tmp_path / "md5.txt"
    listing.write_text("\ufeff# kind: md5\n" + "0" * 32 + "\x85bad\r\n" + "1" * 32 + "\r" + "2" * 32 + "\n",
                       encoding="utf-8", newline="")
    imported = formats.read(str(listing))
    assert imported.table["value"].to_pylist() == ["0" * 32, "1" * 32, "2" * 32]
    assert list(imported.lines) == [2, 4, 5] and [line for line, _ in imported.refused] == [3]
    csv_file = tmp_path / "rows.csv"
    rows = b"".join(b"r%d,md5,%032x\n" % (i, i) for i in range(500))
    csv_file.write_bytes(b"\xef\xbb\xbfindicator_id,kind,value\n" + rows + b"r9x,md5,\xff\n")
    code, out, err = run_cli(capsys, "indicators", "import", csv_file, "--csv", tmp_path / "out.csv")
    assert code == 1 and out == [] and err == f"error: {csv_file}: not UTF-8 text\n"
    assert not (tmp_path / "out.csv").exists()
    csv_file.write_bytes(csv_file.read_bytes().replace(b"\xff", b"0" * 32))
    code, out, err = run_cli(capsys, "indicators", "import", csv_file, "--csv", tmp_path / "out.csv")
    assert code == 0 and out[0]["imported"] == 501, err


# what a reader hands add_imported: a kind's name and a canonical value, and any id, labels and times
KINDS_AND_VALUES = [("md5", "0" * 32), ("md5", "f" * 32), ("pdq", "0" * 64), ("pdq", "e" * 64),
                    ("sha1", "a" * 40), *(("vpdq", v) for v in get("vpdq").examples()[:2])]
IDS = st.one_of(st.sampled_from(["a", "b", "x-1", "z" * 128]),  # plain
                st.sampled_from([" a", "a b", "é", "é" * 65, "", "a\x00", "z" * 129]),  # 65 é: 130 bytes
                st.text(max_size=6))
LABELS = st.one_of(st.none(), st.sampled_from(["", " ", "csam-a1", " csam-a1 ", "\u2003x", "é"]))
RECORDS = st.lists(st.one_of(
    st.tuples(
        st.fixed_dictionaries({"indicator_id": IDS},
                              optional={"category": LABELS, "source": LABELS, "note": LABELS,
                                        "added_at": st.sampled_from(["", "2026-01-02T03:04:05+01:00"])}),
        st.sampled_from(KINDS_AND_VALUES)).map(lambda r: {**r[0], "kind": r[1][0], "value": r[1][1]}),
    st.just(None)), max_size=25)


def _collect(records, merge: bool, imported_path: bool) -> Imported:
    imported = Imported("f", "threatexchange")
    with Spill() as spill:
        rows = Collector(imported, merge, spill)
        for line, record in enumerate(records, 2):
            if record is None:
                rows.refuse(line, "refused by its reader")
            elif imported_path:
                rows.add_imported(line, dict(record))
            else:
                rows.add(line, dict(record))
        rows.finish()
    return imported


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=RECORDS, merge=st.booleans(), chunk=st.integers(1, 4), kept=st.integers(0, 3))
@example(records=[{"indicator_id": "a", "kind": "md5", "value": "0" * 32, "category": " csam-a1 ", "source": "\u2003"},
                  None, {"indicator_id": "é" * 65, "kind": "pdq", "value": "0" * 64},
                  {"indicator_id": "b", "kind": "sha1", "value": "a" * 40, "added_at": "2026-01-02T03:04:05+01:00"},
                  {"indicator_id": "a b", "kind": "md5", "value": "f" * 32, "note": None}],
         merge=False, chunk=2, kept=1)
def test_rows_taken_as_columns_are_the_rows_an_indicator_makes(records, merge, chunk, kept, monkeypatch):
    """add_imported keeps plain rows of hex kinds as columns, without an Indicator: the same table
    (ids, kinds, values, labels, notes, times), lines, refusals and merges as add(), whatever the
    ids, labels and times, and however the rows of the two ways mix within and across chunks."""
    monkeypatch.setattr(snapshot_tables, "TABLE_CHUNK", chunk)
    monkeypatch.setattr(imported_module, "_LABELS_KEPT", kept)  # the labels remembered, or not
    fast, slow = _collect(records, merge, True), _collect(records, merge, False)
    assert fast.table.equals(slow.table), (fast.table.to_pylist(), slow.table.to_pylist())
    assert (list(fast.lines), fast.refused, fast.merged) == (list(slow.lines), slow.refused, slow.merged)
