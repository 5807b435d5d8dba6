"""Static overlays on a video (a channel logo, a watermark box): found once per video, painted out
for one more hash of each frame, so vPDQ finds the picture under them.

A small opaque box over the picture moves PDQ far more than its size suggests: a 48x24 white logo
over the middle of a 640x360 picture costs 30-80 bits per frame, past the 31-bit threshold, while
the same frames with the box painted out from its surroundings come back within 4-30 bits of the
original (``benchmarks/video.md``). PDQ sees the low frequencies of the whole frame, and a bright
block is one.

An overlay is what stays put while the picture under it changes. :class:`VideoOverlays` samples
each key frame's grey levels on a coarse grid (about :data:`GRID` cells on the long side; a pixel
per cell, standard library only, so the decoder still starts without numpy) for the first
:data:`FRAMES` key frames, and keeps, inside the picture (the video's content box when it has
bars), the groups of cells that stayed still over those frames (within :data:`STILL` grey levels,
or :data:`STILL_SHARE` of the upper quartile of the picture's ranges: a semi-opaque logo lets some of the picture
through) while most of the cells around them moved (by :data:`MOVED`, or twice the still limit). A group counts when its bounding box
is at most :data:`MAX_AREA` of the picture and at least :data:`MIN_CELLS` cells; a video whose
picture hardly moves (a still, a slide show, a fade alone) has none, and neither has a frame of
moving picture with nothing static on it. At most :data:`MAX_BOXES` groups, the largest first.

:func:`paint_out` then fills each box, widened by a cell on each side, from the pixels around it
(the mean of the vertical and the horizontal linear interpolation between its outer rows and
columns). The decoder (:mod:`csadetect.media.vpdq_worker`, ``match.video_overlays``) hashes such a
frame a third time, marked ``cleaned``; a frame counts as found when any of its hashes is
(:func:`csadetect.signals.vpdq.frame_groups`), so the whole and cropped hashes match as before.
Only uploads get the extra hash: an indicator made from media keeps the hashes it kept before
(:meth:`csadetect.signals.vpdq.VpdqSignal.indicator_values`), so a logo on a known video is not
painted out on the indicator side (the upload without the logo still has to come within the
threshold of the logo'd frames, as before).
"""
from __future__ import annotations

from typing import Optional

Box = tuple[int, int, int, int]  # (left, top, right, bottom) in frame pixels, right/bottom exclusive

GRID = 128  # cells on the frame's long side
FRAMES = 8  # key frames looked at (the window the bar finder looks at too)
MIN_FRAMES = 3  # fewer frames that are not flat say nothing
STILL = 12  # a cell whose grey level stays within this range over the frames is still ...
STILL_SHARE = 0.2  # ... or within this share of the upper quartile of the picture's ranges (a semi-opaque logo lets a little through)
MOVED = 24  # a cell whose grey level ranges this much (or twice the still limit) or more has moved
RING = 2  # cells around a group's bounding box that must mostly have moved ...
RING_MOVED = 0.6  # ... this share of them
MIN_CELLS = 4  # a group of fewer still cells is noise
MAX_AREA = 0.04  # a group's bounding box covers at most this share of the picture's cells
MAX_BOXES = 8  # (a flat patch of the scene that a pan keeps in place can count too: it must not crowd a logo out)
MIN_STD = 4.0  # a frame whose sampled grey levels spread less than this is flat (black, a fade)


class VideoOverlays:
    """Feed it key frames (RGB24 bytes, ``width`` x ``height``) until :attr:`settled`, then
    :meth:`boxes` with the video's content box (or None for the whole frame)."""

    def __init__(self, width: int, height: int, frames: int = FRAMES):
        self.width, self.height = width, height
        self.step = max(1, -(-max(width, height) // GRID))
        self.cols, self.rows = -(-width // self.step), -(-height // self.step)
        self.limit = frames
        self.seen = 0
        self.low: Optional[list[int]] = None  # per cell, the least and the largest grey level so far
        self.high: Optional[list[int]] = None
        self.used = 0  # frames that were not flat

    @property
    def settled(self) -> bool:
        return self.seen >= self.limit

    def _sample(self, pixels: bytes) -> list[int]:
        """Grey level (ITU-R 601, integer) of the pixel at the middle of each cell, row by row."""
        s, w, half = self.step, self.width, self.step // 2
        out = []
        for cy in range(self.rows):
            y = min(cy * s + half, self.height - 1)
            base = y * w * 3
            for cx in range(self.cols):
                i = base + 3 * min(cx * s + half, w - 1)
                out.append((299 * pixels[i] + 587 * pixels[i + 1] + 114 * pixels[i + 2]) // 1000)
        return out

    def add(self, pixels: bytes) -> None:
        if self.settled:
            return
        self.seen += 1
        grey = self._sample(pixels)
        n = len(grey)
        mean = sum(grey) / n
        if (sum((g - mean) ** 2 for g in grey) / n) ** 0.5 < MIN_STD:
            return  # flat: says nothing
        self.used += 1
        if self.low is None:
            self.low, self.high = list(grey), list(grey)
            return
        low, high = self.low, self.high
        for i, g in enumerate(grey):
            if g < low[i]:
                low[i] = g
            elif g > high[i]:
                high[i] = g

    def boxes(self, content: Optional[Box] = None) -> list[Box]:
        """The static overlays inside ``content`` (frame pixels; None: the whole frame), as boxes
        in frame pixels widened by a cell, largest first; empty when there are none or too few
        frames were seen."""
        if self.used < MIN_FRAMES or self.low is None:
            return []
        s, cols = self.step, self.cols
        left, top, right, bottom = content or (0, 0, self.width, self.height)
        # the cells wholly inside the picture, a cell in from its edge (a bar's edge is not an overlay)
        x0, y0 = -(-left // s) + 1, -(-top // s) + 1
        x1, y1 = min(right // s, cols) - 1, min(bottom // s, self.rows) - 1
        if x1 - x0 < 4 or y1 - y0 < 4:
            return []
        span = [h - l for l, h in zip(self.low, self.high)]
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
            box = (max(left, (gx0 - 1) * s), max(top, (gy0 - 1) * s),
                   min(right, (gx1 + 1) * s), min(bottom, (gy1 + 1) * s))
            found.append(((gx1 - gx0) * (gy1 - gy0), box))
        found.sort(key=lambda item: (-item[0], item[1]))
        return [box for _, box in found[:MAX_BOXES]]


def paint_out(pixels: bytes, width: int, height: int, boxes: list[Box]) -> bytes:
    """RGB24 ``pixels`` (``width`` x ``height``) with each box (in these pixels) filled from the
    row above and below it and the column left and right of it: per pixel, the mean of the
    vertical and the horizontal linear interpolation. A box side on the frame's edge takes the
    opposite side's line."""
    out = bytearray(pixels)
    stride = 3 * width
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
        row_a = pixels[above * stride + 3 * left: above * stride + 3 * right]
        row_b = pixels[below * stride + 3 * left: below * stride + 3 * right]
        for j in range(bh):
            y = top + j
            fy = (j + 1) / (bh + 1)
            col_a = pixels[y * stride + 3 * before: y * stride + 3 * before + 3]
            col_b = pixels[y * stride + 3 * after: y * stride + 3 * after + 3]
            line = bytearray(3 * bw)
            for i in range(bw):
                fx = (i + 1) / (bw + 1)
                for c in range(3):
                    k = 3 * i + c
                    vertical = row_a[k] + (row_b[k] - row_a[k]) * fy
                    horizontal = col_a[c] + (col_b[c] - col_a[c]) * fx
                    line[k] = int((vertical + horizontal) * 0.5 + 0.5)
            out[y * stride + 3 * left: y * stride + 3 * right] = line
    return bytes(out)
