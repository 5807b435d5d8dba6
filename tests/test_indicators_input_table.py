"""``indicators build`` reads CSV straight into Arrow columns (:mod:`csadetect.indicators.input_table`):
the same table, or the same one-line error, as an :class:`Indicator` per row
(``indicator_table(iter_indicators(path))``), whatever the file holds. Hypothesis writes the files:
plain rows, padded or upper-case fields, other kinds, times, non-ASCII, blank and short or long
rows, quoted commas and line breaks, bad quoting, bytes that are not UTF-8, odd headers."""
from __future__ import annotations

import csv
import io
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csadetect.indicators import input_table
from csadetect.indicators.input_table import csv_table, hex_widths
from csadetect.indicators.rows import FIELDS, IndicatorError, iter_indicators
from csadetect.indicators.snapshot_tables import indicator_table
from csadetect.signals import SIGNAL_TYPES

FUZZ = settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PDQ = SIGNAL_TYPES["pdq"].examples()[0]

VPDQ, EMBEDDING = SIGNAL_TYPES["vpdq"].examples()[0], SIGNAL_TYPES["embedding"].examples()[0]
# fields a row may have and still be valid (plain, or normalised by Indicator), and fields that are not
IDS = st.one_of(st.sampled_from(["r1", "r2", "id-7", "x" * 128, "a\"b", "#1", " r3 ", "\u00e91", "r\u00a0",
                                 "\u2003r4"]), st.from_regex(r"[!-~]{1,12}", fullmatch=True))
BAD_IDS = st.sampled_from(["a b", "x" * 129, "a\x01", "", " "])
KIND_VALUES = st.sampled_from([("pdq", PDQ), ("PDQ", PDQ.upper()), (" md5 ", " D41D8CD98F00B204E9800998ECF8427E "),
                               ("md5", "d41d8cd98f00b204e9800998ecf8427e"), ("sha1", "A" * 40), ("Sha256", "0f" * 32),
                               ("sha256", "0F" * 32), ("vpdq", VPDQ), ("embedding", EMBEDDING)])
BAD_KIND_VALUES = st.sampled_from([("pdq", PDQ[:63]), ("pdq", PDQ[:63] + "g"), ("md5", PDQ), ("pdq", ""),
                                   ("bogus", PDQ), ("", PDQ), ("vpdq", "zz"), ("embedding", "x")])
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)  # any code point a UTF-8 file can hold
LABELS = st.one_of(st.sampled_from(["", "csam-a1", " cat ", "ca t", "\u00e9t\u00e9", "  ", "a\u2003", "x,y",
                                    "\u00a0b"]), TEXT)
NOTES = st.one_of(st.sampled_from(["", "a note, with a comma", "two\nlines", 'say "hi"', " pad "]), TEXT)
TIMES = st.sampled_from(["", "", "", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00"])
BAD_TIMES = st.sampled_from(["2026-01-01", "soon", " x"])


@st.composite
def row_of(draw, header: list[str], bad: bool) -> list[str]:
    """A row for ``header``; with ``bad``, one of its fields (the id, the kind and value or a time) wrong."""
    spoil = draw(st.sampled_from(["indicator_id", "value"] + [h for h in header if h.endswith("_at")])) if bad else None
    kind, value = draw(BAD_KIND_VALUES if spoil == "value" else KIND_VALUES)
    fields = {"indicator_id": draw(BAD_IDS if spoil == "indicator_id" else IDS), "kind": kind, "value": value,
              "category": draw(LABELS), "source": draw(LABELS), "note": draw(NOTES)}
    for name in ("added_at", "disabled_at"):
        fields[name] = draw(BAD_TIMES if spoil == name else TIMES)
    return [fields.get(h.strip(), draw(NOTES)) for h in header]


@st.composite
def csv_files(draw, errors: bool = True) -> bytes:
    """A CSV file: with ``errors``, now and then a bad header, row, line or byte."""
    optional = draw(st.lists(st.sampled_from(FIELDS[3:]), unique=True, max_size=5))
    header = draw(st.permutations(["indicator_id", "kind", "value"] + optional))
    if errors and draw(st.integers(0, 14)) == 7:
        header = header + [draw(st.sampled_from(["kind", " note", "colour"]))]  # a repeat, a padded or an unknown name
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # any field holding \r or \n is quoted
    writer.writerow(header)
    for _ in range(draw(st.integers(0, 12))):
        shape = draw(st.integers(0, 59) if errors else st.sampled_from([0, 1, 2] + [10] * 20))
        if shape == 0:
            out.write("\n")  # an empty line
        elif shape == 1:
            writer.writerow([" "] * len(header))  # a row of blank fields
        elif shape == 2:
            writer.writerow([" "] * (len(header) - 1))  # a short row of blank fields (skipped too)
        elif shape == 3:
            writer.writerow(draw(row_of(header, False))[:-1])  # a field short
        elif shape == 4:
            writer.writerow(draw(row_of(header, False)) + ["extra"])
        elif shape == 5:
            out.write('r9,pdq,"' + PDQ + '\n')  # a quote never closed
        else:
            writer.writerow(draw(row_of(header, shape < 10)))
    data = out.getvalue().encode("utf-8")
    if errors and draw(st.integers(0, 29)) == 13:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xff\xfe" + data[at:]  # not UTF-8
    return data


def outcome(read):
    try:
        return "rows", read().to_pylist()
    except IndicatorError as exc:
        return "error", str(exc)


def same_as_row_by_row(data: bytes, chunk: int) -> str:
    with tempfile.NamedTemporaryFile(suffix=".csv") as fh:
        fh.write(data)
        fh.flush()
        expected = outcome(lambda: indicator_table(iter_indicators(fh.name), chunk=chunk))
        assert outcome(lambda: csv_table(fh.name, chunk=chunk)) == expected
        return expected[0]


@FUZZ
@given(data=csv_files(), chunk=st.integers(1, 5))
def test_the_arrow_reader_gives_the_rows_and_errors_of_an_indicator_per_row(data, chunk):
    same_as_row_by_row(data, chunk)


@FUZZ
@given(data=csv_files(errors=False), chunk=st.integers(1, 5))
def test_the_arrow_reader_gives_the_rows_of_valid_files_in_any_form(data, chunk):
    assert same_as_row_by_row(data, chunk) == "rows"


def test_plain_rows_make_no_indicator_objects_and_others_keep_their_place(tmp_path, monkeypatch):
    """Rows in the plain form are taken column by column; a row that is not (upper-case kind, padded
    id, a vPDQ value, a time) is made an Indicator as before and keeps its place; blank rows go."""
    made = []
    real = input_table.make_row
    monkeypatch.setattr(input_table, "make_row", lambda record, where: made.append(where) or real(record, where))
    path = tmp_path / "rows.csv"
    vpdq = SIGNAL_TYPES["vpdq"].examples()[0]
    path.write_text("indicator_id,kind,value,category,added_at\n"
                    f"a,pdq,{PDQ.upper()},,\n"
                    f"b,PDQ,{PDQ},cat,\n"
                    ",,,,\n"
                    f" c ,md5,{'0' * 32},cat,\n"
                    f"d,vpdq,{vpdq},,\n"
                    f"e,sha1,{'a' * 40},,2026-01-01T00:00:00Z\n"
                    f"f,sha256,{'B' * 64}, cat ,\n")
    table = csv_table(str(path), chunk=3)
    assert made == [f"{path}:3", f"{path}:5", f"{path}:6", f"{path}:7", f"{path}:8"]
    assert table.column("indicator_id").to_pylist() == ["a", "b", "c", "d", "e", "f"]
    assert table.column("value").to_pylist()[0] == PDQ and table.column("kind").to_pylist()[1] == "pdq"
    assert table.column("category").to_pylist() == ["unspecified", "cat", "cat", "unspecified", "unspecified", "cat"]
    assert table.column("added_at").to_pylist()[4] == "2026-01-01T00:00:00Z"
    assert table.equals(indicator_table(iter_indicators(str(path))))
    assert hex_widths() == {"pdq": 64, "md5": 32, "sha256": 64, "sha1": 40}


def test_a_bad_row_before_a_bad_line_is_the_error_as_when_read_row_by_row(tmp_path):
    """The chunk read before a line that ends the file (a field too many) is checked first."""
    path = tmp_path / "rows.csv"
    path.write_text(f"indicator_id,kind,value\nr1,pdq,{PDQ}\nr2,pdq,xyz\nr3,pdq,{PDQ},extra\n")
    with pytest.raises(IndicatorError, match=r"rows.csv:3: pdq value must be 64 hex characters, got 3$"):
        csv_table(str(path))
    path.write_text(f"indicator_id,kind,value\nr1,pdq,{PDQ}\nr3,pdq,{PDQ},extra\n")
    with pytest.raises(IndicatorError, match=r"rows.csv:3: more fields than the header has$"):
        csv_table(str(path))


def test_progress_after_each_chunk_and_a_large_input_spilled(tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    path.write_text("indicator_id,kind,value\n" + "".join(f"r{i},md5,{i:032x}\n" for i in range(7)))
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    seen = []
    table = csv_table(str(path), seen.append, chunk=3)
    assert seen == [3, 6] and table["indicator_id"].num_chunks == 3 and list(spill.iterdir()) == []
    assert table.equals(indicator_table(iter_indicators(str(path))))
    assert csv_table(str(path), seen.append, chunk=7).num_rows == 7 and seen == [3, 6, 7]  # one chunk: not spilled


@st.composite
def hash_lists(draw) -> bytes:
    """A hash list: perhaps a header line naming a kind, values of several widths and cases,
    comments, blank lines, padded lines, now and then a line of no kind or bytes that are not UTF-8."""
    lines = []
    header = draw(st.sampled_from(["", "# kind: md5", "# kind: pdq", "sha256", "# kind: vpdq", "# kind: bogus",
                                   "# a list"]))
    if header:
        lines.append(header)
    for _ in range(draw(st.integers(0, 12))):
        lines.append(draw(st.sampled_from(["", "   ", "# a comment", "0" * 32, "A" * 32, " " + "1" * 32 + " ", "2" * 40,
                                           PDQ, PDQ.upper(), "0f" * 32, VPDQ, "zz", "1" * 31, "# kind: md5"])))
    data = "".join(line + draw(st.sampled_from(["\n", "\r\n", "\r"])) for line in lines).encode()
    if draw(st.integers(0, 29)) == 13:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xff" + data[at:]
    return data


@FUZZ
@given(data=hash_lists(), kind=st.sampled_from([None, None, "md5", "pdq", "sha256"]), chunk=st.integers(1, 4),
       stem=st.sampled_from(["needles", "my list", "x" * 130]))
def test_a_hash_list_gives_the_rows_and_errors_of_an_indicator_per_row(data, kind, chunk, stem):
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/{stem}.txt"
        with open(path, "wb") as fh:
            fh.write(data)
        expected = outcome(lambda: indicator_table(iter_indicators(path, "hashes", kind), chunk=chunk))
        assert outcome(lambda: input_table.hash_list_table(path, kind, chunk=chunk)) == expected


def test_a_hash_list_of_a_known_kind_makes_no_indicator_objects(tmp_path, monkeypatch):
    made = []
    real = input_table.make_row
    monkeypatch.setattr(input_table, "make_row", lambda record, where: made.append(where) or real(record, where))
    path = tmp_path / "needles.txt"
    path.write_text("# kind: pdq\n" + "".join(f"{i:064x}\n" for i in range(7)) + " " + PDQ.upper() + " \n")
    seen = []
    table = input_table.hash_list_table(str(path), progress=seen.append, chunk=3)
    assert made == [] and seen == [3, 6] and table.num_rows == 8
    assert table["indicator_id"].to_pylist()[:2] == ["needles-2", "needles-3"] and table["value"][-1].as_py() == PDQ
    assert table.equals(indicator_table(iter_indicators(str(path))))


def test_a_bad_value_before_bytes_that_are_not_utf8_is_the_error_as_row_by_row(tmp_path):
    """The text is decoded a block at a time, so the rows before a block that is not UTF-8 are read
    (and checked) first; a chunk read up to there is checked before that error is raised."""
    path = tmp_path / "needles.txt"
    path.write_bytes(b"# kind: md5\nnot-a-hash\n" + b"".join(b"%032x\n" % i for i in range(1000)) + b"\xff\n")
    message = f"{path}:2: md5 value must be 32 hex characters, got 10"
    assert outcome(lambda: indicator_table(iter_indicators(str(path)))) == ("error", message)
    assert outcome(lambda: input_table.hash_list_table(str(path), chunk=5000)) == ("error", message)
    path.write_bytes(path.read_bytes().replace(b"not-a-hash", b"0" * 32))
    assert outcome(lambda: input_table.hash_list_table(str(path), chunk=5000)) == ("error", f"{path}: not UTF-8 text")
