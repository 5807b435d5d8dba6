"""``csadetect transparency``: the id-free transparency report (Art. 83 data, Art. 84 report).

:func:`collect` aggregates, for a period ``[start, end)``, the stores described in
``docs/data.md``: the stats counters (``stores.stats_dir``), the EU Centre's verdicts as
labelled examples (``feedback.out_dir/examples-*.jsonl``) and the complaints log
(``stores.complaints_dir/complaints.jsonl``, counted by ``csadetect.compliance.complaints.counts``). It
reads only the fields it counts (metric, value, allowed labels, detector, version, label, times),
so no report id, account, event id, conversation id, complaint id or free text ever reaches the
summary (Art. 83(4)).

:func:`render` writes ``transparency.html`` (self-contained: charts embedded as data URIs),
``transparency.pdf`` (fpdf2), the chart PNGs and ``summary.json``. See ``docs/transparency.md``.
"""
from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

from csadetect.core.stats import parse_time, utc_iso
from csadetect.tuning.tune import wilson

TEMPLATES = Path(__file__).resolve().parent / "templates"
HTML_TEMPLATE = "transparency.html.j2"

DECISIONS = ("confirmed", "rejected", "expired")
TIMED_DECISIONS = ("confirmed", "rejected")  # expiries are counted, not timed (no one decided)
STORES = ("reports", "review", "evidence")
OUTCOMES = ("upheld", "rejected", "withdrawn")
VERDICT_LABELS = ("confirmed", "manifestly_unfounded")
OTHER = "other"

CHARTS = (
    ("scanned_per_kind", "Items scanned per kind"),
    ("hits_per_detector", "Hits and reports per detector"),
    ("verdicts_per_detector", "EU Centre verdicts per detector"),
    ("review_times", "Human review times per detector"),
    ("deletions", "Deletions per store"),
)


class TransparencyError(ValueError):
    """Bad period or unusable input; the message is one line for the operator."""


def _say(message: str, quiet: bool = False) -> None:
    if not quiet:
        print(f"transparency: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ sources


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


# ------------------------------------------------------------------------------------ reading


def _new_source_status() -> dict:
    return {"state": "not configured", "files": 0, "records": 0, "skipped_lines": 0}


def _find(directory: Optional[str], pattern: str, status: dict) -> list[str]:
    """Files matching ``pattern`` under ``directory`` (any Beam filesystem), sorted; sets
    ``status["state"]`` to ``not configured``, ``missing``, ``empty`` or ``ok``."""
    if not directory:
        return []
    if "://" not in directory and not os.path.isdir(directory):
        status["state"] = "missing"
        return []
    from apache_beam.io.filesystems import FileSystems

    try:
        matches = FileSystems.match([FileSystems.join(directory, pattern)])[0].metadata_list
    except Exception:  # a remote prefix that does not exist, or no access: nothing to count
        status["state"] = "missing"
        return []
    paths = sorted(m.path for m in matches)
    status["state"] = "ok" if paths else "empty"
    status["files"] = len(paths)
    return paths


def _read_jsonl(paths: Iterable[str], status: dict) -> Iterator[dict]:
    """JSON objects, one a line; unreadable lines are counted in ``status`` and skipped."""
    from apache_beam.io.filesystems import FileSystems

    for path in paths:
        with FileSystems.open(path) as fh:
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


def _when(value) -> Optional[datetime]:
    try:
        return parse_time(value)
    except (TypeError, ValueError):
        return None


def _timed(records: Iterable[dict], key: str, status: dict) -> Iterator[tuple[datetime, dict]]:
    """``(time, record)`` for records whose ``key`` is a valid RFC 3339 time; others are skipped."""
    for rec in records:
        when = _when(rec.get(key))
        if when is None:
            status["skipped_lines"] += 1
            continue
        yield when, rec


def _number(value) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _clean(value: float):
    """Counts as ints where whole (sums of stats values are floats)."""
    return int(value) if float(value).is_integer() else value


def _label(value, allowed: Sequence[str]) -> str:
    return value if value in allowed else OTHER


# ----------------------------------------------------------------------------------- aggregates


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
    return {"n": len(ordered), "median": _clean(median), "p90": _clean(_quantile_nearest_rank(ordered, 0.9)),
            "max": _clean(ordered[-1])}


def _sorted_counts(counter: Mapping[str, float]) -> dict:
    return {k: _clean(counter[k]) for k in sorted(counter)}


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
    return {d: {k: _clean(decided[d][k]) for k in DECISIONS + ((OTHER,) if decided[d][OTHER] else ())}
            for d in sorted(decided)}


def aggregate_stats(records: Iterable[dict], start: datetime, end: datetime, status: dict) -> dict:
    """The stats counters of ``[start, end)``, keyed only by kind, detector, decision and store."""
    counters = {metric: Counter() for metric in _COUNTED_BY}
    decided: dict[str, Counter] = defaultdict(Counter)
    seconds: dict[str, list[float]] = defaultdict(list)
    dead = 0.0
    for when, rec in _timed(records, "at", status):
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
        "dead_lettered": _clean(dead),
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
    95% Wilson interval and the error rate (manifestly unfounded / verdicts)."""
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    types: dict[tuple[str, str], str] = {}
    for when, rec in _timed(examples, "decided_at", status):
        if not start <= when < end:
            continue
        label = rec.get("label")
        if label not in VERDICT_LABELS:
            status["skipped_lines"] += 1
            continue
        status["records"] += 1
        key = (str(rec.get("detector") or "unknown"), str(rec.get("detector_version") or "unknown"))
        counts[key][label] += 1
        types.setdefault(key, str(rec.get("detection_type") or ""))
    rows = []
    for detector, version in sorted(counts):
        c = counts[(detector, version)]
        rows.append({"detector": detector, "detector_version": version, "detection_type": types[(detector, version)],
                     **_precision_row(c["confirmed"], c["manifestly_unfounded"])})
    total = _precision_row(sum(r["confirmed"] for r in rows), sum(r["manifestly_unfounded"] for r in rows))
    return {"by_detector_version": rows, "total": total}


def _no_complaints() -> dict:
    from csadetect.compliance.complaints import GROUNDS

    return {"received": 0, **{o: 0 for o in OUTCOMES}, "open": 0, "grounds": {g: 0 for g in GROUNDS},
            "median_days_to_outcome": None}


def _nonblank_lines(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(1 for raw in fh if raw.strip())


def aggregate_complaints(directory: Optional[str], start: datetime, end: datetime, status: dict) -> dict:
    """Complaints received in ``[start, end)`` (and by grounds), outcomes decided in it, the median
    days to an outcome, and those open at its end, exactly as ``csadetect.compliance.complaints.counts`` counts
    them (the first outcome of a complaint is final). Ids never leave ``csadetect.compliance.complaints``."""
    from csadetect.compliance.complaints import ComplaintError, counts, log_path, read_events

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
                  records=sum(1 for e in events if (w := _when(e.get("at"))) is not None and start <= w < end))
    c = counts(directory, start, end)
    return {"received": c["received"], **{o: c["outcomes"][o] for o in OUTCOMES}, "open": c["open"],
            "grounds": dict(c["grounds"]), "median_days_to_outcome": c["median_days_to_outcome"]}


def _headline(stats: dict, verdicts: dict, complaints: dict) -> dict:
    total = verdicts["total"]
    return {
        "scanned": _clean(sum(stats["scanned"].values())),
        "not_covered": _clean(sum(stats["not_covered"].values())),
        "dead_lettered": stats["dead_lettered"],
        "hits": _clean(sum(stats["hit"].values())),
        "reported": _clean(sum(stats["reported"].values())),
        "review_decided": _clean(sum(sum(d.values()) for d in stats["review_decided"].values())),
        "deleted": _clean(sum(stats["deleted"].values())),
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
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def collect(settings_or_paths, start: datetime, end: datetime, quiet: bool = True) -> dict:
    """The id-free summary of ``[start, end)`` (naive datetimes are UTC). A store that is not
    configured or not found counts as zero and is marked as such in ``summary["sources"]``."""
    start, end = _aware(start, "start"), _aware(end, "end")
    if start >= end:
        raise TransparencyError(f"the period is empty: from {utc_iso(start)} is not before to {utc_iso(end)}")
    src = sources_from(settings_or_paths)
    sources = {name: _new_source_status() for name in ("stats", "verdicts", "complaints")}

    _say("reading stats", quiet)
    stats = aggregate_stats(_read_jsonl(_find(src.stats_dir, "*.jsonl", sources["stats"]), sources["stats"]),
                            start, end, sources["stats"])
    _say("reading EU Centre verdicts", quiet)
    verdicts = aggregate_verdicts(
        _read_jsonl(_find(src.feedback_dir, "examples-*.jsonl", sources["verdicts"]), sources["verdicts"]),
        start, end, sources["verdicts"])
    _say("reading complaints", quiet)
    complaints = aggregate_complaints(src.complaints_dir, start, end, sources["complaints"])
    for name, status in sources.items():
        if status["skipped_lines"]:
            _say(f"{name}: skipped {status['skipped_lines']} unreadable line(s)", quiet)
    return {
        "period": {"from": utc_iso(start), "to": utc_iso(end), "to_exclusive": True},
        "generated_at": utc_iso(),
        "sources": sources,
        "headline": _headline(stats, verdicts, complaints),
        **stats,
        "verdicts": verdicts,
        "complaints": complaints,
    }


# ------------------------------------------------------------------------------------ formatting


def fmt_count(value) -> str:
    if value is None:
        return "-"
    return str(_clean(value)) if isinstance(value, (int, float)) else str(value)


def fmt_pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def fmt_duration(seconds) -> str:
    """``45 s``, ``12 min 5 s``, ``3 h 20 min``, ``2 d 4 h``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def fmt_days(days) -> str:
    return "-" if days is None else f"{days:.1f}"


def fmt_interval(row: Mapping) -> str:
    if row.get("precision") is None:
        return "-"
    return f"{fmt_pct(row['precision_low'])} - {fmt_pct(row['precision_high'])}"


SOURCE_NOTES = {
    "ok": "",
    "empty": "no data (no files in the store)",
    "missing": "no data (store not found)",
    "not configured": "no data (store not configured)",
}


def source_note(status: Mapping) -> str:
    """Empty when the store had records in the period, else why there is no data."""
    if status["state"] == "ok":
        return "" if status["records"] else "no data (no records in the period)"
    return SOURCE_NOTES.get(status["state"], "no data")


def _table(title: str, source: str, note: str, header: Sequence[str], rows: list) -> dict:
    return {"title": title, "source": source, "note": note, "header": list(header), "rows": rows}


def _headline_table(s: Mapping) -> dict:
    h = _headline_cells(s)
    rows = [["items scanned", h["scanned"]],
            ["items not covered by a detection order", h["not_covered"]],
            ["items dead-lettered (invalid)", h["dead_lettered"]],
            ["hits", h["hits"]],
            ["reports to the EU Centre", h["reported"]],
            ["human review decisions", h["review_decided"]],
            ["EU Centre verdicts", h["verdicts"]],
            ["precision (confirmed / verdicts)", h["precision"]],
            ["error rate (manifestly unfounded / verdicts)", h["error_rate"]],
            ["items deleted", h["deleted"]],
            ["complaints received", h["complaints_received"]]]
    return _table("Headline figures", "all stores", "", ["measure", "value"], rows)


def _scanned_table(s: Mapping, note: str) -> dict:
    kinds = sorted(set(s["scanned"]) | set(s["not_covered"]))
    rows = [[k, fmt_count(s["scanned"].get(k, 0)), fmt_count(s["not_covered"].get(k, 0))] for k in kinds]
    return _table("Items scanned per kind", "stats: scanned, not_covered", note,
                  ["kind", "scanned", "not covered by an order"], rows)


def _detector_table(s: Mapping, note: str) -> dict:
    detectors = sorted(set(s["hit"]) | set(s["reported"]) | set(s["review_queued"]))
    rows = [[d, fmt_count(s["hit"].get(d, 0)), fmt_count(s["review_queued"].get(d, 0)),
             fmt_count(s["reported"].get(d, 0))] for d in detectors]
    return _table("Hits, reviews and reports per detector", "stats: hit, review_queued, reported", note,
                  ["detector", "hits", "sent to review", "reported"], rows)


def _review_table(s: Mapping, note: str) -> dict:
    cols = list(DECISIONS) + ([OTHER] if any(OTHER in d for d in s["review_decided"].values()) else [])
    rows = [[d, *(fmt_count(v.get(k, 0)) for k in cols)] for d, v in s["review_decided"].items()]
    return _table("Human review outcomes per detector", "stats: review_decided", note, ["detector", *cols], rows)


def _review_time_table(s: Mapping, note: str) -> dict:
    rows = [[d, fmt_count(v["n"]), fmt_duration(v["median"]), fmt_duration(v["p90"]), fmt_duration(v["max"])]
            for d, v in s["review_seconds"].items()]
    return _table("Human review times per detector (confirmed or rejected)", "stats: review_seconds", note,
                  ["detector", "decisions", "median", "90th percentile", "longest"], rows)


def _verdict_cells(row: Mapping) -> list[str]:
    return [fmt_count(row["verdicts"]), fmt_count(row["confirmed"]), fmt_count(row["manifestly_unfounded"]),
            fmt_pct(row["precision"]), fmt_interval(row), fmt_pct(row["error_rate"])]


def _verdict_table(s: Mapping, note: str) -> dict:
    by_version = s["verdicts"]["by_detector_version"]
    rows = [[r["detector"], r["detector_version"], *_verdict_cells(r)] for r in by_version]
    if by_version:
        rows.append(["all", "", *_verdict_cells(s["verdicts"]["total"])])
    return _table("EU Centre verdicts per detector and version", "feedback: examples-*.jsonl", note,
                  ["detector", "version", "verdicts", "confirmed", "manifestly unfounded", "precision",
                   "95% interval", "error rate"], rows)


def _deletion_table(s: Mapping, note: str) -> dict:
    return _table("Deletions per store", "stats: deleted", note, ["store", "items deleted"],
                  [[k, fmt_count(v)] for k, v in s["deleted"].items()])


def _complaint_table(s: Mapping) -> dict:
    c, status = s["complaints"], s["sources"]["complaints"]
    rows = [[*(fmt_count(c[k]) for k in ("received", *OUTCOMES, "open")), fmt_days(c["median_days_to_outcome"])]]
    return _table("Complaints", "complaints.jsonl (csadetect.compliance.complaints.counts)", source_note(status),
                  ["received", *(f"{o} in the period" for o in OUTCOMES), "open at the end of the period",
                   "median days to an outcome"], rows if _available(status) else [])


def _grounds_table(s: Mapping) -> dict:
    c, status = s["complaints"], s["sources"]["complaints"]
    rows = [[g.replace("_", " "), fmt_count(n)] for g, n in c["grounds"].items()]
    return _table("Complaints received by grounds", "complaints.jsonl: grounds", source_note(status),
                  ["grounds", "complaints"], rows if _available(status) else [])


def _source_table(s: Mapping) -> dict:
    rows = [[SOURCE_NAMES[name], st["state"], fmt_count(st["files"]), fmt_count(st["records"]),
             fmt_count(st["skipped_lines"])] for name, st in s["sources"].items()]
    return _table("Sources", "files read for this report", "",
                  ["store", "state", "files", "records in the period", "unreadable lines skipped"], rows)


def tables(summary: Mapping) -> list[dict]:
    """The report's tables as ``{"title", "source", "note", "header", "rows"}`` with formatted
    cells; the single source of truth for both the HTML and the PDF."""
    s = summary
    stats_note = source_note(s["sources"]["stats"])
    return [
        _headline_table(s),
        _scanned_table(s, stats_note),
        _detector_table(s, stats_note),
        _review_table(s, stats_note),
        _review_time_table(s, stats_note),
        _verdict_table(s, source_note(s["sources"]["verdicts"])),
        _deletion_table(s, stats_note),
        _complaint_table(s),
        _grounds_table(s),
        _source_table(s),
    ]


SOURCE_NAMES = {"stats": "stats (stores.stats_dir)", "verdicts": "EU Centre verdicts (feedback.out_dir)",
                "complaints": "complaints (stores.complaints_dir)"}
_HEADLINE_SOURCE = {"verdicts": "verdicts", "confirmed": "verdicts", "manifestly_unfounded": "verdicts",
                    "precision": "verdicts", "error_rate": "verdicts", "complaints_received": "complaints"}


def _available(status: Mapping) -> bool:
    return status["state"] not in ("missing", "not configured")


def _headline_cells(summary: Mapping) -> dict:
    """Formatted headline figures; ``no data`` where their store was not found or not configured."""
    cells = {}
    for key, value in summary["headline"].items():
        if not _available(summary["sources"][_HEADLINE_SOURCE.get(key, "stats")]):
            cells[key] = "no data"
        elif key in ("precision", "error_rate"):
            cells[key] = fmt_pct(value)
        else:
            cells[key] = fmt_count(value)
    return cells


# ---------------------------------------------------------------------------------------- charts

_COLOURS = {"main": "#1f77b4", "second": "#ff7f0e", "confirmed": "#2ca02c", "unfounded": "#d62728",
            "p90": "#9467bd", "max": "#8c564b"}


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 3.4), dpi=110)
    FigureCanvasAgg(fig)  # Agg, without touching pyplot's global backend
    return fig, fig.add_subplot(1, 1, 1)


def _no_data(ax, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=16, color="grey", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("lightgrey")


def _bars(ax, names: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]], stacked: bool = False) -> None:
    import numpy as np

    x = np.arange(len(names))
    width = 0.8 if stacked else 0.8 / len(series)
    bottom = np.zeros(len(names))
    for i, (label, values, colour) in enumerate(series):
        values = np.asarray(values, dtype=float)
        offset = 0 if stacked else (i - (len(series) - 1) / 2) * width
        ax.bar(x + offset, values, width, bottom=bottom if stacked else None, label=label, color=colour)
        if stacked:
            bottom = bottom + values
    ax.set_xticks(x, names, rotation=15 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
    if len(series) > 1:
        ax.legend(fontsize=8)


def _chart_series(summary: Mapping, name: str):
    """``(categories, [(label, values, colour)], y label, stacked)`` of one chart."""
    s = summary
    if name == "scanned_per_kind":
        kinds = sorted(set(s["scanned"]) | set(s["not_covered"]))
        return kinds, [("scanned", [s["scanned"].get(k, 0) for k in kinds], _COLOURS["main"]),
                       ("not covered", [s["not_covered"].get(k, 0) for k in kinds], _COLOURS["second"])], "items", False
    if name == "hits_per_detector":
        dets = sorted(set(s["hit"]) | set(s["reported"]))
        return dets, [("hits", [s["hit"].get(d, 0) for d in dets], _COLOURS["main"]),
                      ("reported", [s["reported"].get(d, 0) for d in dets], _COLOURS["second"])], "items", False
    if name == "verdicts_per_detector":
        rows = s["verdicts"]["by_detector_version"]
        names = [f"{r['detector']}\n{r['detector_version']}" for r in rows]
        return names, [("confirmed", [r["confirmed"] for r in rows], _COLOURS["confirmed"]),
                       ("manifestly unfounded", [r["manifestly_unfounded"] for r in rows], _COLOURS["unfounded"])], \
            "verdicts", True
    if name == "review_times":
        dets = sorted(s["review_seconds"])
        hours = lambda key: [(s["review_seconds"][d][key] or 0) / 3600 for d in dets]  # noqa: E731
        return dets, [("median", hours("median"), _COLOURS["main"]), ("90th percentile", hours("p90"), _COLOURS["p90"]),
                      ("longest", hours("max"), _COLOURS["max"])], "hours", False
    if name == "deletions":
        stores = sorted(s["deleted"])
        return stores, [("deleted", [s["deleted"][k] for k in stores], _COLOURS["main"])], "items", False
    raise KeyError(name)


def write_chart(summary: Mapping, name: str, title: str, path: Path) -> Path:
    """One chart as PNG; a chart that says "no data" when there is nothing to plot."""
    names, series, ylabel, stacked = _chart_series(summary, name)
    fig, ax = _figure()
    if not names or not any(v for _, values, _ in series for v in values):
        _no_data(ax, title)
    else:
        _bars(ax, names, series, stacked)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        if ylabel != "hours":
            from matplotlib.ticker import MaxNLocator

            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def write_charts(summary: Mapping, out_dir: Path) -> dict[str, Path]:
    return {name: write_chart(summary, name, title, out_dir / f"{name}.png") for name, title in CHARTS}


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# ------------------------------------------------------------------------------------------ HTML


def render_html(summary: Mapping, charts: Mapping[str, Path]) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    titles = dict(CHARTS)
    return env.get_template(HTML_TEMPLATE).render(
        summary=summary, period=period_text(summary), tables=tables(summary),
        charts=[{"name": n, "title": titles[n], "src": _data_uri(p)} for n, p in charts.items()],
        never_contains=NEVER_CONTAINS)


def period_text(summary: Mapping) -> str:
    p = summary["period"]
    return f"{p['from']} (inclusive) to {p['to']} (exclusive), UTC"


NEVER_CONTAINS = ("This report holds counts only. It never contains report ids, event ids, conversation ids, "
                  "complaint ids, accounts, user or reviewer names, hashes, scores of single items, content or "
                  "free text from complaints or verdicts (Art. 83(4): no personal data).")


# ------------------------------------------------------------------------------------------- PDF


def _pdf_fonts(pdf) -> str:
    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    regular, bold = ttf / "DejaVuSans.ttf", ttf / "DejaVuSans-Bold.ttf"
    if regular.is_file() and bold.is_file():
        pdf.add_font("DejaVu", "", str(regular))
        pdf.add_font("DejaVu", "B", str(bold))
        return "DejaVu"
    return "Helvetica"  # latin-1 only; _pdf_text() replaces anything else


def _pdf_text(text: str, family: str) -> str:
    return text if family == "DejaVu" else text.encode("latin-1", "replace").decode("latin-1")


def _ensure_space(pdf, height: float) -> None:
    if pdf.get_y() + height > pdf.h - pdf.b_margin:
        pdf.add_page()


_WIDE_COLUMNS = {"detector": 2.2, "store": 2.2, "measure": 4.0, "grounds": 3.0, "version": 1.1, "95% interval": 1.6,
                 "manifestly unfounded": 1.2}


def _col_widths(header: Sequence[str]) -> tuple[float, ...]:
    return tuple(_WIDE_COLUMNS.get(name, 1.0) for name in header)


def _pdf_table(pdf, table: Mapping, family: str) -> None:
    _ensure_space(pdf, 30 + 6 * min(len(table["rows"]), 3))  # never a heading alone at a page's foot
    pdf.set_font(family, "B", 12)
    pdf.multi_cell(0, 7, _pdf_text(table["title"], family), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 8)
    pdf.set_text_color(90, 90, 90)
    pdf.multi_cell(0, 5, _pdf_text(f"Source: {table['source']}", family), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    if table["note"] or not table["rows"]:
        pdf.set_font(family, "", 10)
        pdf.multi_cell(0, 6, _pdf_text(table["note"] or "no data", family), new_x="LMARGIN", new_y="NEXT")
    if table["rows"]:
        pdf.set_font(family, "", 8 if len(table["header"]) > 5 else 9)
        with pdf.table(headings_style=_heading_style(family), line_height=5.5, col_widths=_col_widths(table["header"]),
                       text_align="LEFT", first_row_as_headings=True) as t:
            for row in [table["header"], *table["rows"]]:
                cells = t.row()
                for cell in row:
                    cells.cell(_pdf_text(str(cell), family))
    pdf.ln(4)


def _heading_style(family: str):
    from fpdf.fonts import FontFace

    return FontFace(family=family, emphasis="BOLD", fill_color=(225, 225, 225))  # grey: colour is for charts


def render_pdf(summary: Mapping, charts: Mapping[str, Path], path: Path) -> Path:
    import logging

    from fpdf import FPDF

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # font subsetting chatter

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title("csadetect transparency report")
    pdf.set_creator("csadetect transparency")
    family = _pdf_fonts(pdf)
    pdf.add_page()
    pdf.set_font(family, "B", 18)
    pdf.cell(0, 10, "Transparency report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 10)
    for line in (f"Period: {period_text(summary)}", f"Generated at: {summary['generated_at']}", NEVER_CONTAINS):
        pdf.multi_cell(0, 5.5, _pdf_text(line, family), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for table in tables(summary):
        _pdf_table(pdf, table, family)
    pdf.add_page()
    pdf.set_font(family, "B", 14)
    pdf.cell(0, 9, "Charts", new_x="LMARGIN", new_y="NEXT")
    width = min(pdf.epw, 165.0)
    for name, png in charts.items():
        _ensure_space(pdf, width * 3.4 / 7.0)
        pdf.image(str(png), x=pdf.l_margin + (pdf.epw - width) / 2, w=width)
        pdf.ln(2)
    pdf.output(str(path))
    return path


# ---------------------------------------------------------------------------------------- render


def render(summary: Mapping, out_dir, quiet: bool = True) -> dict:
    """Write the charts, ``transparency.html``, ``transparency.pdf`` and ``summary.json`` under
    ``out_dir``; returns their paths as strings: ``html``, ``pdf``, ``json`` and ``charts`` (by name)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _say("drawing charts", quiet)
    charts = write_charts(summary, out)
    _say("writing HTML", quiet)
    html_path = out / "transparency.html"
    html_path.write_text(render_html(summary, charts), encoding="utf-8")
    _say("writing PDF", quiet)
    pdf_path = render_pdf(summary, charts, out / "transparency.pdf")
    json_path = out / "summary.json"
    json_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return {"html": str(html_path), "pdf": str(pdf_path), "json": str(json_path),
            "charts": {name: str(p) for name, p in charts.items()}}


# ------------------------------------------------------------------------------------------- CLI


_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def parse_bound(value: str, name: str, inclusive_date_end: bool = False) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC; for ``--to`` the next midnight, so the day is included) or
    RFC 3339 (used as given). Raises TransparencyError with a one-line reason."""
    text = (value or "").strip()
    if len(text) == 10 and text[4:5] == "-" and text[7:8] == "-":
        try:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            raise TransparencyError(f"{name}: not a valid date: {value!r} (use YYYY-MM-DD or RFC 3339)") from None
        return day + timedelta(days=1) if inclusive_date_end else day
    if not _RFC3339_START.match(text):
        raise TransparencyError(f"{name}: not a date or time: {value!r} (use YYYY-MM-DD or RFC 3339)")
    try:
        return parse_time(text)
    except ValueError:
        raise TransparencyError(f"{name}: not a valid RFC 3339 time: {value!r}") from None


def _resolve_sources(args) -> Sources:
    given = (args.stats_dir, args.feedback_dir, args.complaints_dir)
    if all(given):
        return Sources(*given)
    from csadetect.config.settings import load_settings

    defaults = sources_from(load_settings(getattr(args, "config", None)))
    return Sources(args.stats_dir or defaults.stats_dir, args.feedback_dir or defaults.feedback_dir,
                   args.complaints_dir or defaults.complaints_dir)


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
            _say(f"{name}: {note}", args.quiet)
    print(json.dumps({**paths, "period": summary["period"], "headline": summary["headline"]}), flush=True)
    _say(f"wrote {paths['html']}, {paths['pdf']}, {paths['json']}", args.quiet)
    return 0


def _cmd_transparency(args) -> int:
    from csadetect.config.settings import ConfigError

    try:
        return _run(args)
    except (TransparencyError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or 'output'}: {exc.strerror or exc}", file=sys.stderr)
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
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_cmd_transparency)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="csadetect")
    parser.add_argument("--config", default=None)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
