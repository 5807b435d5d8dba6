"""The ``tilt`` view of :mod:`csadetect.media.preprocess`: a picture turned by a few degrees (or
leaning back in perspective) on a canvas of one colour, brought back upright.

Turning a copy by 5-15 degrees onto a larger canvas (the corners filled black, white or any one
colour) moves every PDQ bit and most of the embedding's similarity; no crop undoes it. The fill
says where the picture is: the canvas corners that are one colour, and agree, give the fill
colour; every pixel unlike it (more than ``tol`` in some channel) is picture. The picture's outline
is then four straight edges. Its corners are first the outline's extreme points along the two
diagonals (top-left = least x + y, ...), and each edge is refitted as a straight line through
the outline between its two corners (least squares, then again without the points more than
``tilt_residual`` px off it; dark picture pixels that match a black fill only dent the outline),
and the corners are the refitted lines' crossings. The view is that quadrilateral mapped back onto
an upright rectangle (Pillow's ``QUAD`` transform: exact for a turn, close for a slight
perspective), its sides the mean lengths of the opposite edges, a pixel inside the outline all
round (the fill blurs into the edge), cut from the image at analysis resolution.

Returned only when it is a tilt: some edge is at least ``tilt_min_deg`` and none more than
``tilt_max_deg`` off its axis (a straight picture on a border is the ``trim`` view's), the
quadrilateral covers at least ``min_area`` of the canvas, the edges are straight (median
residual at most ``tilt_residual`` px) and the canvas outside the quadrilateral is fill (at most
``tilt_outside`` of its pixels unlike the fill). A picture whose corners are not fill (an ordinary
photo, a turned copy cropped back to a rectangle) costs the corner test only; one with fill corners
whose picture is upright (a border), scattered (text on a page) or not straight-edged (a shape on a
plain background) is refused on every other pixel first (~0.7 ms on the development split's
distractors); a turned picture costs ~9 ms (benchmarks/README.md).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from csadetect.media.view_common import Params

# (name, corner index) order of the quadrilateral: Pillow's QUAD wants upper left, lower left,
# lower right, upper right
_TL, _BL, _BR, _TR = range(4)


def _fill_colour(rgb: np.ndarray, p: Params) -> Optional[np.ndarray]:
    """The colour of the canvas corners that are one colour and agree (at least two), else None."""
    h, w = rgb.shape[:2]
    k = max(2, min(h, w) // 100)
    colours = []
    for patch in (rgb[:k, :k], rgb[:k, w - k:], rgb[h - k:, :k], rgb[h - k:, w - k:]):
        flat = patch.reshape(-1, 3).astype(np.int16)
        if int((flat.max(axis=0) - flat.min(axis=0)).max()) <= p.tol:
            colours.append(np.median(flat, axis=0))
    best: list = []
    for c in colours:
        agree = [d for d in colours if np.abs(d - c).max() <= p.tol]
        if len(agree) > len(best):
            best = agree
    return np.median(np.stack(best), axis=0) if len(best) >= 2 else None


def _unlike(rgb: np.ndarray, fill: np.ndarray, tol: int) -> np.ndarray:
    """Pixels more than ``tol`` from ``fill`` in some channel, in uint8 (no wider copy)."""
    mask = np.zeros(rgb.shape[:2], dtype=bool)
    for c in range(3):
        f = int(round(fill[c]))
        channel = rgb[:, :, c]
        if f - tol > 0:
            mask |= channel < f - tol
        if f + tol < 255:
            mask |= channel > f + tol
    return mask


def _tilted_shape(mask: np.ndarray, p: Params) -> "tuple[np.ndarray, np.ndarray] | None":
    """The rows and columns ``mask`` has pixels in, when it could be a turned picture: large enough,
    filling at least half its bounding box (text scattered on a page does not), and not upright (an
    upright picture's outermost lines are whole sides: a border, the trim view's); else None."""
    h, w = mask.shape
    area = int(mask.sum())
    if area < p.min_area * h * w:
        return None
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
    bw, bh = right - left + 1, bottom - top + 1
    if area < 0.5 * bw * bh:
        return None
    if min(mask[top].sum(), mask[bottom].sum()) >= 0.5 * bw and min(mask[:, left].sum(), mask[:, right].sum()) >= 0.5 * bh:
        return None
    return rows, cols


def _outline(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Points (x, y) of the mask's outline: each row's first and last set pixel, each column's
    (``rows``, ``cols``: the rows and columns with set pixels)."""
    sub_r, sub_c = mask[rows], mask[:, cols]
    w, h = mask.shape[1], mask.shape[0]
    first_x, last_x = sub_r.argmax(axis=1), w - 1 - sub_r[:, ::-1].argmax(axis=1)
    first_y, last_y = sub_c.argmax(axis=0), h - 1 - sub_c[::-1].argmax(axis=0)
    xs = np.concatenate([first_x, last_x, cols, cols])
    ys = np.concatenate([rows, rows, first_y, last_y])
    return np.stack([xs, ys], axis=1).astype(np.float64)


def _fit(points: np.ndarray, vertical: bool, residual: float) -> Optional[tuple[float, float, float]]:
    """A straight line through ``points``: y = a x + b (x = a y + b when ``vertical``), fitted,
    then refitted without the points more than ``residual`` off it. Returns (a, b, median residual)."""
    if len(points) < 8:
        return None
    u, v = (points[:, 1], points[:, 0]) if vertical else (points[:, 0], points[:, 1])
    if np.ptp(u) < 4:
        return None
    a, b = np.polyfit(u, v, 1)
    keep = np.abs(v - (a * u + b)) <= residual
    if keep.sum() >= 8 and np.ptp(u[keep]) >= 4:
        a, b = np.polyfit(u[keep], v[keep], 1)
    return float(a), float(b), float(np.median(np.abs(v - (a * u + b))))


def _cross(top_or_bottom: tuple, left_or_right: tuple) -> tuple[float, float]:
    """Where y = a1 x + b1 meets x = a2 y + b2."""
    a1, b1 = top_or_bottom[:2]
    a2, b2 = left_or_right[:2]
    y = (a1 * b2 + b1) / (1.0 - a1 * a2)
    return a2 * y + b2, y


def tilt_quad(rgb: np.ndarray, p: Params) -> Optional[np.ndarray]:
    """The tilted picture's corners (4, 2) in ``rgb`` pixels (upper left, lower left, lower right,
    upper right; pixel centres at .5), or None when ``rgb`` shows no tilted picture on a fill.
    Looked for on every other pixel first: most pictures with fill corners (a border, text on a
    page, a shape on a plain background) are refused there at a quarter of the cost."""
    if p.tilt_min_deg <= 0:
        return None
    fill = _fill_colour(rgb, p)
    if fill is None or _quad(_unlike(rgb[::2, ::2], fill, p.tol), p) is None:
        return None
    quad = _quad(_unlike(rgb, fill, p.tol), p)
    return None if quad is None else quad + 0.5


def _quad(mask: np.ndarray, p: Params) -> Optional[np.ndarray]:
    """The corners (4, 2) of the turned picture that ``mask`` (pixels unlike the fill) shows, or None."""
    spans = _tilted_shape(mask, p)
    if spans is None:
        return None
    h, w = mask.shape
    pts = _outline(mask, *spans)
    s, d = pts[:, 0] + pts[:, 1], pts[:, 0] - pts[:, 1]
    rough = pts[[s.argmin(), d.argmin(), s.argmax(), d.argmax()]]  # TL, BL, BR, TR
    edges = {}
    # each edge: its two rough corners, whether it runs top to bottom, and which side of the line
    # through them is outside the picture (-1: above / left of it, +1: below / right of it)
    for name, (i, j), vertical, out in (("top", (_TL, _TR), False, -1), ("bottom", (_BL, _BR), False, 1),
                                        ("left", (_TL, _BL), True, -1), ("right", (_TR, _BR), True, 1)):
        axis = 1 if vertical else 0  # the coordinate along the edge
        lo, hi = sorted((rough[i, axis], rough[j, axis]))
        margin = 0.1 * (hi - lo)
        # the outline points between the two corners on this edge's side of the picture (2 px slack)
        line = np.interp(pts[:, axis], [rough[i, axis], rough[j, axis]], [rough[i, 1 - axis], rough[j, 1 - axis]])
        side = pts[:, 1 - axis] <= line + 2 if out < 0 else pts[:, 1 - axis] >= line - 2
        between = (pts[:, axis] > lo + margin) & (pts[:, axis] < hi - margin)
        fit = _fit(pts[side & between], vertical, p.tilt_residual)
        if fit is None or fit[2] > p.tilt_residual:
            return None
        edges[name] = fit
    angles = [math.degrees(math.atan(abs(f[0]))) for f in edges.values()]
    if max(angles) < p.tilt_min_deg or max(angles) > p.tilt_max_deg:
        return None
    quad = np.array([_cross(edges["top"], edges["left"]), _cross(edges["bottom"], edges["left"]),
                     _cross(edges["bottom"], edges["right"]), _cross(edges["top"], edges["right"])])
    x, y = quad[:, 0], quad[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    if not np.isfinite(area) or area < p.min_area * h * w:
        return None
    inside = Image.new("1", (w, h), 0)
    ImageDraw.Draw(inside).polygon([tuple(c) for c in quad], fill=1, outline=1)
    outside = ~np.asarray(inside, dtype=bool)
    # the outline itself is anti-aliased: one pixel of slack round the quadrilateral
    if outside.sum() and (mask & outside).sum() > p.tilt_outside * outside.sum() + 2 * (w + h):
        return None
    return quad


def tilt_view(rgb: np.ndarray, p: Params) -> Optional[Image.Image]:
    """The upright picture (:func:`tilt_quad`) cut from ``rgb`` (the image at analysis resolution:
    PDQ and the embedding look at a few hundred pixels at most, and Pillow's ``QUAD`` transform
    costs ~25 ns a pixel), or None. (Cut smaller, at 320 px, it hashed 6-30 bits from the
    original instead of 0-14.)"""
    quad = tilt_quad(rgb, p)
    if quad is None:
        return None
    centre = quad.mean(axis=0)
    step = quad - centre
    quad = quad - step / np.maximum(np.linalg.norm(step, axis=1, keepdims=True), 1e-9)  # a pixel inside
    width = 0.5 * (np.linalg.norm(quad[_TR] - quad[_TL]) + np.linalg.norm(quad[_BR] - quad[_BL]))
    height = 0.5 * (np.linalg.norm(quad[_BL] - quad[_TL]) + np.linalg.norm(quad[_BR] - quad[_TR]))
    size = (max(1, int(round(width))), max(1, int(round(height))))
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB").transform(
        size, Image.Transform.QUAD, tuple(float(v) for v in quad.reshape(-1)), Image.Resampling.BILINEAR)
