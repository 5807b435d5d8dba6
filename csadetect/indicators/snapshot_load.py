"""Loading an indicator database (:mod:`csadetect.indicators.snapshot`): verify a version and the
chain of deltas under it, and resolve them into a :class:`~csadetect.indicators.snapshot_tables.Snapshot`
or the :class:`~csadetect.indicators.snapshot_tables.Delta` objects a running index applies.

Each version's manifest signature is checked first (:mod:`csadetect.indicators.snapshot_manifest`),
then the SHA-256 of every data file it reads, and the very bytes that were checked are parsed, so
nothing unverified is ever used. The index files of a full version are checked when they are
mapped (:mod:`csadetect.indicators.mapped`), not here. :mod:`csadetect.indicators.snapshot`
re-exports the public names.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
from typing import IO, Callable, Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csadetect.core import fs, parquet
from csadetect.core.keys import PublicKeyLike
from csadetect.indicators.rows import FIELDS
from csadetect.indicators.snapshot_manifest import _key, _read_manifest, check_min_version, head, manifest_chain
from csadetect.indicators.snapshot_store import (
    CODES_FILE,
    DELTA_FILE,
    FULL_FILE,
    SnapshotError,
    _join,
    _read,
    _version_dir,
)
from csadetect.indicators.snapshot_tables import (CODES_KIND, SCHEMA, Delta, Snapshot, _pdq_codes, _resolve, add_counts,
                                                  counts, kind_rank, sort_order, take_rows,
                                                  without_ids)
from csadetect.signals.pdq import PdqSignal


def _load_version(db_dir: str, version: int, public_key) -> tuple[dict, pa.Table, np.ndarray]:
    """Verify one version and parse its files from the verified bytes."""
    manifest = _read_manifest(db_dir, version, public_key)
    where = _version_dir(db_dir, version)
    data_name = FULL_FILE if manifest.get("type") == "full" else DELTA_FILE
    files = manifest.get("files") or {}
    for needed in (data_name, CODES_FILE):
        if needed not in files:
            raise SnapshotError(f"manifest of version {version} does not list {needed}")
    blobs = {}
    for name, meta in files.items():
        if name not in (data_name, CODES_FILE):
            continue  # the index files are checked when they are mapped (indicators/mapped.py)
        data = _read(_join(where, name))
        if data is None:
            raise SnapshotError(f"{name} is missing from version {version}")
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise SnapshotError(f"checksum mismatch for {name} in version {version}")
        blobs[name] = data
    try:
        table = parquet.read_table(pa.BufferReader(blobs[data_name]))
        codes = np.load(io.BytesIO(blobs[CODES_FILE]), allow_pickle=False)
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise SnapshotError(f"cannot parse files of version {version}: {type(exc).__name__}") from None
    if any(f not in table.column_names for f in FIELDS):
        raise SnapshotError(f"{data_name} of version {version} lacks indicator columns")
    table = table.select(list(FIELDS)).cast(SCHEMA)
    n_pdq = pc.sum(pc.equal(table["kind"], CODES_KIND)).as_py() or 0
    if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape != (n_pdq, PdqSignal.nbytes):
        raise SnapshotError(f"{CODES_FILE} of version {version} does not match its {n_pdq} pdq rows")
    return manifest, table, codes


def _chain(db_dir: str, version: int, public_key, stop_at: Optional[int] = None):
    """Verified (manifest, table, codes) from the newest back to a full snapshot (or ``stop_at``)."""
    out = []
    seen = version
    while True:
        manifest, table, codes = _load_version(db_dir, seen, public_key)
        out.append((manifest, table, codes))
        if manifest.get("type") == "full":
            return out, False
        parent = manifest.get("parent")
        if not isinstance(parent, int) or parent >= seen or parent < 1:
            raise SnapshotError(f"version {seen} is a delta with an invalid parent {parent!r}")
        if parent == stop_at:
            return out, True
        seen = parent


def load_snapshot(db_dir: str, public_key: PublicKeyLike, version: Optional[int] = None,
                  min_version: Optional[int] = None) -> Snapshot:
    """Verify and resolve a version (default: the highest signed one, :func:`head`) into a
    :class:`Snapshot`; a version below ``min_version`` is refused."""
    key = _key(public_key)
    db_dir = os.fspath(db_dir)
    if version is None:
        version = head(db_dir, key).latest
    check_min_version(int(version), min_version)
    chain, _ = _chain(db_dir, int(version), key)
    chain.reverse()
    table, codes = _resolve([(t, c) for _, t, c in chain])
    return Snapshot(int(version), chain[-1][0], tuple(m for m, _, _ in chain), table, codes, db_dir)


def load_rows(db_dir: str, public_key: PublicKeyLike, version: int, ids: pa.ChunkedArray) -> tuple[pa.Table, dict]:
    """The resolved rows at ``version`` of those ``ids`` that exist there, in canonical order, and the
    version's verified manifest: what a delta build needs of its base, without holding the base (a
    table of 100M rows is ~10 GB). Each version of the chain is verified (its manifest's signature,
    then its data file's SHA-256, read in blocks) and the same open file is then read a batch at a
    time, keeping only ``ids``."""
    key = _key(public_key)
    db_dir = os.fspath(db_dir)
    chain = manifest_chain(db_dir, key, int(version))
    parts = [_rows_of(where, manifest, ids) for where, manifest in reversed(chain)]  # the full base first
    table, _ = _resolve([(t, _pdq_codes(t)) for t in parts])
    return table, chain[0][1]


def _rows_of(where: str, manifest: dict, wanted: pa.ChunkedArray) -> pa.Table:
    """The rows of one verified version's data file whose ids are ``wanted``."""
    keep = [t.filter(pc.is_in(t["indicator_id"], value_set=wanted)) for t in verified_batches(where, manifest)]
    return pa.concat_tables(keep) if keep else SCHEMA.empty_table()


READ_BATCH = 1 << 20  # rows of a data file read at a time


def resolved_batches(db_dir: str, public_key: PublicKeyLike, version: Optional[int] = None,
                     ordered: bool = True) -> tuple[int, Callable[[], Iterator[pa.Table]]]:
    """The version (default: the highest signed one, :func:`head`) and a function that gives its
    resolved rows (``load_snapshot(...).table``'s rows, in the same canonical order) a batch at a
    time, never the whole table (a base of 100M rows is ~10 GB as a table): the chain's deltas
    (small) are resolved whole, and the full base is read a verified batch at a time
    (:func:`verified_batches`), the rows the deltas replace left out and theirs merged in at their
    place (without ``ordered``, added after the base's: cheaper, for a caller that sorts anyway).
    Each call reads and verifies the files again."""
    key = _key(public_key)
    db_dir = os.fspath(db_dir)
    version = head(db_dir, key).latest if version is None else int(version)
    chain = manifest_chain(db_dir, key, version)  # newest first, down to the full base; signatures checked

    def batches() -> Iterator[pa.Table]:
        changed = _changed(db_dir, key, chain)
        if ordered:
            yield from _merged(verified_batches(*chain[-1]), take_rows(changed, sort_order(changed)))
            return
        ids = changed["indicator_id"]
        for table in verified_batches(*chain[-1]):
            yield without_ids(table, ids)
        yield changed

    return version, batches


def _changed(db_dir: str, key, chain: list[tuple[str, dict]]) -> pa.Table:
    """The last row of each id that the deltas of ``chain`` (newest first, as :func:`manifest_chain`
    gives it) touch, each delta verified whole (they are small)."""
    deltas = [load_delta(db_dir, key, manifest["version"]).table for _, manifest in reversed(chain[:-1])]
    return _resolve([(t, _pdq_codes(t)) for t in deltas])[0] if deltas else SCHEMA.empty_table()


def verify_snapshot(db_dir: str, public_key: PublicKeyLike, version: Optional[int] = None,
                    min_version: Optional[int] = None) -> tuple[int, list[dict], dict]:
    """Verify a version (default: the highest signed one) and its chain as :func:`load_snapshot`
    does, without holding it (a base of 100M rows is ~10 GB as a table): every manifest's signature,
    every delta whole, the base's data file (its SHA-256, then parsed a batch at a time: its rows
    must add up to its signed counts) and its PDQ codes file (its SHA-256, and a header of one code
    per pdq row); the resolved rows must add up to the version's signed totals. Returns the version,
    the chain's manifests (the full base first) and the resolved totals; SnapshotError otherwise."""
    key = _key(public_key)
    db_dir = os.fspath(db_dir)
    version = head(db_dir, key).latest if version is None else int(version)
    check_min_version(version, min_version)
    chain = manifest_chain(db_dir, key, version)
    changed = _changed(db_dir, key, chain)
    where, base = chain[-1]
    zero = {"rows": 0, "kinds": {}}
    in_base, totals = zero, counts(changed)
    for table in verified_batches(where, base):
        in_base = add_counts(in_base, counts(table))
        if changed.num_rows:
            table = without_ids(table, changed["indicator_id"])
        totals = add_counts(totals, counts(table))
    if base.get("counts") is not None and in_base != base["counts"]:
        raise SnapshotError(f"the rows of version {base['version']} do not add up to its signed counts")
    _check_codes(where, base, sum(in_base["kinds"].get(CODES_KIND, {}).values()))
    signed = chain[0][1].get("totals")
    if signed is not None and signed != totals:
        raise SnapshotError(f"the resolved rows of version {version} do not add up to its signed totals")
    return version, [manifest for _, manifest in reversed(chain)], totals


def _check_codes(where: str, manifest: dict, n_pdq: int) -> None:
    """The version's PDQ codes file: listed, present, its SHA-256 as signed, and a uint8 array of
    one 32-byte code per pdq row (read from its header; the codes are not held)."""
    version = manifest.get("version")
    with _verified_file(where, manifest, CODES_FILE) as fh:
        try:
            major, _ = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(fh)
        except ValueError:
            shape, dtype = None, None
    if dtype != np.uint8 or shape != (n_pdq, PdqSignal.nbytes):
        raise SnapshotError(f"{CODES_FILE} of version {version} does not match its {n_pdq} pdq rows")


def _merged(base: Iterator[pa.Table], changed: pa.Table) -> Iterator[pa.Table]:
    """The ``base`` batches (canonical order) without the ids of ``changed`` (canonical order, ids
    unique), with the rows of ``changed`` each merged in before the first base row that sorts after it."""
    ids = changed["indicator_id"]
    ranks = kind_rank(changed)
    done = 0
    for table in base:
        if changed.num_rows:
            table = without_ids(table, ids)
        if not table.num_rows:
            continue
        rank, last = kind_rank(table.slice(table.num_rows - 1))[0], table["indicator_id"][-1]
        # changed is sorted by the same key, so those up to this batch's last row are a prefix of it
        upto = pc.sum(pc.or_(pc.less(ranks, rank), pc.and_(pc.equal(ranks, rank),
                                                            pc.less_equal(ids, last)))).as_py() or 0
        if upto > done:
            table = pa.concat_tables([table, changed.slice(done, upto - done)])
            table = take_rows(table, sort_order(table))
            done = upto
        yield table
    if done < changed.num_rows:
        yield changed.slice(done)


def verified_batches(where: str, manifest: dict) -> Iterator[pa.Table]:
    """The rows of the data file of the version in ``where`` (its ``manifest`` already verified), a
    batch of :data:`READ_BATCH` rows at a time, once the file's SHA-256 has been checked: one open
    file is hashed in blocks, then read from its start."""
    version = manifest.get("version")
    try:
        with _verified_file(where, manifest, FULL_FILE if manifest.get("type") == "full" else DELTA_FILE) as fh:
            for batch in parquet.open_file(fh).iter_batches(READ_BATCH, columns=list(FIELDS)):
                yield pa.Table.from_batches([batch]).cast(SCHEMA)
    except SnapshotError:
        raise
    except (pa.ArrowException, ValueError, OSError, KeyError) as exc:
        raise SnapshotError(f"cannot parse files of version {version}: {type(exc).__name__}") from None


@contextlib.contextmanager
def _verified_file(where: str, manifest: dict, name: str) -> Iterator[IO[bytes]]:
    """The file ``name`` of the version in ``where`` (its ``manifest`` verified), open and at its
    start, once it is found listed, present and with the SHA-256 the manifest signs (hashed in
    blocks from this same open file, which is then read: nothing unverified is read)."""
    version = manifest.get("version")
    meta = (manifest.get("files") or {}).get(name)
    if meta is None:
        raise SnapshotError(f"manifest of version {version} does not list {name}")
    path = _join(where, name)
    if not fs.exists(path):
        raise SnapshotError(f"{name} is missing from version {version}")
    with fs.open_read(path) as fh:
        digest = hashlib.sha256()
        for block in fs.read_blocks(fh):
            digest.update(block)
        if digest.hexdigest() != meta.get("sha256"):
            raise SnapshotError(f"checksum mismatch for {name} in version {version}")
        fh.seek(0)
        yield fh


def load_delta(db_dir: str, public_key: PublicKeyLike, version: int) -> Delta:
    """Verify one delta version (for :meth:`IndicatorIndex.apply_delta`)."""
    manifest, table, codes = _load_version(os.fspath(db_dir), int(version), _key(public_key))
    if manifest.get("type") != "delta":
        raise SnapshotError(f"version {version} is a full snapshot, not a delta")
    return Delta(int(version), int(manifest["parent"]), manifest, table, codes)


def deltas_between(db_dir: str, public_key: PublicKeyLike, since: int,
                   version: Optional[int] = None) -> Optional[list[Delta]]:
    """The verified deltas leading from version ``since`` to ``version`` (default: the highest
    signed one, :func:`head`), oldest first; ``[]`` when they are equal and None when ``version``
    does not descend from ``since`` through deltas only (then load the full snapshot)."""
    key = _key(public_key)
    version = head(db_dir, key).latest if version is None else version
    if version == since:
        return []
    if version < since:
        return None
    chain, reached = _chain(os.fspath(db_dir), version, key, stop_at=since)
    if not reached:
        return None
    return [Delta(m["version"], m["parent"], m, t, c) for m, t, c in reversed(chain)]
