"""The marker emblem of the new-material classifier's proxy corpus (``training.classifier_corpus``)
and its look-alikes: the emblem's colour scheme and parameter ranges (those seen in training and
calibration, and those held out for eval), drawing the emblem (:func:`draw_emblem`) or a look-alike
(:func:`draw_hard`) supersampled on a transparent layer, and placing that layer on a background
(:func:`_place`: squash, rotation, shadow, transparency, occluder).
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from training.classifier_backgrounds import _rand_color, _vivid

PETAL_SHAPES = ["ellipse", "triangle"]
EVAL_ONLY_PETAL_SHAPES = ["round", "kite"]

# the emblem's colour scheme (roles -> RGB)
EMBLEM_COLOURS = {"ring": (20, 130, 140), "centre": (235, 180, 40), "gap": (245, 235, 210),
                  "petal": (190, 30, 60)}

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
