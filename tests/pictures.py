"""Benign test pictures shared by the view tests: a photo bundled with scikit-image, resized, and
JPEG bytes of a picture."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def photo(name: str = "astronaut", size: tuple[int, int] = (384, 288)) -> Image.Image:
    """A benign natural photo bundled with scikit-image, resized (RGB)."""
    import skimage.data as skdata

    arr = getattr(skdata, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return Image.fromarray(arr[..., :3]).convert("RGB").resize(size, Image.Resampling.LANCZOS)


def jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
