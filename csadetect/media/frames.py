"""The later frames of an animated image (GIF, animated WebP or PNG) or a multi-page TIFF.

An image is hashed as its first frame. A known picture shown as a later frame of an animated GIF,
after a harmless first one, would never be compared. :func:`later_frames` gives the frames after
the first that differ from it and from each other (a 16x16 grey thumbnail more than
:data:`DISTINCT` grey levels apart on average), at most ``keep`` of them, spread evenly over the
distinct ones, looking at no more than :data:`LOOK_FACTOR` x ``keep`` frames. The pipeline hashes and
embeds each as one more view of the upload, named ``frame-N`` (N the frame's index, 0 the first):
``match.image_frames``, 0 for the first frame only.

A bound is a bound: an animation that hides the picture beyond the frames looked at, or among more
distinct frames than are kept, is still seen by its first frame only.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from csadetect.media.hashing import HASH_SIDE, _hash_size, _to_rgb

DISTINCT = 4.0  # mean absolute grey difference of two 16x16 thumbnails (0-255) that makes frames distinct
LOOK_FACTOR = 4  # frames looked at: at most this many per frame kept (plus the first)
THUMB = (16, 16)


def _thumb(frame: Image.Image) -> np.ndarray:
    return np.asarray(frame.convert("L").resize(THUMB, Image.Resampling.BOX), dtype=np.float32)


def later_frames(data: bytes, keep: int, max_pixels: int, max_side: int = HASH_SIDE) -> list[tuple[str, Image.Image]]:
    """``[("frame-N", RGB picture of at most max_side px), ...]``: up to ``keep`` distinct later frames
    of the image ``data`` (none for a still image, or when ``keep`` is 0), converted to RGB as the
    first frame is (alpha onto white). A frame that fails to decode, or one over ``max_pixels`` (a
    TIFF page may have its own size), ends the search: what was found before it is kept, and the
    first frame was hashed already."""
    found: list[tuple[int, Image.Image]] = []
    if keep <= 0:
        return found
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            if not getattr(img, "is_animated", False):
                return []
            img.seek(0)
            seen = [_thumb(_to_rgb(img))]
            stride = 1  # keep every stride-th distinct frame: doubles when 2 x keep are held
            distinct = 0
            for index in range(1, 1 + LOOK_FACTOR * keep):
                try:
                    img.seek(index)
                except EOFError:
                    break
                if img.size[0] * img.size[1] > max_pixels:
                    break
                frame = _to_rgb(img)
                thumb = _thumb(frame)
                if min(float(np.abs(thumb - t).mean()) for t in seen) <= DISTINCT:
                    continue
                seen.append(thumb)
                distinct += 1
                if (distinct - 1) % stride:
                    continue
                if max(frame.size) > max_side:
                    frame = frame.resize(_hash_size(frame.size, max_side), Image.Resampling.BOX)
                found.append((index, frame.copy()))
                if len(found) >= 2 * keep:
                    found, stride = found[::2], stride * 2
    except Exception:  # noqa: BLE001 -- a damaged later frame (Pillow raises many kinds) must not sink the
        pass  # first one, which decoded and was hashed: the rest is best effort
    if len(found) > keep:  # evenly over what is held
        found = [found[round(i * (len(found) - 1) / (keep - 1))] for i in range(keep)] if keep > 1 else found[:1]
    return [(f"frame-{index}", frame) for index, frame in found]
