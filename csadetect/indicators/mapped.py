"""The ready-to-map index files of a full snapshot version: written once when the version is
built, memory-mapped read-only by every worker process, so all processes on a machine share one
copy through the page cache and loading builds nothing.

Files of a full version (besides ``indicators.parquet`` and ``pdq_codes.npy``, which are mapped
too), each listed with its SHA-256 in the signed manifest::

    rows.arrow           Arrow IPC file, in batches: indicator_id, and value (null on pdq rows:
                         their hashes are pdq_codes.npy)
    category_codes.npy   per row, its category's position in manifest["index"]["categories"]
    source_codes.npy     per row, its source's position in manifest["index"]["sources"]
    disabled_rows.npy    the row numbers of disabled rows (tombstones), sorted
    pdq_mih_order.npy    multi-index hashing tables of the pdq codes
    pdq_mih_offsets.npy  (:meth:`csadetect.signals.hamming.MultiIndexHash.build_tables`), when there
                         are at least ``MultiIndexHash.FLAT_BELOW`` pdq rows

``manifest["index"]`` (signed) holds the row layout (each kind's ``[first, end)`` rows; rows are
sorted by kind, pdq first, then id), the category and source names, and the row count.

Verification before mapping: the manifest's signature (by the caller) and each file's SHA-256,
read in blocks so the check holds no copy; the mapping is then made of the checked file. Version
directories are immutable once published; a local writer able to change a file between the check
and the mapping could also change the key, so it is outside this check's scope (docs/indicators.md).
A database on an object store (``gs://``) is copied once per machine into a local cache
(:func:`cached_copy`: the first process copies, checking each file's SHA-256 as it streams, under
a lock; the other processes on the machine wait for it and map the same copy).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import mmap
import os
import shutil
import tempfile
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csadetect.core import fs
from csadetect.indicators.snapshot import CODES_FILE, CODES_KIND, SnapshotError, _open_npy
from csadetect.signals import names
from csadetect.signals.hamming import HASH_BYTES, MultiIndexHash

ROWS_FILE = "rows.arrow"
CATEGORY_FILE = "category_codes.npy"
SOURCE_FILE = "source_codes.npy"
DISABLED_FILE = "disabled_rows.npy"
ORDER_FILE = "pdq_mih_order.npy"
OFFSETS_FILE = "pdq_mih_offsets.npy"
BATCH_ROWS = 1 << 20  # rows per Arrow record batch (string offsets stay 32-bit at any size)
ROWS_SCHEMA = pa.schema([pa.field("indicator_id", pa.string(), nullable=False), pa.field("value", pa.string())])


def dictionary_codes(column: pa.ChunkedArray) -> tuple[list, np.ndarray]:
    """``(names, codes)``: the column's distinct values and, per row, its value's position among them."""
    encoded = column.combine_chunks().dictionary_encode()
    names_ = encoded.dictionary.to_pylist()
    dtype = np.uint16 if len(names_) <= 1 << 16 else np.int32
    return names_, encoded.indices.to_numpy(zero_copy_only=False).astype(dtype)


class IndexWriter:
    """Writes a full version's index files into the local directory ``directory``, fed its rows in
    canonical order a chunk at a time (:meth:`add`), then :meth:`close` with the version's pdq codes:
    the arrays are memory-mapped files, so the writer holds no copy of the version.

    ``table`` holds all the version's rows in any order (for the category and source names, sorted)
    and ``tally`` its :func:`csadetect.indicators.snapshot.counts` (for the row layout)."""

    def __init__(self, directory: str, table: pa.Table, tally: dict):
        self.directory, self.n = directory, table.num_rows
        kinds, first = tally["kinds"], 0
        self.layout = {}
        for kind in names():
            size = sum(kinds.get(kind, {}).values())
            if size:
                self.layout[kind] = [first, first + size]
                first += size
        self.names, self.codes = {}, {}
        for name, column in ((CATEGORY_FILE, "category"), (SOURCE_FILE, "source")):
            values = sorted(pc.unique(table[column]).to_pylist())
            dtype = np.uint16 if len(values) <= 1 << 16 else np.int32
            self.names[column] = values
            self.codes[column] = _open_npy(os.path.join(directory, name), dtype, (self.n,))
        self.disabled: list[np.ndarray] = []
        self._rows = pa.ipc.new_file(os.path.join(directory, ROWS_FILE), ROWS_SCHEMA)

    def add(self, part: pa.Table, first: int) -> None:
        """Rows ``first`` to ``first + len(part)`` of the version, in canonical order."""
        # pdq rows come first in canonical order; their values are nulls that take no bytes (pc.if_else
        # would keep each hidden hash: 64 bytes a row, 6.4 GB of dead data at 100M rows)
        pdq = pc.sum(pc.equal(part["kind"], CODES_KIND)).as_py() or 0
        values = pa.concat_arrays([pa.nulls(pdq, pa.string()), part["value"].slice(pdq).combine_chunks()])
        rows = pa.table({"indicator_id": part["indicator_id"], "value": values}, schema=ROWS_SCHEMA)
        for batch in rows.to_batches(max_chunksize=BATCH_ROWS):
            self._rows.write_batch(batch)
        for column, codes in self.codes.items():
            where = pc.index_in(part[column], value_set=pa.array(self.names[column], pa.string()))
            codes[first:first + part.num_rows] = where.to_numpy(zero_copy_only=False)
        self.disabled.append(first + np.flatnonzero(part["disabled_at"].is_valid().to_numpy(zero_copy_only=False)))

    def close(self, codes: np.ndarray, tick=None) -> dict:
        """Finish the files (the multi-index tables of ``codes``, the pdq codes in row order) and
        return ``manifest["index"]``; ``tick()`` after each multi-index table."""
        self._rows.close()
        for array in self.codes.values():
            if isinstance(array, np.memmap):
                array.flush()
        disabled = np.concatenate(self.disabled) if self.disabled else np.zeros(0)
        np.save(os.path.join(self.directory, DISABLED_FILE), disabled.astype(np.int64))
        mih = len(codes) >= MultiIndexHash.FLAT_BELOW
        meta = {"rows": self.n, "layout": self.layout, "categories": self.names["category"],
                "sources": self.names["source"], "mih": mih}
        if mih:
            meta["mih_bits"] = bits = MultiIndexHash.bits_for(len(codes))
            tables, n = 256 // bits, len(codes)
            order = _open_npy(os.path.join(self.directory, ORDER_FILE), np.uint32, (tables * n,))
            offsets = _open_npy(os.path.join(self.directory, OFFSETS_FILE), MultiIndexHash.offsets_dtype(n, bits),
                                (tables * (1 << bits) + 1,))
            MultiIndexHash.build_tables(codes, bits, order, offsets, tick)
            order.flush()
            offsets.flush()
        return meta


# Files read a row here and a row there (the id, category and source of a hit): mapped for random
# access. Read sequentially by the checksum, their pages would sit in the page cache as large
# folios, and the first touch of a row would map megabytes around it into the process; the cache
# they filled is dropped after the check and their mappings advised MADV_RANDOM, so a hit maps a
# page. The PDQ codes and tables are read all over by every lookup: they keep the default.
SPARSE = (ROWS_FILE, CATEGORY_FILE, SOURCE_FILE)


def _map(path: str, sparse: bool) -> mmap.mmap:
    with open(path, "rb") as fh:
        mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    if sparse and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mapping.madvise(mmap.MADV_RANDOM)
    return mapping


def _map_npy(path: str, sparse: bool) -> np.ndarray:
    """A read-only array over the mapped ``.npy`` file (header parsed, data not copied)."""
    with open(path, "rb") as fh:
        major, _ = np.lib.format.read_magic(fh)
        if major == 1:
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        offset = fh.tell()
    if fortran or dtype.hasobject:
        raise ValueError(f"{os.path.basename(path)} is not a plain C-order array")
    count = int(np.prod(shape)) if shape else 1
    if count == 0:
        return np.zeros(shape, dtype=dtype)
    return np.frombuffer(_map(path, sparse), dtype=dtype, count=count, offset=offset).reshape(shape)


@dataclasses.dataclass(frozen=True, eq=False)
class MappedVersion:
    """A full version's files, verified and mapped read-only."""

    version: int
    ids: pa.ChunkedArray
    values: pa.ChunkedArray  # null on pdq rows
    layout: dict  # kind -> (first, end)
    categories: list
    category_codes: np.ndarray
    sources: list
    source_codes: np.ndarray
    disabled: np.ndarray
    pdq_codes: np.ndarray
    mih: Optional[tuple[np.ndarray, np.ndarray, int]]  # (order, offsets, substring bits)

    @property
    def n(self) -> int:
        return len(self.ids)

    def file_bytes(self) -> int:
        arrays = [self.category_codes, self.source_codes, self.disabled, self.pdq_codes] + list(self.mih or ())[:2]
        return sum(a.nbytes for a in arrays) + self.ids.nbytes + self.values.nbytes


def has_index_files(manifest: dict) -> bool:
    return manifest.get("type") == "full" and isinstance(manifest.get("index"), dict) and \
        ROWS_FILE in (manifest.get("files") or {})


def _needed(manifest: dict) -> list[str]:
    names = [ROWS_FILE, CATEGORY_FILE, SOURCE_FILE, DISABLED_FILE, CODES_FILE]
    return names + ([ORDER_FILE, OFFSETS_FILE] if manifest["index"].get("mih") else [])


def default_cache_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "csadetect-indicators")


def cached_copy(db_dir: str, where: str, manifest: dict, cache_dir: Optional[str] = None) -> str:
    """A local directory holding the files :func:`map_version` maps, copied from ``where`` (a
    version directory on any Beam filesystem) once per machine under ``cache_dir``
    (:func:`csadetect.core.fs.local_copy`), each file's SHA-256 checked as it streams. Older cached
    versions of the same database are removed (a process still mapping one keeps its pages until
    it unmaps them)."""
    root = os.path.join(cache_dir or default_cache_dir(), hashlib.sha256(db_dir.encode()).hexdigest()[:16])
    version = int(manifest["version"])
    key = f"v{version}-" + hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    files = manifest.get("files") or {}

    def check(name: str, digest: str) -> None:
        if digest != files.get(name, {}).get("sha256"):
            raise SnapshotError(f"checksum mismatch for {name} in version {version}")

    try:
        final = fs.local_copy({name: fs.join(where, name) for name in _needed(manifest)}, root, key, check)
    except SnapshotError:
        raise
    except Exception as exc:  # OSError locally, BeamIOError on an object store: one line either way
        raise SnapshotError(f"cannot copy version {version} of {db_dir} into {root}: {type(exc).__name__}") from None
    for other in os.listdir(root):
        number = other[1:].split("-")[0]
        if other.startswith("v") and number.isdigit() and int(number) < version:
            shutil.rmtree(os.path.join(root, other), ignore_errors=True)
    return final


def map_version(where: str, manifest: dict) -> MappedVersion:
    """Check the SHA-256 of each file this needs against the (already verified) manifest, then
    map them read-only (``where``: a local directory). Raises SnapshotError with one line when
    anything does not fit."""
    version = manifest.get("version")
    meta = manifest["index"]
    files = manifest.get("files") or {}
    needed = _needed(manifest)
    paths = {}
    for name in needed:
        if name not in files:
            raise SnapshotError(f"manifest of version {version} does not list {name}")
        path = os.path.join(where, name)
        try:
            digest = fs.sha256_file(path, drop_cache=name in SPARSE)
        except OSError:
            raise SnapshotError(f"{name} is missing from version {version}") from None
        if digest != files[name].get("sha256"):
            raise SnapshotError(f"checksum mismatch for {name} in version {version}")
        paths[name] = path
    try:
        rows = pa.ipc.open_file(pa.py_buffer(_map(paths[ROWS_FILE], sparse=True))).read_all()
        arrays = {name: _map_npy(paths[name], sparse=name in SPARSE) for name in needed if name.endswith(".npy")}
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise SnapshotError(f"cannot map files of version {version}: {type(exc).__name__}") from None
    n = int(meta.get("rows", -1))
    layout = {str(k): (int(v[0]), int(v[1])) for k, v in (meta.get("layout") or {}).items()}
    pdq = layout.get(CODES_KIND, (0, 0))
    codes = arrays[CODES_FILE]
    fits = (rows.schema.equals(ROWS_SCHEMA) and rows.num_rows == n and len(arrays[CATEGORY_FILE]) == n
            and len(arrays[SOURCE_FILE]) == n and codes.dtype == np.uint8 and codes.ndim == 2
            and codes.shape == (pdq[1] - pdq[0], HASH_BYTES) and pdq[0] == 0 and set(layout) <= set(names()))
    if not fits:
        raise SnapshotError(f"index files of version {version} do not fit its manifest")
    mih = None
    if meta.get("mih"):
        mih = (arrays[ORDER_FILE], arrays[OFFSETS_FILE], int(meta.get("mih_bits", 16)))
    return MappedVersion(int(version), rows["indicator_id"], rows["value"], layout, list(meta.get("categories") or []),
                         arrays[CATEGORY_FILE], list(meta.get("sources") or []), arrays[SOURCE_FILE],
                         arrays[DISABLED_FILE], codes, mih)
