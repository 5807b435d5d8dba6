"""The image embedding's benign data: where its originals and distractors come from, and the edits
that make copies of them (DESIGN §5; the split is in ``csadetect/models/cards/embedding.md``).

* training originals: generated seeds 0..N-1 (``synth``) plus ``TRAIN_SKIMAGE``;
* held-out originals (evaluation only): generated seeds 100000.. plus ``HELDOUT_SKIMAGE``;
* calibration distractors (threshold only): generated seeds 200000..;
* evaluation distractors (false-match count only): generated seeds 300000.. plus
  ``DISTRACTOR_SKIMAGE``.

``random_augment`` is the training augmentation chain (also the distractors' "augmented"
versions); ``eval_transform`` the fixed evaluation edits ``EVAL_TRANSFORMS``. Used by
``training.train_embedding``, ``training.evaluate_images`` and ``training.calibrate_embedding``.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from csadetect.media.synth import jpeg_bytes, synthetic_image

TRAIN_SKIMAGE = ["astronaut", "brick", "camera", "coins", "grass", "moon", "page", "horse", "rocket",
                 "retina", "cell", "clock"]
HELDOUT_SKIMAGE = ["coffee", "cat", "hubble_deep_field", "immunohistochemistry", "gravel", "text"]
DISTRACTOR_SKIMAGE = ["colorwheel", "logo", "microaneurysms", "checkerboard", "shepp_logan_phantom"]
SYNTH_SIZE = (320, 240)
EVAL_TRANSFORMS = ["crop10", "crop20", "crop30", "rotate90", "rotate5", "flip", "border",
                   "letterbox", "screenshot", "jpeg25", "colour"]


# ---------------------------------------------------------------- images

def rgb_image(a, max_side: int) -> Image.Image:
    """An RGB picture from an array of any dtype (bool, float in [0, 1], uint8) or with alpha
    (flattened on white), shrunk to at most ``max_side`` pixels."""
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = np.clip(a * 255.0 if a.max() <= 1.0 else a, 0, 255).astype(np.uint8)
    img = Image.fromarray(a)
    if img.mode == "RGBA":
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    img = img.convert("RGB")
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return img


def skimage_image(name: str) -> Image.Image:
    import skimage.data

    return rgb_image(getattr(skimage.data, name)(), 640)  # small: keeps augmentation cheap


def synth(seed: int) -> Image.Image:
    return synthetic_image(seed, SYNTH_SIZE)


# ---------------------------------------------------------------- transforms

def _rand_color(rng) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def crop(img: Image.Image, frac: float, rng=None) -> Image.Image:
    """Keep (1 - frac) of width and height, at a random (seeded) offset."""
    rng = rng or np.random.default_rng(0)
    w, h = img.size
    cw, ch = max(1, round(w * (1 - frac))), max(1, round(h * (1 - frac)))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x0, y0, x0 + cw, y0 + ch))


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    return Image.open(io.BytesIO(jpeg_bytes(img, quality))).convert("RGB")


def border(img: Image.Image, frac: float, color) -> Image.Image:
    w, h = img.size
    b = max(1, int(round(max(w, h) * frac)))
    return ImageOps.expand(img, border=b, fill=color)


def letterbox(img: Image.Image, aspect: float = 16 / 9) -> Image.Image:
    w, h = img.size
    if w / h < aspect:
        nw, nh = int(round(h * aspect)), h
    else:
        nw, nh = w, int(round(w / aspect))
    canvas = Image.new("RGB", (nw, nh), (0, 0, 0))
    canvas.paste(img, ((nw - w) // 2, (nh - h) // 2))
    return canvas


def banner(img: Image.Image, rng) -> Image.Image:
    """A text bar across the top or bottom (meme caption / watermark strip)."""
    img = img.copy()
    w, h = img.size
    bh = max(8, int(h * rng.uniform(0.08, 0.18)))
    y = 0 if rng.random() < 0.5 else h - bh
    d = ImageDraw.Draw(img)
    d.rectangle((0, y, w, y + bh), fill=_rand_color(rng))
    words = " ".join("".join(chr(int(c)) for c in rng.integers(97, 123, int(rng.integers(3, 8))))
                     for _ in range(int(rng.integers(2, 6))))
    d.text((int(w * 0.05), y + bh // 4), words.upper(), fill=_rand_color(rng))
    return img


def screenshot(img: Image.Image, rng, scale: float | None = None) -> Image.Image:
    """Paste into a larger canvas with UI bars and text, as in a screenshot of a post."""
    w, h = img.size
    scale = scale if scale is not None else rng.uniform(0.55, 0.8)
    cw, ch = int(w / scale), int(h / scale)
    canvas = Image.new("RGB", (cw, ch), tuple(int(c) for c in rng.integers(200, 256, 3)))
    d = ImageDraw.Draw(canvas)
    top = int(ch * 0.08)
    d.rectangle((0, 0, cw, top), fill=_rand_color(rng))
    d.text((10, top // 3), "user_%d  12:%02d" % (rng.integers(100, 999), rng.integers(0, 60)), fill=(0, 0, 0))
    x0 = int(rng.integers(0, max(1, cw - w)))
    y0 = top + int(rng.integers(0, max(1, ch - h - top)))
    canvas.paste(img, (x0, y0))
    for i in range(3):
        yy = min(ch - 12, y0 + h + 4 + 12 * i)
        d.text((10, yy), "lorem ipsum %d" % i, fill=(40, 40, 40))
    return canvas


def colour_jitter(img: Image.Image, rng=None, b=None, c=None, s=None) -> Image.Image:
    rng = rng or np.random.default_rng(0)
    b = b if b is not None else rng.uniform(0.7, 1.3)
    c = c if c is not None else rng.uniform(0.7, 1.3)
    s = s if s is not None else rng.uniform(0.5, 1.5)
    img = ImageEnhance.Brightness(img).enhance(b)
    img = ImageEnhance.Contrast(img).enhance(c)
    return ImageEnhance.Color(img).enhance(s)


def rotate(img: Image.Image, deg: float, fill=(0, 0, 0)) -> Image.Image:
    return img.rotate(deg, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=fill)


def eval_transform(name: str, img: Image.Image, seed: int) -> Image.Image:
    """The fixed evaluation transforms (deterministic given ``seed``)."""
    rng = np.random.default_rng(seed)
    if name.startswith("crop"):
        return crop(img, int(name[4:]) / 100, rng)
    if name == "rotate90":
        return img.transpose(Image.Transpose.ROTATE_90)
    if name == "rotate5":
        return rotate(img, 5)
    if name == "flip":
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if name == "border":
        return border(img, 0.1, (255, 255, 255))
    if name == "letterbox":
        return letterbox(img)
    if name == "screenshot":
        return screenshot(img, rng, scale=0.6)
    if name == "jpeg25":
        return jpeg(img, 25)
    if name == "colour":
        return colour_jitter(img, b=1.25, c=0.8, s=1.4)
    raise ValueError(name)


def random_augment(img: Image.Image, rng) -> Image.Image:
    """A random chain of the training augmentations."""
    if rng.random() < 0.8:
        img = crop(img, rng.uniform(0.0, 0.4), rng) if rng.random() < 0.7 else \
            img.crop(_aspect_crop(img.size, rng))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.3:
        img = img.transpose([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                             Image.Transpose.ROTATE_270][int(rng.integers(0, 3))])
    if rng.random() < 0.3:
        img = rotate(img, rng.uniform(-10, 10), fill=_rand_color(rng) if rng.random() < 0.3 else (0, 0, 0))
    if rng.random() < 0.6:
        img = colour_jitter(img, rng)
    if rng.random() < 0.2:
        img = ImageOps.grayscale(img).convert("RGB")
    r = rng.random()
    if r < 0.15:
        img = border(img, rng.uniform(0.02, 0.15), _rand_color(rng))
    elif r < 0.25:
        img = letterbox(img, rng.choice([16 / 9, 9 / 16, 4 / 3, 1.0]))
    elif r < 0.4:
        img = screenshot(img, rng)
    if rng.random() < 0.25:
        img = banner(img, rng)
    if rng.random() < 0.4:
        s = rng.uniform(0.3, 1.0)
        img = img.resize((max(16, int(img.size[0] * s)), max(16, int(img.size[1] * s))), Image.Resampling.BILINEAR)
    if rng.random() < 0.6:
        img = jpeg(img, int(rng.integers(25, 90)))
    return img


def _aspect_crop(size, rng):
    w, h = size
    fw, fh = rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)
    cw, ch = int(w * fw), int(h * fh)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return (x0, y0, x0 + cw, y0 + ch)
