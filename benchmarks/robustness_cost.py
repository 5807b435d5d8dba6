"""Cost side of the robustness benchmark (``python -m benchmarks.bench_robustness``): the CPU time each
matching step adds per picture (``measure_cost``, the report's cost paragraph) and ``--event-cost``, the
query-side region views' settings side by side per 3.1 MP event (``event_cost``). Kept apart from the
recall measurement; ``bench_robustness`` re-exports every name.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from csadetect.media.hashing import hash_image_with_views, load_image, pdq_from_image
from csadetect.media.preprocess import views
from csadetect.media.regions import sub_image_boxes, views_and_sub_images
from csadetect.models.embedding import EmbeddingModel, model_inputs
from csadetect.signals.embedding import query_regions

if TYPE_CHECKING:  # the embedder measure_cost times; bench_robustness imports this module
    from benchmarks.bench_robustness import Embedder


def _cpu_ms(fn, repeat: int = 3) -> float:
    """Best of ``repeat`` CPU-time measurements of fn(), in ms (robust to a busy machine)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best * 1e3


def measure_cost(samples: list[bytes], embedder: "Embedder | None" = None) -> dict:
    """Per image: PDQ (8 dihedral) of the decoded image, views(), and PDQ of the views; the
    sub-image search (``sub_image_boxes``) and PDQ of the sub-images; with an embedder, the query
    embedding (image + views (+ mirror), one model call), and with the sub-images and the
    query-side region views too (this release)."""
    pdq_ms, views_ms, view_pdq_ms, embed_ms, n_views = [], [], [], [], 0
    cells_ms, cell_pdq_ms, embed2_ms, n_cells = [], [], [], 0
    for data in samples:
        img = load_image(data)
        pdq_ms.append(_cpu_ms(lambda: pdq_from_image(img)))
        views_ms.append(_cpu_ms(lambda: views(img)))
        found = views(img)
        n_views += len(found)
        view_pdq_ms.append(_cpu_ms(lambda: [pdq_from_image(v) for _, v in found]))
        cells_ms.append(_cpu_ms(lambda: sub_image_boxes(img)))
        both = views_and_sub_images(img)
        cells = both[len(found):]
        n_cells += len(cells)
        cell_pdq_ms.append(_cpu_ms(lambda: [pdq_from_image(v) for _, v in cells]))
        if embedder is not None:
            embed_ms.append(_cpu_ms(lambda: embedder.query([("image", img)] + found, previous=True)))
            embed2_ms.append(_cpu_ms(lambda: embedder.query([("image", img)] + both)))
    if not samples:  # a run restricted to some edits may have no framed copy or composite
        pdq_ms = views_ms = view_pdq_ms = cells_ms = cell_pdq_ms = [float("nan")]
    return {
        "embed": float(np.mean(embed_ms)) if embed_ms else None,
        "embed2": float(np.mean(embed2_ms)) if embed2_ms else None,
        "n": len(samples),
        "pdq": float(np.mean(pdq_ms)),
        "views": float(np.mean(views_ms)),
        "views_p95": float(np.percentile(views_ms, 95)),
        "view_pdq": float(np.mean(view_pdq_ms)),
        "views_per_image": n_views / max(1, len(samples)),
        "cells": float(np.mean(cells_ms)),
        "cells_p95": float(np.percentile(cells_ms, 95)),
        "cell_pdq": float(np.mean(cell_pdq_ms)),
        "cells_per_image": n_cells / max(1, len(samples)),
    }


# ``--event-cost``: the query-side region views' settings side by side (name, MatchSettings overrides).
_NO_STRIPS = {"embedding_query_strip_shares": ()}
EVENT_COST_SETTINGS = (("off (`embedding_query_regions: false`)", {"embedding_query_regions": False}),
                       ("`[0.80]`", {"embedding_query_region_shares": (0.80,), **_NO_STRIPS}),
                       ("six shares `[0.80, 0.82, 0.86, 0.90, 0.94, 0.98]`",
                        {"embedding_query_region_shares": (0.80, 0.82, 0.86, 0.90, 0.94, 0.98), **_NO_STRIPS}),
                       ("ten shares (0.80 ... 0.98, the default before the 60% and 78% ones)",
                        {"embedding_query_region_shares": (0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98),
                         **_NO_STRIPS}),
                       ("the default's twelve (0.60, 0.78, 0.80 ... 0.98), no strips (the default before 2026-12-05)",
                        _NO_STRIPS),
                       ("twelve shares and the strips 0.88 ... 0.98 of each side (the default before 2026-12-06)",
                        {"embedding_query_strip_shares": (0.88, 0.90, 0.92, 0.94, 0.96, 0.98)}),
                       ("**the default**: twelve shares and the strips (0.60, 0.70, 0.80, 0.88 ... 0.98 of each side)", {}),
                       ("the default and the grids (`embedding_query_grid_shares: [0.80, 0.86]`, off by default)",
                        {"embedding_query_grid_shares": (0.80, 0.86)}))


def event_cost(n: int = 40, rounds: int = 3, log=print) -> str:
    """CPU ms per 3.1 MP image event, decode to one batched embedding call (decode, PDQ with views and
    sub-images, the model inputs, the embedding), for each of :data:`EVENT_COST_SETTINGS`, in
    interleaved rounds on the same generated JPEGs (median of the rounds). A markdown table."""
    from csadetect.config.settings import MatchSettings
    from csadetect.media import synth

    model = EmbeddingModel.load()
    data = [synth.jpeg_bytes(synth.synthetic_image(9000 + i, (2048, 1536))) for i in range(n)]
    ways = [(label, query_regions(MatchSettings(**overrides))) for label, overrides in EVENT_COST_SETTINGS]

    def run(regions) -> float:
        t0 = time.process_time()
        batch = []
        for d in data:
            _, pictures = hash_image_with_views(d, preprocess=views_and_sub_images, value=True)
            batch.append(model_inputs(pictures, model.input_size, True, regions)[1])
        model.embed_arrays(np.concatenate(batch))
        return (time.process_time() - t0) / n * 1000

    run(ways[-1][1])  # warm-up
    times = {label: [] for label, _ in ways}
    for r in range(rounds):
        for label, regions in ways:
            times[label].append(run(regions))
        log(f"[event cost] round {r + 1}/{rounds}")
    base = float(np.median(times[ways[0][0]]))
    out = ["| query-side region views | model inputs per picture added | CPU ms per 3.1 MP event (median; rounds) | vs off |",
           "| --- | ---: | ---: | ---: |"]
    for label, regions in ways:
        ms = float(np.median(times[label]))
        views_added = sum(len(places) for _, places in regions)
        out.append(f"| {label} | {views_added} | {ms:.1f} ({', '.join(f'{t:.1f}' for t in times[label])}) | "
                   f"+{ms - base:.1f} ms |")
    return "\n".join(out)
