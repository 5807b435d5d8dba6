"""Signed manifests of an indicator database (:mod:`csadetect.indicators.snapshot`): reading and
verifying one version's ``manifest.json`` against its ``manifest.sig``, and which version a
database serves.

:func:`head` derives the version to serve from the signed manifests, never from the unsigned
``CURRENT`` alone; :func:`check_head` also refuses a rollback attempt (``CURRENT`` missing or below
the highest signed version) and a version below ``indicators.min_version``. A manifest that does
not verify, is not JSON without duplicate keys, or names another format or version raises
:class:`~csadetect.indicators.snapshot_store.SnapshotError`. No data file is read here.
:mod:`csadetect.indicators.snapshot` re-exports the public names.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
from typing import Optional

from csadetect.core.keys import PublicKeyLike, SigningError, key_id, load_public_key, verify
from csadetect.indicators.snapshot_store import (
    MANIFEST,
    SIGNATURE,
    SnapshotError,
    _join,
    _read,
    _version_dir,
    current_version,
    list_versions,
)

FORMAT = "csadetect-indicators/1"


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
