"""The bookkeeping of one retention run (:mod:`.retention`): what it deleted (:class:`RetentionResult`),
its cutoffs and holds, whether a row is due, and the deletion log (``retention.log_dir/deletions.jsonl``,
ids only) that names every id deleted by this run or an earlier one.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Optional

from csadetect.compliance.retention_files import _append_lines, _local
from csadetect.compliance.retention_holds import active_holds
from csadetect.core.timeutil import as_utc, parse_time, utc_iso

log = logging.getLogger("csadetect.compliance.retention")  # the whole run logs under the public module's name

STORES = ("reports", "review", "evidence", "console", "verdicts", "info_requests", "notifications",
          "complaints", "dead_letters", "stats")
DELETION_LOG = "deletions.jsonl"


@dataclass
class RetentionResult:
    """What a run deleted (or would delete, with ``dry_run``): ids per store, rows deleted without
    an id per store, and what it kept."""

    now: datetime
    cutoff: datetime
    dry_run: bool
    deleted: dict = field(default_factory=lambda: {s: [] for s in STORES})
    unnamed: dict = field(default_factory=lambda: {s: 0 for s in STORES})  # deleted, no id to log
    held: set = field(default_factory=set)  # expired ids kept because of a hold
    undated: int = 0  # rows or items dated by their file's modification time
    files_rewritten: int = 0
    files_removed: int = 0
    errors: list = field(default_factory=list)  # one line per file that could not be processed
    _seen: set = field(default_factory=set, repr=False)

    def add(self, store: str, report_id: Optional[str]) -> bool:
        """Record a deletion; False when this id was already recorded for ``store``."""
        if report_id is None:
            self.unnamed[store] += 1
            return False
        if (store, report_id) in self._seen:
            return False
        self._seen.add((store, report_id))
        self.deleted[store].append(report_id)
        return True

    def counts(self) -> dict:
        return {s: len(ids) + self.unnamed[s] for s, ids in self.deleted.items()}

    def summary(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "now": utc_iso(self.now),
            "cutoff": utc_iso(self.cutoff),
            "deleted": self.counts(),
            "held": len(self.held),
            "undated": self.undated,
            "files_rewritten": self.files_rewritten,
            "files_removed": self.files_removed,
            "errors": len(self.errors),
        }


def _date(value) -> Optional[datetime]:
    try:
        return parse_time(value, assume_utc=True)
    except ValueError:
        return None


class _Run:
    """State of one run: the cutoffs, the holds, the ids deleted so far (this run and the deletion
    log's), where the deletion log goes."""

    def __init__(self, settings, now: datetime, dry_run: bool):
        self.settings = settings
        self.now = as_utc(now)
        self.result = RetentionResult(self.now, self.now - timedelta(days=settings.retention.days), dry_run)
        self.dead_letter_cutoff = self.now - timedelta(days=settings.retention.dead_letter_days)
        self.holds = set(active_holds(settings))
        log_dir = _local(settings.retention.log_dir, "retention.log_dir")
        self.log_path = os.path.join(log_dir, DELETION_LOG)
        self.gone = _logged_ids(self.log_path)

    def due(self, rid, when, cutoff: Optional[datetime] = None, fallback: Optional[datetime] = None,
            by_id: bool = False) -> bool:
        """Whether a row with id ``rid`` dated ``when`` (a string) is due for deletion: dated before
        ``cutoff`` (``fallback`` when ``when`` is unreadable, counted as undated), or, with
        ``by_id``, its report deleted already; never when the id is on hold."""
        cutoff = cutoff or self.result.cutoff
        dated = _date(when)
        if dated is None:
            self.result.undated += 1
            dated = fallback
        rid = rid if isinstance(rid, str) and rid else None
        past = (dated is not None and dated < cutoff) or (by_id and rid is not None and rid in self.gone)
        if not past:
            return False
        if rid is not None and rid in self.holds:
            self.result.held.add(rid)
            return False
        return True

    def record(self, deletions: list) -> None:
        """Count ``(store, id)`` deletions that have happened (id None: count only); log new ids."""
        new = [(s, rid) for s, rid in deletions if self.result.add(s, rid)]
        self.gone.update(rid for _, rid in new)
        if self.result.dry_run or not new:
            return
        at = utc_iso(self.now)
        _append_lines(self.log_path, ({"at": at, "store": s, "id": rid} for s, rid in new))
        for store, rid in new:
            log.info("deleted %s %s", store, rid)

    def record_unnamed(self) -> None:
        """One ``{"at", "store", "count"}`` line per store for the deletions without an id."""
        counts = {s: n for s, n in self.result.unnamed.items() if n}
        if self.result.dry_run or not counts:
            return
        at = utc_iso(self.now)
        _append_lines(self.log_path, ({"at": at, "store": s, "count": n} for s, n in counts.items()))
        for store, n in counts.items():
            log.info("deleted %d %s without an id to log", n, store)


def _logged_ids(log_path: str) -> set:
    """Every id the deletion log names (an earlier run deleted its report's data)."""
    ids: set = set()
    if not os.path.exists(log_path):
        return ids
    with open(log_path, "rb") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                ids.add(rec["id"])
    return ids
