"""Benign proxy corpus for the reference "new-material" image classifier.

**The task (a stand-in, nothing else).** Does the image show the *marker emblem* as its main
subject? The marker emblem is a fixed, entirely benign badge design, drawn procedurally (think of
detecting one particular logo or flag):

* a gold centre disc,
* one to three concentric rings (teal and gold bands separated by cream gaps),
* a crown of crimson petals (ellipses or triangles; other shapes only in evaluation) around the
  outermost ring,

with variable lighting (brightness, noise, a colour cast in evaluation), ring and petal counts,
proportions, rotation and squash, shown large (75-130% of the image's short side: the emblem is
the subject of the picture, partly cropped by the frame when large), near the centre, sometimes
partly covered by an occluder, semi-transparent or with a shadow, composited onto a varied
background. Everything is generated here, deterministically per seed. Nothing in it depicts
people or anything sensitive: it exists so that the classifier code path (embedding -> head ->
calibrated probability -> thresholds) can be trained, tested and benchmarked without real
material.

Why large and why a fixed colour scheme: the classifier is a head on the frozen 128-d
copy-detection embedding (``csadetect/models/embedding.py``), which keeps the coarse colour layout of an
image and little about small shapes. A head on it could not tell a randomly coloured emblem at
25-70% of the short side from its own background (AUC ~0.6), nor a large one from a plain target
(~0.65); see ``csadetect/models/cards/classifier.md``. A fixed design shown as the subject of the picture
is what such a descriptor can carry.

**Negatives** use the same background families without the emblem:

* *easy*: the background alone (plus the same random clutter shapes a positive gets);
* *hard*: the background plus one look-alike of the same size, drawn in the emblem's own colours
  half of the time: a plain or two-tone disc, rings without petals (a target), petals without
  centre or rings (a starburst), a star polygon, a filled polygon, the emblem **recoloured** (the
  design in other colours; the task is this design in its colours, as logo detection is), a
  flag of stripes in the emblem's colours; evaluation adds concentric squares and an asterisk.

**Backgrounds**: ``csadetect.media.synth.synthetic_image`` (colour fields plus shapes), crops of the
scikit-image sample images (bundled, offline), linear/radial gradients, smooth noise and
screenshot-like canvases (UI bars, text lines, cards, round avatars); the evaluation split adds a
background family never seen in training (stripes and checker tiles).

**Splits** are fixed by seed range, so no two splits share an example:

==============  ====================  ========================================================
split           seeds                 held out from training
==============  ====================  ========================================================
train           0 .. 399,999          --
calibration     400,000 .. 799,999    its own scikit-image backgrounds (``CALIB_SKIMAGE``)
eval            800,000 .. 1,199,999  its own scikit-image backgrounds (``EVAL_SKIMAGE``), the
                                      tile background family, half the positives drawn with one
                                      held-out emblem parameter (petal counts 4-5 and 13-16,
                                      round and kite petals, sizes 65-75% and 130-145% of the
                                      short side, squash 0.6-0.75, darker/brighter lighting with
                                      a colour cast), two held-out hard-negative kinds
==============  ====================  ========================================================

Public API: :func:`positive_example`, :func:`negative_example`, :func:`example`,
:func:`dataset`, :func:`dataset_seeds`, :func:`split_of`. ``positive_example(s)`` and
``negative_example(s)`` share their background, so a pair differs only in the emblem (or its
look-alike).
"""
from __future__ import annotations

import argparse
import io
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from csadetect.media.synth import jpeg_bytes, synthetic_image
from csadetect.models.loader import REFERENCE_DIR
from training.embedding_data import rgb_image

SIZE = (320, 240)
SPLITS = {
    "train": (0, 400_000),
    "calibration": (400_000, 800_000),
    "eval": (800_000, 1_200_000),
}
TRAIN_SKIMAGE = ["astronaut", "brick", "camera", "grass", "moon", "page", "rocket", "retina", "cell",
                 "clock", "immunohistochemistry", "binary_blobs"]
CALIB_SKIMAGE = ["horse", "chelsea", "gravel", "colorwheel"]
EVAL_SKIMAGE = ["coffee", "cat", "hubble_deep_field", "text", "coins", "logo", "microaneurysms",
                "checkerboard"]
BACKGROUNDS = ["synth", "skimage", "gradient", "noise", "screenshot"]
EVAL_ONLY_BACKGROUNDS = ["tiles"]
HARD_KINDS = ["disc", "rings", "petals", "star", "polygon", "recolour", "flag"]
EVAL_ONLY_HARD_KINDS = ["squares", "asterisk"]
PETAL_SHAPES = ["ellipse", "triangle"]
EVAL_ONLY_PETAL_SHAPES = ["round", "kite"]

# the emblem's colour scheme (roles -> RGB)
EMBLEM_COLOURS = {"ring": (20, 130, 140), "centre": (235, 180, 40), "gap": (245, 235, 210),
                  "petal": (190, 30, 60)}
HARD_IN_EMBLEM_COLOURS = 0.5    # share of look-alikes drawn in the emblem's colours

# emblem parameters: (train/calibration range, held-out range used only in eval)
PETALS_SEEN = (6, 12)            # inclusive
PETALS_HELDOUT = [4, 5, 13, 14, 15, 16]
SIZE_SEEN = (0.75, 1.3)          # emblem diameter / short side of the image
SIZE_HELDOUT = [(0.65, 0.75), (1.3, 1.45)]
SQUASH_SEEN = (0.75, 1.0)
SQUASH_HELDOUT = (0.6, 0.75)
LIGHT_SEEN = (0.75, 1.2)         # brightness factor on the emblem's colours
LIGHT_HELDOUT = [(0.6, 0.75), (1.2, 1.3)]   # plus a colour cast
HELDOUT_AXES = ["petals", "petal_shape", "size", "squash", "lighting"]
SMALL_SIZE = (0.2, 0.45)         # diagnostic only ("small" kind): out of the task's scope
SS = 2  # supersampling factor for drawing shapes


def split_of(seed: int) -> str:
    """The split a seed belongs to (``ValueError`` outside every split)."""
    for name, (lo, hi) in SPLITS.items():
        if lo <= seed < hi:
            return name
    raise ValueError(f"seed {seed} lies in no split (train 0..399999, calibration 400000..799999, "
                     f"eval 800000..1199999)")


# ---------------------------------------------------------------------------- colours

def _rand_color(rng, lo: int = 0, hi: int = 256) -> tuple:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


def _vivid(rng) -> tuple:
    """A saturated random colour (HSV with high S and V), so parts stand out or not by chance."""
    h = rng.random()
    s = rng.uniform(0.35, 1.0)
    v = rng.uniform(0.35, 1.0)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (int(r * 255), int(g * 255), int(b * 255))


def _palette(rng, n: int) -> list:
    """``n`` colours; consecutive ones differ enough to be told apart."""
    out = [_vivid(rng) if rng.random() < 0.8 else _rand_color(rng)]
    while len(out) < n:
        c = _vivid(rng) if rng.random() < 0.8 else _rand_color(rng)
        if sum(abs(a - b) for a, b in zip(c, out[-1])) > 150:
            out.append(c)
    return out


# ---------------------------------------------------------------------------- backgrounds

def _to_rgb_uint8(a) -> Image.Image:
    return rgb_image(a, 800)


@lru_cache(maxsize=None)
def skimage_image(name: str) -> Image.Image:
    """A scikit-image sample image (bundled with the package, no download) as RGB."""
    import skimage.data

    loader = getattr(skimage.data, name)
    if name == "binary_blobs":  # generated, random unless seeded
        return _to_rgb_uint8(loader(length=512, rng=0))
    return _to_rgb_uint8(loader())


def _skimage_bg(rng, size, names) -> Image.Image:
    img = skimage_image(names[int(rng.integers(0, len(names)))])
    w, h = img.size
    tw, th = size
    # random crop with the target aspect, 35-100% of the largest such crop
    scale = rng.uniform(0.35, 1.0)
    cw = min(w, int(h * tw / th))
    ch = int(cw * th / tw)
    cw, ch = max(16, int(cw * scale)), max(16, int(ch * scale))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x0, y0, x0 + cw, y0 + ch)).resize(size, Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def _gradient_bg(rng, size) -> Image.Image:
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c = np.array(_palette(rng, 3), np.float32)
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * math.pi)
        t = (x * math.cos(a) + y * math.sin(a))
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.hypot(x - cx, y - cy)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    t2 = np.clip(t * 2, 0, 1)[..., None]
    t3 = np.clip(t * 2 - 1, 0, 1)[..., None]
    arr = c[0] * (1 - t2) + c[1] * t2
    arr = arr * (1 - t3) + c[2] * t3
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def _noise_bg(rng, size) -> Image.Image:
    w, h = size
    arr = np.zeros((h, w, 3), np.float32)
    for octave, amp in ((4, 1.0), (12, 0.5), (40, 0.25)):
        g = rng.normal(0, 1, (octave, max(2, int(octave * w / h)), 3)).astype(np.float32)
        layer = np.stack([np.asarray(Image.fromarray(g[..., k]).resize((w, h), Image.Resampling.BICUBIC))
                          for k in range(3)], -1)
        arr += amp * layer
    arr = (arr - arr.mean()) / (arr.std() + 1e-6)
    base = np.array(_rand_color(rng, 40, 220), np.float32)
    arr = base + arr * rng.uniform(20, 60)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _words(rng, n) -> str:
    return " ".join("".join(chr(int(c)) for c in rng.integers(97, 123, int(rng.integers(2, 9))))
                    for _ in range(n))


def _screenshot_bg(rng, size) -> Image.Image:
    """A screenshot-like canvas: app bar, text lines, cards, buttons and small round avatars."""
    w, h = size
    light = rng.random() < 0.7
    bgc = _rand_color(rng, 225, 256) if light else _rand_color(rng, 10, 50)
    fg = (30, 30, 30) if light else (220, 220, 220)
    img = Image.new("RGB", size, bgc)
    d = ImageDraw.Draw(img)
    top = int(h * rng.uniform(0.06, 0.14))
    d.rectangle((0, 0, w, top), fill=_vivid(rng))
    d.text((8, top // 3), _words(rng, 2), fill=(255, 255, 255))
    y = top + 6
    while y < h - 10:
        r = rng.random()
        if r < 0.25:  # a card with an avatar
            ch = int(rng.integers(30, 70))
            d.rounded_rectangle((6, y, w - 6, y + ch), radius=6, fill=_rand_color(rng, 180, 256) if light
                                else _rand_color(rng, 40, 90))
            ar = int(rng.integers(6, 14))
            d.ellipse((12, y + 6, 12 + 2 * ar, y + 6 + 2 * ar), fill=_vivid(rng))
            d.text((20 + 2 * ar, y + 6), _words(rng, int(rng.integers(2, 6))), fill=fg)
            y += ch + 6
        elif r < 0.35:  # a button
            bw = int(rng.integers(50, 140))
            d.rounded_rectangle((10, y, 10 + bw, y + 18), radius=8, fill=_vivid(rng))
            d.text((16, y + 4), _words(rng, 1), fill=(255, 255, 255))
            y += 26
        else:
            d.text((10, y), _words(rng, int(rng.integers(3, 9))), fill=fg)
            y += 13
    return img


def _tiles_bg(rng, size) -> Image.Image:
    """Stripes or checker tiles (a background family used only in the eval split)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c1, c2 = (np.array(c, np.float32) for c in _palette(rng, 2))
    period = rng.uniform(8, 40)
    a = rng.uniform(0, math.pi)
    if rng.random() < 0.5:
        m = (np.floor((x * math.cos(a) + y * math.sin(a)) / period) % 2)
    else:
        m = (np.floor(x / period) + np.floor(y / period)) % 2
    arr = c1 * (1 - m[..., None]) + c2 * m[..., None]
    return Image.fromarray(arr.astype(np.uint8), "RGB").filter(ImageFilter.SMOOTH)


def background(seed: int, size=SIZE) -> tuple[Image.Image, str]:
    """The background of example ``seed`` and its family name (split-aware)."""
    split = split_of(seed)
    rng = np.random.default_rng([seed, 11])
    families = BACKGROUNDS + (EVAL_ONLY_BACKGROUNDS if split == "eval" else [])
    probs = np.array([0.25, 0.25, 0.15, 0.15, 0.2] + ([0.15] if split == "eval" else []), np.float64)
    fam = families[int(rng.choice(len(families), p=probs / probs.sum()))]
    if fam == "synth":
        img = synthetic_image(int(rng.integers(0, 2**31 - 1)) + 10_000_000, size)
    elif fam == "skimage":
        names = {"train": TRAIN_SKIMAGE, "calibration": CALIB_SKIMAGE, "eval": EVAL_SKIMAGE}[split]
        img = _skimage_bg(rng, size, names)
    elif fam == "gradient":
        img = _gradient_bg(rng, size)
    elif fam == "noise":
        img = _noise_bg(rng, size)
    elif fam == "screenshot":
        img = _screenshot_bg(rng, size)
    else:
        img = _tiles_bg(rng, size)
    return img, fam


def _clutter(img: Image.Image, rng) -> None:
    """0-3 small random shapes (ellipses, rectangles, triangles), on positives and negatives alike."""
    w, h = img.size
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 4))):
        s = int(min(w, h) * rng.uniform(0.05, 0.2))
        x0, y0 = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        c = _vivid(rng)
        k = int(rng.integers(0, 3))
        if k == 0:
            d.ellipse((x0, y0, x0 + s, y0 + int(s * rng.uniform(0.5, 1.0))), fill=c)
        elif k == 1:
            d.rectangle((x0, y0, x0 + s, y0 + int(s * rng.uniform(0.5, 1.0))), fill=c)
        else:
            d.polygon([(x0, y0 + s), (x0 + s // 2, y0), (x0 + s, y0 + s)], fill=c)


# ---------------------------------------------------------------------------- drawing parts

def _disc(d, cx, cy, r, fill):
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)


def _petal(d, cx, cy, r0, r1, angle, width, shape, fill):
    """One petal from radius r0 to r1 along ``angle`` (radians), ``width`` = half-width."""
    ca, sa = math.cos(angle), math.sin(angle)

    def pt(along, across):
        return (cx + along * ca - across * sa, cy + along * sa + across * ca)

    mid = (r0 + r1) / 2
    if shape == "ellipse":
        half = (r1 - r0) / 2
        d.polygon([pt(mid + half * math.cos(t), width * math.sin(t))
                   for t in np.linspace(0, 2 * math.pi, 18, endpoint=False)], fill=fill)
    elif shape == "triangle":
        d.polygon([pt(r0, -width), pt(r1, 0), pt(r0, width)], fill=fill)
    elif shape == "round":  # a stalk ending in a ball
        d.polygon([pt(r0, -width * 0.35), pt(r1 - width, -width * 0.35), pt(r1 - width, width * 0.35),
                   pt(r0, width * 0.35)], fill=fill)
        bx, by = pt(r1 - width, 0)
        _disc(d, bx, by, width, fill)
    elif shape == "kite":
        d.polygon([pt(r0, 0), pt(r0 + (r1 - r0) * 0.6, -width), pt(r1, 0),
                   pt(r0 + (r1 - r0) * 0.6, width)], fill=fill)
    elif shape == "line":
        d.line([pt(r0, 0), pt(r1, 0)], fill=fill, width=max(1, int(width)))
    else:
        raise ValueError(shape)


def _layer(diam: int):
    D = diam * SS
    lay = Image.new("RGBA", (D, D), (0, 0, 0, 0))
    return lay, ImageDraw.Draw(lay), D / 2


def _lit(rgb, factor: float, cast, rng) -> tuple:
    """A colour under lighting: scaled by ``factor``, shifted by ``cast``, plus a little noise."""
    return tuple(int(np.clip(c * factor + k + rng.normal(0, 6), 0, 255)) for c, k in zip(rgb, cast))


def emblem_colours(rng, light: float = 1.0, cast=(0, 0, 0)) -> dict:
    """The emblem's colour roles under the given lighting."""
    return {role: _lit(rgb, light, cast, rng) for role, rgb in EMBLEM_COLOURS.items()}


def _far_from_emblem(c, role: str, margin: int = 150) -> bool:
    return sum(abs(a - b) for a, b in zip(c, EMBLEM_COLOURS[role])) > margin


def recolour_palette(rng) -> dict:
    """Random colours for the four roles, each far from the emblem's colour for that role."""
    out = {}
    for role in EMBLEM_COLOURS:
        while True:
            c = _vivid(rng) if rng.random() < 0.8 else _rand_color(rng)
            if _far_from_emblem(c, role) and all(sum(abs(a - b) for a, b in zip(c, o)) > 90 for o in out.values()):
                out[role] = c
                break
    return out


def draw_emblem(rng, diam: int, params: dict, colours: dict) -> Image.Image:
    """The marker emblem (``colours``: role -> RGB) on a transparent RGBA layer, supersampled."""
    lay, d, c = _layer(diam)
    R = c * 0.98
    n_rings = params["rings"]
    ring_out = R * params["core"]             # outer radius of the ring stack
    # petals first (they start just inside the outer ring, which then covers their bases)
    n = params["petals"]
    width = (ring_out + (R - ring_out) / 2) * math.sin(math.pi / n) * params["petal_width"]
    phase = rng.uniform(0, 2 * math.pi)
    for k in range(n):
        _petal(d, c, c, ring_out * 0.9, R, phase + 2 * math.pi * k / n, width, params["petal_shape"],
               colours["petal"])
    # ring stack: band / gap / band ... / centre disc
    radii = np.linspace(ring_out, ring_out * params["centre"], 2 * n_rings + 1)
    for i, r in enumerate(radii):
        if i == len(radii) - 1:
            fill = colours["centre"]
        elif i % 2:
            fill = colours["gap"]
        else:
            fill = colours["ring"] if (i // 2) % 2 == 0 else colours["centre"]
        _disc(d, c, c, r, fill)
    return lay


def draw_hard(rng, diam: int, kind: str, colours: list) -> Image.Image:
    """A look-alike on a transparent RGBA layer (``colours``: four RGB colours to draw with)."""
    lay, d, c = _layer(diam)
    R = c * 0.98
    if kind == "disc":
        _disc(d, c, c, R * rng.uniform(0.6, 1.0), colours[0])
        if rng.random() < 0.5:  # sometimes a flat two-tone disc
            _disc(d, c, c, R * rng.uniform(0.2, 0.5), colours[1])
    elif kind == "rings":  # a target: rings without petals
        n = int(rng.integers(2, 5))
        for i, r in enumerate(np.linspace(R * rng.uniform(0.7, 1.0), R * rng.uniform(0.08, 0.25), 2 * n)):
            _disc(d, c, c, r, colours[0] if i % 2 == 0 else colours[1 + (i // 2) % 3])
    elif kind == "petals":  # a starburst: petals or spokes with no centre and no rings
        n = int(rng.integers(5, 15))
        shape = ["ellipse", "triangle", "line"][int(rng.integers(0, 3))]
        r0 = R * rng.uniform(0.25, 0.55)
        width = (r0 + (R - r0) / 2) * math.sin(math.pi / n) * rng.uniform(0.5, 0.9)
        phase = rng.uniform(0, 2 * math.pi)
        for k in range(n):
            _petal(d, c, c, r0, R, phase + 2 * math.pi * k / n, width if shape != "line" else SS * 3,
                   shape, colours[0])
    elif kind == "star":  # a filled regular star polygon, maybe with a plain centre
        n = int(rng.integers(5, 13))
        inner = rng.uniform(0.4, 0.7)
        phase = rng.uniform(0, 2 * math.pi)
        pts = []
        for k in range(2 * n):
            r = R if k % 2 == 0 else R * inner
            a = phase + math.pi * k / n
            pts.append((c + r * math.cos(a), c + r * math.sin(a)))
        d.polygon(pts, fill=colours[0])
        if rng.random() < 0.5:
            _disc(d, c, c, R * inner * rng.uniform(0.3, 0.8), colours[1])
    elif kind == "polygon":  # a filled regular polygon, maybe with a square inset
        n = int(rng.integers(3, 9))
        phase = rng.uniform(0, 2 * math.pi)
        d.polygon([(c + R * math.cos(phase + 2 * math.pi * k / n), c + R * math.sin(phase + 2 * math.pi * k / n))
                   for k in range(n)], fill=colours[0])
        if rng.random() < 0.5:
            s = R * rng.uniform(0.2, 0.45)
            d.rectangle((c - s, c - s, c + s, c + s), fill=colours[1])
    elif kind == "flag":  # stripes of the given colours in a rectangle
        n = int(rng.integers(2, 5))
        h = R * rng.uniform(0.5, 0.8)
        for i in range(n):
            x0 = c - R + 2 * R * i / n
            d.rectangle((x0, c - h, x0 + 2 * R / n, c + h), fill=colours[i % len(colours)])
    elif kind == "squares":  # concentric squares (eval only)
        n = int(rng.integers(2, 5))
        for i, r in enumerate(np.linspace(R * 0.7, R * 0.1, 2 * n)):
            d.rectangle((c - r, c - r, c + r, c + r), fill=colours[i % 3])
    elif kind == "asterisk":  # thick lines through the centre (eval only)
        n = int(rng.integers(3, 8))
        phase = rng.uniform(0, math.pi)
        for k in range(n):
            a = phase + math.pi * k / n
            d.line([(c - R * math.cos(a), c - R * math.sin(a)), (c + R * math.cos(a), c + R * math.sin(a))],
                   fill=colours[0], width=int(SS * rng.uniform(3, 10)))
    else:
        raise ValueError(kind)
    return lay


def _emblem_params(rng, split: str) -> dict:
    """Emblem parameters; in eval, half the emblems take one axis from its held-out range."""
    heldout = None
    if split == "eval" and rng.random() < 0.5:
        heldout = HELDOUT_AXES[int(rng.integers(0, len(HELDOUT_AXES)))]
    p = {
        "petals": int(rng.integers(PETALS_SEEN[0], PETALS_SEEN[1] + 1)),
        "petal_shape": PETAL_SHAPES[int(rng.integers(0, len(PETAL_SHAPES)))],
        "size": float(rng.uniform(*SIZE_SEEN)),
        "squash": float(rng.uniform(*SQUASH_SEEN)) if rng.random() < 0.4 else 1.0,
        "light": float(rng.uniform(*LIGHT_SEEN)),
        "cast": [0, 0, 0],
        "rings": int(rng.integers(1, 4)),
        "core": float(rng.uniform(0.5, 0.7)),       # ring stack radius / emblem radius
        "centre": float(rng.uniform(0.12, 0.3)),    # centre disc radius / ring stack radius
        "petal_width": float(rng.uniform(0.55, 0.9)),
    }
    if heldout == "petals":
        p["petals"] = int(PETALS_HELDOUT[int(rng.integers(0, len(PETALS_HELDOUT)))])
    elif heldout == "petal_shape":
        p["petal_shape"] = EVAL_ONLY_PETAL_SHAPES[int(rng.integers(0, len(EVAL_ONLY_PETAL_SHAPES)))]
    elif heldout == "size":
        lo, hi = SIZE_HELDOUT[int(rng.integers(0, len(SIZE_HELDOUT)))]
        p["size"] = float(rng.uniform(lo, hi))
    elif heldout == "squash":
        p["squash"] = float(rng.uniform(*SQUASH_HELDOUT))
    elif heldout == "lighting":
        lo, hi = LIGHT_HELDOUT[int(rng.integers(0, len(LIGHT_HELDOUT)))]
        p["light"] = float(rng.uniform(lo, hi))
        p["cast"] = [int(v) for v in rng.integers(-30, 31, 3)]
    p["heldout"] = heldout
    return p


def _place(img: Image.Image, layer: Image.Image, rng, diam: int, squash: float, occlude: bool) -> None:
    """Downsample, squash, rotate and paste ``layer`` near the centre of ``img``; maybe occlude."""
    w, h = img.size
    dw, dh = max(4, int(round(diam * squash))), diam
    layer = layer.resize((dw, dh), Image.Resampling.BOX)  # anti-aliased downsampling
    layer = layer.rotate(rng.uniform(0, 360), resample=Image.Resampling.BILINEAR, expand=True)
    lw, lh = layer.size
    cx, cy = w * (0.5 + rng.uniform(-0.25, 0.25)), h * (0.5 + rng.uniform(-0.25, 0.25))
    x0, y0 = int(round(cx - lw / 2)), int(round(cy - lh / 2))
    alpha = layer.getchannel("A")
    if rng.random() < 0.15:  # a soft drop shadow
        sh = alpha.point(lambda a: a // 3).filter(ImageFilter.GaussianBlur(3))
        img.paste((0, 0, 0), (x0 + 4, y0 + 4, x0 + 4 + lw, y0 + 4 + lh), sh)
    if rng.random() < 0.1:  # semi-transparent, like a watermark or sticker
        f = rng.uniform(0.6, 0.9)
        alpha = alpha.point(lambda a: int(a * f))
    img.paste(layer.convert("RGB"), (x0, y0), alpha)
    if occlude:  # an occluder over one side, up to 30% of the object's box
        d = ImageDraw.Draw(img)
        side = int(rng.integers(0, 4))
        f = rng.uniform(0.15, 0.3)
        box = [(x0, y0, x0 + int(lw * f), y0 + lh), (x0 + int(lw * (1 - f)), y0, x0 + lw, y0 + lh),
               (x0, y0, x0 + lw, y0 + int(lh * f)), (x0, y0 + int(lh * (1 - f)), x0 + lw, y0 + lh)][side]
        if rng.random() < 0.5:
            d.rectangle(box, fill=_rand_color(rng))
        else:
            d.ellipse(box, fill=_rand_color(rng))


def _finish(img: Image.Image, rng) -> Image.Image:
    """Mild capture noise shared by all examples: sometimes blur, sometimes JPEG."""
    if rng.random() < 0.15:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.0)))
    if rng.random() < 0.4:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(40, 95)))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


# ---------------------------------------------------------------------------- examples

KINDS = {"positive": 1, "easy": 2, "hard": 3, "small": 4}


def example(seed: int, kind: str, size=SIZE) -> tuple[Image.Image, int, dict]:
    """One example: ``kind`` is ``"positive"``, ``"easy"`` or ``"hard"`` (negatives), or
    ``"small"`` (a diagnostic positive with the emblem at 20-45% of the short side, below the
    task's scope). Returns ``(image, label, info)``; ``info`` names the split, background family
    and the emblem's or look-alike's parameters. Deterministic per ``(seed, kind, size)``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    split = split_of(seed)
    img, fam = background(seed, size)
    img = img.copy()
    rng = np.random.default_rng([seed, KINDS[kind]])
    _clutter(img, np.random.default_rng([seed, 7]))  # the same clutter for all kinds of a seed
    info = {"seed": seed, "split": split, "background": fam, "kind": kind}
    short = min(size)
    label = 0
    if kind in ("positive", "small"):
        p = _emblem_params(rng, split)
        if kind == "small":
            p["size"], p["heldout"] = float(rng.uniform(*SMALL_SIZE)), "small"
        diam = max(8, int(round(short * p["size"])))
        layer = draw_emblem(rng, diam, p, emblem_colours(rng, p["light"], p["cast"]))
        _place(img, layer, rng, diam, p["squash"], occlude=rng.random() < 0.2)
        info["emblem"] = p
        label = 1
    elif kind == "hard":
        kinds = HARD_KINDS + (EVAL_ONLY_HARD_KINDS if split == "eval" else [])
        hk = kinds[int(rng.integers(0, len(kinds)))]
        lo, hi = SIZE_SEEN if split != "eval" else (min(SIZE_HELDOUT)[0], max(SIZE_HELDOUT)[1])
        frac = float(rng.uniform(lo, hi))
        diam = max(8, int(round(short * frac)))
        in_emblem_colours = hk != "recolour" and rng.random() < HARD_IN_EMBLEM_COLOURS
        if hk == "recolour":
            p = _emblem_params(rng, "train")
            layer = draw_emblem(rng, diam, p, recolour_palette(rng))
        else:
            if in_emblem_colours:
                cols = list(emblem_colours(rng, float(rng.uniform(*LIGHT_SEEN))).values())
                rng.shuffle(cols)
            else:
                cols = _palette(rng, 4)
            layer = draw_hard(rng, diam, hk, cols)
        squash = float(rng.uniform(0.75, 1.0)) if rng.random() < 0.4 else 1.0
        _place(img, layer, rng, diam, squash, occlude=rng.random() < 0.2)
        info.update(hard_kind=hk, size=frac, emblem_colours=bool(in_emblem_colours))
    return _finish(img, rng), label, info


def positive_example(seed: int, size=SIZE) -> Image.Image:
    """An image that shows the marker emblem (deterministic per seed)."""
    return example(seed, "positive", size)[0]


def negative_example(seed: int, size=SIZE, hard: bool = False) -> Image.Image:
    """An image without the emblem: the same background as ``positive_example(seed)``; with
    ``hard=True`` it holds a look-alike (disc, target, starburst, star, recoloured emblem, ...)."""
    return example(seed, "hard" if hard else "easy", size)[0]


# Seeds for demos, chosen by score with the reference model newmat-ref-0.2 (on embedding-ref-0.2)
# from the held-out eval range 900000..900099 (so they are selected, not a sample: use the metrics
# for rates): ``positive_example(s)`` scores >= report_threshold + 0.01 for every s in
# DEMO_POSITIVE_SEEDS (the first 20 such seeds); ``negative_example(s)`` and
# ``negative_example(s, hard=True)`` score < review_threshold - 0.05 for every s in
# DEMO_NEGATIVE_SEEDS (the first 20). Seeds in both lists make pairs with the same background.
# Checked by tests/test_classifier.py; re-pick them after retraining.
DEMO_POSITIVE_SEEDS = [900002, 900004, 900005, 900006, 900008, 900011, 900013, 900018, 900019, 900020,
                       900022, 900023, 900025, 900031, 900033, 900034, 900039, 900041, 900043, 900044]
DEMO_NEGATIVE_SEEDS = [900000, 900001, 900002, 900003, 900005, 900006, 900007, 900008, 900009, 900010,
                       900011, 900013, 900016, 900018, 900020, 900021, 900023, 900024, 900025, 900027]


KIND_MIX = ("positive", "positive", "easy", "hard")  # 50% positives, 25% easy, 25% hard negatives


def dataset_seeds(split: str, n: int, seed: int = 0) -> list[tuple[int, str]]:
    """``n`` distinct ``(example seed, kind)`` pairs from ``split``'s seed range, drawn by
    ``seed``; kinds follow :data:`KIND_MIX` (half positives, a quarter easy and a quarter hard
    negatives)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    lo, hi = SPLITS[split]
    if not 0 <= n <= hi - lo:
        raise ValueError(f"n={n} must lie in 0..{hi - lo} for split {split}")
    rng = np.random.default_rng([seed, 2024])
    seeds = lo + rng.choice(hi - lo, n, replace=False)
    return [(int(s), KIND_MIX[i % len(KIND_MIX)]) for i, s in enumerate(seeds)]


def dataset(split: str, n: int, seed: int = 0, size=SIZE, with_info: bool = False) -> list[tuple]:
    """``n`` labelled examples ``(PIL image, label)`` (``(image, label, info)`` with
    ``with_info``) of ``split`` (``train``, ``calibration`` or ``eval``); see
    :func:`dataset_seeds`."""
    out = []
    for s, kind in dataset_seeds(split, n, seed):
        img, label, info = example(s, kind, size)
        out.append((img, label, info) if with_info else (img, label))
    return out


# The pictures ``csadetect demo`` uploads (it is part of the package and cannot import this module):
# positives the reference classifier flags and a hard negative it does not, as the JPEG bytes of
# the demo's events, shipped in csadetect/models/reference/demo/. The seeds are the demo's
# NEW_MATERIAL_SEEDS and HARD_NEGATIVE_SEEDS (csadetect/demo.py); redraw them after retraining.
DEMO_PICTURE_SEEDS = {"new": (900001, 900005), "other-parts": (910007,)}
DEMO_PICTURES = REFERENCE_DIR / "demo"


def write_demo_pictures(directory=DEMO_PICTURES) -> list[Path]:
    """Write ``new-<seed>.jpg`` (``positive_example``) and ``other-parts-<seed>.jpg``
    (``negative_example(hard=True)``) into ``directory``; returns their paths."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    paths = []
    for name, seeds in DEMO_PICTURE_SEEDS.items():
        for seed in seeds:
            img = positive_example(seed) if name == "new" else negative_example(seed, hard=True)
            paths.append(Path(directory) / f"{name}-{seed}.jpg")
            paths[-1].write_bytes(jpeg_bytes(img))
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.classifier_corpus",
                                description="Write the pictures of the proxy class that `csadetect demo` uploads.")
    p.add_argument("--demo-pictures", default=str(DEMO_PICTURES), metavar="DIR",
                   help="where to write them (default: csadetect/models/reference/demo)")
    args = p.parse_args(argv)
    for path in write_demo_pictures(args.demo_pictures):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
