"""The region gate's trade: copies it keeps against uploads it spares, as the embedding index grows.

``match.embedding_query_region_gate`` (csadetect.signals.embedding.region_gate_similarity; off by
default): the pipeline embeds an image's 60 query-side region views only when nothing matched it
and one of its own vectors (the image, its views, sub-images, mirror) reaches the gate's similarity
with some embedding row (``IndicatorIndex.match_image_gated``). Two things decide whether a gate is
worth it, measured here side by side for a few gates, on the robustness benchmark's held-out test
split (``training.robustness_set``; nothing downloaded):

* **copies kept**: of the copies that only the region views find, the share whose own vectors
  reach the gate with some original's row. Copies: the edits of every test original (found by
  PDQ + views + sub-images or the embedding, as ``benchmarks/robustness.md`` scores this release)
  and the crops of ``bench_robustness.SWEEP_AREAS`` at each corner and the centre (the embedding
  alone, as its sweep does).
* **uploads that pay**: the share of pictures that match nothing whose own vectors still reach
  the gate, so that their region views are embedded. Traffic: the test split's ordinary
  distractors (generated pictures, textures, drawings, documents, crops of them, text pages, plain
  and framed). Index: the test originals' rows (``indicators from-media``: 13 per picture) plus the
  rows of more generated pictures from the same six generators with seeds of their own
  (``gate-index``), so the index grows with pictures that look like the traffic.

A bigger index leaves fewer uploads far from every row, so what the gate spares shrinks as the
index grows; real traffic against a real indicator list will differ again. The pipeline's counters
``region_views_embedded`` and ``embedded_image`` give a deployment its own share.

    python -m benchmarks.bench_region_gate                  # ~20 min; writes benchmarks/region-gate.md
    python -m benchmarks.bench_region_gate --pictures 300 --no-write
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from csadetect.media.hashing import hash_image_with_views
from csadetect.media.regions import views_and_sub_images
from csadetect.signals.embedding import query_regions, region_gate_similarity
from training.robustness_set import GENERATORS, TRANSFORMS, _crop_area, build_distractors, build_originals, encode, split_seed

GATES = (8.0, 16.0, 30.0)  # multiples of the threshold's distance
SIZES = (0, 100, 300, 1000, 2000)  # generated pictures added to the index


def rows_of(img, embedder) -> np.ndarray:
    """A picture's embedding rows (unit vectors), as ``indicators from-media`` makes them with the
    configured model and settings."""
    from benchmarks.bench_robustness import embedding_rows

    return embedding_rows(encode(img, "png"), embedder.model, embedder.match)


def index_pictures(n: int):
    """``n`` generated pictures, the six generators in turn, seeds of their own."""
    names = list(GENERATORS)
    for i in range(n):
        name = names[i % len(names)]
        yield GENERATORS[name](np.random.default_rng(split_seed("gate-index", name, i)))


def copies_needing_regions(originals, emb2: np.ndarray, embedder, log=print) -> dict:
    """For the copies that only the region views find: the largest similarity of their own vectors
    to any original's row (what the gate reads). ``{"edits": [...], "sweep": [...]}``, and how many
    copies there were of each."""
    from benchmarks.bench_robustness import SWEEP_AREAS, SWEEP_PLACES, THRESHOLD, Query, _words, min_distances
    from csadetect.media.hashing import hash_image
    from training.evaluate_images import original_sims

    t0 = time.perf_counter()
    threshold = embedder.threshold
    index = np.array([_words(hash_image(encode(img, "png")).pdq) for _, img in originals], dtype=np.uint64)
    out = {"edits": [], "sweep": [], "n_edits": 0, "n_sweep": 0}
    for tname, (fn, how) in TRANSFORMS.items():
        for o, (oname, img) in enumerate(originals):
            q = Query(encode(fn(img, np.random.default_rng(split_seed("test", tname, oname))), how), embedder)
            own = q.weights2 == 1.0
            own_sims = original_sims(q.vectors2[own], emb2)
            pdq = min_distances(q.pre2, index) <= THRESHOLD
            out["n_edits"] += 1
            if pdq.any() or (own_sims >= threshold).any():
                continue  # matched without them: the pipeline never embeds its region views
            if original_sims(q.vectors2, emb2, q.weights2)[o] >= threshold:
                out["edits"].append(float(own_sims.max()))
    log(f"edits: {out['n_edits']} copies, {len(out['edits'])} found only by region views ({time.perf_counter() - t0:.0f}s)")
    regions = query_regions(embedder.match)
    for o, (_, img) in enumerate(originals):
        for area in SWEEP_AREAS:
            for place in SWEEP_PLACES:
                _, pictures = hash_image_with_views(encode(_crop_area(area, place)(img, None), "jpeg"),
                                                    preprocess=views_and_sub_images)
                vectors, weights = embedder.query(pictures, regions=regions)
                own_sims = original_sims(vectors[weights == 1.0], emb2)
                out["n_sweep"] += 1
                if not (own_sims >= threshold).any() and original_sims(vectors, emb2, weights)[o] >= threshold:
                    out["sweep"].append(float(own_sims.max()))
    log(f"sweep: {out['n_sweep']} crops, {len(out['sweep'])} found only by region views ({time.perf_counter() - t0:.0f}s)")
    return out


def measure(pictures: int, log=print) -> dict:
    from benchmarks.bench_robustness import Embedder

    t0 = time.perf_counter()
    embedder = Embedder()
    gates = {g: region_gate_similarity(embedder.threshold, g) for g in GATES}
    originals = build_originals("test")
    per_original = [rows_of(img, embedder) for _, img in originals]
    copies = copies_needing_regions(originals, np.stack(per_original), embedder, log)
    traffic = []
    for _, data in build_distractors("test"):
        _, views = hash_image_with_views(data, preprocess=views_and_sub_images)
        traffic.append(embedder.query(views, regions=())[0])
    log(f"traffic: {len(traffic)} pictures ({time.perf_counter() - t0:.0f}s)")
    best = np.full(len(traffic), -1.0)
    rows = 0

    def add(mat):
        nonlocal rows
        rows += len(mat)
        for i, v in enumerate(traffic):
            best[i] = max(best[i], float((v @ mat.T).max()))

    for mat in per_original:
        add(mat)
    sizes = sorted({s for s in SIZES if s <= pictures} | {pictures})
    grown = []
    for made, img in enumerate(index_pictures(pictures + 1)):
        if made in sizes:
            unmatched = best < embedder.threshold
            grown.append({"pictures": len(originals) + made, "rows": rows, "unmatched": int(unmatched.sum()),
                          "open": {g: int((unmatched & (best >= s)).sum()) for g, s in gates.items()},
                          "median": float(np.median(best))})
            log(f"  {grown[-1]} ({time.perf_counter() - t0:.0f}s)")
        if made == pictures:
            break
        add(rows_of(img, embedder))
    return {"threshold": embedder.threshold, "version": embedder.spec.version, "gates": gates, "copies": copies,
            "traffic": len(traffic), "grown": grown, "seconds": time.perf_counter() - t0}


def report(res: dict) -> str:
    c = res["copies"]
    edits, sweep = np.array(c["edits"]), np.array(c["sweep"])
    sizes = [g["pictures"] for g in res["grown"]]
    lines = [
        "# Region gate: copies kept against uploads spared",
        "",
        f"Written by `python -m benchmarks.bench_region_gate` ({res['seconds'] / 60:.0f} min); how it measures is in its "
        f"docstring. Model {res['version']}, threshold {res['threshold']:.4f}; held-out test split.",
        f"Copies found only by the region views: {len(edits)} of {c['n_edits']} edited copies ({len(TRANSFORMS)} edits), "
        f"{len(sweep)} of {c['n_sweep']} corner and centre crops of 62-97% of the area. Traffic: {res['traffic']} "
        f"pictures that match nothing; the index: {sizes[0]} test originals, then more generated pictures.",
        "",
        "| gate (x the threshold's distance) | similarity | region-only copies kept: edits | sweep crops | "
        + " | ".join(f"uploads paying, {n:,} pictures" for n in sizes) + " |",
        "|---|---|---|---|" + "---|" * len(sizes),
        "| off (default) | - | all | all | " + " | ".join("100%" for _ in sizes) + " |",
    ]
    for g, s in res["gates"].items():
        cells = [f"{(edits >= s).sum()} of {len(edits)}", f"{(sweep >= s).sum()} of {len(sweep)}"]
        cells += [f"{row['open'][g] / max(row['unmatched'], 1):.0%}" for row in res["grown"]]
        lines.append(f"| {g:g} | {s:.4f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Median best similarity of the traffic to any row: "
        + ", ".join(f"{row['median']:.3f} at {row['pictures']:,} pictures ({row['rows']:,} rows)" for row in res["grown"]) + ".",
        "Lowest own-vector similarity of a region-only copy: edits "
        + (f"{edits.min():.4f}" if len(edits) else "-") + ", sweep " + (f"{sweep.min():.4f}" if len(sweep) else "-") + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_region_gate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pictures", type=int, default=2000, help="generated pictures added to the index (default 2000)")
    ap.add_argument("--no-write", action="store_true", help="print only, do not write benchmarks/region-gate.md")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "region-gate.md"))
    args = ap.parse_args(argv)
    if args.pictures < 0:
        ap.error("--pictures must be >= 0")
    res = measure(args.pictures, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    text = report(res)
    print(text)
    if not args.no_write:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
