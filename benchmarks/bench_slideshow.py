"""Known pictures shown in a video: slideshows (issue 17; ``match.video_frames_pdq``).

Each original of the robustness benchmark's held-out test split (``training.robustness_set``) is
made an indicator as ``indicators from-media`` makes it from the picture (PDQ and digests: no
video indicator exists for it). Each is then shown in a slideshow among that split's ordinary
distractors (two pictures before it, one after, each 2 s unless the row says otherwise), encoded
with x264 as a phone or an editing app would (CRF 28, 25 fps), and the video is hashed as the
pipeline hashes an upload (``hash_video`` with the defaults) and matched against the index.
Every picture is fitted into the frame (scaled up or down, aspect kept) unless the row says
otherwise, on black bars or on a blurred, zoomed copy of itself (the short-video apps' fill).

Columns: ``before`` = the release before (a video is looked up among video indicators and digests
only: ``match.video_frames_pdq`` false); ``whole and video box`` = frames looked up among the
PDQ rows as vPDQ hashes them (whole, inside the video's bars, overlays painted out), without
the per-frame ``framed`` view; ``now`` = the default (also each frame inside its own bars).
``found``: the upload matched its own original; ``false``: it matched another original. Slideshows
of distractors only, Meta's six test videos and four generated pans count false matches too.
Cost: CPU seconds of the decoder process per upload (hash_video), framed view on and off, best of 3
on a sample. Nothing was tuned on these uploads.

    python -m benchmarks.bench_slideshow        # ~10 min; writes benchmarks/slideshow.md
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from benchmarks.bench_stages import kept_notes

OUT = Path(__file__).resolve().parent / "slideshow.md"
FPS = 25
SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "threatexchange" / "vpdq" / "videos"
# (label, frame size, seconds the known picture is shown, fill, fit, key frame interval in frames or 0 = x264's own)
EDITS = (
    ("16:9 720p, black bars", (1280, 720), 2, "black", True, FPS),
    ("16:9 720p, black bars, shown 1 s", (1280, 720), 1, "black", True, FPS),
    ("9:16 720x1280 (portrait), black bars", (720, 1280), 2, "black", True, FPS),
    ("16:9 720p, blurred fill", (1280, 720), 2, "blur", True, FPS),
    ("16:9 360p, black bars", (640, 360), 2, "black", True, FPS),
    ("16:9 720p, black bars, x264's own key frames", (1280, 720), 2, "black", True, 0),
    ("16:9 720p, black, at its own size (not fitted)", (1280, 720), 2, "black", False, FPS),
)
NEGATIVES = 20  # slideshows of distractors only
LABELS = ("before", "whole and video box", "now")


def place(img: Image.Image, size: tuple[int, int], fill: str, fit: bool) -> Image.Image:
    """``img`` centred in a frame of ``size``: fitted (aspect kept) or at its own size (shrunk only
    when larger), on black or on a blurred copy of itself zoomed to cover the frame."""
    w, h = size
    scale = min(w / img.width, h / img.height)
    if not fit:
        scale = min(scale, 1.0)
    pic = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    if fill == "blur":
        cover = max(w / img.width, h / img.height)
        bg = img.resize((round(img.width * cover) + 1, round(img.height * cover) + 1), Image.BILINEAR)
        left, top = (bg.width - w) // 2, (bg.height - h) // 2
        frame = bg.crop((left, top, left + w, top + h)).filter(ImageFilter.GaussianBlur(24))
    else:
        frame = Image.new("RGB", size)
    frame.paste(pic, ((w - pic.width) // 2, (h - pic.height) // 2))
    return frame


def slideshow(pictures, seconds, size, fill: str, fit: bool, keyint: int) -> bytes:
    raw = b"".join(place(p, size, fill, fit).tobytes() * int(s * FPS) for p, s in zip(pictures, seconds))
    gop = ["-g", str(keyint)] if keyint else []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "s.mp4")
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
                        f"{size[0]}x{size[1]}", "-framerate", str(FPS), "-i", "-", "-c:v", "libx264", "-crf", "28",
                        *gop, "-pix_fmt", "yuv420p", out], input=raw, check=True)
        return Path(out).read_bytes()


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    import dataclasses

    from csadetect.config.settings import MatchSettings
    from csadetect.indicators.index import IndicatorIndex
    from csadetect.indicators.rows import media_rows
    from csadetect.indicators.snapshot import Snapshot
    from csadetect.media import synth
    from csadetect.media.hashing import hash_video
    from training import robustness_set as rs

    base = MatchSettings()
    originals = rs.build_originals("test")
    fillers = [Image.open(io.BytesIO(data)).convert("RGB") for _, data in rs.build_distractors("test")]
    rows, notes = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, img) in enumerate(originals):
            path = os.path.join(tmp, f"{i}.png")
            img.save(path)
            made, _ = media_rows(path, base)
            rows += made
            notes.update({r.indicator_id: name for r in made})
    snapshot = Snapshot.in_memory(rows)
    indexes = {label: IndicatorIndex.from_snapshot(snapshot, base.model_copy(
                   update={"video_frames_pdq": label != "before"})) for label in LABELS}

    def matched(hashes) -> dict[str, set[str]]:
        out = {}
        for label, index in indexes.items():
            if label == "whole and video box":
                hashes_ = dataclasses.replace(hashes, frames=tuple(f for f in hashes.frames if not f.framed))
            else:
                hashes_ = hashes
            out[label] = {notes[m.indicator_id] for m in index.match_video(hashes_)}
        return out

    rng = np.random.default_rng(rs.split_seed("test", "slideshow"))
    result = {label: {e[0]: [0, 0, 0] for e in EDITS} | {"negatives": [0, 0], "videos": [0, 0]} for label in LABELS}
    sample, started = [], time.monotonic()
    for n, (name, img) in enumerate(originals):
        for label, size, secs, fill, fit, keyint in EDITS:
            picks = rng.choice(len(fillers), size=3, replace=False)
            pictures = [fillers[picks[0]], fillers[picks[1]], img, fillers[picks[2]]]
            data = slideshow(pictures, [2, 2, secs, 2], size, fill, fit, keyint)
            got = matched(hash_video(data, framed=True))
            for setting in LABELS:
                cell = result[setting][label]
                cell[0] += name in got[setting]
                cell[1] += 1
                cell[2] += bool(got[setting] - {name})
            if n % 7 == 0 and label == EDITS[0][0]:
                sample.append(data)
        print(f"{n + 1}/{len(originals)} originals, {time.monotonic() - started:.0f} s:",
              {s: sum(c[0] for k, c in result[s].items() if k not in ("negatives", "videos")) for s in LABELS}, flush=True)
    for i in range(NEGATIVES):
        label, size, secs, fill, fit, keyint = EDITS[i % len(EDITS)]
        picks = rng.choice(len(fillers), size=4, replace=False)
        data = slideshow([fillers[j] for j in picks], [2, 2, secs, 2], size, fill, fit, keyint)
        got = matched(hash_video(data, framed=True))
        for setting in LABELS:
            result[setting]["negatives"][0] += bool(got[setting])
            result[setting]["negatives"][1] += 1
    videos = sorted(SHARED.glob("*.mp4")) if SHARED.is_dir() else []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (21, 22, 23, 24):
            pan = synth.synthetic_video(seed, os.path.join(tmp, f"pan-{seed}.mp4"), seconds=6, fps=30, size=(640, 360))
            if pan is not None:
                videos.append(Path(pan))
        for path in videos:
            got = matched(hash_video(Path(path).read_bytes(), framed=True))
            for setting in LABELS:
                result[setting]["videos"][0] += bool(got[setting])
                result[setting]["videos"][1] += 1
    cost = {}
    for framed in (False, True):
        spent = []
        for data in sample:
            best = float("inf")
            for _ in range(3):
                t = _children_cpu()
                hash_video(data, framed=framed)
                best = min(best, _children_cpu() - t)
            spent.append(best)
        cost[framed] = 1000 * float(np.mean(spent))
    Path(args.out).write_text(render(result, cost, len(originals), len(fillers), len(sample), len(videos),
                                     kept_notes(Path(args.out))))
    print(f"wrote {args.out}")
    return 0


def written_by(module: str) -> str:
    """A report's first words: the command that wrote it and the machine it ran on."""
    return (f"Written by `python -m {module}` (how it measures: the script's docstring). Python "
            f"{platform.python_version()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}. ")


def index_originals(originals, match):
    """``originals`` (``(name, picture)``) made picture indicators as ``indicators from-media`` makes them
    under ``match``: (their rows, each row's indicator id -> the original's position, an IndicatorIndex)."""
    from csadetect.indicators.index import IndicatorIndex
    from csadetect.indicators.rows import from_media
    from csadetect.indicators.snapshot import Snapshot

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (_, img) in enumerate(originals):
            paths.append(os.path.join(tmp, f"o{i:03d}.png"))
            img.save(paths[-1])
        rows = from_media(paths, match)
    owner = {r.indicator_id: int(r.note[1:4]) for r in rows}
    return rows, owner, IndicatorIndex.from_snapshot(Snapshot.in_memory(rows), match)


def tally_copy(cells: dict, labels, name: str, own, got: dict) -> None:
    """Count one copy of original ``own`` in ``cells[label][name]`` = ``[found, n, false]`` for each of
    ``labels``: ``got[label]`` is the set of originals it matched (another one counts false)."""
    for label in labels:
        cell = cells[label][name]
        cell[0] += own in got[label]
        cell[1] += 1
        cell[2] += bool(got[label] - {own})


def tally_upload(cells: dict, labels, key: str, got: dict) -> None:
    """Count one upload with nothing to find in ``cells[label][key]`` = ``[matched, n]``."""
    for label in labels:
        cells[label][key][0] += bool(got[label])
        cells[label][key][1] += 1


def found_false_table(result: dict, labels, heading: str, names, total: str, false_only) -> list[str]:
    """A markdown table, ``found: <setting>`` then ``false: <setting>`` columns for each of ``labels``:
    a row per name of ``names`` (``result[setting][name]`` = ``[found, n, false]``), their sums in a
    bold row named ``total``, then a row per ``(what, key)`` of ``false_only`` (uploads with nothing
    to find: ``result[setting][key]`` = ``[matched, n]`` in the false columns)."""
    rows = ["| " + heading + " | " + " | ".join(f"found: {lab}" for lab in labels) + " | "
            + " | ".join(f"false: {lab}" for lab in labels) + " |",
            "|---|" + "---:|" * (2 * len(labels))]
    totals = {lab: [0, 0, 0] for lab in labels}
    for name in names:
        cells = [result[lab][name] for lab in labels]
        for lab, c in zip(labels, cells):
            totals[lab] = [a + b for a, b in zip(totals[lab], c)]
        rows.append(f"| {name} | " + " | ".join(f"{c[0]}/{c[1]}" for c in cells) + " | "
                    + " | ".join(str(c[2]) for c in cells) + " |")
    rows.append(f"| **{total}** | " + " | ".join(f"**{t[0]}/{t[1]}**" for t in totals.values()) + " | "
                + " | ".join(str(t[2]) for t in totals.values()) + " |")
    for what, key in false_only:
        rows.append(f"| {what} | " + "– | " * len(labels)
                    + " | ".join(f"{result[lab][key][0]}/{result[lab][key][1]}" for lab in labels) + " |")
    return rows


def render(result: dict, cost: dict, n_originals: int, n_fillers: int, n_sample: int, n_videos: int,
           notes: str) -> str:
    out = [
        "# Known pictures shown in a video: slideshows (issue 17)",
        "",
        written_by("benchmarks.bench_slideshow") +
        f"{n_originals} originals of the held-out test split as picture indicators (PDQ, digests); the other pictures "
        f"of each slideshow from its {n_fillers} ordinary distractors. Nothing was tuned on these uploads.",
        "",
    ]
    out += found_false_table(result, LABELS, "slideshow (known picture shown 2 s unless said)", [e[0] for e in EDITS],
                             "all slideshows",
                             [(f"distractors only ({result[LABELS[0]]['negatives'][1]} slideshows)", "negatives"),
                              (f"Meta's test videos and generated pans ({n_videos})", "videos")])
    out += ["", f"Cost, CPU ms of the decoder per upload (mean of best-of-3 on {n_sample} 720p slideshows of 8 s): "
            f"framed view off {cost[False]:.0f} ms, on {cost[True]:.0f} ms. The lookup itself is one more batched "
            "PDQ range search, of the frames' hashes.", "", "## Notes", "", notes, ""]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
