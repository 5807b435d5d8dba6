"""Id-free counters kept on disk for the transparency report (docs/data.md, "Stats").

Beam metrics vanish with the job; these records persist. A record is
``{"at", "metric", "value", "labels"}`` and its labels may only use :data:`LABELS`, so no id,
hash, account or content can ever be written here (checked on every write).
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Iterable, Iterator, Optional

from csadetect.core import fs
from csadetect.core.timeutil import parse_time, utc_iso, utc_now

LABELS = ("kind", "detector", "detector_version", "store", "decision")
METRICS = (
    "scanned", "not_covered", "dead_lettered", "hit", "reported", "review_queued", "review_decided",
    "review_seconds", "deleted",
)


def stat(metric: str, value: float = 1, at: Optional[datetime | str] = None, **labels) -> dict:
    """One stats record; raises ValueError for an unknown metric or label."""
    if metric not in METRICS:
        raise ValueError(f"unknown stats metric {metric!r}")
    bad = set(labels) - set(LABELS)
    if bad:
        raise ValueError(f"stats labels may only be {', '.join(LABELS)} (got {', '.join(sorted(bad))})")
    at = at if isinstance(at, str) else utc_iso(at)
    return {"at": at, "metric": metric, "value": value,
            "labels": {k: str(v) for k, v in sorted(labels.items()) if v is not None}}


def write_stats(stats_dir: Optional[str], records: Iterable[dict], prefix: str = "stats") -> Optional[str]:
    """Write ``records`` as a new ``stats-*.jsonl`` file under ``stats_dir`` (any Beam filesystem);
    returns its path, or None when there is nothing to write or no directory is configured."""
    records = [r for r in records]
    if not stats_dir or not records:
        return None
    for r in records:
        stat(r["metric"], r["value"], r["at"], **r.get("labels", {}))  # validates
    stamp = utc_now().strftime("%Y%m%dT%H%M%S")
    path = fs.join(stats_dir, f"{prefix}-{stamp}-{uuid.uuid4().hex[:8]}.jsonl")
    with fs.open_write(path) as fh:
        for r in records:
            fh.write((json.dumps(r, sort_keys=True) + "\n").encode("utf-8"))
    return path


def read_stats(stats_dir: str, start: Optional[datetime] = None, end: Optional[datetime] = None) -> Iterator[dict]:
    """Every stats record under ``stats_dir`` with ``start <= at < end``."""
    for match in fs.match(fs.join(stats_dir, "*.jsonl")):
        with fs.open_read(match.path) as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                rec = json.loads(line)
                at = parse_time(rec["at"], field="at", assume_utc=True)
                if (start is None or at >= start) and (end is None or at < end):
                    yield rec
