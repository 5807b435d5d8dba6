"""``csadetect transparency``: the id-free transparency report of a period, from the command line.

``--from``/``--to`` take a day (``YYYY-MM-DD``, 00:00 UTC; ``--to`` includes its whole day) or an
RFC 3339 time; the stores default to those of the config. The stats of every run are summed, or,
with ``--run RUN_ID``, those of one run (``<stats_dir>/<RUN_ID>/``; one line naming the runs there
are when it has no such run). Prints one JSON line (paths and headline
numbers) on stdout and progress on stderr. The report itself is :mod:`csadetect.compliance.transparency`.
"""
from __future__ import annotations

import argparse
from datetime import datetime

from csadetect.cli.output import emit, error
from csadetect.compliance.transparency import collect, render
from csadetect.compliance.transparency.sources import Sources, TransparencyError, say, sources_from
from csadetect.compliance.transparency.tables import source_note
from csadetect.config.settings import ConfigError, load_settings
from csadetect.core import runs, timeutil
from csadetect.core.timeutil import utc_iso

def parse_bound(value: str, name: str, inclusive_date_end: bool = False) -> datetime:
    """:func:`csadetect.core.timeutil.parse_bound`, its error a TransparencyError."""
    try:
        return timeutil.parse_bound(value, name, inclusive_date_end)
    except ValueError as exc:
        raise TransparencyError(str(exc)) from None


def _resolve_sources(args) -> Sources:
    given = (args.stats_dir, args.feedback_dir, args.complaints_dir)
    if all(given):
        sources = Sources(*given)
    else:
        defaults = sources_from(load_settings(getattr(args, "config", None)))
        sources = Sources(args.stats_dir or defaults.stats_dir, args.feedback_dir or defaults.feedback_dir,
                          args.complaints_dir or defaults.complaints_dir)
    if getattr(args, "run", None):
        if not sources.stats_dir:
            raise TransparencyError("--run needs a stats directory (--stats-dir or stores.stats_dir)")
        sources = Sources(runs.choose(sources.stats_dir, args.run, "stats directory"), sources.feedback_dir,
                          sources.complaints_dir)
    return sources


def _run(args) -> int:
    start = parse_bound(args.date_from, "--from")
    end = parse_bound(args.date_to, "--to", inclusive_date_end=True)
    if start >= end:
        raise TransparencyError(f"--from ({utc_iso(start)}) must be before --to ({utc_iso(end)})")
    sources = _resolve_sources(args)
    summary = collect(sources, start, end, quiet=args.quiet)
    paths = render(summary, args.out, quiet=args.quiet)
    for name, status in summary["sources"].items():
        note = source_note(status)
        if note:
            say(f"{name}: {note}", args.quiet)
    emit({**paths, "period": summary["period"], "headline": summary["headline"]})
    say(f"wrote {paths['html']}, {paths['pdf']}, {paths['json']}", args.quiet)
    return 0


def _cmd_transparency(args) -> int:
    try:
        return _run(args)
    except (TransparencyError, ConfigError, runs.RunError) as exc:
        error(str(exc))
        return 2
    except OSError as exc:
        error(f"{exc.filename or 'output'}: {exc.strerror or exc}")
        return 1


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "transparency", help="id-free transparency report (HTML, PDF, JSON) for a period",
        description="Aggregate the stats, EU Centre verdicts and complaints of a period into an id-free "
                    "transparency report: transparency.html, transparency.pdf, summary.json and chart PNGs "
                    "under --out. Prints one JSON line (paths and headline numbers); progress on stderr.")
    p.add_argument("--from", dest="date_from", required=True, metavar="DATE",
                   help="start, inclusive: YYYY-MM-DD (00:00 UTC) or an RFC 3339 time")
    p.add_argument("--to", dest="date_to", required=True, metavar="DATE",
                   help="end: YYYY-MM-DD is inclusive (the whole day counts, the period ends at 00:00 UTC the "
                        "next day); an RFC 3339 time is exclusive")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    p.add_argument("--stats-dir", default=None, metavar="DIR", help="default: stores.stats_dir from the config")
    p.add_argument("--feedback-dir", default=None, metavar="DIR", help="default: feedback.out_dir from the config")
    p.add_argument("--complaints-dir", default=None, metavar="DIR",
                   help="default: stores.complaints_dir from the config")
    p.add_argument("--run", default=None, metavar="RUN_ID",
                   help="count only this pipeline run's stats (default: every run, summed)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_cmd_transparency)
    return p
