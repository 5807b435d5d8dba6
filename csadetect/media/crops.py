"""Crops cut from a picture by shares of its sides: the geometry of the embedding index's region,
box and turned rows (:func:`csadetect.signals.embedding.embedding_views`) and of the query-side
region views cut like them (:func:`csadetect.models.embedding.region_view_inputs`).

A place names where a crop sits: a corner (:data:`CORNERS`), the centre (``"c"``), a side
(:data:`STRIP_SIDES`, a strip: one dimension cut, the other whole) or a point of an ``n`` x ``n`` grid
over the free space (``"g{n}{i}{j}"``, column ``i`` and row ``j`` from 0: :func:`grid_places`). Plain
PIL, no model.
"""
from __future__ import annotations

import math
import re

from PIL import Image

CORNERS = ("tl", "tr", "bl", "br")
STRIP_SIDES = ("t", "b", "l", "r")
# where a crop's free space goes, per place: (share of it left of the crop, share above it)
ANCHORS = {"tl": (0.0, 0.0), "tr": (1.0, 0.0), "bl": (0.0, 1.0), "br": (1.0, 1.0), "c": (0.5, 0.5),
           "t": (0.5, 0.0), "b": (0.5, 1.0), "l": (0.0, 0.5), "r": (1.0, 0.5)}

_GRID_PLACE = re.compile(r"g([2-9])(\d)(\d)")


def anchor(place: str) -> tuple[float, float]:
    """Where a crop at ``place`` sits: (share of the free width left of it, share of the free height above
    it). Raises KeyError for an unknown place."""
    found = ANCHORS.get(place)
    if found is not None:
        return found
    m = _GRID_PLACE.fullmatch(place)
    if m is None or int(m.group(2)) >= int(m.group(1)) or int(m.group(3)) >= int(m.group(1)):
        raise KeyError(place)
    n = int(m.group(1)) - 1
    return int(m.group(2)) / n, int(m.group(3)) / n


def grid_places(n: int) -> tuple[str, ...]:
    """The places of an ``n`` x ``n`` grid (2-9) over the free space, row by row, named as the corners and
    the centre where they coincide with them (``"tl"`` ... ``"c"``), ``"g{n}{i}{j}"`` elsewhere."""
    if not 2 <= n <= 9:
        raise ValueError(f"a grid of 2 to 9 places a side, not {n}")
    named = {xy: name for name, xy in ANCHORS.items() if name in CORNERS + ("c",)}
    return tuple(named.get((i / (n - 1), j / (n - 1)), f"g{n}{i}{j}") for j in range(n) for i in range(n))


def box_crop(img, width: float, height: float, place: str):
    """The crop of PIL ``img`` keeping ``width`` of its width and ``height`` of its height (shares, at
    least one pixel each), at ``place`` (see :func:`anchor`)."""
    w, h = img.size
    cw, ch = max(1, round(w * width)), max(1, round(h * height))
    fx, fy = anchor(place)
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
