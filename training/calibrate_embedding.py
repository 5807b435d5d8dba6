"""Calibrate the image embedding's near-duplicate threshold on a broad calibration set.

    python -m training.calibrate_embedding [--model DIR] [--write]

The threshold is the largest *false-pair* cosine similarity on a calibration set, plus a margin
(``MARGIN``), rounded up to 4 decimals. A false pair is a query and an original it is not a copy of:

* **copy -> wrong original**: an edited copy of calibration original A against original B (this is
  what produced the wrong-original pairs on photos and the benchmark's pictures);
* **distractor -> original**: an image that is no copy of any calibration original;
* **original -> original**: two distinct calibration originals (their indicator vectors).

Queries are embedded as the pipeline embeds them: the bytes go through
:func:`csadetect.media.hashing.hash_image_with_views` with :func:`csadetect.media.regions.views_and_sub_images`
(the framing views and the sub-images, as with ``match.preprocess`` and ``match.sub_images`` on), then
:func:`training.evaluate_images.embed_query` with ``flip=True`` and ``regions=QUERY_REGIONS`` (the image,
each view, the mirror, the image's 60%-, 78%- and 80-98%-area crops at its corners and centre and its strips keeping
60-98% of each side, as with
``match.embedding_query_regions`` on, cut from the mirrored image when the mirror lies nearer one of the
calibration originals' rows, and also from a turn by 90, 180 or 270 degrees when that lies clearly nearer
(``match.embedding_query_turns``), as ``MatchIndicators`` cuts them; a region view's distance counts twice and a strip view's
four times, as the matcher counts them:
:func:`csadetect.signals.embedding.view_weights`); a query's similarity to an original is the largest over its vectors and the original's rows. Originals are
embedded as ``indicators from-media`` embeds them: the decoded image plus its index-side views
(:func:`csadetect.signals.embedding.embedding_views`: ``EMBEDDING_CROPS`` centre crops,
``EMBEDDING_ROTATIONS``, the ``EMBEDDING_REGIONS`` corner and centre crops and side strips, the
``EMBEDDING_BOXES`` corner crops of another aspect and the ``EMBEDDING_TURNS`` turned-and-cropped pictures), one
row each, so a false pair is a query against ANY row of another original (and original -> original: any row against any row of the other).

The calibration set (``calibration_set``) is DISJOINT from every evaluation set:

* ``synth`` originals: ``csadetect.media.synth`` seeds ``CAL_SYNTH_ORIGINALS`` (400000..), each with the
  model card's 18 edits (``training.evaluate_images.ALL_TRANSFORMS``, copy seed 1000 + i);
* ``synth`` distractors: the model card's *calibration* distractors, seeds 200000..200199, plain and
  randomly augmented with the same random stream as ``training/train_embedding.py``
  (``training.embedding_data.random_augment``);
* ``bench-dev``: the development split of the robustness benchmark's set
  (``training.robustness_set``, which ``benchmarks/bench_robustness.py`` reports on: its generated
  originals with all 30 edits, seeds as the benchmark, and its distractors) minus the two
  scikit-image distractors that are evaluation distractors of the model card (``colorwheel``,
  ``shepp_logan_phantom``).

Not used (evaluation only): the card's held-out originals (synth 100000.. and ``HELDOUT_SKIMAGE``),
its evaluation distractors (synth 300000.. and ``DISTRACTOR_SKIMAGE``) and the benchmark's test
split (its scikit-image originals and distractors, its test seeds). ``check_disjoint`` enforces it.

With ``--write`` the model dir's ``metadata.json`` gets the new ``threshold`` and a
``threshold_provenance`` object; ``version`` is left as it is (the weights do not change).
Progress goes to stderr; the result is printed as JSON on stdout.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from csadetect.media.hashing import hash_image_with_views, load_image
from csadetect.media.regions import views_and_sub_images
from csadetect.media.synth import jpeg_bytes
from csadetect.models.embedding import KIND, EmbeddingModel, preprocess
from csadetect.signals.embedding import (EMBEDDING_BOXES, EMBEDDING_CROPS, EMBEDDING_REGIONS, EMBEDDING_ROTATIONS,
                                         EMBEDDING_TURNS, QUERY_REGIONS, embedding_views, view_weights, weigh_similarities)
from training import robustness_set
from training.embedding_data import DISTRACTOR_SKIMAGE, HELDOUT_SKIMAGE, random_augment, synth
from training.evaluate_images import ALL_TRANSFORMS, COPY_SEED, embed_query, transform

MARGIN = 0.005  # fixed before looking at any evaluation set; see the model card
CAL_SYNTH_ORIGINALS = 400000  # seeds 400000.. (disjoint from training 0.., held out 100000..,
CAL_SYNTH_DISTRACTORS = 200000  # calibration distractors 200000.., evaluation distractors 300000..)
EVAL_SYNTH_RANGES = ((100000, 200000), (300000, 400000))
BENCH_SPLIT = "dev"
QUERY_QUALITY = 90
ORIGINAL_QUALITY = 95


def _eval_skimage() -> set[str]:
    """scikit-image names used by any evaluation set (model card and benchmark test split)."""
    return (set(HELDOUT_SKIMAGE) | set(DISTRACTOR_SKIMAGE) | set(robustness_set.SKIMAGE_ORIGINALS)
            | set(robustness_set.SKIMAGE_DISTRACTORS[0::2]))


def calibration_set(
    n_synth: int = 60,
    n_distract: int = 200,
    bench: bool = True,
    synth_transforms: Optional[Sequence[str]] = None,
    bench_transforms: Optional[Sequence[str]] = None,
    seed: int = 7,
    log: Callable[[str], None] = lambda _: None,
) -> dict:
    """The calibration images as bytes: ``originals`` [(name, bytes)], ``copies`` [(name, original
    index, bytes)], ``distractors`` [(name, bytes)], and ``sets`` (a description of each part)."""
    t0 = time.perf_counter()
    originals: list[tuple[str, bytes]] = []
    copies: list[tuple[str, int, bytes]] = []
    distractors: list[tuple[str, bytes]] = []
    sets: list[dict] = []

    synth_transforms = list(ALL_TRANSFORMS if synth_transforms is None else synth_transforms)
    imgs = [synth(CAL_SYNTH_ORIGINALS + i) for i in range(n_synth)]
    for i, img in enumerate(imgs):
        originals.append((f"synth:{CAL_SYNTH_ORIGINALS + i}", jpeg_bytes(img, ORIGINAL_QUALITY)))
    for t in synth_transforms:
        for i, img in enumerate(imgs):
            copies.append((f"synth:{CAL_SYNTH_ORIGINALS + i}+{t}", i,
                           jpeg_bytes(transform(t, img, COPY_SEED + i), QUERY_QUALITY)))
    if n_synth:
        sets.append({"name": "synth originals", "originals": n_synth, "copies": n_synth * len(synth_transforms),
                     "seeds": f"{CAL_SYNTH_ORIGINALS}..{CAL_SYNTH_ORIGINALS + n_synth - 1}",
                     "transforms": synth_transforms, "copy_seed": "1000 + i",
                     "encoding": f"originals JPEG q{ORIGINAL_QUALITY}, copies JPEG q{QUERY_QUALITY}"})
    log(f"synth: {n_synth} originals, {n_synth * len(synth_transforms)} copies ({time.perf_counter() - t0:.0f}s)")

    # the model card's calibration distractors, augmented with train_embedding.evaluate's stream
    rng = np.random.default_rng(seed + 1)
    plain = [(f"synth:{CAL_SYNTH_DISTRACTORS + i}", synth(CAL_SYNTH_DISTRACTORS + i)) for i in range(n_distract)]
    augmented = [(f"{name}+augmented", random_augment(img, rng)) for name, img in plain]
    distractors += [(name, jpeg_bytes(img, QUERY_QUALITY)) for name, img in plain + augmented]
    if n_distract:
        sets.append({"name": "synth calibration distractors (model card)", "distractors": 2 * n_distract,
                     "seeds": f"{CAL_SYNTH_DISTRACTORS}..{CAL_SYNTH_DISTRACTORS + n_distract - 1}",
                     "note": f"plain + randomly augmented (embedding_data.random_augment, rng seed {seed + 1})"})

    if bench:
        excluded = _eval_skimage()
        bench_transforms = list(robustness_set.TRANSFORMS if bench_transforms is None else bench_transforms)
        base = len(originals)
        bo = robustness_set.build_originals(BENCH_SPLIT)
        for name, img in bo:
            originals.append((f"bench-{BENCH_SPLIT}:{name}", robustness_set.encode(img, "png")))
        for t in bench_transforms:
            fn, how = robustness_set.TRANSFORMS[t]
            for k, (name, img) in enumerate(bo):
                rng = np.random.default_rng(robustness_set.split_seed(BENCH_SPLIT, t, name))
                copies.append((f"bench-{BENCH_SPLIT}:{name}+{t}", base + k, robustness_set.encode(fn(img, rng), how)))
        bd = robustness_set.build_distractors(BENCH_SPLIT)
        kept = [(n, d) for n, d in bd if not (n.startswith("sk:") and n[3:].split(":")[0].split("+")[0] in excluded)]
        distractors += [(f"bench-{BENCH_SPLIT}:{n}", d) for n, d in kept]
        sets.append({"name": f"benchmarks/bench_robustness.py {BENCH_SPLIT} split", "originals": len(bo),
                     "copies": len(bo) * len(bench_transforms), "distractors": len(kept),
                     "seeds": f"robustness_set.split_seed('{BENCH_SPLIT}', ...)",
                     "transforms": bench_transforms,
                     "note": f"its {len(bd) - len(kept)} distractors made from scikit-image images of an evaluation "
                             "set are left out"})
        log(f"bench {BENCH_SPLIT}: {len(bo)} originals, {len(bo) * len(bench_transforms)} copies, "
            f"{len(kept)} distractors ({time.perf_counter() - t0:.0f}s)")
    return {"originals": originals, "copies": copies, "distractors": distractors, "sets": sets}


def check_disjoint(cal: dict) -> None:
    """Raise ValueError if any calibration image belongs to an evaluation set."""
    excluded = _eval_skimage()
    names = [n for n, _ in cal["originals"]] + [n for n, _, _ in cal["copies"]] + [n for n, _ in cal["distractors"]]
    for name in names:
        parts = name.split("+")[0].split(":")
        if parts[0] == "synth" and any(lo <= int(parts[1]) < hi for lo, hi in EVAL_SYNTH_RANGES):
            raise ValueError(f"calibration image {name} is in an evaluation set")
        if parts[0].startswith("bench-"):
            if parts[0] == "bench-test":
                raise ValueError(f"calibration image {name} is from the benchmark's test split")
            if parts[1] == "sk" and parts[2] in excluded:
                raise ValueError(f"calibration image {name} is made from an evaluation image")
        if parts[0] == "skimage" and parts[1] in excluded:
            raise ValueError(f"calibration image {name} is in an evaluation set")


def _original_vectors(model, originals, log) -> np.ndarray:
    """As ``indicators from-media``: the decoded image and its index-side views
    (:func:`csadetect.signals.embedding.embedding_views`), no mirror. Returns ``(n, rows, dim)``."""
    per = [[preprocess(v, model.input_size) for _, v in embedding_views(load_image(data))] for _, data in originals]
    m = len(per[0]) if per else 1
    arr = np.stack([a for views in per for a in views]) if per else np.zeros((0, model.input_size, model.input_size, 3), np.uint8)
    return model.embed_arrays(arr).reshape(len(per), m, -1)


def _query_vectors(model, items: Sequence[bytes], rows: np.ndarray, chunk: int = 32, log=None, label: str = ""):
    """Yield (index, vectors, view weights) per query, embedded as the pipeline does (image + views +
    mirror + region views, those cut from the mirrored image when the mirror lies nearer one of the
    originals' ``rows``: :func:`training.evaluate_images.embed_query`;
    :func:`csadetect.signals.embedding.view_weights`)."""
    t0 = time.perf_counter()
    for k, data in enumerate(items):
        _, pictures = hash_image_with_views(data, preprocess=views_and_sub_images)
        vecs, names = embed_query(model, pictures, True, QUERY_REGIONS, rows)
        yield k, vecs, view_weights(names)
        done = k + 1
        if log and (done == len(items) or done % (10 * chunk) == 0):
            log(f"  {label}: {done}/{len(items)} queries ({time.perf_counter() - t0:.0f}s)")


def _family(name: str) -> str:
    """``synth``, ``bench-dev:gen:clouds``, ``bench-dev:sk``, ``bench-dev:page`` ..."""
    parts = name.split("+")[0].split(":")
    if parts[0] == "synth":
        return "synth"
    return ":".join(parts[:3]) if len(parts) > 2 and parts[1] == "gen" else ":".join(parts[:2])


def calibrate(model, cal: dict, margin: float = MARGIN, log: Callable[[str], None] = lambda _: None) -> dict:
    """The threshold and what it comes from (see the module docstring)."""
    check_disjoint(cal)
    t0 = time.perf_counter()
    names = [n for n, _ in cal["originals"]]
    emb3 = _original_vectors(model, cal["originals"], log)  # (n, rows per original, dim)
    n, m = emb3.shape[0], emb3.shape[1]
    emb = emb3.reshape(n * m, -1)
    row_owner = np.repeat(np.arange(n), m)

    def per_original(vecs, weights):  # largest similarity of any query vector to any row of each original
        per = (vecs @ emb.T).reshape(len(vecs), n, m).max(axis=2)  # a region view's distance counts twice
        return weigh_similarities(per, weights).max(axis=0)

    worst = {}  # kind -> (similarity, query, original)
    counts = {}

    by_family = {}  # picture family of the query -> (similarity, query, original)

    def note(kind, sim, query, orig, pairs):
        counts[kind] = counts.get(kind, 0) + pairs
        fam = _family(query)
        if fam not in by_family or sim > by_family[fam][0]:
            by_family[fam] = (float(sim), query, orig)
        if kind not in worst or sim > worst[kind][0]:
            worst[kind] = (float(sim), query, orig)

    # original -> original (indicator vectors: any row of one against any row of the other)
    if n > 1:
        s = emb @ emb.T
        s[row_owner[:, None] == row_owner[None, :]] = -2.0
        i, j = np.unravel_index(int(np.argmax(s)), s.shape)
        i, j = row_owner[i], row_owner[j]
        worst["original -> original"] = (float(s.max()), names[i], names[j])
        counts["original -> original"] = n * (n - 1) // 2

    own_sims = []
    copies = cal["copies"]
    for k, vecs, weights in _query_vectors(model, [d for _, _, d in copies], emb, log=log, label="copies"):
        name, own, _ = copies[k]
        sims = per_original(vecs, weights)
        own_sims.append(float(sims[own]))
        sims[own] = -2.0
        j = int(np.argmax(sims))
        note("copy -> wrong original", sims[j], name, names[j], n - 1)
    dist = cal["distractors"]
    for k, vecs, weights in _query_vectors(model, [d for _, d in dist], emb, log=log, label="distractors"):
        sims = per_original(vecs, weights)
        j = int(np.argmax(sims))
        note("distractor -> original", sims[j], dist[k][0], names[j], n)

    kind, (sim, query, orig) = max(worst.items(), key=lambda kv: kv[1][0])
    threshold = min(0.999, math.ceil((sim + margin) * 1e4) / 1e4)
    own = np.array(own_sims) if own_sims else np.zeros(0)
    result = {
        "threshold": threshold,
        "method": "largest false-pair cosine similarity on the calibration set + margin, rounded up to 4 "
                  "decimals (capped at 0.999)",
        "margin": margin,
        "max_false_pair_similarity": round(sim, 4),
        "max_false_pair": {"kind": kind, "query": query, "original": orig},
        "largest_by_kind": {k: {"similarity": round(v[0], 4), "query": v[1], "original": v[2]}
                            for k, v in sorted(worst.items())},
        "largest_by_query_family": {k: {"similarity": round(v[0], 4), "query": v[1], "original": v[2]}
                                    for k, v in sorted(by_family.items(), key=lambda kv: -kv[1][0])},
        "pairs_compared": counts,
        "query_embedding": "hash_image_with_views(data, preprocess=csadetect.media.regions.views_and_sub_images) -> "
                           "training.evaluate_images.embed_query(model, pictures, True, QUERY_REGIONS, rows) (image, "
                           "views, sub-images, mirror, 60%-, 78%- and 80-98%-area crops at the corners and the centre, strips keeping "
                           "60%, 70%, 80% and 88-98% of each side, cut from the image or its mirror, whichever lies nearer "
                           "the originals' rows (both when closer than the threshold's distance), and also from its turn by "
                           "90, 180 or 270 degrees when that lies nearer than both by more; a region view's distance counts "
                           "twice, a strip view's four times: csadetect.signals.embedding.view_weights); "
                           "originals: the decoded image and its index-side views "
                           "(csadetect.signals.embedding.embedding_views), as indicators from-media; a pair's similarity is "
                           "the largest over the query's vectors and the original's rows",
        "index_rows_per_original": {"rows": int(m), "crops_per_side": list(EMBEDDING_CROPS),
                                    "rotations_deg": list(EMBEDDING_ROTATIONS),
                                    "turned_and_cropped_deg": list(EMBEDDING_TURNS),
                                    "regions": [[a, list(anchors)] for a, anchors in EMBEDDING_REGIONS],
                                    "boxes_width_height": [[list(wh), list(corners)] for wh, corners in EMBEDDING_BOXES]},
        "calibration_sets": cal["sets"],
        "n_originals": n,
        "n_copies": len(copies),
        "n_distractors": len(dist),
        "calibration_copy_recall_at_threshold": round(float(np.mean(own >= threshold)), 3) if len(own) else None,
        "disjoint_from": [
            "model card held-out originals (synth 100000.., HELDOUT_SKIMAGE) and evaluation distractors "
            "(synth 300000.., DISTRACTOR_SKIMAGE)",
            "benchmarks/bench_robustness.py test split (its originals, distractors and seeds)",
        ],
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    log(f"largest false pair {sim:.4f} ({kind}: {query} vs {orig}); threshold {threshold:.4f}")
    return result


def write_provenance(model_dir, result: dict) -> dict:
    """Set ``threshold`` and ``threshold_provenance`` in ``model_dir/metadata.json`` (version kept)."""
    path = Path(model_dir) / "metadata.json"
    meta = json.loads(path.read_text())
    prov = {k: v for k, v in result.items() if k not in ("threshold", "seconds")}
    old = meta.get("threshold_provenance", {}).get("previous_threshold")
    if meta.get("threshold") != result["threshold"]:
        old = meta.get("threshold")
    if old is not None:
        prov["previous_threshold"] = old
    prov["script"] = "python -m training.calibrate_embedding --write"
    meta["threshold"] = result["threshold"]
    meta["threshold_provenance"] = prov
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def run(model_dir=None, write: bool = False, log: Callable[[str], None] = lambda _: None, model=None,
        **set_kwargs) -> dict:
    d = KIND.path(model_dir)
    model = model or EmbeddingModel.load(d)
    log(f"model {model.version} in {d} (current threshold {model.threshold:.4f})")
    cal = calibration_set(log=log, **set_kwargs)
    result = calibrate(model, cal, log=log)
    if write:
        write_provenance(d, result)
        log(f"wrote threshold {result['threshold']:.4f} and threshold_provenance to {d / 'metadata.json'}")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.calibrate_embedding", description=__doc__.splitlines()[0])
    p.add_argument("--model", help="embedding model dir (default: csadetect/models/reference/embedding)")
    p.add_argument("--write", action="store_true", help="write threshold + threshold_provenance to metadata.json")
    p.add_argument("--n-synth", type=int, default=60, help="calibration originals from csadetect.media.synth")
    p.add_argument("--n-distract", type=int, default=200, help="synth calibration distractors (x2: plain + augmented)")
    p.add_argument("--no-bench", action="store_true", help="leave out the benchmark's development split")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    result = run(args.model, args.write, log=say, n_synth=args.n_synth, n_distract=args.n_distract,
                 bench=not args.no_bench)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
