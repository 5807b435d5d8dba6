"""Static overlays on a video (a channel logo, a watermark box): found once per video, painted out
for one more hash of each frame, so vPDQ finds the picture under them.

A small opaque box over the picture moves PDQ far more than its size suggests: a 48x24 white logo
over the middle of a 640x360 picture costs 30-80 bits per frame, past the 31-bit threshold, while
the same frames with the box painted out from its surroundings come back within 4-30 bits of the
original (``benchmarks/video.md``). PDQ sees the low frequencies of the whole frame, and a bright
block is one.

An overlay is what stays put while the picture under it changes. :class:`VideoOverlays` samples
each key frame's grey levels on a coarse grid (:class:`csadetect.media.frame_grid.GreyGrid`, a pixel
per cell, standard library only: the decoder still starts without numpy) for the first
:data:`FRAMES` key frames. Inside the picture (the video's content box when it has bars) it keeps
the groups of cells that

* stayed still over those frames: within :data:`STILL` grey levels, or :data:`STILL_SHARE` of the
  upper quartile of the picture's ranges (a semi-opaque logo lets some of the picture through);
* with most of the cells around them moved (:data:`RING_MOVED`; by :data:`MOVED`, or twice the
  still limit);
* behind an edge that stays put: :data:`EDGE_SHARE` of the pairs of a group's cell and a moving
  neighbour differ by :data:`EDGE` grey levels in every frame (a flat patch of the scene that a pan
  keeps over the same cells passes its colour over its neighbours as its edge moves);
* of at least :data:`MIN_CELLS` cells, with a bounding box of at most :data:`MAX_AREA` of the picture.

A video whose picture hardly moves (a still, a slide show, a fade alone) has none, and neither has
moving picture with nothing static on it. At most :data:`MAX_BOXES` groups, the largest first.

:func:`paint_out` then fills each box, widened by a cell on each side, from the pixels around it
(the mean of the vertical and the horizontal linear interpolation between its outer rows and
columns; numpy, imported only for a video that has overlays). The decoder (:mod:`csadetect.media.vpdq_worker`, ``match.video_overlays``) hashes such a
frame a third time, marked ``cleaned``; a frame counts as found when any of its hashes is
(:func:`csadetect.signals.vpdq.frame_groups`), so the whole and cropped hashes match as before.
Only uploads get the extra hash: an indicator made from media keeps the hashes it kept before
(:meth:`csadetect.signals.vpdq.VpdqSignal.indicator_values`), so a logo on a known video is not
painted out on the indicator side (the upload without the logo still has to come within the
threshold of the logo'd frames, as before).
"""
from __future__ import annotations

from typing import Optional

from csadetect.media.box import Box  # in frame pixels
from csadetect.media.frame_grid import FRAMES, GreyGrid

MIN_FRAMES = 3  # fewer frames that are not flat say nothing
STILL = 12  # a cell whose grey level stays within this range over the frames is still ...
STILL_SHARE = 0.2  # ... or within this share of the upper quartile of the picture's ranges (a semi-opaque logo lets a little through)
MOVED = 24  # a cell whose grey level ranges this much (or twice the still limit) or more has moved
RING = 2  # cells around a group's bounding box that must mostly have moved ...
RING_MOVED = 0.6  # ... this share of them
EDGE = 16  # a group's edge: a still cell and a moving neighbour that differ by this much ...
EDGE_SHARE = 0.5  # ... in every frame looked at, for this share of the group's edge (a logo's edge stays put)
MIN_CELLS = 4  # a group of fewer still cells is noise
MAX_AREA = 0.04  # a group's bounding box covers at most this share of the picture's cells
MAX_BOXES = 8


class VideoOverlays:
    """Feed it key frames (RGB24 bytes, ``width`` x ``height``) until :attr:`settled`, then
    :meth:`boxes` with the video's content box (or None for the whole frame). ``grid``: the bar
    finder's :class:`~csadetect.media.frame_grid.GreyGrid` of the same frames, to sample them once."""

    def __init__(self, width: int, height: int, frames: int = FRAMES, grid: Optional[GreyGrid] = None):
        self.grid = grid or GreyGrid(width, height, frames)
        self.shared = grid is not None  # fed by its owner
        self.width, self.height = width, height
        self.step, self.cols, self.rows = self.grid.step, self.grid.cols, self.grid.rows

    @property
    def settled(self) -> bool:
        return self.grid.settled

    def add(self, pixels: bytes) -> None:
        if not self.shared:
            self.grid.add(pixels)

    def boxes(self, content: Optional[Box] = None) -> list[Box]:
        """The static overlays inside ``content`` (frame pixels; None: the whole frame), as boxes
        in frame pixels widened by a cell, largest first; empty when there are none or too few
        frames were seen."""
        if self.grid.used < MIN_FRAMES:
            return []
        s, cols = self.step, self.cols
        left, top, right, bottom = content or (0, 0, self.width, self.height)
        # the cells wholly inside the picture, a cell in from its edge (a bar's edge is not an overlay)
        x0, y0 = -(-left // s) + 1, -(-top // s) + 1
        x1, y1 = min(right // s, cols) - 1, min(bottom // s, self.rows) - 1
        if x1 - x0 < 4 or y1 - y0 < 4:
            return []
        span = self.grid.spans()
        inside = sorted(span[y * cols + x] for y in range(y0, y1) for x in range(x0, x1))
        still_limit = max(STILL, STILL_SHARE * inside[3 * len(inside) // 4])
        moved = max(MOVED, 2 * still_limit)
        still = {(x, y) for y in range(y0, y1) for x in range(x0, x1) if span[y * cols + x] <= still_limit}
        picture_cells = (x1 - x0) * (y1 - y0)
        found = []
        while still:
            group, todo = [], [still.pop()]
            while todo:  # 4-connected flood fill
                x, y = todo.pop()
                group.append((x, y))
                for n in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                    if n in still:
                        still.remove(n)
                        todo.append(n)
            gx0, gx1 = min(x for x, _ in group), max(x for x, _ in group) + 1
            gy0, gy1 = min(y for _, y in group), max(y for _, y in group) + 1
            if len(group) < MIN_CELLS or (gx1 - gx0) * (gy1 - gy0) > MAX_AREA * picture_cells:
                continue
            ring = [span[y * cols + x] for y in range(max(y0, gy0 - RING), min(y1, gy1 + RING))
                    for x in range(max(x0, gx0 - RING), min(x1, gx1 + RING))
                    if not (gx0 <= x < gx1 and gy0 <= y < gy1)]
            if not ring or sum(v >= moved for v in ring) < RING_MOVED * len(ring):
                continue
            if not self._edge_stays(group, span, moved):
                continue
            box = (max(left, (gx0 - 1) * s), max(top, (gy0 - 1) * s),
                   min(right, (gx1 + 1) * s), min(bottom, (gy1 + 1) * s))
            found.append(((gx1 - gx0) * (gy1 - gy0), box))
        found.sort(key=lambda item: (-item[0], item[1]))
        return [box for _, box in found[:MAX_BOXES]]

    def _edge_stays(self, group: list[tuple[int, int]], span: list[int], moved: float) -> bool:
        """Whether the group's edge stays put: for EDGE_SHARE of the pairs (a cell of the group, a
        neighbour that moved), the two differ by EDGE or more in every frame. A logo has such an
        edge; a flat patch of the scene that a pan keeps over the same cells does not (the patch's
        own colour passes over the neighbours as its edge moves)."""
        cols, cells = self.cols, set(group)
        pairs = [(y * cols + x, ny * cols + nx) for x, y in group
                 for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1))
                 if (nx, ny) not in cells and 0 <= nx < cols and 0 <= ny < self.rows and span[ny * cols + nx] >= moved]
        if not pairs:
            return False
        kept = sum(1 for a, b in pairs if all(abs(grid[a] - grid[b]) >= EDGE for grid in self.grid.grids))
        return kept >= EDGE_SHARE * len(pairs)


def paint_out(pixels: bytes, width: int, height: int, boxes: list[Box]) -> bytes:
    """RGB24 ``pixels`` (``width`` x ``height``) with each box (in these pixels) filled from the
    row above and below it and the column left and right of it: per pixel, the mean of the
    vertical and the horizontal linear interpolation. A box side on the frame's edge takes the
    opposite side's line. numpy is imported here, only for a video that has overlays."""
    import numpy as np  # lazy: the decoder starts without numpy

    frame = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, 3).copy()
    for left, top, right, bottom in boxes:
        left, top = max(0, left), max(0, top)
        right, bottom = min(width, right), min(height, bottom)
        bw, bh = right - left, bottom - top
        if bw <= 0 or bh <= 0:
            continue
        above = top - 1 if top > 0 else min(bottom, height - 1)
        below = bottom if bottom < height else max(top - 1, 0)
        before = left - 1 if left > 0 else min(right, width - 1)
        after = right if right < width else max(left - 1, 0)
        row_a = frame[above, left:right].astype(np.float32)[None]  # (1, bw, 3)
        row_b = frame[below, left:right].astype(np.float32)[None]
        col_a = frame[top:bottom, before].astype(np.float32)[:, None]  # (bh, 1, 3)
        col_b = frame[top:bottom, after].astype(np.float32)[:, None]
        fy = ((np.arange(bh, dtype=np.float32) + 1) / (bh + 1))[:, None, None]
        fx = ((np.arange(bw, dtype=np.float32) + 1) / (bw + 1))[None, :, None]
        vertical = row_a + (row_b - row_a) * fy
        horizontal = col_a + (col_b - col_a) * fx
        frame[top:bottom, left:right] = np.floor((vertical + horizontal) * 0.5 + 0.5).astype(np.uint8)
    return frame.tobytes()
