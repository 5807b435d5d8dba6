"""What ``indicators import`` makes of a file (:mod:`csadetect.indicators.formats`): the good rows
as an Arrow table, the refused ones with their lines (:class:`Imported`), and the collector that
gathers them a chunk at a time and finds repeated values and ids by sorting (:class:`Collector`).
"""
from __future__ import annotations

import dataclasses
import heapq
import re
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csadetect.indicators import snapshot_tables
from csadetect.indicators.input_table import _PLAIN_ID, hex_widths
from csadetect.indicators.rows import DEFAULT_CATEGORY, DEFAULT_SOURCE, Indicator, IndicatorError
from csadetect.indicators.snapshot_tables import SCHEMA, Spill, rows_to_table, table_rows, take_rows
from csadetect.signals import SIGNAL_TYPES
from csadetect.signals.base import SignalType


@dataclasses.dataclass
class Imported:
    """What :func:`read` made of a file: the good rows (``table``, an Arrow table in SCHEMA, in file
    order, with ``lines``, the line of each), the refused ones (``(line, reason)``), the rows merged
    into an earlier one with the same kind and value, and the ignored columns."""

    path: str
    format: str
    table: pa.Table = dataclasses.field(default_factory=SCHEMA.empty_table)
    lines: Sequence[int] = ()
    refused: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    merged: int = 0
    ignored_columns: tuple[str, ...] = ()

    @property
    def rows(self) -> list[Indicator]:
        """The good rows as Indicator objects (for small files: an object per row)."""
        return table_rows(self.table)

    def summary(self, limit: int = 10) -> list[str]:
        """Lines for people: the counts, then the first ``limit`` refusals with their line numbers."""
        lines = [f"{self.path} ({self.format}): imported {self.table.num_rows}, refused {len(self.refused)}"
                 + (f", merged {self.merged} repeated values" if self.merged else "")]
        if self.ignored_columns:
            lines.append(f"ignored columns: {', '.join(self.ignored_columns)}")
        for line, reason in self.refused[:limit]:
            lines.append(f"refused {self.path}:{line}: {reason}")
        if len(self.refused) > limit:
            lines.append(f"... and {len(self.refused) - limit} more refused rows")
        return lines

    def counts(self) -> dict:
        return {"path": self.path, "format": self.format, "imported": self.table.num_rows,
                "refused": len(self.refused), "merged": self.merged}


LINE = "_line"  # the line of each row, beside its columns until the repeats are known
_PLAIN_COLUMNS = ("indicator_id", "kind", "value", "category", "source", "note", LINE)
_PLAIN_KEYS = frozenset(_PLAIN_COLUMNS[:-1])
_LABELS_KEPT = 4096
_PLAIN_ID_RE = re.compile(_PLAIN_ID)  # the CSV reader's plain id: valid as it is, nothing for strip() to remove
# kinds validated as they are (a canonical value is its own canonical form) and imported so
_HEX_KINDS = frozenset(name for name in hex_widths()
                       if type(SIGNAL_TYPES[name]).import_value is SignalType.import_value)


class Collector:
    """Validated rows of one file, with refusals instead of exceptions: into Arrow a chunk of
    :data:`~csadetect.indicators.snapshot_tables.TABLE_CHUNK` rows at a time (spilled), never an
    object per row of a large file, nor a set of its ids or values. :meth:`finish` then finds the
    repeats by sorting: with ``merge_values``, a row with the kind and value of an earlier one is
    merged into it; of the rest, a row with an earlier row's id is refused."""

    def __init__(self, imported: Imported, merge_values: bool, spill: Spill):
        self.out = imported
        self.merge = merge_values
        self.spill = spill
        self.rows: list[Indicator] = []
        self.lines: list[int] = []
        self.plain: dict[str, list] = {name: [] for name in _PLAIN_COLUMNS}  # rows taken as they are, by column
        self.labels: dict[tuple[str, object], str] = {}  # category and source as Indicator makes them

    def add(self, line: int, record: dict) -> None:
        try:
            row = Indicator(**record)
        except IndicatorError as exc:
            self.out.refused.append((line, str(exc)))
            return
        self.rows.append(row)
        self.lines.append(line)
        self._full()

    def add_imported(self, line: int, record: dict) -> None:
        """:meth:`add` for a record whose ``kind`` is a kind's name and whose ``value`` is in its
        canonical form (``kind_of``, ``import_value``): a row of a hex kind with a plain id and no
        times is kept as its columns, without an :class:`Indicator` (what made the import take ~24 s
        a million rows); it is the row Indicator would make. Any other goes through :meth:`add`."""
        ident = record["indicator_id"]
        if (record["kind"] not in _HEX_KINDS or not record.keys() <= _PLAIN_KEYS or not isinstance(ident, str)
                or not _PLAIN_ID_RE.fullmatch(ident)):
            self.add(line, record)
            return
        plain = self.plain
        plain["indicator_id"].append(ident)
        plain["kind"].append(record["kind"])
        plain["value"].append(record["value"])
        plain["category"].append(self._label("category", record.get("category"), DEFAULT_CATEGORY))
        plain["source"].append(self._label("source", record.get("source"), DEFAULT_SOURCE))
        plain["note"].append(record.get("note") or "")
        plain[LINE].append(line)
        self._full()

    def _label(self, field: str, value, default: str) -> str:
        """``value`` as Indicator sets a category or source (stripped, or the default), remembered:
        a file has few of them (the first :data:`_LABELS_KEPT`, should one name a source per row)."""
        key = (field, value)
        found = self.labels.get(key)
        if found is None:
            found = (value or "").strip() or default
            if len(self.labels) < _LABELS_KEPT:
                self.labels[key] = found
        return found

    def _full(self) -> None:
        if len(self.rows) + len(self.plain[LINE]) >= snapshot_tables.TABLE_CHUNK:
            self._flush()

    def refuse(self, line: int, reason: str) -> None:
        self.out.refused.append((line, reason))

    def _flush(self) -> None:
        """The rows held as a table in line order (each reader adds its rows in line order)."""
        parts = []
        if self.rows:
            parts.append(rows_to_table(self.rows).append_column(LINE, pa.array(self.lines, pa.int64())))
            self.rows, self.lines = [], []
        if self.plain[LINE]:
            n = len(self.plain[LINE])
            columns = {name: pa.array(values, pa.int64() if name == LINE else pa.string())
                       for name, values in self.plain.items()}
            columns["added_at"] = columns["disabled_at"] = pa.nulls(n, pa.string())
            parts.append(pa.table({f.name: columns[f.name] for f in SCHEMA}, schema=SCHEMA)
                         .append_column(LINE, columns[LINE]))
            self.plain = {name: [] for name in _PLAIN_COLUMNS}
        if len(parts) == 2:
            both = pa.concat_tables(parts)
            parts = [both.take(pc.sort_indices(both[LINE]))]
        if parts:
            self.spill.add(parts[0])

    def finish(self) -> None:
        self._flush()
        table = self.spill.table(SCHEMA.append(pa.field(LINE, pa.int64())))
        if self.merge:
            repeat = _firsts(table, ("kind", "value")) != table[LINE].to_numpy()
            self.out.merged = int(repeat.sum())
            if self.out.merged:  # a filter copies the table: only when there is something to drop
                table = table.filter(pa.array(~repeat))
        first = _firsts(table, ("indicator_id",))
        repeat = first != table[LINE].to_numpy()
        if repeat.any():
            where = np.flatnonzero(repeat)
            dups = [(line, f"duplicate indicator_id {ident!r} (first on line {int(earlier)})") for line, ident, earlier
                    in zip(table[LINE].take(pa.array(where)).to_pylist(),
                           table["indicator_id"].take(pa.array(where)).to_pylist(), first[where])]
            self.out.refused = list(heapq.merge(self.out.refused, dups, key=lambda r: r[0]))
            table = table.filter(pa.array(~repeat))
        self.out.lines = table[LINE].to_numpy()
        self.out.table = table.drop_columns([LINE])


def _firsts(table: pa.Table, keys: Sequence[str]) -> np.ndarray:
    """For each row, the first line (``LINE``) of the rows whose ``keys`` equal its own: rows sorted
    by the keys and the line, each run's first line carried along it, a chunk at a time (8 bytes a
    row for the sort; a set of the keys took ~100)."""
    n = table.num_rows
    out = np.empty(n, dtype=np.int64)
    if not n:
        return out
    order = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys] + [(LINE, "ascending")]).to_numpy()
    columns = table.select(list(keys) + [LINE])
    carry_keys, carry_line = None, 0
    for start in range(0, n, snapshot_tables.TABLE_CHUNK):
        at = order[start:start + snapshot_tables.TABLE_CHUNK]
        part = take_rows(columns, at)
        new_run = np.zeros(len(at), dtype=bool)
        for k in keys:
            new_run[1:] |= pc.not_equal(part[k][1:], part[k][:-1]).to_numpy(zero_copy_only=False)
        new_run[0] = carry_keys is None or any(part[k][0].as_py() != v for k, v in zip(keys, carry_keys))
        lines = part[LINE].to_numpy()
        run_start = np.maximum.accumulate(np.where(new_run, np.arange(len(at)), 0))
        firsts = lines[run_start]
        if not new_run[0]:
            firsts[run_start == 0] = carry_line
        out[at] = firsts
        carry_keys, carry_line = [part[k][-1].as_py() for k in keys], int(firsts[-1])
    return out
