"""The image model sections of the model benchmark (``benchmarks.bench_models``): the embedding model
(``bench_embedding``: images/s by batch size, with and without preprocessing) and the new-material
classifier head (``bench_classifier``: embeddings/s by batch size, or a note when it is missing or fails);
each appends its markdown section. ``bench_models`` re-exports every name.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.models_common import (dir_size, embedding_dim, fmt_rate, interleaved, log, med, memory, memory_line,
                                      spread, tf_one_thread)

EMBED_TARGET = 200  # images/s per core, batched, after decode (issue 3)
CLASSIFIER_PENDING = "<!-- classifier: csadetect/models/classifier.py was not there when this ran -->"


# ----------------------------------------------------------------------------- embedding
def bench_embedding(args, lines: list) -> dict:
    tf_one_thread()
    from csadetect.media.synth import synthetic_image
    from csadetect.models.embedding import KIND, EmbeddingModel

    model = EmbeddingModel.load()
    s = model.input_size
    n = args.images
    # decoded pictures as the pipeline has them (JPEGs are decoded at reduced size, long side 512)
    pictures = [synthetic_image(i, (512, 384)) for i in range(min(n, 64))]
    pictures = [pictures[i % len(pictures)] for i in range(n)]
    arrays = np.stack([model.preprocess(p) for p in pictures])
    assert arrays.shape == (n, s, s, 3) and arrays.dtype == np.uint8
    log(f"embedding: {n} images, {s}x{s} inputs; batches {args.embed_batches}")

    variants = {f"b{b}": (lambda b=b: model.embed_arrays(arrays, batch_size=b)) for b in args.embed_batches}
    big = 64 if 64 in args.embed_batches else max(args.embed_batches)
    variants["preprocess"] = lambda: [model.preprocess(p) for p in pictures]
    variants["pre+embed"] = lambda: model.embed_arrays(np.stack([model.preprocess(p) for p in pictures]),
                                                       batch_size=big)
    rates, wall = interleaved(variants, args.rounds, {k: n for k in variants})
    size = dir_size(KIND.reference)
    mem = memory("embedding")
    lines += [
        "## Image embedding model",
        "",
        f"`EmbeddingModel.load().embed_arrays(arrays, batch_size=b)` on {n} pre-decoded {s}x{s} uint8 RGB arrays "
        "(\"after decode\": what `HashMedia` hands `EmbedImages`); \"with preprocess\" starts from decoded 512x384 "
        "PIL images (`csadetect.media.synth` pictures, the size a 2048x1536 JPEG decodes to with `draft`) and includes "
        f"`preprocess` (resize to {s}x{s}, as `csadetect.models.embedding.model_inputs` does) then `embed_arrays(..., "
        f"batch_size={big})`. The pipeline's `EmbedImages` calls `embed_arrays(..., batch_size=256)`. One pinned "
        f"core, threads 1 everywhere, median of {args.rounds} interleaved rounds (min-max); per core = images per "
        "CPU-second of the process, wall = per elapsed second.",
        "",
        f"| embedding | images/s per core | ms/image (CPU) | wall images/s | target {EMBED_TARGET}/s per core, "
        "batched after decode |",
        "|---|---:|---:|---:|---|",
    ]
    for b in args.embed_batches:
        vals = rates[f"b{b}"]
        m = med(vals)
        target = ("met" if m >= EMBED_TARGET else "**not met**") if b > 1 else ""
        lines.append(f"| after decode, batch {b} | {spread(vals)} | {1000 / m:.2f} | {fmt_rate(med(wall[f'b{b}']))} "
                     f"| {target} |")
    for key, label in (("preprocess", f"preprocess only (decoded 512x384 PIL -> {s}x{s} array)"),
                       ("pre+embed", f"preprocess from decoded PIL + embed, batch {big}")):
        vals = rates[key]
        m = med(vals)
        lines.append(f"| {label} | {spread(vals)} | {1000 / m:.2f} | {fmt_rate(med(wall[key]))} | |")
    lines += [
        "",
        f"Model: {size / 1e6:.2f} MB on disk; {memory_line(mem)}.",
        "",
    ]
    return {"rates": rates, "memory": mem, "size": size}


# ----------------------------------------------------------------------------- classifier
def bench_classifier(args, lines: list) -> dict:
    try:
        from csadetect.models.classifier import NewMaterialClassifier  # noqa: F401
    except ImportError as exc:
        log(f"classifier: not measured ({exc})")
        lines += [
            "## New-material classifier head",
            "",
            CLASSIFIER_PENDING,
            f"**Not measured yet**: `csadetect/models/classifier.py` (`NewMaterialClassifier`) was not in the tree when this "
            f"ran ({type(exc).__name__}: {exc}). Rerun `python -m benchmarks.bench_models --only classifier` once "
            "it is: it times `NewMaterialClassifier.load().score(embeddings)` on L2-normalised embeddings, "
            "embeddings scored/s at batch 1, 64 and 1024, model size and RSS growth on load.",
            "",
        ]
        return {"missing": str(exc)}
    tf_one_thread()
    try:
        model = NewMaterialClassifier.load()
        dim = embedding_dim(model)
        rng = np.random.default_rng(0)
        emb = rng.normal(0, 1, (args.embeddings, dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        model.score(emb[:8])
    except Exception as exc:  # noqa: BLE001  (a work in progress: report, don't fail the other sections)
        log(f"classifier: failed ({type(exc).__name__}: {exc})")
        lines += ["## New-material classifier head", "", CLASSIFIER_PENDING,
                  f"**Not measured**: loading or scoring failed ({type(exc).__name__}: {str(exc)[:200]}).", ""]
        return {"error": str(exc)}

    batches = (1, 64, 1024)
    n_for = {b: (min(len(emb), 512) if b == 1 else len(emb)) for b in batches}
    variants = {f"b{b}": (lambda b=b: [model.score(emb[i:i + b]) for i in range(0, n_for[b], b)]) for b in batches}
    rates, wall = interleaved(variants, args.rounds, {f"b{b}": n_for[b] for b in batches})
    path = Path(model.path)
    size = dir_size(path) if path.is_dir() else None
    mem = memory("classifier")
    lines += [
        "## New-material classifier head",
        "",
        f"`NewMaterialClassifier.load().score(embeddings)` on random L2-normalised {dim}-d float32 embeddings; "
        f"one pinned core, threads 1, median of {args.rounds} interleaved rounds (min-max); per core = per "
        "CPU-second of the process.",
        "",
        "| classifier | embeddings/s per core | ms/call (CPU) | wall embeddings/s |",
        "|---|---:|---:|---:|",
    ]
    for b in batches:
        vals = rates[f"b{b}"]
        m = med(vals)
        lines.append(f"| batch {b} | {spread(vals)} | {1000 * b / m:.3f} | {fmt_rate(med(wall[f'b{b}']))} |")
    lines += ["", (f"Model: {size / 1e6:.2f} MB on disk; " if size else "") + memory_line(mem) + ".", ""]
    return {"rates": rates, "memory": mem, "size": size}
