"""The image set of the robustness benchmark (``benchmarks/bench_robustness.py``), built at run time
from benign sources, nothing downloaded:

* originals: natural photos bundled with scikit-image (``SKIMAGE_ORIGINALS``, test split only) plus
  procedurally generated pictures (``GENERATORS``: fractal landscapes, shaded still lifes, shape
  scenes, mosaics, interference patterns, clouds), kept when their PDQ quality passes
  ``QUALITY_GATE``;
* distractors: other generated pictures (other seeds), other bundled scikit-image images
  (``SKIMAGE_DISTRACTORS``, one half per split), crops of them and generated text pages, each also
  in a randomly framed version (border, letterbox, screenshot, caption bar ...), none of them a
  copy of an original;
* ``TRANSFORMS``: 30 edits of an original (re-encoding, resizing, crops, borders, letterboxing,
  screenshots, rotations, colour changes, overlays ...), each with the encoding it is saved in
  (``encode``), then issue 17's 18 (``ISSUE17``): crops keeping 75% or 60% of the area at each
  corner, the centre or a random place, picture-in-picture over an unrelated picture at 60% and 40%
  of the canvas, three collage layouts (the original >= 42% of the canvas) and a meme frame with a
  caption above and below;
* issue 17's scene originals and hard distractors (:func:`scene_pairs`, :func:`build_hard_distractors`):
  other shots of a scene original (burst frames, the other eye of a stereo pair, other objects on
  the same studio sweep; ``training.robustness_scenes`` says how a copy and another shot differ)
  and a template of a copy (collage, meme frame, screenshot, chat) holding a different picture.

Two splits, ``dev`` and ``test``, with their own seeds (``split_seed``). The benchmark reports on
both; ``training.calibrate_embedding`` calibrates the embedding's threshold on ``dev`` and never
sees ``test``. It lives here, with the training tools, so that calibration does not depend on a
benchmark.
"""
from __future__ import annotations

import functools
import hashlib
import io
import math
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from csadetect.media.hashing import hash_image
from training import robustness_scenes as scenes

QUALITY_GATE = 50
ORIGINAL_SIDE = 640  # originals are brought to at most this long side before the transforms

WORDS = (
    "the quick brown fox jumps over lazy dog river mountain sunset photo shared today with "
    "friends weekend trip lovely weather coffee morning garden flowers city lights night "
    "market street music festival beach holiday family dinner recipe bread harbour boats"
).split()


# --------------------------------------------------------------------------- generated images


_fractal = scenes.fractal  # 2D 1/f^beta noise in [0, 1]


def _fractal1d(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    f = np.fft.rfftfreq(n)
    f[0] = 1.0
    spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** (beta / 2)
    spec[0] = 0
    x = np.fft.irfft(spec, n=n)
    x -= x.min()
    return x / max(x.max(), 1e-9)


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(0, 255, size=(n, 3))


def _colour_map(field: np.ndarray, pal: np.ndarray) -> np.ndarray:
    """Map [0,1] field through a piecewise-linear palette -> HxWx3 float."""
    pos = np.linspace(0, 1, len(pal))
    return np.stack([np.interp(field, pos, pal[:, c]) for c in range(3)], axis=-1)


def _finish(rng: np.random.Generator, arr: np.ndarray, grain: float = 4.0) -> Image.Image:
    arr = arr + rng.normal(0, grain, size=arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _size(rng: np.random.Generator) -> tuple[int, int]:
    w = int(rng.choice([480, 512, 560, 600, 640]))
    h = int(w * rng.choice([0.66, 0.75, 1.0, 1.25, 1.5]))
    return w, min(h, 720)


def gen_clouds(rng):
    w, h = _size(rng)
    field = _fractal(rng, h, w, rng.uniform(2.2, 3.2))
    return _finish(rng, _colour_map(field, _palette(rng, int(rng.integers(3, 6)))))


def gen_landscape(rng):
    w, h = _size(rng)
    y = np.linspace(0, 1, h)[:, None, None]
    top, bottom = _palette(rng, 2)
    arr = np.broadcast_to(top * (1 - y) + bottom * y, (h, w, 3)).copy()
    arr += (_fractal(rng, h, w, 2.8)[..., None] - 0.5) * 60  # haze/clouds
    yy, xx = np.mgrid[0:h, 0:w]
    sx, sy, sr = rng.uniform(0.1, 0.9) * w, rng.uniform(0.05, 0.4) * h, rng.uniform(0.04, 0.1) * w
    sun = np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * sr * sr))[..., None]
    arr = arr * (1 - sun) + sun * np.array([255, 240, 200])
    layers = int(rng.integers(3, 6))
    for i in range(layers):
        base = 0.3 + 0.6 * (i + 1) / (layers + 1)
        ridge = (base + (_fractal1d(rng, w, rng.uniform(1.6, 2.4)) - 0.5) * rng.uniform(0.2, 0.45)) * h
        colour = rng.uniform(0, 255, 3) * (1 - 0.12 * i)
        tex = _fractal(rng, h, w, 1.8)[..., None]
        mask = (yy >= ridge[None, :])[..., None]
        shade = colour * (0.7 + 0.6 * tex) * (1 - 0.3 * (yy[..., None] - ridge[None, :, None]).clip(0) / h)
        arr = np.where(mask, shade, arr)
    return _finish(rng, arr, grain=3.0)


def gen_still_life(rng):
    w, h = _size(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    horizon = rng.uniform(0.45, 0.7) * h
    wall, table = _palette(rng, 2)
    arr = np.where((yy < horizon)[..., None], wall, table) * (0.75 + 0.25 * _fractal(rng, h, w, 2.0)[..., None])
    light = rng.normal(size=3)
    light[2] = abs(light[2]) + 0.8
    light /= np.linalg.norm(light)
    for _ in range(int(rng.integers(3, 8))):
        r = rng.uniform(0.06, 0.2) * min(w, h)
        cx, cy = rng.uniform(r, w - r), rng.uniform(horizon - r, min(h - r, horizon + 0.3 * h))
        colour = rng.uniform(30, 255, 3)
        # shadow
        d2s = ((xx - cx - light[0] * r) / 1.6) ** 2 + ((yy - cy - r * 0.8) / 0.5) ** 2
        arr *= np.where(d2s < r * r, 0.6, 1.0)[..., None]
        dx, dy = (xx - cx) / r, (yy - cy) / r
        inside = dx * dx + dy * dy < 1
        nz = np.sqrt(np.clip(1 - dx * dx - dy * dy, 0, 1))
        lam = np.clip(dx * light[0] + dy * light[1] + nz * light[2], 0, 1)
        spec = lam ** 30
        ball = colour * (0.2 + 0.8 * lam[..., None]) + 255 * spec[..., None] * 0.6
        arr = np.where(inside[..., None], ball, arr)
    return _finish(rng, arr, grain=3.0)


def gen_shapes(rng):
    w, h = _size(rng)
    c0, c1 = _palette(rng, 2)
    t = np.linspace(0, 1, w)[None, :, None] * rng.uniform(0, 1)
    t = t + np.linspace(0, 1, h)[:, None, None] * rng.uniform(0, 1)
    t = t / max(t.max(), 1e-9)
    bg = c0 * (1 - t) + c1 * t
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img, "RGBA")
    for _ in range(int(rng.integers(10, 30))):
        kind = rng.integers(0, 4)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3)) + (int(rng.integers(120, 256)),)
        x0, y0 = rng.uniform(-0.1, 1.0) * w, rng.uniform(-0.1, 1.0) * h
        sw, sh = rng.uniform(0.05, 0.4) * w, rng.uniform(0.05, 0.4) * h
        if kind == 0:
            draw.ellipse([x0, y0, x0 + sw, y0 + sh], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x0 + sw, y0 + sh], fill=colour)
        elif kind == 2:
            pts = [(x0 + rng.uniform(0, sw), y0 + rng.uniform(0, sh)) for _ in range(int(rng.integers(3, 7)))]
            draw.polygon(pts, fill=colour)
        else:
            draw.line([x0, y0, x0 + sw, y0 + sh], fill=colour, width=int(rng.integers(2, 12)))
    arr = np.asarray(img, dtype=np.float64) * (0.8 + 0.4 * _fractal(rng, h, w, 2.0)[..., None])
    return _finish(rng, arr, grain=5.0).filter(ImageFilter.GaussianBlur(0.7))


def gen_mosaic(rng):
    w, h = _size(rng)
    n = int(rng.integers(12, 60))
    pts = rng.uniform(0, 1, (n, 2)) * (w, h)
    cols = rng.uniform(0, 255, (n, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    d = (xx[None] - pts[:, 0, None, None]) ** 2 + (yy[None] - pts[:, 1, None, None]) ** 2
    near = d.argmin(axis=0)
    two = np.partition(d, 1, axis=0)
    d1, d2 = np.sqrt(two[0]), np.sqrt(two[1])
    edge = np.clip((d2 - d1) / 6, 0, 1)[..., None]
    arr = cols[near] * (0.35 + 0.65 * edge) * (0.8 + 0.4 * _fractal(rng, h, w, 2.2)[..., None])
    return _finish(rng, arr, grain=4.0)


def gen_waves(rng):
    w, h = _size(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    field = np.zeros((h, w))
    for _ in range(int(rng.integers(3, 7))):
        if rng.uniform() < 0.5:
            ang, freq = rng.uniform(0, np.pi), rng.uniform(0.01, 0.06)
            field += np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * freq + rng.uniform(0, 6.3))
        else:
            cx, cy, freq = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.02, 0.08)
            field += np.sin(np.hypot(xx - cx, yy - cy) * freq)
    field += (_fractal(rng, h, w, 2.4) - 0.5) * 3
    field = (field - field.min()) / max(np.ptp(field), 1e-9)
    return _finish(rng, _colour_map(field, _palette(rng, int(rng.integers(3, 7)))))


GENERATORS = {
    "clouds": gen_clouds,
    "landscape": gen_landscape,
    "still": gen_still_life,
    "shapes": gen_shapes,
    "mosaic": gen_mosaic,
    "waves": gen_waves,
}


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _sentence(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(WORDS, size=n))


def gen_text_page(rng):
    w, h = 600, int(rng.choice([400, 600, 800]))
    img = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(225, 256, 3)))
    draw = ImageDraw.Draw(img)
    y = 20
    size = int(rng.integers(12, 26))
    while y < h - 30:
        draw.text((20, y), _sentence(rng, 8), fill=tuple(int(c) for c in rng.integers(0, 80, 3)), font=_font(size))
        y += int(size * rng.uniform(1.3, 2.2))
    return img


# --------------------------------------------------------------------------- skimage images


# bundled with scikit-image (no download); benign natural or scientific photos
SKIMAGE_ORIGINALS = (
    "astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "clock", "moon",
    "hubble_deep_field", "immunohistochemistry", "retina", "stereo_motorcycle", "cell",
)
# not originals: textures, drawings and documents used as distractors
SKIMAGE_DISTRACTORS = ("brick", "grass", "gravel", "page", "text", "colorwheel", "logo", "shepp_logan_phantom", "horse")


def _skimage(name: str) -> Image.Image:
    import skimage.data as data

    arr = getattr(data, name)()
    if name == "stereo_motorcycle":
        arr = arr[0]  # the left view only (the right one is a near-duplicate)
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = np.where(arr, 255, 0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr * 255.0 if arr.max() <= 1.0 else arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.shape[-1] == 4:
        return Image.fromarray(arr, "RGBA").convert("RGB")
    return Image.fromarray(arr[..., :3], "RGB")


def _fit(img: Image.Image, side: int = ORIGINAL_SIDE) -> Image.Image:
    if max(img.size) > side:
        s = side / max(img.size)
        img = img.resize((max(1, round(img.size[0] * s)), max(1, round(img.size[1] * s))), Image.Resampling.LANCZOS)
    return img


# --------------------------------------------------------------------------- transforms


def _canvas(size, colour) -> Image.Image:
    return Image.new("RGB", (int(size[0]), int(size[1])), tuple(int(c) for c in colour))


def _pad(img, left, top, right, bottom, colour):
    out = _canvas((img.width + left + right, img.height + top + bottom), colour)
    out.paste(img, (left, top))
    return out


def _border(frac, colour):
    def f(img, rng):
        b = max(1, round(frac * max(img.size)))
        c = colour if colour is not None else tuple(int(x) for x in rng.integers(0, 256, 3))
        return _pad(img, b, b, b, b, c)

    return f


def t_frame(img, rng):  # picture-frame: white mat inside a dark frame
    mat = round(0.08 * max(img.size))
    inner = _pad(img, mat, mat, mat, mat, (245, 245, 240))
    b = round(0.03 * max(img.size))
    return _pad(inner, b, b, b, b, (40, 30, 25))


def _box_to(img, aspect, colour=(0, 0, 0)):
    """Pad to aspect (w/h) with bars: letterbox (top/bottom) or pillarbox (left/right)."""
    w, h = img.size
    if w / h > aspect:  # too wide -> bars top/bottom
        H = round(w / aspect)
        return _pad(img, 0, (H - h) // 2, 0, H - h - (H - h) // 2, colour)
    W = round(h * aspect)
    return _pad(img, (W - w) // 2, 0, W - w - (W - w) // 2, 0, colour)


def t_letterbox(img, rng):  # phone-portrait frame: bars above and below
    return _box_to(img, 9 / 16)


def t_pillarbox(img, rng):  # widescreen frame: bars left and right (letterbox if wider)
    return _box_to(img, 16 / 9 if img.width / img.height < 16 / 9 else 21 / 9)


def t_blurred_fill(img, rng):  # social-media style: blurred zoomed copy behind the picture
    w, h = img.size
    aspect = 9 / 16 if w >= h else 16 / 9
    boxed = _box_to(img, aspect)
    W, H = boxed.size
    s = max(W / w, H / h)
    bg = img.resize((math.ceil(w * s), math.ceil(h * s))).crop((0, 0, W, H))
    bg = bg.filter(ImageFilter.GaussianBlur(max(W, H) / 30))
    bg.paste(img, ((W - w) // 2, (H - h) // 2))
    return bg


def t_caption(img, rng):  # meme: white bar with black caption above the picture
    w, h = img.size
    size = max(14, w // 16)
    lines = 2
    bar = int(size * 1.5 * lines + size)
    out = _pad(img, 0, bar, 0, 0, (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for i in range(lines):
        draw.text((size // 2, size // 2 + int(i * size * 1.5)), _sentence(rng, 5), fill=(0, 0, 0), font=_font(size))
    return out


def _icons(draw, rng, y, x0, x1, n, r, colour):
    for i in range(n):
        cx = x0 + (x1 - x0) * (i + 0.5) / n
        if rng.uniform() < 0.5:
            draw.ellipse([cx - r, y - r, cx + r, y + r], outline=colour, width=2)
        else:
            draw.rectangle([cx - r, y - r, cx + r, y + r], outline=colour, width=2)


def t_screenshot_phone(img, rng):
    W, H = 540, 1170
    dark = rng.uniform() < 0.5
    bg, fg = ((0, 0, 0), (235, 235, 235)) if dark else ((255, 255, 255), (20, 20, 20))
    out = _canvas((W, H), bg)
    draw = ImageDraw.Draw(out)
    draw.text((24, 14), "12:%02d" % rng.integers(0, 60), fill=fg, font=_font(22))
    _icons(draw, rng, 28, W - 130, W - 20, 3, 7, fg)
    draw.ellipse([16, 70, 64, 118], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw.text((76, 80), _sentence(rng, 2), fill=fg, font=_font(22))
    ph = round(img.height * W / img.width)
    ph = min(ph, 760)
    pw = round(img.width * ph / img.height)
    pic = img.resize((pw, ph), Image.Resampling.LANCZOS)
    top = 132
    out.paste(pic, ((W - pw) // 2, top))
    y = top + ph + 14
    _icons(draw, rng, y + 14, 0, 220, 4, 11, fg)
    y += 44
    for _ in range(3):
        if y > H - 110:
            break
        draw.text((16, y), _sentence(rng, 6), fill=fg, font=_font(20))
        y += 30
    draw.rectangle([0, H - 80, W, H], fill=(28, 28, 28) if dark else (245, 245, 245))
    _icons(draw, rng, H - 40, 0, W, 5, 13, fg)
    return out


def t_screenshot_desktop(img, rng):
    W, H = 1280, 800
    out = _canvas((W, H), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    draw.rectangle([0, 0, W, 78], fill=(222, 225, 230))
    draw.rounded_rectangle([10, 6, 260, 36], radius=8, fill=(255, 255, 255))
    draw.text((22, 12), _sentence(rng, 3), fill=(30, 30, 30), font=_font(16))
    draw.rounded_rectangle([90, 44, W - 90, 72], radius=14, fill=(255, 255, 255))
    draw.text((110, 49), "https://example.org/" + "-".join(rng.choice(WORDS, 3)), fill=(60, 60, 60), font=_font(16))
    draw.text((60, 100), _sentence(rng, 6).title(), fill=(10, 10, 10), font=_font(34))
    box_w, box_h = 700, 560
    s = min(box_w / img.width, box_h / img.height)
    pw, ph = round(img.width * s), round(img.height * s)
    pic = img.resize((pw, ph), Image.Resampling.LANCZOS)
    out.paste(pic, (60, 170))
    x = 60 + pw + 40
    y = 170
    while y < H - 40:
        draw.text((x, y), _sentence(rng, 4), fill=(40, 40, 40), font=_font(18))
        y += 28
    return out


def t_chat(img, rng):  # messenger screenshot: the picture in a rounded bubble between text bubbles
    W, H = 600, 1000
    out = _canvas((W, H), (236, 229, 221))
    draw = ImageDraw.Draw(out)
    draw.rectangle([0, 0, W, 90], fill=(7, 94, 84))
    draw.text((80, 30), _sentence(rng, 2).title(), fill=(255, 255, 255), font=_font(24))
    y = 110
    for _ in range(2):
        draw.rounded_rectangle([20, y, 420, y + 56], radius=12, fill=(255, 255, 255))
        draw.text((34, y + 16), _sentence(rng, 5), fill=(20, 20, 20), font=_font(18))
        y += 70
    pw = 420
    ph = min(round(img.height * pw / img.width), 520)
    pw = round(img.width * ph / img.height)
    x = W - 24 - pw - 12
    draw.rounded_rectangle([x - 6, y - 6, x + pw + 6, y + ph + 30], radius=14, fill=(220, 248, 198))
    pic = img.resize((pw, ph), Image.Resampling.LANCZOS)
    mask = Image.new("L", (pw, ph), 0)
    ImageDraw.Draw(mask).rounded_rectangle([0, 0, pw - 1, ph - 1], radius=10, fill=255)
    out.paste(pic, (x, y), mask)
    draw.text((x + pw - 60, y + ph + 6), "12:%02d" % rng.integers(0, 60), fill=(90, 90, 90), font=_font(14))
    y += ph + 50
    if y < H - 80:
        draw.rounded_rectangle([20, y, 380, y + 56], radius=12, fill=(255, 255, 255))
        draw.text((34, y + 16), _sentence(rng, 4), fill=(20, 20, 20), font=_font(18))
    draw.rectangle([0, H - 70, W, H], fill=(246, 246, 246))
    draw.rounded_rectangle([14, H - 56, W - 80, H - 14], radius=20, fill=(255, 255, 255))
    return out


def t_polaroid(img, rng):  # instant-photo look: white frame, wider at the bottom, handwriting there
    w, h = img.size
    b = round(0.05 * max(w, h))
    out = _pad(img, b, b, b, 4 * b, (250, 250, 246))
    ImageDraw.Draw(out).text((2 * b, h + 2 * b), _sentence(rng, 3), fill=(40, 40, 120), font=_font(max(12, b)))
    return out


def t_border_small_q40(img, rng):  # grey border, then shrunk to 40% and saved at JPEG q=40
    out = _border(0.08, (128, 128, 128))(img, rng)
    return out.resize((max(1, round(out.width * 0.4)), max(1, round(out.height * 0.4))), Image.Resampling.BILINEAR)


def t_overlay_text(img, rng):
    w, h = img.size
    out = img.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.rectangle([0, int(h * 0.82), w, int(h * 0.97)], fill=(0, 0, 0, 150))
    draw.text((w * 0.05, h * 0.84), _sentence(rng, 4).upper(), fill=(255, 255, 255, 255), font=_font(max(12, h // 16)))
    return Image.alpha_composite(out, layer).convert("RGB")


def t_watermark(img, rng):
    w, h = img.size
    out = img.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    s = max(w, h) // 6
    x, y = w - s - w // 30, h - s // 2 - h // 30
    draw.ellipse([x, y - s // 3, x + s // 3, y], fill=(255, 255, 255, 140))
    draw.text((x + s // 3 + 4, y - s // 3), "logo", fill=(255, 255, 255, 140), font=_font(max(10, s // 3)))
    return Image.alpha_composite(out, layer).convert("RGB")


def t_noise(img, rng):
    arr = np.asarray(img, dtype=np.float64) + rng.normal(0, 10, size=(img.height, img.width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _crop(frac, where):
    def f(img, rng):
        w, h = img.size
        cw, ch = round(w * (1 - frac)), round(h * (1 - frac))
        if where == "centre":
            x, y = (w - cw) // 2, (h - ch) // 2
        else:  # keep the top-left part
            x, y = round(0.25 * (w - cw)), round(0.25 * (h - ch))
        return img.crop((x, y, x + cw, y + ch))

    return f


def _crop_area(area: float, where: str):
    """Keep ``area`` of the picture (each side scaled by sqrt(area)) at a corner (``tl``, ``tr``,
    ``bl``, ``br``), the centre (``c``) or a random position (``rand``)."""

    def f(img, rng):
        w, h = img.size
        s = math.sqrt(area)
        cw, ch = round(w * s), round(h * s)
        fx, fy = {"tl": (0, 0), "tr": (1, 0), "bl": (0, 1), "br": (1, 1), "c": (0.5, 0.5)}.get(where, (None, None))
        if fx is None:
            fx, fy = rng.uniform(0, 1), rng.uniform(0, 1)
        x, y = round(fx * (w - cw)), round(fy * (h - ch))
        return img.crop((x, y, x + cw, y + ch))

    return f


def _filler(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """An unrelated generated picture (its own seed from ``rng``) brought to ``size``: the other
    cells of a collage, the canvas behind a picture-in-picture."""
    names = list(GENERATORS)
    gen = GENERATORS[names[int(rng.integers(0, len(names)))]]
    pic = gen(np.random.default_rng(int(rng.integers(1 << 62))))
    return ImageOps.fit(pic, (max(1, int(size[0])), max(1, int(size[1]))), Image.Resampling.BILINEAR)


def _pip(area: float):
    """Picture-in-picture: the original, aspect kept, at ``area`` of an unrelated picture's canvas,
    at a random position (inside), half the time with a thin white border."""

    def f(img, rng):
        W = int(rng.choice([640, 720, 800]))
        H = round(W * rng.uniform(0.6, 1.0))
        canvas = _filler(rng, (W, H))
        s = math.sqrt(area * W * H / (img.width * img.height))
        pw, ph = min(W, round(img.width * s)), min(H, round(img.height * s))
        pic = img.resize((pw, ph), Image.Resampling.LANCZOS)
        x, y = int(rng.integers(0, W - pw + 1)), int(rng.integers(0, H - ph + 1))
        if rng.uniform() < 0.5:
            ImageDraw.Draw(canvas).rectangle([x - 3, y - 3, x + pw + 2, y + ph + 2], fill=(255, 255, 255))
        canvas.paste(pic, (x, y))
        return canvas

    return f


def t_collage_1x2(img, rng):  # two pictures side by side (or stacked), the original one of them
    w, h = img.size
    gap = int(rng.choice([0, 4, 8]))
    if w <= h:  # side by side
        out = _canvas((2 * w + gap, h), (255, 255, 255))
        other = _filler(rng, (w, h))
        left = rng.uniform() < 0.5
        out.paste(img, (0 if left else w + gap, 0))
        out.paste(other, (w + gap if left else 0, 0))
    else:  # stacked
        out = _canvas((w, 2 * h + gap), (255, 255, 255))
        other = _filler(rng, (w, h))
        top = rng.uniform() < 0.5
        out.paste(img, (0, 0 if top else h + gap))
        out.paste(other, (0, h + gap if top else 0))
    return out


def t_collage_2x2(img, rng):  # an uneven 2x2 grid: the original in the large cell (~42% of the area)
    w, h = img.size
    W, H = round(w / 0.65), round(h / 0.65)
    gap = int(rng.choice([0, 4, 8]))
    out = _canvas((W + gap, H + gap), (255, 255, 255))
    right, bottom = rng.uniform() < 0.5, rng.uniform() < 0.5  # where the large cell sits
    ox, oy = (W - w + gap if right else 0), (H - h + gap if bottom else 0)
    sx, sy = (0 if right else w + gap), (0 if bottom else h + gap)
    out.paste(img, (ox, oy))
    out.paste(_filler(rng, (W - w, h)), (sx, oy))
    out.paste(_filler(rng, (w, H - h)), (ox, sy))
    out.paste(_filler(rng, (W - w, H - h)), (sx, sy))
    return out


def t_collage_3(img, rng):  # the original large on one side, two small pictures stacked beside it
    w, h = img.size
    cw = round(w * rng.uniform(0.5, 0.65))
    gap = int(rng.choice([0, 4, 8]))
    out = _canvas((w + gap + cw, h), (255, 255, 255))
    left = rng.uniform() < 0.5
    x_img, x_col = (0, w + gap) if left else (cw + gap, 0)
    out.paste(img, (x_img, 0))
    top = (h - gap) // 2
    out.paste(_filler(rng, (cw, top)), (x_col, 0))
    out.paste(_filler(rng, (cw, h - top - gap)), (x_col, top + gap))
    return out


def t_meme_frame(img, rng):  # meme: a black or white frame with a caption above AND below
    w, h = img.size
    dark = rng.uniform() < 0.5
    bg, fg = ((0, 0, 0), (255, 255, 255)) if dark else ((255, 255, 255), (0, 0, 0))
    size = max(16, w // 14)
    bar = int(size * 2.2)
    side = round(0.04 * w)
    out = _pad(img, side, bar, side, bar, bg)
    draw = ImageDraw.Draw(out)
    draw.text((side + size // 2, bar // 4), _sentence(rng, 4).upper(), fill=fg, font=_font(size))
    draw.text((side + size // 2, bar + h + bar // 4), _sentence(rng, 4).upper(), fill=fg, font=_font(size))
    return out


def t_mirror_crop75(img, rng):  # mirrored, then 75% of the area kept at a corner or the centre
    where = ("tl", "tr", "bl", "br", "c")[int(rng.integers(5))]
    return _crop_area(0.75, where)(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), rng)


def t_mirror_overlay_text(img, rng):  # a text band over the picture, then mirrored
    return t_overlay_text(img, rng).transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def _scale(img, fx: float, fy: float) -> Image.Image:
    size = (max(1, round(img.width * fx)), max(1, round(img.height * fy)))
    return img.resize(size, Image.Resampling.BILINEAR)


def _bright_contrast(img, rng):
    arr = np.asarray(img, dtype=np.float64)
    arr = (arr - 128) * 0.8 + 128 + 30
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


Transform = Callable[[Image.Image, np.random.Generator], Image.Image]

# name -> (function, encoding); crops take a share of each dimension
TRANSFORMS: dict[str, tuple[Transform, str]] = {
    "jpeg_q40": (lambda img, rng: img, "jpeg40"),
    "resize_50": (lambda img, rng: _scale(img, 0.5, 0.5), "jpeg"),
    "stretch_w130": (lambda img, rng: _scale(img, 1.3, 1.0), "jpeg"),
    "crop_centre_5": (_crop(0.05, "centre"), "jpeg"),
    "crop_centre_10": (_crop(0.10, "centre"), "jpeg"),
    "crop_centre_20": (_crop(0.20, "centre"), "jpeg"),
    "crop_offcentre_20": (_crop(0.20, "off"), "jpeg"),
    "crop_centre_30": (_crop(0.30, "centre"), "jpeg"),
    "border_white_10": (_border(0.10, (255, 255, 255)), "jpeg"),
    "border_black_15": (_border(0.15, (0, 0, 0)), "jpeg"),
    "border_colour_20": (_border(0.20, None), "jpeg"),
    "frame_mat": (t_frame, "jpeg"),
    "letterbox_9x16": (t_letterbox, "jpeg"),
    "pillarbox_16x9": (t_pillarbox, "jpeg"),
    "blurred_fill": (t_blurred_fill, "jpeg"),
    "caption_bar": (t_caption, "jpeg"),
    "screenshot_phone": (t_screenshot_phone, "png"),
    "screenshot_desktop": (t_screenshot_desktop, "png"),
    "chat_bubble": (t_chat, "jpeg"),
    "polaroid": (t_polaroid, "jpeg"),
    "border_small_q40": (t_border_small_q40, "jpeg40"),
    "rotate_90": (lambda img, rng: img.transpose(Image.Transpose.ROTATE_90), "jpeg"),
    "flip_h": (lambda img, rng: img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "jpeg"),
    "rotate_3": (lambda img, rng: img.rotate(3, resample=Image.Resampling.BILINEAR, expand=True), "jpeg"),
    "bright_contrast": (_bright_contrast, "jpeg"),
    "greyscale": (lambda img, rng: ImageOps.grayscale(img).convert("RGB"), "jpeg"),
    "blur_r2": (lambda img, rng: img.filter(ImageFilter.GaussianBlur(2)), "jpeg"),
    "overlay_text": (t_overlay_text, "jpeg"),
    "watermark": (t_watermark, "jpeg"),
    "noise_10": (t_noise, "jpeg"),
    # issue 17: heavy crops (share of the AREA kept, at a corner, the centre or a random place)
    **{f"crop{a}_{where}": (_crop_area(a / 100, where), "jpeg")
       for a in (75, 60) for where in ("tl", "tr", "bl", "br", "c", "rand")},
    # issue 17: composites (the original >= 40% of the canvas)
    "pip_60": (_pip(0.60), "jpeg"),
    "pip_40": (_pip(0.40), "jpeg"),
    "collage_1x2": (t_collage_1x2, "jpeg"),
    "collage_2x2": (t_collage_2x2, "jpeg"),
    "collage_3": (t_collage_3, "jpeg"),
    "meme_frame": (t_meme_frame, "jpeg"),
    # issue 17, 2026-12-05: a mirror combined with a crop or a local edit (the region views are then
    # cut from the mirrored upload)
    "mirror_crop75": (t_mirror_crop75, "jpeg"),
    "mirror_overlay_text": (t_mirror_overlay_text, "jpeg"),
}
# the edits added for issue 17 (the benchmark reports them apart, and beside the first 30)
ISSUE17 = tuple(TRANSFORMS)[30:]
# a template of these holding a different picture is a hard distractor (build_hard_distractors)
TEMPLATES = ("pip_40", "collage_1x2", "collage_2x2", "collage_3", "meme_frame", "screenshot_phone",
             "screenshot_desktop", "chat_bubble")
FRAMINGS = (
    "border_white_10", "border_black_15", "border_colour_20", "frame_mat", "letterbox_9x16",
    "pillarbox_16x9", "blurred_fill", "caption_bar", "screenshot_phone", "screenshot_desktop",
    "chat_bubble", "polaroid",
)
# added after a first tuning round and then included in the dev tuning (marked in the report)
LATE = ("chat_bubble", "polaroid", "border_small_q40")


def encode(img: Image.Image, how: str) -> bytes:
    buf = io.BytesIO()
    if how == "png":
        img.save(buf, "PNG", compress_level=1)
    else:
        img.save(buf, "JPEG", quality=40 if how == "jpeg40" else 85)
    return buf.getvalue()


# --------------------------------------------------------------------------- data set


def split_seed(*parts) -> int:
    """A stable 64-bit seed from its parts (the split first), independent of PYTHONHASHSEED."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


def build_originals(split: str) -> list[tuple[str, Image.Image]]:
    """Originals of a split; generated ones are kept only if their PDQ quality passes the gate."""
    out: list[tuple[str, Image.Image]] = []
    if split == "test":
        for name in SKIMAGE_ORIGINALS:
            img = _fit(_skimage(name))
            if hash_image(encode(img, "png")).quality >= QUALITY_GATE:  # else it could never match
                out.append((f"sk:{name}", img))
        per_gen = 4
    else:
        per_gen = 5
    for gen_name, gen in GENERATORS.items():
        made, seed = 0, 0
        while made < per_gen:
            img = gen(np.random.default_rng(split_seed(split, "orig", gen_name, seed)))
            seed += 1
            if hash_image(encode(img, "png")).quality >= QUALITY_GATE:
                out.append((f"gen:{gen_name}:{seed - 1}", img))
                made += 1
    out += [(name, img) for name, img, _ in scene_pairs(split)]
    return out


SCENE_KINDS = ("burst", "stereo", "studio")
SCENES_PER_KIND = 2
SHOTS_PER_SCENE = 3  # other shots of each scene, each a hard distractor


@functools.lru_cache(maxsize=2)
def scene_pairs(split: str) -> tuple:
    """(original name, original, ((kind, other shot), ...)) for the scene originals (issue 17):
    ``burst`` and ``stereo`` originals are one shot of a scene (``training.robustness_scenes``)
    and their distractors other shots of it (burst frames; the other eye); a ``studio`` original
    is objects on a plain sweep and its distractors other objects on the same sweep. Added to the
    originals (``build_originals``) after the first 36/30, their other shots are
    ``build_hard_distractors``'s. Cached: both of those ask."""
    out = []
    for kind in SCENE_KINDS:
        made, seed = 0, 0
        while made < SCENES_PER_KIND:
            rng = np.random.default_rng(split_seed(split, "scene", kind, seed))
            seed += 1
            scene = scenes.make_scene(rng, studio=kind == "studio")
            img = scenes.render(scene, noise_seed=int(rng.integers(1 << 31)))
            if hash_image(encode(img, "png")).quality < QUALITY_GATE:
                continue
            shots = []
            for _ in range(SHOTS_PER_SCENE):
                if kind == "burst":
                    shots.append(("burst", scenes.burst_shot(scene, rng)))
                elif kind == "stereo":
                    shots.append(("stereo", scenes.stereo_shot(scene, rng)))
                else:
                    other = scenes.with_objects(scene, rng)
                    shots.append(("studio", scenes.render(other, noise_seed=int(rng.integers(1 << 31)))))
            out.append((f"gen:{kind}:{seed - 1}", img, tuple(shots)))
            made += 1
    return tuple(out)


def build_hard_distractors(split: str, originals: "list[tuple[str, Image.Image]] | None" = None) -> list[tuple[str, str, bytes]]:
    """Hard distractors of issue 17, none a copy of an original: ``(kind, name, bytes)``.

    * ``burst`` / ``stereo`` / ``studio``: other shots of a scene original (:func:`scene_pairs`);
      in the test split also the right eye of scikit-image's ``stereo_motorcycle`` (its left eye
      is an original);
    * ``template``: each of ``TEMPLATES`` (the same collage layout and filler pictures, the same
      meme frame and caption, the same screenshot chrome and text, drawn with the same seed as an
      original's copy) holding a *different* picture, a generated one that is no original.
    """
    out: list[tuple[str, str, bytes]] = []
    for name, _, shots in scene_pairs(split):
        for i, (kind, shot) in enumerate(shots):
            out.append((kind, f"{kind}-shot:{name}:{i}", encode(shot, "jpeg")))
    if split == "test":
        import skimage.data as data

        right = np.asarray(data.stereo_motorcycle()[1])
        out.append(("stereo", "stereo-shot:sk:stereo_motorcycle:right", encode(_fit(Image.fromarray(right, "RGB")), "jpeg")))
    if originals is None:
        originals = build_originals(split)
    names = list(GENERATORS)
    for t_index, tname in enumerate(TEMPLATES):
        fn, how = TRANSFORMS[tname]
        for k in range(3):
            oname = originals[(7 * t_index + 5 * k) % len(originals)][0]
            gen_name = names[(t_index + k) % len(names)]
            other = GENERATORS[gen_name](np.random.default_rng(split_seed(split, "template-content", tname, k)))
            rng = np.random.default_rng(split_seed(split, tname, oname))  # the copy's seed: same template
            out.append(("template", f"template:{tname}:{oname}:{gen_name}", encode(fn(other, rng), how)))
    return out


def build_distractors(split: str) -> list[tuple[str, bytes]]:
    """Benign images that are no copy of any original, each also in a randomly framed version."""
    bases: list[tuple[str, Image.Image]] = []
    per_gen = 14
    for gen_name, gen in GENERATORS.items():
        for seed in range(per_gen):
            rng = np.random.default_rng(split_seed(split, "distractor", gen_name, seed))
            bases.append((f"gen:{gen_name}:{seed}", gen(rng)))
    for seed in range(8):
        bases.append((f"page:{seed}", gen_text_page(np.random.default_rng(split_seed(split, "page", seed)))))
    # scikit-image distractors: the test split gets one half of them, dev the other, plus crops
    names = SKIMAGE_DISTRACTORS[0::2] if split == "test" else SKIMAGE_DISTRACTORS[1::2]
    for name in names:
        img = _fit(_skimage(name))
        bases.append((f"sk:{name}", img))
        w, h = img.size
        for i, (fx, fy) in enumerate(((0, 0), (0.5, 0), (0, 0.5), (0.5, 0.5))):
            crop = img.crop((round(fx * w), round(fy * h), round((fx + 0.5) * w), round((fy + 0.5) * h)))
            bases.append((f"sk:{name}:q{i}", crop))
    out: list[tuple[str, bytes]] = []
    rng = np.random.default_rng(split_seed(split, "framing"))
    for name, img in bases:
        out.append((name, encode(img, "jpeg")))
        framing = FRAMINGS[int(rng.integers(0, len(FRAMINGS)))]
        fn, how = TRANSFORMS[framing]
        out.append((f"{name}+{framing}", encode(fn(img, rng), how)))
    return out
