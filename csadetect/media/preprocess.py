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

Guards against false matches and wasted hashes: a view is only returned when its region differs
from the whole image by at least ``min_trim`` of a side, covers at least ``min_area`` of the
image, is not extremely elongated and not nearly flat, and does not repeat another view. An
ordinary photo gets no view, so it costs the analysis and no extra PDQ. At most four views.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import numpy as np
from PIL import Image

from csadetect.media.pixels import pixels

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
    fill_step: int = 6  # fill view: a pixel is sharp when a grey second difference exceeds this ...
    fill_share: float = 0.02  # ... and a line with fewer sharp pixels than this share is blurred; 0: no fill view
    fill_min: float = 0.05  # a fill is at least this share of the side on each of two opposite sides
    fill_vary: float = 1.5  # the fill's grey standard deviation is at least this (a flat margin is no fill)
    fill_jump: float = 0.1  # one of the 3 first sharp lines after a fill (one of two opposite sides) is this sharp


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
    return pixels(img), pixels(img.convert("L")), scale


def _planar(lines: np.ndarray) -> np.ndarray:
    """int16 copy of a stack of lines of pixels (..., n, 3), channel first: (3, ..., n).

    numpy runs a loop per innermost axis, and an axis of 3 channels makes every operation crawl;
    along the lines instead, the same arithmetic is several times faster."""
    out = np.empty((3,) + lines.shape[:-1], dtype=np.int16)
    for c in range(3):
        out[c] = lines[..., c]
    return out


def _median_colour(planar: np.ndarray) -> np.ndarray:
    """Median colour of each line of a :func:`_planar` stack (3, ..., n) -> (3, ...) int16.

    Equal to ``np.median(line, axis=0).astype(np.int16)`` of each line (the mean of the two
    middle values, rounded down); numpy sorts short int16 rows faster than it partitions them."""
    n = planar.shape[-1]
    lo, hi = (n - 1) // 2, n // 2
    ordered = np.sort(planar, axis=-1)
    return (ordered[..., lo] + ordered[..., hi]) // 2  # robust to a few stray pixels


def _median(values: np.ndarray) -> float:
    """``float(np.median(values))`` of a short 1-D float array, without numpy's general machinery."""
    s = sorted(values.tolist())
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def _leading_true(flags: np.ndarray) -> int:
    """Number of leading True values."""
    if flags.size == 0:
        return 0
    first = int(flags.argmin())  # the first False, or 0 when there is none
    return first if not flags[first] else int(flags.size)


def _count(flags: np.ndarray) -> np.ndarray:
    """True values along the last axis (``np.count_nonzero(flags, axis=-1)``, with less overhead)."""
    return np.add.reduce(flags, axis=-1, dtype=np.int32)


# --------------------------------------------------------------------------- trim

_SIDES = ("top", "bottom", "left", "right")


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


def _outer_keys(box: Box) -> tuple[tuple, tuple, tuple, tuple]:
    """Where the outermost line of each side (top, bottom, left, right) of ``box`` lies."""
    left, top, right, bottom = box
    return ("top", top, left, right), ("bottom", bottom, left, right), ("left", left, top, bottom), (
        "right", right, top, bottom)


def _deviation(planar: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Per-pixel max-over-channels |pixel - colour| of a :func:`_planar` stack (3, ..., n) -> (..., n);
    ``colour`` broadcasts against it (3, ..., 1)."""
    d = np.abs(planar - colour)
    return np.maximum(np.maximum(d[0], d[1]), d[2])


def _uniform(planar: np.ndarray, p: Params) -> tuple[np.ndarray, np.ndarray]:
    """Per line of a :func:`_planar` stack: are >= ``line_frac`` of its pixels within ``tol`` of its
    median colour? (:func:`_peel`'s first test: a side whose outermost line fails it peels nothing.)
    Returns the flags (...) and the colours (3, ...)."""
    colour = _median_colour(planar)
    ok = _count(_deviation(planar, colour[..., None]) <= p.tol) >= p.line_frac * planar.shape[-1]
    return ok, colour


def _peel(lines: np.ndarray, p: Params, colour: Optional[np.ndarray] = None) -> int:
    """How many outer lines of one side form a uniform bar ending at a sharp edge (0 if none).

    A bar line has >= ``line_frac`` of its pixels within ``tol`` of the outermost line's colour
    and its mean (deviations clipped to ``tol``) within ``drift`` of it, so a slow gradient such
    as a sky is not a bar. The bar only counts when one of the ``edge_lines`` lines after it is
    mostly unlike the bar colour and steps sharply from the line before it: a pasted picture
    starts with a sharp edge, a studio wall or sky that happens to be flat fades into the scene.
    Returns the position of that edge (so a thin transition before it goes with the bar).
    ``colour``: the outermost line's median colour (3,) when the caller has found it uniform.
    """
    k, width = lines.shape[0], lines.shape[1]
    if k < 2 or width == 0:
        return 0
    need = p.line_frac * width
    if colour is None:
        flags, colour = _uniform(_planar(lines[:1]), p)
        if not flags[0]:
            return 0  # fast path: the outermost line is no bar
        colour = colour[:, 0]
    colour = colour.reshape(3, 1, 1)  # against (3, lines, width)
    lim, most = p.tol + 1, p.drift * width
    n, chunk = 0, 8
    while n < k:
        d = _planar(lines[n : n + chunk])
        d -= colour
        np.maximum(d, -lim, out=d)  # deviations clipped to one past tol either way
        np.minimum(d, lim, out=d)
        mean = d.sum(axis=-1, dtype=np.int32)  # (3, lines): width x the mean clipped deviation
        np.abs(d, out=d)
        dev = np.maximum(d[0], d[1])
        np.maximum(dev, d[2], out=dev)
        ok = _count(dev <= p.tol) >= need
        np.abs(mean, out=mean)
        ok &= mean.max(axis=0) <= most  # the line's mean colour has not drifted
        lead = _leading_true(ok)
        n += lead
        if lead < ok.size:
            break
        chunk *= 2
    if n == 0 or n >= k:
        return 0
    # the picture's edge: right after the bar or within a short transition (JPEG ringing, a thin
    # padding of a close colour), a line mostly unlike the bar that steps sharply from the line
    # before it. A sky or wall drifting slowly away from its first line's colour has none.
    span = _planar(lines[n - 1 : n + p.edge_lines])  # the bar's last line and the lines after it
    after = span[:, 1:]
    unlike = _count(_deviation(after, colour) > p.tol) >= p.edge_unlike * width
    if not unlike.any():
        return 0
    d = np.abs(after - span[:, :-1])
    step = np.maximum(np.maximum(d[0], d[1]), d[2]).mean(axis=-1) >= p.edge_step
    edge = np.flatnonzero(unlike & step)
    return n + int(edge[0]) if edge.size else 0


def _trim_fields(p: Params) -> tuple:
    """The thresholds :func:`_peel` reads."""
    return p.tol, p.line_frac, p.drift, p.edge_lines, p.edge_step, p.edge_unlike


class _Peels:
    """Peeling one picture's sides, each answer worked out once.

    :func:`find_boxes` trims the whole picture and each content try tightens its boxes, and a
    side of one box comes up more than once; a side whose outermost line is not uniform (most
    sides) peels nothing whatever the rest of its box, so that test is kept per line."""

    def __init__(self, rgb: np.ndarray, p: Params):
        self.rgb, self.p, self.fields = rgb, p, _trim_fields(p)
        # an outermost line (:func:`_outer_keys`) -> its median colour if uniform, else None
        self.outer: dict[tuple, Optional[np.ndarray]] = {}
        self.peeled: dict[tuple[str, Box], int] = {}

    def for_params(self, p: Params) -> "_Peels":
        """This instance when ``p`` peels alike (only thresholds elsewhere differ), else a new one."""
        return self if p is self.p or _trim_fields(p) == self.fields else _Peels(self.rgb, p)

    def uniform(self, box: Box, side: int) -> Optional[np.ndarray]:
        """The median colour of the outermost line of side ``side`` (top, bottom, left, right) of
        ``box`` if that line is uniform, else None. Opposite sides have lines of one length and
        are tested together."""
        keys = _outer_keys(box)
        if keys[side] not in self.outer:
            left, top, right, bottom = box
            # the lines :func:`_side_lines` starts with (a step of one less than the box's size
            # takes its first and last row or column)
            if side < 2:
                lines = self.rgb[top:bottom:bottom - 1 - top, left:right:2]
            else:
                lines = self.rgb[top:bottom:2, left:right:right - 1 - left].transpose(1, 0, 2)
            pair = 0 if side < 2 else 2
            flags, colours = _uniform(_planar(lines), self.p)
            for i in range(2):
                self.outer[keys[pair + i]] = colours[:, i] if flags[i] else None
        return self.outer[keys[side]]

    def peel(self, box: Box, side: int) -> int:
        """:func:`_peel` of side ``side`` of ``box``."""
        colour = self.uniform(box, side)
        if colour is None:
            return 0  # _peel's first test fails
        n = self.peeled.get((_SIDES[side], box))
        if n is None:
            n = _peel(_side_lines(self.rgb, box, _SIDES[side]), self.p, colour)
            self.peeled[(_SIDES[side], box)] = n
        return n

    def trim(self, box: Box, max_rounds: int) -> Box:
        """:func:`trim_box` of ``box``."""
        for _ in range(max_rounds):
            moved = False
            for side in range(4):
                left, top, right, bottom = box
                if right - left < 4 or bottom - top < 4:
                    return box
                n = self.peel(box, side)
                if n == 0:
                    continue
                moved = True
                if side == 0:
                    box = (left, top + n, right, bottom)
                elif side == 1:
                    box = (left, top, right, bottom - n)
                elif side == 2:
                    box = (left + n, top, right, bottom)
                else:
                    box = (left, top, right - n, bottom)
            if not moved:
                break
        return box


def trim_box(rgb: np.ndarray, box: Optional[Box] = None, p: Params = DEFAULT, max_rounds: int = 6) -> Box:
    """Box left after peeling uniform bars (borders, letterbox, mats) off the sides of ``rgb``.

    Each side is peeled with the colour of its own outermost line; rounds repeat until nothing
    changes, so nested frames of different colours come off. A side never moves past the middle.
    """
    h, w = rgb.shape[:2]
    return _Peels(rgb, p).trim(box if box is not None else (0, 0, w, h), max_rounds)


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
    image), or None (see ``fill`` in the module docstring)."""
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


def _std_at_least(grey: np.ndarray, min_std: float) -> bool:
    """``float(grey.std()) >= min_std``, decided in exact integers where that cannot differ.

    n² · variance = n · sum(x²) - sum(x)² is an exact integer; numpy's float std is within a
    tiny relative error of it, so only a value next to the threshold needs numpy's own answer."""
    n = grey.size
    if n == 0 or min_std <= 0:
        return float(grey.std()) >= min_std
    acc = np.uint32 if grey.shape[-1] <= 66051 else np.uint64  # a row's sum of squares fits
    s1 = int(np.add.reduce(grey, axis=-1, dtype=acc).sum(dtype=np.uint64))
    s2 = int(np.add.reduce(np.square(grey, dtype=np.uint16), axis=-1, dtype=acc).sum(dtype=np.uint64))  # 255² fits
    spread = n * s2 - s1 * s1
    target = min_std * min_std * n * n
    if abs(spread - target) > 1e-6 * target:
        return spread > target
    return float(grey.std()) >= min_std


def _same(a: Box, b: Box, grey_shape: tuple[int, int], p: Params) -> bool:
    h, w = grey_shape
    tol_x, tol_y = max(2, p.min_trim * w), max(2, p.min_trim * h)
    return all(abs(x - y) <= t for x, y, t in zip(a, b, (tol_x, tol_y, tol_x, tol_y)))


@functools.lru_cache(maxsize=16)
def _loose(p: Params) -> Params:
    """``p`` with the loose flatness threshold (made once: ``dataclasses.replace`` is slow)."""
    return dataclasses.replace(p, flat_range=p.flat_range_loose)


def find_boxes(img: Image.Image, p: Params = DEFAULT) -> list[tuple[str, Box]]:
    """Named crop boxes (in ``img`` pixel coordinates) of the framed regions of ``img``."""
    w, h = img.size
    if w < p.min_side or h < p.min_side:
        return []
    rgb, grey, scale = _analysis_arrays(img, p.analysis_side)
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


def views(img: Image.Image, p: Params = DEFAULT) -> list[tuple[str, Image.Image]]:
    """Extra RGB views of ``img`` to hash: the image with borders/letterbox trimmed (``trim``),
    the photo region of a screenshot-like canvas (``content``), of a smooth fill (``smooth``) and
    in front of a blurred fill (``fill``).
    Empty for an ordinary photo.

    Matches :data:`csadetect.media.hashing.Preprocessor`; use as ``hash_image(data, preprocess=views)``.
    """
    if img.mode != "RGB":
        img = img.convert("RGB")
    return [(name, img.crop(box)) for name, box in find_boxes(img, p)]
