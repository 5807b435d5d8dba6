"""Cheap views of an image that undo common framing before PDQ hashing.

PDQ hashes the whole picture, so a copy with a border, letterbox bars or app chrome around it
(a screenshot, a meme caption bar, a blurred "fill" behind a portrait video frame) hashes far from
the original. :func:`views` finds such framing and returns the framed region as extra views, which
:func:`csadetect.media.hashing.hash_image` hashes next to the full image (``preprocess=views``).

Everything is numpy on the (<= 512 px) image; a few milliseconds per image, about one PDQ.

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

Guards against false matches and wasted hashes: a view is only returned when its region differs
from the whole image by at least ``min_trim`` of a side, covers at least ``min_area`` of the
image, is not extremely elongated and not nearly flat, and does not repeat another view. An
ordinary photo gets no view, so it costs the analysis and no extra PDQ. At most three views.
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
    drift: int = 8  # max difference of a bar line's median colour from the outermost line's
    edge_lines: int = 6  # lines after a bar searched for the picture's edge
    edge_step: float = 12.0  # mean colour step from the line before that the edge line must make
    edge_unlike: float = 0.5  # share of an edge line's pixels that must differ from the bar colour
    block: int = 4  # window size (px, analysis resolution) of the flat/busy map
    stride: int = 2  # window step (px); block must be a multiple
    flat_range: int = 2  # a window whose grey max-min <= this is flat (UI: exactly flat) ...
    flat_range_loose: int = 6  # ... and the second try, for smooth surrounds (blurred fill); 0: none
    both_content: bool = True  # also try the loose content view when the strict one was found
    fill_asymmetry: float = 0.25  # loose view: opposite cuts may differ by this share of the larger
    line_busy: float = 0.15  # a row/column belongs to a run when this share of its windows is busy
    max_gap: int = 1  # flat lines tolerated inside a run
    sparse: float = 0.5  # head/tail lines below this busy share, behind a gap, are cut off
    snap_radius: int = 8  # px searched on either side of a content edge for a straight edge
    snap_min: float = 12.0  # a straight edge: mean grey step across the line at least this ...
    snap_ratio: float = 2.0  # ... and this many times the median step near it
    min_density: float = 0.55  # the content region must be at least this busy overall
    min_trim: float = 0.02  # a side must move by this share of its dimension to count as framing
    min_area: float = 0.2  # smallest view, as a share of the image area
    max_aspect: float = 5.0  # longest/shortest side of a view
    min_side: int = 24  # px, analysis resolution
    min_std: float = 4.0  # grey standard deviation below which a view is too flat to hash


DEFAULT = Params()


# --------------------------------------------------------------------------- helpers


def _analysis_arrays(img: Image.Image, side: int) -> tuple[np.ndarray, np.ndarray, float]:
    """RGB and grey uint8 arrays of ``img`` at <= ``side`` px, and the scale back."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    scale = 1.0
    if side and max(w, h) > side:
        scale = max(w, h) / side
        size = (max(1, round(w / scale)), max(1, round(h / scale)))
        img = img.resize(size, Image.Resampling.BOX)
    rgb = np.asarray(img)
    grey = np.asarray(img.convert("L"))
    return rgb, grey, scale


def _line_colour(line: np.ndarray) -> np.ndarray:
    """Median colour of a line of pixels (n x 3)."""
    return np.median(line, axis=0).astype(np.int16)  # robust to a few stray pixels


def _leading_true(flags: np.ndarray) -> int:
    """Number of leading True values."""
    if flags.size == 0:
        return 0
    false = np.flatnonzero(~flags)
    return int(false[0]) if false.size else int(flags.size)


# --------------------------------------------------------------------------- trim


def _side_lines(rgb: np.ndarray, box: Box, side: str) -> np.ndarray:
    """The lines of ``box`` seen from ``side``, outermost first, up to the middle: (k, n, 3).

    Lines are subsampled 2:1 along their length."""
    left, top, right, bottom = box
    sub = rgb[top:bottom, left:right]
    # every other pixel along a line is plenty for its statistics, and halves the work
    if side == "top":
        return sub[: (bottom - top) // 2, ::2]
    if side == "bottom":
        return sub[::-1][: (bottom - top) // 2, ::2]
    sub = sub.transpose(1, 0, 2)
    if side == "left":
        return sub[: (right - left) // 2, ::2]
    return sub[::-1][: (right - left) // 2, ::2]


def _deviation(lines: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Per-pixel max-over-channels |pixel - colour| of a stack of lines (..., n, 3) -> (..., n)."""
    d = np.abs(lines.astype(np.int16) - colour)
    return np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2])


def _peel(lines: np.ndarray, p: Params) -> int:
    """How many outer lines of one side form a uniform bar ending at a sharp edge (0 if none).

    A bar line has >= ``line_frac`` of its pixels within ``tol`` of the outermost line's colour
    and its mean (deviations clipped to ``tol``) within ``drift`` of it, so a slow gradient such
    as a sky is not a bar. The bar only counts when one of the ``edge_lines`` lines after it is
    mostly unlike the bar colour and steps sharply from the line before it: a pasted picture
    starts with a sharp edge, a studio wall or sky that happens to be flat fades into the scene.
    Returns the position of that edge (so a thin transition before it goes with the bar).
    """
    k, width = lines.shape[0], lines.shape[1]
    if k < 2 or width == 0:
        return 0
    colour = _line_colour(lines[0])
    need = p.line_frac * width
    if np.count_nonzero(_deviation(lines[0], colour) <= p.tol) < need:
        return 0  # fast path: the outermost line is no bar
    n, chunk = 0, 8
    while n < k:
        d = lines[n : n + chunk].astype(np.int16) - colour
        np.clip(d, -p.tol - 1, p.tol + 1, out=d)
        a = np.abs(d)
        dev = np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])
        ok = np.count_nonzero(dev <= p.tol, axis=-1) >= need
        drift = np.abs(d.sum(axis=1, dtype=np.int32)) > p.drift * width
        ok &= ~drift.any(axis=-1)
        lead = _leading_true(ok)
        n += lead
        if lead < d.shape[0]:
            break
        chunk *= 2
    if n == 0 or n >= k:
        return 0
    # the picture's edge: right after the bar or within a short transition (JPEG ringing, a thin
    # padding of a close colour), a line mostly unlike the bar that steps sharply from the line
    # before it. A sky or wall drifting slowly away from its first line's colour has none.
    after = lines[n : n + p.edge_lines]
    unlike = np.count_nonzero(_deviation(after, colour) > p.tol, axis=-1) >= p.edge_unlike * width
    d = np.abs(after.astype(np.int16) - lines[n - 1 : n - 1 + after.shape[0]])
    step = np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2]).mean(axis=-1) >= p.edge_step
    edge = np.flatnonzero(unlike & step)
    return n + int(edge[0]) if edge.size else 0


def trim_box(rgb: np.ndarray, box: Optional[Box] = None, p: Params = DEFAULT, max_rounds: int = 6) -> Box:
    """Box left after peeling uniform bars (borders, letterbox, mats) off the sides of ``rgb``.

    Each side is peeled with the colour of its own outermost line; rounds repeat until nothing
    changes, so nested frames of different colours come off. A side never moves past the middle.
    """
    h, w = rgb.shape[:2]
    box = box if box is not None else (0, 0, w, h)
    for _ in range(max_rounds):
        moved = False
        for side in ("top", "bottom", "left", "right"):
            left, top, right, bottom = box
            if right - left < 4 or bottom - top < 4:
                return box
            n = _peel(_side_lines(rgb, box, side), p)
            if n == 0:
                continue
            moved = True
            if side == "top":
                box = (left, top + n, right, bottom)
            elif side == "bottom":
                box = (left, top, right, bottom - n)
            elif side == "left":
                box = (left + n, top, right, bottom)
            else:
                box = (left, top, right - n, bottom)
        if not moved:
            break
    return box


# --------------------------------------------------------------------------- content


def range_map(grey: np.ndarray, p: Params = DEFAULT) -> np.ndarray:
    """Grey range (max - min) of the ``p.block``-px window at every ``p.stride``-px cell."""
    s, k = p.stride, p.block // p.stride
    h, w = grey.shape
    nh, nw = h // s, w // s
    if nh < k or nw < k:
        return np.zeros((0, 0), dtype=np.uint8)
    g = grey[: nh * s, : nw * s]
    hi = lo = None
    for dy in range(s):  # per-cell max/min from strided views (fast elementwise ops)
        for dx in range(s):
            v = g[dy::s, dx::s]
            hi = v if hi is None else np.maximum(hi, v)
            lo = v if lo is None else np.minimum(lo, v)
    for _ in range(1, k):  # combine k x k neighbouring cells into one sliding window
        hi = np.maximum(hi[:-1], hi[1:])
        lo = np.minimum(lo[:-1], lo[1:])
        hi = np.maximum(hi[:, :-1], hi[:, 1:])
        lo = np.minimum(lo[:, :-1], lo[:, 1:])
    return hi - lo  # uint8: hi >= lo


def busy_map(grey: np.ndarray, p: Params = DEFAULT) -> np.ndarray:
    """Boolean grid, one cell per ``p.stride`` px: is the window there busy (range > flat_range)?"""
    return range_map(grey, p) > p.flat_range


class _Sums:
    """Summed-area table of a boolean grid: busy shares of rows/columns of any sub-rectangle."""

    def __init__(self, grid: np.ndarray):
        self.shape = grid.shape
        t = np.zeros((grid.shape[0] + 1, grid.shape[1] + 1), dtype=np.int32)
        np.cumsum(np.cumsum(grid, axis=0, dtype=np.int32), axis=1, out=t[1:, 1:])
        self.t = t

    def rows(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        t = self.t
        return ((t[r0 + 1 : r1 + 1, c1] - t[r0 + 1 : r1 + 1, c0]) - (t[r0:r1, c1] - t[r0:r1, c0])) / max(1, c1 - c0)

    def cols(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        t = self.t
        return ((t[r1, c0 + 1 : c1 + 1] - t[r0, c0 + 1 : c1 + 1]) - (t[r1, c0:c1] - t[r0, c0:c1])) / max(1, r1 - r0)

    def mean(self, r0: int, r1: int, c0: int, c1: int) -> float:
        t = self.t
        return float(t[r1, c1] - t[r0, c1] - t[r1, c0] + t[r0, c0]) / max(1, (r1 - r0) * (c1 - c0))


def _runs(share: np.ndarray, p: Params) -> tuple[np.ndarray, np.ndarray]:
    """Runs of lines with share >= line_busy, gaps of <= max_gap lines bridged: (starts, ends)."""
    idx = np.flatnonzero(share >= p.line_busy)
    if idx.size == 0:
        return idx, idx
    breaks = np.flatnonzero(np.diff(idx) > p.max_gap + 1)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]])) + 1
    return starts, ends


def _best_run(share: np.ndarray, p: Params) -> Optional[tuple[int, int]]:
    """The run of busy lines with the most busy mass, as (start, end), or None."""
    starts, ends = _runs(share, p)
    if starts.size == 0:
        return None
    cum = np.concatenate(([0.0], np.cumsum(share)))
    k = int(np.argmax(cum[ends] - cum[starts]))
    return int(starts[k]), int(ends[k])


def _cut_sparse_ends(share: np.ndarray, p: Params) -> tuple[int, int]:
    """Drop a sparse head and tail (text, icons, an avatar) separated from the rest by a gap.

    Returns (start, end): the lines before the last gap line whose preceding lines are all sparse
    (share < ``sparse``) are dropped, and likewise at the end.
    """
    n = share.size
    sparse = share < p.sparse
    gap = share < p.line_busy
    start = 0
    lead = _leading_true(sparse)
    gaps = np.flatnonzero(gap[:lead])
    if gaps.size:
        start = int(gaps[-1]) + 1
    end = n
    trail = _leading_true(sparse[::-1])
    gaps = np.flatnonzero(gap[::-1][:trail])
    if gaps.size:
        end = n - int(gaps[-1]) - 1
    return start, max(end, start)


def content_box(
    rgb: np.ndarray,
    grey: np.ndarray,
    box: Optional[Box] = None,
    p: Params = DEFAULT,
    ranges: Optional[np.ndarray] = None,
    fill: bool = False,
) -> Optional[Box]:
    """Box of the dense, photo-like region inside ``box`` (default: whole image), or None.

    ``ranges``: :func:`range_map` of ``grey`` inside ``box``, when the caller has it already.
    ``fill``: the surround may be a smooth but not uniform fill (a blurred copy of the picture):
    flat stretches reaching the image's edge are then cut off too, but only a centred result counts.
    """
    h, w = grey.shape
    left, top, right, bottom = box if box is not None else (0, 0, w, h)
    if ranges is None:
        ranges = range_map(grey[top:bottom, left:right], p)
    nh, nw = ranges.shape
    if nh < 4 or nw < 4:
        return None
    sums = _Sums(ranges > p.flat_range)
    r0, r1, c0, c1 = 0, nh, 0, nw
    for _ in range(8):
        rows = _best_run(sums.rows(r0, r1, c0, c1), p)
        if rows is None:
            return None
        nr0, nr1 = r0 + rows[0], r0 + rows[1]
        cols = _best_run(sums.cols(nr0, nr1, c0, c1), p)
        if cols is None:
            return None
        nc0, nc1 = c0 + cols[0], c0 + cols[1]
        if (nr0, nr1, nc0, nc1) == (r0, r1, c0, c1):
            break
        r0, r1, c0, c1 = nr0, nr1, nc0, nc1
    for _ in range(2):
        if r1 - r0 < 2 or c1 - c0 < 2:
            return None
        a, b = _cut_sparse_ends(sums.rows(r0, r1, c0, c1), p)
        r0, r1 = r0 + a, r0 + b
        if r1 - r0 < 2:
            return None
        a, b = _cut_sparse_ends(sums.cols(r0, r1, c0, c1), p)
        c0, c1 = c0 + a, c0 + b
    if r1 - r0 < 2 or c1 - c0 < 2 or sums.mean(r0, r1, c0, c1) < p.min_density:
        return None
    if (r0, c0) == (0, 0) and (r1, c1) == (nh, nw):
        return left, top, right, bottom  # all of it: an ordinary picture
    # grow each side over flat lines (a smooth wall or sky at the photo's edge, and the margin
    # around it): the uniform margin is peeled off again below, up to the photo's edge
    flat = sums.rows(0, nh, c0, c1) < p.line_busy
    er0 = r0 - _leading_true(flat[:r0][::-1])
    er1 = r1 + _leading_true(flat[r1:])
    flat = sums.cols(er0, er1, 0, nw) < p.line_busy
    ec0 = c0 - _leading_true(flat[:c0][::-1])
    ec1 = c1 + _leading_true(flat[c1:])
    core = _grid_to_px((r0, r1, c0, c1), (nh, nw), (left, top, right, bottom), p)
    grown = _grid_to_px((er0, er1, ec0, ec1), (nh, nw), (left, top, right, bottom), p)
    # busy windows straddle the photo edge: tighten against the surrounding flat colour
    tight_core = trim_box(rgb, core, p, max_rounds=2)
    tight_grown = trim_box(rgb, grown, p, max_rounds=2) if grown != core else tight_core
    region = (left, top, right, bottom)
    out, peeled = [], []
    for i in range(4):
        if grown[i] != core[i] and tight_grown[i] != grown[i]:
            out.append(tight_grown[i])  # grown over a margin and peeled back to a sharp edge
            peeled.append(True)
        elif not fill and grown[i] == region[i] and grown[i] != core[i]:
            # flat all the way to the image's edge and no uniform bar: a sky or wall of the picture
            out.append(region[i])
            peeled.append(True)
        else:
            out.append(tight_core[i])
            peeled.append(tight_core[i] != core[i])
    snapped, edged = _snap(rgb, (out[0], out[1], out[2], out[3]), peeled, p)
    # a cut must end at an edge: a uniform bar peeled off, or a straight edge found; elsewhere
    # (a smooth sky or wall of the picture itself) the side goes back to where it was
    result = tuple(
        snapped[i] if (peeled[i] or edged[i]) else region[i] for i in range(4)
    )
    if fill and not _centred(result, region, p):
        return None
    return result  # type: ignore[return-value]


def _centred(box: Box, region: Box, p: Params) -> bool:
    """True when ``box`` is cut from ``region`` on two opposite sides by about the same amount,
    as a picture centred on a fill is (a sky or floor of the picture itself is cut on one side)."""
    for lo, hi, rlo, rhi in ((box[0], box[2], region[0], region[2]), (box[1], box[3], region[1], region[3])):
        a, b = lo - rlo, rhi - hi
        if min(a, b) >= p.min_trim * (rhi - rlo) and abs(a - b) <= max(4, p.fill_asymmetry * max(a, b)):
            return True
    return False


def _grid_to_px(g: tuple[int, int, int, int], shape: tuple[int, int], region: Box, p: Params) -> Box:
    """Grid rows/columns (r0, r1, c0, c1) of the busy map of ``region`` -> pixel box."""
    r0, r1, c0, c1 = g
    nh, nw = shape
    left, top, right, bottom = region
    s, k = p.stride, p.block // p.stride
    # a window starting at cell i covers cells i .. i+k-1
    return (
        left + c0 * s,
        top + r0 * s,
        right if c1 + k - 1 >= nw else left + (c1 + k - 1) * s,
        bottom if r1 + k - 1 >= nh else top + (r1 + k - 1) * s,
    )


def _edge_strength(rgb: np.ndarray, positions: np.ndarray, lo: int, hi: int, axis: int) -> np.ndarray:
    """Mean colour step (max over channels) across the boundary before each position, over [lo, hi)."""
    if axis == 0:
        a, b = rgb[positions, lo:hi], rgb[positions - 1, lo:hi]
    else:
        a, b = rgb[lo:hi, positions].transpose(1, 0, 2), rgb[lo:hi, positions - 1].transpose(1, 0, 2)
    d = np.abs(a.astype(np.int16) - b)
    return np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2]).mean(axis=1)


def _snap(rgb: np.ndarray, box: Box, peeled: list[bool], p: Params) -> tuple[Box, list[bool]]:
    """Move each side that was not peeled to the strongest straight edge within a few pixels.

    The busy map locates a photo's edge only to a window (``block`` px); against a non-uniform
    surround (a blurred fill) the edge itself, a line where most pixels change, is exact.
    Returns the box and, per side, whether a straight edge was found there.
    """
    h, w = rgb.shape[:2]
    left, top, right, bottom = box
    res = [left, top, right, bottom]
    found = [False] * 4
    r = p.snap_radius
    for i, (pos, axis, lo, hi, limit) in enumerate(
        ((left, 1, top, bottom, w), (top, 0, left, right, h), (right, 1, top, bottom, w), (bottom, 0, left, right, h))
    ):
        if peeled[i] or hi - lo < 2 or pos <= 0 or pos >= limit:
            continue  # peeled to a bar's edge already, or at the image's edge: nothing to find
        cand = np.arange(max(1, pos - r), min(limit - 1, pos + r) + 1)
        if cand.size < 3:
            continue
        strength = _edge_strength(rgb, cand, lo, hi, axis)
        k = int(np.argmax(strength))
        if strength[k] >= p.snap_min and strength[k] >= p.snap_ratio * float(np.median(strength)):
            res[i] = int(cand[k])
            found[i] = True
    left, top, right, bottom = res
    if right - left < 2 or bottom - top < 2:
        return box, [False] * 4
    return (left, top, right, bottom), found


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
    tries = [("content", p, False)]
    if p.flat_range_loose and p.flat_range_loose != p.flat_range:
        tries.append(("smooth", dataclasses.replace(p, flat_range=p.flat_range_loose), True))
    left, top, right, bottom = trimmed
    ranges = range_map(grey[top:bottom, left:right], p)
    for name, q, fill in tries:
        content = content_box(rgb, grey, trimmed, q, ranges=ranges, fill=fill)
        if (
            content is not None
            and _significant(content, trimmed, p)
            and _acceptable(content, grey, p)
            and not any(_same(content, b, grey.shape, p) for _, b in found)
        ):
            found.append((name, content))
            if not p.both_content:
                break
    out = []
    for name, (left, top, right, bottom) in found:
        if scale != 1.0:
            left, top = int(left * scale), int(top * scale)
            right, bottom = min(w, round(right * scale)), min(h, round(bottom * scale))
        out.append((name, (left, top, right, bottom)))
    return out


def views(img: Image.Image, p: Params = DEFAULT) -> list[tuple[str, Image.Image]]:
    """Extra RGB views of ``img`` to hash: the image with borders/letterbox trimmed (``trim``),
    the photo region of a screenshot-like canvas (``content``) and of a smooth fill (``smooth``).
    Empty for an ordinary photo.

    Matches :data:`csadetect.media.hashing.Preprocessor`; use as ``hash_image(data, preprocess=views)``.
    """
    if img.mode != "RGB":
        img = img.convert("RGB")
    return [(name, img.crop(box)) for name, box in find_boxes(img, p)]
