"""Building an indicator database (:mod:`csadetect.indicators.snapshot`): write and sign a new
version, a full snapshot or a delta against an earlier one, and :func:`compact` a chain of deltas
into a new full version.

A delta holds, for each id it touches, the id's complete new row: an upsert, or a tombstone (the
old row with ``disabled_at`` set); tombstones are sticky. A version's files are written into a
private staging directory and published with one rename, the signed manifest last, and
``CURRENT`` moves to the new version only after all its files are written, never below a version
another build published meanwhile.
:mod:`csadetect.indicators.snapshot` re-exports the public names.
"""
from __future__ import annotations

import base64
import json
import os
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from csadetect.core import fs
from csadetect.core.keys import PrivateKeyLike, SigningError, key_id, load_private_key, sign
from csadetect.core.timeutil import utc_iso
from csadetect.indicators.rows import Indicator
from csadetect.indicators.snapshot_load import load_rows, resolved_batches
from csadetect.indicators.snapshot_manifest import FORMAT, _latest_signed, head, manifest_chain
from csadetect.indicators.snapshot_store import (
    CODES_FILE,
    DELTA_FILE,
    FULL_FILE,
    DuplicateIdError,
    MANIFEST,
    SIGNATURE,
    SnapshotError,
    _drop_dir,
    _join,
    _new_dir,
    _publish_dir,
    _version_dir,
    _write,
    advance_current,
    current_version,
    list_versions,
)
from csadetect.indicators.snapshot_tables import (
    CODES_KIND,
    SCHEMA,
    _check_values,
    _open_npy,
    _pdq_codes,
    counts,
    rows_to_table,
    sort_order,
    spilled,
    take_rows,
    without_ids,
)
from csadetect.signals import names
from csadetect.signals.pdq import PdqSignal


def _delta_rows(new: pa.Table, base: pa.Table, now: str) -> pa.Table:
    """Rows of ``new`` that are absent from ``base`` or differ from it, merged with the base row:
    ``added_at`` is kept from the base row (else the input's, else ``now``) and a tombstone is
    sticky (a base ``disabled_at`` is kept even if the input row has none)."""
    pos = pc.index_in(new["indicator_id"], value_set=base["indicator_id"])
    old = base.take(pos)  # null rows where the id is new
    merged = new.set_column(6, "added_at", pc.coalesce(old["added_at"], new["added_at"], pa.scalar(now)))
    merged = merged.set_column(7, "disabled_at", pc.coalesce(old["disabled_at"], new["disabled_at"]))
    changed = pos.is_null()
    for field in ("kind", "value", "category", "source", "note", "disabled_at"):
        a, b = pc.fill_null(merged[field], "\0"), pc.fill_null(old[field], "\0")
        changed = pc.or_(changed, pc.not_equal(a, b))
    return merged.filter(pc.fill_null(changed, True))


def _tombstones(ids: Sequence[str], tables: Sequence[pa.Table], now: str) -> pa.Table:
    """Rows for ``ids`` with disabled_at set, taken from the first table holding each id."""
    rows = []
    for ident in dict.fromkeys(ids):
        for table in tables:
            hit = table.filter(pc.equal(table["indicator_id"], ident))
            if hit.num_rows:
                row = hit.to_pylist()[0]
                break
        else:
            raise SnapshotError(f"cannot disable {ident!r}: no such indicator")
        if row["disabled_at"] is None:
            row["disabled_at"] = now
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _totals(parent: dict, replaced: dict, delta: dict) -> dict:
    """The totals of the version a delta makes: its parent's (signed in the parent's manifest), less
    the rows it replaces, plus its own."""
    base = parent.get("totals")
    if not isinstance(base, dict) or not isinstance(base.get("kinds"), dict):
        raise SnapshotError(f"manifest of version {parent.get('version')} has no totals to base a delta on")
    kinds = {}
    for kind in names():
        tally = {state: sum(sign * part["kinds"].get(kind, {}).get(state, 0)
                            for sign, part in ((1, base), (-1, replaced), (1, delta)))
                 for state in ("active", "disabled")}
        if any(tally.values()):
            kinds[kind] = tally
    return {"rows": base["rows"] - replaced["rows"] + delta["rows"], "kinds": kinds}


WRITE_CHUNK = 1 << 18  # rows taken from the sort order at a time while a version's files are written


def _check_unique(ids: pa.ChunkedArray) -> np.ndarray:
    """Refuse ids that repeat, naming the first one: sorted, then each compared with its neighbour a
    chunk at a time (8 bytes a row; a hash set of the ids took ~100). Returns the sort (row
    positions in id order), from which :func:`sort_order` can make the canonical order."""
    order = pc.sort_indices(ids).to_numpy()
    ids = pa.table({"id": ids})
    for first in range(0, len(ids), WRITE_CHUNK):
        part = take_rows(ids, order[max(first - 1, 0):first + WRITE_CHUNK])["id"]
        same = pc.equal(part[1:], part[:-1])
        if pc.any(same).as_py():
            raise DuplicateIdError(part[pc.index(same, True).as_py()].as_py())
    return order


def _write_files(table: pa.Table, staging: str, full: bool, tally: dict, now: str,
                 progress: Optional[Callable[[int], None]] = None,
                 order: Optional[np.ndarray] = None) -> Optional[dict]:
    """Write the version of ``table`` (its rows in any order) into the local directory ``staging``:
    the data file and the pdq codes, and for a ``full`` version its index files
    (:class:`csadetect.indicators.mapped.IndexWriter`); returns ``manifest["index"]`` (None for a
    delta). Rows are taken :data:`WRITE_CHUNK` rows at a time in canonical order and every array is
    a memory-mapped file, so no sorted copy of the table, and no file, is held in memory;
    ``progress(rows written)`` after each chunk, and again after each multi-index table (minutes at
    100M rows, all rows written by then). A full version's missing ``added_at`` become ``now``.
    ``order``: the canonical order (:func:`sort_order`), when already known."""
    order = sort_order(table) if order is None else order
    n_codes = sum(tally["kinds"].get(CODES_KIND, {}).values())
    codes = _open_npy(os.path.join(staging, CODES_FILE), np.uint8, (n_codes, PdqSignal.nbytes))
    index = None
    if full:
        from csadetect.indicators import mapped  # mapped imports snapshot, which imports this module: not at the top

        index = mapped.IndexWriter(staging, table, tally)
    data_name = FULL_FILE if full else DELTA_FILE
    done_codes = 0
    with pq.ParquetWriter(os.path.join(staging, data_name), SCHEMA, compression="zstd") as parquet:
        for first in range(0, table.num_rows, WRITE_CHUNK):
            part = take_rows(table, order[first:first + WRITE_CHUNK])
            if full:
                part = part.set_column(6, "added_at", pc.fill_null(part["added_at"], now))
            _check_values(part, skip=(CODES_KIND,))
            part_codes = _pdq_codes(part)  # checks the pdq values
            codes[done_codes:done_codes + len(part_codes)] = part_codes
            done_codes += len(part_codes)
            parquet.write_table(part)
            if index is not None:
                index.add(part, first)
            if progress:
                progress(first + part.num_rows)
    if isinstance(codes, np.memmap):
        codes.flush()
    if index is None:
        return None
    return index.close(codes, (lambda: progress(table.num_rows)) if progress else None)


def build_snapshot(
    rows: Union[pa.Table, Iterable[Indicator]],
    db_dir: str,
    private_key: PrivateKeyLike,
    base: Union[None, str, int] = None,
    disable_ids: Iterable[str] = (),
    progress: Optional[Callable[[int], None]] = None,
) -> dict:
    """Write and sign a new version; returns its manifest.

    ``base=None`` writes a full snapshot of ``rows``. ``base="latest"`` (the highest version
    signed by this key, :func:`head`; or a version number) writes a delta against that version: rows
    that are new or changed are upserted, and every id
    in ``disable_ids`` is tombstoned (``disabled_at`` set; it stops matching). Tombstones are
    sticky: a delta never re-enables a disabled id (re-add it under a new id, or build a new full
    snapshot). A full snapshot of no rows is refused (it would drop every indicator). ``CURRENT``
    moves to the new version only after all its files are written, and never backwards.

    The files are written a chunk of rows at a time into a local staging directory (on an object
    store's database, a temporary one, uploaded file by file, the manifest last), so a full build
    holds about the input table, its sort order (8 bytes a row) and one chunk;
    ``progress(rows written)`` after each chunk.
    """
    try:
        key = load_private_key(private_key)
    except SigningError as exc:
        raise SnapshotError(str(exc)) from None
    db_dir = os.fspath(db_dir)
    now = utc_iso()
    new = rows_to_table(rows)
    by_id: Optional[np.ndarray] = _check_unique(new["indicator_id"])
    disable_ids = list(disable_ids)
    existing = list_versions(db_dir)
    try:
        hint = current_version(db_dir)
    except SnapshotError:
        hint = None  # unreadable: this build rewrites it
    version = max(existing + [hint or 0]) + 1
    if base is None:
        if new.num_rows == 0:  # it would replace every indicator with none, and matching would stop
            raise SnapshotError("no indicator rows: a full snapshot of none would drop every indicator "
                                "(to remove some, build a delta: --base latest --disable ID...)")
        parent = None
        if disable_ids:
            dead = _tombstones(disable_ids, [new], now)
            new = pa.concat_tables([without_ids(new, dead["indicator_id"]), dead])
            by_id = None  # other rows than those sorted
        data = new
        # the ids are sorted already: the canonical order needs only the kinds ranked (one sort of the ids)
        order, by_id = (None if by_id is None else sort_order(data, by_id)), None
        tally = totals = counts(data)
    else:
        if base == "latest":
            parent = _latest_signed(db_dir, key.public_key())
        elif str(base).isdigit() and int(base) >= 1:
            parent = int(base)
        else:
            raise SnapshotError(f"base must be 'latest' or a version number, not {base!r}")
        if parent is None:
            raise SnapshotError(f"no snapshot in {db_dir} to base a delta on")
        # only the base's rows of the ids this delta names are read (a base of 100M rows is ~10 GB)
        wanted = pa.chunked_array(new["indicator_id"].chunks + [pa.array(disable_ids, pa.string())], pa.string())
        base_rows, parent_manifest = load_rows(db_dir, key.public_key(), parent, wanted)
        delta = _delta_rows(new, base_rows, now)
        if disable_ids:
            dead = _tombstones(disable_ids, [delta, base_rows], now)
            delta = without_ids(delta, dead["indicator_id"])
            dead = _delta_rows(dead, base_rows, now)  # drops already-disabled rows
            delta = pa.concat_tables([delta, dead])
        data, order, by_id = delta, None, None  # written in canonical order by _write_files, like a full version
        replaced = base_rows.filter(pc.is_in(base_rows["indicator_id"], value_set=data["indicator_id"]))
        tally = counts(data)
        totals = _totals(parent_manifest, counts(replaced), tally)
    final = _version_dir(db_dir, version)
    staging = _new_dir(final)
    try:
        index_meta = _write_files(data, staging, parent is None, tally, now, progress, order)
        manifest = {
            "format": FORMAT,
            "version": version,
            "type": "full" if parent is None else "delta",
            "parent": parent,
            "created_at": now,
            "key_id": key_id(key),
            "counts": tally,
            "totals": totals,
            "files": {name: {"sha256": fs.sha256_file(os.path.join(staging, name)),
                             "bytes": os.path.getsize(os.path.join(staging, name))}
                      for name in sorted(os.listdir(staging))},
        }
        if index_meta is not None:
            manifest["index"] = index_meta
        manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
        # the manifest goes last: on an object store (no atomic directory rename) a version counts as
        # published (head(), _list) once its manifest exists, and by then every other file is there
        _write(_join(staging, SIGNATURE), base64.b64encode(sign(key, manifest_bytes)) + b"\n")
        _write(_join(staging, MANIFEST), manifest_bytes)
    except BaseException:
        _drop_dir(staging)
        raise
    _publish_dir(staging, final)
    advance_current(db_dir, version)
    return manifest


def compact(db_dir: str, private_key: PrivateKeyLike, version: Optional[int] = None) -> dict:
    """Write a new full version holding exactly the resolved rows of ``version`` (default: the
    highest signed one) with its own index files, so workers map one base instead of replaying a
    chain of deltas into an overlay. Tombstones are kept (a later delta still cannot re-enable
    them); ids, values, ``added_at`` and ``disabled_at`` are unchanged. Returns its manifest.

    The resolved rows are read a batch at a time (:func:`~csadetect.indicators.snapshot_load.resolved_batches`:
    the base's file verified first, the rows the deltas replace left out, theirs added) into a
    :func:`~csadetect.indicators.snapshot_tables.spilled` table: the chain is never held whole (a
    base of 100M rows is ~10 GB as a table)."""
    try:
        key = load_private_key(private_key)
    except SigningError as exc:
        raise SnapshotError(str(exc)) from None
    db_dir = os.fspath(db_dir)
    public = key.public_key()
    version = head(db_dir, public).latest if version is None else int(version)
    chain = manifest_chain(db_dir, public, version)  # newest first, down to the full base
    if chain[0][1].get("type") == "full":
        raise SnapshotError(f"version {version} of {db_dir} is already a full snapshot: nothing to compact")
    _, batches = resolved_batches(db_dir, public, version, ordered=False)  # build_snapshot sorts them
    return build_snapshot(spilled(batches()), db_dir, key)
