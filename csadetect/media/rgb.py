"""Any decoded picture as 8-bit RGB, the form PDQ and the preprocessing views take.

Alpha is flattened onto white, as most viewers show it. A picture that shows nothing there (each
channel's values within :data:`BLANK_RANGE`) is flattened onto black instead, and failing that read
without its alpha: a picture made to show only in a dark-mode chat (white, its shape in the
alpha channel) or hidden under near-full transparency would otherwise be hashed as a blank page
and found by nothing (issue 17). A picture that shows something on white is unchanged.

High-bit-depth grey pictures (modes I, I;16*, F; issue 12) are
shrunk in their own mode and rescaled a band of rows at a time, never copied whole as float64.
Used by :func:`csadetect.media.hashing.load_image` and for the later frames of an animated image
(:mod:`csadetect.media.frames`).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from csadetect.media.hash_results import MediaError


BLANK_RANGE = 8  # levels: a picture whose values in each channel all lie within this range of each other shows nothing


def _flatten(rgba: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    background = Image.new("RGB", rgba.size, colour)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def shows_nothing(img: Image.Image) -> bool:
    """True when, in each channel of ``img``, every value lies within :data:`BLANK_RANGE` of the others."""
    extrema = img.getextrema()
    if not isinstance(extrema[0], tuple):  # one band
        extrema = (extrema,)
    return all(hi - lo <= BLANK_RANGE for lo, hi in extrema)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. Alpha is flattened onto white (onto black, or dropped, when the picture
    shows nothing on white: see the module docstring); high bit depths are rescaled."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        on_white = _flatten(rgba, (255, 255, 255))
        if not shows_nothing(on_white):
            return on_white
        for other in (_flatten(rgba, (0, 0, 0)), rgba.convert("RGB")):
            if not shows_nothing(other):
                return other
        return on_white
    if _high_depth(mode):
        return _high_depth_to_rgb(img, 0)
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:  # e.g. HSV has no direct conversion
        raise MediaError(f"unsupported image mode {mode}") from exc


_CHUNK_PIXELS = 1 << 20  # rows of about this many pixels at a time when rescaling sample values


def _high_depth(mode: str) -> bool:
    """32-bit integer, 16-bit integer (``I;16*``) or float samples: one channel, not 8-bit."""
    return mode in ("I", "F") or mode.startswith("I;")


def _row_chunks(img: Image.Image):
    """``(top, float32 array)`` for bands of rows of ``img`` (non-finite floats as 0): the only
    copies of the samples are one band at a time, never the whole picture in float64."""
    width, height = img.size
    step = max(1, _CHUNK_PIXELS // max(width, 1))
    for top in range(0, height, step):
        band = np.array(img.crop((0, top, width, min(height, top + step))), dtype=np.float32)  # a writable copy
        if img.mode == "F":
            np.nan_to_num(band, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        yield top, band


def _high_depth_to_rgb(img: Image.Image, max_side: int) -> Image.Image:
    """A high-bit-depth grey image (modes I, I;16*, F) -> 8-bit RGB, shrunk to ``max_side`` first
    when it is larger (box filter in the native mode: averaging commutes with the linear rescale
    below). Values already in 0..255 are kept, 0..65535 divided by 257, anything else stretched
    from its minimum to its maximum (of the full-size picture). Memory: the picture as decoded plus
    one band of float32 rows; no float64 copy of the picture."""
    if img.mode != "F":
        lo, hi = (float(v) for v in img.getextrema())
    else:  # getextrema() lets NaN and infinities through; they count as 0 as in _row_chunks
        lo, hi = float("inf"), float("-inf")
        for _, band in _row_chunks(img):
            lo, hi = min(lo, float(band.min())), max(hi, float(band.max()))
    if max_side and max(img.size) > max_side:
        img = img.resize(_hash_size(img.size, max_side), Image.Resampling.BOX)
    if hi <= 255 and lo >= 0:
        scale, offset = 1.0, 0.0
    elif lo >= 0 and hi <= 65535:
        scale, offset = 1.0 / 257.0, 0.0
    else:
        scale = 255.0 / max(hi - lo, 1e-9)
        offset = -lo * scale
    width, height = img.size
    out = np.empty((height, width), dtype=np.uint8)
    for top, band in _row_chunks(img):
        band *= np.float32(scale)
        band += np.float32(offset + 0.5)
        np.clip(band, 0, 255, out=band)
        out[top:top + band.shape[0]] = band.astype(np.uint8)
    return Image.fromarray(out, "L").convert("RGB")


def _hash_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(w, h) shrunk so the long side is ``max_side`` (rounded, never below 1 px)."""
    scale = max_side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
