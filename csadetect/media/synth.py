"""Benign synthetic media for the demo, tests and benchmarks: procedural images (smooth colour
fields, shapes, texture) and short videos made from them. Deterministic per seed; no downloads."""
from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps


def synthetic_image(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A varied, textured, benign RGB image: a low-frequency colour field plus random shapes."""
    rng = np.random.default_rng(seed)
    w, h = size
    # low-frequency colour field: random 6x6 grid upsampled smoothly
    grid = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    img = Image.fromarray(grid, "RGB").resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(6, 14))):
        x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
        x1, y1 = x0 + int(rng.integers(w // 10, w // 2)), y0 + int(rng.integers(h // 10, h // 2))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=color)
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), fill=color)
        else:
            pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(3)]
            draw.polygon(pts, fill=color)
    noise = rng.normal(0, 6, (h, w, 3))
    arr = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB").filter(ImageFilter.SMOOTH)


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def add_border(img: Image.Image, frac: float = 0.12, color=(255, 255, 255)) -> Image.Image:
    return ImageOps.expand(img, border=max(1, int(min(img.size) * frac)), fill=color)


def letterbox(img: Image.Image, aspect: float = 16 / 9, color=(0, 0, 0)) -> Image.Image:
    w, h = img.size
    if w / h < aspect:
        canvas = Image.new("RGB", (int(h * aspect), h), color)
        canvas.paste(img, ((canvas.size[0] - w) // 2, 0))
    else:
        canvas = Image.new("RGB", (w, int(w / aspect)), color)
        canvas.paste(img, (0, (canvas.size[1] - h) // 2))
    return canvas


def rotate_crop(img: Image.Image, degrees: float = 2.0, crop: float = 0.02) -> Image.Image:
    """A slightly rotated copy (canvas expanded, black corners) with ``crop`` cut from each side:
    an edit PDQ does not survive; the reference embedding ``embedding-ref-0.2`` puts it at cosine
    0.987-0.997, around its threshold (0.9963), so tests that need a sure embedding match use
    :func:`corner_crop`."""
    r = img.convert("RGB").rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True)
    w, h = r.size
    return r.crop((int(w * crop), int(h * crop), int(w * (1 - crop)), int(h * (1 - crop))))


def corner_crop(img: Image.Image, area: float = 0.6) -> Image.Image:
    """The top-left part of ``img`` keeping ``area`` of its area (each side scaled by sqrt(area)):
    a heavy crop PDQ does not survive. At the default 0.6 it is cut like the index's 60%-area
    top-left region row (``csadetect.signals.embedding.EMBEDDING_REGIONS``), so the reference
    embedding finds it whatever the model's threshold: what the pipeline tests and the demo need
    (the embedding's invariance to crops *between* rows is measured by benchmarks/bench_robustness.py,
    not asserted in tests)."""
    s = area ** 0.5
    return img.crop((0, 0, round(img.width * s), round(img.height * s)))


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def synthetic_video(seed: int, path: str | Path, seconds: int = 4, fps: int = 5, size=(320, 240)) -> Optional[Path]:
    """A short benign video: a slow pan over a synthetic image, encoded by the ffmpeg CLI.
    Returns None when ffmpeg is not installed."""
    if not ffmpeg_available():
        return None
    base = synthetic_image(seed, (size[0] * 2, size[1] * 2)).convert("RGB")
    path = Path(path)
    # raw RGB frames through a pipe (the same pixels as PNG files would give, without compressing them)
    frames = b"".join(
        base.crop((off, off // 2, off + size[0], off // 2 + size[1])).tobytes()
        for off in (int(i * size[0] / (seconds * fps)) for i in range(seconds * fps))
    )
    cmd = [
        "ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}",
        "-framerate", str(fps), "-i", "-", "-c:v", "mpeg4", "-q:v", "3", "-pix_fmt", "yuv420p", str(path),
    ]
    subprocess.run(cmd, check=True, input=frames)
    return path
