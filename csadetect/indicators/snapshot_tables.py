"""Indicator rows as Arrow tables (:mod:`csadetect.indicators.snapshot`): the schema of a
snapshot's data file, the canonical row order, the parsed PDQ codes, counts, the bytes written to
disk, and the :class:`Snapshot` and :class:`Delta` objects that loading returns.

Rows are sorted by kind in the order the signal types are registered (:mod:`csadetect.signals`,
PDQ first), then by id; :func:`_resolve` applies versions in order, the last row per id winning.
Nothing here reads or writes storage or checks a signature. :mod:`csadetect.indicators.snapshot`
re-exports the public names.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import tempfile
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csadetect.indicators.rows import FIELDS, Indicator
from csadetect.indicators.snapshot_store import SnapshotError
from csadetect.signals import SIGNAL_TYPES, SignalError, hex_to_codes, names
from csadetect.signals.pdq import PdqSignal

CODES_KIND = PdqSignal.name  # the kind whose values are stored parsed, in CODES_FILE
SCHEMA = pa.schema(
    [pa.field(f, pa.string(), nullable=f not in ("indicator_id", "kind", "value")) for f in FIELDS]
)


# ---------------------------------------------------------------------------------------------
# Rows <-> Arrow


def rows_to_table(rows: Union[pa.Table, Iterable[Indicator]]) -> pa.Table:
    """Indicator rows (or an Arrow table with the indicator columns) as a table in SCHEMA.

    An Arrow table is trusted to hold normalised values (it is how large imports avoid making a
    Python object per row); Indicator rows were validated when they were made."""
    if isinstance(rows, pa.Table):
        missing = [f for f in ("indicator_id", "kind", "value") if f not in rows.column_names]
        if missing:
            raise SnapshotError(f"indicator table lacks column {missing[0]!r}")
        cols = {f: (rows[f] if f in rows.column_names else pa.nulls(rows.num_rows, pa.string())) for f in FIELDS}
        table = pa.table(cols).cast(SCHEMA)
        if not pc.all(pc.is_in(table["kind"], pa.array(names())), min_count=0).as_py():  # an empty table passes
            raise SnapshotError(f"indicator table has a kind outside {', '.join(names())}")
        table = table.set_column(3, "category", pc.fill_null(table["category"], "unspecified"))
        table = table.set_column(4, "source", pc.fill_null(table["source"], "eu-centre"))
        return table.set_column(5, "note", pc.fill_null(table["note"], ""))
    rows = list(rows)
    return pa.table({f: [getattr(r, f) for r in rows] for f in FIELDS}, schema=SCHEMA)


TABLE_CHUNK = 200_000  # Indicator objects alive at once while a large input becomes a table


def indicator_table(rows: Iterable[Indicator], progress: Optional[Callable[[int], None]] = None,
                    chunk: Optional[int] = None) -> pa.Table:
    """Indicator rows as a table in SCHEMA, converted ``chunk`` rows at a time: an input of
    millions of rows never holds a Python object per row (about 1.4 KB each, against tens of bytes
    in Arrow). ``progress(rows so far)`` after each chunk (default :data:`TABLE_CHUNK` rows). An
    input of more than one chunk is spilled (:func:`collected`)."""
    chunk = chunk or TABLE_CHUNK
    return collected((rows_to_table(batch) for batch in batched(rows, chunk)), chunk, progress)


def batched(items: Iterable, n: int) -> Iterator[list]:
    """``items`` in lists of ``n`` (the last one shorter)."""
    items = iter(items)
    while batch := list(itertools.islice(items, n)):
        yield batch


def collected(tables: Iterable[pa.Table], chunk: int, progress: Optional[Callable[[int], None]] = None) -> pa.Table:
    """``tables`` (in SCHEMA, read a chunk of up to ``chunk`` rows each) as one table: a single one
    as it is, more through :class:`Spill`'s Arrow file; ``progress(rows so far)`` after each table
    of ``chunk`` rows."""
    with Spill() as spill:
        done = 0
        for table in tables:
            spill.add(table)
            done += table.num_rows
            if progress and table.num_rows == chunk:
                progress(done)
        return spill.table(SCHEMA)


def spilled(tables: Iterable[pa.Table]) -> pa.Table:
    """``tables`` (in SCHEMA) concatenated through an Arrow file in the temporary folder (``TMPDIR``),
    unlinked once mapped: the table returned reads it through the page cache, which the kernel can
    drop, so not even the Arrow columns of 100M rows (about 10 GB) stay in the process's own memory."""
    with Spill(always=True) as spill:
        for table in tables:
            spill.add(table)
        return spill.table(SCHEMA)


class Spill:
    """:func:`spilled` for tables that arrive one at a time (``add``), all with the first one's
    schema: the first is kept in memory, and from the second (or the first, with ``always``) they
    go to the Arrow file. :meth:`table` gives them all as one table; leaving the ``with`` block
    unlinks the file (a table mapped from it keeps reading it until it is freed)."""

    def __init__(self, always: bool = False):
        self.always = always
        self.first: Optional[pa.Table] = None
        self.path: Optional[str] = None
        self.writer = None

    def __enter__(self) -> "Spill":
        return self

    def __exit__(self, *exc) -> None:
        self._close()
        if self.path is not None:
            os.unlink(self.path)
            self.path = None

    def add(self, table: pa.Table) -> None:
        if self.first is None and self.writer is None and not self.always:
            self.first = table
            return
        if self.writer is None:
            fd, self.path = tempfile.mkstemp(prefix="csadetect-rows-", suffix=".arrow")
            os.close(fd)
            self.writer = pa.ipc.new_file(self.path, table.schema)
            if self.first is not None:
                self.writer.write_table(self.first)
                self.first = None
        self.writer.write_table(table)

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def table(self, schema: pa.Schema) -> pa.Table:
        """Every table added (``schema``'s empty table when none was)."""
        if self.path is None:
            return self.first if self.first is not None else schema.empty_table()
        self._close()
        return pa.ipc.open_file(pa.memory_map(self.path)).read_all()


def without_ids(table: pa.Table, ids) -> pa.Table:
    """The rows of ``table`` whose ``indicator_id`` is not among ``ids``."""
    return table.filter(pc.invert(pc.is_in(table["indicator_id"], value_set=ids)))


def table_rows(table: pa.Table) -> list[Indicator]:
    """An indicator table back as Indicator rows (for small tables: one object per row)."""
    return [Indicator(**r) for r in table.select(list(FIELDS)).to_pylist()]


def kind_rank(table: pa.Table) -> pa.Array:
    """The position of each row's kind among the registered signal types."""
    return pc.index_in(table["kind"], value_set=pa.array(names()))


def sort_order(table: pa.Table, by_id: Optional[np.ndarray] = None) -> np.ndarray:
    """Row positions of ``table`` in the canonical order on disk and in memory: by kind (pdq first)
    then id (8 bytes a row; the table is not copied). ``by_id``: the positions in id order, when
    known (ids unique): then only the kinds are sorted, stably (a radix sort of one byte a row)."""
    if by_id is None:
        keyed = pa.table({"_rank": kind_rank(table), "indicator_id": table["indicator_id"]})
        return pc.sort_indices(keyed, sort_keys=[("_rank", "ascending"), ("indicator_id", "ascending")]).to_numpy()
    rank = kind_rank(table).to_numpy(zero_copy_only=False).astype(np.int8)  # a registered kind: never null
    return by_id[np.argsort(rank[by_id], kind="stable")]


def take_rows(table: pa.Table, indices) -> pa.Table:
    """``table.take(indices)`` gathered chunk by chunk: Arrow's take first concatenates the chunks of
    every column, a copy of the whole table per call (a table read in chunks or mapped from a file
    has many), where this copies only the rows taken."""
    batches, indices = table.to_batches(), np.asarray(indices, dtype=np.int64)
    if len(batches) <= 1:
        return table.take(pa.array(indices))
    starts = np.cumsum([0] + [b.num_rows for b in batches])
    which = np.searchsorted(starts, indices, side="right") - 1
    by_batch = np.argsort(which, kind="stable")
    pieces, edges = [], np.searchsorted(which[by_batch], np.arange(len(batches) + 1))
    for i, batch in enumerate(batches):
        if edges[i + 1] > edges[i]:
            pieces.append(batch.take(pa.array(indices[by_batch[edges[i]:edges[i + 1]]] - starts[i])))
    gathered = pa.Table.from_batches(pieces, schema=table.schema).combine_chunks()  # the rows taken, by batch
    back = np.empty_like(by_batch)
    back[by_batch] = np.arange(len(by_batch))
    return gathered.take(pa.array(back))


def _sorted(table: pa.Table) -> pa.Table:
    """Rows in the canonical order (:func:`sort_order`), as a new table."""
    return table.take(sort_order(table))


def _of_kind(table: pa.Table, kind: str) -> pa.ChunkedArray:
    return table.filter(pc.equal(table["kind"], kind))["value"]


def _pdq_codes(table: pa.Table) -> np.ndarray:
    """The parsed values of the table's CODES_KIND rows, in table order."""
    try:
        return hex_to_codes(_of_kind(table, CODES_KIND), PdqSignal.nbytes)
    except SignalError as exc:
        raise SnapshotError(str(exc)) from None


def _check_values(table: pa.Table, skip: Sequence[str] = ()) -> None:
    """Check each kind's values as its signal type checks a trusted column (hex widths); kinds in
    ``skip`` are checked elsewhere (CODES_KIND, where :func:`_pdq_codes` parses them anyway)."""
    try:
        for signal in SIGNAL_TYPES.values():
            if signal.name not in skip:
                signal.check_column(_of_kind(table, signal.name))
    except SignalError as exc:
        raise SnapshotError(str(exc)) from None


def counts(table: pa.Table) -> dict:
    """``{"rows": n, "kinds": {kind: {"active": a, "disabled": d}}}`` for a table, in any row
    order (counted in Arrow: no Python object per row)."""

    def per_kind(column) -> dict:
        return {c["values"]: c["counts"] for c in pc.value_counts(column).to_pylist()}

    total = per_kind(table["kind"])
    off = per_kind(table.filter(pc.is_valid(table["disabled_at"]))["kind"])
    out = {kind: {"active": total[kind] - off.get(kind, 0), "disabled": off.get(kind, 0)}
           for kind in names() if total.get(kind)}
    return {"rows": table.num_rows, "kinds": out}


def add_counts(a: dict, b: dict) -> dict:
    """Two :func:`counts` added (of two tables with no id in common)."""
    kinds: dict = {}
    for part in (a, b):
        for kind, c in part["kinds"].items():
            k = kinds.setdefault(kind, {"active": 0, "disabled": 0})
            k["active"] += c["active"]
            k["disabled"] += c["disabled"]
    return {"rows": a["rows"] + b["rows"], "kinds": {kind: kinds[kind] for kind in names() if kind in kinds}}


def _open_npy(path: str, dtype, shape: tuple) -> np.ndarray:
    """A ``.npy`` file of ``shape`` being written, memory-mapped (an empty one is saved at once:
    nothing to map); flush a ``np.memmap`` when done."""
    if not int(np.prod(shape)):
        np.save(path, np.zeros(shape, dtype=dtype))
        return np.zeros(shape, dtype=dtype)
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def _resolve(parts: Sequence[tuple[pa.Table, np.ndarray]]) -> tuple[pa.Table, np.ndarray]:
    """Apply tables in order, the last row per id winning; returns sorted rows and their codes."""
    if len(parts) == 1:
        table, codes = parts[0]
        return table, codes
    big = pa.concat_tables([t for t, _ in parts])
    all_codes = np.concatenate([c for _, c in parts]) if parts else np.zeros((0, PdqSignal.nbytes), np.uint8)
    is_pdq = pc.equal(big["kind"], CODES_KIND).to_numpy(zero_copy_only=False)
    code_pos = np.where(is_pdq, np.cumsum(is_pdq) - 1, -1)
    keyed = pa.table({"id": big["indicator_id"], "seq": pa.array(np.arange(big.num_rows))})
    keep = keyed.group_by("id").aggregate([("seq", "max")])["seq_max"]
    resolved = big.append_column("_code", pa.array(code_pos)).take(keep)
    resolved = _sorted(resolved)
    pos = resolved["_code"].to_numpy()
    codes = all_codes[pos[pos >= 0]]
    return resolved.drop_columns(["_code"]), np.ascontiguousarray(codes, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# Snapshot objects


@dataclasses.dataclass(frozen=True, eq=False)
class Snapshot:
    """The resolved state at one version: every row (active and disabled), one per id, sorted by
    kind then id; ``pdq_codes[i]`` is the PDQ hash of the i-th pdq row of ``table``."""

    version: int
    manifest: dict
    chain: tuple[dict, ...]  # manifests from the full snapshot up to ``version``
    table: pa.Table
    pdq_codes: np.ndarray
    db_dir: Optional[str] = None

    @classmethod
    def in_memory(cls, rows: Union[pa.Table, Iterable[Indicator]], version: int = 1) -> "Snapshot":
        """An unsigned snapshot of ``rows`` held in memory (evaluation, benchmarks, tests): sorted and
        parsed as a built one is, nothing written, signed or verified."""
        table = _sorted(rows_to_table(rows))
        return cls(version, {"version": version}, (), table, _pdq_codes(table))

    def __len__(self) -> int:
        return self.table.num_rows

    def rows(self) -> list[Indicator]:
        return table_rows(self.table)

    def counts(self) -> dict:
        return counts(self.table)


@dataclasses.dataclass(frozen=True, eq=False)
class Delta:
    """One verified delta version: the new complete rows of the ids it touches."""

    version: int
    parent: int
    manifest: dict
    table: pa.Table
    pdq_codes: np.ndarray
