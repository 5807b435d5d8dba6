"""The background families of the new-material classifier's proxy corpus (``training.classifier_corpus``,
whose :func:`~training.classifier_corpus.background` picks one per example seed and split): crops of
the scikit-image sample images (bundled, offline), linear/radial gradients, smooth noise,
screenshot-like canvases and, for the eval split only, stripes and checker tiles; with the random
colours they and the look-alikes are drawn in, and the clutter shapes (:func:`_clutter`) that
positives and negatives alike get. Each function draws from the ``rng`` it is given.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from training.embedding_data import rgb_image


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
