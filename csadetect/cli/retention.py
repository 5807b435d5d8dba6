"""``csadetect retention {run,hold,release,holds}``: deletion past ``retention.days`` and holds
(Art. 22) from the command line. What is deleted, and how, is :mod:`csadetect.compliance.retention`;
this module also opens the console's database (``console.db``, when it exists) for the run, as the
compliance layer may not import the console.
"""
from __future__ import annotations

import argparse
import os
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator, Optional

from csadetect.cli.output import emit, handled, say
from csadetect.compliance.retention import (
    REASON_MAX, RetentionError, active_holds, release_hold, run_retention, set_hold,
)
from csadetect.config.settings import ConfigError, load_settings
from csadetect.console.storage import ConsoleStorage, StoreError, open_store
from csadetect.core.timeutil import parse_time, utc_iso, utc_now

_handled = handled(lambda: (RetentionError, ConfigError, StoreError))


def _settings(args):
    return load_settings(getattr(args, "config", None))


def _now(args) -> datetime:
    """``--now`` (RFC 3339, zone-less taken as UTC) or the real time."""
    if not getattr(args, "now", None):
        return utc_now()
    try:
        return parse_time(args.now, field="--now", assume_utc=True)
    except ValueError as exc:
        raise RetentionError(f"{exc}: {args.now!r}") from None


@contextmanager
def console_store(settings) -> Iterator[Optional[ConsoleStorage]]:
    """The console's database when ``console.db`` names an existing local file (None otherwise:
    retention never creates one)."""
    db = settings.console.db
    path = db[len("file://"):] if db.startswith("file://") else db
    if db == ":memory:" or "://" in path or not os.path.isfile(path):
        yield None
        return
    store = open_store(path)
    try:
        yield store
    finally:
        store.close()


@_handled
def cmd_run(args) -> int:
    settings = _settings(args)
    with console_store(settings) as console:
        result = run_retention(settings, _now(args), dry_run=args.dry_run, console=console)
    for line in result.errors:
        say(f"error: {line}")
    c = result.counts()
    verb = "would delete" if result.dry_run else "deleted"
    others = ", ".join(f"{n} {store}" for store, n in c.items() if n and store not in ("reports", "review", "evidence"))
    say(f"{verb} {c['reports']} reports, {c['review']} review items, {c['evidence']} evidence"
        f"{', ' + others if others else ''} (older than {utc_iso(result.cutoff)}); "
        f"{len(result.held)} kept on hold, {result.undated} dated by their file")
    emit(result.summary())
    return 1 if result.errors else 0


@_handled
def cmd_hold(args) -> int:
    rec = set_hold(_settings(args), args.report_id, args.reason, _now(args))
    say(f"report {args.report_id} is on hold")
    emit(rec)
    return 0


@_handled
def cmd_release(args) -> int:
    rec = release_hold(_settings(args), args.report_id, _now(args))
    say(f"hold on report {args.report_id} released; it is deleted at the next run if past retention")
    emit(rec)
    return 0


@_handled
def cmd_holds(args) -> int:
    holds = active_holds(_settings(args))
    for rid in sorted(holds):
        emit(holds[rid])
    say(f"{len(holds)} report(s) on hold")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``retention {run,hold,release,holds}``."""
    ret = subparsers.add_parser(
        "retention", help="delete reports, evidence, review items and every record of their ids past retention (Art. 22)")
    sub = ret.add_subparsers(dest="retention_command", metavar="COMMAND")
    sub.required = True
    now_help = "the current time, RFC 3339 (default: the real time)"

    p = sub.add_parser("run", help="delete what is older than retention.days and not on hold; one JSON summary line")
    p.add_argument("--now", metavar="T", help=now_help)
    p.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("hold", help="keep a report (and its evidence and review item) past retention")
    p.add_argument("report_id", metavar="REPORT_ID")
    p.add_argument("--reason", required=True, help=f"short reference, at most {REASON_MAX} characters (no content)")
    p.add_argument("--now", metavar="T", help=now_help)
    p.set_defaults(func=cmd_hold)

    p = sub.add_parser("release", help="release a hold")
    p.add_argument("report_id", metavar="REPORT_ID")
    p.add_argument("--now", metavar="T", help=now_help)
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("holds", help="report ids on hold, one JSON line each")
    p.set_defaults(func=cmd_holds)
    return ret
