"""Animated images: a known picture shown as a later frame of an animation (issue 17; ``match.image_frames``).

Each original of the robustness benchmark's held-out test split (``training.robustness_set``) is
made an indicator as ``indicators from-media`` makes it (PDQ, digests, the embedding rows). Each is
then hidden in an animation of the split's ordinary distractors (other pictures, fitted to the
original's size): as frame k of n of a GIF (256 colours, dithered) or a lossy WebP, frame 0 always a
distractor. Uploads are hashed and embedded as the pipeline does (``hash_image_with_views`` with the
query-side views, the reference model, the region views; matched as ``tests/test_region_views.py``
matches) with ``match.image_frames`` at its default (now) and 0 (the first frame only: the release
before). With more distinct frames than it keeps, the frames kept are spread evenly, so where the
picture hides decides (frame 40 of 48, 90 of 100: beyond the 4 x 32 frames looked at).
``found``: the upload matched its own original; ``false``: it matched another original. Animations of
distractors only (no original in them) count false matches too. Cost: CPU per upload to hash and
embed, both settings, best of 3 on a sample.

    python -m benchmarks.bench_animated        # ~25 min; writes benchmarks/animated.md
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent / "animated.md"
# (format, index of the original, frames in all): where the known picture hides
PLACES = (("GIF", 1, 4), ("GIF", 4, 16), ("GIF", 12, 16), ("GIF", 20, 24), ("WEBP", 1, 4), ("WEBP", 10, 16),
          ("GIF", 40, 48), ("GIF", 90, 100))
NEGATIVES = 40  # animations of distractors only


def animation(frames: list[Image.Image], fmt: str) -> bytes:
    buf = io.BytesIO()
    frames = [Image.fromarray(np.asarray(f.convert("RGB"))) for f in frames]
    extra = {"lossless": False, "quality": 80} if fmt == "WEBP" else {"loop": 0}
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, **extra)
    return buf.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    from csadetect.config.settings import MatchSettings
    from csadetect.indicators.index import IndicatorIndex
    from csadetect.indicators.rows import media_rows
    from csadetect.indicators.snapshot import Snapshot
    from csadetect.media.hashing import hash_image_with_views
    from csadetect.media.regions import preprocessor
    from csadetect.models.embedding import EmbeddingModel, model_inputs
    from csadetect.signals.embedding import query_regions, view_thresholds
    from training import robustness_set as rs

    model = EmbeddingModel.load()
    base = MatchSettings()
    settings_by_label = {f"now ({base.image_frames} frames)": base.image_frames, "first frame only (before)": 0}
    originals = rs.build_originals("test")
    fillers = [Image.open(io.BytesIO(data)).convert("RGB") for _, data in rs.build_distractors("test")]
    rows, notes = [], {}  # indicator id -> the original it was made from
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, img) in enumerate(originals):
            path = os.path.join(tmp, f"{i}.png")
            img.save(path)
            made, _ = media_rows(path, base, embedder=model)
            rows += made
            notes.update({r.indicator_id: name for r in made})
    index = IndicatorIndex.from_snapshot(Snapshot.in_memory(rows), base)

    def matched(data: bytes, frames: int) -> set[str]:
        settings = base.model_copy(update={"image_frames": frames})
        hashes, pictures = hash_image_with_views(data, preprocess=preprocessor(settings), frames=frames)
        names, batch = model_inputs(pictures, model.input_size, flip=True, regions=query_regions(settings))
        found = index.match_image(hashes, model.embed_arrays(batch), model.version, view_thresholds(names, model.threshold))
        return {notes[m.indicator_id] for m in found}

    rng = np.random.default_rng(rs.split_seed("test", "animated"))
    result = {label: {p: [0, 0, 0] for p in PLACES} | {"negatives": [0, 0]} for label in settings_by_label}
    uploads = []
    for name, img in originals:
        for fmt, k, n in PLACES:
            picks = rng.choice(len(fillers), size=n - 1, replace=False)
            frames = [fillers[i].resize(img.size) for i in picks]
            frames.insert(k, img)
            uploads.append((name, (fmt, k, n), animation(frames, fmt)))
    for i in range(NEGATIVES):
        picks = rng.choice(len(fillers), size=16, replace=False)
        frames = [fillers[j] for j in picks]
        size = frames[0].size
        uploads.append((None, "negatives", animation([f.resize(size) for f in frames], "GIF")))
    for label, frames in settings_by_label.items():
        for name, place, data in uploads:
            got = matched(data, frames)
            cell = result[label][place]
            if name is None:
                cell[0] += bool(got)
                cell[1] += 1
                continue
            cell[0] += name in got
            cell[1] += 1
            cell[2] += bool(got - {name})
        print(label, {str(k): v for k, v in result[label].items()}, flush=True)
    cost = {}
    sample = uploads[:: max(1, len(uploads) // 30)][:30]
    for label, frames in settings_by_label.items():
        spent = []
        for _, _, data in sample:
            best = float("inf")
            for _ in range(3):
                t = time.process_time()
                matched(data, frames)
                best = min(best, time.process_time() - t)
            spent.append(best)
        cost[label] = 1000 * float(np.mean(spent))
    Path(args.out).write_text(render(result, cost, len(originals), len(fillers)))
    print(f"wrote {args.out}")
    return 0


def render(result: dict, cost: dict, n_originals: int, n_fillers: int) -> str:
    labels = list(result)
    out = [
        "# Animated images: a known picture as a later frame (issue 17)",
        "",
        f"Written by `python -m benchmarks.bench_animated` (how it measures: the script's docstring). Python "
        f"{platform.python_version()}, {os.cpu_count()} cores. {n_originals} originals of the held-out test split "
        f"as indicators; fillers from its {n_fillers} ordinary distractors. Nothing was tuned on these uploads.",
        "",
        "| upload | " + " | ".join(f"found: {lab}" for lab in labels) + " | " + " | ".join(f"false: {lab}" for lab in labels) + " |",
        "|---|" + "---|" * (2 * len(labels)),
    ]
    for place in PLACES:
        fmt, k, n = place
        found = [f"{result[lab][place][0]}/{result[lab][place][1]}" for lab in labels]
        false = [f"{result[lab][place][2]}" for lab in labels]
        out.append(f"| {fmt}, frame {k} of {n} | " + " | ".join(found) + " | " + " | ".join(false) + " |")
    neg = [f"{result[lab]['negatives'][0]}/{result[lab]['negatives'][1]}" for lab in labels]
    out.append("| distractors only, GIF of 16 | – | – | " + " | ".join(neg) + " |")
    out += ["", "Cost, CPU ms per upload to hash, embed and match (mean of best-of-3 on 30 of them): "
            + "; ".join(f"{lab} {ms:.0f} ms" for lab, ms in cost.items()) + ".", ""]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
