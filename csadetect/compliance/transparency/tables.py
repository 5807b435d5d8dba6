"""The transparency report's tables: the summary's numbers as formatted cells, the single source
of truth for both the HTML and the PDF (:mod:`.documents`)."""
from __future__ import annotations

from typing import Mapping, Sequence

from csadetect.compliance.transparency.summary import DECISIONS, OTHER, OUTCOMES, whole


def fmt_count(value) -> str:
    if value is None:
        return "-"
    return str(whole(value)) if isinstance(value, (int, float)) else str(value)


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


def period_text(summary: Mapping) -> str:
    p = summary["period"]
    return f"{p['from']} (inclusive) to {p['to']} (exclusive), UTC"


NEVER_CONTAINS = ("This report holds counts only. It never contains report ids, event ids, conversation ids, "
                  "complaint ids, accounts, user or reviewer names, hashes, scores of single items, content or "
                  "free text from complaints or verdicts (Art. 83(4): no personal data).")
