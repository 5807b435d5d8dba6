"""Signed, versioned indicator snapshots on disk (DESIGN.md §4).

Layout of a database directory (a local path or any Beam filesystem URL such as ``gs://``)::

    DBDIR/CURRENT                       a hint: the latest version number (written atomically)
    DBDIR/versions/<N>/indicators.parquet   a full snapshot, or
    DBDIR/versions/<N>/delta.parquet        rows changed since the parent version
    DBDIR/versions/<N>/pdq_codes.npy        PDQ hashes of that file's pdq rows, (n, 32) uint8 (parsed once, here)
    DBDIR/versions/<N>/rows.arrow, *.npy    a full version's index files, ready to map (indicators/mapped.py)
    DBDIR/versions/<N>/manifest.json        format, version, parent, created_at, counts, SHA-256 of every file
    DBDIR/versions/<N>/manifest.sig         base64 Ed25519 signature of the exact manifest bytes

A delta holds, for each id it touches, the id's complete new row: an upsert, or a tombstone (the
old row with ``disabled_at`` set). Resolving a chain is "last row per id wins". Loading verifies
the signature and the checksum of every file it reads of every version in the chain (the index
files when they are mapped), and parses the very bytes it checked, so nothing unverified is ever
used. Any failure raises :class:`SnapshotError` with a one-line reason; callers keep serving their last good version. Rows are sorted by kind in
the order the signal types are registered (:mod:`csadetect.signals`, PDQ first), then by id.

Which version is current (no rollback, :func:`head`): the highest version directory that holds a
``manifest.json``, whose signature must verify. ``CURRENT`` is unsigned, so it only has to agree:
one naming a version above that is refused, and one naming a lower version (``echo 1 > CURRENT``)
is a rollback attempt that :func:`check_head` (``indicators verify``, ``run`` start-up) reports;
loading never goes below the highest signed version because of it. A version directory whose
manifest does not verify is refused, not skipped, so a forged manifest cannot raise the version
and a damaged newest version cannot make readers fall back to an older one. What files alone cannot
show (the newest version directory deleted together with ``CURRENT`` lowered) is caught by
``indicators.min_version`` and by a running worker, which never goes below the version it serves.

All filesystem access goes through the small ``_read``/``_write``/``_list`` helpers at the top:
local paths use ``os`` (atomic ``os.replace`` for ``CURRENT``), URLs use Beam's ``FileSystems``.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import uuid
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from csadetect.indicators.rows import FIELDS, Indicator
from csadetect.core.keys import (
    PrivateKeyLike,
    PublicKeyLike,
    SigningError,
    key_id,
    load_private_key,
    load_public_key,
    sign,
    verify,
)
from csadetect.core import fs
from csadetect.core.timeutil import utc_iso
from csadetect.signals import SIGNAL_TYPES, SignalError, hex_to_codes, names
from csadetect.signals.pdq import PdqSignal

FORMAT = "csadetect-indicators/1"
FULL_FILE = "indicators.parquet"
DELTA_FILE = "delta.parquet"
CODES_FILE = "pdq_codes.npy"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CODES_KIND = PdqSignal.name  # the kind whose values are stored parsed, in CODES_FILE
SCHEMA = pa.schema(
    [pa.field(f, pa.string(), nullable=f not in ("indicator_id", "kind", "value")) for f in FIELDS]
)


class SnapshotError(RuntimeError):
    """A snapshot that cannot be built, found or trusted; the message is one line."""


# ---------------------------------------------------------------------------------------------
# Filesystem helpers: the only place that touches storage. Swap these to support another store.

def _join(*parts: str) -> str:
    return fs.join(*parts)


def _read(path: str) -> Optional[bytes]:
    """The file's bytes, or None when it does not exist."""
    try:
        return fs.read_bytes(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write(path: str, data: bytes, atomic: bool = False) -> None:
    """Write a file; ``atomic`` makes readers see the old or the new content, never a mix
    (temp file + ``os.replace`` locally; object stores replace objects atomically anyway)."""
    if fs.is_url(path):
        with fs.open_write(path) as fh:
            fh.write(data)
        return
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}" if atomic else path
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if atomic:
        os.replace(tmp, path)


def _list(path: str) -> list[str]:
    """Names directly under a directory (empty if it does not exist)."""
    if fs.is_url(path):
        prefix = path.rstrip("/") + "/"
        return sorted({m.path[len(prefix):].split("/", 1)[0] for m in fs.match(prefix + "*/" + MANIFEST)})
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _new_dir(path: str) -> str:
    """A private staging directory next to ``path`` (local only; URLs need none)."""
    if fs.is_url(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staging = os.path.join(os.path.dirname(path), f".staging-{os.path.basename(path)}-{uuid.uuid4().hex[:8]}")
    os.makedirs(staging)
    return staging


def _publish_dir(staging: str, path: str) -> None:
    if staging == path:
        return
    try:
        os.rename(staging, path)
    except OSError:
        raise SnapshotError(f"version directory {path} already exists (is another build running?)") from None


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
        if not pc.all(pc.is_in(table["kind"], pa.array(names()))).as_py():
            raise SnapshotError(f"indicator table has a kind outside {', '.join(names())}")
        table = table.set_column(3, "category", pc.fill_null(table["category"], "unspecified"))
        table = table.set_column(4, "source", pc.fill_null(table["source"], "eu-centre"))
        return table.set_column(5, "note", pc.fill_null(table["note"], ""))
    rows = list(rows)
    return pa.table({f: [getattr(r, f) for r in rows] for f in FIELDS}, schema=SCHEMA)


def table_rows(table: pa.Table) -> list[Indicator]:
    """An indicator table back as Indicator rows (for small tables: one object per row)."""
    return [Indicator(**r) for r in table.select(list(FIELDS)).to_pylist()]


def kind_rank(table: pa.Table) -> pa.Array:
    """The position of each row's kind among the registered signal types."""
    return pc.index_in(table["kind"], value_set=pa.array(names()))


def _sorted(table: pa.Table) -> pa.Table:
    """Rows ordered by kind (pdq first) then id: the canonical order on disk and in memory."""
    keyed = table.append_column("_rank", kind_rank(table))
    order = pc.sort_indices(keyed, sort_keys=[("_rank", "ascending"), ("indicator_id", "ascending")])
    return table.take(order)


def _of_kind(table: pa.Table, kind: str) -> pa.ChunkedArray:
    return table.filter(pc.equal(table["kind"], kind))["value"]


def _pdq_codes(table: pa.Table) -> np.ndarray:
    """The parsed values of the table's CODES_KIND rows, in table order."""
    try:
        return hex_to_codes(_of_kind(table, CODES_KIND), PdqSignal.nbytes)
    except SignalError as exc:
        raise SnapshotError(str(exc)) from None


def _check_values(table: pa.Table) -> None:
    """Check each kind's values as its signal type checks a trusted column (hex widths)."""
    try:
        for signal in SIGNAL_TYPES.values():
            signal.check_column(_of_kind(table, signal.name))
    except SignalError as exc:
        raise SnapshotError(str(exc)) from None


def counts(table: pa.Table) -> dict:
    """``{"rows": n, "kinds": {kind: {"active": a, "disabled": d}}}`` for a table."""
    kinds = table["kind"].to_numpy(zero_copy_only=False)
    disabled = table["disabled_at"].is_null().to_numpy(zero_copy_only=False) == False  # noqa: E712
    out = {}
    for kind in names():
        mask = kinds == kind
        if mask.any():
            off = int((mask & disabled).sum())
            out[kind] = {"active": int(mask.sum()) - off, "disabled": off}
    return {"rows": table.num_rows, "kinds": out}


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


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


# ---------------------------------------------------------------------------------------------
# Reading


def _versions_dir(db_dir: str) -> str:
    return _join(db_dir, "versions")


def version_dir(db_dir: str, version: int) -> str:
    """Where a version's files are."""
    return _version_dir(db_dir, version)


def _version_dir(db_dir: str, version: int) -> str:
    return _join(db_dir, "versions", str(version))


def current_version(db_dir: str) -> Optional[int]:
    """The version ``CURRENT`` names, or None when there is no snapshot. Cheap: one small read,
    no verification (that happens on load), so workers can poll it."""
    data = _read(_join(db_dir, "CURRENT"))
    if data is None:
        return None
    try:
        version = int(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise SnapshotError(f"{db_dir}/CURRENT does not hold a version number") from None
    if version < 1:
        raise SnapshotError(f"{db_dir}/CURRENT holds an invalid version {version}")
    return version


def list_versions(db_dir: str) -> list[int]:
    """Version numbers present under ``versions/`` (complete or not), ascending."""
    return sorted(int(n) for n in _list(_versions_dir(db_dir)) if n.isdigit())


def _unique_keys(pairs: list) -> dict:
    """``json`` object hook: a signed manifest with a repeated key is refused, not last-wins."""
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


def _read_manifest(db_dir: str, version: int, public_key, raw: Optional[bytes] = None) -> dict:
    where = _version_dir(db_dir, version)
    raw = _read(_join(where, MANIFEST)) if raw is None else raw
    if raw is None:
        raise SnapshotError(f"version {version} not found in {db_dir} (no {MANIFEST})")
    if public_key is not None:
        sig_text = _read(_join(where, SIGNATURE))
        if sig_text is None:
            raise SnapshotError(f"version {version} in {db_dir} has no {SIGNATURE}")
        try:
            signature = base64.b64decode(sig_text.strip(), validate=True)
        except ValueError:
            raise SnapshotError(f"{SIGNATURE} of version {version} is not a base64 signature") from None
        if not verify(public_key, raw, signature):
            claimed = ""
            try:
                claimed = json.loads(raw).get("key_id", "")
            except (ValueError, AttributeError):
                pass
            hint = f" (manifest names key {claimed}, verifying with key {key_id(public_key)})" if claimed else ""
            raise SnapshotError(f"signature does not verify for version {version} in {db_dir}{hint}")
    try:
        manifest = json.loads(raw, object_pairs_hook=_unique_keys)
    except ValueError:
        raise SnapshotError(f"{MANIFEST} of version {version} is not valid JSON without duplicate keys") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{MANIFEST} of version {version} is not a {FORMAT} manifest")
    if manifest.get("version") != version:
        raise SnapshotError(f"{MANIFEST} in directory of version {version} says version {manifest.get('version')}")
    return manifest


@dataclasses.dataclass(frozen=True)
class Head:
    """Which version a database serves. ``latest``: the highest version directory holding a
    manifest, whose signature verified; ``current``: what the unsigned ``CURRENT`` hint says (None
    when it is missing or does not hold a version number)."""

    db_dir: str
    latest: int
    current: Optional[int]

    def problem(self) -> Optional[str]:
        """One line when ``CURRENT`` disagrees with the signed manifests (a rollback attempt)."""
        if self.current is None:
            return f"{self.db_dir}/CURRENT is missing or unreadable; the highest signed version is {self.latest}"
        if self.current < self.latest:
            return (f"rollback attempt: {self.db_dir}/CURRENT names version {self.current}, "
                    f"below the highest signed version {self.latest}")
        return None


def _latest_signed(db_dir: str, key) -> Optional[int]:
    """The highest version directory holding a manifest (None when there is none), after checking
    that manifest's signature (unless ``key`` is None): one that does not verify raises, so it is
    never skipped over."""
    for version in reversed(list_versions(db_dir)):
        raw = _read(_join(_version_dir(db_dir, version), MANIFEST))
        if raw is None:
            continue  # no manifest (yet): a version whose publication has not finished
        _read_manifest(db_dir, version, key, raw)
        return version
    return None


def head(db_dir: str, public_key: PublicKeyLike) -> Head:
    """The version to serve (:class:`Head`), derived from the signed manifests, never from
    ``CURRENT`` alone. Raises SnapshotError when there is no signed version, when the highest
    version's manifest does not verify, or when ``CURRENT`` names a version above it. A ``CURRENT``
    below it is not an error here (readers still serve the highest); see :func:`check_head`.
    Cheap: a listing and one manifest and signature read, so workers can poll it."""
    db_dir = os.fspath(db_dir)
    key = _key(public_key)
    latest = _latest_signed(db_dir, key)
    if latest is None:
        raise SnapshotError(f"no snapshot in {db_dir} (no signed version)")
    try:
        current = current_version(db_dir)
    except SnapshotError:
        current = None  # unreadable: reported by check_head, never a reason to serve less
    if current is not None and current > latest:
        raise SnapshotError(f"{db_dir}/CURRENT names version {current}, above the highest signed version {latest}")
    return Head(db_dir, latest, current)


def check_min_version(version: int, min_version: Optional[int]) -> None:
    """Refuse a version below the configured minimum (``indicators.min_version``)."""
    if min_version is not None and version < min_version:
        raise SnapshotError(f"version {version} is below the minimum version {min_version} (indicators.min_version)")


def check_head(db_dir: str, public_key: PublicKeyLike, min_version: Optional[int] = None) -> Head:
    """:func:`head`, refusing also a rollback attempt (``CURRENT`` missing or below the highest
    signed version) and a highest version below ``min_version``: what ``indicators verify`` and
    ``run`` check before they trust a database."""
    found = head(db_dir, public_key)
    problem = found.problem()
    if problem:
        raise SnapshotError(problem)
    check_min_version(found.latest, min_version)
    return found


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
        table = pq.read_table(pa.BufferReader(blobs[data_name]))
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


def manifest_chain(db_dir: str, public_key: PublicKeyLike, version: int) -> list[tuple[str, dict]]:
    """``(version directory, verified manifest)`` from ``version`` back to its full snapshot,
    newest first: signatures only, no data file is read."""
    key = _key(public_key)
    out = []
    seen = int(version)
    while True:
        manifest = _read_manifest(db_dir, seen, key)
        out.append((_version_dir(db_dir, seen), manifest))
        if manifest.get("type") == "full":
            return out
        parent = manifest.get("parent")
        if not isinstance(parent, int) or parent >= seen or parent < 1:
            raise SnapshotError(f"version {seen} is a delta with an invalid parent {parent!r}")
        seen = parent


def _key(public_key):
    try:
        return load_public_key(public_key)
    except SigningError as exc:
        raise SnapshotError(str(exc)) from None


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


def load_delta(db_dir: str, public_key: PublicKeyLike, version: int) -> Delta:
    """Verify one delta version (for :meth:`IndicatorIndex.apply_delta`)."""
    manifest, table, codes = _load_version(os.fspath(db_dir), int(version), _key(public_key))
    if manifest.get("type") != "delta":
        raise SnapshotError(f"version {version} is a full snapshot, not a delta")
    return Delta(int(version), int(manifest["parent"]), manifest, table, codes)


def deltas_between(db_dir: str, public_key: PublicKeyLike, since: int, version: Optional[int] = None) -> Optional[list[Delta]]:
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


# ---------------------------------------------------------------------------------------------
# Building


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


def build_snapshot(
    rows: Union[pa.Table, Iterable[Indicator]],
    db_dir: str,
    private_key: PrivateKeyLike,
    base: Union[None, str, int] = None,
    disable_ids: Iterable[str] = (),
) -> dict:
    """Write and sign a new version; returns its manifest.

    ``base=None`` writes a full snapshot of ``rows``. ``base="latest"`` (the highest version
    signed by this key, :func:`head`; or a version number) writes a delta against that version: rows that are new or changed are upserted, and every id
    in ``disable_ids`` is tombstoned (``disabled_at`` set; it stops matching). Tombstones are
    sticky: a delta never re-enables a disabled id (re-add it under a new id, or build a new full
    snapshot). ``CURRENT`` moves to the new version only after all its files are written.
    """
    try:
        key = load_private_key(private_key)
    except SigningError as exc:
        raise SnapshotError(str(exc)) from None
    db_dir = os.fspath(db_dir)
    now = utc_iso()
    new = rows_to_table(rows)
    if pc.count_distinct(new["indicator_id"]).as_py() != new.num_rows:
        raise SnapshotError("indicator ids are not unique")
    disable_ids = list(disable_ids)
    existing = list_versions(db_dir)
    try:
        hint = current_version(db_dir)
    except SnapshotError:
        hint = None  # unreadable: this build rewrites it
    version = max(existing + [hint or 0]) + 1
    if base is None:
        parent = None
        new = new.set_column(6, "added_at", pc.fill_null(new["added_at"], now))
        if disable_ids:
            dead = _tombstones(disable_ids, [new], now)
            new = pa.concat_tables([new.filter(pc.invert(pc.is_in(new["indicator_id"], dead["indicator_id"]))), dead])
        data, totals = _sorted(new), None
    else:
        if base == "latest":
            parent = _latest_signed(db_dir, key.public_key())
        elif str(base).isdigit() and int(base) >= 1:
            parent = int(base)
        else:
            raise SnapshotError(f"base must be 'latest' or a version number, not {base!r}")
        if parent is None:
            raise SnapshotError(f"no snapshot in {db_dir} to base a delta on")
        base_snap = load_snapshot(db_dir, key.public_key(), parent)
        delta = _delta_rows(new, base_snap.table, now)
        if disable_ids:
            dead = _tombstones(disable_ids, [delta, base_snap.table], now)
            delta = delta.filter(pc.invert(pc.is_in(delta["indicator_id"], dead["indicator_id"])))
            dead = _delta_rows(dead, base_snap.table, now)  # drops already-disabled rows
            delta = pa.concat_tables([delta, dead])
        data = _sorted(delta)
        resolved, _ = _resolve([(base_snap.table, base_snap.pdq_codes), (data, _pdq_codes(data))])
        totals = counts(resolved)
    codes = _pdq_codes(data)
    _check_values(data)
    data_name = FULL_FILE if parent is None else DELTA_FILE
    blobs = {data_name: _parquet_bytes(data), CODES_FILE: _npy_bytes(codes)}
    index_meta = None
    if parent is None:  # a full version carries its index files, ready to map (indicators/mapped.py)
        from csadetect.indicators import mapped  # it reads this module's names: imported here, not at the top

        index_meta, index_blobs = mapped.index_files(data, codes)
        blobs.update(index_blobs)
    manifest = {
        "format": FORMAT,
        "version": version,
        "type": "full" if parent is None else "delta",
        "parent": parent,
        "created_at": now,
        "key_id": key_id(key),
        "counts": counts(data),
        "totals": totals or counts(data),
        "files": {n: {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)} for n, b in blobs.items()},
    }
    if index_meta is not None:
        manifest["index"] = index_meta
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    # the manifest goes last: on an object store (no atomic directory rename) a version counts as
    # published (head(), _list) once its manifest exists, and by then every other file is there
    blobs[SIGNATURE] = base64.b64encode(sign(key, manifest_bytes)) + b"\n"
    blobs[MANIFEST] = manifest_bytes
    final = _version_dir(db_dir, version)
    staging = _new_dir(final)
    for name, blob in blobs.items():
        _write(_join(staging, name), blob)
    _publish_dir(staging, final)
    _write(_join(db_dir, "CURRENT"), f"{version}\n".encode("ascii"), atomic=True)
    return manifest


def compact(db_dir: str, private_key: PrivateKeyLike, version: Optional[int] = None) -> dict:
    """Write a new full version holding exactly the resolved rows of ``version`` (default: the
    highest signed one) with its own index files, so workers map one base instead of replaying a
    chain of deltas into an overlay. Tombstones are kept (a later delta still cannot re-enable
    them); ids, values, ``added_at`` and ``disabled_at`` are unchanged. Returns its manifest."""
    try:
        key = load_private_key(private_key)
    except SigningError as exc:
        raise SnapshotError(str(exc)) from None
    db_dir = os.fspath(db_dir)
    snap = load_snapshot(db_dir, key.public_key(), version)
    if snap.manifest.get("type") == "full":
        raise SnapshotError(f"version {snap.version} of {db_dir} is already a full snapshot: nothing to compact")
    return build_snapshot(snap.table, db_dir, key)


# ---------------------------------------------------------------------------------------------
# Inspecting


def diff(a: Snapshot, b: Snapshot) -> dict:
    """What changed from ``a`` to ``b``, as sorted id lists:

    ``added`` (in b only), ``removed`` (in a only), ``disabled`` (active in a, disabled in b),
    ``enabled`` (disabled in a, active in b), ``changed`` (kind, value, category, source or note
    differ; not counting ids already listed as disabled/enabled)."""
    ta, tb = a.table, b.table
    ids_a = set(ta["indicator_id"].to_pylist())
    ids_b = set(tb["indicator_id"].to_pylist())
    common = pa.array(sorted(ids_a & ids_b), pa.string())
    fa = ta.filter(pc.is_in(ta["indicator_id"], common)).sort_by("indicator_id")
    fb = tb.filter(pc.is_in(tb["indicator_id"], common)).sort_by("indicator_id")
    ids = np.asarray(fa["indicator_id"].to_pylist(), dtype=object)
    off_a = fa["disabled_at"].is_null().to_numpy(zero_copy_only=False) == False  # noqa: E712
    off_b = fb["disabled_at"].is_null().to_numpy(zero_copy_only=False) == False  # noqa: E712
    differs = np.zeros(len(ids), dtype=bool)
    for field in ("kind", "value", "category", "source", "note"):
        differs |= pc.not_equal(fa[field], fb[field]).to_numpy(zero_copy_only=False)
    return {
        "from": a.version,
        "to": b.version,
        "added": sorted(ids_b - ids_a),
        "removed": sorted(ids_a - ids_b),
        "disabled": ids[~off_a & off_b].tolist(),
        "enabled": ids[off_a & ~off_b].tolist(),
        "changed": ids[differs & (off_a == off_b)].tolist(),
    }


def info(db_dir: str, public_key: Optional[PublicKeyLike] = None, version: Optional[int] = None) -> dict:
    """Versions, types, parents and counts. With ``public_key`` the chain of ``version`` (default:
    the highest signed version, :func:`head`) is fully verified (raises SnapshotError otherwise)
    and ``rollback`` says whether ``CURRENT`` disagrees with it; without, manifests are read
    unverified (default: the highest version holding a manifest) and the result says
    ``"verified": false``."""
    db_dir = os.fspath(db_dir)
    current = current_version(db_dir)
    found = head(db_dir, public_key) if public_key is not None else None
    if version is not None:
        target = int(version)
    elif found is not None:
        target = found.latest
    else:
        target = _latest_signed(db_dir, None) or current  # no key: the manifest is read unverified
    if target is None:
        raise SnapshotError(f"no snapshot in {db_dir} (no version)")
    if public_key is not None:
        snap = load_snapshot(db_dir, public_key, target)
        manifests = list(snap.chain)
        totals = snap.counts()
    else:
        manifests, seen = [], target
        while True:
            manifest = _read_manifest(db_dir, seen, None)
            manifests.insert(0, manifest)
            if manifest.get("type") == "full" or not isinstance(manifest.get("parent"), int):
                break
            seen = manifest["parent"]
        totals = manifests[-1].get("totals")
    return {
        "db_dir": db_dir,
        "current": current,
        "version": target,
        "verified": public_key is not None,
        "latest_signed": found.latest if found else None,
        "rollback": found.problem() if found else None,
        "key_id": manifests[-1].get("key_id"),
        "totals": totals,
        "chain": [
            {k: m.get(k) for k in ("version", "type", "parent", "created_at", "counts")} for m in manifests
        ],
        "versions_on_disk": list_versions(db_dir),
    }
