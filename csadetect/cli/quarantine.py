"""``csadetect quarantine ...``: lift the flood guard's quarantine of an indicator
(docs/false-positives.md).

The flood guard (``GuardMatches``, :mod:`csadetect.indicators.controls`) quarantines an indicator
that matches more than ``flood_guard.share`` of a worker's traffic: its matches go to human review
until a new snapshot version is loaded, or until ``quarantine release INDICATOR_ID`` writes a
release record under ``flood_guard.release_dir`` (local path or any Beam filesystem), which every
worker reads within ``flood_guard.poll_seconds``. ``quarantine list`` prints the release records.
"""
from __future__ import annotations

from csadetect.cli.output import emit, handled, say
from csadetect.config.settings import ConfigError, load_settings
from csadetect.indicators.controls import check_indicator_id, read_releases, write_release

_handled = handled(lambda: (ConfigError, ValueError))


def _release_dir(args) -> str:
    directory = args.dir or load_settings(getattr(args, "config", None)).flood_guard.release_dir
    if not directory:
        raise ConfigError("flood_guard.release_dir is not set (workers then read no release records): "
                          "pass --dir DIR, or a new snapshot version ends the quarantine")
    return directory


@_handled
def cmd_release(args) -> int:
    check_indicator_id(args.indicator_id)
    record = write_release(_release_dir(args), args.indicator_id, args.note or "")
    say(f"wrote {record['path']}: workers lift the quarantine of {args.indicator_id} at their next poll "
        "(flood_guard.poll_seconds)")
    emit(record)
    return 0


@_handled
def cmd_list(args) -> int:
    records = read_releases(_release_dir(args))
    for record in records:
        emit(record)
    say(f"{len(records)} release record(s)")
    return 0


def register(subparsers) -> None:
    """Add ``quarantine {release,list}``."""
    group = subparsers.add_parser("quarantine", help="lift the flood guard's quarantine of an indicator "
                                                     "(docs/false-positives.md)")
    sub = group.add_subparsers(dest="quarantine_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("release", help="write a release record: the workers' flood guards lift the indicator's "
                                       "quarantine at their next poll")
    p.add_argument("indicator_id", metavar="INDICATOR_ID")
    p.add_argument("--dir", metavar="DIR", help="release records (default: flood_guard.release_dir of the config)")
    p.add_argument("--note", help="why (kept in the record; no user data)")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("list", help="the release records, oldest first, one JSON line each")
    p.add_argument("--dir", metavar="DIR", help="default: flood_guard.release_dir of the config")
    p.set_defaults(func=cmd_list)
