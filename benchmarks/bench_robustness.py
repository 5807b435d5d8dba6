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
* transforms: 30 edits of every original (re-encoding, resizing, crops, borders, letterboxing,
  screenshots, rotations, colour changes, overlays ...), saved as JPEG (screenshots as PNG) and
  hashed from the bytes with ``csadetect.media.hashing.hash_image`` like the pipeline does.

Matching follows the matcher: a query matches an original when any of its dihedral hashes (main
image, and with preprocessing each view) with quality >= 50 is within Hamming distance 31 of the
original's PDQ. Recall = transformed copies matching their own original; false matches = pairs
(query, original) where the query is a distractor or a copy of a *different* original.

Embedding (unless ``--no-embedding``): the configured model (``csadetect/config/default.yaml``; the
reference model by default) at its threshold. An original's rows are made by
``csadetect.indicators.rows.media_rows`` itself, as ``indicators from-media`` makes them (the decoded image
and its index-side views, ``csadetect.signals.embedding.embedding_views``: centre crop and small rotations);
a query's vectors as the pipeline makes them (the decoded image, each preprocessing view and,
with ``embedding.flip``, the mirrored image, through ``csadetect.models.embedding.model_inputs``); a query
matches an original when any of its vectors has cosine similarity >= the threshold with any of
the original's rows. "Combined" = PDQ + views or the embedding, what
``IndicatorIndex.match_image`` reports in the pipeline's configuration.

The thresholds of csadetect.media.preprocess were tuned on the ``dev`` split (generated originals and
distractors with development seeds); the headline numbers are from the ``test`` split (held out:
scikit-image photos and generated pictures with other seeds, other distractors).

    .venv/bin/python -m benchmarks.bench_robustness            # both splits, writes robustness.md
    .venv/bin/python -m benchmarks.bench_robustness --split dev --no-write
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from csadetect.config.settings import load_settings
from csadetect.indicators.rows import media_rows
from csadetect.media.hashing import hash_image, hash_image_with_views, load_image, pdq_from_image
from csadetect.media.preprocess import views
from csadetect.models.embedding import KIND as EMBEDDING, EmbeddingModel, EmbeddingSpec, model_inputs
from csadetect.signals.embedding import EMBEDDING_CROPS, EMBEDDING_ROTATIONS, split_embedding
from training.embedding_data import TRAIN_SKIMAGE
from training.evaluate_images import original_sims
from training.robustness_set import (FRAMINGS, LATE, QUALITY_GATE, TRANSFORMS, build_distractors, build_originals,
                                     encode, split_seed)

THRESHOLD = 31

# --------------------------------------------------------------------------- matching


def _words(h: bytes) -> np.ndarray:
    return np.frombuffer(h, dtype=">u8").astype(np.uint64)


class Embedder:
    """The configured embedding model, its threshold and the pipeline's query views."""

    def __init__(self):
        settings = load_settings()
        self.match = settings.match
        self.spec = EmbeddingSpec.resolve(settings.embedding)
        self.model = EmbeddingModel.load(self.spec.path)
        self.flip = settings.embedding.flip
        self.threshold = self.spec.threshold
        # how the threshold was set (training/calibrate_embedding.py), when the model records it
        self.provenance = EMBEDDING.metadata(self.spec.path).get("threshold_provenance") \
            if settings.embedding.threshold is None else None

    def original(self, data: bytes) -> np.ndarray:
        """An original's embedding rows, ``(rows, dim)``, made by ``csadetect.indicators.rows.media_rows``
        (what ``indicators from-media`` runs): the decoded image and its index-side views
        (``csadetect.signals.embedding.embedding_views``), read back from the rows' values."""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "original.png")
            Path(path).write_bytes(data)
            rows, _ = media_rows(path, self.match, embedder=self.model)
        vectors = np.stack([split_embedding(r.value)[1] for r in rows if r.kind == "embedding"])
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def query(self, pictures) -> np.ndarray:
        """A query's vectors, as ``HashMedia`` + ``EmbedImages`` make them: every view (+ mirror)."""
        _, batch = model_inputs(pictures, self.model.input_size, flip=self.flip)
        return self.model.embed_arrays(batch)


class Query:
    """Candidate hashes of one query image, hashed from its bytes like the pipeline does:
    plain = the 8 dihedral hashes of the image; pre = those plus the 8 of each view; with an
    ``embedder``, ``vectors`` = the embeddings of the image, its views and its mirror."""

    def __init__(self, data: bytes, embedder: "Embedder | None" = None):
        hashed, pictures = hash_image_with_views(data, preprocess=views)
        self.view_names = [name for name, _ in hashed.variants]
        main = [_words(h) for h in hashed.dihedral] if hashed.quality >= QUALITY_GATE else []
        extra = [_words(h) for _, v in hashed.variants if v.quality >= QUALITY_GATE for h in v.dihedral]
        self.plain = np.array(main, dtype=np.uint64).reshape(-1, 4)
        self.pre = np.array(main + extra, dtype=np.uint64).reshape(-1, 4)
        self.vectors = embedder.query(pictures) if embedder is not None else None


def min_distances(cands: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Min Hamming distance of any candidate to each indexed hash (257 when no candidates)."""
    if cands.shape[0] == 0:
        return np.full(index.shape[0], 257, dtype=np.int64)
    d = np.bitwise_count(cands[:, None, :] ^ index[None, :, :]).sum(axis=-1)
    return d.min(axis=0).astype(np.int64)


def _cpu_ms(fn, repeat: int = 3) -> float:
    """Best of ``repeat`` CPU-time measurements of fn(), in ms (robust to a busy machine)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best * 1e3


def measure_cost(samples: list[bytes], embedder: "Embedder | None" = None) -> dict:
    """Per image: PDQ (8 dihedral) of the decoded image, views(), and PDQ of the views; with an
    embedder, the query embedding (image + views (+ mirror), one model call)."""
    pdq_ms, views_ms, view_pdq_ms, embed_ms, n_views = [], [], [], [], 0
    for data in samples:
        img = load_image(data)
        pdq_ms.append(_cpu_ms(lambda: pdq_from_image(img)))
        views_ms.append(_cpu_ms(lambda: views(img)))
        found = views(img)
        n_views += len(found)
        view_pdq_ms.append(_cpu_ms(lambda: [pdq_from_image(v) for _, v in found]))
        if embedder is not None:
            embed_ms.append(_cpu_ms(lambda: embedder.query([("image", img)] + found)))
    return {
        "embed": float(np.mean(embed_ms)) if embed_ms else None,
        "n": len(samples),
        "pdq": float(np.mean(pdq_ms)),
        "views": float(np.mean(views_ms)),
        "views_p95": float(np.percentile(views_ms, 95)),
        "view_pdq": float(np.mean(view_pdq_ms)),
        "views_per_image": n_views / max(1, len(samples)),
    }


def _embedding_hits(q: Query, emb: "np.ndarray | None", threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(best cosine similarity of any query vector to any row of each original, hit mask);
    ``emb`` is ``(originals, rows, dim)``, scored like ``training/evaluate_images.py``."""
    if emb is None or q.vectors is None:
        return np.full(0, -1.0), np.zeros(0, dtype=bool)
    sims = original_sims(q.vectors, emb)
    return sims, sims >= threshold


def evaluate(split: str, log=print, embedder: "Embedder | None" = None) -> dict:
    t0 = time.perf_counter()
    originals = build_originals(split)
    encoded = [encode(img, "png") for _, img in originals]
    index = np.array([_words(hash_image(data).pdq) for data in encoded], dtype=np.uint64)
    # (originals, rows, dim): every original has the same rows (image, crops, rotations)
    emb = np.stack([embedder.original(data) for data in encoded]) if embedder is not None else None
    threshold = embedder.threshold if embedder is not None else 1.0
    log(f"[{split}] {len(originals)} originals ({time.perf_counter() - t0:.1f}s)")

    n_orig = len(originals)
    per_transform: dict[str, dict[str, int]] = {}
    false = {"plain": 0, "pre": 0, "emb": 0, "comb": 0}
    closest_wrong = {"plain": 257, "pre": 257}
    sim_wrong = -1.0  # largest similarity of a copy to another original
    # per query: (transform or None for a distractor, own original or -1, similarity to every
    # original, PDQ + views hit on every original): to re-score at another threshold
    detail: list[tuple] = []
    view_counts: dict[str, int] = {}
    framed_samples: list[bytes] = []
    for tname, (fn, how) in TRANSFORMS.items():
        stats = dict.fromkeys(("n", "plain", "pre", "emb", "comb", "photo_n", "photo_plain", "photo_pre",
                               "photo_emb", "photo_comb"), 0)
        for o_index, (oname, img) in enumerate(originals):
            photo = oname.startswith("sk:")
            rng = np.random.default_rng(split_seed(split, tname, oname))
            data = encode(fn(img, rng), how)
            if tname in FRAMINGS and o_index % 3 == 0:
                framed_samples.append(data)
            q = Query(data, embedder)
            for v in q.view_names:
                view_counts[v] = view_counts.get(v, 0) + 1
            wrong = np.arange(n_orig) != o_index
            stats["n"] += 1
            stats["photo_n"] += photo
            hits = {}
            for key, cands in (("plain", q.plain), ("pre", q.pre)):
                d = min_distances(cands, index)
                hits[key] = d <= THRESHOLD
                closest_wrong[key] = min(closest_wrong[key], int(d[wrong].min()))
            if emb is not None:
                sims, hits["emb"] = _embedding_hits(q, emb, threshold)
                hits["comb"] = hits["pre"] | hits["emb"]
                sim_wrong = max(sim_wrong, float(sims[wrong].max()))
                detail.append((tname, o_index, sims.astype(np.float32), hits["pre"]))
            for key, hit in hits.items():
                stats[key] += int(hit[o_index])
                stats["photo_" + key] += int(photo and hit[o_index])
                false[key] += int(hit[wrong].sum())
        per_transform[tname] = stats
        line = f"[{split}] {tname:20s} plain {stats['plain']:3d}/{stats['n']}  views {stats['pre']:3d}/{stats['n']}"
        if emb is not None:
            line += f"  embedding {stats['emb']:3d}/{stats['n']}  combined {stats['comb']:3d}/{stats['n']}"
        log(line)

    distractors = build_distractors(split)
    d_false = {"plain": 0, "pre": 0, "emb": 0, "comb": 0}
    d_closest = {"plain": 257, "pre": 257}
    d_sim = -1.0  # largest similarity of a distractor to an original
    with_views = {"plain": 0, "framed": 0}
    offenders: list[str] = []
    for name, data in distractors:
        q = Query(data, embedder)
        with_views["framed" if "+" in name else "plain"] += bool(q.view_names)
        for v in q.view_names:
            view_counts[v] = view_counts.get(v, 0) + 1
        hits = {}
        for key, cands in (("plain", q.plain), ("pre", q.pre)):
            d = min_distances(cands, index)
            hits[key] = d <= THRESHOLD
            d_closest[key] = min(d_closest[key], int(d.min()))
        if emb is not None:
            sims, hits["emb"] = _embedding_hits(q, emb, threshold)
            hits["comb"] = hits["pre"] | hits["emb"]
            d_sim = max(d_sim, float(sims.max()))
            detail.append((None, -1, sims.astype(np.float32), hits["pre"]))
        for key, hit in hits.items():
            d_false[key] += int(hit.sum())
        by_pdq = hits["plain"] | hits["pre"]
        found = [(i, "pdq") for i in np.flatnonzero(by_pdq)]
        if "emb" in hits:
            found += [(i, "embedding") for i in np.flatnonzero(hits["emb"])]
        if found:
            offenders.append(f"{name} -> {', '.join(f'{originals[i][0]} ({how})' for i, how in found)}")
    log(f"[{split}] {len(distractors)} distractors: false matches plain {d_false['plain']}, views {d_false['pre']}"
        + (f", embedding {d_false['emb']} (largest similarity {d_sim:.4f})" if emb is not None else ""))

    plain_samples = [data for name, data in distractors if "+" not in name]
    cost_plain = measure_cost(plain_samples[::2], embedder)
    cost_framed = measure_cost(framed_samples, embedder)
    log(f"[{split}] done in {time.perf_counter() - t0:.0f}s")
    return {
        "split": split,
        "originals": originals,
        "per_transform": per_transform,
        "false_copies": (false["plain"], false["pre"]),
        "closest_wrong_copy": (closest_wrong["plain"], closest_wrong["pre"]),
        "false_distractors": (d_false["plain"], d_false["pre"]),
        "closest_distractor": (d_closest["plain"], d_closest["pre"]),
        "embedding": None if emb is None else {
            "version": embedder.spec.version,
            "threshold": threshold,
            "provenance": embedder.provenance,
            "flip": embedder.flip,
            "rows": int(emb.shape[1]),
            "views": _index_views_text(),
            "false_copies": (false["emb"], false["comb"]),
            "closest_wrong_copy": sim_wrong,
            "false_distractors": (d_false["emb"], d_false["comb"]),
            "closest_distractor": d_sim,
            "detail": detail,
        },
        "n_distractors": len(distractors),
        "distractors_with_views": with_views,
        "offenders": offenders,
        "view_counts": view_counts,
        "cost_plain": cost_plain,
        "cost_framed": cost_framed,
        "seconds": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------- report


def _pct(k: int, n: int) -> str:
    return f"{k / n:.0%} ({k}/{n})" if n else "-"


def table(res: dict) -> str:
    photos = any(s["photo_n"] for s in res["per_transform"].values())
    emb = res.get("embedding")
    head = "| transform | plain PDQ | PDQ + views |"
    align = "| --- | ---: | ---: |"
    if emb:
        head += " embedding | PDQ + views or embedding |"
        align += " ---: | ---: |"
    if photos:
        head += " photos only: plain | photos only: + views |" + (" photos only: combined |" if emb else "")
        align += " ---: | ---: |" + (" ---: |" if emb else "")
    rows = [head, align]
    keys = ("n", "plain", "pre", "emb", "comb", "photo_n", "photo_plain", "photo_pre", "photo_emb", "photo_comb")
    tot = dict.fromkeys(keys, 0)
    for tname, s in res["per_transform"].items():
        for key in tot:
            tot[key] += s.get(key, 0)
        better = s["pre"] > s["plain"]
        label = f"{tname} (late)" if tname in LATE else tname
        pre = _pct(s["pre"], s["n"])
        row = f"| {label} | {_pct(s['plain'], s['n'])} | {'**' + pre + '**' if better else pre} |"
        if emb:
            comb = _pct(s["comb"], s["n"])
            row += f" {_pct(s['emb'], s['n'])} | {'**' + comb + '**' if s['comb'] > s['pre'] else comb} |"
        if photos:
            row += f" {_pct(s['photo_plain'], s['photo_n'])} | {_pct(s['photo_pre'], s['photo_n'])} |"
            if emb:
                row += f" {_pct(s['photo_comb'], s['photo_n'])} |"
        rows.append(row)
    n = tot["n"]
    row = (
        f"| **recall, all transforms** | {tot['plain'] / n:.1%} ({tot['plain']}/{n}) "
        f"| {tot['pre'] / n:.1%} ({tot['pre']}/{n}) |"
    )
    if emb:
        row += f" {tot['emb'] / n:.1%} ({tot['emb']}/{n}) | {tot['comb'] / n:.1%} ({tot['comb']}/{n}) |"
    if photos:
        pn = tot["photo_n"]
        row += f" {tot['photo_plain'] / pn:.1%} | {tot['photo_pre'] / pn:.1%} |"
        if emb:
            row += f" {tot['photo_comb'] / pn:.1%} |"
    rows.append(row)
    pad = (" | | |" if emb else " | |") if photos else ""
    fp, fv = res["false_copies"]
    cp, cv = res["closest_wrong_copy"]
    extra = ""
    if emb:
        fe, fc = emb["false_copies"]
        extra = f" {fe} ({emb['closest_wrong_copy']:.3f}) | {fc} |"
    closest = "closest distance / largest similarity" if emb else "closest distance"
    rows.append(f"| false matches: copy -> wrong original (pairs; {closest}) | {fp} ({cp}) | {fv} ({cv}) |{extra}{pad}")
    dp, dv = res["false_distractors"]
    cp, cv = res["closest_distractor"]
    extra = ""
    if emb:
        fe, fc = emb["false_distractors"]
        extra = f" {fe} ({emb['closest_distractor']:.3f}) | {fc} |"
    rows.append(
        f"| false matches: distractor -> original ({res['n_distractors']} distractors; pairs; {closest}) "
        f"| {dp} ({cp}) | {dv} ({cv}) |{extra}{pad}"
    )
    return "\n".join(rows)


def _cost_line(res: dict) -> str:
    cp, cf = res["cost_plain"], res["cost_framed"]
    return (
        f"Cost per image (CPU ms, best of 3, on the shared 2-core dev VM, so read the ratios rather than the "
        f"absolute numbers): ordinary pictures ({cp['n']} unframed distractors, PDQ of the image with its 8 "
        f"dihedral hashes {cp['pdq']:.1f} ms): `views()` {cp['views']:.1f} ms (p95 {cp['views_p95']:.1f}; "
        f"{cp['views'] / cp['pdq']:.1f}x one PDQ), {cp['views_per_image']:.2f} views per image whose PDQ adds "
        f"{cp['view_pdq']:.1f} ms. Framed copies ({cf['n']} images, PDQ {cf['pdq']:.1f} ms): `views()` "
        f"{cf['views']:.1f} ms (p95 {cf['views_p95']:.1f}; {cf['views'] / cf['pdq']:.1f}x one PDQ), "
        f"{cf['views_per_image']:.2f} views per image whose PDQ adds {cf['view_pdq']:.1f} ms."
        + (f" The query embedding (image, views and mirror in one model call, CPU time of all TensorFlow "
           f"threads) costs {cp['embed']:.1f} ms per ordinary picture and {cf['embed']:.1f} ms per framed copy."
           if cp.get("embed") is not None else "")
    )


def at_threshold(res: dict, threshold: float) -> dict:
    """Embedding and combined recall and false-match pairs of a split re-scored at ``threshold``."""
    per: dict[str, list[int]] = {}  # transform -> [n, embedding, combined, PDQ + views]
    false = {"copy_emb": 0, "copy_comb": 0, "dist_emb": 0, "dist_comb": 0}
    for tname, own, sims, pre in res["embedding"]["detail"]:
        hit = sims >= threshold
        comb = hit | pre
        if tname is None:
            false["dist_emb"] += int(hit.sum())
            false["dist_comb"] += int(comb.sum())
            continue
        row = per.setdefault(tname, [0, 0, 0, 0])
        row[0] += 1
        row[1] += int(hit[own])
        row[2] += int(comb[own])
        row[3] += int(pre[own])
        wrong = np.arange(len(sims)) != own
        false["copy_emb"] += int(hit[wrong].sum())
        false["copy_comb"] += int(comb[wrong].sum())
    n = sum(r[0] for r in per.values())
    return {"threshold": threshold, "per_transform": per, "n": n, "false": false,
            "emb": sum(r[1] for r in per.values()), "comb": sum(r[2] for r in per.values())}


def zero_false_threshold(res: dict) -> float:
    """The smallest threshold with no embedding false match on a split: just above the largest
    similarity of a copy to another original or of a distractor to any original."""
    worst = -1.0
    for tname, own, sims, _ in res["embedding"]["detail"]:
        others = sims if tname is None else np.delete(sims, own)
        if len(others):
            worst = max(worst, float(others.max()))
    return float(np.nextafter(np.float32(worst), np.float32(2.0)))


def _threshold_table(test: dict, dev: "dict | None") -> list[str]:
    """Test split at the configured threshold and at one calibrated for zero false matches on dev."""
    rows = [(f"{test['embedding']['threshold']:.4f} (configured)", at_threshold(test, test["embedding"]["threshold"]))]
    prov = test["embedding"].get("provenance") or {}
    if prov.get("previous_threshold") is not None:
        rows.append((f"{prov['previous_threshold']:.4f} (previous, calibrated on `csadetect.media.synth` only)",
                     at_threshold(test, float(prov["previous_threshold"]))))
    if dev is not None and dev.get("embedding"):
        t_dev = zero_false_threshold(dev)
        rows.append((f"{t_dev:.4f} (no false match on the dev split)", at_threshold(test, t_dev)))
    out = [
        "| embedding threshold | embedding recall | PDQ + views or embedding | false pairs: copy -> wrong original "
        "(embedding / combined) | false pairs: distractor -> original (embedding / combined) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, r in rows:
        f, n = r["false"], r["n"]
        out.append(f"| {label} | {r['emb'] / n:.1%} ({r['emb']}/{n}) | {r['comb'] / n:.1%} ({r['comb']}/{n}) "
                   f"| {f['copy_emb']} / {f['copy_comb']} | {f['dist_emb']} / {f['dist_comb']} |")
    if dev is not None and dev.get("embedding"):
        r = rows[-1][1]
        gains = [f"{t} {c[3] / c[0]:.0%} -> {c[2] / c[0]:.0%}" for t, c in r["per_transform"].items() if c[2] > c[3]]
        out += ["", f"At {r['threshold']:.4f} the embedding still adds (PDQ + views -> combined, test split): "
                + ("; ".join(gains) if gains else "nothing") + "."]
    return out


def _index_views_text() -> str:
    """The index-side views of ``csadetect.signals.embedding.embedding_views``, in words."""
    parts = [f"a centre crop with {f:.0%} cut from each side" for f in EMBEDDING_CROPS]
    parts += [f"a {d:+g}° rotation" for d in EMBEDDING_ROTATIONS]
    return ", ".join(parts) if parts else "none"


def _dev_share(prov: dict, dev: "dict | None") -> str:
    """Which part of the development split the threshold's calibration set holds (its provenance)."""
    sets = [c for c in prov.get("calibration_sets", []) if "bench_robustness" in c.get("name", "")]
    if not sets or dev is None:
        return "its originals, their 30 edits and its distractors"
    c = sets[0]
    d = c.get("distractors")
    dists = "its distractors" if d is None or d == dev["n_distractors"] else f"{d} of its {dev['n_distractors']} distractors"
    return f"its {c.get('originals', len(dev['originals']))} originals, their {c.get('copies')} edits and {dists}"


def _embedding_text(test: dict, dev: "dict | None" = None) -> list[str]:
    """What the embedding columns mean, and what they add (from the test split's numbers)."""
    emb = test["embedding"]
    seen = [name[3:] for name, _ in test["originals"] if name.startswith("sk:") and name[3:] in TRAIN_SKIMAGE]
    prov = emb.get("provenance")
    if prov:
        worst = prov["max_false_pair"]
        calibrated = [
            "reports; bold there marks a gain over PDQ + views. The threshold was calibrated by",
            "`training/calibrate_embedding.py`"
            + (f" with the same {emb['rows']} rows per original"
               if (prov.get("index_rows_per_original") or {}).get("rows") == emb["rows"] else "")
            + " (largest false-pair similarity on its calibration set, "
            f"{prov['max_false_pair_similarity']:.4f}",
            f"({worst['kind']}: `{worst['query']}` vs `{worst['original']}`), + margin {prov['margin']}). That calibration "
            "set includes this benchmark's",
            "**development split** (" + _dev_share(prov, dev) + "), so the development split's",
            "embedding numbers below are not held out for the threshold; the **test split** was not used. Caveats:",
        ]
    else:
        calibrated = [
            "reports; bold there marks a gain over PDQ + views. Caveats: the threshold was not calibrated on",
            "these pictures;",
        ]
    return [
        f"**Embedding** columns: the configured image embedding (`{emb['version']}`, the reference model, a",
        "benign-proxy stand-in; see `csadetect/models/cards/embedding.md`) at its calibrated threshold, cosine similarity",
        f">= {emb['threshold']:.4f}. An original's embedding rows are made by `csadetect.indicators.rows.media_rows`, as",
        f"`indicators from-media` makes them: {emb['rows']} rows, the decoded image and its index-side views",
        f"(`csadetect.signals.embedding.embedding_views`: {emb['views']}). A query is embedded as the pipeline does it",
        "(the image, each preprocessing view" + (" and the mirrored image" if emb["flip"] else "")
        + ") and matches an original when any of its vectors reaches",
        "the threshold against any of the original's rows. \"PDQ + views or embedding\" is what the pipeline's",
        "matcher (`IndicatorIndex.match_image`)",
    ] + calibrated + [
        "the generated originals here come from this",
        "benchmark's own generators, which the model never saw (in training); but "
        + f"{len(seen)} of the {sum(1 for n, _ in test['originals'] if n.startswith('sk:'))} photos "
        + f"({', '.join(seen)}) were embedding *training* images, so the",
        "photo column's combined numbers are optimistic for the embedding's share.",
    ]


def _same_as_rows(test: dict) -> list[str]:
    """Transforms of this benchmark made exactly like an index-side row (``embedding_views``)."""
    per = test["per_transform"]
    same = [(f"crop_centre_{round(200 * f)}", f"`-c{round(f * 100):02d}` ({f:.0%} off each side, centred)")
            for f in EMBEDDING_CROPS]
    same += [(f"rotate_{d:g}", f"`-r{d:+g}` ({d:+g}°, expanded canvas, black fill)") for d in EMBEDDING_ROTATIONS]
    same = [(t, row) for t, row in same if t in per]
    if not same:
        return []
    pct = lambda t: _pct(per[t]["comb"], per[t]["n"]).split(" ")[0]  # noqa: E731
    off = [t for t in ("crop_offcentre_20", "crop_centre_20") if t in per]
    return [
        "Some of these gains are by construction: "
        + "; ".join(f"`{t}` ({pct(t)}) is made the way the index row {row} is" for t, row in same)
        + ", so such a copy differs from one of the original's rows only by its JPEG re-encoding (and a pixel",
        "of rounding). They show that the rows work for exactly that edit, not that the model is crop- or",
        "rotation-invariant: another angle or fill, a larger or an off-centre crop is not covered by a row ("
        + "; ".join(f"{t} {pct(t)}" for t in off) + ").",
    ]


def _embedding_findings(test: dict, dev: "dict | None") -> list[str]:
    """What the embedding adds on the test split, its false matches, and a fair threshold."""
    emb = test["embedding"]
    per = test["per_transform"]
    gains = [f"{t} {_pct(s['pre'], s['n']).split(' ')[0]} -> {_pct(s['comb'], s['n']).split(' ')[0]}"
             for t, s in per.items() if s["comb"] > s["pre"]]
    weak = [f"{t} {_pct(s['comb'], s['n']).split(' ')[0]}" for t, s in per.items() if s["comb"] < 0.5 * s["n"]]
    return [
        "Where the embedding adds matches at the configured threshold (test split, PDQ + views -> combined): "
        + "; ".join(gains) + ".",
        "Combined recall still below 50%: " + ("; ".join(weak) if weak else "none") + ".",
    ] + _same_as_rows(test) + [
        "",
        f"**False matches:** PDQ + views makes {test['false_copies'][1]} (copy, wrong original) and "
        f"{test['false_distractors'][1]} (distractor, original) pairs; at the configured threshold the embedding makes "
        f"{emb['false_copies'][0]} (largest similarity {emb['closest_wrong_copy']:.3f}) and "
        f"{emb['false_distractors'][0]} (largest {emb['closest_distractor']:.3f}).",
    ] + ([
        "The calibrated threshold does not keep false matches at zero on these held-out pictures: that part of",
        "the recall above is bought with false matches (every one of them goes to human review).",
    ] if emb["false_copies"][0] + emb["false_distractors"][0] else [
        "None of the test split's false pairs reaches the calibrated threshold, on pictures it never saw.",
    ]) + [
        "The table below re-scores the test split (same rows per original) at other thresholds: the previous",
        "one, calibrated on",
        "`csadetect.media.synth` pictures only, and the smallest with no false match on the development split:",
        "",
    ] + _threshold_table(test, dev)


def report(results: list[dict]) -> str:
    test = next((r for r in results if r["split"] == "test"), results[0])
    n_orig = len(test["originals"])
    n_sk = sum(1 for name, _ in test["originals"] if name.startswith("sk:"))
    n_copies = sum(s["n"] for s in test["per_transform"].values())
    wv = test["distractors_with_views"]
    with_emb = test.get("embedding") is not None
    lines = [
        "## Robustness to edits: plain PDQ vs. PDQ + preprocessing views"
        + (" vs. + the image embedding" if with_emb else ""),
        "",
        "Does an edited copy still match its original (Hamming distance <= 31 to the original's PDQ,",
        "quality >= 50, any of the 8 dihedral hashes), and does anything match an original it is not a",
        "copy of? \"PDQ + views\" also hashes the views of `csadetect.media.preprocess.views` (uniform borders,",
        "letterbox and mats peeled off; the photo region of a screenshot-like canvas) and matches when any",
        "hash matches. Everything is built at run time, nothing is downloaded.",
        "",
        f"**Held-out test split**: {n_orig} originals ({n_sk} photos bundled with scikit-image, "
        f"{n_orig - n_sk} generated pictures) x {len(TRANSFORMS)} transforms = {n_copies} copies, and "
        f"{test['n_distractors']} distractors (generated pictures, scikit-image textures, drawings and documents "
        "and crops of them, generated text pages; each plain and in a randomly framed version). Copies are",
        "saved as JPEG q=85 (screenshots as PNG) unless named otherwise and hashed from the bytes with",
        "`hash_image`. The thresholds of `csadetect/media/preprocess.py` were tuned on a separate development",
        "split (generated originals and distractors from other seeds, the other half of the scikit-image",
        "distractors), shown further down. Transforms marked *late* were added after a first tuning round;",
        "their first held-out numbers (chat_bubble 0%, polaroid 100%, border_small_q40 47%) led to one more",
        "change tuned on the development split (finding a picture's edge a few lines past a bar), so for",
        "those three the test split has been looked at once. All framings were written for this benchmark",
        "by the author of the detector: they show it works on these layouts, not on every app's.",
        "The \"photos only\" columns restrict the test split to its scikit-image photos.",
        "",
    ]
    if with_emb:
        lines += _embedding_text(test, next((r for r in results if r is not test), None)) + [""]
    lines += [
        table(test),
        "",
        _cost_line(test),
        "",
    ]
    if with_emb:
        lines += _embedding_findings(test, next((r for r in results if r is not test), None)) + [""]
    lines += [
        f"Views returned over all {n_copies + test['n_distractors']} test images: "
        + ", ".join(f"`{k}` {v}" for k, v in sorted(test["view_counts"].items()))
        + f"; {wv['plain']} of the {test['n_distractors'] // 2} unframed distractors got a view "
        f"(genuine flat margins: text pages, drawings on white), {wv['framed']} of the "
        f"{test['n_distractors'] // 2} framed ones.",
        "",
        "What preprocessing does not fix: crops (the copy lacks part of the original; PDQ itself already",
        "fails at ~5% off each side), rotation by a few degrees, and overlays inside the picture (text",
        "banners, logos), which are left to PDQ as before. Known misses among the framings (seen on the",
        "test split, not tuned for): a picture whose edge looks like its frame, e.g. a dark photo with a",
        "black surround on black bars (Hubble deep field, retina) or a pale sky under a white caption bar",
        "(cameraman, rocket), keeps that side; a blurred fill recovers generated pictures better than",
        "photos, whose edges against a blurred copy of themselves are often too soft to find; a picture",
        "separated from a neighbouring UI element (a chat bubble) by less than ~5 px is merged with it.",
    ]
    for res in results:
        if res is test:
            continue
        lines += [
            "",
            f"Development split ({len(res['originals'])} generated originals, {res['n_distractors']} distractors), "
            "used for tuning" + (" and, with its edits and distractors, part of the embedding threshold's calibration set"
                                 if (res.get("embedding") or {}).get("provenance") else "") + ":",
            "",
            table(res),
        ]
    offenders = [f"{r['split']}: {o}" for r in results for o in r["offenders"]]
    if offenders:
        lines += ["", "Distractors that matched an original:", ""] + [f"- {o}" for o in offenders]
    lines += [
        "",
        "Reproduce (a few minutes on 2 cores; fixed seeds; `--no-embedding` for the PDQ columns only):",
        "",
        "```",
        ".venv/bin/python -m benchmarks.bench_robustness",
        "```",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_robustness", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("test", "dev", "both"), default="both")
    ap.add_argument("--no-write", action="store_true", help="print only, do not write benchmarks/robustness.md")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "robustness.md"))
    ap.add_argument("--no-embedding", action="store_true", help="PDQ only (no TensorFlow, no embedding columns)")
    args = ap.parse_args(argv)
    splits = ["test", "dev"] if args.split == "both" else [args.split]
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    embedder = None
    if not args.no_embedding:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        embedder = Embedder()
        log(f"embedding {embedder.spec.version} at cosine >= {embedder.threshold:.4f} (flip {embedder.flip})")
    results = [evaluate(s, log=log, embedder=embedder) for s in splits]
    text = report(results)
    print(text)
    if not args.no_write:
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
