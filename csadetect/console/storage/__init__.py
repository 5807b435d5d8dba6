"""The console's storage: one interface (:mod:`.interface`), the SQLite store the console runs on
(:mod:`.sqlite`: staff accounts and the audit log in one file, the report cache in another; its SQL
and migration in :mod:`.sqlite_schema`) and
an in-memory one (:mod:`.memory`). Everything else in the console and
``csadetect console`` opens its store with :func:`open_store` and uses the interface only."""
from __future__ import annotations

from typing import Optional

from csadetect.console.storage.interface import (
    OPEN_STATUSES, REPORT_ID, USERNAME, ConsoleStorage, StoreError, check_username, claim_holder, content_hash, iso_at,
)
from csadetect.console.storage.sqlite import SQLiteConsoleStore, cache_path

__all__ = ["OPEN_STATUSES", "REPORT_ID", "USERNAME", "ConsoleStorage", "StoreError", "cache_path", "check_username", "claim_holder",
           "content_hash", "iso_at", "open_store"]


def open_store(db: str, audit_log: Optional[str] = None, read_only: bool = False) -> ConsoleStorage:
    """The console's store for the ``console.db`` setting (the accounts file, with the report cache
    :func:`cache_path` next to it), mirroring its audit log to ``audit_log``; ``read_only`` opens
    the accounts file without creating or changing anything."""
    return SQLiteConsoleStore(db, audit_log, read_only=read_only)
