"""Where the transparency report's three stores are, and how their lines are read.

A store is a directory on any Beam filesystem (:mod:`csadetect.core.fs`): the stats counters
(``stores.stats_dir``), the EU Centre's verdicts as labelled examples (``feedback.out_dir``) and
the complaints log (``stores.complaints_dir``). Each read keeps a status (``state``, ``files``,
``records``, ``skipped_lines``) that the report shows, so a store that is missing or damaged
says so instead of counting as zero in silence.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator, Mapping, Optional

from csadetect.core import fs
from csadetect.core.timeutil import parse_time


class TransparencyError(ValueError):
    """Bad period or unusable input; the message is one line for the operator."""


def say(message: str, quiet: bool = False) -> None:
    """Progress on stderr, ``transparency: <message>``."""
    if not quiet:
        print(f"transparency: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sources:
    """Where the three stores are; None means not configured."""

    stats_dir: Optional[str]
    feedback_dir: Optional[str]
    complaints_dir: Optional[str]


def sources_from(settings_or_paths: Any) -> Sources:
    """A :class:`Sources` from a ``Settings``, a ``Sources`` or a mapping with the keys
    ``stats_dir``, ``feedback_dir``, ``complaints_dir`` (missing keys: not configured)."""
    if isinstance(settings_or_paths, Sources):
        return settings_or_paths
    if isinstance(settings_or_paths, Mapping):
        unknown = set(settings_or_paths) - {"stats_dir", "feedback_dir", "complaints_dir"}
        if unknown:
            raise TransparencyError(f"unknown source key(s): {', '.join(sorted(unknown))}")
        get = settings_or_paths.get
        return Sources(_path(get("stats_dir")), _path(get("feedback_dir")), _path(get("complaints_dir")))
    stores, feedback = getattr(settings_or_paths, "stores", None), getattr(settings_or_paths, "feedback", None)
    if stores is None or feedback is None:
        raise TransparencyError("collect() needs a Settings object or a mapping of store directories")
    return Sources(stores.stats_dir, feedback.out_dir, stores.complaints_dir)


def _path(value) -> Optional[str]:
    return os.fspath(value) if value else None


def new_status() -> dict:
    return {"state": "not configured", "files": 0, "records": 0, "skipped_lines": 0}


def find(directory: Optional[str], pattern: str, status: dict) -> list[str]:
    """Files matching ``pattern`` under ``directory`` (any Beam filesystem; ``**`` reaches into
    sub-directories, e.g. every run's ``<stats_dir>/<RUN_ID>/``), sorted, hidden files and folders
    (temporary ones) left out; sets ``status["state"]`` to ``not configured``, ``missing``,
    ``empty`` or ``ok``."""
    if not directory:
        return []
    if not fs.is_url(directory) and not os.path.isdir(directory):
        status["state"] = "missing"
        return []
    try:
        matches = list(fs.match(fs.join(directory, pattern)))
    except Exception:  # a remote prefix that does not exist, or no access: nothing to count
        status["state"] = "missing"
        return []
    prefix = directory.rstrip("/").rstrip(os.sep)
    paths = sorted(m.path for m in matches
                   if not any(part.startswith(".") for part in m.path[len(prefix):].replace(os.sep, "/").split("/")))
    status["state"] = "ok" if paths else "empty"
    status["files"] = len(paths)
    return paths


def read_jsonl(paths: Iterable[str], status: dict) -> Iterator[dict]:
    """JSON objects, one a line; unreadable lines are counted in ``status`` and skipped."""
    for path in paths:
        with fs.open_read(path) as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    obj = None
                if isinstance(obj, dict):
                    yield obj
                else:
                    status["skipped_lines"] += 1


def time_of(value) -> Optional[datetime]:
    """An RFC 3339 time as UTC (zone-less: UTC); None when it is not one."""
    try:
        return parse_time(value, assume_utc=True)
    except ValueError:
        return None


def timed(records: Iterable[dict], key: str, status: dict) -> Iterator[tuple[datetime, dict]]:
    """``(time, record)`` for records whose ``key`` is a valid RFC 3339 time; others are skipped."""
    for rec in records:
        at = time_of(rec.get(key))
        if at is None:
            status["skipped_lines"] += 1
            continue
        yield at, rec
