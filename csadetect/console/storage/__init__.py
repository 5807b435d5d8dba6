"""The console's storage: one interface (:mod:`.interface`), the SQLite store the console runs on
(:mod:`.sqlite`) and an in-memory one (:mod:`.memory`). Everything else in the console and
``csadetect console`` opens its store with :func:`open_store` and uses the interface only."""
from __future__ import annotations

from typing import Optional

from csadetect.console.storage.interface import (
    REPORT_ID, USERNAME, ConsoleStorage, StoreError, check_username, iso_at,
)
from csadetect.console.storage.sqlite import SQLiteConsoleStore

__all__ = ["REPORT_ID", "USERNAME", "ConsoleStorage", "StoreError", "check_username", "iso_at", "open_store"]


def open_store(db: str, audit_log: Optional[str] = None, read_only: bool = False) -> ConsoleStorage:
    """The console's store for the ``console.db`` setting, mirroring its audit log to ``audit_log``;
    ``read_only`` opens an existing database without creating or changing anything."""
    return SQLiteConsoleStore(db, audit_log, read_only=read_only)
