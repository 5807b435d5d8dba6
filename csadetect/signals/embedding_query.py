"""The query-side views of an embedding lookup: the region views cut from an upload, their names, the ways
they are cut and the similarity each must reach.

Beside the image, its preprocessed views and its mirror, an upload is embedded as region views cut like the
index-side rows (:mod:`csadetect.signals.embedding_rows`): crops keeping a share of the area at each corner
and the centre, on a grid (:func:`query_grid`) and strips along each side, as :func:`query_regions` asks for
them, named after the image (``image-a80tl``, :func:`parse_region_suffix`). They are cut from the image as
uploaded, mirrored or turned (:data:`ORIENTATIONS`: :func:`orientations`, :func:`region_ways`), only for an
image near some row when the region gate is on (:func:`region_gate_similarity`), and a region view matches
only within a share of the threshold's distance (:func:`view_thresholds`, :func:`view_weights`). The model
inputs are cut by :mod:`csadetect.models.embedding`; :mod:`csadetect.signals.embedding` re-exports these
names.
"""
from __future__ import annotations

import math
import re
from typing import Optional, Sequence

import numpy as np

from csadetect.config.settings import MatchSettings
from csadetect.media.crops import CORNERS, STRIP_SIDES, grid_places

# Query-side region views (``match.embedding_query_regions``): crops keeping 80% to 98% of the
# uploaded image's area (steps of 2%) at each corner and the centre, embedded beside the image and its
# views (names ``image-a80tl`` ...). A copy cropped at a corner or the centre to an area ``a`` of the
# original then holds a crop cut like one of the original's region rows: its view at share ``q`` is
# the original's region at ``a * q``, and some ``q`` brings that within ~1.5% of 0.60 or 0.78 (the
# embedding tolerates no more at the region views' threshold: a 2.5% miss matched 25-75%), for
# every area from 60% to 100% (0.75 x 0.80 = 0.60; 0.90 x 0.86 = 0.77; 0.65 x 0.92 = 0.60). The
# shares were chosen on the robustness benchmark's development split (csadetect/models/cards/
# embedding.md, "Query-side region views at every area"). Two more shares, 0.60 and 0.78 (issue 17,
# 2026-12-04), cut a copy that was not cropped exactly like the region rows themselves: a caption
# band, sticker or watermark outside one of those regions (a text band along the bottom leaves the
# top 60% and 78% rows intact) then leaves a view that meets its row (overlay_text 69% -> 100% on
# the held-out split, benchmarks/robustness.md). 60 more model inputs per image (no mirror; 84 with
# the strips below), cut from the image reduced to REGION_SOURCE_SIDE (models.embedding.model_inputs):
# ~0.7 ms CPU each. The shares are a setting (``match.embedding_query_region_shares``).
QUERY_REGION_PLACES = CORNERS + ("c",)
# Query-side strips (``match.embedding_query_strip_shares``): each side of the upload cut to keep 88% to
# 98% of that dimension (steps of 2%; names ``image-a88t`` ...). A strip of the original keeping ``f`` of
# a dimension then holds a strip cut within ~1.2% like one of the original's strip rows (its view at
# ``g`` is the original's strip at ``f * g``: 0.72 x 0.98 = 0.706 ~ 0.70, 0.68 x 0.88 = 0.598 ~ 0.60; the
# rows are 1.13-1.17 apart and the views reach down to 0.88 of the upload), and the upload itself meets
# a row when it keeps 60%, 70%, 80% or 90%. Chosen on the robustness benchmark's development split:
# strips keeping 60-98% of a side at random, 287 of 288 found by the embedding with these rows and
# views, 2-23% without (csadetect/models/cards/embedding.md, "Strips"). Three more shares, 0.60, 0.70 and
# 0.80 (2026-12-06), cut an uncropped copy exactly like the strip rows themselves (0.90 already does), as
# 0.60 and 0.78 do for the region rows: a sticker, a caption or a watermark outside one of those strips
# leaves a view that meets its row (the robustness benchmark's unseen ``sticker`` edit, development split,
# embedding alone: 8 -> 24 of 36). 36 more model inputs per image.
# Query-side grids (``match.embedding_query_grid_shares``, issue 17, 2026-12-06; off by default): a copy
# cropped at a random place, not at a corner or the centre, holds the original's centre region row somewhere
# between the five places, up to ~5% of its side from the nearest (at 0.80 the free space is 10.6% of the
# side), where the region views' threshold finds 25-75% at 2.5% off. The views at the grid shares are also cut
# at every point of a grid whose places lie at most QUERY_GRID_STEP of the side apart (so within ~1.35% of any
# position): 5 x 5 at 0.80 (+20 views), 4 x 4 and the centre at 0.86 (+12). [0.80, 0.86] was chosen on the
# robustness benchmark's development split (crops of 62-92% of the area at a random place, embedding alone:
# 62 -> 72 of 108; crop75_rand 20 -> 28 of 36; no false pair added); on the held-out split crop75_rand went
# 22 -> 26 of 42, short of the +10 points fixed beforehand for a default, and the stereo false pairs 1 -> 3 of 7
# (the other eye is a shifted crop of the original, which the grid now cuts more closely), so they are off
# (csadetect/models/cards/embedding-history.md, "Crops at a random place").
QUERY_GRID_STEP = 0.027
# QUERY_REGIONS (below :func:`query_regions`) holds all of them as the default settings ask for them.
# Region views are cut from the image reduced to at most this many pixels a side (aspect kept), not
# from the decoded image: four times cheaper per view, and within cosine 0.9996 of a view cut from
# the decoded image (the model sees 64 x 64 pixels).
REGION_SOURCE_SIDE = 256
# A region view is cut exactly like the row it is meant to meet, so a true copy's region view lands
# much nearer that row than an edited copy lands to the image row, while the other shot of a stereo
# pair gains a second chance from five more views. A region view therefore matches only within this
# share of the threshold's distance: at 0.9963, similarity >= 0.99815. On the robustness benchmark's
# development split every 75%-area crop's region view is within 0.0009 of its row (23% of 0.0037),
# and one burst shot that a region view matched at the plain threshold no longer matches
# (benchmarks/robustness.md).
REGION_VIEW_DISTANCE_SHARE = 0.5
# A strip view (``image-a94r`` ...) is held nearer still. The other eye of a stereo pair is, by its
# geometry, a strip of the original (the camera moved sideways: one side's content left the picture,
# new content came in at the other) that differs only by parallax, so its strip views meet the
# original's strip rows almost as closely as a true strip's do. On the robustness benchmark's
# development split the three stereo shots' best strip views reach 0.99888-0.99906 against their
# original's strip rows, and a strip copy's best 0.9990-1.0 (median 0.9998); a strip view therefore
# matches only within this share of the threshold's distance (at 0.9963: >= 0.999075), just above
# them. It costs 9 of 288 random dev strips (287 -> 278 found). Chosen after the held-out split had
# been run once at 0.5 (stereo false pairs 1 -> 3 there; csadetect/models/cards/embedding.md, "Strips").
STRIP_VIEW_DISTANCE_SHARE = 0.25
# A query's mirror is named after its first picture with this suffix (``"image:flip"``,
# models.embedding.model_inputs). The region views are cut from the mirrored image instead of the
# image when the mirror's own vector lies nearer some embedding row than the image's (a mirrored
# copy: the region rows are cut from the unmirrored original, and the model is too sensitive to a
# mirror for a region view's strict threshold; IndicatorIndex.match_image_gated decides).
MIRROR_SUFFIX = ":flip"
# The upload turned a quarter, a half and three quarters counter-clockwise, and its mirror turned likewise
# (``match.embedding_query_turns``; the mirror turned a quarter is the upload transposed, turned a half the
# upload flipped upside down): with the upload and its mirror, the eight ways PDQ's dihedral hashes cover.
# Their own vectors (``"image:r90"``, ``"image:flip:r90"`` ..., models.embedding.turned_view_inputs) only add a
# way to cut the region views when one lies clearly nearer the rows (``orientations``), and are never looked
# up themselves. A copy turned a quarter (or transposed) and cropped is then cut back upright before its
# crops meet the rows.
TURN_SUFFIXES = (":r90", ":r180", ":r270", ":flip:r90", ":flip:r180", ":flip:r270")
# A turn adds a way only when its own vector also lies within this many times the threshold's distance of some
# row (``match.embedding_query_turn_gate``'s default): see ``orientations``.
TURN_GATE = MatchSettings.model_fields["embedding_query_turn_gate"].default
# The ways a query's region views can be cut: as uploaded (""), mirrored, turned.
ORIENTATIONS = ("", MIRROR_SUFFIX) + TURN_SUFFIXES
_LONGEST_FIRST = sorted(ORIENTATIONS[1:], key=len, reverse=True)  # ":flip:r90" before ":r90" and ":flip"
_REGION_VIEW_RE = re.compile(r"-a(\d{2})(tl|tr|bl|br|c|t|b|l|r|g\d{3})$")  # a region_suffix: area in percent, place


def oriented_region_names(names: Sequence[str], orientation: str) -> tuple[str, ...]:
    """The names of region views cut from the image in ``orientation`` (one of :data:`ORIENTATIONS`):
    ``"image-a80tl"`` -> ``"image:flip-a80tl"`` (the mirror's top-left corner), ``"image:r90-a80tl"``
    (the image turned a quarter counter-clockwise, its top-left corner), ``"image-a80tl"`` itself for
    ``""``; as :meth:`csadetect.indicators.index.IndicatorIndex.match_image_gated` asks for them when
    that orientation's own vector lies nearest the rows. Raises ValueError for a name that is no
    region view or an unknown orientation."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"not an orientation: {orientation!r}")
    out = []
    for name in names:
        m = _REGION_VIEW_RE.search(name)
        if m is None:
            raise ValueError(f"not a region view name: {name!r}")
        out.append(f"{name[:m.start()]}{orientation}{name[m.start():]}")
    return tuple(out)


def region_orientation(name: str) -> str:
    """The orientation (:data:`ORIENTATIONS`) a region view ``name`` is cut from (:func:`oriented_region_names`).
    Raises ValueError for a name that is no region view."""
    m = _REGION_VIEW_RE.search(name)
    if m is None:
        raise ValueError(f"not a region view name: {name!r}")
    prefix = name[:m.start()]
    return next((o for o in _LONGEST_FIRST if prefix.endswith(o)), "")


def turned_names(first: str) -> tuple[str, ...]:
    """The own-view names of a query's first picture ``first`` turned (``"image:r90"`` ...: :data:`TURN_SUFFIXES`)."""
    return tuple(f"{first}{suffix}" for suffix in TURN_SUFFIXES)


def mirror_index(names: Sequence[str]) -> Optional[int]:
    """The position of the image's mirror among a query's own view ``names`` (``"<first>:flip"``), or
    None without one."""
    if not len(names):
        return None
    flip = f"{names[0]}{MIRROR_SUFFIX}"
    return next((i for i, name in enumerate(names) if name == flip), None)


def orientations(nearest: dict, tolerance: float, turn_gate: Optional[float] = TURN_GATE) -> tuple[str, ...]:
    """Which ways (:data:`ORIENTATIONS`) to cut an image's query-side region views, from the nearest
    embedding row's similarity of each orientation's own vector (``{"": image, ":flip": mirror,
    ":r90": turned a quarter, ":flip:r90": the mirror turned a quarter, ...}``; -1.0 without rows; ``""`` always given): the mirror when it is
    nearer than the image by more than ``tolerance`` (the threshold's distance: closer than a match
    can tell apart), the image when it is, both in between; and the nearest turn as well when it lies
    nearer than both by more than ``tolerance`` and within ``turn_gate`` times ``tolerance`` of the row
    (``match.embedding_query_turn_gate``; None: anywhere); ``("",)`` without rows (nothing to be near).
    A turn is added, never put in their place: the nearest row of a whole picture's vector is a weak
    guide for a texture or a copy under a text band, and a copy that was not turned keeps every way it
    had before the turns. The gate: an upload far from every row has some turn a little less far than
    itself more often than not (on the robustness benchmark's development split, 145 of 266 distractors
    against its 36 originals), and that turn is no copy; a turned copy's turn lies near its original
    (every turned copy there at >= 0.958, crops and text bands included)."""
    if all(v == -1.0 for v in nearest.values()):
        return ("",)
    image, mirror = nearest[""], nearest.get(MIRROR_SUFFIX)
    if mirror is None:
        ways: tuple[str, ...] = ("",)
    elif abs(mirror - image) <= tolerance:
        ways = ("", MIRROR_SUFFIX)
    else:
        ways = (MIRROR_SUFFIX,) if mirror > image else ("",)
    turns = [o for o in TURN_SUFFIXES if o in nearest]
    if turns:
        best = max(turns, key=lambda o: nearest[o])  # the first of equals
        floor = gate_similarity(tolerance, turn_gate)
        near_a_row = floor is None or nearest[best] >= floor
        if nearest[best] - max(image, -1.0 if mirror is None else mirror) > tolerance and near_a_row:
            ways += (best,)
    return ways


def region_ways(nearest, vectors, names: Sequence[str], tolerance: float, turned=None,
                turn_gate: Optional[float] = TURN_GATE) -> tuple[str, ...]:
    """:func:`orientations` of a query's own ``vectors`` (``names`` theirs: the image first, its mirror
    ``"<first>:flip"`` among them when it was embedded): ``nearest(v)`` gives the nearest embedding row's
    similarity of ``v`` (``(1, dim)``; -1.0 without rows), ``turned()`` the names and vectors of the
    image turned (:data:`TURN_SUFFIXES`; None: no turns), called only when there are rows to be near;
    ``turn_gate`` as :func:`orientations` takes it.
    The one rule of ``IndicatorIndex.region_orientations`` and of the evaluation's
    ``training.evaluate_images.embed_query``."""
    i = mirror_index(names)
    if i is None and turned is None:
        return ("",)
    near = {"": nearest(vectors[:1])}
    if near[""] == -1.0:  # no rows of this model: nothing to be near, whichever way
        return ("",)
    if i is not None:
        near[MIRROR_SUFFIX] = nearest(vectors[i:i + 1])
    for name, vector in zip(*(turned() if turned is not None else ((), ()))):
        near[name[len(names[0]):]] = nearest(vector[None, :])
    return orientations(near, tolerance, turn_gate)


def parse_region_suffix(name: str) -> tuple[float, str]:
    """(area, place) of a name ending in a :func:`region_suffix` (``"image-a80tl"`` -> (0.8, "tl"));
    raises ValueError for any other name."""
    m = _REGION_VIEW_RE.search(name)
    if m is None:
        raise ValueError(f"not a region view name: {name!r}")
    return int(m.group(1)) / 100, m.group(2)


def query_regions(settings: MatchSettings) -> tuple:
    """The query-side region views ``settings`` asks for: each of ``embedding_query_region_shares`` at
    every corner and the centre (and, for one of ``embedding_query_grid_shares``, at every place of its
    :func:`query_grid` too), then each of ``embedding_query_strip_shares`` at every side
    (:data:`QUERY_REGIONS` by default), or none when ``embedding_query_regions`` is off."""
    if not settings.embedding_query_regions:
        return ()
    grids = set(settings.embedding_query_grid_shares)
    return tuple((share, query_grid(share) if share in grids else QUERY_REGION_PLACES)
                 for share in settings.embedding_query_region_shares) + tuple(
        (share, STRIP_SIDES) for share in settings.embedding_query_strip_shares)


def query_grid(share: float, step: float = QUERY_GRID_STEP) -> tuple[str, ...]:
    """The places of the query-side region views at ``share`` of the area on a grid: the corners and the
    centre first (:data:`QUERY_REGION_PLACES`), then the other points of the smallest square grid whose
    places lie at most ``step`` of the side apart over the free space (``1 - sqrt(share)``)."""
    free = 1.0 - share ** 0.5
    n = min(9, max(2, 1 + math.ceil(free / step - 1e-9)))
    return QUERY_REGION_PLACES + tuple(p for p in grid_places(n) if p not in QUERY_REGION_PLACES)


# The query-side region views of the default settings: every corner/centre share, then every strip share.
QUERY_REGIONS = query_regions(MatchSettings())


def region_gate_similarity(threshold: float, gate: Optional[float]) -> Optional[float]:
    """The similarity one of an image's own vectors (the image, its views, sub-images, mirror) must
    reach with some embedding row before its query-side region views are embedded
    (``match.embedding_query_region_gate``: a multiple of the threshold's distance ``1 - threshold``),
    or None when the gate is off (every image's region views are embedded).

    Why a gate can skip them: a copy that only a region view finds is still fairly near its
    original as a whole (on the robustness benchmark's development split: every such edited copy at
    >= 0.952, every such corner or centre crop of 62-97% of the area at >= 0.895). What it spares is
    the images far from every row, a share that shrinks as the index grows
    (``benchmarks/region-gate.md``), hence off by default."""
    return gate_similarity(1.0 - float(threshold), gate)


def gate_similarity(distance: float, gate: Optional[float]) -> Optional[float]:
    """The similarity within ``gate`` times ``distance`` (a threshold's distance, ``1 - threshold``) of a row:
    ``1 - gate * distance``, or None without a gate. The one formula of the region gate
    (:func:`region_gate_similarity`) and the turn gate (:func:`orientations`, which is handed the distance)."""
    if gate is None:
        return None
    return 1.0 - float(gate) * float(distance)


def view_thresholds(names: Sequence[str], threshold: float, n_vectors: Optional[int] = None):
    """The similarity each query vector must reach, by its view name (as
    :func:`csadetect.models.embedding.model_inputs` names them): ``threshold`` for the image, its
    views, sub-images and mirror; for a query-side region view (``image-a80tl`` ...) the similarity
    within :data:`REGION_VIEW_DISTANCE_SHARE` of the threshold's distance, for a strip view
    (``image-a94r`` ...) within :data:`STRIP_VIEW_DISTANCE_SHARE`. When ``n_vectors`` is
    given and the names do not name that many vectors, ``threshold`` for all of them."""
    if n_vectors is not None and len(names) != n_vectors:
        return float(threshold)
    return 1.0 - (1.0 - float(threshold)) / view_weights(names)


def view_weights(names: Sequence[str]) -> np.ndarray:
    """How many times each query vector's distance (``1 - similarity``) counts, by view name: 1,
    ``1 / REGION_VIEW_DISTANCE_SHARE`` for a query-side region view at a corner or the centre, or
    ``1 / STRIP_VIEW_DISTANCE_SHARE`` for a strip view. Scoring ``1 - weight * (1 - s)`` against one
    threshold is the same as :func:`view_thresholds` (the benchmark and the calibration score that way)."""
    return np.array([_view_weight(n) for n in names], dtype=np.float64)


def _view_weight(name: str) -> float:
    m = _REGION_VIEW_RE.search(name)
    if m is None:
        return 1.0
    return 1.0 / (STRIP_VIEW_DISTANCE_SHARE if m.group(2) in STRIP_SIDES else REGION_VIEW_DISTANCE_SHARE)


def weigh_similarities(sims: np.ndarray, weights) -> np.ndarray:
    """``sims`` ``(k, ...)``, one row per query vector, scored as the matcher scores them:
    ``1 - weight * (1 - s)`` with that vector's :func:`view_weights` entry."""
    w = np.asarray(weights, dtype=np.float64).reshape((-1,) + (1,) * (np.ndim(sims) - 1))
    return 1.0 - w * (1.0 - sims)
