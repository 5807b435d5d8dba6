"""Indicator files read into an Arrow table for ``indicators build``, and CSV read straight into
Arrow columns: the same rows and the same one-line errors as an :class:`Indicator` per row
(:func:`csadetect.indicators.rows.read_csv`), in about a fifth of the time.

The CSV rows are parsed by Python's ``csv`` module exactly as ``read_csv`` parses them (the same
dialect, the same rules for blank lines and field counts, the same line numbers), a chunk at a
time. Each chunk's columns are then checked in Arrow for the plain form of a row: an id of 1 to
:data:`~csadetect.indicators.rows.MAX_ID_BYTES` printable ASCII characters without spaces; the
name of a hex kind (:func:`hex_widths`) with exactly its number of hex digits; a category and a
source empty or with no whitespace or non-ASCII at either end; no ``added_at`` or ``disabled_at``.
Such a row is already valid and needs no more than its value lower-cased. Any other row (a vPDQ
or embedding value, padded fields, a time, an error) is made an :class:`Indicator` as before,
which normalises it or raises its error with its file and line, so a bad file gives the error of
its first bad row, as the row-by-row reader does. A hash list whose kind is known (``--kind`` or a
header line) is taken the same way (:func:`hash_list_table`); other formats, and lists of values
that each name their own kind, go through :class:`Indicator` rows.
"""
from __future__ import annotations

import contextlib
import csv
import gc
import itertools
import os
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csadetect.indicators.rows import (DEFAULT_CATEGORY, DEFAULT_SOURCE, MAX_ID_BYTES, IndicatorError, _csv_rows,
                                       _lines, csv_header, format_for, hash_list_values, iter_indicators, make_row,
                                       open_text)
from csadetect.indicators import snapshot_tables
from csadetect.indicators.snapshot_tables import SCHEMA, batched, collected, indicator_table, rows_to_table
from csadetect.signals import SIGNAL_TYPES
from csadetect.signals.base import HexSignal, SignalType

_PLAIN_ID = rf"^[\x21-\x7e]{{1,{MAX_ID_BYTES}}}$"  # printable ASCII, no space: strip() and the id rule keep it
_PLAIN_LABEL = r"(?s)^([\x21-\x7e](.*[\x21-\x7e])?)?$"  # empty, or nothing strip() would remove
_HEX = r"^[0-9a-fA-F]*$"


def hex_widths() -> dict[str, int]:
    """Hex digits of each kind whose values :class:`HexSignal` validates as it is (fixed-width hex,
    lower-cased): a value of exactly that many hex digits is valid for it."""
    return {name: 2 * signal.nbytes for name, signal in SIGNAL_TYPES.items()
            if isinstance(signal, HexSignal) and type(signal).validate is SignalType.validate
            and type(signal).normalise is HexSignal.normalise}


def input_table(path: str, fmt: Optional[str] = None, kind: Optional[str] = None,
                progress: Optional[Callable[[int], None]] = None) -> pa.Table:
    """The rows of an indicator file as a table in SCHEMA (``indicator_table`` of
    :func:`csadetect.indicators.rows.iter_indicators`): CSV through :func:`csv_table`, other
    formats an :class:`Indicator` per row. Ids are not checked unique here."""
    found = format_for(path, fmt)
    if kind is None and found == "csv":
        return csv_table(path, progress)
    if found == "hashes":
        return hash_list_table(path, kind, progress)
    return indicator_table(iter_indicators(path, fmt, kind), progress)


def csv_table(path: str, progress: Optional[Callable[[int], None]] = None, chunk: Optional[int] = None) -> pa.Table:
    """An indicator CSV as a table in SCHEMA, rows in file order, ``chunk`` (default
    :data:`~csadetect.indicators.snapshot_tables.TABLE_CHUNK`) rows at a time; the same table and errors as
    ``indicator_table(iter_indicators(path))``, with its ``progress`` and spilling (:func:`collected`)."""
    chunk = chunk or snapshot_tables.TABLE_CHUNK
    return collected(_csv_tables(path, chunk), chunk, progress)


def hash_list_table(path: str, kind: Optional[str] = None, progress: Optional[Callable[[int], None]] = None,
                    chunk: Optional[int] = None) -> pa.Table:
    """A hash list (``needles.txt``) as a table in SCHEMA, rows in file order; the same table and
    errors as ``indicator_table(iter_indicators(path, "hashes", kind))``. A list whose kind is known
    (``kind``, or a header line) is taken as the plain CSV rows are (:func:`_table`); a list of
    values that each name their own kind (MD5, SHA-1) is read an :class:`Indicator` per row."""
    chunk = chunk or snapshot_tables.TABLE_CHUNK
    return collected(_hash_list_tables(path, kind, chunk), chunk, progress)


def _hash_list_tables(path: str, kind: Optional[str], chunk: int) -> Iterator[pa.Table]:
    values = hash_list_values(path, _lines(path), kind)
    first = next(values, None)
    if first is None or first[1] is None:
        yield from (rows_to_table(batch) for batch in batched(iter_indicators(path, "hashes", kind), chunk))
        return
    stem = os.path.splitext(os.path.basename(path))[0]
    items = itertools.chain([first], values)

    def read() -> tuple[list[list[str]], list[int], Optional[IndicatorError]]:
        rows: list[list[str]] = []
        lines: list[int] = []
        with _gc_paused():
            try:
                for number, list_kind, text in itertools.islice(items, chunk):
                    rows.append([f"{stem}-{number}", list_kind, text, DEFAULT_CATEGORY])
                    lines.append(number)
            except IndicatorError as exc:  # not UTF-8 further on: after the rows before it
                return rows, lines, exc
        return rows, lines, None

    yield from _chunk_tables(path, ["indicator_id", "kind", "value", "category"], read, chunk)


def _csv_tables(path: str, chunk: int) -> Iterator[pa.Table]:
    """The rows of ``path`` as tables of ``chunk`` rows (the last one shorter)."""
    with open_text(path) as fh:
        reader = csv.reader(fh)
        try:
            header = csv_header(path, next(reader, None))
        except csv.Error as exc:
            raise IndicatorError(f"{path}:{reader.line_num}: bad CSV ({exc})") from None
        except UnicodeDecodeError:
            raise IndicatorError(f"{path}: not UTF-8 text") from None
        if len(set(header)) < len(header):  # a repeated column: a dict per row decides which one counts
            yield from (rows_to_table(batch) for batch in batched((row for _, row in _csv_rows(path)), chunk))
            return
        yield from _chunk_tables(path, header, lambda: _read_rows(path, reader, len(header), chunk), chunk)


def _chunk_tables(path: str, header: Sequence[str], read, chunk: int) -> Iterator[pa.Table]:
    """A table (:func:`_table`) of each chunk of rows that ``read()`` gives (rows, their lines, and
    the error that ends the file there or None) until one is short. An error that ends the reading
    (a field count, bad CSV, not UTF-8) is raised after the rows before it are checked, as the
    row-by-row readers raise the first bad row's error."""
    while True:
        rows, lines, stop = read()
        if rows:
            yield _table(path, header, rows, lines)
        if stop is not None:
            raise stop
        if len(rows) < chunk:
            return


def _read_rows(path: str, reader, width: int,
               chunk: int) -> tuple[list[list[str]], list[int], Optional[IndicatorError]]:
    """Up to ``chunk`` rows of ``reader`` with their line numbers, by ``csv.DictReader``'s rules as
    read_csv applies them, and the error that ends the file there (None if none). Rows of blank
    fields are kept (:func:`_table` drops them): testing each row here took a fifth of the time."""
    rows: list[list[str]] = []
    lines: list[int] = []
    with _gc_paused():
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) != width:
                    where = f"{path}:{reader.line_num}"
                    if len(row) > width:
                        return rows, lines, IndicatorError(f"{where}: more fields than the header has")
                    if "".join(row).strip():
                        return rows, lines, IndicatorError(f"{where}: fewer fields than the header has")
                    continue  # a blank line; one with every field is dropped by _table
                rows.append(row)
                lines.append(reader.line_num)
                if len(rows) == chunk:
                    break
        except csv.Error as exc:
            return rows, lines, IndicatorError(f"{path}:{reader.line_num}: bad CSV ({exc})")
        except UnicodeDecodeError:
            return rows, lines, IndicatorError(f"{path}: not UTF-8 text")
    return rows, lines, None


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The garbage collector paused: a chunk makes a list per row, and the collector would walk
    every row held, again and again (reading a chunk took about four times as long)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _table(path: str, header: Sequence[str], rows: list[list[str]], lines: list[int]) -> pa.Table:
    """``rows`` (each with a field per column of ``header``, no repeated column) as a table in
    SCHEMA, in their order, blank rows dropped: plain rows column by column, the others an
    :class:`Indicator` each."""
    width = len(header)
    with _gc_paused():  # one list array, then every width-th string from each column's first
        fields = pa.array(rows, pa.list_(pa.string())).values
    columns = {name: fields.take(pa.array(np.arange(i, len(fields), width))) for i, name in enumerate(header)}
    widths = hex_widths()
    ids, kinds, values = columns["indicator_id"], columns["kind"], columns["value"]
    want = pc.take(pa.array(list(widths.values()), pa.int32()), pc.index_in(kinds, pa.array(list(widths), pa.string())))
    plain = pc.and_(pc.match_substring_regex(ids, _PLAIN_ID),
                    pc.and_(pc.equal(pc.binary_length(values), want), pc.match_substring_regex(values, _HEX)))
    for name in ("category", "source"):
        if name in columns:
            plain = pc.and_(plain, pc.match_substring_regex(columns[name], _PLAIN_LABEL))
    for name in ("added_at", "disabled_at"):
        if name in columns:
            plain = pc.and_(plain, pc.equal(columns[name], ""))
    plain = pc.fill_null(plain, False).to_numpy(zero_copy_only=False)
    keep = np.flatnonzero(plain)
    taken = pa.array(keep)

    def label(name: str, default: str) -> pa.Array:
        if name not in columns:
            return pa.array([default] * len(keep), pa.string())
        col = columns[name].take(taken)
        return pc.if_else(pc.equal(col, ""), default, col)

    fast = pa.table({
        "indicator_id": ids.take(taken),
        "kind": kinds.take(taken),
        "value": pc.ascii_lower(values.take(taken)),  # hex: ASCII
        "category": label("category", DEFAULT_CATEGORY),
        "source": label("source", DEFAULT_SOURCE),
        "note": columns["note"].take(taken) if "note" in columns else pa.array([""] * len(keep), pa.string()),
        "added_at": pa.nulls(len(keep), pa.string()),
        "disabled_at": pa.nulls(len(keep), pa.string()),
    }, schema=SCHEMA)
    if len(keep) == len(rows):
        return fast
    others = [i for i in np.flatnonzero(~plain).tolist() if "".join(rows[i]).strip()]  # blank rows dropped
    made = [make_row(dict(zip(header, rows[i])), f"{path}:{lines[i]}") for i in others]
    if not made:
        return fast
    both = pa.concat_tables([fast, rows_to_table(made)])
    return both.take(pa.array(np.argsort(np.concatenate([keep, np.array(others, dtype=np.int64)]), kind="stable")))
