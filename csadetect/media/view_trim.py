"""The ``trim`` view of :mod:`csadetect.media.preprocess`: peeling uniform bars (borders,
letterbox, mats) off the sides of a picture, each side with the colour of its own outermost line
(:func:`trim_box`), and :class:`_Peels`, which remembers each side's answer for the other views.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from csadetect.media.box import Box
from csadetect.media.view_common import DEFAULT, Params, _count, _leading_true, _median_colour, _planar


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

