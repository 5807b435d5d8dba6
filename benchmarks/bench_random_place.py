"""Crops at a random place, with and without the query-side grids (issue 17, eighteenth round).

The robustness benchmark's random-place crops (``crop75_rand``: 75% of the area anywhere) fall between the
five places (corners, centre) where the query-side region views are cut. ``match.embedding_query_grid_shares``
(off by default) also cuts the 80% and 86% views on a grid (5 x 5 and 4 x 4 places: 32 more model inputs).
This report measures both side by side, with the embedding alone (this release's model, rows and views, at
its threshold), on each split of the robustness benchmark (held-out test split, 42 originals; development
split, 36):

* ``crop75_rand``: one copy of each original, drawn as the robustness benchmark draws that edit but with this
  report's own seeds, saved as JPEG q85;
* a random-place sweep: three copies of each original, each keeping a share of the area drawn from 62% to 92%
  at a place drawn over the free space (JPEG q85);
* the distractors (ordinary and hard) that reach the threshold against any original.

Each copy is embedded once with the grids; "off" drops the grid views' vectors (the other views are the same
names and inputs, so this is the default's lookup). The grids were chosen on the development split; the
held-out split was first run once by a probe (the same draws) after a rule was fixed (see
``csadetect/models/cards/embedding-history.md``, "Crops at a random place"), which kept the grids off.

    python -m benchmarks.bench_random_place        # ~10 min on 2 cores; writes benchmarks/random-place.md
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_combos import chain
from benchmarks.bench_robustness import Embedder
from csadetect.config.settings import MatchSettings
from csadetect.media.hashing import hash_image_with_views
from csadetect.media.regions import views_and_sub_images
from csadetect.signals.embedding import parse_region_suffix, query_regions, view_weights
from training import robustness_set as rs
from training.evaluate_images import embed_query, original_sims

OUT = Path(__file__).resolve().parent / "random-place.md"
SPLITS = ("test", "dev")
GRID_SHARES = (0.80, 0.86)
SWEEP_COPIES = 3
SWEEP_AREAS = (0.62, 0.92)


def random_place_crop(img, rng: np.random.Generator):
    """A crop of PIL ``img`` keeping a share of its area drawn from :data:`SWEEP_AREAS` (each side scaled by its
    square root) at a place drawn over the free space; returns (the crop, the share kept)."""
    area = float(rng.uniform(*SWEEP_AREAS))
    side = math.sqrt(area)
    w, h = img.size
    cw, ch = round(w * side), round(h * side)
    x, y = round(rng.uniform() * (w - cw)), round(rng.uniform() * (h - ch))
    return img.crop((x, y, x + cw, y + ch)), area


def _is_grid_view(name: str) -> bool:
    try:
        return parse_region_suffix(name)[1].startswith("g")
    except ValueError:  # not a region view
        return False


def grid_mask(names) -> np.ndarray:
    """Which of a query's vector names are grid views (``image-a80g512`` ...: a region view at a grid place,
    ``csadetect.media.crops.grid_places``)."""
    return np.array([_is_grid_view(n) for n in names], dtype=bool)


def evaluate(split: str, embedder: Embedder, log=print, limit: "int | None" = None) -> dict:
    """``{"crop75_rand": [n, off, grids], "sweep": [n, off, grids], "distractors": {kind: [n, off, grids]},
    "false_pairs": [off, grids]}`` for ``split`` (``limit``: the first originals and distractors only)."""
    t0 = time.perf_counter()
    regions = query_regions(embedder.match.model_copy(update={"embedding_query_grid_shares": GRID_SHARES}))
    originals = rs.build_originals(split)[:limit]
    rows = np.stack([embedder.original(rs.encode(img, "png"))[1] for _, img in originals])
    threshold = embedder.threshold

    def sims(data: bytes) -> tuple[np.ndarray, np.ndarray]:
        _, pictures = hash_image_with_views(data, preprocess=views_and_sub_images, value=True)
        vectors, names = embed_query(embedder.model, pictures, embedder.flip, regions, rows, threshold,
                                     turns=embedder.match.embedding_query_turns,
                                     turn_gate=embedder.match.embedding_query_turn_gate)
        weights, grid = view_weights(names), grid_mask(names)
        return original_sims(vectors[~grid], rows, weights[~grid]), original_sims(vectors, rows, weights)

    out = {"crop75_rand": [0, 0, 0], "sweep": [0, 0, 0], "distractors": {}, "false_pairs": [0, 0]}
    edit = chain(("crop75_rand",))
    for i, (oname, img) in enumerate(originals):
        copies = [edit(img, np.random.default_rng(rs.split_seed(split, "probe", "crop75_rand", oname)))]
        rng = np.random.default_rng(rs.split_seed(split, "randplace", oname))
        copies += [random_place_crop(img, rng)[0] for _ in range(SWEEP_COPIES)]
        for k, copy in enumerate(copies):
            cell = out["crop75_rand" if k == 0 else "sweep"]
            cell[0] += 1
            for j, s in enumerate(sims(rs.encode(copy, "jpeg"))):
                cell[1 + j] += int(s[i] >= threshold)
                out["false_pairs"][j] += int((np.delete(s, i) >= threshold).any())
    distractors = [("ordinary", d) for _, d in rs.build_distractors(split)[:limit]]
    distractors += [(kind, d) for kind, _, d in rs.build_hard_distractors(split, originals)]
    for kind, data in distractors:
        cell = out["distractors"].setdefault(kind, [0, 0, 0])
        cell[0] += 1
        for j, s in enumerate(sims(data)):
            cell[1 + j] += int(s.max() >= threshold)
    log(f"[random place] {split}: {len(originals)} originals, {len(distractors)} distractors in "
        f"{time.perf_counter() - t0:.0f}s")
    return out


def render(results: dict, threshold: float) -> str:
    """The report: one table, a column pair per split."""
    splits = [s for s in SPLITS if s in results]

    def cell(c: list) -> str:
        return f"{c[1]}/{c[0]} ({100 * c[1] / max(c[0], 1):.0f}%) | {c[2]}/{c[0]} ({100 * c[2] / max(c[0], 1):.0f}%)"

    head = " | ".join(f"{s}: off | {s}: grids" for s in splits)
    lines = ["## Crops at a random place: the query-side grids (issue 17)", "",
             f"Generated by `python -m benchmarks.bench_random_place`; embedding alone, threshold {threshold:.4f}; "
             f"grids: `match.embedding_query_grid_shares: [{', '.join(f'{q:.2f}' for q in GRID_SHARES)}]` (off by "
             "default). See the module "
             "docstring for the draws and how held out each split is.", "",
             f"| copies / distractors | {head} |", "|---|" + "---:|---:|" * len(splits)]
    lines.append("| `crop75_rand` found | " + " | ".join(cell(results[s]["crop75_rand"]) for s in splits) + " |")
    lines.append(f"| {SWEEP_COPIES} crops a picture keeping {SWEEP_AREAS[0]:.0%}-{SWEEP_AREAS[1]:.0%} at a random "
                 "place, found | " + " | ".join(cell(results[s]["sweep"]) for s in splits) + " |")
    lines.append("| copies meeting another original | " + " | ".join(
        f"{results[s]['false_pairs'][0]} | {results[s]['false_pairs'][1]}" for s in splits) + " |")
    kinds = sorted({k for s in splits for k in results[s]["distractors"]})
    for kind in kinds:
        lines.append(f"| distractors over the threshold: {kind} | " + " | ".join(
            cell(results[s]["distractors"].get(kind, [0, 0, 0])) for s in splits) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--split", choices=SPLITS + ("both",), default="both")
    args = ap.parse_args(argv)
    embedder = Embedder()
    splits = SPLITS if args.split == "both" else (args.split,)
    results = {split: evaluate(split, embedder) for split in splits}
    text = render(results, embedder.threshold)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
