"""Letterbox and pillarbox bars of a video, found once per video, so vPDQ hashes the picture inside.

A 16:9 clip re-encoded at 4:3 with black bars, or a portrait phone clip padded to landscape, hashes
far from the original frame by frame (PDQ sees the whole frame: Meta's ``pattern-hd-no-bar`` and
``pattern-sd-grey-bar`` are 80-95 bits apart). The decoder process (:mod:`csadetect.media.vpdq_worker`)
therefore crops every hashed frame to the video's content box when it has bars, on the indicator
side and the query side alike (``match.video_bars``).

The box is settled per video, not per frame: bars are constant, while a dark scene, a fade or a
title card would be cut down wrongly by a per-frame finder. :class:`VideoBars` looks at the first
:data:`FRAMES` key frames (fewer for very large frames, :data:`MAX_BYTES`). Each frame's own box
is :func:`csadetect.media.preprocess.trim_box` (the still-image bar peeler: uniform lines of any
colour, a stray logo pixel tolerated, a sharp edge required) on the frame subsampled to about
:data:`ANALYSIS_SIDE` px, with its edge test looser (:data:`EDGE_UNLIKE`) and run twice, the second
time on the frame turned half round, so that a pair of bars each wider than a third of the frame
comes off too. A flat frame (a fade to black) says nothing. The candidates are the frames' boxes
that trim :data:`MIN_TRIM` of a side and keep :data:`MIN_AREA` of the frame; the video's box is
their union when at least :data:`AGREE` of them are that union (within a few px), and when at
least :data:`AGREE` of all frames that are not flat show bars (uniform strips) outside it: a title
card or a dark scene between the bars does, a frame with picture there does not. Otherwise the
frames are hashed whole, as before (:meth:`VideoBars.box`).

Still bars: the peeler needs a sharp edge between bar and picture in a single frame, so a grey bar
beside a greyish picture edge is not peeled. When the peeler finds no box, the bars are told by
time instead (:meth:`VideoBars.still_box`): on the key frames' coarse grid of grey levels
(:class:`csadetect.media.frame_grid.GreyGrid`, shared with the overlay finder), the lines of cells
at each side that stay within :data:`STILL_BAR` grey levels over the frames and are one grey in
each (:meth:`VideoBars.still_lines`; a logo or watermark on 1 - :data:`LINE_FRAC` of a line's
cells tolerated, as the peeler tolerates one), while the picture inside moves. When the peeler
finds some sides and not others (a grey pad whose top edge is sharp and whose bottom edge is
not), the still lines complete the sides it left whole, provided they agree with every side it
found (:meth:`VideoBars.completed`): the peeled bars show the video has bars, so the picture
need not move much.

Blurred fills (the "blur background" of short-video apps: the picture centred on a blurred, zoomed
copy of itself, which changes with every frame) are found the same way with the still-image fill
finder, :func:`csadetect.media.preprocess.fill_box`, on frames whose outer lines are not uniform
but have (almost) no sharp pixels on two opposite sides (:func:`outer_blurred`, standard library
only); the strips outside the video's box must then be blurred in most frames rather than uniform.

Start-up cost: the decoder process does not import numpy unless it must. :func:`outer_uniform`
(standard library only) runs the first test of ``trim_box`` (is the outermost line of a side
uniform?) on exactly the pixels ``trim_box`` would test; a frame where no side passes it has no
bar, and when no frame of the window passes it, numpy and the peeler are never loaded.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from csadetect.media.box import Box
from csadetect.media.frame_grid import FRAMES, GreyGrid  # FRAMES: key frames looked at per video


MAX_BYTES = 96 << 20  # at most this much RGB of the FRAMES key frames held (the key-frame decoder holds them until the box is known)
ANALYSIS_SIDE = 512  # frames are subsampled to about this long side for the peeler (what it was tuned at)
MIN_AREA = 0.25  # a frame's box smaller than this share of the frame says nothing about bars
MIN_TRIM = 0.02  # the box must trim at least this share of a side to count as bars
AGREE = 0.5  # share of the informative frames whose own box must be the video's box
# the first test of trim_box (preprocess.Params: tol, line_frac), kept equal by tests/test_video_bars.py
TOL, LINE_FRAC = 24, 0.95
MIN_STD = 4.0  # grey standard deviation below which a frame is flat (preprocess.Params.min_std)
# the peeler's one threshold changed for video: the share of the picture's first line that must
# differ from the bar colour (0.5 for stills). A grey bar beside a grey wall has a third of that
# line unlike it (Meta's chair footage padded with grey, development clips); the video's consensus
# below guards what a single still could not.
EDGE_UNLIKE = 0.3
# still bars (the fallback when the peeler finds none): lines of grid cells at a side that stay
# within STILL_BAR grey levels over the frames and are one grey (within TOL of their median in each
# frame), while the picture inside moves (its cells' median range at least MOVED_INSIDE)
STILL_BAR = 8
MOVED_INSIDE = 24
MIN_STILL_FRAMES = 3


def _uniform(channels: list[bytes]) -> bool:
    """``preprocess._uniform`` of one line given as its three channels: are >= LINE_FRAC of its
    pixels within TOL (each channel) of the line's median colour?"""
    n = len(channels[0])
    if n == 0:
        return False
    lo, hi = (n - 1) // 2, n // 2
    r, g, b = ((s[lo] + s[hi]) // 2 for s in map(sorted, channels))
    near = sum(1 for x, y, z in zip(*channels) if abs(x - r) <= TOL and abs(y - g) <= TOL and abs(z - b) <= TOL)
    return near >= LINE_FRAC * n


FILL_STEP, FILL_SHARE = 6, 0.02  # preprocess.Params.fill_step / fill_share: a blurred line, kept equal by the tests


def _blurred(grey: list[int]) -> bool:
    """Whether fewer than FILL_SHARE of the inner pixels of a line (grey levels) have a second
    difference along the line above FILL_STEP."""
    n = len(grey) - 2
    if n <= 0:
        return False
    sharp = sum(1 for i in range(1, n + 1) if abs(grey[i - 1] + grey[i + 1] - 2 * grey[i]) > FILL_STEP)
    return sharp < FILL_SHARE * n


def outer_blurred(pixels: bytes, width: int, height: int, step: int) -> bool:
    """Whether the outermost rows, or the outermost columns, of the frame subsampled by ``step`` are
    both blurred along their length (:func:`_blurred`): a frame that may be in front of a fill."""
    stride = width * 3
    last_row = (height - 1) // step * step
    last_col = (width - 1) // step * step

    def grey(r: bytes, g: bytes, b: bytes) -> list[int]:
        return [(299 * x + 587 * y + 114 * z) // 1000 for x, y, z in zip(r, g, b)]

    def row(y: int) -> list[int]:  # every step-th pixel of row y, channel by channel (as outer_uniform slices)
        start = y * stride
        return grey(*(pixels[start + c: start + stride: 3 * step] for c in range(3)))

    def col(x: int) -> list[int]:
        return grey(*(pixels[3 * x + c:: stride * step] for c in range(3)))

    return (_blurred(row(0)) and _blurred(row(last_row))) or (_blurred(col(0)) and _blurred(col(last_col)))


def outer_uniform(pixels: bytes, width: int, height: int, step: int) -> bool:
    """Whether the outermost line of any side of the frame subsampled by ``step`` (rows and columns)
    is uniform, tested on the pixels ``trim_box`` tests (every other pixel along the line)."""
    stride, along = width * 3, 2 * step
    last_row = (height - 1) // step * step
    last_col = (width - 1) // step * step
    for y in (0, last_row):
        start = y * stride
        if _uniform([pixels[start + c: start + stride: 3 * along] for c in range(3)]):
            return True
    for x in (0, last_col):
        if _uniform([pixels[3 * x + c:: stride * along] for c in range(3)]):
            return True
    return False


def window(width: int, height: int, frames: int = FRAMES, max_bytes: int = MAX_BYTES) -> int:
    """How many key frames a finder looks at: ``frames``, fewer when holding them (RGB24, the
    decoder holds them until the finders have settled) would pass ``max_bytes``; at least 2."""
    return max(2, min(frames, max_bytes // max(width * height * 3, 1)))


class VideoBars:
    """The bars of one video from its first frames: :meth:`add` each decoded key frame (RGB24,
    ``width`` x ``height``) until :attr:`settled`, then :meth:`box`."""

    def __init__(self, width: int, height: int, frames: int = FRAMES, max_bytes: int = MAX_BYTES):
        self.width, self.height = width, height
        self.step = max(1, -(-max(width, height) // ANALYSIS_SIDE))
        self.limit = window(width, height, frames, max_bytes)
        self.grid = GreyGrid(width, height, self.limit)  # the frames over time, for still bars
        # per frame looked at: its box (None when flat) and its subsampled pixels (None when no
        # side's outer line is uniform: a frame with no bars)
        self.frames: list[tuple[Optional[Box], object]] = []

    @property
    def settled(self) -> bool:
        return len(self.frames) >= self.limit

    def add(self, pixels: bytes) -> None:
        if not self.settled:
            self.frames.append(self._frame_box(pixels))
            self.grid.add(pixels)

    def _frame_box(self, pixels: bytes) -> tuple[Optional[Box], object]:
        uniform = outer_uniform(pixels, self.width, self.height, self.step)
        blurred = outer_blurred(pixels, self.width, self.height, self.step)
        if not uniform and not blurred:
            return (0, 0, self.width, self.height), None  # no side can be peeled: trim_box keeps it whole
        import numpy as np  # lazy: only for a frame with a uniform edge (the decoder starts without numpy)

        from csadetect.media.preprocess import DEFAULT, trim_box  # lazy: it imports numpy and PIL

        params = dataclasses.replace(DEFAULT, edge_unlike=EDGE_UNLIKE)

        s = self.step
        rgb = np.ascontiguousarray(np.frombuffer(pixels, dtype=np.uint8).reshape(self.height, self.width, 3)[::s, ::s])
        grey = _grey(rgb)
        if float(grey.std()) < MIN_STD:
            return None, None  # a flat frame (black, a fade): no evidence either way
        h, w = rgb.shape[:2]
        full = (0, 0, self.width, self.height)
        if not uniform:  # no bar, perhaps a blurred fill: the still-image fill finder on this frame
            return self._fill_box(rgb, grey) or full, rgb
        # trim_box peels a side only up to the middle of what is left, so after one bar of a wide
        # pair (a 16:9 picture in a 9:16 frame: each bar a third of the height) the other is past
        # it; peeled again turned half round, each side of the pair comes off first once
        a, b = trim_box(rgb, p=params), trim_box(np.ascontiguousarray(rgb[::-1, ::-1]), p=params)
        left, top, right, bottom = max(a[0], w - b[2]), max(a[1], h - b[3]), min(a[2], w - b[0]), min(a[3], h - b[1])
        box = (left * s, top * s, min(self.width, right * s), min(self.height, bottom * s))
        if blurred:
            # a smooth fill can pass the uniform test and then peel on one side only, or not at all:
            # the fill finder's box, when it lies inside the peeled one, is the better answer
            fill = self._fill_box(rgb, grey)
            if fill is not None and fill[0] >= box[0] and fill[1] >= box[1] and fill[2] <= box[2] and fill[3] <= box[3]:
                return fill, rgb
        return box, rgb

    def picture_box(self, pixels: bytes) -> Optional[Box]:
        """One frame's own box, as a still picture's bars would be trimmed (:meth:`_frame_box`,
        the peeler or the fill finder), when it is a candidate as :meth:`peeled_box` counts one
        (it trims MIN_TRIM of a side and keeps MIN_AREA of the frame); else None. Not the video's
        box, which stays settled per video: this is for looking each frame up among known
        *pictures* (the decoder's ``framed`` view), where the picture may change its bars from
        frame to frame (a slideshow of pictures of several shapes). The frame is not added."""
        box, _ = self._frame_box(pixels)
        return box if box is not None and self._candidate(box) else None

    def _candidate(self, box: Box) -> bool:
        """Whether ``box`` is one of bars: it trims MIN_TRIM of a side and keeps MIN_AREA of the frame."""
        area = (box[2] - box[0]) * (box[3] - box[1])
        return area >= MIN_AREA * self.width * self.height and self._trims(box) >= MIN_TRIM

    def _fill_box(self, rgb, grey) -> Optional[Box]:
        """:func:`csadetect.media.preprocess.fill_box` of the subsampled frame, in frame pixels."""
        import numpy as np  # lazy: as in _frame_box

        from csadetect.media.preprocess import DEFAULT, fill_box  # lazy: as in _frame_box

        box = fill_box(rgb, grey.round().astype(np.uint8), None, DEFAULT)
        if box is None:
            return None
        s = self.step
        return box[0] * s, box[1] * s, min(self.width, box[2] * s), min(self.height, box[3] * s)

    def _trims(self, box: Box) -> float:
        w, h = self.width, self.height
        return max(box[0] / w, box[1] / h, (w - box[2]) / w, (h - box[3]) / h)

    def box(self) -> Optional[Box]:
        """The video's content box, or None when it has no bars (or the frames do not agree):
        the peeled box (:meth:`peeled_box`) with the sides it left whole completed by the still
        lines (:meth:`completed`), else the still one (:meth:`still_box`)."""
        peeled = self.peeled_box()
        return self.completed(peeled) if peeled is not None else self.still_box()

    def completed(self, peeled: Box) -> Box:
        """``peeled`` with each side it trims less than the still lines do (:meth:`still_lines`)
        moved in to them, when the still lines agree with every side the peeler did find (within
        a grid cell). The peeler needs a sharp bar edge in a single frame, so of a grey pad
        around a greyish picture it can find one side and not the other (Meta's ``doorknob``
        padded with grey: the top bar in some frames, the bottom one in one frame of four or
        none). The still lines need no edge but a picture that moves, to tell a bar from a still
        part of the picture (:meth:`still_box`); a peeled side that they find too shows the bars
        are there, so the picture's motion is not asked for."""
        still = self.still_lines()
        if still is None:
            return peeled
        w, h = self.width, self.height
        slack = self.grid.step
        trimmed = [peeled[0] > 0, peeled[1] > 0, peeled[2] < w, peeled[3] < h]
        if any(t and abs(p - q) > slack for t, p, q in zip(trimmed, peeled, still)):
            return peeled
        box = (peeled[0] if trimmed[0] else max(peeled[0], still[0]),
               peeled[1] if trimmed[1] else max(peeled[1], still[1]),
               peeled[2] if trimmed[2] else min(peeled[2], still[2]),
               peeled[3] if trimmed[3] else min(peeled[3], still[3]))
        if (box[2] - box[0]) * (box[3] - box[1]) < MIN_AREA * w * h:
            return peeled
        return box

    def still_box(self) -> Optional[Box]:
        """The box inside bars told by time rather than by one frame's edge: the lines of grid
        cells at each side that stay still (within STILL_BAR grey levels) and one grey (TOL) over
        the frames (:meth:`still_lines`) while the picture inside moves. It finds a grey bar
        beside a greyish picture edge, which the peeler's edge test cannot tell apart in a single
        frame. The box is exact to about half a grid cell (a few px), and must trim MIN_TRIM and
        keep MIN_AREA."""
        box = self.still_lines()
        if box is None:
            return None
        grid = self.grid
        cols, spans, s = grid.cols, grid.spans(), grid.step
        left, top, right, bottom = box[0] // s, box[1] // s, -(-box[2] // s), -(-box[3] // s)
        inside = sorted(spans[y * cols + x] for y in range(top, bottom) for x in range(left, right))
        if inside[len(inside) // 2] < MOVED_INSIDE:
            return None  # the picture does not move (a still, a slide show): nothing to tell bars by
        return box if self._candidate(box) else None

    def still_lines(self) -> Optional[Box]:
        """The box inside the lines of grid cells at each side that stay within STILL_BAR grey
        levels over the key frames and are one grey (within TOL of their median) in each, but for
        a logo (1 - LINE_FRAC of the line's cells, as the peeler tolerates), or None
        when no side has such a line (or fewer than MIN_STILL_FRAMES frames were seen). Whether
        they are bars is for :meth:`still_box` and :meth:`completed` to tell."""
        grid = self.grid
        if grid.used < MIN_STILL_FRAMES:
            return None
        cols, rows, spans = grid.cols, grid.rows, grid.spans()

        def bar(cells: list[int]) -> bool:  # LINE_FRAC of the cells still and one grey: a logo tolerated
            allowed = len(cells) - LINE_FRAC * len(cells)
            off = {i for i in cells if spans[i] > STILL_BAR}
            if len(off) > allowed:
                return False
            for g in grid.grids:
                values = sorted(g[i] for i in cells)
                median = values[len(values) // 2]
                off.update(i for i in cells if abs(g[i] - median) > TOL)
                if len(off) > allowed:
                    return False
            return True

        def count(lines) -> int:
            n = 0
            for cells in lines:
                if not bar(cells):
                    break
                n += 1
            return n

        left = count([[y * cols + x for y in range(rows)] for x in range(cols // 2)])
        right = count([[y * cols + x for y in range(rows)] for x in range(cols - 1, cols // 2 - 1, -1)])
        top = count([[y * cols + x for x in range(cols)] for y in range(rows // 2)])
        bottom = count([[y * cols + x for x in range(cols)] for y in range(rows - 1, rows // 2 - 1, -1)])
        if not (left or right or top or bottom):
            return None
        s = grid.step
        box = (left * s, top * s, min(self.width, (cols - right) * s), min(self.height, (rows - bottom) * s))
        if box[2] <= box[0] or box[3] <= box[1]:
            return None
        return box

    def peeled_box(self) -> Optional[Box]:
        """The video's content box by the peeler, or None when it has no bars (or the frames do not agree).

        Candidates are the frames' own boxes that trim a side by MIN_TRIM and keep MIN_AREA of the
        frame; the box is their union, when at least AGREE of them are that union (within a few
        px). Then every frame that is not flat is asked whether the strips outside the box are
        bars in it too (uniform: a title card or a dark scene between bars, whose own box the
        peeler could not find, agrees; a frame with picture there does not): AGREE of them must."""
        w, h = self.width, self.height
        looked = [(b, rgb) for b, rgb in self.frames if b is not None]
        candidates = [b for b, _ in looked if self._candidate(b)]
        if not candidates:
            return None
        union = (min(b[0] for b in candidates), min(b[1] for b in candidates),
                 max(b[2] for b in candidates), max(b[3] for b in candidates))
        slack_x, slack_y = max(2 * self.step, round(MIN_TRIM * w)), max(2 * self.step, round(MIN_TRIM * h))
        agree = sum(1 for b in candidates
                    if abs(b[0] - union[0]) <= slack_x and abs(b[2] - union[2]) <= slack_x
                    and abs(b[1] - union[1]) <= slack_y and abs(b[3] - union[3]) <= slack_y)
        if agree < AGREE * len(candidates) or self._trims(union) < MIN_TRIM:
            return None
        bars = sum(1 for _, rgb in looked if rgb is not None and self._bars_outside(rgb, union))
        return union if bars >= AGREE * len(looked) else None

    def _bars_outside(self, rgb, box: Box) -> bool:
        """Whether each strip of the subsampled frame ``rgb`` outside ``box`` is uniform (LINE_FRAC
        of its pixels within TOL of its median colour) or blurred (fewer than FILL_SHARE of its
        pixels sharp, as :func:`csadetect.media.preprocess.fill_box` counts them)."""
        import numpy as np  # lazy: as in _frame_box

        from csadetect.media.preprocess import DEFAULT, sharp_share  # lazy: as in _frame_box

        s = self.step
        left, top, right, bottom = box[0] // s, box[1] // s, -(-box[2] // s), -(-box[3] // s)
        for strip in (rgb[:top], rgb[bottom:], rgb[:, :left], rgb[:, right:]):
            if strip.size:
                pixels = strip.reshape(-1, 3).astype(np.int16)
                colour = np.median(pixels, axis=0).astype(np.int16)
                near = (np.abs(pixels - colour).max(axis=1) <= TOL).mean()
                if near >= LINE_FRAC:
                    continue
                grey = _grey(strip).round()
                if min(grey.shape) < 3 or float(sharp_share(grey.astype(np.int16), DEFAULT).mean()) >= FILL_SHARE:
                    return False
        return True


def _grey(rgb):
    """Float32 grey levels (ITU-R 601 weights) of an ``(h, w, 3)`` uint8 array."""
    import numpy as np  # lazy: as in VideoBars._frame_box

    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def crop(pixels: bytes, width: int, box: Box) -> bytes:
    """The RGB24 rows of ``box`` out of a frame ``width`` px wide."""
    left, top, right, bottom = box
    stride, view = width * 3, memoryview(pixels)
    return b"".join(view[y * stride + 3 * left: y * stride + 3 * right] for y in range(top, bottom))
