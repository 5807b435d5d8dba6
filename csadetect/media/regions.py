"""Sub-images: straight-edged rectangles inside a picture (a collage cell, a picture-in-picture
inset, a photo on a meme frame or a screenshot), returned as extra query views.

A known picture pasted into a larger unrelated one hashes and embeds like the larger picture, so
neither PDQ nor the embedding finds it; :func:`csadetect.media.preprocess.views` finds a picture
on a *flat* surround (borders, bars, UI), not one pasted over another photo or beside other
pictures. Pasting leaves what photos rarely have: a long, perfectly straight line along which the
picture changes abruptly, on every side that does not lie on the canvas edge. :func:`sub_image_boxes`
looks for those lines and the rectangles they close:

1. On a copy of at most ``analysis_side`` px, a pixel is an *edge* across a row (column) when
   any colour channel differs by at least ``step`` between the line two above and the line one
   below (left/right): two pictures side by side often differ in hue more than in brightness, and a
   thin gutter or a blurred JPEG edge still gives one.
2. Candidate lines: rows (columns) where such edges form a run, gaps of up to ``gap`` px closed,
   over at least ``min_span`` of the width (height), one per ``nms`` lines. The canvas edges are
   lines too.
3. Every rectangle of two candidate rows and two candidate columns, covering ``min_area`` to
   ``max_area`` of the picture, is scored by the share of edge pixels along each of its sides that
   is not a canvas edge (prefix sums, so all rectangles cost one array operation); it needs at
   least one such side, a mean share of ``min_support`` over them and ``min_side_support`` on
   each. More such sides rank higher (a cell closed on all sides beats the half of the canvas that
   one of its lines cuts off), then the larger rectangle.
4. The best-scoring rectangles that overlap no better one by more than ``max_overlap``
   (intersection over union) are kept, at most ``max_views``, with the flat ones dropped.
5. *Insets*: then at most ``inset_views`` smaller rectangle, from ``inset_min_area`` of the
   picture and ``inset_min_side`` of each dimension, whose four sides are all inner lines (over
   ``inset_min_span``) each with ``min_support``: a photo in a messenger bubble or a feed post
   fills only 15-25% of a tall phone screenshot, and its short sides are too short for step 2.
   It only has to differ from the boxes of step 4 by more than ``nms`` lines on a side, as the
   larger box of the photo with its bubble or caption is often among them.
6. The boxes are brought back to full resolution. There each side that is not the canvas edge is moved to the
   line across which the picture changes most, within the two analysis lines its place is known
   to (:func:`refine_box`: a cell cut a few pixels inside the pasted picture, or with a strip of
   its surround, hashes 10-40 PDQ bits from the same picture cut exactly), and a uniform strip
   left on a side (a collage's gutter, a white border round an inset) is peeled off by
   :func:`csadetect.media.preprocess.trim_box`.

An ordinary photo has no line that is straight and abrupt across a third of its width, so it gets
no sub-image and costs only the analysis (~2 ms of one core, ``benchmarks/robustness.md``; 3 in 4
of the benchmark's unframed distractors get none). A sub-image is
one more PDQ hash and one more embedding vector (in the same batched model call as the query's
other views). The switch is ``match.sub_images`` (``csadetect/config/default.yaml``).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import numpy as np
from PIL import Image

from csadetect.media.box import Box, boxes_within
from csadetect.media.pixels import pixels
from csadetect.media.preprocess import DEFAULT as VIEW_DEFAULT, Params as ViewParams, framing, trim_box, views



@dataclasses.dataclass(frozen=True)
class RegionParams:
    """Thresholds; defaults chosen on the development split of benchmarks/bench_robustness.py."""

    analysis_side: int = 256
    step: float = 28.0  # grey-level step across a line that makes an edge pixel
    gap: int = 3  # edge-free px closed inside a run
    min_span: float = 0.3  # a candidate line's run: at least this share of the width/height
    nms: int = 3  # one candidate line per this many lines
    max_lines: int = 14  # candidate rows (columns) kept, by run length
    min_area: float = 0.25  # a sub-image covers at least this share of the picture ...
    max_area: float = 0.85  # ... and at most this share
    min_side: float = 0.3  # and at least this share of each dimension
    min_support: float = 0.8  # mean share of edge pixels along the sides that are not the canvas edge ...
    min_side_support: float = 0.5  # ... and on each of them at least this share
    max_overlap: float = 0.7  # IoU above which the lower-scoring rectangle is dropped
    max_views: int = 4
    min_std: float = 8.0  # grey std below which a rectangle is flat (a UI panel), not a picture
    # insets: a smaller rectangle closed on all four sides (a photo in a messenger bubble or a feed
    # post, under ``min_area`` of a tall screenshot), kept after the rectangles above
    inset_views: int = 1
    inset_min_area: float = 0.1
    inset_min_side: float = 0.2
    inset_min_span: float = 0.2  # its shorter sides are candidate lines only at this span


DEFAULT = RegionParams()


def _small(img: Image.Image, side: int) -> tuple[np.ndarray, float]:
    """(h, w, 3) int16 RGB of ``img`` at <= ``side`` px, and the scale."""
    scale = min(1.0, side / max(img.size))
    small = img if img.mode == "RGB" else img.convert("RGB")
    if scale < 1.0:
        factor = int(1.0 / scale)
        if factor >= 2:  # box-average by a whole factor first: a quarter of the resize's work
            small = small.reduce(factor)
        small = small.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                             Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.int16), scale


def _edges(rgb: np.ndarray, p: RegionParams) -> tuple[np.ndarray, np.ndarray]:
    """(across rows, across columns): boolean maps of the image's shape; ``rows[y, x]`` is an
    abrupt change of any colour channel between lines y-2 and y+1 (a boundary just above line
    y): two pictures side by side often differ in hue more than in brightness."""
    h, w = rgb.shape[:2]
    rows = np.zeros((h, w), bool)
    cols = np.zeros((h, w), bool)
    for c in np.moveaxis(rgb, 2, 0):  # one plane at a time: contiguous, and no reduction over channels
        c = np.ascontiguousarray(c)
        if h > 4:
            rows[2:-1] |= np.abs(c[3:] - c[:-3]) >= p.step
        if w > 4:
            cols[:, 2:-1] |= np.abs(c[:, 3:] - c[:, :-3]) >= p.step
    return rows, cols


def _closed_runs(flags: np.ndarray, gap: int) -> np.ndarray:
    """Per line (row of ``flags``): the longest span from a True to a True with no more than
    ``gap`` False between neighbouring Trues."""
    best = np.zeros(flags.shape[0], np.int32)
    line, col = np.nonzero(flags)  # row-major: by line, then column
    if not len(line):
        return best
    start = np.ones(len(line), bool)
    start[1:] = (line[1:] != line[:-1]) | (col[1:] - col[:-1] > gap + 1)
    starts = np.flatnonzero(start)
    ends = np.append(starts[1:], len(line)) - 1
    length = (col[ends] - col[starts] + 1).astype(np.int32)
    lines = line[starts]  # sorted: the runs of one line are neighbours
    first = np.flatnonzero(np.r_[True, lines[1:] != lines[:-1]])
    best[lines[first]] = np.maximum.reduceat(length, first)
    return best


def _candidates(flags: np.ndarray, length: int, p: RegionParams) -> np.ndarray:
    """Candidate line positions (0 and ``len(flags)`` included): runs over ``min_span``, non-max
    suppressed; a line position y means the boundary just above line y."""
    runs = _closed_runs(flags, p.gap)
    order = np.argsort(-runs, kind="stable")
    keep: list[int] = []
    for y in order:
        if runs[y] < p.min_span * length or len(keep) >= p.max_lines:
            break
        if all(abs(int(y) - k) > p.nms for k in keep):
            keep.append(int(y))
    n = flags.shape[0]
    return np.array(sorted(set(keep) | {0, n}), dtype=np.int64)


def _support(cum: np.ndarray, line: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Share of edge pixels on ``line`` between ``lo`` and ``hi`` (rows of ``cum``: prefix sums
    along the line, one row per line position, with the best of the line and its neighbours)."""
    span = np.maximum(hi - lo, 1)
    return (cum[line, hi] - cum[line, lo]) / span


def _line_cums(flags: np.ndarray) -> np.ndarray:
    """Prefix sums along each line of ``flags`` (one line per row), each line OR-ed with its
    neighbours (a line found one pixel off still scores)."""
    near = flags.copy()
    near[1:] |= flags[:-1]
    near[:-1] |= flags[1:]
    cum = np.zeros((flags.shape[0] + 1, flags.shape[1] + 1), np.float32)
    cum[:-1, 1:] = np.cumsum(near, axis=1)
    return cum


def sub_image_boxes(img: Image.Image, p: RegionParams = DEFAULT) -> list[Box]:
    """Boxes (full-resolution px) of the sub-images of ``img``, best first (see the module docstring)."""
    rgb_small, scale = _small(img, p.analysis_side)
    h, w = rgb_small.shape[:2]
    if h < 16 or w < 16:
        return []
    rows, cols = _edges(rgb_small, p)
    row_cum, col_cum = _line_cums(rows), _line_cums(cols.T)
    chosen: list[Box] = []
    _choose(chosen, rgb_small, rows, cols, row_cum, col_cum, p, p.min_span, p.min_side, p.min_area, p.max_area,
            closed=False, limit=p.max_views)
    if p.inset_views > 0 and p.inset_min_area < p.min_area:
        _choose(chosen, rgb_small, rows, cols, row_cum, col_cum, p, p.inset_min_span, p.inset_min_side,
                p.inset_min_area, p.min_area, closed=True, limit=len(chosen) + p.inset_views)
    if not chosen:
        return []
    inv = 1.0 / scale
    W, H = img.size
    rgb = pixels(img if img.mode == "RGB" else img.convert("RGB"))
    reach = int(np.ceil(2 * inv)) + 1  # a line of the analysis copy is its boundary +- 2 of its px
    out = []
    for x0, y0, x1, y1 in chosen:  # back to full resolution (a canvas edge stays the edge) ...
        box = (round(x0 * inv), round(y0 * inv), W if x1 == w else min(W, round(x1 * inv)),
               H if y1 == h else min(H, round(y1 * inv)))
        box = refine_box(rgb, box, reach)  # ... on the boundary's exact pixel ...
        box = trim_box(rgb, box)  # ... without a gutter or a white border left on a side
        if box not in out:  # two analysis boxes can land on the same pixels
            out.append(box)
    return out


def _choose(chosen: list, rgb_small: np.ndarray, rows: np.ndarray, cols: np.ndarray, row_cum: np.ndarray,
            col_cum: np.ndarray, p: RegionParams, min_span: float, min_side: float, min_area: float,
            max_area: float, closed: bool, limit: int) -> None:
    """Append to ``chosen`` (analysis-copy boxes) the best rectangles of candidate lines over
    ``min_span``, ``min_side`` of each dimension and ``min_area`` (inclusive) to ``max_area``
    (inclusive unless ``closed``) of the picture, that overlap no box already chosen by more than
    ``max_overlap`` and are not flat, until ``chosen`` holds ``limit``. With ``closed`` only
    rectangles none of whose sides is the canvas edge count, each side held to ``min_support``,
    and one only has to differ from the boxes chosen before by more than ``nms`` lines on a side
    (a bubble's picture lies inside the larger box of picture and bubble)."""
    h, w = rgb_small.shape[:2]
    first = len(chosen) if closed else 0  # an inset only has to differ from the earlier boxes
    q = dataclasses.replace(p, min_span=min_span) if min_span != p.min_span else p
    ys = _candidates(rows, w, q)
    xs = _candidates(cols.T, h, q)
    # every (top, bottom, left, right) of candidate lines, as flat arrays
    t, b = np.meshgrid(ys, ys, indexing="ij")
    tb = (t < b) & (b - t >= min_side * h)
    t, b = t[tb], b[tb]
    l, r = np.meshgrid(xs, xs, indexing="ij")
    lr = (l < r) & (r - l >= min_side * w)
    l, r = l[lr], r[lr]
    if not len(t) or not len(l):
        return
    T, L = np.repeat(t, len(l)), np.tile(l, len(t))
    B, R = np.repeat(b, len(l)), np.tile(r, len(t))
    area = (B - T) * (R - L) / float(h * w)
    ok = (area >= min_area) & ((area < max_area) if closed else (area <= max_area))
    if closed:
        ok &= (T > 0) & (L > 0) & (B < h) & (R < w)
    T, B, L, R, area = T[ok], B[ok], L[ok], R[ok], area[ok]
    if not len(T):
        return
    sides = []  # (support, is a real side) per side
    for line, lo, hi, cum, edge in ((T, L, R, row_cum, T == 0), (np.minimum(B, h - 1), L, R, row_cum, B == h),
                                    (L, T, B, col_cum, L == 0), (np.minimum(R, w - 1), T, B, col_cum, R == w)):
        sides.append((_support(cum, line, lo, hi), ~edge))
    real = np.stack([s[1] for s in sides])
    support = np.stack([np.where(s[1], s[0], 1.0) for s in sides])
    n_real = real.sum(axis=0)
    mean = np.where(real, support, 0.0).sum(axis=0) / np.maximum(n_real, 1)
    least = p.min_support if closed else p.min_side_support
    good = (n_real > 0) & (support.min(axis=0) >= least) & (mean >= p.min_support)
    if not good.any():
        return
    # score: the real sides' mean support, then more real sides (a cell closed on all sides beats
    # the half of the canvas one of its lines cuts off), then the larger rectangle
    score = mean + 0.05 * n_real + 0.01 * area
    idx = np.flatnonzero(good)
    idx = idx[np.argsort(-score[idx], kind="stable")]
    for i in idx:
        if len(chosen) >= limit:
            break
        box = (int(L[i]), int(T[i]), int(R[i]), int(B[i]))
        if any(_iou(box, c) > p.max_overlap for c in chosen[first:]) or any(
                boxes_within(box, c, p.nms, p.nms) for c in chosen[:first]):
            continue
        if float(rgb_small[box[1]:box[3], box[0]:box[2]].std()) < p.min_std:
            continue
        chosen.append(box)


def refine_box(rgb: np.ndarray, box: Box, reach: int) -> Box:
    """``box`` with each side that is not the canvas edge moved, within ``reach`` px, to the line
    across which the picture changes most (the mean, over at most ~256 points along the side, of
    the largest channel step between neighbouring lines). The analysis copy places a boundary to
    about two of its own pixels (the edge test spans three lines), which is up to ``2 / scale``
    px of the full picture: a PDQ hash of a sub-image cut that far inside it (or with a strip of
    the canvas) is 10-40 bits from the same picture cut exactly."""
    H, W = rgb.shape[:2]
    left, top, right, bottom = box
    if reach < 1 or right - left <= 2 * reach or bottom - top <= 2 * reach:
        return box

    def best(k: int, limit: int, lo: int, hi: int, across_rows: bool) -> int:
        first, last = max(1, k - reach), min(limit - 1, k + reach)
        if not first <= k <= last:
            return k
        # lines first-1 .. last, every ``step``-th pixel along the side (at most ~256 of them)
        step = max(1, (hi - lo) // 256)
        if across_rows:
            block = rgb[first - 1: last + 1, lo:hi:step, :3]
        else:
            block = rgb[lo:hi:step, first - 1: last + 1, :3].transpose(1, 0, 2)
        d = np.abs(np.diff(block.astype(np.int16), axis=0))  # line j's step from line j-1
        s = np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2]).mean(axis=1)
        i = int(np.argmax(s))
        return first + i if s[i] > s[k - first] else k

    # the sides are measured over the box's inner span (its corners may be rounded or shared)
    xl, xh = left + reach, right - reach
    yl, yh = top + reach, bottom - reach
    new_top = best(top, H, xl, xh, True) if top > 0 else top
    new_bottom = best(bottom, H, xl, xh, True) if bottom < H else bottom
    new_left = best(left, W, yl, yh, False) if left > 0 else left
    new_right = best(right, W, yl, yh, False) if right < W else right
    if new_right - new_left < 2 or new_bottom - new_top < 2:
        return box
    return new_left, new_top, new_right, new_bottom


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def sub_images(img: Image.Image, p: RegionParams = DEFAULT) -> list[tuple[str, Image.Image]]:
    """``("cell", crop)`` for each of :func:`sub_image_boxes`, best first."""
    return [("cell", img.crop(box)) for box in sub_image_boxes(img, p)]


def views_and_sub_images(img: Image.Image, p: ViewParams = VIEW_DEFAULT) -> list[tuple[str, Image.Image]]:
    """:func:`csadetect.media.preprocess.views` (with ``p``), then each :func:`sub_images` that is
    not the same crop as one of them (:func:`same_box`: the photo of a meme frame is found by
    both). A cell the size of a view but elsewhere, or cut more exactly (a screenshot's content
    view that keeps a strip of the bubble round the photo), is kept."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    boxes, found = framing(img, p)  # found = views(img, p)
    for box in sub_image_boxes(img):
        if not any(same_box(box, b) for _, b in boxes):
            found.append(("cell", img.crop(box)))
    return found


def same_box(a: Box, b: Box, share: float = 0.01, least: int = 2) -> bool:
    """Whether every side of ``a`` is within ``share`` of its dimension (at least ``least`` px)
    of the same side of ``b``."""
    return boxes_within(a, b, max(least, share * (a[2] - a[0])), max(least, share * (a[3] - a[1])))


@functools.lru_cache(maxsize=4)
def view_params(fill_view: bool = True, tilt_view: bool = True) -> ViewParams:
    """csadetect.media.preprocess's thresholds with the fill view (``match.fill_view``) and the
    tilt view (``match.tilt_view``) on or off."""
    if fill_view and tilt_view:
        return VIEW_DEFAULT
    return dataclasses.replace(VIEW_DEFAULT, fill_share=VIEW_DEFAULT.fill_share if fill_view else 0.0,
                               tilt_min_deg=VIEW_DEFAULT.tilt_min_deg if tilt_view else 0.0)


def preprocessor(match) -> Optional[Callable[[Image.Image], list]]:
    """The query-side views ``match`` (:class:`csadetect.config.settings.MatchSettings`) asks for:
    ``preprocess`` and ``sub_images`` -> :func:`views_and_sub_images`; ``preprocess`` alone ->
    ``views``; ``sub_images`` alone -> :func:`sub_images`; neither -> None. With ``fill_view`` or
    ``tilt_view`` off, the views are looked for without that view (:func:`view_params`)."""
    if match.preprocess:
        found = views_and_sub_images if match.sub_images else views
        p = view_params(match.fill_view, match.tilt_view)
        return found if p is VIEW_DEFAULT else functools.partial(found, p=p)
    return sub_images if match.sub_images else None
