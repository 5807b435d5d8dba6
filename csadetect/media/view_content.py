"""The ``content`` and ``smooth`` views of :mod:`csadetect.media.preprocess`: the dense,
photo-like region of a screenshot-like canvas, found on a map of flat and busy windows
(:func:`range_map`, :func:`busy_map`, :func:`content_box`), and the snapping of a found box's sides
to a straight edge nearby (:func:`_snap`, also used by :mod:`.view_fill`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from csadetect.media.box import Box
from csadetect.media.view_common import DEFAULT, Params, _leading_true, _median, _planar
from csadetect.media.view_trim import _Peels


# --------------------------------------------------------------------------- content


def range_map(grey: np.ndarray, p: Params = DEFAULT) -> np.ndarray:
    """Grey range (max - min) of the ``p.block``-px window at every ``p.stride``-px cell."""
    s, k = p.stride, p.block // p.stride
    h, w = grey.shape
    nh, nw = h // s, w // s
    if nh < k or nw < k:
        return np.zeros((0, 0), dtype=np.uint8)
    g = grey[: nh * s, : nw * s]
    # max/min are separable: first over the rows of a cell (whole image rows at a time), then over
    # the k cells of a window down the rows, then over the columns of a cell and the k cells across
    hi, lo = _max_min([g[dy::s] for dy in range(s)])
    for _ in range(1, k):
        hi = np.maximum(hi[:-1], hi[1:])
        lo = np.minimum(lo[:-1], lo[1:])
    hi, lo = _max_min([hi[:, dx::s] for dx in range(s)], [lo[:, dx::s] for dx in range(s)])
    for _ in range(1, k):
        hi = np.maximum(hi[:, :-1], hi[:, 1:])
        lo = np.minimum(lo[:, :-1], lo[:, 1:])
    return hi - lo  # uint8: hi >= lo


def _max_min(his: list[np.ndarray], los: Optional[list[np.ndarray]] = None) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise max of ``his`` and min of ``los`` (default: the same arrays)."""
    los = his if los is None else los
    hi, lo = his[0], los[0]
    for a, b in zip(his[1:], los[1:]):
        hi = np.maximum(hi, a)
        lo = np.minimum(lo, b)
    return hi, lo


def busy_map(grey: np.ndarray, p: Params = DEFAULT) -> np.ndarray:
    """Boolean grid, one cell per ``p.stride`` px: is the window there busy (range > flat_range)?"""
    return range_map(grey, p) > p.flat_range


class _Sums:
    """Busy shares of the rows/columns of sub-rectangles of a boolean grid.

    Each answer is a sum over the rectangle asked about, remembered because the search asks for
    some twice: a dozen such sums cost less than building a summed-area table (numpy's cumsum is
    slow). The shares are the same floats a table would give (integer count / integer length)."""

    def __init__(self, grid: np.ndarray):
        self.shape = grid.shape
        self.grid = grid
        self.dtype = np.int16 if max(grid.shape) < 2**15 else np.int32  # holds any count; int16 sums faster
        self.memo: dict[tuple[int, int, int, int, int], np.ndarray] = {}

    def rows(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        key = (0, r0, r1, c0, c1)
        out = self.memo.get(key)
        if out is None:
            out = self.memo[key] = np.add.reduce(self.grid[r0:r1, c0:c1], axis=1, dtype=self.dtype) / max(1, c1 - c0)
        return out

    def cols(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        key = (1, r0, r1, c0, c1)
        out = self.memo.get(key)
        if out is None:
            out = self.memo[key] = np.add.reduce(self.grid[r0:r1, c0:c1], axis=0, dtype=self.dtype) / max(1, r1 - r0)
        return out

    def mean(self, r0: int, r1: int, c0: int, c1: int) -> float:
        return float(np.count_nonzero(self.grid[r0:r1, c0:c1])) / max(1, (r1 - r0) * (c1 - c0))


def _runs(share: np.ndarray, p: Params) -> tuple[np.ndarray, np.ndarray]:
    """Runs of lines with share >= line_busy, gaps of <= max_gap lines bridged: (starts, ends)."""
    idx = (share >= p.line_busy).nonzero()[0]
    if idx.size == 0:
        return idx, idx
    breaks = ((idx[1:] - idx[:-1]) > p.max_gap + 1).nonzero()[0]
    if breaks.size == 0:
        return idx[:1], idx[-1:] + 1  # one run
    starts = np.concatenate((idx[:1], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], idx[-1:])) + 1
    return starts, ends


def _best_run(share: np.ndarray, p: Params) -> Optional[tuple[int, int]]:
    """The run of busy lines with the most busy mass, as (start, end), or None."""
    starts, ends = _runs(share, p)
    if starts.size == 0:
        return None
    if starts.size == 1:
        return int(starts[0]), int(ends[0])
    cum = np.concatenate(([0.0], np.cumsum(share)))
    k = int(np.argmax(cum[ends] - cum[starts]))
    return int(starts[k]), int(ends[k])


def _cut_sparse_ends(share: np.ndarray, p: Params) -> tuple[int, int]:
    """Drop a sparse head and tail (text, icons, an avatar) separated from the rest by a gap.

    Returns (start, end): the lines before the last gap line whose preceding lines are all sparse
    (share < ``sparse``) are dropped, and likewise at the end.
    """
    n = share.size
    gap = share < p.line_busy
    if not gap.any():
        return 0, n  # no gap line, nothing to cut
    sparse = share < p.sparse
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
    return _content_box(_Peels(rgb, p), grey, box, p, ranges, fill)


def _content_box(
    peels: _Peels, grey: np.ndarray, box: Optional[Box], p: Params, ranges: Optional[np.ndarray], fill: bool
) -> Optional[Box]:
    """:func:`content_box`, peeling with ``peels`` (of the same picture)."""
    rgb = peels.rgb
    peels = peels.for_params(p)
    h, w = grey.shape
    left, top, right, bottom = box if box is not None else (0, 0, w, h)
    if ranges is None:
        ranges = range_map(grey[top:bottom, left:right], p)
    nh, nw = ranges.shape
    if nh < 4 or nw < 4:
        return None
    sums = _Sums(ranges > p.flat_range)
    if (sums.rows(0, nh, 0, nw) >= p.line_busy).all() and (sums.cols(0, nh, 0, nw) >= p.line_busy).all():
        # every row and column busy (most photos): the search below keeps all of it (one run each
        # way, no gap line to cut at), so only the density decides
        return (left, top, right, bottom) if sums.mean(0, nh, 0, nw) >= p.min_density else None
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
    tight_core = peels.trim(core, max_rounds=2)
    tight_grown = peels.trim(grown, max_rounds=2) if grown != core else tight_core
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


def _edge_strength(rgb: np.ndarray, first: int, last: int, lo: int, hi: int, axis: int) -> np.ndarray:
    """Mean colour step (max over channels) across the boundary before each position
    ``first`` .. ``last`` (rows for ``axis`` 0, columns for 1), over [lo, hi) along the boundary."""
    if axis == 0:
        block = _planar(rgb[first - 1 : last + 1, lo:hi])  # (3, positions + 1, along)
        d = np.abs(block[:, 1:] - block[:, :-1])
    else:
        block = _planar(rgb[lo:hi, first - 1 : last + 1])  # (3, along, positions + 1)
        d = np.abs(block[..., 1:] - block[..., :-1])
    step = np.maximum(d[0], d[1])
    np.maximum(step, d[2], out=step)
    # integer sums are exact, so this equals the mean over the boundary whatever the summing order
    return np.add.reduce(step, axis=1 - axis, dtype=np.int64) / (hi - lo)


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
        first, last = max(1, pos - r), min(limit - 1, pos + r)  # candidate positions
        if last - first + 1 < 3:
            continue
        strength = _edge_strength(rgb, first, last, lo, hi, axis)
        k = int(np.argmax(strength))
        if strength[k] >= p.snap_min and strength[k] >= p.snap_ratio * _median(strength):
            res[i] = first + k
            found[i] = True
    left, top, right, bottom = res
    if right - left < 2 or bottom - top < 2:
        return box, [False] * 4
    return (left, top, right, bottom), found

