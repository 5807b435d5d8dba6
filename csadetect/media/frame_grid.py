"""A video's first key frames as grey levels on a coarse grid: what stays put and what moves.

The bar finder (:mod:`csadetect.media.letterbox`) and the overlay finder
(:mod:`csadetect.media.overlay`) both ask one question of the same few key frames: which parts of
the frame stay still while the picture moves? A letterbox bar stays still (and one colour) across
the whole side; a logo stays still in a small patch. :class:`GreyGrid` samples each frame's grey
level (ITU-R 601, integer) at the middle of each cell of a grid about :data:`GRID` cells on the
long side, standard library only (the decoder process starts without numpy), and keeps the frames
that are not flat (a fade to black, a blank title says nothing about either).
"""
from __future__ import annotations

from typing import Optional

GRID = 128  # cells on the frame's long side
FRAMES = 8  # key frames looked at per video (the bar and overlay finders' window)
MIN_STD = 4.0  # a frame whose sampled grey levels spread less than this is flat (black, a fade)


class GreyGrid:
    """Feed it RGB24 frames (``width`` x ``height``) until :attr:`settled`; :attr:`grids` holds
    the sampled grey levels of each frame that was not flat, cells row by row."""

    def __init__(self, width: int, height: int, frames: int = FRAMES):
        self.width, self.height = width, height
        self.step = max(1, -(-max(width, height) // GRID))
        self.cols, self.rows = -(-width // self.step), -(-height // self.step)
        self.limit = frames
        self.seen = 0
        self.grids: list[list[int]] = []
        self._spans: Optional[list[int]] = None  # spans() of the frames kept so far

    @property
    def settled(self) -> bool:
        return self.seen >= self.limit

    @property
    def used(self) -> int:
        """Frames looked at that were not flat."""
        return len(self.grids)

    def sample(self, pixels: bytes) -> list[int]:
        """Grey level of the pixel at the middle of each cell, row by row (the last pixel of a
        row or column for a cell whose middle lies past the frame's edge)."""
        s, w, half = self.step, self.width, self.step // 2
        stride = 3 * w
        inside = (w - 1 - half) // s + 1 if w - 1 >= half else 0  # cells whose middle is in the frame
        inside = min(inside, self.cols)
        rest = self.cols - inside
        out: list[int] = []
        for cy in range(self.rows):
            row = min(cy * s + half, self.height - 1) * stride
            first, end = row + 3 * half, row + 3 * half + 3 * s * inside
            r, g, b = pixels[first:end:3 * s], pixels[first + 1:end:3 * s], pixels[first + 2:end:3 * s]
            out += [(299 * x + 587 * y + 114 * z) // 1000 for x, y, z in zip(r, g, b)]
            if rest:
                i = row + 3 * (w - 1)
                out += [(299 * pixels[i] + 587 * pixels[i + 1] + 114 * pixels[i + 2]) // 1000] * rest
        return out

    def add(self, pixels: bytes) -> None:
        if self.settled:
            return
        self.seen += 1
        grey = self.sample(pixels)
        n = len(grey)
        mean = sum(grey) / n
        if (sum((g - mean) ** 2 for g in grey) / n) ** 0.5 >= MIN_STD:
            self.grids.append(grey)
            self._spans = None

    def spans(self) -> list[int]:
        """Per cell, how far its grey level ranged over the frames kept (0 with none); computed
        once for both finders (the bar finder's still box and the overlay finder ask for it)."""
        if self._spans is None:
            self._spans = ([max(v) - min(v) for v in zip(*self.grids)] if self.grids
                           else [0] * (self.cols * self.rows))
        return self._spans
