"""The robustness benchmark's sweeps (``benchmarks.bench_robustness``, issue 17): every original of
a split cropped to a grid of shares at each place, matched by the embedding alone several ways side by
side. :func:`area_sweep`: corner and centre crops of ``SWEEP_AREAS`` of the area; :func:`strip_sweep`:
strips keeping ``STRIP_SWEEP_SHARES`` of a side; :func:`turn_sweep`: turns of ``TURN_SWEEP_DEGREES`` cut back
to an upright rectangle, with and without the turned index rows; :func:`box_sweep`: corner crops of
``BOX_SWEEP_SHAPES``, with and without the box rows. ``bench_robustness`` re-exports every name.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from benchmarks.robustness_common import (BOX_SWEEP_CORNERS, BOX_SWEEP_SHAPES, STRIP_SWEEP_SHARES, STRIP_SWEEP_SIDES,
                                          SWEEP_AREAS, SWEEP_PLACES, TURN_SWEEP_DEGREES, TURN_SWEEP_WAYS)
from csadetect.media.crops import box_crop, region_crop, turned_crop
from csadetect.media.hashing import hash_image_with_views
from csadetect.media.regions import views_and_sub_images
from csadetect.signals.embedding import (EMBEDDING_BOXES, EMBEDDING_TURNS, box_suffix, embedding_views, query_regions,
                                         turn_suffix)
from training.evaluate_images import original_sims
from training.robustness_set import _crop_area, encode

if TYPE_CHECKING:
    from benchmarks.bench_robustness import Embedder

__all__ = ["FIRST_QUERY_REGIONS", "area_sweep", "box_sweep", "strip_sweep", "turn_sweep"]

# issue 17's first query-side region views (80% of the area only, at each corner and the centre)
FIRST_QUERY_REGIONS = ((0.80, SWEEP_PLACES),)


def area_sweep(split: str, originals: list, emb2: np.ndarray, embedder: "Embedder", log=print,
               areas=SWEEP_AREAS, places=SWEEP_PLACES, ways: "dict | None" = None, crop=_crop_area,
               label: str = "area sweep", row_masks: "dict | None" = None) -> dict:
    """Corner and centre crops of every area in ``SWEEP_AREAS``, each original's, matched by the
    embedding alone (this release's model and index rows, at its threshold) three ways: without
    query-side region views, with issue 17's first ones (80% only) and with this release's
    (``QUERY_REGIONS``), both behind the configured region gate (``match.embedding_query_region_gate``). Returns ``{(area, place): [n, off, first, this]}`` and the largest
    similarity of a sweep copy to another original per way. ``areas``, ``places``, ``ways`` (name ->
    query regions, "off" first) and ``crop`` (``crop(area, place)(img, rng)``) make other sweeps
    (:func:`strip_sweep`); ``row_masks`` (way -> which of each original's rows it matches against, a boolean
    mask over ``emb2``'s second axis; all of them for a way not named) too (:func:`turn_sweep`)."""
    t0 = time.perf_counter()
    threshold = embedder.threshold
    if ways is None:
        ways = {"off": (), "first": FIRST_QUERY_REGIONS, "this": query_regions(embedder.match)}
    counts: dict = {}
    wrong_sim = dict.fromkeys(ways, -1.0)
    n_orig = len(originals)
    for o_index, (oname, img) in enumerate(originals):
        others = np.arange(n_orig) != o_index
        for area in areas:
            for place in places:
                data = encode(crop(area, place)(img, None), "jpeg")
                _, pictures = hash_image_with_views(data, preprocess=views_and_sub_images)
                row = counts.setdefault((area, place), [0] + [0] * len(ways))
                row[0] += 1
                own = None  # the image's own vectors' similarities, once a way without region views gave them
                for i, (way, regions) in enumerate(ways.items()):
                    rows = emb2 if (row_masks or {}).get(way) is None else emb2[:, row_masks[way]]
                    vectors, weights = embedder.query(pictures, regions=regions, rows=rows)
                    sims = original_sims(vectors, rows, weights)
                    if not regions:
                        own = sims  # "off" comes first: the image's own vectors, what the gate reads
                    elif embedder.gate is not None and own is not None and (
                            (own >= threshold).any() or own.max() < embedder.gate):
                        sims = own  # the gate skips the region views (MatchIndicators)
                    row[1 + i] += int(sims[o_index] >= threshold)
                    wrong_sim[way] = max(wrong_sim[way], float(sims[others].max()))
    log(f"[{split}] {label}: {len(areas) * len(places)} crops of each original "
        f"({time.perf_counter() - t0:.0f}s)")
    return {"counts": counts, "ways": tuple(ways), "closest_wrong": wrong_sim, "threshold": threshold}


def strip_sweep(split: str, originals: list, emb2: np.ndarray, embedder: "Embedder", log=print) -> dict:
    """Strips of every share in ``STRIP_SWEEP_SHARES`` along each side (one side cut off, the other
    dimension whole: :func:`csadetect.media.crops.region_crop`), each original's, matched by the
    embedding alone as :func:`area_sweep` matches: without query-side region views, with them but
    without the strips (``match.embedding_query_strip_shares: []``, the release before 2026-12-05)
    and with this release's. Returns what :func:`area_sweep` returns, keyed by (share, side)."""
    no_strips = embedder.match.model_copy(update={"embedding_query_strip_shares": ()})
    ways = {"off": (), "no strips": query_regions(no_strips), "this": query_regions(embedder.match)}
    return area_sweep(split, originals, emb2, embedder, log, areas=STRIP_SWEEP_SHARES, places=STRIP_SWEEP_SIDES,
                      ways=ways, crop=lambda share, side: lambda img, rng: region_crop(img, share, side),
                      label="strip sweep")


def turn_sweep(split: str, originals: list, emb2: np.ndarray, embedder: "Embedder", log=print) -> dict:
    """Each original turned by every angle of ``TURN_SWEEP_DEGREES`` either way (``TURN_SWEEP_WAYS``: ``+``
    counter-clockwise) and cut back to the largest upright rectangle of its aspect
    (:func:`csadetect.media.crops.turned_crop`, bicubic, as ``training.robustness_unseen.turn_crop``),
    matched by the embedding alone as :func:`area_sweep` matches, with this release's query-side region
    views: against the original's rows without the turned rows (``match.embedding_turn_rows: false``) and with
    them (the region gate not applied: no way without region views gives the own vectors it reads). Returns
    what :func:`area_sweep` returns, keyed by (degrees, way)."""
    turned = {turn_suffix(deg) for deg in EMBEDDING_TURNS}
    without = _rows_without(emb2, lambda name: name in turned)
    this = query_regions(embedder.match)
    return area_sweep(split, originals, emb2, embedder, log, areas=TURN_SWEEP_DEGREES, places=TURN_SWEEP_WAYS,
                      ways={"no turned rows": this, "this": this}, row_masks={"no turned rows": without},
                      crop=lambda deg, way: lambda img, rng: turned_crop(img, deg if way == "+" else -deg,
                                                                         Image.Resampling.BICUBIC),
                      label="turn sweep")


def box_sweep(split: str, originals: list, emb2: np.ndarray, embedder: "Embedder", log=print) -> dict:
    """Corner crops of each (width, height) share of ``BOX_SWEEP_SHAPES`` at each of ``BOX_SWEEP_CORNERS``
    (:func:`csadetect.media.crops.box_crop`), each original's, matched by the embedding alone as
    :func:`turn_sweep` matches: against the original's rows without the box rows
    (``match.embedding_box_rows: false``) and with them. Returns what :func:`area_sweep` returns, keyed by
    ((width, height), corner)."""
    boxes = {box_suffix(w, h, corner) for (w, h), corners in EMBEDDING_BOXES for corner in corners}
    without = _rows_without(emb2, lambda name: name in boxes)
    this = query_regions(embedder.match)
    return area_sweep(split, originals, emb2, embedder, log, areas=BOX_SWEEP_SHAPES, places=BOX_SWEEP_CORNERS,
                      ways={"no box rows": this, "this": this}, row_masks={"no box rows": without},
                      crop=lambda shape, corner: lambda img, rng: box_crop(img, *shape, corner),
                      label="box sweep")


def _rows_without(emb2: np.ndarray, leave_out) -> np.ndarray:
    """A boolean mask over the rows ``embedding_views`` gives each original (``emb2``'s second axis): False for
    the rows whose name suffix ``leave_out(name)`` picks."""
    mask = np.array([not leave_out(name) for name, _ in embedding_views(Image.new("RGB", (64, 48)))])
    if len(mask) != emb2.shape[1]:
        raise ValueError(f"{emb2.shape[1]} rows per original, embedding_views gives {len(mask)}")
    return mask
