"""Where an indicator database's files are (:mod:`csadetect.indicators.snapshot`): the names of a
version's files, :class:`SnapshotError`, and the only code that touches storage.

The ``_read``/``_write``/``_list`` helpers work on a local path with ``os`` (atomic ``os.replace``
for ``CURRENT``) and on any Beam filesystem URL (``gs://``) with Beam's ``FileSystems``, through
:mod:`csadetect.core.fs`; swap them to support another store. :func:`current_version` reads the
unsigned ``CURRENT`` hint and :func:`list_versions` the version directories, neither verified.
:mod:`csadetect.indicators.snapshot` re-exports the public names.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from typing import Optional

from csadetect.core import fs

FULL_FILE = "indicators.parquet"
DELTA_FILE = "delta.parquet"
CODES_FILE = "pdq_codes.npy"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"


class SnapshotError(RuntimeError):
    """A snapshot that cannot be built, found or trusted; the message is one line."""


class DuplicateIdError(SnapshotError):
    """Rows to build hold ``indicator_id`` more than once."""

    def __init__(self, indicator_id: str):
        super().__init__(f"indicator id {indicator_id!r} appears more than once")
        self.indicator_id = indicator_id


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
    if atomic:
        fs.replace_whole(path, data)
        return
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


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
    """A private local staging directory for the version directory ``path``: next to it locally
    (published by one rename), a temporary one for a URL (uploaded by :func:`_publish_dir`)."""
    if fs.is_url(path):
        return tempfile.mkdtemp(prefix="csadetect-staging-")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staging = os.path.join(os.path.dirname(path), f".staging-{os.path.basename(path)}-{uuid.uuid4().hex[:8]}")
    os.makedirs(staging)
    return staging


def _publish_dir(staging: str, path: str) -> None:
    """Put the staging directory's files in place as ``path``: one rename locally (on failure, the
    version exists: another build, it is removed, so no half-built version is left beside the
    published ones); on an object store, uploaded file by file, streamed, the manifest last (a
    version counts as published once its manifest exists)."""
    if fs.is_url(path):
        try:
            for name in sorted(os.listdir(staging), key=lambda n: n == MANIFEST):
                with open(os.path.join(staging, name), "rb") as src, fs.open_write(_join(path, name)) as dst:
                    shutil.copyfileobj(src, dst, 1 << 24)
        finally:
            _drop_dir(staging)
        return
    try:
        os.rename(staging, path)
    except OSError:
        _drop_dir(staging)
        raise SnapshotError(f"version directory {path} already exists (is another build running?)") from None


def _drop_dir(staging: str) -> None:
    """Remove a staging directory of :func:`_new_dir`."""
    shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Version directories and CURRENT


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


def advance_current(db_dir: str, version: int) -> None:
    """Point ``CURRENT`` at ``version`` (atomically), unless it already names a higher one: a build
    that started first but finished last never moves it back below a version published meanwhile."""
    try:
        current = current_version(db_dir)
    except SnapshotError:
        current = None  # unreadable: rewritten
    if current is None or current < version:
        _write(_join(db_dir, "CURRENT"), f"{version}\n".encode("ascii"), atomic=True)


def list_versions(db_dir: str) -> list[int]:
    """Version numbers present under ``versions/`` (complete or not), ascending."""
    return sorted(int(n) for n in _list(_versions_dir(db_dir)) if n.isdigit())
