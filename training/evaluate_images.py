"""What the image embedding adds to PDQ, measured through the real matching path.

    python -m training.evaluate_images --out eval.json [--n-heldout 100] [--n-distract 200]

``training/train_embedding.py`` evaluates the embedding and PDQ separately, on PIL images. This
script measures what the pipeline actually does with a known image:

* **Indicators**: every held-out original is written as a JPEG (quality 95) and turned into
  indicator rows by :func:`csadetect.indicators.rows.from_media` with the embedding model, exactly as
  ``csadetect indicators from-media`` does (``pdq`` + ``md5`` + ``sha256`` rows and the
  ``embedding`` rows of the image and its index-side views, ``csadetect.signals.embedding.embedding_views``;
  a copy's embedding similarity to an original is the largest over its vectors and those rows).
  The rows go into an in-memory :class:`csadetect.indicators.index.IndicatorIndex` (as a snapshot would,
  without signing).
* **Queries**: every transformed copy is encoded as JPEG (quality 90) and queried like
  ``csadetect match`` (``csadetect.cli.matching._hash_and_match``) and the pipeline (``HashMedia`` +
  ``EmbedImages`` + ``MatchIndicators``): :func:`csadetect.media.hashing.hash_image_with_views` with
  :func:`csadetect.media.preprocess.views` (when ``match.preprocess``), :func:`csadetect.models.embedding.model_inputs`
  with ``flip=embedding.flip``, ``embed_arrays``, then ``index.match_image`` at the configured
  PDQ threshold, quality gate and embedding threshold (``csadetect/config/default.yaml`` unless ``--config``).

Per transform it reports the recall of the ``pdq`` kind alone, the ``embedding`` kind alone and
either of them ("combined"); a copy only counts when it matches *its own* original's indicator
(MD5/SHA-256 are left out: no copy is byte-identical). Copies that match another original are
counted as false matches. The evaluation distractors of ``training/train_embedding.py`` (generated
seeds 300000.. and ``DISTRACTOR_SKIMAGE``, plain and randomly augmented with the same random
stream) are queried the same way; any match of any kind to any original is a false match.

Originals and transforms are those of ``train_embedding.evaluate`` (held-out generated seeds
100000.. plus ``HELDOUT_SKIMAGE``; ``EVAL_TRANSFORMS`` with seed ``1000 + i`` for original ``i``),
plus a few more (``EXTRA_TRANSFORMS``). All data is benign: generated pictures and scikit-image
sample photos.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image, ImageOps

from tqdm import tqdm

from csadetect.config.settings import load_settings
from csadetect.indicators.index import IndicatorIndex
from csadetect.indicators.rows import from_media
from csadetect.indicators.snapshot import Snapshot
from csadetect.media.hashing import hash_image_with_views
from csadetect.media.regions import preprocessor
from csadetect.media.synth import jpeg_bytes
from csadetect.media.view_value import VALUE
from csadetect.models.embedding import EmbeddingModel, EmbeddingSpec, staged_model_inputs
from csadetect.signals.embedding import (TURN_GATE, query_regions, region_gate_similarity, region_ways, split_embedding, view_thresholds,
                                         weigh_similarities)
from training.embedding_data import (DISTRACTOR_SKIMAGE, EVAL_TRANSFORMS, HELDOUT_SKIMAGE, banner, crop,
                                     eval_transform, random_augment, rotate, skimage_image, synth)

# transforms beyond embedding_data.EVAL_TRANSFORMS: a smaller crop and rotation, edits PDQ
# already survives, an overlay inside the picture, and combinations of two edits of which PDQ
# covers one (mirror, 90-degree turn, greyscale) and the embedding the other (a 10% crop)
EXTRA_TRANSFORMS = ["crop5", "rotate3", "greyscale", "banner", "flip_crop10", "rotate90_crop10", "greyscale_crop10"]
ALL_TRANSFORMS = EVAL_TRANSFORMS + EXTRA_TRANSFORMS
ORIGINAL_QUALITY = 95
QUERY_QUALITY = 90
COPY_SEED = 1000  # copy of original i uses seed COPY_SEED + i (as train_embedding.evaluate)


def transform(name: str, img: Image.Image, seed: int) -> Image.Image:
    """``embedding_data.eval_transform`` plus ``EXTRA_TRANSFORMS`` (deterministic given ``seed``)."""
    rng = np.random.default_rng(seed)
    if name == "rotate3":
        return rotate(img, 3)
    if name == "greyscale":
        return ImageOps.grayscale(img).convert("RGB")
    if name == "banner":
        return banner(img, rng)
    if name == "flip_crop10":
        return crop(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 0.10, rng)
    if name == "rotate90_crop10":
        return crop(img.transpose(Image.Transpose.ROTATE_90), 0.10, rng)
    if name == "greyscale_crop10":
        return crop(ImageOps.grayscale(img).convert("RGB"), 0.10, rng)
    return eval_transform(name, img, seed)  # crop5 and friends: any cropN works there


def build_index(originals: Sequence[Image.Image], workdir: str, settings, model, progress=None):
    """Write the originals as JPEGs, make their rows with ``from_media`` (embedder = ``model``)
    and build an unsigned in-memory index. Returns (index, rows, id -> original number, the
    originals' embedding rows (n, dim) with one row each, else (n, rows, dim) with index-side
    views (``csadetect.signals.embedding.embedding_views``), their PDQ codes (n, 32))."""
    paths = []
    for i, img in enumerate(originals):
        path = os.path.join(workdir, f"original-{i:04d}.jpg")
        with open(path, "wb") as fh:
            fh.write(jpeg_bytes(img, ORIGINAL_QUALITY))
        paths.append(path)
    rows = from_media(paths, settings.match, embedder=model, progress=progress)
    owner = {row.indicator_id: int(row.note[len("original-"):-len(".jpg")]) for row in rows}
    if len(set(owner.values())) != len(originals):
        raise RuntimeError("two originals encode to the same file; their rows would merge")
    index = IndicatorIndex.from_snapshot(Snapshot.in_memory(rows), settings.match)
    emb_rows = [r for r in rows if r.kind == "embedding"]
    m = max(1, len(emb_rows) // max(1, len(originals)))  # rows per original (csadetect.signals.embedding.embedding_views)
    emb = np.zeros((len(originals), m, model.dim), np.float32)
    filled = np.zeros(len(originals), np.int64)
    for row in emb_rows:
        i = owner[row.indicator_id]
        emb[i, filled[i]] = split_embedding(row.value)[1]
        filled[i] += 1
    if m == 1:
        emb = emb[:, 0]
    pdq = np.zeros((len(originals), 32), np.uint8)
    for row in rows:
        if row.kind == "pdq" and not row.indicator_id.endswith(f"-{VALUE}"):  # the picture's own, not its value channel's
            pdq[owner[row.indicator_id]] = np.frombuffer(bytes.fromhex(row.value), np.uint8)
    emb /= np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
    return index, rows, owner, emb, pdq


def original_sims(vectors: np.ndarray, emb: np.ndarray, weights: "np.ndarray | None" = None) -> np.ndarray:
    """Largest cosine of any query vector to any embedding row of each original: ``emb`` is
    ``(n, dim)`` (one row each) or ``(n, rows, dim)`` (the image and its index-side views).
    ``weights`` (one per query vector, :func:`csadetect.signals.embedding.view_weights`): each
    vector's similarity ``s`` counts as ``1 - weight * (1 - s)``, as the matcher scores it."""
    per = (vectors @ emb.T) if emb.ndim == 2 else np.einsum("kd,nmd->knm", vectors, emb).max(axis=2)
    if weights is not None:
        per = weigh_similarities(per, weights)
    return per.max(axis=0)


def embed_query(model, pictures, flip: bool, regions, rows: "np.ndarray | None" = None,
                threshold: "float | None" = None, turns: bool = True,
                turn_gate: "float | None" = TURN_GATE) -> tuple[np.ndarray, tuple]:
    """A query's vectors and their names, as HashMedia, EmbedImages and MatchIndicators make them:
    the pictures (and the mirror with ``flip``), then the query-side region views ``regions``, cut
    from the image, its mirror or both, and (with ``turns``: ``match.embedding_query_turns``; ``turn_gate``:
    ``match.embedding_query_turn_gate``) from a turn of it too, by the rule of ``IndicatorIndex.region_orientations`` (``signals.embedding.region_ways``), here
    against ``rows`` (the indexed embedding rows, ``(n, dim)`` or ``(n, m, dim)``; None: from the
    image) at ``threshold`` (default: the model's). The turned vectors only choose the way: they are
    not among those returned."""
    names, batch, source = staged_model_inputs(pictures, model.input_size, flip=flip, regions=regions)
    own, rest = tuple(names[:len(batch)]), tuple(names[len(batch):])
    vectors = model.embed_arrays(batch)
    if not rest:
        return vectors, own
    ways = ("",)
    if rows is not None:
        flat = rows.reshape(-1, rows.shape[-1])
        ways = region_ways(lambda v: float((flat @ v[0]).max()), vectors, own,
                           1.0 - (model.threshold if threshold is None else threshold),
                           (lambda: model.embed_turned(source, own[0])) if turns else None, turn_gate)
    parts = [model.embed_region_views(source, rest, way) for way in ways]
    return np.concatenate([vectors] + [v for _, v in parts]), own + tuple(n for cut, _ in parts for n in cut)


def query(data: bytes, index, settings, model, spec):
    """One image through the matching path of ``csadetect match`` and the pipeline: its own vectors
    first, the query-side region views where ``match.embedding_query_region_gate`` lets them.
    Returns (matches, query vectors (k, dim): all of them, region views included, the PDQ hashes
    match_image looked up (m, 32))."""
    preprocess = preprocessor(settings.match)
    hashes, pictures = hash_image_with_views(data, max_pixels=settings.limits.max_pixels, preprocess=preprocess,
                                             value=settings.match.value_view)
    names, batch, source = staged_model_inputs(pictures, model.input_size, flip=settings.embedding.flip,
                                               regions=query_regions(settings.match))
    own_names, region_names = names[:len(batch)], names[len(batch):]
    vectors = model.embed_arrays(batch)
    gate = region_gate_similarity(spec.threshold, settings.match.embedding_query_region_gate)
    if region_names:
        def regions(orientation: str):
            return model.embed_region_views(source, region_names, orientation)

        def turned():
            return model.embed_turned(source, own_names[0])

        matches, embedded = index.match_image_gated(hashes, vectors, own_names, spec.version, spec.threshold, gate,
                                                    regions, turned if settings.match.embedding_query_turns else None,
                                                    settings.match.embedding_query_turn_gate)
        if embedded is None:  # the vectors returned: the ones looked up, and the unmirrored region views
            embedded = regions("")
        vectors = np.concatenate([vectors, embedded[1]])
    else:
        matches = index.match_image(hashes, vectors, spec.version, view_thresholds(names, spec.threshold, len(vectors)))
    gate = settings.match.quality_gate
    looked_up = [h for r in [hashes] + [v for _, v in hashes.variants] if r.quality >= gate
                 for h in (r.dihedral or (r.pdq,))]
    codes = np.frombuffer(b"".join(looked_up), np.uint8).reshape(-1, 32)
    return matches, vectors, codes


def _min_hamming(codes: np.ndarray, originals: np.ndarray) -> np.ndarray:
    """Smallest Hamming distance of any query code to each original (257 without codes)."""
    if not len(codes):
        return np.full(len(originals), 257, np.int64)
    x = np.bitwise_count(codes[:, None, :] ^ originals[None, :, :]).sum(axis=-1)
    return x.min(axis=0).astype(np.int64)


def _distractors(n_distract: int, seed: int, extra: Sequence[Image.Image]) -> list[tuple[str, Image.Image]]:
    """The evaluation distractors of ``train_embedding.evaluate`` with the same random stream:
    that script augments its calibration distractors first, so we draw (and drop) those too."""
    rng = np.random.default_rng(seed + 1)
    for i in range(n_distract):
        random_augment(synth(200000 + i), rng)
    plain = [(f"synth:{300000 + i}", synth(300000 + i)) for i in range(n_distract)]
    plain += [(f"skimage:{n}", skimage_image(n)) for n in DISTRACTOR_SKIMAGE]
    plain += [(f"extra:{i}", img) for i, img in enumerate(extra)]
    return plain + [(f"{name}+augmented", random_augment(img, rng)) for name, img in plain]


def evaluate_known(
    embedding_model=None,
    n_heldout: int = 100,
    n_distract: int = 200,
    seed: int = 7,
    log: Callable[[str], None] = print,
    *,
    transforms: Optional[Sequence[str]] = None,
    heldout_skimage: Optional[Sequence[str]] = None,
    extra_distractors: Sequence[Image.Image] = (),
    settings=None,
    progress: bool = True,
) -> dict:
    """Recall of PDQ, the embedding and either, per transform, through the pipeline's matching
    path; false matches on the evaluation distractors. See the module docstring.

    ``embedding_model``: an :class:`csadetect.models.embedding.EmbeddingModel` (default: the configured
    one). The embedding threshold is ``settings.embedding.threshold`` when set, else the model's.
    ``transforms``: default ``ALL_TRANSFORMS``. ``heldout_skimage``: default ``HELDOUT_SKIMAGE``.
    ``extra_distractors``: more distractor images (e.g. a copy of an original, to test the
    counter). ``seed`` seeds the distractor augmentations (``seed + 1`` as in training)."""
    t_start = time.perf_counter()
    settings = settings or load_settings()
    if embedding_model is None:
        spec = EmbeddingSpec.resolve(settings.embedding)
        embedding_model = EmbeddingModel.load(spec.path)
    else:
        threshold = settings.embedding.threshold
        spec = EmbeddingSpec(path="(given)", version=embedding_model.version,
                             threshold=float(threshold if threshold is not None else embedding_model.threshold),
                             dim=embedding_model.dim, input_size=embedding_model.input_size)
    model = embedding_model
    t_model = time.perf_counter() - t_start
    transforms = list(ALL_TRANSFORMS if transforms is None else transforms)
    sk_names = list(HELDOUT_SKIMAGE if heldout_skimage is None else heldout_skimage)
    names = [f"synth:{100000 + i}" for i in range(n_heldout)] + [f"skimage:{n}" for n in sk_names]
    originals = [synth(100000 + i) for i in range(n_heldout)] + [skimage_image(n) for n in sk_names]
    distractors = _distractors(n_distract, seed, extra_distractors)
    n_orig = len(originals)
    total = n_orig * (1 + len(transforms)) + len(distractors)
    bar = tqdm(total=total, desc="evaluate", unit="img", file=sys.stderr, disable=not progress, dynamic_ncols=True)

    with tempfile.TemporaryDirectory(prefix="evaluate-images-") as workdir:
        t0 = time.perf_counter()
        index, rows, owner, emb, pdq = build_index(originals, workdir, settings, model, progress=bar.update)
        t_index = time.perf_counter() - t0
    log(f"{n_orig} originals -> {len(rows)} indicator rows ({t_index:.1f}s); {spec.version} threshold "
        f"{spec.threshold:.4f}, PDQ <= {settings.match.pdq_threshold} bits, quality gate "
        f"{settings.match.quality_gate}, preprocess views {settings.match.preprocess}, sub-images {settings.match.sub_images}, flip {settings.embedding.flip}")

    recall: dict[str, dict] = {}
    wrong = {"pdq": 0, "embedding": 0, "md5": 0, "sha256": 0}
    wrong_max_sim = -1.0
    wrong_pairs: dict[str, int] = {}  # "copy of X -> Y (kind)": copies (over all transforms)
    totals = dict.fromkeys(("n", "pdq", "embedding", "combined"), 0)
    t_queries = 0.0
    n_queries = 0
    for t in transforms:
        found = {"pdq": 0, "embedding": 0, "combined": 0, "pdq_only": 0, "embedding_only": 0, "wrong": 0}
        own_sims, misses = [], []
        for i, img in enumerate(originals):
            data = jpeg_bytes(transform(t, img, COPY_SEED + i), QUERY_QUALITY)
            q0 = time.perf_counter()
            matches, vectors, _ = query(data, index, settings, model, spec)
            t_queries += time.perf_counter() - q0
            n_queries += 1
            kinds_own = {m.kind for m in matches if owner.get(m.indicator_id) == i}
            n_wrong = 0
            for m in matches:
                if owner.get(m.indicator_id) != i:
                    wrong[m.kind] = wrong.get(m.kind, 0) + 1
                    key = f"{names[i]} -> {names[owner[m.indicator_id]]} ({m.kind})"
                    wrong_pairs[key] = wrong_pairs.get(key, 0) + 1
                    n_wrong += 1
            found["wrong"] += n_wrong
            sims = original_sims(vectors, emb)
            own_sims.append(float(sims[i]))
            others = np.delete(sims, i)
            if len(others):
                wrong_max_sim = max(wrong_max_sim, float(others.max()))
            p, e = "pdq" in kinds_own, "embedding" in kinds_own
            found["pdq"] += p
            found["embedding"] += e
            found["combined"] += p or e
            found["pdq_only"] += p and not e
            found["embedding_only"] += e and not p
            if not (p or e):
                misses.append(names[i])
            bar.update()
        r = {k: round(found[k] / n_orig, 3) for k in ("pdq", "embedding", "combined")}
        r.update({"n": n_orig, "found": found, "median_similarity": round(float(np.median(own_sims)), 4),
                  "missed": misses})
        recall[t] = r
        for k in ("pdq", "embedding", "combined"):
            totals[k] += found[k]
        totals["n"] += n_orig
        log(f"{t:16s} pdq {r['pdq']:.3f}  embedding {r['embedding']:.3f}  combined {r['combined']:.3f}  "
            f"median sim {r['median_similarity']:.3f}  wrong-original pairs {found['wrong']}")

    t0 = time.perf_counter()
    false = {"pdq": 0, "embedding": 0, "md5": 0, "sha256": 0}
    matched, offenders = 0, []
    max_sim, max_sim_name, min_pdq, min_pdq_name = -1.0, None, 257, None
    for name, img in distractors:
        q0 = time.perf_counter()
        matches, vectors, codes = query(jpeg_bytes(img, QUERY_QUALITY), index, settings, model, spec)
        t_queries += time.perf_counter() - q0
        n_queries += 1
        for m in matches:
            false[m.kind] = false.get(m.kind, 0) + 1
        if matches:
            matched += 1
            hit = sorted({names[owner[m.indicator_id]] + f" ({m.kind})" for m in matches})
            offenders.append(f"{name} -> {', '.join(hit)}")
        s = float(original_sims(vectors, emb).max())
        if s > max_sim:
            max_sim, max_sim_name = s, name
        d = int(_min_hamming(codes, pdq).min())
        if d < min_pdq:
            min_pdq, min_pdq_name = d, name
        bar.update()
    t_distract = time.perf_counter() - t0
    bar.close()
    pairs = sum(false.values())
    log(f"{len(distractors)} distractors: {matched} matched an original ({pairs} pairs: {false}); "
        f"largest similarity {max_sim:.4f} ({max_sim_name}), closest PDQ {min_pdq} bits ({min_pdq_name})")
    n_all = totals["n"]
    seconds = time.perf_counter() - t_start
    log(f"done in {seconds:.0f}s ({n_queries / t_queries:.1f} queries/s through the matching path)")
    return {
        "model": {"version": spec.version, "threshold": round(spec.threshold, 4), "path": spec.path},
        "settings": {"pdq_threshold": settings.match.pdq_threshold, "quality_gate": settings.match.quality_gate,
                     "preprocess": settings.match.preprocess, "flip": settings.embedding.flip,
                     "original_jpeg_quality": ORIGINAL_QUALITY, "query_jpeg_quality": QUERY_QUALITY},
        "n_originals": n_orig,
        "n_indicator_rows": len(rows),
        "embedding_rows_per_original": int(emb.shape[1]) if emb.ndim == 3 else 1,
        "transforms": transforms,
        "recall": recall,
        "recall_all": {k: round(totals[k] / n_all, 3) if n_all else 0.0 for k in ("pdq", "embedding", "combined")}
        | {"n": n_all, "found": {k: totals[k] for k in ("pdq", "embedding", "combined")}},
        "copies_matching_wrong_original": {
            "pairs": wrong,
            "max_similarity_to_wrong_original": round(wrong_max_sim, 4),
            "by_pair": dict(sorted(wrong_pairs.items(), key=lambda kv: (-kv[1], kv[0]))),
        },
        "false_matches": {
            "n_distractors": len(distractors),
            "distractors_matched": matched,
            "pairs": false,
            "pairs_total": pairs,
            "pairs_compared": len(distractors) * n_orig,
            "max_similarity": round(max_sim, 4),
            "max_similarity_distractor": max_sim_name,
            "threshold_margin": round(spec.threshold - max_sim, 4),
            "closest_pdq_distance": min_pdq,
            "closest_pdq_distractor": min_pdq_name,
            "offenders": offenders,
        },
        "seconds": {
            "total": round(seconds, 1),
            "model_load": round(t_model, 1),
            "index_build": round(t_index, 1),
            "distractors": round(t_distract, 1),
            "queries_per_s": round(n_queries / t_queries, 1) if t_queries else None,
        },
    }


def markdown(res: dict) -> str:
    """The per-transform table of a result, as in csadetect/models/cards/embedding.md."""
    thr = res["model"]["threshold"]
    lines = [f"| Transform | PDQ (pipeline) | Embedding @ {thr} (pipeline) | Combined (either) |", "|---|---|---|---|"]
    for t, r in res["recall"].items():
        lines.append(f"| {t} | {r['pdq']:.3f} | {r['embedding']:.3f} | {r['combined']:.3f} |")
    a = res["recall_all"]
    lines.append(f"| **all** ({a['n']} copies) | {a['pdq']:.3f} | {a['embedding']:.3f} | {a['combined']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluate_images", description=__doc__.splitlines()[0])
    p.add_argument("--out", metavar="FILE.json", help="write the result as JSON")
    p.add_argument("--model", help="embedding model dir (default: the configured one)")
    p.add_argument("--config", help="settings YAML (default: csadetect/config/default.yaml)")
    p.add_argument("--n-heldout", type=int, default=100)
    p.add_argument("--n-distract", type=int, default=200)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--transforms", nargs="+", choices=ALL_TRANSFORMS, metavar="NAME")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = load_settings(args.config)
    model = EmbeddingModel.load(args.model) if args.model else None
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    res = evaluate_known(model, args.n_heldout, args.n_distract, args.seed, log=say, transforms=args.transforms,
                         settings=settings, progress=not args.no_progress)
    print(markdown(res))
    fm, cw = res["false_matches"], res["copies_matching_wrong_original"]
    print(f"\ncopies matching another original: {sum(cw['pairs'].values())} pairs {cw['pairs']}; "
          f"largest similarity to another original {cw['max_similarity_to_wrong_original']}")
    print(f"false matches: {fm['pairs_total']} pairs ({fm['distractors_matched']} of {fm['n_distractors']} "
          f"distractors); largest distractor similarity {fm['max_similarity']} (threshold {res['model']['threshold']})")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
