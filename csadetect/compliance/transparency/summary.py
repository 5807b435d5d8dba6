"""The transparency report's summary: id-free counts of a period (Art. 83 data, Art. 84 report).

:func:`collect` aggregates, for a period ``[start, end)``, the three stores of
:mod:`.sources`: the stats counters, the EU Centre's verdicts (``examples-*.jsonl``) and the
complaints log (counted by :func:`csadetect.compliance.complaints.counts`). The stats of every run
(``<stats_dir>/<RUN_ID>/``) and of the jobs outside a run (the top level) are summed; a stats
directory given as one run's directory counts that run alone. It reads only the
fields it counts (metric, value, allowed labels, detector, version, label, times), so no report
id, account, event id, conversation id, complaint id or free text ever reaches the summary
(Art. 83(4)).
"""
from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from datetime import datetime
from typing import Iterable, Mapping, Optional, Sequence

from csadetect.compliance.complaints import GROUNDS, OUTCOMES, ComplaintError, counts, log_path, read_events
from csadetect.compliance.transparency.sources import (
    TransparencyError, find, new_status, read_jsonl, say, sources_from, time_of, timed,
)
from csadetect.core.timeutil import as_utc, utc_iso
from csadetect.tuning.tune import wilson

DECISIONS = ("confirmed", "rejected", "expired")
TIMED_DECISIONS = ("confirmed", "rejected")  # expiries are counted, not timed (no one decided)
STORES = ("reports", "review", "evidence")
VERDICT_LABELS = ("confirmed", "manifestly_unfounded")
OTHER = "other"
STATS_PATTERN = "**.jsonl"  # the stats directory's top level and every run's <stats_dir>/<RUN_ID>/, summed
EXAMPLES_PATTERN = "**examples-*.jsonl"  # feedback.out_dir's top level and every run's <out_dir>/<RUN_ID>/


def _number(value) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def whole(value: float):
    """Counts as ints where whole (sums of stats values are floats)."""
    return int(value) if float(value).is_integer() else value


def _label(value, allowed: Sequence[str]) -> str:
    return value if value in allowed else OTHER


def _quantile_nearest_rank(values: Sequence[float], q: float) -> float:
    """The nearest-rank quantile: the smallest observed value with at least ``q`` of all at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def review_time_summary(values: Sequence[float]) -> dict:
    """``{"n", "median", "p90", "max"}`` in seconds; median is the usual (mean of the two middle
    values for an even count), p90 the nearest-rank 90th percentile."""
    if not values:
        return {"n": 0, "median": None, "p90": None, "max": None}
    ordered = sorted(values)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return {"n": len(ordered), "median": whole(median), "p90": whole(_quantile_nearest_rank(ordered, 0.9)),
            "max": whole(ordered[-1])}


def _sorted_counts(counter: Mapping[str, float]) -> dict:
    return {k: whole(counter[k]) for k in sorted(counter)}


# metric -> the one label it is counted by (counters summed per label value)
_COUNTED_BY = {"scanned": "kind", "not_covered": "kind", "hit": "detector", "reported": "detector",
               "review_queued": "detector", "deleted": "store"}


def _stats_record(rec: dict) -> Optional[tuple[str, float, dict]]:
    """``(metric, value, labels)`` of a well-formed stats record, else None."""
    metric, value, labels = rec.get("metric"), _number(rec.get("value")), rec.get("labels")
    if not isinstance(metric, str) or value is None:
        return None
    return metric, value, labels if isinstance(labels, dict) else {}


def _label_value(labels: Mapping, name: str) -> str:
    if name == "store":
        return _label(labels.get("store"), STORES)
    return str(labels.get(name, "unknown"))


def _decided(decided: Mapping[str, Counter]) -> dict:
    return {d: {k: whole(decided[d][k]) for k in DECISIONS + ((OTHER,) if decided[d][OTHER] else ())}
            for d in sorted(decided)}


def aggregate_stats(records: Iterable[dict], start: datetime, end: datetime, status: dict) -> dict:
    """The stats counters of ``[start, end)``, keyed only by kind, detector, decision and store."""
    counters = {metric: Counter() for metric in _COUNTED_BY}
    decided: dict[str, Counter] = defaultdict(Counter)
    seconds: dict[str, list[float]] = defaultdict(list)
    dead = 0.0
    for when, rec in timed(records, "at", status):
        if not start <= when < end:
            continue
        parsed = _stats_record(rec)
        if parsed is None:
            status["skipped_lines"] += 1
            continue
        status["records"] += 1
        metric, value, labels = parsed
        detector = _label_value(labels, "detector")
        if metric in _COUNTED_BY:
            counters[metric][_label_value(labels, _COUNTED_BY[metric])] += value
        elif metric == "dead_lettered":
            dead += value
        elif metric == "review_decided":
            decided[detector][_label(labels.get("decision"), DECISIONS)] += value
        elif metric == "review_seconds" and labels.get("decision", "confirmed") in TIMED_DECISIONS:
            seconds[detector].append(value)
    return {
        **{metric: _sorted_counts(c) for metric, c in counters.items()},
        "dead_lettered": whole(dead),
        "review_decided": _decided(decided),
        "review_seconds": {d: review_time_summary(seconds[d]) for d in sorted(seconds)},
    }


def _precision_row(confirmed: int, unfounded: int) -> dict:
    n = confirmed + unfounded
    low, high = wilson(confirmed, n)
    return {
        "verdicts": n, "confirmed": confirmed, "manifestly_unfounded": unfounded,
        "precision": confirmed / n if n else None,
        "precision_low": low if n else None, "precision_high": high if n else None,
        "error_rate": unfounded / n if n else None,
    }


def aggregate_verdicts(examples: Iterable[dict], start: datetime, end: datetime, status: dict) -> dict:
    """EU Centre verdicts decided in ``[start, end)`` per (detector, version), with precision, its
    95% Wilson interval and the error rate (manifestly unfounded / verdicts). One verdict per report:
    of the examples with the same ``example_id`` (every feedback run writes its own, and a revised
    decision adds one), the latest decided in the period counts; examples without one (written
    before it existed) each count."""
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    types: dict[tuple[str, str], str] = {}
    latest: dict[str, tuple[datetime, dict]] = {}
    kept = []
    for when, rec in timed(examples, "decided_at", status):
        if not start <= when < end:
            continue
        if rec.get("label") not in VERDICT_LABELS:
            status["skipped_lines"] += 1
            continue
        status["records"] += 1
        eid = rec.get("example_id")
        if not isinstance(eid, str) or not eid:
            kept.append(rec)
        elif eid not in latest or when >= latest[eid][0]:
            latest[eid] = (when, rec)
    for rec in kept + [rec for _when, rec in latest.values()]:
        key = (str(rec.get("detector") or "unknown"), str(rec.get("detector_version") or "unknown"))
        counts[key][rec["label"]] += 1
        types.setdefault(key, str(rec.get("detection_type") or ""))
    rows = []
    for detector, version in sorted(counts):
        c = counts[(detector, version)]
        rows.append({"detector": detector, "detector_version": version, "detection_type": types[(detector, version)],
                     **_precision_row(c["confirmed"], c["manifestly_unfounded"])})
    total = _precision_row(sum(r["confirmed"] for r in rows), sum(r["manifestly_unfounded"] for r in rows))
    return {"by_detector_version": rows, "total": total}


def _no_complaints() -> dict:
    return {"received": 0, **{o: 0 for o in OUTCOMES}, "open": 0, "grounds": {g: 0 for g in GROUNDS},
            "median_days_to_outcome": None}


def _nonblank_lines(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(1 for raw in fh if raw.strip())


def aggregate_complaints(directory: Optional[str], start: datetime, end: datetime, status: dict) -> dict:
    """Complaints received in ``[start, end)`` (and by grounds), outcomes decided in it, the median
    days to an outcome, and those open at its end, exactly as ``csadetect.compliance.complaints.counts`` counts
    them (the first outcome of a complaint is final). Ids never leave ``csadetect.compliance.complaints``."""
    if not directory:
        return _no_complaints()
    try:
        path = log_path(directory)
    except ComplaintError as exc:
        raise TransparencyError(str(exc)) from None
    if not os.path.isfile(path):
        status["state"] = "empty" if os.path.isdir(os.path.dirname(path) or ".") else "missing"
        return _no_complaints()
    events = read_events(directory)
    status.update(state="ok", files=1, skipped_lines=_nonblank_lines(path) - len(events),
                  records=sum(1 for e in events if (w := time_of(e.get("at"))) is not None and start <= w < end))
    c = counts(directory, start, end)
    return {"received": c["received"], **{o: c["outcomes"][o] for o in OUTCOMES}, "open": c["open"],
            "grounds": dict(c["grounds"]), "median_days_to_outcome": c["median_days_to_outcome"]}


def _headline(stats: dict, verdicts: dict, complaints: dict) -> dict:
    total = verdicts["total"]
    return {
        "scanned": whole(sum(stats["scanned"].values())),
        "not_covered": whole(sum(stats["not_covered"].values())),
        "dead_lettered": stats["dead_lettered"],
        "hits": whole(sum(stats["hit"].values())),
        "reported": whole(sum(stats["reported"].values())),
        "review_decided": whole(sum(sum(d.values()) for d in stats["review_decided"].values())),
        "deleted": whole(sum(stats["deleted"].values())),
        "verdicts": total["verdicts"],
        "confirmed": total["confirmed"],
        "manifestly_unfounded": total["manifestly_unfounded"],
        "precision": total["precision"],
        "error_rate": total["error_rate"],
        "complaints_received": complaints["received"],
    }


def _aware(when: datetime, name: str) -> datetime:
    if not isinstance(when, datetime):
        raise TransparencyError(f"{name} must be a datetime")
    return as_utc(when)


def collect(settings_or_paths, start: datetime, end: datetime, quiet: bool = True) -> dict:
    """The id-free summary of ``[start, end)`` (naive datetimes are UTC). A store that is not
    configured or not found counts as zero and is marked as such in ``summary["sources"]``."""
    start, end = _aware(start, "start"), _aware(end, "end")
    if start >= end:
        raise TransparencyError(f"the period is empty: from {utc_iso(start)} is not before to {utc_iso(end)}")
    src = sources_from(settings_or_paths)
    sources = {name: new_status() for name in ("stats", "verdicts", "complaints")}

    say("reading stats", quiet)
    stats = aggregate_stats(read_jsonl(find(src.stats_dir, STATS_PATTERN, sources["stats"]), sources["stats"]),
                            start, end, sources["stats"])
    say("reading EU Centre verdicts", quiet)
    verdicts = aggregate_verdicts(
        read_jsonl(find(src.feedback_dir, EXAMPLES_PATTERN, sources["verdicts"]), sources["verdicts"]),
        start, end, sources["verdicts"])
    say("reading complaints", quiet)
    complaints = aggregate_complaints(src.complaints_dir, start, end, sources["complaints"])
    for name, status in sources.items():
        if status["skipped_lines"]:
            say(f"{name}: skipped {status['skipped_lines']} unreadable line(s)", quiet)
    return {
        "period": {"from": utc_iso(start), "to": utc_iso(end), "to_exclusive": True},
        "generated_at": utc_iso(),
        "sources": sources,
        "headline": _headline(stats, verdicts, complaints),
        **stats,
        "verdicts": verdicts,
        "complaints": complaints,
    }
