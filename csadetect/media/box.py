"""The rectangle every media module speaks in: :data:`Box`, (left, top, right, bottom) in pixels,
right/bottom exclusive, PIL's order, and :func:`boxes_within`, the one comparison of two boxes
(the framing views', the sub-image finder's). Standard library only, so the video decoder process
(:mod:`.letterbox`, :mod:`.overlay`) can use it without importing numpy.
"""
from __future__ import annotations

Box = tuple[int, int, int, int]  # (left, top, right, bottom), right/bottom exclusive, PIL order


def boxes_within(a: Box, b: Box, tol_x: float, tol_y: float) -> bool:
    """Whether each side of ``a`` lies within ``tol_x`` (left, right) or ``tol_y`` (top, bottom) px
    of the same side of ``b``."""
    return all(abs(x - y) <= t for x, y, t in zip(a, b, (tol_x, tol_y, tol_x, tol_y)))
