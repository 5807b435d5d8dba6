"""The video benchmark's report (``benchmarks/video_report.py``): the letterbox table sums the
time-shifted edits apart from the others, and the excerpt table counts what each indicator found."""
from __future__ import annotations

from benchmarks.video_report import render_bars, render_excerpts


def _row(edit, indicators, rule, found):
    return {"edit": edit, "indicators": indicators, "rule": rule, "found": [found, 6], "false": [0, 42], "bars": 6,
            "overlays": 0, "true_shares": [(1.0, 0.1)] * 6, "false_max": [0.0, 0.0]}


def test_time_shifted_edits_are_summed_apart():
    rows = [_row(edit, ind, "now", found)
            for edit in ("pad 4:3, black", "SD re-encode, first 0.5 s cut")
            for ind, found in (("from-media, 1 s (before)", 0 if "cut" in edit else 6),
                               ("from-media, every frame (default)", 6))]
    text = "\n".join(render_bars({"sources": 6, "indicators": 8, "rows": rows,
                                  "shifted": ["SD re-encode, first 0.5 s cut"]}))
    assert "| **all edits** (now) | from-media, 1 s (before) | 6/6 found | 0/42 false |" in text
    assert "| **time-shifted** (now) | from-media, 1 s (before) | 0/6 found | 0/42 false |" in text
    assert "| **time-shifted** (now) | from-media, every frame (default) | 6/6 found |" in text


def test_the_excerpt_table_counts_each_indicator():
    rows = [{"start": 1.0, "seconds": s, "1 s": {"found": False, "shares": (0.0, 0.0)},
             "every frame": {"found": s > 3, "shares": (1.0, 0.004 * s)}} for s in (3, 10)]
    lines = render_excerpts({"seconds": 82.1, "indicator_frames": {"1 s": 81, "every frame": 2402}, "rows": rows})
    assert "| 1.0 s + 3 s | no | 0.00 / 0.000 | no | 1.00 / 0.012 |" in lines
    assert "| 1.0 s + 10 s | no | 0.00 / 0.000 | yes | 1.00 / 0.040 |" in lines
    assert lines[-1] == "| **found** | 0/2 | | 1/2 | |"
    assert render_excerpts(None) == []
