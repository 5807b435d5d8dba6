"""Known pictures shared as HEIC or AVIF (issue 17, not named by it): an iPhone's camera saves HEIC
by default and AVIF is what phones, browsers and image CDNs increasingly send. The release before
accepted neither mime type, and could not decode HEIC at all (``csadetect/media/decoders.py`` now
registers libheif's decode-only build, ``pi-heif``; AVIF is Pillow's own).

The robustness benchmark's held-out test split (42 originals) is made picture indicators from media
as ``indicators from-media`` makes them (PDQ rows and digests, with the value hash; no embedding
rows), and each original is shared as each edit below, hashed as the pipeline hashes an image
(``hash_image_with_views``: its views, the value hash, the flipped hashes, later frames) and looked
up (``IndicatorIndex.match_image``). The HEIC copies are encoded with pillow-heif (libheif's x265
encoder), the AVIF ones with Pillow's libavif. Settings:

* ``before, declared`` : the release before, the file sent with its own mime type (image/heic,
  image/avif): refused by the event schema, so nothing is found;
* ``before, as image/jpeg``: the release before, the file sent as image/jpeg (a client that renamed
  it): decoded without the HEIF plugin, so HEIC is dead-lettered as undecodable, AVIF decoded;
* ``now``: the default, the file sent with its own mime type.

``false``: a match to another original. Uploads with nothing to find count false matches too: the
split's ordinary distractors and its hard distractors (burst, stereo, studio, template), each as
HEIC q60. Cost: CPU ms to decode and hash an iPhone-sized picture (4032x3024, 12.2 MP), best of 3,
one decoding thread, JPEG q90 (decoded at reduced size by DCT scaling) against HEIC q60 and AVIF q50
(decoded whole: neither format has a reduced-size decode).

    python -m benchmarks.bench_formats       # ~6 min; writes benchmarks/formats.md
"""
from __future__ import annotations

import argparse
import io
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.bench_slideshow import found_false_table, index_originals, tally_copy, tally_upload, written_by

OUT = Path(__file__).resolve().parent / "formats.md"
LABELS = ("before, declared", "before, as image/jpeg", "now")
PREVIOUS_MIMES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff")
PHONE = (4032, 3024)
SIDEWAYS = 6  # EXIF orientation: stored turned a quarter, shown upright (a phone held upright)


def heic(img: Image.Image, quality: int, orientation: int = 1) -> bytes:
    import pillow_heif

    buf = io.BytesIO()
    pillow_heif.from_pillow(img).save(buf, quality=quality, **_exif(orientation))
    return buf.getvalue()


def avif(img: Image.Image, quality: int, orientation: int = 1) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "AVIF", quality=quality, **_exif(orientation))
    return buf.getvalue()


def _exif(orientation: int) -> dict:
    if orientation == 1:
        return {}
    exif = Image.Exif()
    exif[0x0112] = orientation
    return {"exif": exif.tobytes()}


def _sideways(img: Image.Image) -> Image.Image:
    """The picture as a phone's sensor stores it when orientation 6 shows it upright."""
    return img.transpose(Image.Transpose.ROTATE_90)


def heic_collection(img: Image.Image, cover: Image.Image, quality: int = 60) -> bytes:
    import pillow_heif

    collection = pillow_heif.from_pillow(cover)
    collection.add_from_pillow(img)
    buf = io.BytesIO()
    collection.save(buf, quality=quality)
    return buf.getvalue()


EDITS = (
    ("JPEG q85 (control)", "image/jpeg", lambda img, cover: _jpeg(img, 85)),
    ("HEIC q90", "image/heic", lambda img, cover: heic(img, 90)),
    ("HEIC q60", "image/heic", lambda img, cover: heic(img, 60)),
    ("HEIC q30", "image/heic", lambda img, cover: heic(img, 30)),
    ("HEIC q60, stored sideways (orientation 6)", "image/heic", lambda img, cover: heic(_sideways(img), 60, SIDEWAYS)),
    ("HEIC q60, second image of a collection (a cover first)", "image/heic",
     lambda img, cover: heic_collection(img, cover)),
    ("AVIF q80", "image/avif", lambda img, cover: avif(img, 80)),
    ("AVIF q50", "image/avif", lambda img, cover: avif(img, 50)),
    ("AVIF q25", "image/avif", lambda img, cover: avif(img, 25)),
    ("AVIF q50, stored sideways (orientation 6)", "image/avif", lambda img, cover: avif(_sideways(img), 50, SIDEWAYS)),
)


def _jpeg(img: Image.Image, quality: int) -> bytes:
    from csadetect.media.synth import jpeg_bytes

    return jpeg_bytes(img, quality)


@contextmanager
def without_heif():
    """Pillow as the release before had it: no HEIF plugin (AVIF is Pillow's own). Pillow's own plugins
    are loaded first, so that a lookup here cannot load them into a registry put back afterwards."""
    Image.init()
    opener = Image.OPEN.pop("HEIF")
    Image.ID.remove("HEIF")
    try:
        yield
    finally:
        Image.ID.append("HEIF")
        Image.OPEN["HEIF"] = opener


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--originals", type=int, default=0, help="only the first N originals (a smoke run)")
    args = ap.parse_args(argv)

    import json

    from csadetect.config.settings import Limits, MatchSettings
    from csadetect.events.event import EventError, make_event, parse_event
    from csadetect.media.hashing import MediaError, hash_image_with_views
    from csadetect.media.regions import preprocessor
    from training import robustness_set as rs

    match = MatchSettings()
    previous = Limits(allowed_image_mimes=PREVIOUS_MIMES)
    started = time.monotonic()
    originals = rs.build_originals("test")[: args.originals or None]
    _, owner, index = index_originals(originals, match)
    distractors = rs.build_distractors("test")

    def lookup(data: bytes) -> set[int]:
        try:
            hashes = hash_image_with_views(data, preprocess=preprocessor(match), value=True,
                                           inverted=match.inverted_view, frames=match.image_frames)[0]
        except MediaError:
            return set()
        return {owner[m.indicator_id] for m in index.match_image(hashes)}

    def matched(data: bytes, mime: str) -> dict[str, set[int]]:
        try:
            parse_event(json.dumps(make_event("e", data, mime=mime)), limits=previous)
            declared = lookup(data)
        except EventError:
            declared = set()
        with without_heif():
            as_jpeg = lookup(data)
        return {"before, declared": declared, "before, as image/jpeg": as_jpeg, "now": lookup(data)}

    result = {label: {name: [0, 0, 0] for name, _, _ in EDITS} | {"ordinary": [0, 0], "hard": [0, 0]}
              for label in LABELS}
    sizes: dict[str, list[int]] = {name: [] for name, _, _ in EDITS}
    missed = []
    for name, mime, edit in EDITS:
        for i, (oname, img) in enumerate(originals):
            cover = Image.open(io.BytesIO(distractors[i % len(distractors)][1])).convert("RGB")
            data = edit(img.convert("RGB"), cover.resize(img.size))
            sizes[name].append(len(data))
            got = matched(data, mime)
            tally_copy(result, LABELS, name, i, got)
            if i not in got["now"]:
                missed.append(f"{name}: {oname}")
        print(name, {label: result[label][name] for label in LABELS}, flush=True)
    uploads = [("ordinary", data) for _, data in distractors[: (args.originals * 6) or None]]
    uploads += [("hard", data) for _, _, data in rs.build_hard_distractors("test", originals)]
    for key, data in uploads:
        tally_upload(result, LABELS, key, matched(heic(Image.open(io.BytesIO(data)).convert("RGB"), 60), "image/heic"))
    print("distractors", {label: [result[label][k] for k in ("ordinary", "hard")] for label in LABELS}, flush=True)

    cost = _cost([img for _, img in originals[:8]])
    print("cost", cost, flush=True)
    n_ordinary, n_hard = result["now"]["ordinary"][1], result["now"]["hard"][1]
    out = ["# Known pictures shared as HEIC or AVIF (issue 17)", "",
           written_by("benchmarks.bench_formats") +
           f"Test split, {len(originals)} originals; PDQ, the value hash and digests (no embedding rows). "
           "`before, declared`: the release before, the file sent with its own mime type (refused by the event "
           "schema); `before, as image/jpeg`: the release before, the file sent as image/jpeg (HEIC undecodable "
           "without libheif, AVIF decoded by Pillow); `now`: the default (`csadetect/media/decoders.py`), sent "
           "with its own mime type. Written before any run; nothing was tuned on these copies.", ""]
    out += found_false_table(result, LABELS, "copy (mean size)",
                             [name for name, _, _ in EDITS], "all copies",
                             [(f"ordinary distractors as HEIC q60 ({n_ordinary})", "ordinary"),
                              (f"hard distractors as HEIC q60: burst, stereo, studio, template ({n_hard})", "hard")])
    out = [_with_size(row, sizes) for row in out]
    out += ["", f"Missed now: {', '.join(missed) or 'none'}.", "",
            "Cost, CPU ms to decode and hash (`hash_image_with_views`, the pipeline's views) an iPhone-sized picture "
            f"({PHONE[0]}x{PHONE[1]}), best of 3, mean over {cost['n']} pictures, one decoding thread: "
            f"JPEG q90 {cost['jpeg']:.0f} ms (decoded at 1/8 size by DCT scaling), HEIC q60 {cost['heic']:.0f} ms, "
            f"AVIF q50 {cost['avif']:.0f} ms (both decoded whole). Mean sizes: JPEG {cost['jpeg_kb']:.0f} KB, HEIC "
            f"{cost['heic_kb']:.0f} KB, AVIF {cost['avif_kb']:.0f} KB. A HEIC or AVIF upload costs that more than a "
            "JPEG one; JPEG and every other format pay nothing new. The switch: `limits.allowed_image_mimes` "
            "without `image/heic`, `image/heif` and `image/avif` refuses them as the release before did. CPU "
            f"times are of a shared 2-core machine, other work running beside. {time.monotonic() - started:.0f} s.",
            ""]
    Path(args.out).write_text("\n".join(out))
    print(f"wrote {args.out}")
    return 0


def _with_size(row: str, sizes: dict[str, list[int]]) -> str:
    for name, got in sizes.items():
        if got and row.startswith(f"| {name} |"):
            return row.replace(f"| {name} |", f"| {name} ({np.mean(got) / 1024:.0f} KB) |", 1)
    return row


def _cost(pictures: list[Image.Image]) -> dict:
    from csadetect.config.settings import MatchSettings
    from csadetect.media.hashing import hash_image_with_views
    from csadetect.media.regions import preprocessor

    preprocess = preprocessor(MatchSettings())
    files = {"jpeg": [], "heic": [], "avif": []}
    for img in pictures:
        big = img.convert("RGB").resize(PHONE, Image.Resampling.BICUBIC)
        files["jpeg"].append(_jpeg(big, 90))
        files["heic"].append(heic(big, 60))
        files["avif"].append(avif(big, 50))
    out: dict = {"n": len(pictures)}
    for kind, datas in files.items():
        best = float("inf")
        for _ in range(3):
            t = time.process_time()
            for data in datas:
                hash_image_with_views(data, preprocess=preprocess, value=True)
            best = min(best, time.process_time() - t)
        out[kind] = 1000 * best / len(datas)
        out[f"{kind}_kb"] = np.mean([len(d) for d in datas]) / 1024
    return out


if __name__ == "__main__":
    raise SystemExit(main())
