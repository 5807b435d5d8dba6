"""Recoloured copies: hue turns, swapped colour channels, saturation (issue 17; ``match.value_view``).

The robustness benchmark's originals (held-out test split, 42; development split, 36) are made picture
indicators from media as ``indicators from-media`` makes them (PDQ rows and digests; no embedding rows:
the embedding is a colour model and its hue recall is in robustness.md), once with ``match.value_view``
(each picture's PDQ row and its value channel's, ``-value``) and once without (``before``). Every original
is then shared with each edit below, parameters drawn per copy, saved as JPEG q85 (the last one as a
half-size JPEG q60), hashed as the pipeline hashes an image (``hash_image_with_views`` with its views, and
the value hash when the setting is on) and looked up (``IndicatorIndex.match_image``). ``found``: the copy
matched its own original; ``false``: it matched another. Uploads with nothing to find count false matches
too: the split's ordinary distractors (plain and framed) and its hard distractors (burst shots, stereo
pairs, studio shots, the same template with other content), each looked up as an upload.

The edits: ``hue`` is the robustness benchmark's unseen edit (``training.robustness_unseen.hue``, the same
copies: its seeds); the value hash was written after reading it (it turns the hue in HSV), so it is no
blind measurement. ``hue 60-180`` turns further (HSV). ``hue, exact`` turns the hue on the hexcone in
floating point (what GIMP's and Photoshop's Hue/Saturation do in HSL: they keep each pixel's largest and
smallest channel as HSV does). ``channels`` saves the picture with its channels in another order (one of
the five). ``saturation`` scales HSV saturation by 0.4-0.8 or 1.25-1.6 (the value is kept). ``CSS
hue-rotate`` turns the hue with the luminance-keeping matrix of CSS filters (not the value: PDQ's own case,
a control). ``hue, then half size q60`` is the hue turn then shrunk and saved at JPEG q60. ``hue, then
<framing>`` is the ``hue`` turn, then one of robustness.md's framings (a coloured border, letterbox bars, a
phone screenshot, a blurred fill, picture-in-picture at 40% of the canvas, a 2x2 collage, a meme frame),
saved as that framing is there: the value hash of the upload's views and sub-images (2026-12-06, second
round; chosen on the development split's copies before the test split was run with it).

Cost: CPU ms per upload of :func:`csadetect.media.view_value.value_picture` plus the PDQ of it (8 dihedral
hashes) on each decoded picture the pipeline hashes (the image, its views and sub-images, at most 512 px a
side), mean over the test split's originals and distractors, best of 3 each; index side one more 32-byte
PDQ row per colour picture.

    python -m benchmarks.bench_colour        # ~5 min; writes benchmarks/colour.md
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.bench_slideshow import found_false_table, index_originals, tally_copy, tally_upload, written_by
from benchmarks.bench_stages import kept_notes
from training.robustness_unseen import signed_angle, turn_hue

OUT = Path(__file__).resolve().parent / "colour.md"
# robustness.md's framings, each after the unseen hue turn: the value hash of the upload's views and sub-images
FRAMINGS = ("border_colour_20", "letterbox_9x16", "screenshot_phone", "blurred_fill", "pip_40", "collage_2x2",
            "meme_frame")
LABELS = ("before", "now")
SPLITS = ("test", "dev")


def hue_far(img, rng):
    """The hue turned by 60-180 degrees either way (HSV)."""
    return turn_hue(img, signed_angle(rng, 60, 180))


def hue_exact(img, rng):
    """The hue turned by 15-40 degrees on the hexcone in floating point, each pixel's largest and smallest
    channel kept (HSL's Hue/Saturation, without HSV's 8-bit hue)."""
    a = np.asarray(img.convert("RGB"), dtype=np.float64)
    mx, mn = a.max(axis=2), a.min(axis=2)
    c = mx - mn
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    safe = np.where(c > 0, c, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = (h + signed_angle(rng, 15, 40) / 60) % 6
    x = c * (1 - np.abs(h % 2 - 1))
    sector = np.floor(h).astype(int)
    zero = np.zeros_like(c)
    table = [(c, x, zero), (x, c, zero), (zero, c, x), (zero, x, c), (x, zero, c), (c, zero, x)]
    out = np.zeros_like(a)
    for k, (rr, gg, bb) in enumerate(table):
        m = sector == k
        out[m] = np.stack([rr[m], gg[m], bb[m]], axis=1)
    out += mn[..., None]
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")


ORDERS = ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def channels(img, rng):
    """The colour channels in another order (one of the five)."""
    bands = img.convert("RGB").split()
    return Image.merge("RGB", [bands[i] for i in ORDERS[int(rng.integers(len(ORDERS)))]])


def saturation(img, rng):
    """HSV saturation scaled by 0.4-0.8 or 1.25-1.6 (the value kept)."""
    hsv = np.asarray(img.convert("HSV")).astype(np.float64)
    k = float(rng.uniform(0.4, 0.8)) if rng.random() < 0.5 else float(rng.uniform(1.25, 1.6))
    hsv[..., 1] = np.clip(hsv[..., 1] * k, 0, 255)
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")


def css_hue(img, rng):
    """CSS ``hue-rotate`` by 15-40 degrees either way (the filter spec's luminance-keeping matrix)."""
    t = np.deg2rad(signed_angle(rng, 15, 40))
    c, s = np.cos(t), np.sin(t)
    m = np.array([[0.213 + c * 0.787 - s * 0.213, 0.715 - c * 0.715 - s * 0.715, 0.072 - c * 0.072 + s * 0.928],
                  [0.213 - c * 0.213 + s * 0.143, 0.715 + c * 0.285 + s * 0.140, 0.072 - c * 0.072 - s * 0.283],
                  [0.213 - c * 0.213 - s * 0.787, 0.715 - c * 0.715 + s * 0.715, 0.072 + c * 0.928 + s * 0.072]])
    a = np.asarray(img.convert("RGB"), dtype=np.float64)
    return Image.fromarray(np.clip(a @ m.T + 0.5, 0, 255).astype(np.uint8), "RGB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    from csadetect.config.settings import MatchSettings
    from csadetect.media.hashing import SCALE_INFO, hash_image_with_views, pdq_from_image
    from csadetect.media.regions import preprocessor
    from csadetect.media.synth import jpeg_bytes
    from csadetect.media.view_value import value_picture
    from training import robustness_set as rs
    from training.robustness_unseen import hue

    def hue_small(img, rng):
        small = hue(img, rng)
        return small.resize((max(1, small.width // 2), max(1, small.height // 2)), Image.Resampling.LANCZOS)

    def hue_then(framing: str):
        frame, encoding = rs.TRANSFORMS[framing]

        def edit(img, rng):
            return frame(hue(img, rng), rng)

        edit.encoding = encoding
        return edit

    edits = [("hue 15-40 (robustness.md's unseen `hue`)", hue), ("hue 60-180", hue_far), ("hue, exact (HSL)", hue_exact),
             ("channels in another order", channels), ("saturation", saturation),
             ("CSS hue-rotate 15-40 (keeps luminance: control)", css_hue), ("hue, then half size q60", hue_small)]
    edits += [(f"hue, then {framing}", hue_then(framing)) for framing in FRAMINGS]
    settings = {"before": MatchSettings(value_view=False), "now": MatchSettings()}
    started = time.monotonic()
    result = {split: {label: {name: [0, 0, 0] for name, _ in edits} | {"ordinary": [0, 0], "hard": [0, 0]}
                      for label in LABELS} for split in SPLITS}
    missed, n_rows = [], {}
    for split in SPLITS:
        originals = rs.build_originals(split)
        indexes, owner = {}, {}
        for label, match in settings.items():
            rows, owners, indexes[label] = index_originals(originals, match)
            n_rows[(split, label)] = sum(r.kind == "pdq" for r in rows)
            owner.update(owners)

        def matched(data: bytes) -> dict[str, set[int]]:
            out = {}
            for label, match in settings.items():
                hashes = hash_image_with_views(data, preprocess=preprocessor(match), value=match.value_view)[0]
                out[label] = {owner[m.indicator_id] for m in indexes[label].match_image(hashes)}
            return out

        for name, edit in edits:
            for i, (oname, img) in enumerate(originals):
                seed = rs.split_seed(split, "unseen", "hue", oname) if edit is hue else rs.split_seed(split, "colour", name, oname)
                copy = edit(img, np.random.default_rng(seed))
                got = matched(jpeg_bytes(copy, 60) if edit is hue_small else rs.encode(copy, getattr(edit, "encoding", "jpeg")))
                tally_copy(result[split], LABELS, name, i, got)
                if i not in got["now"]:
                    missed.append((split, name, oname))
            print(split, name, {label: result[split][label][name] for label in LABELS}, flush=True)
        uploads = [("ordinary", data) for _, data in rs.build_distractors(split)]
        uploads += [("hard", data) for _, _, data in rs.build_hard_distractors(split, originals)]
        for key, data in uploads:
            tally_upload(result[split], LABELS, key, matched(data))
        print(split, "distractors", {label: (result[split][label]["ordinary"], result[split][label]["hard"])
                                     for label in LABELS}, flush=True)

    pictures = [jpeg_bytes(img, 90) for _, img in rs.build_originals("test")]
    pictures += [data for _, data in rs.build_distractors("test")]
    cost, hashed = [], []
    for data in pictures:
        views = hash_image_with_views(data, preprocess=preprocessor(settings["now"]))[1]
        hashed.append(len(views))
        best = float("inf")
        for _ in range(3):
            t = time.process_time()
            for _, picture in views:
                grey = value_picture(picture, SCALE_INFO)
                if grey is not None:
                    pdq_from_image(grey)
            best = min(best, time.process_time() - t)
        cost.append(best)
    print("missed (now):", missed)
    text = render(result, edits, 1000 * float(np.mean(cost)), len(pictures), float(np.mean(hashed)), n_rows, missed,
                  kept_notes(Path(args.out)))
    Path(args.out).write_text(text)
    print(f"wrote {args.out} ({time.monotonic() - started:.0f} s)")
    return 0


def render(result: dict, edits, ms: float, n_pictures: int, per_upload: float, n_rows: dict, missed: list,
           notes: str) -> str:
    out = ["# Recoloured copies: hue turns, swapped channels, saturation (issue 17)", "",
           written_by("benchmarks.bench_colour") +
           "`before`: `match.value_view: false` (PDQ of the picture and its views); `now`: the default, with the "
           "value hash on both sides. PDQ and digests only (no embedding rows).", ""]
    for split in SPLITS:
        n = next(iter(result[split]["now"].values()))[1]
        out += [f"**{split} split** ({n} originals; PDQ rows: before {n_rows[(split, 'before')]}, now "
                f"{n_rows[(split, 'now')]}):", ""]
        out += found_false_table(result[split], LABELS, "copy", [name for name, _ in edits], "all copies",
                                 [("ordinary distractors (plain and framed), each an upload", "ordinary"),
                                  ("hard distractors (burst, stereo, studio, template)", "hard")])
        out.append("")
    out += [f"Missed now: {', '.join(f'{s} {e}: {o}' for s, e, o in missed) or 'none'}.", "",
            f"Cost: {ms:.2f} CPU ms per upload for the value pictures and their PDQ, one for the image and one for "
            f"each of its views and sub-images ({per_upload:.2f} pictures an upload; mean over the test split's "
            f"{n_pictures} originals and distractors, best of 3 each), beside 15-20 ms to decode and hash a 3 MP "
            "upload with its views; one more 32-byte PDQ row per colour picture indicator (~96 B with the "
            "multi-index). `match.value_view: false` turns both off.", "", "## Notes", "", notes, ""]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
