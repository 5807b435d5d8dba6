"""Cheap views of an image that undo common framing before PDQ hashing.

PDQ hashes the whole picture, so a copy with a border, letterbox bars or app chrome around it
(a screenshot, a meme caption bar, a blurred "fill" behind a portrait video frame) hashes far from
the original. :func:`views` finds such framing and returns the framed region as extra views, which
:func:`csadetect.media.hashing.hash_image` hashes next to the full image (``preprocess=views``).

Everything is numpy on the (<= 512 px) image: about 1 ms of one core for an ordinary photo,
2 to 3 ms for a framed one. The speed comes from skipping work that cannot change the result,
never from approximating it: the pixels are shared with Pillow instead of copied, arithmetic
runs along lines rather than across the 3 channels of a pixel, a side whose outermost line is
not uniform is not peeled, a busy map whose every row and column is busy is an ordinary picture
without searching it, busy counts are summed only for the rectangles asked about, each side of
a box is peeled once per picture, and medians and the flatness test are exact integer
computations. ``tests/test_preprocess.py`` pins the boxes of a set of generated pictures, so a
faster version must give the same boxes.

``trim``
    Peels uniform bars off each side: a side whose outermost line is (almost) one colour is
    peeled inward while the lines stay within ``tol`` of that colour (JPEG noise, a stray logo
    pixel) and their mean colour does not drift (a sky gradient is no bar), and only if the bar
    ends at a sharp edge. Each side uses its own colour and the peeling repeats, so nested frames
    (a white mat in a dark frame, a border around a letterboxed frame) come off together.
``content``
    Finds the photo inside a screenshot-like canvas. A map of 4x4 px windows (2 px steps) marks
    the exactly flat ones (UI backgrounds, bars, margins) against busy ones (photo texture, but
    also text and icons). Rows, then columns, then rows ... are projected onto it and the run of
    lines with most busy mass is kept: text lines are short runs between flat gaps, a photo is one
    long dense run. Sparse ends behind a gap (a header, an avatar) are cut off, the result must
    be dense, and its edges are fixed on a uniform margin peeled away or a straight edge found
    nearby; a cut that ends at neither (a smooth sky of the photo itself) is undone.
``smooth``
    The same with a looser flatness threshold, for a picture on a smooth but not uniform fill (a
    blurred, zoomed copy of itself); only accepted when centred (cut alike on opposite sides).
``fill``
    A picture centred in front of a blurred fill (the "blur background" of story and short-video
    apps), found by sharpness instead of flatness: a pixel is sharp where the grey level's second
    difference across or along its line is above ``fill_step``, and a line is blurred when fewer
    than ``fill_share`` of its pixels are. Along each axis the blurred lines reaching the two
    opposite edges are counted, and both sides are cut by the smaller count (the picture is
    centred; its own smooth sky or floor only lengthens one side's count), when that is at least
    ``fill_min`` of the side (a narrower soft edge is a vignette, not a fill). The fill must vary
    (grey standard deviation at least ``fill_vary``: a flat margin is no fill) and end abruptly:
    one of the first three sharp lines on one of the two sides must have at least ``fill_jump``
    of its pixels sharp (the picture's border against the fill; three lines, as JPEG smears the
    border over a block; a photo's own out-of-focus surround sharpens gradually). Cut sides are
    then moved to a straight edge nearby when there is one.
    A blurred fill has strong edges of its own (a blur of a zoomed copy), which defeats the
    flatness tests above when the picture is busy near its border.
``tilt``
    A picture turned by 1-30 degrees on a canvas of one colour (the corners filled), brought back
    upright: its four edges are found against the fill and the quadrilateral is mapped back onto
    a rectangle, at the analysis resolution (:mod:`csadetect.media.view_tilt`). Not a crop, so it is
    not among :func:`find_boxes`' boxes.

Guards against false matches and wasted hashes: a view is only returned when its region differs
from the whole image by at least ``min_trim`` of a side, covers at least ``min_area`` of the
image, is not extremely elongated and not nearly flat, and does not repeat another view. An
ordinary photo gets no view, so it costs the analysis and no extra PDQ. At most four views, and the
``tilt`` view.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import numpy as np
from PIL import Image

from csadetect.media.box import Box, boxes_within
from csadetect.media.view_common import DEFAULT, Params, _analysis_arrays, _median_colour, _planar, _std_at_least
from csadetect.media.view_content import _content_box, busy_map, content_box, range_map
from csadetect.media.view_fill import fill_box, sharp_share
from csadetect.media.view_tilt import tilt_view
from csadetect.media.view_trim import _Peels, _uniform, trim_box

# the parts live in view_common (Params, helpers), view_trim, view_content and view_fill; their
# names stay importable from here (the private ones for the tests and the docs that name them)
__all__ = [
    "DEFAULT",
    "Params",
    "busy_map",
    "content_box",
    "fill_box",
    "find_boxes",
    "framing",
    "range_map",
    "sharp_share",
    "trim_box",
    "views",
    "_median_colour",
    "_planar",
    "_std_at_least",
    "_uniform",
]


# --------------------------------------------------------------------------- views


def _significant(inner: Box, outer: Box, p: Params) -> bool:
    """True when ``inner`` differs from ``outer`` by at least min_trim of a dimension on some side."""
    ol, ot, or_, ob = outer
    il, it, ir, ib = inner
    w, h = or_ - ol, ob - ot
    return max((il - ol) / w, (or_ - ir) / w, (it - ot) / h, (ob - ib) / h) >= p.min_trim


def _acceptable(box: Box, grey: np.ndarray, p: Params) -> bool:
    h, w = grey.shape
    left, top, right, bottom = box
    bw, bh = right - left, bottom - top
    if bw < p.min_side or bh < p.min_side:
        return False
    if bw * bh < p.min_area * w * h:
        return False
    if max(bw, bh) > p.max_aspect * min(bw, bh):
        return False
    return _std_at_least(grey[top:bottom, left:right], p.min_std)



def _same(a: Box, b: Box, grey_shape: tuple[int, int], p: Params) -> bool:
    h, w = grey_shape
    return boxes_within(a, b, max(2, p.min_trim * w), max(2, p.min_trim * h))


@functools.lru_cache(maxsize=16)
def _loose(p: Params) -> Params:
    """``p`` with the loose flatness threshold (made once: ``dataclasses.replace`` is slow)."""
    return dataclasses.replace(p, flat_range=p.flat_range_loose)


def find_boxes(img: Image.Image, p: Params = DEFAULT, arrays: Optional[tuple] = None) -> list[tuple[str, Box]]:
    """Named crop boxes (in ``img`` pixel coordinates) of the framed regions of ``img``
    (``arrays``: its :func:`_analysis_arrays`, when already made)."""
    w, h = img.size
    if w < p.min_side or h < p.min_side:
        return []
    rgb, grey, scale = arrays or _analysis_arrays(img, p.analysis_side)
    gh, gw = grey.shape
    full: Box = (0, 0, gw, gh)
    found: list[tuple[str, Box]] = []
    peels = _Peels(rgb, p)  # shared by the trim and both content tries
    trimmed = peels.trim(full, 6)
    if _significant(trimmed, full, p) and _acceptable(trimmed, grey, p):
        found.append(("trim", trimmed))
    else:
        trimmed = full
    tries = [("content", p, False)]
    if p.flat_range_loose and p.flat_range_loose != p.flat_range:
        tries.append(("smooth", _loose(p), True))
    left, top, right, bottom = trimmed
    ranges = range_map(grey[top:bottom, left:right], p)
    for name, q, fill in tries:
        content = _content_box(peels, grey, trimmed, q, ranges, fill)
        if (
            content is not None
            and _significant(content, trimmed, p)
            and _acceptable(content, grey, p)
            and not any(_same(content, b, grey.shape, p) for _, b in found)
        ):
            found.append((name, content))
            if not p.both_content:
                break
    if p.fill_share > 0:
        fill = fill_box(rgb, grey, trimmed, p)
        if (
            fill is not None
            and _significant(fill, trimmed, p)
            and _acceptable(fill, grey, p)
            and not any(_same(fill, b, grey.shape, p) for _, b in found)
        ):
            found.append(("fill", fill))
    out = []
    for name, (left, top, right, bottom) in found:
        if scale != 1.0:
            left, top = int(left * scale), int(top * scale)
            right, bottom = min(w, round(right * scale)), min(h, round(bottom * scale))
        out.append((name, (left, top, right, bottom)))
    return out


def framing(img: Image.Image, p: Params = DEFAULT) -> tuple[list[tuple[str, Box]], list[tuple[str, Image.Image]]]:
    """(:func:`find_boxes`, :func:`views`) of an RGB ``img``, analysed once."""
    w, h = img.size
    if w < p.min_side or h < p.min_side:
        return [], []
    arrays = _analysis_arrays(img, p.analysis_side)
    boxes = find_boxes(img, p, arrays)
    found = [(name, img.crop(box)) for name, box in boxes]
    upright = tilt_view(arrays[0], p)
    if upright is not None:
        found.append(("tilt", upright))
    return boxes, found


def views(img: Image.Image, p: Params = DEFAULT) -> list[tuple[str, Image.Image]]:
    """Extra RGB views of ``img`` to hash: the image with borders/letterbox trimmed (``trim``),
    the photo region of a screenshot-like canvas (``content``), of a smooth fill (``smooth``), in
    front of a blurred fill (``fill``), and a picture turned on a one-colour canvas brought back
    upright (``tilt``, :mod:`csadetect.media.view_tilt`).
    Empty for an ordinary photo.

    Matches :data:`csadetect.media.hashing.Preprocessor`; use as ``hash_image(data, preprocess=views)``.
    """
    if img.mode != "RGB":
        img = img.convert("RGB")
    return framing(img, p)[1]

