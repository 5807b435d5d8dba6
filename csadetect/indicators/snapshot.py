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

The code is split by concern, and this module re-exports the public names of each (callers import
them from here): :mod:`~csadetect.indicators.snapshot_store` (file names, :class:`SnapshotError`, and
the ``_read``/``_write``/``_list`` helpers, the only code that touches storage: local paths use
``os``, atomic ``os.replace`` for ``CURRENT``; URLs use Beam's ``FileSystems``),
:mod:`~csadetect.indicators.snapshot_tables` (rows as Arrow tables, :class:`Snapshot`, :class:`Delta`),
:mod:`~csadetect.indicators.snapshot_manifest` (signed manifests, :func:`head`, :func:`check_head`),
:mod:`~csadetect.indicators.snapshot_load` (verify and resolve a chain) and
:mod:`~csadetect.indicators.snapshot_build` (write and sign a version, :func:`compact`). Inspecting
(:func:`info`) is here; :func:`diff` is :mod:`~csadetect.indicators.snapshot_diff`'s.
"""
from __future__ import annotations

import os
from typing import Optional

from csadetect.core.keys import PublicKeyLike

# re-exported from the modules this one was split into: callers import these names from here
from csadetect.indicators.snapshot_store import (
    CODES_FILE,
    DELTA_FILE,
    FULL_FILE,
    MANIFEST,
    SIGNATURE,
    DuplicateIdError,
    SnapshotError,
    current_version,
    list_versions,
    version_dir,
)
from csadetect.indicators.snapshot_tables import (
    CODES_KIND,
    SCHEMA,
    Delta,
    Snapshot,
    _open_npy,
    _resolve,
    counts,
    kind_rank,
    rows_to_table,
    table_rows,
)
from csadetect.indicators.snapshot_manifest import (
    FORMAT,
    Head,
    _latest_signed,
    _read_manifest,
    check_head,
    check_min_version,
    head,
    manifest_chain,
)
from csadetect.indicators.snapshot_load import (deltas_between, load_delta, load_snapshot, resolved_batches,
                                                verify_snapshot)
from csadetect.indicators.snapshot_build import build_snapshot, compact
from csadetect.indicators.snapshot_diff import diff, diff_batches


# ---------------------------------------------------------------------------------------------
# Inspecting


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
        _, manifests, totals = verify_snapshot(db_dir, public_key, target)  # never held whole
    else:
        manifests, seen = [], target
        while True:
            manifest = _read_manifest(db_dir, seen, None)
            manifests.insert(0, manifest)
            if manifest.get("type") == "full":
                break
            parent = manifest.get("parent")
            if not isinstance(parent, int) or parent >= seen or parent < 1:  # a loop would never end
                raise SnapshotError(f"version {seen} is a delta with an invalid parent {parent!r}")
            seen = parent
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
