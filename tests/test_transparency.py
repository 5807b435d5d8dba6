"""`csadetect transparency`: id-free aggregation, period filter, HTML/PDF/JSON rendering, CLI."""
from __future__ import annotations

import argparse
import base64
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from csadetect.config.settings import load_settings
from csadetect.core.stats import stat, write_stats
from csadetect.cli.transparency import parse_bound, register
from csadetect.compliance.complaints import counts
from csadetect.compliance.transparency import TransparencyError, collect, render
from csadetect.compliance.transparency.charts import CHARTS
from csadetect.compliance.transparency.summary import review_time_summary
from csadetect.compliance.transparency.tables import fmt_duration, fmt_pct
from csadetect.tuning.tune import wilson

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
END = datetime(2026, 7, 1, tzinfo=timezone.utc)  # the CLI's --to 2026-06-30 (inclusive)

# Distinctive personal data planted in every input; none may reach any output.
PLANTED = {
    "report_id": "RID-PLANTED-7Q3Z",
    "account": "acct-planted-zoe@example.org",
    "event_id": "EVT-PLANTED-9X2W",
    "conversation_id": "CONV-PLANTED-4K8M",
    "complaint_id": "CMP-PLANTED-5J1H",
    "reviewer": "reviewer-planted-bob",
    "provider_id": "provider-planted-acme",
}


def planted(n: int = 0) -> dict:
    return {k: f"{v}-{n}" for k, v in PLANTED.items()}


def planted_tokens() -> list[str]:
    return list(PLANTED.values())


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


# ------------------------------------------------------------------------------ synthetic stores


def stats_records() -> list[dict]:
    inside, later = "2026-02-01T10:00:00Z", "2026-03-15T08:30:00Z"
    s = [
        stat("scanned", 100, inside, kind="image"),
        stat("scanned", 50, later, kind="image"),
        stat("scanned", 30, "2026-06-30T23:59:59Z", kind="text"),  # last second of the period
        stat("scanned", 7, START, kind="video"),  # first second of the period
        stat("not_covered", 5, inside, kind="image"),
        stat("dead_lettered", 3, inside),
        stat("hit", 12, inside, kind="image", detector="known-hash"),
        stat("hit", 4, inside, kind="image", detector="new-material-classifier"),
        stat("hit", 2, inside, kind="text", detector="grooming-text"),
        stat("reported", 10, inside, detector="known-hash", detector_version="2026.1"),
        stat("reported", 3, inside, detector="new-material-classifier", detector_version="m1"),
        stat("review_queued", 4, inside, detector="new-material-classifier"),
        stat("review_queued", 2, inside, detector="grooming-text"),
        stat("review_decided", 3, inside, detector="new-material-classifier", decision="confirmed"),
        stat("review_decided", 1, inside, detector="new-material-classifier", decision="rejected"),
        stat("review_decided", 1, inside, detector="grooming-text", decision="confirmed"),
        stat("review_decided", 1, inside, detector="grooming-text", decision="expired"),
        stat("deleted", 2, inside, store="reports"),
        stat("deleted", 1, inside, store="review"),
        stat("deleted", 2, later, store="evidence"),
    ]
    for secs, decision in ((600, "confirmed"), (1200, "confirmed"), (3600, "confirmed"), (300, "rejected")):
        s.append(stat("review_seconds", secs, later, detector="new-material-classifier", decision=decision))
    s.append(stat("review_seconds", 7200, later, detector="grooming-text", decision="confirmed"))
    s.append(stat("review_seconds", 14 * 86400, later, detector="grooming-text", decision="expired"))  # not timed
    # outside [START, END): must all be ignored
    for at in ("2025-12-31T23:59:59Z", "2026-07-01T00:00:00Z", "2027-03-01T00:00:00Z"):
        s += [stat("scanned", 1000, at, kind="image"), stat("hit", 1000, at, kind="image", detector="known-hash"),
              stat("review_seconds", 99999, at, detector="new-material-classifier", decision="confirmed"),
              stat("deleted", 1000, at, store="reports"), stat("dead_lettered", 1000, at)]
    return s


def build_stores(root: Path) -> dict:
    stats_dir, feedback_dir, complaints_dir = root / "stats", root / "feedback", root / "complaints"
    write_stats(str(stats_dir), stats_records())
    # a record written around the validator, carrying ids where none belong, and a broken line
    p = planted(1)
    write_jsonl(stats_dir / "stats-planted.jsonl", [
        {"at": "2026-02-02T00:00:00Z", "metric": "scanned", "value": 1,
         "labels": {"kind": "image", "account": p["account"], "report_id": p["report_id"]},
         "report_id": p["report_id"], "event_id": p["event_id"], "account": p["account"]},
        "{not json " + p["conversation_id"],
    ])

    examples = []
    for i in range(9):
        examples.append(("known-hash", "2026.1", "known", "confirmed", f"2026-0{1 + i % 6}-10T12:00:00Z"))
    examples.append(("known-hash", "2026.1", "known", "manifestly_unfounded", "2026-04-01T00:00:00Z"))
    examples += [("new-material-classifier", "m1", "new", lab, "2026-05-05T05:05:05Z")
                 for lab in ("confirmed", "confirmed", "manifestly_unfounded", "manifestly_unfounded")]
    examples += [("known-hash", "2026.1", "known", "manifestly_unfounded", "2025-12-01T00:00:00Z")] * 5  # before
    examples += [("grooming-text", "g1", "grooming", "confirmed", "2026-07-01T00:00:00Z")] * 3  # at the end: out
    rows = []
    for n, (det, ver, dtype, label, at) in enumerate(examples):
        p = planted(n)
        rows.append({"detector": det, "detector_version": ver, "detection_type": dtype, "score": 0.9,
                     "distance": 3.0, "threshold": 0.5, "label": label, "decided_at": at,
                     "reason": f"Centre note about report {p['report_id']} from {p['account']}",
                     **p})
    write_jsonl(feedback_dir / "examples-000.jsonl", rows[:7])
    write_jsonl(feedback_dir / "examples-001.jsonl", rows[7:])
    write_jsonl(feedback_dir / "precision-000.jsonl", [
        {"at": "2026-05-01T00:00:00Z", "detector": "known-hash", "detector_version": "2026.1", "verdicts": 999,
         "confirmed": 999, "manifestly_unfounded": 0, "precision": 1.0, **planted(99)}])

    def received(cid, at, grounds=f"my account {PLANTED['account']} was wrongly reported"):
        return {"complaint_id": cid, "event": "received", "at": at, "report_id": PLANTED["report_id"],
                "channel": "web form", "grounds": grounds}

    def outcome(cid, at, what):
        return {"complaint_id": cid, "event": "outcome", "at": at, "outcome": what,
                "note": f"{PLANTED['reviewer']} looked at {PLANTED['conversation_id']}"}

    c = [f"{PLANTED['complaint_id']}-{i}" for i in range(7)]
    write_jsonl(complaints_dir / "complaints.jsonl", [
        received(c[1], "2026-02-01T00:00:00Z", "wrongly_detected"), outcome(c[1], "2026-02-10T00:00:00Z", "upheld"),
        outcome(c[1], "2026-02-11T00:00:00Z", "rejected"),  # the first outcome is final: ignored
        received(c[2], "2026-03-01T00:00:00Z", "account_action"),
        outcome(c[2], "2026-08-01T00:00:00Z", "rejected"),  # open at the end
        received(c[3], "2026-05-01T00:00:00Z"),  # open
        received(c[4], "2025-11-01T00:00:00Z"), outcome(c[4], "2026-01-15T00:00:00Z", "withdrawn"),
        received(c[5], "2025-10-01T00:00:00Z"),  # backlog: open at the end
        received(c[6], "2026-08-01T00:00:00Z"),  # after the period
        received(c[0], "2025-09-01T00:00:00Z"), outcome(c[0], "2025-09-20T00:00:00Z", "rejected"),  # long closed
        "{damaged line " + PLANTED["complaint_id"],
    ])
    # stores collect() must never read (they hold ids): plant anyway, next to the others
    write_jsonl(root / "retention" / "deletions.jsonl", [{"at": "2026-02-01T00:00:00Z", "store": "reports",
                                                          "id": PLANTED["report_id"]}])
    return {"stats_dir": str(stats_dir), "feedback_dir": str(feedback_dir), "complaints_dir": str(complaints_dir)}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return build_stores(tmp_path_factory.mktemp("stores"))


@pytest.fixture(scope="module")
def summary(stores):
    return collect(stores, START, END)


@pytest.fixture(scope="module")
def rendered(summary, tmp_path_factory):
    return render(summary, tmp_path_factory.mktemp("report"))


# ---------------------------------------------------------------------------------- the numbers


def test_stats_counts(summary):
    assert summary["scanned"] == {"image": 151, "text": 30, "video": 7}
    assert summary["not_covered"] == {"image": 5}
    assert summary["dead_lettered"] == 3
    assert summary["hit"] == {"grooming-text": 2, "known-hash": 12, "new-material-classifier": 4}
    assert summary["reported"] == {"known-hash": 10, "new-material-classifier": 3}
    assert summary["review_queued"] == {"grooming-text": 2, "new-material-classifier": 4}
    assert summary["review_decided"] == {
        "grooming-text": {"confirmed": 1, "rejected": 0, "expired": 1},
        "new-material-classifier": {"confirmed": 3, "rejected": 1, "expired": 0},
    }
    assert summary["deleted"] == {"evidence": 2, "reports": 2, "review": 1}
    h = summary["headline"]
    assert (h["scanned"], h["hits"], h["reported"], h["deleted"], h["review_decided"]) == (188, 18, 13, 5, 6)


def test_review_times(summary):
    # 300, 600, 1200, 3600: median (600 + 1200) / 2, nearest-rank p90 = 4th value; expiries not timed
    assert summary["review_seconds"] == {
        "new-material-classifier": {"n": 4, "median": 900, "p90": 3600, "max": 3600},
        "grooming-text": {"n": 1, "median": 7200, "p90": 7200, "max": 7200},
    }


def test_review_time_summary_edges():
    assert review_time_summary([]) == {"n": 0, "median": None, "p90": None, "max": None}
    assert review_time_summary([5, 1, 3]) == {"n": 3, "median": 3, "p90": 5, "max": 5}
    assert review_time_summary(list(range(1, 11)))["p90"] == 9
    assert review_time_summary([1.5, 2.0])["median"] == 1.75


def test_centre_verdicts_and_precision(summary):
    rows = {(r["detector"], r["detector_version"]): r for r in summary["verdicts"]["by_detector_version"]}
    assert set(rows) == {("known-hash", "2026.1"), ("new-material-classifier", "m1")}
    kh = rows[("known-hash", "2026.1")]
    assert (kh["verdicts"], kh["confirmed"], kh["manifestly_unfounded"]) == (10, 9, 1)
    assert kh["precision"] == 0.9 and kh["error_rate"] == pytest.approx(0.1)
    assert (kh["precision_low"], kh["precision_high"]) == wilson(9, 10)
    nm = rows[("new-material-classifier", "m1")]
    assert (nm["precision"], nm["error_rate"]) == (0.5, 0.5)
    assert (nm["precision_low"], nm["precision_high"]) == wilson(2, 4)
    total = summary["verdicts"]["total"]
    assert (total["verdicts"], total["confirmed"], total["manifestly_unfounded"]) == (14, 11, 3)
    assert total["precision"] == 11 / 14 and total["error_rate"] == 3 / 14
    assert (total["precision_low"], total["precision_high"]) == wilson(11, 14)
    assert summary["headline"]["precision"] == 11 / 14


def test_complaints(summary, stores):
    assert summary["complaints"] == {
        "received": 3, "upheld": 1, "rejected": 0, "withdrawn": 1, "open": 3,
        "grounds": {"wrongly_detected": 1, "account_action": 1, "content_removed": 0, "other": 0},
        "median_days_to_outcome": 42.0,  # 9 days (upheld) and 75 days (withdrawn)
    }
    assert summary["headline"]["complaints_received"] == 3
    same = counts(stores["complaints_dir"], START, END)  # the complaints command counts the same way
    assert (same["received"], same["outcomes"], same["open"]) == (3, {"upheld": 1, "rejected": 0, "withdrawn": 1}, 3)


def test_sources_and_skipped_lines(summary):
    src = summary["sources"]
    assert src["stats"]["state"] == "ok" and src["stats"]["files"] == 2 and src["stats"]["skipped_lines"] == 1
    assert src["verdicts"]["files"] == 2  # examples only, never precision-*.jsonl
    assert src["verdicts"]["records"] == 14
    assert src["complaints"]["state"] == "ok" and src["complaints"]["skipped_lines"] == 1


def test_verdicts_count_one_per_report_across_feedback_runs(tmp_path):
    """Every feedback run writes its own <out_dir>/<RUN_ID>/: a rerun over the same verdicts writes the
    same examples again, and a revised decision adds one; the report counts once, its latest decision."""
    def example(eid, label, at, detector="known-hash"):
        return {"detector": detector, "detector_version": "v1", "detection_type": "known", "score": None,
                "distance": 2.0, "threshold": 31, "label": label, "reason": None, "decided_at": at,
                **({"example_id": eid} if eid else {})}

    feedback = tmp_path / "feedback"
    first = [example("e1", "confirmed", "2026-02-01T00:00:00Z"),
             example("e2", "manifestly_unfounded", "2026-02-02T00:00:00Z")]
    write_jsonl(feedback / "20260301T000000Z-aaaaaa" / "examples-known-00000-of-00001.jsonl", first)
    write_jsonl(feedback / "20260401T000000Z-bbbbbb" / "examples-known-00000-of-00001.jsonl",  # a rerun, e2 revised
                [first[0], example("e2", "confirmed", "2026-03-15T00:00:00Z")])
    write_jsonl(feedback / "examples-known-old.jsonl",  # written before examples had a key: each counts
                [example(None, "manifestly_unfounded", "2026-02-03T00:00:00Z")] * 2)
    summary = collect({"feedback_dir": str(feedback)}, START, END)
    assert summary["sources"]["verdicts"]["files"] == 3 and summary["sources"]["verdicts"]["records"] == 6
    total = summary["verdicts"]["total"]
    assert (total["verdicts"], total["confirmed"], total["manifestly_unfounded"]) == (4, 2, 2)
    # a period that ends before the revision counts the decision made in it
    march = datetime(2026, 3, 1, tzinfo=timezone.utc)
    early = collect({"feedback_dir": str(feedback)}, START, march)["verdicts"]["total"]
    assert (early["verdicts"], early["confirmed"], early["manifestly_unfounded"]) == (4, 1, 3)


def test_period_filter_is_half_open(stores):
    just_before = collect(stores, START, datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone.utc))
    assert just_before["scanned"].get("text", 0) == 0  # the record at 23:59:59 is the end: excluded
    from_end = collect(stores, END, datetime(2026, 7, 2, tzinfo=timezone.utc))
    assert from_end["scanned"] == {"image": 1000} and from_end["hit"] == {"known-hash": 1000}
    assert from_end["verdicts"]["total"]["confirmed"] == 3  # grooming-text at exactly END
    assert from_end["review_seconds"]["new-material-classifier"]["median"] == 99999
    later = collect(stores, datetime(2026, 3, 1, tzinfo=timezone.utc), END)
    assert later["scanned"] == {"image": 50, "text": 30}
    assert later["complaints"]["received"] == 2 and later["complaints"]["upheld"] == 0


def test_collect_accepts_settings(stores):
    settings = load_settings(overrides={"stores": {"stats_dir": stores["stats_dir"],
                                                   "complaints_dir": stores["complaints_dir"]},
                                        "feedback": {"out_dir": stores["feedback_dir"]}})
    assert collect(settings, START, END)["headline"]["scanned"] == 188


def test_naive_datetimes_are_utc_and_empty_period_rejected(stores):
    assert collect(stores, START.replace(tzinfo=None), END.replace(tzinfo=None))["headline"]["scanned"] == 188
    with pytest.raises(TransparencyError, match="period is empty"):
        collect(stores, END, START)


# -------------------------------------------------------------------------------- missing stores


def test_missing_stores_count_as_zero_and_say_no_data(tmp_path):
    summary = collect({"stats_dir": str(tmp_path / "nope"), "feedback_dir": None,
                       "complaints_dir": str(tmp_path / "also-nope")}, START, END)
    assert summary["sources"]["stats"]["state"] == "missing"
    assert summary["sources"]["verdicts"]["state"] == "not configured"
    assert summary["headline"]["scanned"] == 0 and summary["headline"]["precision"] is None
    assert {k: summary["complaints"][k] for k in ("received", "upheld", "rejected", "withdrawn", "open")} == \
        {"received": 0, "upheld": 0, "rejected": 0, "withdrawn": 0, "open": 0}
    assert summary["sources"]["complaints"]["state"] == "missing"
    paths = render(summary, tmp_path / "out")
    html = Path(paths["html"]).read_text(encoding="utf-8")
    assert "no data (store not found)" in html and "no data (store not configured)" in html
    for name, _ in CHARTS:
        assert Path(paths["charts"][name]).read_bytes().startswith(b"\x89PNG")
    assert "no data" in pdf_text(paths["pdf"])


def test_empty_store_says_no_data(tmp_path):
    (tmp_path / "stats").mkdir()
    summary = collect({"stats_dir": str(tmp_path / "stats"), "complaints_dir": str(tmp_path)}, START, END)
    assert summary["sources"]["stats"]["state"] == "empty"
    assert summary["sources"]["complaints"]["state"] == "empty"


def test_remote_complaints_dir_is_a_one_line_error():
    with pytest.raises(TransparencyError, match="not a local path"):
        collect({"complaints_dir": "gs://bucket/complaints"}, START, END)


# ---------------------------------------------------------------------------------------- output


def pdf_text(path) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(path))
    try:
        return "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    finally:
        doc.close()


def pdf_pages_as_png(path, out_dir: Path) -> list[tuple[Path, np.ndarray, str]]:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(path))
    pages = []
    try:
        for i in range(len(doc)):
            page = doc[i]
            image = page.render(scale=1.5).to_pil().convert("RGB")
            png = out_dir / f"page-{i + 1}.png"
            image.save(png)
            pages.append((png, np.asarray(image, dtype=np.float64), page.get_textpage().get_text_range()))
    finally:
        doc.close()
    return pages


def test_render_writes_every_file(rendered):
    for key in ("html", "pdf", "json"):
        assert Path(rendered[key]).is_file()
    assert set(rendered["charts"]) == {name for name, _ in CHARTS}
    for path in rendered["charts"].values():
        assert Path(path).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_html_is_self_contained_with_every_chart(rendered):
    html = Path(rendered["html"]).read_text(encoding="utf-8")
    assert html.count('<img src="data:image/png;base64,') == len(CHARTS)
    for path in rendered["charts"].values():
        encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        assert f'<img src="data:image/png;base64,{encoded}"' in html
    assert "90.0%" in html and "15 min 0 s" in html and "188" in html


def test_summary_json_round_trips(rendered, summary):
    assert json.loads(Path(rendered["json"]).read_text(encoding="utf-8")) == summary


def test_pdf_renders_to_png_with_content_and_coloured_charts(rendered, tmp_path):
    pages = pdf_pages_as_png(rendered["pdf"], tmp_path)
    assert len(pages) >= 1
    for png, pixels, _ in pages:
        assert png.is_file() and png.read_bytes().startswith(b"\x89PNG")
        assert pixels.var() > 100, f"{png.name} looks blank"
    chart_pages = [(png, px) for png, px, text in pages if "Charts" in text]
    assert chart_pages, "no chart page"
    _, pixels = chart_pages[0]
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 80).mean() > 0.01, "the chart page has no colour"
    # tables are greyscale: colour comes from the charts
    first = pages[0][1]
    assert (first.max(axis=2) - first.min(axis=2) > 80).mean() < 0.001


def test_pdf_text_has_headline_numbers(rendered, summary):
    text = pdf_text(rendered["pdf"])
    assert "Transparency report" in text
    assert "2026-01-01T00:00:00Z" in text and "2026-07-01T00:00:00Z" in text
    assert summary["generated_at"] in text
    for number in ("188", "18", "13", "151"):
        assert number in text
    assert fmt_pct(11 / 14) in text and "90.0%" in text and "50.0%" in text
    assert fmt_duration(900) == "15 min 0 s" and "15 min 0 s" in text and "2 h 0 min" in text


def test_no_personal_data_anywhere(rendered, stores, tmp_path, capsys):
    outputs = {
        "html": Path(rendered["html"]).read_text(encoding="utf-8"),
        "json": Path(rendered["json"]).read_text(encoding="utf-8"),
        "pdf": pdf_text(rendered["pdf"]),
    }
    rc, out, err = run_cli(["--from", "2026-01-01", "--to", "2026-06-30", "--out", str(tmp_path / "cli"),
                            *store_args(stores)], capsys)
    assert rc == 0
    outputs["stdout"], outputs["stderr"] = out, err
    outputs["cli html"] = Path(tmp_path / "cli" / "transparency.html").read_text(encoding="utf-8")
    for name, text in outputs.items():
        for token in planted_tokens():
            assert token not in text, f"{token} leaked into {name}"
        for fragment in ("PLANTED", "planted", "web form", "wrongly reported", "Centre note"):
            assert fragment not in text, f"{fragment!r} leaked into {name}"


def test_html_autoescapes(tmp_path):
    summary = collect({}, START, END)
    summary["hit"] = {"<script>alert(1)</script>": 1}
    html = Path(render(summary, tmp_path)["html"]).read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;" in html


# ------------------------------------------------------------------------------------------- CLI


def run_cli(argv, capsys, config=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=None)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([*(["--config", config] if config else []), "transparency", *argv])
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


def store_args(stores) -> list[str]:
    return ["--stats-dir", stores["stats_dir"], "--feedback-dir", stores["feedback_dir"],
            "--complaints-dir", stores["complaints_dir"]]


def test_cli_inclusive_to_date(stores, tmp_path, capsys):
    rc, out, err = run_cli(["--from", "2026-01-01", "--to", "2026-06-30", "--out", str(tmp_path),
                            *store_args(stores)], capsys)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["period"] == {"from": "2026-01-01T00:00:00Z", "to": "2026-07-01T00:00:00Z", "to_exclusive": True}
    assert result["headline"]["scanned"] == 188 and result["headline"]["precision"] == 11 / 14
    for key in ("html", "pdf", "json"):
        assert Path(result[key]).is_file()
    assert set(result["charts"]) == {name for name, _ in CHARTS}
    assert "transparency:" in err  # progress goes to stderr


def test_cli_rfc3339_to_is_exclusive(stores, tmp_path, capsys):
    rc, out, _ = run_cli(["--from", "2026-01-01T00:00:00Z", "--to", "2026-06-30T23:59:59Z", "--out", str(tmp_path),
                          "--quiet", *store_args(stores)], capsys)
    assert rc == 0
    assert json.loads(out)["headline"]["scanned"] == 158  # the text record at 23:59:59 is excluded


def test_cli_defaults_from_config(stores, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"stores": {"stats_dir": stores["stats_dir"],
                                             "complaints_dir": stores["complaints_dir"]},
                                  "feedback": {"out_dir": stores["feedback_dir"]}}), encoding="utf-8")
    rc, out, err = run_cli(["--from", "2026-01-01", "--to", "2026-06-30", "--out", str(tmp_path / "o"), "--quiet"],
                           capsys, config=str(config))
    assert rc == 0, err
    assert json.loads(out)["headline"]["complaints_received"] == 3


@pytest.mark.parametrize("argv, message", [
    (["--from", "2026-13-01", "--to", "2026-06-30"], "--from: not a valid date"),
    (["--from", "yesterday", "--to", "2026-06-30"], "--from: not a date or time"),
    (["--from", "2026-01-01", "--to", "2026-06-30T25:00:00Z"], "--to: not a valid RFC 3339 time"),
    (["--from", "2026-07-01", "--to", "2026-06-30"], "must be before"),
    (["--from", "2026-06-30T12:00:00Z", "--to", "2026-06-30T12:00:00Z"], "must be before"),
])
def test_cli_bad_dates(argv, message, tmp_path, capsys):
    rc, out, err = run_cli([*argv, "--out", str(tmp_path / "o"), "--stats-dir", str(tmp_path)], capsys)
    assert rc == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_bad_config_is_one_line(tmp_path, capsys):
    rc, _, err = run_cli(["--from", "2026-01-01", "--to", "2026-06-30", "--out", str(tmp_path)], capsys,
                         config=str(tmp_path / "missing.yaml"))
    assert rc == 2 and err.startswith("error: config file not found") and len(err.strip().splitlines()) == 1


def test_parse_bound():
    assert parse_bound("2026-02-03", "--from") == datetime(2026, 2, 3, tzinfo=timezone.utc)
    assert parse_bound("2026-02-03", "--to", inclusive_date_end=True) == datetime(2026, 2, 4, tzinfo=timezone.utc)
    assert parse_bound("2026-02-03T10:00:00+02:00", "--to", True) == datetime(2026, 2, 3, 8, tzinfo=timezone.utc)
