"""Names shared by the robustness benchmark's measuring (``benchmarks.bench_robustness``) and its
report (``benchmarks.robustness_report``, ``benchmarks.robustness_embedding``): the score keys of
every query, the hard-distractor kinds, the composite edits, the grids of the crops of other areas, of
strips, turns and boxes, and the percentage format of the report's cells. Kept apart so that both sides import them without
importing each other; ``bench_robustness`` re-exports every name.
"""
from __future__ import annotations


KEYS = ("plain", "pre", "emb", "comb", "pre2", "emb2", "comb2")
HARD_KINDS = ("burst", "stereo", "studio", "template")
COMPOSITES = ("pip_60", "pip_40", "collage_1x2", "collage_2x2", "collage_3", "meme_frame")

# Crops keeping these shares of the area at each corner and the centre, beside the edits' 60% and 75%:
# areas between and around the region rows' (60%, 78%), none of them on the 0.025 grid the query-side
# region views were chosen on (the development split, csadetect/models/cards/embedding.md).
SWEEP_AREAS = (0.62, 0.65, 0.67, 0.70, 0.72, 0.77, 0.80, 0.82, 0.85, 0.87, 0.90, 0.92, 0.95, 0.97)
SWEEP_PLACES = ("tl", "tr", "bl", "br", "c")
# Strips (2026-12-05): one side cut off, these shares of that side kept, the other dimension whole. The
# strip rows and views were chosen on the development split with shares drawn at random from 60-98%.
STRIP_SWEEP_SHARES = (0.63, 0.67, 0.71, 0.75, 0.79, 0.83, 0.87, 0.91, 0.95, 0.97)
STRIP_SWEEP_SIDES = ("t", "b", "l", "r")
# The turn sweep (2026-12-05, second stop): turned by each whole degree from 3 to 11, counter-clockwise (+)
# and clockwise (-), cut back to an upright rectangle; the turned rows were chosen on the development split's
# copies at these angles (csadetect/models/cards/embedding.md, twelfth round)
TURN_SWEEP_DEGREES = (3, 4, 5, 6, 7, 8, 9, 10, 11)
TURN_SWEEP_WAYS = ("+", "-")
# The box sweep (2026-12-05, third stop): corner crops of another aspect, keeping these shares of the
# (width, height), 61-74% of the area; the box rows (70% x 86%, 86% x 70%) were chosen on the development
# split's corner crops with shares drawn as ``training.robustness_unseen.aspect_crop`` draws them
BOX_SWEEP_SHAPES = ((0.72, 0.90), (0.75, 0.82), (0.78, 0.95), (0.82, 0.75), (0.90, 0.72), (0.95, 0.78))
BOX_SWEEP_CORNERS = ("tl", "tr", "bl", "br")


def _pct(k: int, n: int) -> str:
    return f"{k / n:.0%} ({k}/{n})" if n else "-"
