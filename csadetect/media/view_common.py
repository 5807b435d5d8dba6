"""What the framing views of :mod:`csadetect.media.preprocess` share: their thresholds
(:class:`Params`, :data:`DEFAULT`) and the numpy helpers that the trim, content and fill finders
(:mod:`.view_trim`, :mod:`.view_content`, :mod:`.view_fill`) and
:func:`csadetect.media.preprocess.find_boxes` use: the analysis arrays of an image, line stacks
channel first, exact medians, leading-run and count reductions, and the exact flatness test.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from csadetect.media.pixels import pixels



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
    tilt_min_deg: float = 1.0  # tilt view: some edge of the picture at least this far off its axis; 0: no tilt view
    tilt_max_deg: float = 30.0  # ... and none further
    tilt_residual: float = 1.5  # px (analysis resolution): an edge's outline within this of a straight line
    tilt_outside: float = 0.02  # share of the canvas outside the picture that may differ from the fill


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

