"""``csadetect complaints {add,resolve,list,counts,pull}``: users' complaints and their outcomes
(Art. 34) from the command line. The log and its rules are :mod:`csadetect.compliance.complaints`.
"""
from __future__ import annotations

import argparse
from datetime import datetime
from typing import Optional

from csadetect.cli.output import emit, handled, say
from csadetect.compliance.complaints import (
    GROUNDS, NOTE_MAX, OUTCOMES, STATUSES, ComplaintError, add_complaint, complaints_state, counts,
    pull_complaints, record_outcome,
)
from csadetect.config.settings import ConfigError, load_settings
from csadetect.core.timeutil import parse_bound, parse_time

_handled = handled(lambda: (ComplaintError, ConfigError))


def _directory(args) -> str:
    return load_settings(getattr(args, "config", None)).stores.complaints_dir


def _time_arg(value: Optional[str], name: str) -> Optional[datetime]:
    """An operator's time: RFC 3339, zone-less taken as UTC."""
    if value is None:
        return None
    try:
        return parse_time(value, field=name, assume_utc=True)
    except ValueError as exc:
        raise ComplaintError(str(exc)) from None


@_handled
def cmd_add(args) -> int:
    event = add_complaint(_directory(args), args.grounds, args.report_id, "cli", _time_arg(args.at, "--at"))
    say(f"recorded complaint {event['complaint_id']}")
    emit(event)
    return 0


@_handled
def cmd_resolve(args) -> int:
    event = record_outcome(_directory(args), args.complaint_id, args.outcome, args.note, _time_arg(args.at, "--at"))
    say(f"complaint {args.complaint_id}: {args.outcome}")
    emit(event)
    return 0


@_handled
def cmd_list(args) -> int:
    complaints = complaints_state(_directory(args), args.status)
    for c in complaints:
        emit(c)
    say(f"{len(complaints)} complaint(s)")
    return 0


def _bound(value: Optional[str], name: str) -> Optional[datetime]:
    """A period bound: a day (00:00 UTC) or an RFC 3339 time, as ``csadetect transparency`` takes them."""
    if value is None:
        return None
    try:
        return parse_bound(value, name)
    except ValueError as exc:
        raise ComplaintError(str(exc)) from None


@_handled
def cmd_counts(args) -> int:
    emit(counts(_directory(args), _bound(args.start, "--start"), _bound(args.end, "--end")))
    return 0


@_handled
def cmd_pull(args) -> int:
    result = pull_complaints(load_settings(getattr(args, "config", None)), args.subscription, args.max, args.timeout)
    say(f"pulled {result.pulled}: {len(result.added)} recorded, {result.duplicates} already recorded, "
         f"{result.rejected} rejected")
    emit(result.summary())
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``complaints {add,resolve,list,counts,pull}``."""
    top = subparsers.add_parser("complaints", help="users' complaints and their outcomes (Art. 34)")
    sub = top.add_subparsers(dest="complaints_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("add", help="record a complaint (grounds only: never what the user wrote)")
    p.add_argument("--report-id", metavar="ID", help="the report complained about, if known")
    p.add_argument("--grounds", required=True, help=" | ".join(GROUNDS))
    p.add_argument("--at", metavar="T", help="when it was received, RFC 3339 (default: now)")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("resolve", help="record the final outcome of an open complaint")
    p.add_argument("complaint_id", metavar="COMPLAINT_ID")
    p.add_argument("--outcome", required=True, help=" | ".join(OUTCOMES))
    p.add_argument("--note", help=f"short reference, at most {NOTE_MAX} characters (no content or personal data)")
    p.add_argument("--at", metavar="T", help="when it was decided, RFC 3339 (default: now)")
    p.set_defaults(func=cmd_resolve)

    p = sub.add_parser("list", help="current complaints, one JSON line each")
    p.add_argument("--status", help=" | ".join(STATUSES))
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("counts", help="received and decided in [--start, --end), one JSON line (no ids)")
    p.add_argument("--start", metavar="T", help="a day YYYY-MM-DD (00:00 UTC) or an RFC 3339 time")
    p.add_argument("--end", metavar="T", help="a day YYYY-MM-DD (00:00 UTC, not included) or an RFC 3339 time")
    p.set_defaults(func=cmd_counts)

    p = sub.add_parser("pull", help="record complaints from a Pub/Sub subscription "
                       "(JSON {report_id?, grounds, received_at?})")
    p.add_argument("--subscription", required=True, metavar="projects/P/subscriptions/S")
    p.add_argument("--max", type=int, default=100, metavar="N", help="at most N messages (default 100)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per pull request (default 10)")
    p.set_defaults(func=cmd_pull)
    return top
