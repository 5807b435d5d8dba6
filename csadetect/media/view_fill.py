"""The ``fill`` view of :mod:`csadetect.media.preprocess`: a picture centred in front of a
blurred fill (the "blur background" of story and short-video apps), found by sharpness
(:func:`sharp_share`, :func:`fill_box`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from csadetect.media.box import Box
from csadetect.media.view_common import DEFAULT, Params, _leading_true, _std_at_least
from csadetect.media.view_content import _snap


# --------------------------------------------------------------------------- blurred fill


def sharp_share(g: np.ndarray, p: Params) -> np.ndarray:
    """Per inner row of ``g`` (int16 grey, >= 3 x 3): the share of its inner pixels that are sharp,
    i.e. whose grey second difference along the row or down the column exceeds ``p.fill_step``."""
    centre = 2 * g[1:-1, 1:-1]
    along = np.abs(g[1:-1, 2:] + g[1:-1, :-2] - centre)
    across = np.abs(g[2:, 1:-1] + g[:-2, 1:-1] - centre)
    sharp = np.maximum(along, across) > p.fill_step
    return np.count_nonzero(sharp, axis=1) / sharp.shape[1]


def _blurred_run(share: np.ndarray, p: Params) -> int:
    """Number of leading lines of ``share`` that are blurred (share < ``p.fill_share``)."""
    return _leading_true(share < p.fill_share)


def fill_box(rgb: np.ndarray, grey: np.ndarray, region: Optional[Box] = None, p: Params = DEFAULT) -> Optional[Box]:
    """Box of a picture centred in front of a blurred fill inside ``region`` (default: the whole
    image), or None (see ``fill`` in the :mod:`csadetect.media.preprocess` docstring)."""
    h, w = grey.shape
    left, top, right, bottom = region if region is not None else (0, 0, w, h)
    if right - left < 8 or bottom - top < 8:
        return None
    g = grey[top:bottom, left:right].astype(np.int16)
    box = [left, top, right, bottom]
    cut = [False] * 4
    for axis in (0, 1):  # 0: rows (a fill above and below), 1: columns (left and right)
        lines = g if axis == 0 else g.T
        n = lines.shape[0]
        # an outermost inner line that is sharp on either side: no fill along this axis
        ends = sharp_share(np.concatenate((lines[:3], lines[-3:])), p)
        if ends[0] >= p.fill_share or ends[-1] >= p.fill_share:
            continue
        share = sharp_share(lines, p)
        if share.max() < p.fill_share:
            return None  # blurred all over: no picture in front of anything
        a, b = _blurred_run(share, p), _blurred_run(share[::-1], p)
        m = 1 + min(a, b)  # + the outermost line
        if m < p.fill_min * n or 2 * m >= n:
            continue
        if max(share[a : a + 3].max(), share[::-1][b : b + 3].max()) < p.fill_jump:
            continue  # the surround sharpens gradually: out of focus, not a fill
        bands = np.concatenate((lines[:m], lines[n - m :]))
        if not _std_at_least(np.ascontiguousarray(bands, dtype=np.uint8), p.fill_vary):
            continue  # a flat margin (a page, a bar): the trim and content views' business
        lo, hi = (1, 3) if axis == 0 else (0, 2)
        box[lo] += m
        box[hi] -= m
        cut[lo] = cut[hi] = True
    if not any(cut):
        return None
    return _snap(rgb, (box[0], box[1], box[2], box[3]), [not c for c in cut], p)[0]

