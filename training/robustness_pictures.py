"""The pictures of the robustness benchmark's image set (``training.robustness_set``), drawn or loaded
at run time, nothing downloaded: the procedurally generated pictures (``GENERATORS``: fractal
landscapes, shaded still lifes, shape scenes, mosaics, interference patterns, clouds) and text pages
(:func:`gen_text_page`), and the photos bundled with scikit-image (``SKIMAGE_ORIGINALS``,
``SKIMAGE_DISTRACTORS``, :func:`_skimage`), brought to at most ``ORIGINAL_SIDE`` on their long side
(:func:`_fit`). The captions and page text of the transforms (``training.robustness_transforms``)
are drawn from ``WORDS`` (:func:`_sentence`) in the same font (:func:`_font`).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from training import robustness_scenes as scenes

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
