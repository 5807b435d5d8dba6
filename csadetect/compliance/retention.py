"""Retention (Art. 22): delete stored reports, their evidence and review items once they are older
than ``retention.days``, unless a report id is on hold.

* Reports are rows of the report files in ``sinks.report_dir`` (``*.parquet`` and ``*.jsonl``,
  many reports each). A file with expired rows is rewritten without them, atomically (a temporary
  file in the same directory, then ``os.replace``); Parquet keeps the file's schema
  (:data:`csadetect.reports.schema.REPORT_SCHEMA` for files the pipeline wrote) and compression, JSON Lines
  keeps the remaining lines byte for byte (so signatures still verify). A file left with no rows
  is deleted. A report's age counts from ``created_at``.
* Evidence (``evidence_encrypted``) lives in the report rows, so it goes with the row; review
  items (``sinks.review_dir/<report_id>.parquet``, with ``review_evidence``) are deleted as whole
  files, their age counting from ``queued_at``.
* Holds (``retention.holds_file``) are an append-only JSON Lines log of
  ``{"report_id", "reason", "set_at"}`` and ``{"report_id", "released_at"}``; the latest line per
  id wins. A held id is never deleted, in any store.
* Every deletion is appended to ``retention.log_dir/deletions.jsonl`` as ``{"at", "store", "id"}``
  (ids only), logged by id, and counted as ``deleted`` stats records (label ``store``:
  ``reports``, ``review``, ``evidence``). Rows without a readable date are kept (and counted as
  ``undated``): nothing is deleted that cannot be dated.

One run at a time (an exclusive lock in ``retention.log_dir``); a run first removes temporary files
an interrupted run left in the report directory. The clock is injected (``now``), so a run is
reproducible. The stores must be local paths (a rewrite needs an atomic rename and the logs need
appends, which object stores lack); a ``gs://`` or other remote path is refused with one line. The
stats directory may be any Beam filesystem. The command line is ``csadetect.cli.retention``.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Optional

from csadetect.core.ids import check_id
from csadetect.core.stats import stat, write_stats
from csadetect.core.timeutil import as_utc, parse_time, utc_iso

log = logging.getLogger("csadetect.compliance.retention")

STORES = ("reports", "review", "evidence")
DELETION_LOG = "deletions.jsonl"
LOCK_NAME = ".retention.lock"
TEMP_PREFIX = ".retention-"
REASON_MAX = 200


class RetentionError(ValueError):
    """A retention request that cannot be carried out; the message is one line."""


@dataclass
class RetentionResult:
    """What a run deleted (or would delete, with ``dry_run``): ids per store, and what it kept."""

    now: datetime
    cutoff: datetime
    dry_run: bool
    deleted: dict = field(default_factory=lambda: {s: [] for s in STORES})
    held: set = field(default_factory=set)  # expired ids kept because of a hold
    undated: int = 0  # rows or items kept because their date could not be read
    files_rewritten: int = 0
    files_removed: int = 0
    errors: list = field(default_factory=list)  # one line per file that could not be processed
    _seen: set = field(default_factory=set, repr=False)

    def add(self, store: str, report_id: str) -> bool:
        """Record a deletion; False when this id was already recorded for ``store``."""
        if (store, report_id) in self._seen:
            return False
        self._seen.add((store, report_id))
        self.deleted[store].append(report_id)
        return True

    def counts(self) -> dict:
        return {s: len(ids) for s, ids in self.deleted.items()}

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


# ----------------------------------------------------------------------------------- helpers


def _local(path: Optional[str], what: str) -> Optional[str]:
    """``path`` when it is local (``file://`` stripped); RetentionError for another filesystem."""
    if not path:
        return None
    text = str(path)
    if text.startswith("file://"):
        return text[len("file://"):]
    if "://" in text:
        raise RetentionError(f"{what} {text} is not a local path: retention rewrites files atomically and "
                             "appends to logs, which needs a local (or mounted) filesystem")
    return text


def _date(value) -> Optional[datetime]:
    try:
        return parse_time(value, assume_utc=True)
    except ValueError:
        return None


def check_report_id(report_id: str) -> str:
    try:
        return check_id(report_id, "report id")
    except ValueError as exc:
        raise RetentionError(str(exc)) from None


def _append_lines(path: str, records: Iterable[dict]) -> None:
    """Append JSON lines with one write (O_APPEND), creating the file and its directory."""
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode("utf-8")
    if not data:
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_atomically(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` for a temporary file beside ``path``, then rename it over ``path``."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------------------------- holds


def _holds_path(settings) -> str:
    return _local(settings.retention.holds_file, "retention.holds_file")


def active_holds(settings) -> dict:
    """``{report_id: {"report_id", "reason", "set_at"}}`` for every id whose latest line is a hold."""
    path = _holds_path(settings)
    latest: dict = {}
    if not os.path.exists(path):
        return latest
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise RetentionError(f"{path}:{lineno}: not valid JSON") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("report_id"), str):
                raise RetentionError(f"{path}:{lineno}: not a hold record")
            latest[rec["report_id"]] = rec
    return {rid: rec for rid, rec in latest.items() if "released_at" not in rec}


def set_hold(settings, report_id: str, reason: str, now: Optional[datetime] = None) -> dict:
    """Put ``report_id`` on hold (again, with a new reason, if it already is); returns the line."""
    check_report_id(report_id)
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise RetentionError("a hold needs a reason")
    if len(reason) > REASON_MAX:
        raise RetentionError(f"the reason is longer than {REASON_MAX} characters (keep it a short reference)")
    rec = {"report_id": report_id, "reason": reason, "set_at": utc_iso(now)}
    _append_lines(_holds_path(settings), [rec])
    return rec


def release_hold(settings, report_id: str, now: Optional[datetime] = None) -> dict:
    """Release the hold on ``report_id``; RetentionError when it is not on hold."""
    check_report_id(report_id)
    if report_id not in active_holds(settings):
        raise RetentionError(f"report {report_id} is not on hold")
    rec = {"report_id": report_id, "released_at": utc_iso(now)}
    _append_lines(_holds_path(settings), [rec])
    return rec


# --------------------------------------------------------------------------------------- run


class _Run:
    """State of one run: what expired, what was logged, where the deletion log goes."""

    def __init__(self, settings, now: datetime, dry_run: bool):
        self.settings = settings
        self.now = as_utc(now)
        self.result = RetentionResult(self.now, self.now - timedelta(days=settings.retention.days), dry_run)
        self.holds = set(active_holds(settings))
        log_dir = _local(settings.retention.log_dir, "retention.log_dir")
        self.log_path = os.path.join(log_dir, DELETION_LOG)

    def expired(self, report_id, when) -> bool:
        """Whether a row dated ``when`` (a string) is due for deletion; counts undated and held rows."""
        dated = _date(when)
        if dated is None or not isinstance(report_id, str) or not report_id:
            self.result.undated += 1
            return False
        if dated >= self.result.cutoff:
            return False
        if report_id in self.holds:
            self.result.held.add(report_id)
            return False
        return True

    def record(self, deletions: list) -> None:
        """Count ``(store, id)`` deletions that have happened; log new ones to the deletion log."""
        new = [(s, rid) for s, rid in deletions if self.result.add(s, rid)]
        if self.result.dry_run or not new:
            return
        at = utc_iso(self.now)
        _append_lines(self.log_path, ({"at": at, "store": s, "id": rid} for s, rid in new))
        for store, rid in new:
            log.info("deleted %s %s", store, rid)


def _report_files(report_dir: Optional[str]) -> list:
    if not report_dir or not os.path.isdir(report_dir):
        return []
    names = sorted(n for n in os.listdir(report_dir)
                   if not n.startswith(".") and os.path.splitext(n)[1] in (".parquet", ".jsonl"))
    return [os.path.join(report_dir, n) for n in names if os.path.isfile(os.path.join(report_dir, n))]


def _deletions(rows: list) -> list:
    """``(store, id)`` for deleted report rows: the report, and its evidence where it had some."""
    out = []
    for row in rows:
        out.append(("reports", row["report_id"]))
        if row.get("evidence_encrypted"):
            out.append(("evidence", row["report_id"]))
    return out


def _parquet_compression(pfile) -> str:
    meta = pfile.metadata
    if meta.num_row_groups and meta.num_columns:
        codec = str(meta.row_group(0).column(0).compression).lower()
        return {"uncompressed": "none", "lz4_raw": "lz4"}.get(codec, codec)
    return "zstd"


def _prune_parquet(run: _Run, path: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pfile = pq.ParquetFile(path)
    compression = _parquet_compression(pfile)
    table = pfile.read()
    ids = table.column("report_id").to_pylist()
    created = table.column("created_at").to_pylist()
    expired = [run.expired(rid, at) for rid, at in zip(ids, created)]
    if not any(expired):
        return
    evidence = _column(table, "evidence_encrypted")
    gone = [{"report_id": ids[i], "evidence_encrypted": evidence[i]} for i, x in enumerate(expired) if x]
    if not run.result.dry_run:
        if all(expired):
            os.remove(path)
            run.result.files_removed += 1
        else:
            kept = table.filter(pa.array([not x for x in expired]))
            _replace_atomically(path, lambda tmp: pq.write_table(kept, tmp, compression=compression))
            run.result.files_rewritten += 1
    run.record(_deletions(gone))


def _column(table, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def _write_lines(path: str, lines: list) -> None:
    with open(path, "wb") as fh:
        fh.writelines(lines)


def _prune_jsonl(run: _Run, path: str) -> None:
    with open(path, "rb") as fh:
        lines = fh.readlines()
    kept, gone = [], []
    for line in lines:
        try:
            row = json.loads(line) if line.strip() else None
        except ValueError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("report_id"), str):
            if line.strip():
                run.result.undated += 1  # not a report we can date: kept as it is
            kept.append(line)
        elif run.expired(row["report_id"], row.get("created_at")):
            gone.append(row)
        else:
            kept.append(line)
    if not gone:
        return
    if not run.result.dry_run:
        if not any(line.strip() for line in kept):
            os.remove(path)
            run.result.files_removed += 1
        else:
            if not kept[-1].endswith(b"\n"):
                kept[-1] += b"\n"
            _replace_atomically(path, lambda tmp: _write_lines(tmp, kept))
            run.result.files_rewritten += 1
    run.record(_deletions(gone))


def _prune_review_item(run: _Run, path: str) -> None:
    import pyarrow.parquet as pq

    pfile = pq.ParquetFile(path)
    names = pfile.schema_arrow.names
    table = pfile.read(columns=[c for c in ("report_id", "queued_at", "created_at", "review_evidence") if c in names])
    stem = os.path.splitext(os.path.basename(path))[0]
    row = table.slice(0, 1).to_pylist()[0] if table.num_rows else {}
    rid = row.get("report_id") or stem
    if not run.expired(rid, row.get("queued_at") or row.get("created_at")):
        return
    if not run.result.dry_run:
        try:
            os.remove(path)
        except FileNotFoundError:
            return  # decided or expired by review meanwhile, which logs it
        run.result.files_removed += 1
    deletions = [("review", rid)]
    if any(_column(table, "review_evidence")):
        deletions.append(("evidence", rid))
    run.record(deletions)


def _each(run: _Run, paths: list, prune: Callable[[_Run, str], None]) -> None:
    """``prune`` every file; a file that cannot be read is reported and skipped, not fatal."""
    for path in paths:
        try:
            prune(run, path)
        except (OSError, ValueError, KeyError) as exc:  # pyarrow errors derive from OSError/ValueError
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            run.result.errors.append(f"{path}: {first}")
            log.warning("retention skipped %s: %s", path, first)


@contextmanager
def _exclusive(log_dir: str):
    """One run at a time: an exclusive, non-blocking ``flock`` in ``log_dir``."""
    os.makedirs(log_dir, exist_ok=True)
    fd = os.open(os.path.join(log_dir, LOCK_NAME), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetentionError("another retention run holds the lock; try again when it has finished") from None
        yield
    finally:
        os.close(fd)


def _remove_stale_temps(report_dir: Optional[str]) -> None:
    """Temporary files an interrupted run left behind (they may hold expired rows)."""
    if report_dir and os.path.isdir(report_dir):
        for name in os.listdir(report_dir):
            if name.startswith(TEMP_PREFIX):
                os.remove(os.path.join(report_dir, name))


def run_retention(settings, now: datetime, dry_run: bool = False) -> RetentionResult:
    """Delete (or, with ``dry_run``, only find) reports, evidence and review items older than
    ``retention.days`` at ``now`` and not on hold; log and count each deletion."""
    report_dir = _local(settings.sinks.report_dir, "sinks.report_dir")
    _local(settings.sinks.review_dir, "sinks.review_dir")
    if dry_run:
        return _sweep(settings, now, True)
    with _exclusive(_local(settings.retention.log_dir, "retention.log_dir")):
        _remove_stale_temps(report_dir)
        return _sweep(settings, now, False)


def _sweep(settings, now: datetime, dry_run: bool) -> RetentionResult:
    report_dir = _local(settings.sinks.report_dir, "sinks.report_dir")
    review_dir = _local(settings.sinks.review_dir, "sinks.review_dir")
    run = _Run(settings, now, dry_run)
    for path in _report_files(report_dir):
        _each(run, [path], _prune_parquet if path.endswith(".parquet") else _prune_jsonl)
    if review_dir and os.path.isdir(review_dir):
        items = sorted(os.path.join(review_dir, n) for n in os.listdir(review_dir)
                       if n.endswith(".parquet") and not n.startswith("."))
        _each(run, items, _prune_review_item)
    if not dry_run:
        records = [stat("deleted", n, at=run.now, store=s) for s, n in run.result.counts().items() if n]
        write_stats(settings.stores.stats_dir, records)
    return run.result
