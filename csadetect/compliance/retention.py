"""Retention (Art. 22): delete everything stored about a report once it is older than
``retention.days`` (dead letters: ``retention.dead_letter_days``), unless its id is on hold, in
every store that can hold an id (``docs/data.md``, "Retention").

* Every store directory is swept with its sub-directories: each pipeline run writes under its
  own run id, ``<dir>/<RUN_ID>/`` (:mod:`csadetect.core.runs`); hidden (temporary) folders are skipped.
* **Reports** are rows of the report files in ``sinks.report_dir`` and ``console.reports_dir``
  (``*.parquet`` and ``*.jsonl``, many reports each). A file with expired rows is rewritten without
  them, atomically (a temporary file in the same directory, then ``os.replace``); Parquet keeps the
  file's schema and compression, JSON Lines keeps the remaining lines byte for byte (so signatures
  still verify). A file left with no rows is deleted. A report's age counts from ``created_at``.
  Evidence (``evidence_encrypted``) lives in the report rows, so it goes with the row.
* **Review items** (``sinks.review_dir/<RUN_ID>/<report_id>.parquet``, with ``review_evidence``) are
  deleted as whole files, their age counting from ``queued_at``.
* **The console's database** (``console.db``, when the caller passes its store): the report rows
  with their verdicts, requests for information and outbox messages, dated by ``created_at``
  (``ingested_at`` when unreadable). Users and sessions hold no report ids; the audit log is exempt
  (hash-chained, ids of reports only, never content: see docs/data.md).
* **Derived records**: the Centre's verdicts (``console.feedback_dir``, ``feedback.verdict_glob``),
  requests for information (``console.provider_requests_dir``) and notifications
  (``feedback.notifications_dir``). A row goes when its own date is past the cutoff *or* its report
  id has been deleted (now, or by an earlier run: the deletion log), so no id outlives its report.
* **Dead letters** (``sinks.dead_letter_dir``, dated by ``at``): rejected events, i.e. non-hits,
  so they are counted, never logged by id.
* **Complaints** (``stores.complaints_dir/complaints.jsonl``, an append-only event log): a complaint
  stays (its id, grounds, channel, dates and outcome: the transparency report counts them), but the
  ``report_id`` of a deleted report (now, or by an earlier run: the deletion log) is replaced by
  null, with ``"report_redacted": true``, unless that id is on hold. The log is rewritten under the
  complaints' own lock (``csadetect.compliance.complaints.locked``), so no complaint is lost to the
  rewrite; the other lines stay byte for byte. Counted and logged per report id (store
  ``complaints``).
* **Stats** (``stores.stats_dir``) are id-free by construction; a line that is not a valid stats
  record (an unknown label could carry an id) is deleted, counted without an id.

Undated rows (no readable date, or no readable row at all) take the date of their file's last
modification, the latest they can have been written: never deleted early, never kept for ever. A
rewrite keeps the file's modification time, so the clock of the rows left in it does not restart.
They are counted (``undated``).

Holds (``retention.holds_file``) are an append-only JSON Lines log of ``{"report_id", "reason",
"set_at"}`` and ``{"report_id", "released_at"}``; the latest line per id wins. A held id is never
deleted, in any store.

Every deletion of a report's data is appended to ``retention.log_dir/deletions.jsonl`` as ``{"at",
"store", "id"}`` (ids only) and logged by id; deletions without an id to log (dead letters, stats
lines, unreadable rows) as one ``{"at", "store", "count"}`` line per store. All are counted as
``deleted`` stats records (label ``store``).

One run at a time (an exclusive lock in ``retention.log_dir``); a run first removes temporary files
an interrupted run left in the stores. A file that changes while it is being rewritten (an append)
is read again. The clock is injected (``now``), so a run is reproducible. The stores must be local
paths (a rewrite needs an atomic rename and the logs need appends, which object stores lack); a
``gs://`` or other remote path is refused with one line. The stats directory may be any Beam
filesystem (its sweep is then skipped). The command line is ``csadetect.cli.retention``.
"""
from __future__ import annotations

import fcntl
import glob
import json
import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Optional

from csadetect.compliance import complaints as complaints_log
from csadetect.core.ids import check_id
from csadetect.core.stats import stat, write_stats
from csadetect.core.timeutil import as_utc, parse_time, utc_iso

log = logging.getLogger("csadetect.compliance.retention")

STORES = ("reports", "review", "evidence", "console", "verdicts", "info_requests", "notifications",
          "complaints", "dead_letters", "stats")
DELETION_LOG = "deletions.jsonl"
LOCK_NAME = ".retention.lock"
TEMP_PREFIX = ".retention-"
REASON_MAX = 200
REWRITE_ATTEMPTS = 3


class RetentionError(ValueError):
    """A retention request that cannot be carried out; the message is one line."""


class _Changed(Exception):
    """The file changed between reading and replacing it (someone appended): read it again."""


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


@dataclass(frozen=True)
class _Rows:
    """How to prune one kind of row file: the store's label, the id column, the date columns (the
    first readable one counts), the cutoff, whether a deleted report's id also deletes the row,
    whether the id may be logged, and further ``(store, id)`` deletions a row carries (evidence)."""

    store: str
    id_field: str
    dates: tuple
    cutoff: datetime
    by_id: bool = True
    named: bool = True
    extra: Optional[Callable[[dict], list]] = None


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


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, timezone.utc)


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


def _unchanged(path: str, before: os.stat_result) -> None:
    now = os.stat(path)
    if (now.st_size, now.st_mtime_ns, now.st_ino) != (before.st_size, before.st_mtime_ns, before.st_ino):
        raise _Changed()


def _replace_atomically(path: str, write: Callable[[str], None], before: os.stat_result) -> None:
    """Call ``write(tmp)`` for a temporary file beside ``path``, give it ``path``'s modification
    time, then rename it over ``path`` unless ``path`` changed since ``before`` (:class:`_Changed`)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, before.st_mode & 0o777)
        os.utime(tmp, ns=(before.st_atime_ns, before.st_mtime_ns))
        _unchanged(path, before)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _remove(path: str, before: os.stat_result) -> None:
    _unchanged(path, before)
    os.remove(path)


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


def _row_files(directory: Optional[str], exts=(".parquet", ".jsonl")) -> list:
    """The row files under ``directory`` and its sub-directories (every run's ``<dir>/<RUN_ID>/``),
    sorted; hidden files and folders (temporary ones) are left out."""
    if not directory or not os.path.isdir(directory):
        return []
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, n) for n in files if not n.startswith(".") and os.path.splitext(n)[1] in exts]
    return sorted(found)


def _evidence(row: dict) -> list:
    return [("evidence", row.get("report_id"))] if row.get("evidence_encrypted") else []


def _deletions(spec: _Rows, rows: list) -> list:
    """``(store, id or None)`` for deleted rows, with what else each carried (evidence)."""
    out = []
    for row in rows:
        rid = row.get(spec.id_field)
        out.append((spec.store, rid if spec.named and isinstance(rid, str) and rid else None))
        if spec.extra:
            out.extend((s, i if isinstance(i, str) and i else None) for s, i in spec.extra(row))
    return out


def _first(row: dict, names: tuple):
    for name in names:
        if row.get(name) is not None:
            return row[name]
    return None


def _parquet_compression(pfile) -> str:
    meta = pfile.metadata
    if meta.num_row_groups and meta.num_columns:
        codec = str(meta.row_group(0).column(0).compression).lower()
        return {"uncompressed": "none", "lz4_raw": "lz4"}.get(codec, codec)
    return "zstd"


def _column(table, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def _prune_parquet(run: _Run, path: str, spec: _Rows, before: os.stat_result) -> None:
    import pyarrow as pa  # lazy: keeps pyarrow out of `csadetect retention hold|holds`
    import pyarrow.parquet as pq

    pfile = pq.ParquetFile(path)
    compression = _parquet_compression(pfile)
    table = pfile.read()
    ids = _column(table, spec.id_field)
    dates = [_first(dict(zip(spec.dates, vals)), spec.dates) for vals in zip(*(_column(table, d) for d in spec.dates))]
    expired = [run.due(rid, at, spec.cutoff, _mtime(before), spec.by_id) for rid, at in zip(ids, dates)]
    if not any(expired):
        return
    gone = table.filter(pa.array(expired)).to_pylist()
    if not run.result.dry_run:
        if all(expired):
            _remove(path, before)
            run.result.files_removed += 1
        else:
            kept = table.filter(pa.array([not x for x in expired]))
            _replace_atomically(path, lambda tmp: pq.write_table(kept, tmp, compression=compression), before)
            run.result.files_rewritten += 1
    run.record(_deletions(spec, gone))


def _write_lines(path: str, lines: list) -> None:
    with open(path, "wb") as fh:
        fh.writelines(lines)


def _prune_jsonl(run: _Run, path: str, spec: _Rows, before: os.stat_result) -> None:
    with open(path, "rb") as fh:
        lines = fh.readlines()
    kept, gone = [], []
    for line in lines:
        if not line.strip():
            kept.append(line)
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        row = row if isinstance(row, dict) else {}  # unreadable: no id, dated by the file
        if run.due(row.get(spec.id_field), _first(row, spec.dates), spec.cutoff, _mtime(before), spec.by_id):
            gone.append(row)
        else:
            kept.append(line)
    if not gone:
        return
    if not run.result.dry_run:
        if not any(line.strip() for line in kept):
            _remove(path, before)
            run.result.files_removed += 1
        else:
            if not kept[-1].endswith(b"\n"):
                kept[-1] += b"\n"
            _replace_atomically(path, lambda tmp: _write_lines(tmp, kept), before)
            run.result.files_rewritten += 1
    run.record(_deletions(spec, gone))


def _retrying(run: _Run, path: str, attempt: Callable[[os.stat_result], None]) -> None:
    """Call ``attempt(before)`` with ``path``'s status before it reads the file, and again (from
    the counts as they were) when the file changed under its rewrite (:class:`_Changed`: an
    append); at most ``REWRITE_ATTEMPTS`` times. A file removed meanwhile (e.g. by review expiry)
    is left alone."""
    undated = run.result.undated
    for _ in range(REWRITE_ATTEMPTS):
        try:
            attempt(os.stat(path))
            return
        except _Changed:
            run.result.undated = undated
        except FileNotFoundError:
            return
    raise OSError("it kept changing during the run; it is pruned on the next run")


def _prune_rows(run: _Run, path: str, spec: _Rows) -> None:
    """Prune one row file, reading it again when it changed under the rewrite."""
    prune = _prune_parquet if path.endswith(".parquet") else _prune_jsonl
    _retrying(run, path, lambda before: prune(run, path, spec, before))


def _prune_review_item(run: _Run, path: str) -> None:
    import pyarrow.parquet as pq  # lazy: keeps pyarrow out of `csadetect retention hold|holds`

    before = os.stat(path)
    pfile = pq.ParquetFile(path)
    names = pfile.schema_arrow.names
    table = pfile.read(columns=[c for c in ("report_id", "queued_at", "created_at", "review_evidence") if c in names])
    stem = os.path.splitext(os.path.basename(path))[0]
    row = table.slice(0, 1).to_pylist()[0] if table.num_rows else {}
    rid = row.get("report_id") or stem
    if not run.due(rid, row.get("queued_at") or row.get("created_at"), fallback=_mtime(before)):
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


def _prune_stats(run: _Run, path: str) -> None:
    """Delete the lines of a stats file that are not valid stats records (an unknown label could
    carry an id); valid records are id-free aggregates and stay (the transparency report's)."""
    def attempt(before: os.stat_result) -> None:
        with open(path, "rb") as fh:
            lines = fh.readlines()
        kept, bad = [], 0
        for line in lines:
            if not line.strip():
                kept.append(line)
                continue
            try:
                rec = json.loads(line)
                stat(rec["metric"], rec["value"], rec["at"], **rec.get("labels", {}))
                parse_time(rec["at"], assume_utc=True)
                if not isinstance(rec.get("labels", {}), dict) or set(rec) - {"at", "metric", "value", "labels"}:
                    raise ValueError("unexpected fields")
                kept.append(line)
            except (ValueError, TypeError, KeyError, AttributeError):
                bad += 1
        if not bad:
            return
        if not run.result.dry_run:
            if any(line.strip() for line in kept):
                _replace_atomically(path, lambda tmp: _write_lines(tmp, kept), before)
                run.result.files_rewritten += 1
            else:
                _remove(path, before)
                run.result.files_removed += 1
        run.record([("stats", None)] * bad)

    _retrying(run, path, attempt)


def _redact_complaints(run: _Run, path: str) -> None:
    """Replace, in the complaints log, the ``report_id`` of every deleted report (``run.gone``: this
    run's and the deletion log's) by null with ``"report_redacted": true``, unless it is on hold.
    The complaint records stay (the transparency report counts them); other lines stay byte for
    byte. The rewrite holds the complaints' lock, so no append happens meanwhile (and one that
    does not take it is caught by the file check: read again)."""
    def attempt(before: os.stat_result) -> None:
        with complaints_log.locked(os.path.dirname(path)):
            with open(path, "rb") as fh:
                lines = fh.readlines()
            out, redacted = [], []
            for line in lines:
                try:
                    event = json.loads(line) if line.strip() else None
                except ValueError:
                    event = None  # damaged: the complaints module skips it too; kept as it is
                rid = event.get("report_id") if isinstance(event, dict) else None
                if not (isinstance(rid, str) and rid in run.gone):
                    out.append(line)
                    continue
                if rid in run.holds:
                    run.result.held.add(rid)
                    out.append(line)
                    continue
                event.update(report_id=None, report_redacted=True)
                out.append((json.dumps(event, sort_keys=True) + "\n").encode("utf-8"))
                redacted.append(rid)
            if not redacted:
                return
            if not run.result.dry_run:
                _replace_atomically(path, lambda tmp: _write_lines(tmp, out), before)
                run.result.files_rewritten += 1
        run.record([("complaints", rid) for rid in redacted])

    _retrying(run, path, attempt)


def _prune_console(run: _Run, console) -> None:
    """The console's reports with their verdicts, requests and outbox (through the store)."""
    cutoff = run.result.cutoff
    if run.result.dry_run:
        found: list = []

        def due(rid, created_at, ingested_at) -> bool:
            if run.due(rid, created_at, cutoff, _date(ingested_at), by_id=True):
                found.append(rid)
            return False

        console.purge_reports(due)
        run.record([("console", rid) for rid in found])
        return
    gone = console.purge_reports(lambda rid, created_at, ingested_at: run.due(
        rid, created_at, cutoff, _date(ingested_at), by_id=True))
    run.record([("console", rid) for rid in gone])


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


def _remove_stale_temps(directories: Iterable[Optional[str]]) -> None:
    """Temporary files an interrupted run left behind (they may hold expired rows), in each
    directory and its run directories."""
    for directory in directories:
        if directory and os.path.isdir(directory):
            for root, dirs, files in os.walk(directory):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    if name.startswith(TEMP_PREFIX):
                        os.remove(os.path.join(root, name))


def _unique(paths: Iterable[Optional[str]]) -> list:
    out, seen = [], set()
    for path in paths:
        if path and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            out.append(path)
    return out


@dataclass(frozen=True)
class _Places:
    """The local paths of every store retention sweeps (remote ones refused)."""

    report_dirs: list
    review_dir: Optional[str]
    verdict_files: list
    request_dirs: list
    notification_dirs: list
    dead_letter_dirs: list
    complaints_dir: Optional[str]
    stats_dir: Optional[str]

    @classmethod
    def of(cls, settings) -> "_Places":
        s, c, fb = settings.sinks, settings.console, settings.feedback
        verdict_dir = _local(c.feedback_dir, "console.feedback_dir")
        verdict_glob = _local(fb.verdict_glob, "feedback.verdict_glob")
        verdicts = _row_files(verdict_dir) + (sorted(p for p in glob.glob(verdict_glob) if os.path.isfile(p)
                                                     and not os.path.basename(p).startswith("."))
                                              if verdict_glob else [])
        stats = str(settings.stores.stats_dir or "")
        remote_stats = "://" in stats and not stats.startswith("file://")  # written there, not swept
        return cls(
            report_dirs=_unique([_local(s.report_dir, "sinks.report_dir"),
                                 _local(c.reports_dir, "console.reports_dir")]),
            review_dir=_local(s.review_dir, "sinks.review_dir"),
            verdict_files=_unique(verdicts),
            request_dirs=_unique([_local(c.provider_requests_dir, "console.provider_requests_dir")]),
            notification_dirs=_unique([_local(fb.notifications_dir, "feedback.notifications_dir")]),
            dead_letter_dirs=_unique([_local(s.dead_letter_dir, "sinks.dead_letter_dir")]),
            complaints_dir=_local(settings.stores.complaints_dir, "stores.complaints_dir"),
            stats_dir=None if remote_stats else _local(stats or None, "stores.stats_dir"),
        )

    def rewritten_dirs(self) -> list:
        return _unique(self.report_dirs + [os.path.dirname(p) for p in self.verdict_files] + self.request_dirs
                       + self.notification_dirs + self.dead_letter_dirs + [self.complaints_dir, self.stats_dir])


def run_retention(settings, now: datetime, dry_run: bool = False, console=None) -> RetentionResult:
    """Delete (or, with ``dry_run``, only find) what is older than the retention period at ``now``
    and not on hold, in every store (module docstring); log and count each deletion. ``console``:
    the console's storage (``csadetect.console.storage``), whose reports are purged too."""
    places = _Places.of(settings)
    log_dir = _local(settings.retention.log_dir, "retention.log_dir")
    if dry_run:
        return _sweep(settings, places, now, True, console)
    with _exclusive(log_dir):
        _remove_stale_temps(places.rewritten_dirs())
        return _sweep(settings, places, now, False, console)


def _sweep(settings, places: _Places, now: datetime, dry_run: bool, console) -> RetentionResult:
    run = _Run(settings, now, dry_run)
    cutoff = run.result.cutoff
    reports = _Rows("reports", "report_id", ("created_at",), cutoff, by_id=False, extra=_evidence)
    for directory in places.report_dirs:
        _each(run, _row_files(directory), lambda r, p: _prune_rows(r, p, reports))
    if places.review_dir and os.path.isdir(places.review_dir):  # every run's items, and the top level's
        _each(run, _row_files(places.review_dir, (".parquet",)), _prune_review_item)
    if console is not None:
        try:
            _prune_console(run, console)
        except Exception as exc:  # the database's own errors (sqlite3, the store's): reported, not fatal
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            run.result.errors.append(f"console.db: {first}")
            log.warning("retention skipped the console database: %s", first)
    derived = (
        (places.verdict_files, _Rows("verdicts", "report_id", ("decided_at",), cutoff)),
        ([p for d in places.request_dirs for p in _row_files(d)],
         _Rows("info_requests", "report_id", ("requested_at",), cutoff)),
        ([p for d in places.notification_dirs for p in _row_files(d)],
         _Rows("notifications", "report_id", ("decided_at", "due_at"), cutoff)),
        ([p for d in places.dead_letter_dirs for p in _row_files(d)],
         _Rows("dead_letters", "event_id", ("at",), run.dead_letter_cutoff, by_id=False, named=False)),
    )
    for paths, spec in derived:
        _each(run, paths, lambda r, p, spec=spec: _prune_rows(r, p, spec))
    if places.complaints_dir:  # after every store that deletes a report, so run.gone is complete
        complaints = os.path.join(places.complaints_dir, complaints_log.LOG_NAME)
        _each(run, [complaints] if os.path.isfile(complaints) else [], _redact_complaints)
    _each(run, _row_files(places.stats_dir, (".jsonl",)), _prune_stats)
    run.record_unnamed()
    if not dry_run:
        records = [stat("deleted", n, at=run.now, store=s) for s, n in run.result.counts().items() if n]
        write_stats(settings.stores.stats_dir, records)
    return run.result
