"""Pixels of a Pillow image as numpy arrays, shared with Pillow where it can be (no copy).

``np.asarray(img)`` copies the pixels through ``tobytes`` (about 0.3 ms for a 512x384 picture,
most of it fresh memory), and hashing looks at every decoded picture several times (PDQ, the
preprocessing views). Pillow exports an image held in one memory block through the Arrow C data
interface without a copy (an "RGB" pixel as 4 bytes, the fourth unused); the array keeps that
memory alive and is read-only. Anything else (an image in several blocks, another layout) is
copied as before.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image


def _arrow(img: Image.Image):
    import pyarrow as pa  # a dependency anyway (Parquet); imported here to keep imports light

    try:
        return pa, pa.array(img)
    except (TypeError, ValueError):  # several blocks, or no Arrow export
        return pa, None


def rgbx(img: Image.Image) -> Optional[np.ndarray]:
    """The (h, w, 4) uint8 memory of an "RGB" image (the fourth byte unused), shared, or None
    when Pillow cannot share it."""
    if img.mode != "RGB":
        return None
    w, h = img.size
    pa, arr = _arrow(img)
    if (arr is not None and pa.types.is_fixed_size_list(arr.type) and arr.type.list_size == 4
            and arr.type.value_type == pa.uint8() and len(arr) == w * h and arr.offset == 0
            and len(arr.values) == w * h * 4):
        return arr.values.to_numpy(zero_copy_only=True).reshape(h, w, 4)
    return None


def pixels(img: Image.Image) -> np.ndarray:
    """Read-only uint8 array of an "RGB" (h, w, 3) or "L" (h, w) image, shared with Pillow if it can be."""
    if img.mode == "RGB":
        shared = rgbx(img)
        return shared[:, :, :3] if shared is not None else np.asarray(img)
    if img.mode == "L":
        w, h = img.size
        pa, arr = _arrow(img)
        if arr is not None and arr.type == pa.uint8() and len(arr) == w * h:
            return arr.to_numpy(zero_copy_only=True).reshape(h, w)
    return np.asarray(img)
