"""Robustness of PDQ matching to common edits, plain vs. with csadetect.media.preprocess.views, and
of the image embedding, alone and combined with PDQ as the pipeline matches.

Its image set is built at run time by ``training.robustness_set`` (shared with the embedding's
threshold calibration, which uses the ``dev`` split); nothing is downloaded and nothing is written
but the report:

* originals: natural photos bundled with scikit-image plus procedurally generated pictures
  (fractal landscapes, shaded still lifes, shape scenes, mosaics, interference patterns, clouds);
* distractors: other generated pictures (other seeds), other bundled scikit-image images, crops of
  them and generated text pages, each also in a randomly framed version (border, letterbox,
  screenshot, caption bar ...), none of them a copy of an original;
* transforms: 48 edits of every original (the first 30, then issue 17's 18 below) (re-encoding, resizing, crops, borders, letterboxing,
  screenshots, rotations, colour changes, overlays ...), saved as JPEG (screenshots as PNG) and
  hashed from the bytes with ``csadetect.media.hashing.hash_image`` like the pipeline does.

Issue 17 added 20 edits (``training.robustness_set.ISSUE17``: crops keeping 75% and 60% of the area
at each corner, the centre and a random place; picture-in-picture at 60% and 40% of the canvas;
collages; a meme frame; since 2026-12-05 a mirror with a 75% crop or a text band), six scene
originals per split whose other shots are hard distractors (burst frames, stereo pairs, other
objects on the same studio sweep) and "template" distractors (a
composite or screenshot template of a copy holding another picture):
``training.robustness_set.build_hard_distractors``. Every query is scored three ways: plain PDQ;
the previous release (PDQ + views or the embedding, with ``match.sub_images``,
``match.embedding_region_rows`` and ``match.embedding_query_regions`` off); and this release (all three
on: the sub-images hashed and embedded, the region rows in the index, the query's corner and centre
crops embedded). Costs per image of each step are measured on ordinary pictures,
framed copies and composites.

Matching follows the matcher: a query matches an original when any of its dihedral hashes (main
image, and with preprocessing each view) with quality >= 50 is within Hamming distance 31 of the
original's PDQ. Recall = transformed copies matching their own original; false matches = pairs
(query, original) where the query is a distractor or a copy of a *different* original.

Embedding (unless ``--no-embedding``): the configured model (``csadetect/config/default.yaml``; the
reference model by default) at its threshold. An original's rows are made by
``csadetect.indicators.rows.media_rows`` itself, as ``indicators from-media`` makes them (the decoded image
and its index-side views, ``csadetect.signals.embedding.embedding_views``: centre crop and small rotations);
a query's vectors as the pipeline makes them (the decoded image, each preprocessing view and,
with ``embedding.flip``, the mirrored image, through ``training.evaluate_images.embed_query``, the region views from the mirror when it lies nearer the rows); a query
matches an original when any of its vectors has cosine similarity >= the threshold with any of
the original's rows. "Combined" = PDQ + views or the embedding, what
``IndicatorIndex.match_image`` reports in the pipeline's configuration.

The thresholds of csadetect.media.preprocess were tuned on the ``dev`` split (generated originals and
distractors with development seeds); the headline numbers are from the ``test`` split (held out:
scikit-image photos and generated pictures with other seeds, other distractors).

    .venv/bin/python -m benchmarks.bench_robustness            # both splits, writes robustness.md
    .venv/bin/python -m benchmarks.bench_robustness --split dev --no-write
    .venv/bin/python -m benchmarks.bench_robustness --event-cost   # region views' cost per 3 MP event, ~2 min
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.robustness_common import (COMPOSITES, HARD_KINDS, KEYS, STRIP_SWEEP_SHARES, STRIP_SWEEP_SIDES, SWEEP_AREAS,
                                          SWEEP_PLACES, _pct)
from benchmarks.robustness_cost import EVENT_COST_SETTINGS, _cpu_ms, event_cost, measure_cost
from benchmarks.robustness_embedding import (_dev_share, _embedding_findings, _embedding_text, _same_as_rows,
                                             _threshold_table, _threshold_table2, at_threshold, at_threshold2,
                                             zero_false_threshold, zero_false_threshold2)
from benchmarks.robustness_report import (_cost_line, _release_text, _sweep_text, cost_table, report, sweep_table,
                                          table)
from benchmarks.robustness_sweeps import FIRST_QUERY_REGIONS, area_sweep, box_sweep, strip_sweep, turn_sweep
from csadetect.config.settings import load_settings
from csadetect.indicators.rows import media_rows
from csadetect.media.hashing import hash_image_with_views
from csadetect.media.regions import views_and_sub_images
from csadetect.media.view_value import VALUE, is_value_name, value_name
from csadetect.models.embedding import KIND as EMBEDDING, EmbeddingModel, EmbeddingSpec
from csadetect.signals.embedding import (EMBEDDING_CROPS, EMBEDDING_ROTATIONS, query_regions, region_gate_similarity,
                                         split_embedding, view_weights)
from training.evaluate_images import embed_query, original_sims
from training.robustness_set import (FRAMINGS, QUALITY_GATE, TRANSFORMS, build_distractors,
                                     build_hard_distractors, build_originals, encode, split_seed)
from training.robustness_unseen import UNSEEN

# The report lives in benchmarks.robustness_report and benchmarks.robustness_embedding, the sweeps in
# benchmarks.robustness_sweeps, the cost measurements in benchmarks.robustness_cost, the names both sides use in
# benchmarks.robustness_common; tests and benchmarks/bench_region_gate.py import from here, so every name is
# re-exported.
__all__ = [
    "THRESHOLD", "PREVIOUS_RELEASE_MODEL", "PREVIOUS_RELEASE_THRESHOLD", "_words", "Embedder", "NEW_VIEWS", "Query",
    "min_distances", "_cpu_ms", "measure_cost", "_index_views_text", "_hits", "evaluate", "FIRST_QUERY_REGIONS",
    "area_sweep", "box_sweep", "strip_sweep", "turn_sweep", "unseen_edits", "EVENT_COST_SETTINGS", "event_cost", "main",
    "KEYS", "HARD_KINDS", "COMPOSITES", "SWEEP_AREAS", "SWEEP_PLACES", "STRIP_SWEEP_SHARES", "STRIP_SWEEP_SIDES", "_pct",
    "at_threshold", "zero_false_threshold", "_threshold_table", "at_threshold2", "zero_false_threshold2",
    "_threshold_table2", "_dev_share", "_embedding_text", "_same_as_rows", "_embedding_findings",
    "sweep_table", "_sweep_text", "table", "_cost_line", "cost_table", "_release_text", "report",
]

THRESHOLD = 31
# The previous release's embedding: its weights (``benchmarks/previous-release/embedding``, the
# reference model it shipped, trained 2026-11-28 under TensorFlow 2.21) and the threshold it shipped
# (4 rows per original, no sub-images; the model card's "Threshold and its calibration"): the
# previous-release columns are scored with them.
PREVIOUS_RELEASE_MODEL = Path(__file__).resolve().parent / "previous-release" / "embedding"
PREVIOUS_RELEASE_THRESHOLD = 0.9835

# --------------------------------------------------------------------------- matching


def _words(h: bytes) -> np.ndarray:
    return np.frombuffer(h, dtype=">u8").astype(np.uint64)


def embedding_rows(data: bytes, model, match) -> np.ndarray:
    """A picture's (``data``, PNG or JPEG bytes) embedding rows as unit vectors ``(rows, dim)``, made by
    ``csadetect.indicators.rows.media_rows`` (what ``indicators from-media`` runs) with ``model`` and
    the match settings ``match``, read back from the rows' values."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "original.png")
        Path(path).write_bytes(data)
        rows, _ = media_rows(path, match, embedder=model)
    vectors = np.stack([split_embedding(r.value)[1] for r in rows if r.kind == "embedding"])
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class Embedder:
    """The configured embedding model, its threshold and the pipeline's query views."""

    def __init__(self):
        settings = load_settings()
        self.match = settings.match
        self.spec = EmbeddingSpec.resolve(settings.embedding)
        self.model = EmbeddingModel.load(self.spec.path)
        self.previous_model = EmbeddingModel.load(PREVIOUS_RELEASE_MODEL)
        self.flip = settings.embedding.flip
        self.threshold = self.spec.threshold
        # the similarity a query's own vectors must reach before its region views are embedded
        self.gate = region_gate_similarity(self.threshold, self.match.embedding_query_region_gate)
        # how the threshold was set (training/calibrate_embedding.py), when the model records it
        self.provenance = EMBEDDING.metadata(self.spec.path).get("threshold_provenance") \
            if settings.embedding.threshold is None else None

    def original(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """An original's embedding rows, ``(rows, dim)``, made by ``csadetect.indicators.rows.media_rows``
        (what ``indicators from-media`` runs): the decoded image and its index-side views
        (``csadetect.signals.embedding.embedding_views``), read back from the rows' values. Returns
        (the previous release's rows, made by its model without the region, box and turned rows; this release's:
        with the region rows ``-aNN..``, the box rows ``-w70h86tl``... and the turned rows ``-tc+4``...)."""
        return (embedding_rows(data, self.previous_model, self.match.model_copy(
                    update={"embedding_region_rows": False, "embedding_box_rows": False, "embedding_turn_rows": False})),
                embedding_rows(data, self.model, self.match.model_copy(
                    update={"embedding_region_rows": True, "embedding_box_rows": True, "embedding_turn_rows": True})))

    def query(self, pictures, previous: bool = False, regions=None, rows: "np.ndarray | None" = None) -> np.ndarray:
        """A query's vectors, as ``HashMedia``, ``EmbedImages`` and ``MatchIndicators`` make them: every
        view (+ mirror, and this release's query-side region views, ``match.embedding_query_regions``,
        cut from the mirrored image when the mirror lies nearer one of the indexed originals' ``rows``:
        :func:`training.evaluate_images.embed_query`); ``previous``: with the previous release's model,
        without the region views. Returns (vectors, their view weights:
        ``csadetect.signals.embedding.view_weights``, how the matcher counts each vector's distance)."""
        model = self.previous_model if previous else self.model
        if regions is None:
            regions = () if previous else query_regions(self.match)
        vectors, names = embed_query(model, pictures, self.flip, regions, rows, self.threshold,
                                     turns=self.match.embedding_query_turns,
                                     turn_gate=self.match.embedding_query_turn_gate)
        return vectors, view_weights(names)


# Views the previous release did not have: the sub-images (``cell``), the blurred-fill view
# (``fill``, csadetect.media.preprocess.fill_box), the upright view of a turned picture (``tilt``,
# csadetect.media.view_tilt, 2026-12-05) and the value channel's hash (``value``, csadetect.media.view_value,
# 2026-12-06; PDQ only, never embedded; and, the same day, the value channel of every view: ``trim-value``...).
# Its columns hash and embed the image and the other views only; this release's columns all of them.
NEW_VIEWS = ("cell", "fill", "tilt", VALUE)


def _new_view(name: str) -> bool:
    """Whether the upload's variant ``name`` is one the previous release did not hash (:data:`NEW_VIEWS`)."""
    return name in NEW_VIEWS or is_value_name(name)


class Query:
    """Candidate hashes of one query image, hashed from its bytes like the pipeline does:
    plain = the 8 dihedral hashes of the image; pre = those plus the 8 of each view the previous
    release had (``views`` without :data:`NEW_VIEWS`); pre2 = those plus the 8 of each sub-image,
    fill and tilt view (this release: ``views_and_sub_images``); no_tilt = pre2 without the tilt
    view's (``match.tilt_view: false``); with an ``embedder``, ``vectors`` = the
    embeddings of the image, its previous-release views and its mirror (previous release) and
    ``vectors2`` = those, the new views' and the region views'."""

    def __init__(self, data: bytes, embedder: "Embedder | None" = None, rows: "np.ndarray | None" = None):
        hashed, pictures = hash_image_with_views(data, preprocess=views_and_sub_images, value=True)
        self.view_names = [name for name, _ in hashed.variants]
        main = [_words(h) for h in hashed.dihedral] if hashed.quality >= QUALITY_GATE else []
        extra = [_words(h) for name, v in hashed.variants if not _new_view(name) and v.quality >= QUALITY_GATE
                 for h in v.dihedral]
        cells = [(name, _words(h)) for name, v in hashed.variants if _new_view(name) and v.quality >= QUALITY_GATE
                 for h in v.dihedral]
        self.plain = np.array(main, dtype=np.uint64).reshape(-1, 4)
        self.pre = np.array(main + extra, dtype=np.uint64).reshape(-1, 4)
        self.pre2 = np.array(main + extra + [w for _, w in cells], dtype=np.uint64).reshape(-1, 4)
        self.no_tilt = np.array(main + extra + [w for name, w in cells if name not in ("tilt", value_name("tilt"))],
                                dtype=np.uint64).reshape(-1, 4)
        self.vectors = self.vectors2 = self.weights2 = None
        if embedder is not None:
            # one call of each release's model: the previous one without the sub-images
            self.vectors, _ = embedder.query([(n, p) for n, p in pictures if n not in NEW_VIEWS], previous=True)
            self.vectors2, self.weights2 = embedder.query(pictures, rows=rows)


def min_distances(cands: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Min Hamming distance of any candidate to each original's hash (257 when no candidates): ``index``
    is ``(n, 4)`` words, one hash per original, or ``(n, r, 4)``, r rows per original (the nearest counts)."""
    if cands.shape[0] == 0:
        return np.full(index.shape[0], 257, dtype=np.int64)
    d = np.bitwise_count(cands[:, None, :] ^ index.reshape(-1, 4)[None, :, :]).sum(axis=-1)
    return d.min(axis=0).reshape(index.shape[0], -1).min(axis=1).astype(np.int64)


def pdq_rows(encoded: list) -> np.ndarray:
    """``(n, 2, 4)`` words: each original's PDQ row and its value channel's row as ``indicators
    from-media`` writes them (``match.value_view``; the PDQ row again where it writes none: a grey
    picture, or a value hash under the quality gate)."""
    rows = []
    for data in encoded:
        hashed, _ = hash_image_with_views(data, dihedral=False, value=True)
        value = dict(hashed.variants).get(VALUE)
        keep = value is not None and value.quality >= QUALITY_GATE
        rows.append([_words(hashed.pdq), _words(value.pdq if keep else hashed.pdq)])
    return np.array(rows, dtype=np.uint64)


def _index_views_text() -> str:
    """The index-side views of ``csadetect.signals.embedding.embedding_views``, in words."""
    parts = [f"a centre crop with {f:.0%} cut from each side" for f in EMBEDDING_CROPS]
    parts += [f"a {d:+g}° rotation" for d in EMBEDDING_ROTATIONS]
    return ", ".join(parts) if parts else "none"


def _hits(q: Query, index: np.ndarray, emb, emb2, threshold: float, threshold2: float,
          gate: "float | None" = None) -> tuple[dict, dict, np.ndarray]:
    """Per key of ``KEYS``: hit mask over the originals; closest PDQ distances; previous release's
    best similarities (for re-scoring at other thresholds). ``gate`` (``match.embedding_query_region_gate``
    as a similarity, :func:`csadetect.signals.embedding.region_gate_similarity`): this release's
    region views count only for a query that nothing matched without them and one of whose own
    vectors reaches ``gate`` with some original's row, as ``MatchIndicators`` embeds them
    (``closest["regions"]``: whether they were counted)."""
    hits, closest = {}, {}
    for key, cands in (("plain", q.plain), ("pre", q.pre), ("pre2", q.pre2)):
        # the previous release's columns have the pictures' own PDQ rows, this release's the value rows too
        d = min_distances(cands, index if key == "pre2" or index.ndim == 2 else index[:, 0])
        hits[key] = d <= THRESHOLD
        closest[key] = d
    sims = np.full(len(index), -1.0)
    if emb is not None:  # the previous release
        sims = original_sims(q.vectors, emb)
        hits["emb"] = sims >= threshold
        hits["comb"] = hits["pre"] | hits["emb"]
        closest["sims"] = sims
    if emb2 is not None:  # this release
        sims2 = original_sims(q.vectors2, emb2, q.weights2)  # a region view's distance counts twice
        regions = bool((q.weights2 != 1.0).any())
        if gate is not None and regions:
            own = original_sims(q.vectors2[q.weights2 == 1.0], emb2)
            if hits["pre2"].any() or (own >= threshold2).any() or own.max() < gate:
                sims2, regions = own, False
        closest["regions"] = regions
        hits["emb2"] = sims2 >= threshold2
        hits["comb2"] = hits["pre2"] | hits["emb2"]
        closest["sims2"] = sims2
    return hits, closest, sims


def evaluate(split: str, log=print, embedder: "Embedder | None" = None, sweep_areas: bool = True,
             unseen: bool = True) -> dict:
    t0 = time.perf_counter()
    originals = build_originals(split)
    encoded = [encode(img, "png") for _, img in originals]
    index = pdq_rows(encoded)  # (originals, 2, 4): the PDQ row and the value channel's row
    # (originals, rows, dim): every original has the same rows (image, crops, rotations [, regions])
    emb = emb2 = None
    if embedder is not None:
        pairs = [embedder.original(data) for data in encoded]
        emb, emb2 = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    threshold2 = embedder.threshold if embedder is not None else 1.0  # this release: the configured one
    threshold = PREVIOUS_RELEASE_THRESHOLD if embedder is not None else 1.0
    gate = embedder.gate if embedder is not None else None
    # queries whose region views were embedded (the gate passed): copies, ordinary distractors, hard ones
    region_queries = {"copy": [0, 0], "ordinary": [0, 0], "hard": [0, 0]}
    log(f"[{split}] {len(originals)} originals ({time.perf_counter() - t0:.1f}s)")

    n_orig = len(originals)
    per_transform: dict[str, dict[str, int]] = {}
    false = dict.fromkeys(KEYS, 0)
    closest_wrong = {"plain": 257, "pre": 257, "pre2": 257}
    sim_wrong = {"emb": -1.0, "emb2": -1.0}  # largest similarity of a copy to another original
    # per query: (transform or None for a distractor, own original or -1, similarity to every
    # original, PDQ + views hit on every original): to re-score at another threshold
    detail: list[tuple] = []
    # the same for this release: (transform, own original, similarities, PDQ + views + sub-images
    # hits, distractor kind or None)
    detail2: list[tuple] = []
    view_counts: dict[str, int] = {}
    framed_samples: list[bytes] = []
    composite_samples: list[bytes] = []
    for tname, (fn, how) in TRANSFORMS.items():
        stats = dict.fromkeys(("n", "photo_n") + KEYS + tuple("photo_" + k for k in KEYS), 0)
        for o_index, (oname, img) in enumerate(originals):
            photo = oname.startswith("sk:")
            rng = np.random.default_rng(split_seed(split, tname, oname))
            data = encode(fn(img, rng), how)
            if tname in FRAMINGS and o_index % 3 == 0:
                framed_samples.append(data)
            if tname in COMPOSITES and o_index % 3 == 0:
                composite_samples.append(data)
            q = Query(data, embedder, emb2)
            for v in q.view_names:
                view_counts[v] = view_counts.get(v, 0) + 1
            wrong = np.arange(n_orig) != o_index
            stats["n"] += 1
            stats["photo_n"] += photo
            hits, closest, sims = _hits(q, index, emb, emb2, threshold, threshold2, gate)
            for key in closest_wrong:
                closest_wrong[key] = min(closest_wrong[key], int(closest[key][wrong].min()))
            if emb is not None:
                sim_wrong["emb"] = max(sim_wrong["emb"], float(closest["sims"][wrong].max()))
                region_queries["copy"][0] += closest["regions"]
                region_queries["copy"][1] += 1
                sim_wrong["emb2"] = max(sim_wrong["emb2"], float(closest["sims2"][wrong].max()))
                detail.append((tname, o_index, sims.astype(np.float32), hits["pre"]))
                detail2.append((tname, o_index, closest["sims2"].astype(np.float32), hits["pre2"], None))
            for key, hit in hits.items():
                stats[key] += int(hit[o_index])
                stats["photo_" + key] += int(photo and hit[o_index])
                false[key] += int(hit[wrong].sum())
        per_transform[tname] = stats
        line = f"[{split}] {tname:20s} plain {stats['plain']:3d}/{stats['n']}  views {stats['pre']:3d}/{stats['n']}"
        if emb is not None:
            line += (f"  previous {stats['comb']:3d}/{stats['n']}  this release: embedding {stats['emb2']:3d}"
                     f" combined {stats['comb2']:3d}/{stats['n']}")
        log(line)

    distractors = [("ordinary", name, data) for name, data in build_distractors(split)]
    hard = build_hard_distractors(split, originals)
    d_false = {kind: dict.fromkeys(KEYS, 0) for kind in ("ordinary",) + HARD_KINDS}
    d_count = {kind: 0 for kind in d_false}
    d_closest = {"plain": 257, "pre": 257, "pre2": 257}
    d_sim = {"emb": -1.0, "emb2": -1.0}  # largest similarity of an ordinary distractor to an original
    hard_sim = {kind: {"emb": -1.0, "emb2": -1.0} for kind in HARD_KINDS}
    with_views = {"plain": 0, "framed": 0}
    with_cells = {"plain": 0, "framed": 0}
    offenders: list[str] = []
    for kind, name, data in distractors + hard:
        q = Query(data, embedder, emb2)
        d_count[kind] += 1
        if kind == "ordinary":
            framed = "framed" if "+" in name else "plain"
            with_views[framed] += any(v != "cell" and not is_value_name(v) for v in q.view_names)  # a framing view
            with_cells[framed] += "cell" in q.view_names
        for v in q.view_names:
            view_counts[v] = view_counts.get(v, 0) + 1
        hits, closest, sims = _hits(q, index, emb, emb2, threshold, threshold2, gate)
        if kind == "ordinary":
            for key in d_closest:
                d_closest[key] = min(d_closest[key], int(closest[key].min()))
        if emb is not None:
            target = d_sim if kind == "ordinary" else hard_sim[kind]
            target["emb"] = max(target["emb"], float(closest["sims"].max()))
            target["emb2"] = max(target["emb2"], float(closest["sims2"].max()))
            group = region_queries["ordinary" if kind == "ordinary" else "hard"]
            group[0] += closest["regions"]
            group[1] += 1
            if kind == "ordinary":
                detail.append((None, -1, sims.astype(np.float32), hits["pre"]))
            detail2.append((None, -1, closest["sims2"].astype(np.float32), hits["pre2"], kind))
        for key, hit in hits.items():
            d_false[kind][key] += int(hit.sum())
        found = [(i, how) for how, keys in (("PDQ", ("plain", "pre")), ("PDQ sub-image", ("pre2",)),
                                            ("embedding, previous", ("emb",)), ("embedding, this release", ("emb2",)))
                 for i in np.flatnonzero(np.any([hits[k] for k in keys if k in hits], axis=0))]
        if found:
            offenders.append(f"[{kind}] {name} -> {', '.join(f'{originals[i][0]} ({how})' for i, how in found)}")
    log(f"[{split}] {len(distractors)} distractors + {len(hard)} hard: false matches "
        + "; ".join(f"{k}: " + ", ".join(f"{key} {v}" for key, v in d_false[k].items()) for k in d_false))

    sweep = area_sweep(split, originals, emb2, embedder, log) if emb is not None and sweep_areas else None
    strips = strip_sweep(split, originals, emb2, embedder, log) if emb is not None and sweep_areas else None
    turns = turn_sweep(split, originals, emb2, embedder, log) if emb is not None and sweep_areas else None
    boxes = box_sweep(split, originals, emb2, embedder, log) if emb is not None and sweep_areas else None
    unseen_rows = unseen_edits(split, originals, index, emb2, embedder, log) if unseen else None
    plain_samples = [data for kind, name, data in distractors if "+" not in name]
    cost_plain = measure_cost(plain_samples[::2], embedder)
    cost_framed = measure_cost(framed_samples, embedder)
    cost_composite = measure_cost(composite_samples, embedder)
    log(f"[{split}] done in {time.perf_counter() - t0:.0f}s")
    return {
        "split": split,
        "originals": originals,
        "per_transform": per_transform,
        "false_copies": (false["plain"], false["pre"], false["pre2"]),
        "closest_wrong_copy": (closest_wrong["plain"], closest_wrong["pre"], closest_wrong["pre2"]),
        "false_distractors": (d_false["ordinary"]["plain"], d_false["ordinary"]["pre"], d_false["ordinary"]["pre2"]),
        "closest_distractor": (d_closest["plain"], d_closest["pre"], d_closest["pre2"]),
        "hard": {"false": {k: d_false[k] for k in HARD_KINDS}, "count": {k: d_count[k] for k in HARD_KINDS},
                 "largest_similarity": hard_sim},
        "embedding": None if emb is None else {
            "version": embedder.spec.version,
            "threshold": threshold2,
            "previous_threshold": threshold,
            "provenance": embedder.provenance,
            "flip": embedder.flip,
            "rows": int(emb.shape[1]),
            "rows2": int(emb2.shape[1]),
            "views": _index_views_text(),
            "false_copies": (false["emb"], false["comb"], false["emb2"], false["comb2"]),
            "closest_wrong_copy": sim_wrong["emb"],
            "closest_wrong_copy2": sim_wrong["emb2"],
            "false_distractors": (d_false["ordinary"]["emb"], d_false["ordinary"]["comb"],
                                  d_false["ordinary"]["emb2"], d_false["ordinary"]["comb2"]),
            "closest_distractor": d_sim["emb"],
            "closest_distractor2": d_sim["emb2"],
            "detail": detail,
            "detail2": detail2,
            "gate": gate,
            "region_queries": region_queries,
        },
        "n_distractors": len(distractors),
        "distractors_with_views": with_views,
        "distractors_with_cells": with_cells,
        "offenders": offenders,
        "view_counts": view_counts,
        "cost_plain": cost_plain,
        "cost_framed": cost_framed,
        "cost_composite": cost_composite,
        "sweep": sweep,
        "strip_sweep": strips,
        "turn_sweep": turns,
        "box_sweep": boxes,
        "unseen": unseen_rows,
        "seconds": time.perf_counter() - t0,
    }


def unseen_edits(split: str, originals: list, index: np.ndarray, emb2: "np.ndarray | None",
                 embedder: "Embedder | None", log=print) -> dict:
    """Every original under each edit of ``training.robustness_unseen.UNSEEN`` (edits nothing was tuned
    on; parameters drawn per copy), matched as this release matches: plain PDQ, PDQ + views and
    sub-images without and with the ``tilt`` view, the embedding (with the region views and their
    gate: :func:`_hits`, this release's columns) and the two combined. Returns ``{edit: {n, plain,
    no_tilt, views, emb, comb, wrong}}`` (``wrong``: copies that match an original they are not a
    copy of, combined)."""
    t0 = time.perf_counter()
    threshold = embedder.threshold if embedder is not None else 1.0
    gate = embedder.gate if embedder is not None else None
    out = {}
    for tname, (fn, how) in UNSEEN.items():
        row = dict.fromkeys(("n", "plain", "no_tilt", "views", "emb", "comb", "wrong"), 0)
        for o_index, (oname, img) in enumerate(originals):
            data = encode(fn(img, np.random.default_rng(split_seed(split, "unseen", tname, oname))), how)
            q = Query(data, embedder, emb2)
            hits, _, _ = _hits(q, index, None, emb2 if embedder is not None else None, 1.0, threshold, gate)
            comb = hits.get("comb2", hits["pre2"])
            row["n"] += 1
            row["plain"] += int(hits["plain"][o_index])
            row["no_tilt"] += int(min_distances(q.no_tilt, index)[o_index] <= THRESHOLD)
            row["views"] += int(hits["pre2"][o_index])
            row["emb"] += int(hits["emb2"][o_index]) if "emb2" in hits else 0
            row["comb"] += int(comb[o_index])
            row["wrong"] += int(np.delete(comb, o_index).any())
        out[tname] = row
        log(f"[{split}] unseen {tname:18s} plain {row['plain']:3d}  views {row['no_tilt']:3d} -> {row['views']:3d} "
            f"(tilt)  embedding {row['emb']:3d}  combined {row['comb']:3d}/{row['n']}  wrong {row['wrong']}")
    log(f"[{split}] unseen edits ({time.perf_counter() - t0:.0f}s)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_robustness", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("test", "dev", "both"), default="both")
    ap.add_argument("--no-write", action="store_true", help="print only, do not write benchmarks/robustness.md")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "robustness.md"))
    ap.add_argument("--no-embedding", action="store_true", help="PDQ only (no TensorFlow, no embedding columns)")
    ap.add_argument("--no-sweep", action="store_true", help="skip the crops of other areas (SWEEP_AREAS)")
    ap.add_argument("--no-unseen", action="store_true", help="skip the edits nothing was tuned on "
                    "(training.robustness_unseen.UNSEEN)")
    ap.add_argument("--event-cost", action="store_true", help="only the query-side region views' cost per 3.1 MP "
                    "image event, each setting side by side (~2 min; prints a table, writes nothing)")
    args = ap.parse_args(argv)
    if args.event_cost:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        print(event_cost(log=lambda msg: print(msg, file=sys.stderr, flush=True)))
        return 0
    splits = ["test", "dev"] if args.split == "both" else [args.split]
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    embedder = None
    if not args.no_embedding:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        embedder = Embedder()
        log(f"embedding {embedder.spec.version} at cosine >= {embedder.threshold:.4f} (flip {embedder.flip})")
    results = [evaluate(s, log=log, embedder=embedder, sweep_areas=not args.no_sweep, unseen=not args.no_unseen)
               for s in splits]
    text = report(results)
    print(text)
    if not args.no_write:
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
