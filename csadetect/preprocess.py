"""Cheap views of an image that undo common framing before PDQ hashing.

PDQ hashes the whole picture, so a copy with a border, letterbox bars or app chrome around it
(a screenshot, a meme caption bar, a blurred "fill" behind a portrait video frame) hashes far from
the original. :func:`views` finds such framing and returns the framed region as extra views, which
:func:`csadetect.hashing.hash_image` hashes next to the full image (``preprocess=views``).

Two detectors, both numpy on the (<= 512 px) image, a few milliseconds together:

``trim``
    Peels near-uniform lines off each side: a side whose outermost line is (almost) one colour is
    trimmed inward while the lines stay within ``tol`` of that colour. Sides are trimmed with their
    own colours and the peeling repeats, so nested frames (a white mat inside a black frame, a
    border around a letterboxed frame) come off as well. Tolerates JPEG noise and a few stray pixels
    (a page number, a logo) per line.
``content``
    Finds the photo inside a screenshot-like canvas. The grey image is cut into small blocks; a
    block is "flat" when its grey range is tiny (UI backgrounds, bars, blurred fill, flat margins)
    and "busy" otherwise (photo texture, but also text). Rows, then columns, then rows ... are
    projected onto the busy map and the contiguous run with most busy mass is kept (text lines are
    short runs separated by flat gaps; a photo is one long dense run). The result must be dense
    (photo-like) or it is dropped, and its edges are tightened with the ``trim`` rule.

Guards against false matches: a view is only returned when the region differs from the whole
image by more than ``min_trim`` of a side (so ordinary photos cost one cheap analysis and no
extra hash), covers at least ``min_area`` of the image, is not extremely elongated and is not
itself nearly flat. At most two views are returned (``trim`` and ``content``), and a view that
repeats another's box is dropped.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # (left, top, right, bottom), right/bottom exclusive, PIL order


@dataclasses.dataclass(frozen=True)
class Params:
    """Thresholds; defaults were tuned on the development split of benchmarks/bench_robustness.py."""

    analysis_side: int = 512  # analyse at most this many px on the long side
    tol: int = 24  # max per-channel difference from a border colour (JPEG noise, anti-aliasing)
    line_frac: float = 0.95  # share of a line's pixels within tol for the line to count as border
    block: int = 4  # block size (px, analysis resolution) of the flat/busy map
    flat_range: int = 6  # a block whose grey max-min <= this is flat
    line_busy: float = 0.15  # a row/column belongs to a run when this share of its blocks is busy
    max_gap: int = 1  # flat lines (blocks) tolerated inside a run
    min_density: float = 0.55  # the content region must be at least this busy overall
    min_trim: float = 0.02  # a side must move by this share of its dimension to count as framing
    min_area: float = 0.2  # smallest view, as a share of the image area
    max_aspect: float = 5.0  # longest/shortest side of a view
    min_side: int = 24  # px, analysis resolution
    min_std: float = 4.0  # grey standard deviation below which a view is too flat to hash


DEFAULT = Params()


# --------------------------------------------------------------------------- helpers


def _analysis_arrays(img: Image.Image, side: int) -> tuple[np.ndarray, np.ndarray, float]:
    """RGB (int16) and grey (int16) arrays of ``img`` at <= ``side`` px, and the scale back."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    scale = 1.0
    if side and max(w, h) > side:
        scale = max(w, h) / side
        size = (max(1, round(w / scale)), max(1, round(h / scale)))
        img = img.resize(size, Image.Resampling.BOX)
    rgb = np.asarray(img, dtype=np.int16)
    grey = np.asarray(img.convert("L"), dtype=np.int16)
    return rgb, grey, scale


def _line_colour(line: np.ndarray) -> np.ndarray:
    """Median colour of a line of pixels (n x 3)."""
    return np.median(line, axis=0).astype(np.int16)


def _near_fraction(lines: np.ndarray, colour: np.ndarray, tol: int) -> np.ndarray:
    """For a stack of lines (k x n x 3): share of each line's pixels within ``tol`` of ``colour``."""
    near = np.abs(lines - colour).max(axis=-1) <= tol
    return near.mean(axis=-1)


def _leading_true(flags: np.ndarray) -> int:
    """Number of leading True values."""
    if flags.size == 0:
        return 0
    false = np.flatnonzero(~flags)
    return int(false[0]) if false.size else int(flags.size)


# --------------------------------------------------------------------------- trim


def trim_box(rgb: np.ndarray, box: Optional[Box] = None, p: Params = DEFAULT, max_rounds: int = 6) -> Box:
    """Box left after peeling near-uniform lines off each side of ``rgb`` (H x W x 3).

    Each side is peeled with the colour of its own outermost line, and only if that line is itself
    near-uniform; rounds repeat until nothing changes, so nested frames of different colours come
    off. Never trims a side past the middle of the current box.
    """
    h, w = rgb.shape[:2]
    left, top, right, bottom = box if box is not None else (0, 0, w, h)
    for _ in range(max_rounds):
        moved = False
        for side in ("top", "bottom", "left", "right"):
            if right - left < 2 or bottom - top < 2:
                return left, top, right, bottom
            sub = rgb[top:bottom, left:right]
            if side == "top":
                lines = sub[: (bottom - top) // 2]
            elif side == "bottom":
                lines = sub[::-1][: (bottom - top) // 2]
            elif side == "left":
                lines = sub.transpose(1, 0, 2)[: (right - left) // 2]
            else:
                lines = sub.transpose(1, 0, 2)[::-1][: (right - left) // 2]
            if lines.shape[0] == 0:
                continue
            colour = _line_colour(lines[0])
            frac = _near_fraction(lines, colour, p.tol)
            n = _leading_true(frac >= p.line_frac)
            if n == 0:
                continue
            moved = True
            if side == "top":
                top += n
            elif side == "bottom":
                bottom -= n
            elif side == "left":
                left += n
            else:
                right -= n
        if not moved:
            break
    return left, top, right, bottom


# --------------------------------------------------------------------------- content


def _best_run(busy_share: np.ndarray, p: Params) -> Optional[tuple[int, int]]:
    """The run of lines (gaps of <= max_gap tolerated) with the most busy mass: (start, end)."""
    on = busy_share >= p.line_busy
    idx = np.flatnonzero(on)
    if idx.size == 0:
        return None
    # split where the distance between consecutive busy lines exceeds max_gap + 1
    breaks = np.flatnonzero(np.diff(idx) > p.max_gap + 1)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]])) + 1
    cum = np.concatenate(([0.0], np.cumsum(busy_share)))
    mass = cum[ends] - cum[starts]
    k = int(np.argmax(mass))
    return int(starts[k]), int(ends[k])


def busy_map(grey: np.ndarray, p: Params = DEFAULT) -> np.ndarray:
    """Boolean grid of busy (non-flat) ``p.block`` x ``p.block`` blocks of a grey image."""
    b = p.block
    h, w = grey.shape
    nh, nw = h // b, w // b
    if nh == 0 or nw == 0:
        return np.zeros((nh, nw), dtype=bool)
    blocks = grey[: nh * b, : nw * b].reshape(nh, b, nw, b)
    rng = blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))
    return rng > p.flat_range


def content_box(rgb: np.ndarray, grey: np.ndarray, box: Optional[Box] = None, p: Params = DEFAULT) -> Optional[Box]:
    """Box of the dense, photo-like region inside ``box`` (default: whole image), or None."""
    h, w = grey.shape
    left, top, right, bottom = box if box is not None else (0, 0, w, h)
    grid = busy_map(grey[top:bottom, left:right], p)
    nh, nw = grid.shape
    if nh < 2 or nw < 2:
        return None
    r0, r1, c0, c1 = 0, nh, 0, nw
    for _ in range(8):
        rows = _best_run(grid[r0:r1, c0:c1].mean(axis=1), p)
        if rows is None:
            return None
        nr0, nr1 = r0 + rows[0], r0 + rows[1]
        cols = _best_run(grid[nr0:nr1, c0:c1].mean(axis=0), p)
        if cols is None:
            return None
        nc0, nc1 = c0 + cols[0], c0 + cols[1]
        if (nr0, nr1, nc0, nc1) == (r0, r1, c0, c1):
            break
        r0, r1, c0, c1 = nr0, nr1, nc0, nc1
    if grid[r0:r1, c0:c1].mean() < p.min_density:
        return None
    b = p.block
    # block edges -> pixels; the last partial block row/column belongs to the region if it ends there
    px = (
        left + c0 * b,
        top + r0 * b,
        right if c1 == nw else left + c1 * b,
        bottom if r1 == nh else top + r1 * b,
    )
    # busy blocks straddle the photo edge: tighten against the surrounding flat colour
    return trim_box(rgb, px, p, max_rounds=2)


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
    return float(grey[top:bottom, left:right].std()) >= p.min_std


def _same(a: Box, b: Box, grey_shape: tuple[int, int], p: Params) -> bool:
    h, w = grey_shape
    tol_x, tol_y = max(2, p.min_trim * w), max(2, p.min_trim * h)
    return all(abs(x - y) <= t for x, y, t in zip(a, b, (tol_x, tol_y, tol_x, tol_y)))


def find_boxes(img: Image.Image, p: Params = DEFAULT) -> list[tuple[str, Box]]:
    """Named crop boxes (in ``img`` pixel coordinates) of the framed regions of ``img``."""
    w, h = img.size
    if w < p.min_side or h < p.min_side:
        return []
    rgb, grey, scale = _analysis_arrays(img, p.analysis_side)
    gh, gw = grey.shape
    full: Box = (0, 0, gw, gh)
    found: list[tuple[str, Box]] = []
    trimmed = trim_box(rgb, full, p)
    if _significant(trimmed, full, p) and _acceptable(trimmed, grey, p):
        found.append(("trim", trimmed))
    else:
        trimmed = full
    content = content_box(rgb, grey, trimmed, p)
    if (
        content is not None
        and _significant(content, trimmed, p)
        and _acceptable(content, grey, p)
        and not any(_same(content, b, grey.shape, p) for _, b in found)
    ):
        found.append(("content", content))
    out = []
    for name, (left, top, right, bottom) in found:
        if scale != 1.0:
            left, top = int(left * scale), int(top * scale)
            right, bottom = min(w, round(right * scale)), min(h, round(bottom * scale))
        out.append((name, (left, top, right, bottom)))
    return out


def views(img: Image.Image, p: Params = DEFAULT) -> list[tuple[str, Image.Image]]:
    """Extra views of ``img`` to hash: the image with borders/letterbox trimmed (``trim``) and the
    photo region of a screenshot-like canvas (``content``). Empty for an ordinary photo.

    Matches :data:`csadetect.hashing.Preprocessor`; use as ``hash_image(data, preprocess=views)``.
    """
    return [(name, img.crop(box)) for name, box in find_boxes(img, p)]
