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

This module is the run over every store and how each store's files are pruned; the run's result,
cutoffs and deletion log are :mod:`.retention_run`, the holds :mod:`.retention_holds`, and the file
primitives (atomic rewrites, appends, the lock) :mod:`.retention_files`.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Optional

from csadetect.compliance import complaints as complaints_log
# the pruners look _replace_atomically and _write_lines up here (tests patch them as retention.<name>)
from csadetect.compliance.retention_files import (
    _Changed, _exclusive, _local, _mtime, _remove, _remove_stale_temps, _replace_atomically, _row_files, _write_lines,
)
from csadetect.compliance.retention_run import RetentionResult, _date, _Run, log
from csadetect.core import fs
from csadetect.core.stats import stat, write_stats
from csadetect.core.timeutil import parse_time
# re-exported: what callers (the command line, tests) import from csadetect.compliance.retention
from csadetect.compliance.retention_files import LOCK_NAME, TEMP_PREFIX, RetentionError  # noqa: F401
from csadetect.compliance.retention_holds import (  # noqa: F401
    REASON_MAX, active_holds, check_report_id, release_hold, set_hold,
)
from csadetect.compliance.retention_run import DELETION_LOG, STORES  # noqa: F401

REWRITE_ATTEMPTS = 3


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


# --------------------------------------------------------------------------------------- run


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

    from csadetect.core import parquet

    pfile = parquet.open_file(path)
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
    from csadetect.core import parquet  # lazy: keeps pyarrow out of `csadetect retention hold|holds`

    before = os.stat(path)
    pfile = parquet.open_file(path)
    names = pfile.schema_arrow.names
    table = pfile.read([c for c in ("report_id", "queued_at", "created_at", "review_evidence") if c in names])
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
    stats = places.stats_dir  # the deletion counters are written last: their directory is checked first
    if fs.blocking_file(stats):  # the folder itself, or one above it, is a file
        raise RetentionError(f"stores.stats_dir {stats} is not a directory: nothing deleted")
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
