"""Single rows of a version by id, without loading the version: what ``csadetect match`` says of a
match beyond the index's answer (the indicator's note, and its value for the explanation) at
10M-100M indicators, where the whole version as a table is ~10 GB and a dict of its ids more.

:class:`RowLookup` verifies the version's chain on its first lookup, as every loader does
(:mod:`csadetect.indicators.snapshot_load`: signatures, then each data file's SHA-256 read in
blocks), keeps the deltas' last rows (small) and the full base's data file open: the same open
file that was hashed, so nothing unverified is read. A lookup reads only the row groups whose
statistics can hold the id (min and max of ``kind`` and ``indicator_id``; rows are written in
canonical order, kind then id, so within a kind each row group spans a narrow range of ids), two
columns of ~262,144 rows each, and keeps the last few it read.
"""
from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from typing import Iterable, Optional

import pyarrow as pa
import pyarrow.compute as pc

from csadetect.core import parquet
from csadetect.core.keys import PublicKeyLike
from csadetect.indicators.rows import FIELDS
from csadetect.indicators.snapshot_load import _changed, _verified_file
from csadetect.indicators.snapshot_manifest import _key, manifest_chain
from csadetect.indicators.snapshot_store import FULL_FILE, SnapshotError
from csadetect.indicators.snapshot_tables import SCHEMA

KEPT_GROUPS = 4  # row groups kept after a lookup (matches of one upload often share one)


def _bounds(metadata, column: str) -> list[Optional[tuple[str, str]]]:
    """(min, max) of ``column`` in each row group; None where the file has no statistics for it."""
    where = metadata.schema.names.index(column)
    out = []
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(where).statistics
        out.append((stats.min, stats.max) if stats is not None and stats.has_min_max else None)
    return out


def _may_hold(bounds: Optional[tuple[str, str]], value: str) -> bool:
    return bounds is None or bounds[0] <= value <= bounds[1]


class RowLookup:
    """The resolved rows of version ``version`` of the database at ``db_dir``, one id at a time;
    :meth:`close` (or ``with``) lets go of the open data file."""

    def __init__(self, db_dir: str, public_key: PublicKeyLike, version: int):
        self._db_dir, self._key, self.version = os.fspath(db_dir), _key(public_key), int(version)
        self._stack: Optional[contextlib.ExitStack] = None
        self._groups: OrderedDict = OrderedDict()
        self._found: dict = {}  # (kind, id) -> row or None, from the last prefetch
        self.groups_read = 0

    def __enter__(self) -> "RowLookup":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None
        self._groups.clear()

    def _open(self) -> None:
        chain = manifest_chain(self._db_dir, self._key, self.version)  # newest first; signatures checked
        self._changed = _changed(self._db_dir, self._key, chain)  # each delta verified whole
        where, manifest = chain[-1]
        stack = contextlib.ExitStack()
        try:
            handle = stack.enter_context(_verified_file(where, manifest, FULL_FILE))
            self._reader = parquet.open_file(handle)
            names = self._reader.schema_arrow.names
            if any(field not in names for field in FIELDS):
                raise SnapshotError(f"{FULL_FILE} of version {manifest.get('version')} lacks indicator columns")
            self._kinds = _bounds(self._reader.metadata, "kind")
            self._ids = _bounds(self._reader.metadata, "indicator_id")
        except (pa.ArrowException, ValueError, OSError) as exc:
            stack.close()
            version = manifest.get("version")
            raise SnapshotError(f"cannot parse files of version {version}: {type(exc).__name__}") from None
        except BaseException:
            stack.close()
            raise
        self._stack = stack

    def _group(self, number: int) -> pa.Table:
        if number in self._groups:
            self._groups.move_to_end(number)
            return self._groups[number]
        try:
            table = self._reader.read_row_group(number, columns=list(FIELDS)).cast(SCHEMA)
        except (pa.ArrowException, ValueError, OSError) as exc:
            raise SnapshotError(f"cannot parse files of version {self.version}: {type(exc).__name__}") from None
        self.groups_read += 1
        self._groups[number] = table
        while len(self._groups) > KEPT_GROUPS:
            self._groups.popitem(last=False)
        return table

    def row(self, kind: str, indicator_id: str) -> Optional[dict]:
        """The row (every field, as ``load_snapshot(...).table`` holds it) of ``indicator_id``, of
        kind ``kind``, at this version; None when the version has no such row."""
        if (kind, indicator_id) in self._found:
            return self._found[(kind, indicator_id)]
        if self._stack is None:
            self._open()
        for table in self._candidates(kind, indicator_id):
            found = table.filter(pc.equal(table["indicator_id"], indicator_id))
            if found.num_rows:
                row = found.slice(0, 1).to_pylist()[0]
                return row if row["kind"] == kind else None
        return None

    def _candidates(self, kind: str, indicator_id: str):
        yield self._changed  # a delta's row replaces the base's: row() stops at it when it is there
        for number in self._numbers(kind, indicator_id):
            yield self._group(number)

    def _numbers(self, kind: str, indicator_id: str) -> list[int]:
        return [number for number, (kinds, ids) in enumerate(zip(self._kinds, self._ids))
                if _may_hold(kinds, kind) and _may_hold(ids, indicator_id)]

    def prefetch(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Read the rows of many ``(kind, id)`` pairs at once, each row group that can hold one of
        them read once (a partner's list matched in bulk: one lookup at a time reads a row group per
        match); :meth:`row` answers them from memory until the next prefetch."""
        wanted = set(pairs)
        self._found = {}
        if not wanted:
            return
        if self._stack is None:
            self._open()
        ids = pa.array(sorted({ident for _, ident in wanted}), pa.string())
        changed = self._changed.filter(pc.is_in(self._changed["indicator_id"], value_set=ids))
        settled = set(changed["indicator_id"].to_pylist())  # a delta's row replaces the base's
        found = {(row["kind"], row["indicator_id"]): row for row in changed.to_pylist()}
        numbers = sorted({n for kind, ident in wanted if ident not in settled for n in self._numbers(kind, ident)})
        for number in numbers:
            table = self._group(number)
            for row in table.filter(pc.is_in(table["indicator_id"], value_set=ids)).to_pylist():
                if row["indicator_id"] not in settled:
                    found[(row["kind"], row["indicator_id"])] = row
        self._found = {pair: found.get(pair) for pair in wanted}
