"""Crops cut from a picture by shares of its sides: the geometry of the embedding index's region,
box and turned rows (:func:`csadetect.signals.embedding.embedding_views`) and of the query-side
region views cut like them (:func:`csadetect.models.embedding.region_view_inputs`).

A place names where a crop sits: a corner (:data:`CORNERS`), the centre (``"c"``) or a side
(:data:`STRIP_SIDES`, a strip: one dimension cut, the other whole). Plain PIL, no model.
"""
from __future__ import annotations

import math

from PIL import Image

CORNERS = ("tl", "tr", "bl", "br")
STRIP_SIDES = ("t", "b", "l", "r")
# where a crop's free space goes, per place: (share of it left of the crop, share above it)
ANCHORS = {"tl": (0.0, 0.0), "tr": (1.0, 0.0), "bl": (0.0, 1.0), "br": (1.0, 1.0), "c": (0.5, 0.5),
           "t": (0.5, 0.0), "b": (0.5, 1.0), "l": (0.0, 0.5), "r": (1.0, 0.5)}


def box_crop(img, width: float, height: float, place: str):
    """The crop of PIL ``img`` keeping ``width`` of its width and ``height`` of its height (shares, at
    least one pixel each), at ``place`` (a key of :data:`ANCHORS`)."""
    w, h = img.size
    cw, ch = max(1, round(w * width)), max(1, round(h * height))
    fx, fy = ANCHORS[place]
    x, y = round(fx * (w - cw)), round(fy * (h - ch))
    return img.crop((x, y, x + cw, y + ch))


def region_crop(img, area: float, place: str):
    """The crop of PIL ``img`` keeping ``area`` of it at ``place``: each side scaled by sqrt(area) at a
    corner or the centre; at a side (:data:`STRIP_SIDES`) the strip keeping ``area`` of the height
    (``t``, ``b``) or of the width (``l``, ``r``)."""
    if place in ("t", "b"):
        return box_crop(img, 1.0, area, place)
    if place in ("l", "r"):
        return box_crop(img, area, 1.0, place)
    s = area ** 0.5
    return box_crop(img, s, s, place)


def turned_crop(img, degrees: float, resample=Image.Resampling.BILINEAR):
    """PIL ``img`` turned by ``degrees`` (counter-clockwise) about its centre and cut back to the largest
    centred rectangle of its own aspect inside the turned picture (no fill left)."""
    turned = img.rotate(degrees, resample=resample, expand=False)
    w, h = img.size
    a = math.radians(abs(degrees))
    k = 1.0 / (math.cos(a) + math.sin(a) * max(w / h, h / w))
    cw, ch = max(1, int(w * k)), max(1, int(h * k))
    x, y = (w - cw) // 2, (h - ch) // 2
    return turned.crop((x, y, x + cw, y + ch))
