"""Edits of the robustness benchmark that no detector, threshold or model was tuned on (issue 17,
2026-12-05): ``UNSEEN``, reported in their own table of ``benchmarks/robustness.md`` to show how the
matchers do on evasions outside the set they were built against. Every edit draws its parameters
per copy (an angle, a side, a colour), so no single setting can be fitted.

They are **not** in ``training.robustness_set.TRANSFORMS``: the embedding's threshold calibration
(``training.calibrate_embedding``) and the tables above it never see them. One caveat, stated in the
report: a first fixed-parameter version of some of them (turns of 7, -5 and 12 degrees with a black
fill, strips, a sticker, hue and gamma) was run on the development split before the ``tilt`` view
(:mod:`csadetect.media.view_tilt`) was written, and the tilt view was written because of the turns.
So ``turn_fill`` and ``mirror_turn_fill`` are not unseen for the tilt view. Two more were later built
against on the development split, with their own fixed-parameter copies: ``strip`` (the embedding's strip
rows and views, 2026-12-05) and ``turn_crop`` (the embedding's turned-and-cropped rows,
``csadetect.signals.embedding.EMBEDDING_TURNS``, 2026-12-05, second stop). The others are unseen for every
part of the matcher.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from csadetect.media.crops import STRIP_SIDES, box_crop, region_crop, turned_crop
from training.robustness_set import Transform


def _colour(rng) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _fill(rng) -> tuple[int, int, int]:
    """Black, white or any one colour, a third each."""
    k = int(rng.integers(3))
    return (0, 0, 0) if k == 0 else (255, 255, 255) if k == 1 else _colour(rng)


def signed_angle(rng, lo: float, hi: float) -> float:
    """An angle of ``lo`` to ``hi`` degrees, either way."""
    return float(rng.uniform(lo, hi)) * (1 if rng.random() < 0.5 else -1)


def turn_fill(img, rng):
    """Turned by 4-15 degrees either way onto a canvas of one colour (the corners filled)."""
    return img.rotate(signed_angle(rng, 4, 15), resample=Image.Resampling.BICUBIC, expand=True, fillcolor=_fill(rng))


def mirror_turn_fill(img, rng):
    """Mirrored, then turned as :func:`turn_fill`."""
    return turn_fill(ImageOps.mirror(img), rng)


def turn_crop(img, rng):
    """Turned by 4-10 degrees, then cropped back to the largest upright rectangle inside the picture
    (no fill left to go by)."""
    return turned_crop(img, signed_angle(rng, 4, 10), Image.Resampling.BICUBIC)


def strip(img, rng):
    """One side cut off: 60-75% of the height (or width) kept, the other dimension whole."""
    keep = float(rng.uniform(0.60, 0.75))
    return region_crop(img, keep, STRIP_SIDES[int(rng.integers(4))])


def aspect_crop(img, rng):
    """A crop of another aspect at a random corner: 70-95% of one side and enough of the other that
    at least 60% of the area is kept."""
    fw = float(rng.uniform(0.70, 0.95))
    fh = float(rng.uniform(max(0.70, 0.60 / fw), 0.95))
    if rng.random() < 0.5:
        fw, fh = fh, fw
    left = rng.random() < 0.5
    top = rng.random() < 0.5
    return box_crop(img, fw, fh, ("t" if top else "b") + ("l" if left else "r"))


def sticker(img, rng):
    """One or two opaque stickers (a disc with a face, or a rounded label) covering 3-10% of the
    picture, anywhere on it."""
    img = img.copy()
    d = ImageDraw.Draw(img)
    w, h = img.size
    for _ in range(int(rng.integers(1, 3))):
        r = int(math.sqrt(float(rng.uniform(0.015, 0.05)) * w * h / math.pi))
        x, y = int(rng.integers(r, max(r + 1, w - r))), int(rng.integers(r, max(r + 1, h - r)))
        colour = _colour(rng)
        if rng.random() < 0.6:
            d.ellipse((x - r, y - r, x + r, y + r), fill=colour)
            e = max(2, r // 6)
            for ex in (x - r // 3, x + r // 3):
                d.ellipse((ex - e, y - r // 4 - e, ex + e, y - r // 4 + e), fill=(0, 0, 0))
            d.arc((x - r // 2, y - r // 3, x + r // 2, y + r // 2), 20, 160, fill=(0, 0, 0), width=max(1, r // 10))
        else:
            d.rounded_rectangle((x - int(1.4 * r), y - r // 2, x + int(1.4 * r), y + r // 2), radius=max(1, r // 4),
                                fill=colour)
    return img


def turn_hue(img, degrees: float):
    """``img`` with its hue turned by ``degrees`` in HSV (Pillow's 8-bit hue), as Pillow and OpenCV turn it."""
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(round(degrees / 360 * 256))) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def hue(img, rng):
    """The hue turned by 15-40 degrees either way."""
    return turn_hue(img, signed_angle(rng, 15, 40))


def gamma(img, rng):
    """A gamma of 0.55-0.8 or 1.3-1.8."""
    g = float(rng.uniform(0.55, 0.8)) if rng.random() < 0.5 else float(rng.uniform(1.3, 1.8))
    return img.point([min(255, round(255 * (i / 255) ** g)) for i in range(256)] * 3)


def keystone(img, rng):
    """Leaning back: the top (or bottom, left, right) edge narrowed by 4-10% on each side and the
    picture stretched to fill the canvas again (no fill)."""
    w, h = img.size
    k = float(rng.uniform(0.04, 0.10))
    dx, dy = k * w, k * h
    quads = [((dx, 0), (0, h), (w, h), (w - dx, 0)), ((0, 0), (dx, h), (w - dx, h), (w, 0)),
             ((0, dy), (0, h - dy), (w, h), (w, 0)), ((0, 0), (0, h), (w, h - dy), (w, dy))]
    quad = quads[int(rng.integers(4))]
    return img.transform((w, h), Image.Transform.QUAD, tuple(v for c in quad for v in c), Image.Resampling.BICUBIC)


UNSEEN: dict[str, tuple[Transform, str]] = {
    "turn_fill": (turn_fill, "jpeg"),
    "mirror_turn_fill": (mirror_turn_fill, "jpeg"),
    "turn_crop": (turn_crop, "jpeg"),
    "strip": (strip, "jpeg"),
    "aspect_crop": (aspect_crop, "jpeg"),
    "sticker": (sticker, "jpeg"),
    "hue": (hue, "jpeg"),
    "gamma": (gamma, "jpeg"),
    "keystone": (keystone, "jpeg"),
}
