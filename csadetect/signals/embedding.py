"""Embeddings: vectors of the image embedding model, matched by cosine similarity.

The value is ``[model_version:]`` + canonical base64 of little-endian float32
(:func:`embedding_value`, :func:`split_embedding`). Embeddings are only comparable under the model
that made them, so ``from-media`` always writes the version; rows without one match any model of
the same dimension. A known image gives one row for itself and one per index-side view
(:func:`embedding_views`), so that a cropped or slightly rotated copy meets a row that looks like it.

The index is one FAISS index over the L2-normalised vectors per (model version, dimension): a
query made by model *v* is only compared with rows of version *v* (and rows without a version of
the same dimension). A row matches when the cosine similarity of any query view (the image, its
trimmed views, its mirror) is >= the model's calibrated threshold; ``similarity`` is the best one
and the distance ``1 - similarity``. Embedding matches go to review unless
``embedding.auto_confirm_similarity`` is set.

Which FAISS index (:class:`VectorIndex`, ``match.embedding_index``; numbers in
``benchmarks/embeddings.md``):

- ``flat``: ``IndexFlatIP``, exact inner product; 4 bytes per dimension per row (512 B at 128-d).
- ``ivf``: ``IndexIVFFlat`` (inner product), :func:`ivf_nlist` (~sqrt(n)) lists trained by k-means on the rows
  themselves at build (a seeded sample, so a build is repeatable), ``embedding_ivf_nprobe`` lists
  searched per query; range search, so every row at or above the threshold in the probed lists
  is found. + 8 bytes per row (its id in its list) and the centroids.
- ``hnsw``: ``IndexHNSWFlat`` (inner product, ``M`` = :data:`HNSW_M`), ``embedding_hnsw_ef_search``
  candidates per query. FAISS's HNSW has no range search: it is searched for the top *k* and the
  hits below the threshold are dropped; when the *k*-th is still a hit the query is searched
  again with twice *k*, so the number of matches per query vector is not capped, but each round
  is approximate. + ~2·M·4 bytes of graph links per row.
- ``auto``: ``flat`` below ``embedding_exact_below`` rows in a group, else :data:`AUTO_APPROXIMATE`.

Groups of fewer than :data:`APPROX_MIN_ROWS` rows (the overlay of deltas, small snapshots, most
tests) are always searched exactly, whatever the mode: an approximate index gains nothing there
and IVF cannot train its lists on so few rows.
"""
from __future__ import annotations

import binascii
import math
import re
from typing import Optional, Sequence

import faiss
import numpy as np
import pyarrow as pa
import pybase64
from PIL import Image

from csadetect.config.settings import MatchSettings
from csadetect.media.crops import CORNERS, STRIP_SIDES, box_crop, grid_places, region_crop, turned_crop
from csadetect.signals.base import Hit, Media, SignalError, SignalIndex, SignalType

_VERSION_RE = re.compile(r"[A-Za-z0-9._+-]{1,64}")

# Index-side views of a known image, each stored as one more ``embedding`` row of the image
# (ids ``{sha256[:16]}-embedding`` for the image itself, then ``-embedding-c05``, ``-embedding-r+3``,
# ``-embedding-r-3``): a cropped or slightly rotated copy then meets a row that looks like it.
# EMBEDDING_CROPS: fraction cut from EACH side (centre crop; 0.05 keeps the middle 90%).
# EMBEDDING_ROTATIONS: degrees (counter-clockwise), expanded canvas, black fill.
# Chosen on the held-out evaluation (csadetect/models/cards/embedding.md, "Index-side rows"); the threshold
# is calibrated with these rows (training/calibrate_embedding.py). Each row costs one 128-float vector.
EMBEDDING_CROPS = (0.05,)
EMBEDDING_ROTATIONS = (3, -3)
# Region rows (issue 17, ``match.embedding_region_rows``): crops keeping a share of the AREA at each
# corner and the centre (ids ``-a60tl`` ... ``-a60c``), so that a heavily cropped copy meets a row
# that looks like it; ``benchmarks/robustness.md`` measures them. Each costs one more vector per
# indicator (512 B at 128-d).
# Strips (2026-12-05): a copy with one side cut off (the top, bottom, left or right part kept, the
# other dimension whole) keeps none of the corner rows' aspect, so the region rows also hold strips
# keeping 60%, 70%, 80% and 90% of the height (``-a60t``, ``-a60b``) or width (``-a60l``, ``-a60r``);
# a strip's share of the area is the share it keeps of its one dimension. 16 more vectors per indicator.
EMBEDDING_STRIPS = tuple((share, STRIP_SIDES) for share in (0.60, 0.70, 0.80, 0.90))
EMBEDDING_REGIONS = ((0.60, CORNERS + ("c",)), (0.78, CORNERS)) + EMBEDDING_STRIPS
# Box rows (2026-12-05, ``match.embedding_box_rows``): corner crops of another aspect than the picture's,
# keeping 70% of its width and 86% of its height, or 86% and 70% (ids ``-w70h86tl`` ... ``-w86h70br``). A copy
# cut at a corner to another aspect holds none of the region rows' aspect, and its corner views keep its own;
# when its aspect is within ~5% of a box row's, one of them meets that row. Chosen on the robustness
# benchmark's development split (corner crops of another aspect 51% -> 72%; boxes nearer the picture's own
# aspect let burst and stereo shots within 0.0006 of the threshold: csadetect/models/cards/embedding.md,
# "Corner crops of another aspect"). 8 more vectors per indicator (+4 KiB), no query-side cost.
EMBEDDING_BOXES = (((0.70, 0.86), CORNERS), ((0.86, 0.70), CORNERS))
# Turned-and-cropped rows (2026-12-05, ``match.embedding_turn_rows``): the picture turned by 4, 7 and 10
# degrees either way and cut back to the largest upright rectangle of its aspect inside it
# (:func:`turned_crop`; ids ``-tc+4`` ... ``-tc-10``), as an "adjust / straighten" tool leaves a copy: no
# fill colour for the tilt view to find, and 8-30% of the picture gone all round. The embedding holds
# a copy turned within ~1 degree of such a row (97% of the development split's copies reach the
# threshold 1 degree off, 62% 2 degrees off, 39% 3 degrees off), so rows 3 degrees apart cover turns
# of 3-11 degrees: on the robustness benchmark's development split, copies turned by each whole degree
# from 4 to 10 either way (JPEG q85) matched their original's rows in 27% of cases before, 98% with
# these rows (33-35 of 36 at 3 and 11 degrees). Chosen there among sets of four to eight rows
# (csadetect/models/cards/embedding.md, "Turned and cropped back"). 6 more vectors per indicator (+3 KiB),
# no query-side cost.
EMBEDDING_TURNS = (4, -4, 7, -7, 10, -10)
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
# (csadetect/models/cards/embedding.md, "Crops at a random place").
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


def split_embedding(value: str) -> tuple[Optional[str], np.ndarray]:
    """``"[model_version:]base64"`` -> (model_version or None, float32 vector). Raises SignalError."""
    text = value.strip()
    version = None
    if ":" in text:
        version, text = text.split(":", 1)
        if not _VERSION_RE.fullmatch(version):
            raise SignalError("embedding model version must be 1-64 characters of [A-Za-z0-9._+-]")
    try:
        raw = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignalError("embedding value is not base64") from None
    if not raw or len(raw) % 4:
        raise SignalError("embedding value must be base64 of float32 values (length a multiple of 4 bytes)")
    vec = np.frombuffer(raw, dtype="<f4")
    if not np.all(np.isfinite(vec)):
        raise SignalError("embedding value holds NaN or infinite numbers")
    return version, vec


def embedding_value(vector, version: Optional[str]) -> str:
    """Canonical indicator value for an embedding made by model ``version``."""
    encoded = pybase64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return f"{version}:{encoded}" if version else encoded


def embedding_views(img, crops=EMBEDDING_CROPS, rotations=EMBEDDING_ROTATIONS, regions=EMBEDDING_REGIONS,
                    boxes=EMBEDDING_BOXES, turns=EMBEDDING_TURNS) -> list:
    """(id suffix, PIL image) for each embedding row of a known image: ``""`` (the image), then
    ``"-c05"``-style centre crops, ``"-r+3"``-style rotations, ``"-a60tl"``-style area crops
    at a corner or the centre (``regions``; ``()`` when ``match.embedding_region_rows`` is off,
    :func:`index_regions`), ``"-w70h86tl"``-style corner crops of another aspect (``boxes``, :func:`box_crops`;
    ``()`` when ``match.embedding_box_rows`` is off, :func:`index_boxes`) and ``"-tc+4"``-style
    turned-and-cropped pictures (``turns``, :func:`turned_crop`; ``()`` when ``match.embedding_turn_rows``
    is off, :func:`index_turns`)."""
    out = [("", img)]
    w, h = img.size
    for f in crops:
        dx, dy = round(w * f), round(h * f)
        if w - 2 * dx >= 1 and h - 2 * dy >= 1:
            out.append((f"-c{round(f * 100):02d}", img.crop((dx, dy, w - dx, h - dy))))
    for deg in rotations:
        out.append((f"-r{deg:+g}", img.rotate(deg, resample=Image.Resampling.BILINEAR, expand=True)))
    out += region_crops(img, regions)
    out += box_crops(img, boxes)
    out += [(turn_suffix(deg), turned_crop(img, deg)) for deg in turns]
    return out


def turn_suffix(degrees: int) -> str:
    """``"-tc+4"``: the name suffix of the row turned by ``degrees`` and cut back (:func:`turned_crop`)."""
    return f"-tc{degrees:+d}"


def region_crops(img, regions=EMBEDDING_REGIONS) -> list:
    """(``"-a60tl"``-style suffix, crop) for each (area share, anchors) of ``regions``: each side
    scaled by sqrt(area), placed at a corner (``tl``, ``tr``, ``bl``, ``br``) or the centre (``c``);
    or a strip along one side (``t``, ``b``, ``l``, ``r``: that share of one dimension, the other whole)."""
    return [(region_suffix(area, place), region_crop(img, area, place)) for area, places in regions for place in places]


def box_crops(img, boxes=EMBEDDING_BOXES) -> list:
    """(``"-w70h86tl"``-style suffix, crop) for each ((width share, height share), places) of ``boxes``
    (:func:`csadetect.media.crops.box_crop`)."""
    return [(box_suffix(width, height, place), box_crop(img, width, height, place))
            for (width, height), places in boxes for place in places]


def box_suffix(width: float, height: float, place: str) -> str:
    """``"-w70h86tl"``: the name suffix of the crop keeping ``width`` of the width and ``height`` of the
    height at ``place``."""
    return f"-w{round(width * 100):02d}h{round(height * 100):02d}{place}"


def region_suffix(area: float, place: str) -> str:
    """``"-a60tl"``: the name suffix of the crop keeping ``area`` of the picture at ``place``."""
    return f"-a{round(area * 100):02d}{place}"


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


def index_regions(settings: MatchSettings) -> tuple:
    """The region rows ``settings.embedding_region_rows`` asks for: :data:`EMBEDDING_REGIONS` or none."""
    return EMBEDDING_REGIONS if settings.embedding_region_rows else ()


def index_boxes(settings: MatchSettings) -> tuple:
    """The box rows ``settings.embedding_box_rows`` asks for: :data:`EMBEDDING_BOXES` or none."""
    return EMBEDDING_BOXES if settings.embedding_box_rows else ()


def index_turns(settings: MatchSettings) -> tuple:
    """The turned-and-cropped rows ``settings.embedding_turn_rows`` asks for: :data:`EMBEDDING_TURNS` or none."""
    return EMBEDDING_TURNS if settings.embedding_turn_rows else ()


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


def _unit_rows(mat: np.ndarray) -> np.ndarray:
    return mat / np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)


# An approximate index only for groups of at least this many rows (see the module docstring).
APPROX_MIN_ROWS = 1_000
# The approximate index ``auto`` picks at or above ``embedding_exact_below`` rows (benchmarks/embeddings.md).
AUTO_APPROXIMATE = "ivf"
HNSW_M = 32  # graph links per node (2·M on the bottom layer)
HNSW_EF_CONSTRUCTION = 64
HNSW_FIRST_K = 16  # top-k of the first HNSW search per query vector (doubled while the k-th still matches)
IVF_LISTS_PER_SQRT = 1.0  # lists = this * sqrt(rows) (benchmarks/embeddings.md compares 4)
IVF_TRAIN_PER_LIST = 40  # k-means sample: rows per list (FAISS asks for >= 39)
IVF_TRAIN_ITERATIONS = 10
IVF_SEED = 20240611


def ivf_nlist(n: int, per_sqrt: float = IVF_LISTS_PER_SQRT) -> int:
    """IVF lists for ``n`` rows: ``per_sqrt`` * sqrt(n), and no more than n / 39 so each list
    trains on enough rows. A near-duplicate query needs few lists probed (benchmarks/embeddings.md),
    and then sqrt(n) lists cost a query as much as 4·sqrt(n) do while building in a quarter of the
    time (every row is compared with every centroid)."""
    return max(1, min(round(per_sqrt * np.sqrt(n)), n // 39))


def index_kind(n: int, settings: MatchSettings) -> str:
    """The FAISS index ``settings.embedding_index`` gives a group of ``n`` rows: flat, ivf or hnsw."""
    mode = settings.embedding_index
    if n < APPROX_MIN_ROWS:
        return "flat"
    if mode == "auto":
        return "flat" if n < settings.embedding_exact_below else AUTO_APPROXIMATE
    return mode


class VectorIndex:
    """The FAISS index over one group's unit vectors (rows of ``mat`` are positions 0..n-1), of
    :func:`index_kind`; :meth:`search` gives (query number, position, similarity) at or above a
    threshold. Query-time parameters are fixed at build and passed per call, so concurrent
    queries are safe."""

    def __init__(self, mat: np.ndarray, settings: MatchSettings, kind: Optional[str] = None,
                 nlist: Optional[int] = None):
        mat = np.ascontiguousarray(mat, dtype=np.float32)
        n, dim = mat.shape
        self.kind = kind or index_kind(n, settings)
        self.dim = dim
        self.params = None
        if self.kind == "flat":
            self.index = faiss.IndexFlatIP(dim)
        elif self.kind == "ivf":
            nlist = nlist or ivf_nlist(n)
            quantizer = faiss.IndexFlatIP(dim)
            self.index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self.index.own_fields = True
            quantizer.this.disown()
            self.index.cp.niter = IVF_TRAIN_ITERATIONS
            self.index.cp.seed = IVF_SEED
            self.index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST + 1
            sample = np.random.default_rng(IVF_SEED).choice(n, min(n, IVF_TRAIN_PER_LIST * nlist), replace=False)
            self.index.train(mat[np.sort(sample)])
            self.params = faiss.SearchParametersIVF(nprobe=min(settings.embedding_ivf_nprobe, nlist))
        elif self.kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            self.ef_search = settings.embedding_hnsw_ef_search
        else:
            raise SignalError(f"unknown embedding index {self.kind!r} (flat, ivf or hnsw)")
        self.index.add(mat)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def nbytes(self) -> int:
        """Bytes of the vectors and the index structures (FAISS's own containers, by their sizes)."""
        vectors = self.index.ntotal * self.dim * 4
        if self.kind == "ivf":
            return vectors + self.index.ntotal * 8 + self.index.nlist * self.dim * 4  # + list ids, centroids
        if self.kind == "hnsw":
            h = self.index.hnsw
            return vectors + h.neighbors.size() * 4 + h.offsets.size() * 8 + h.levels.size() * 4
        return vectors

    def nearest(self, vectors: np.ndarray) -> float:
        """The largest similarity of any of the unit ``vectors`` ``(k, dim)`` to any row: one
        top-1 search (approximate for ivf and hnsw, like :meth:`search`), -1.0 without rows. Its
        cost does not grow with how many rows lie near the query, unlike a range search."""
        if not self.index.ntotal or not len(vectors):
            return -1.0
        params = faiss.SearchParametersHNSW(efSearch=self.ef_search) if self.kind == "hnsw" else self.params
        sims, pos = self.index.search(vectors, 1, params=params)
        found = sims[pos >= 0]
        return float(found.max()) if found.size else -1.0

    def search(self, vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query number, position, similarity) of every found row with similarity >= ``threshold``
        for unit ``vectors`` ``(k, dim)`` float32."""
        if self.kind == "hnsw":
            return self._search_top_k(vectors, threshold)
        radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))  # FAISS keeps sim > radius
        lims, sims, pos = self.index.range_search(vectors, radius, params=self.params)
        queries = np.repeat(np.arange(len(vectors)), np.diff(lims.astype(np.int64)))
        keep = sims >= threshold
        return queries[keep], pos[keep], sims[keep]

    def _search_top_k(self, vectors, threshold):
        out_q, out_p, out_s = [], [], []
        todo, k = np.arange(len(vectors)), HNSW_FIRST_K
        while len(todo):
            k = min(k, self.ntotal)
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
            sims, pos = self.index.search(vectors[todo], k, params=params)
            full = (sims[:, -1] >= threshold) & (k < self.ntotal)  # the k-th still matches: search wider
            done = ~full
            keep = (sims >= threshold) & (pos >= 0) & done[:, None]
            out_q.append(np.broadcast_to(todo[:, None], sims.shape)[keep])
            out_p.append(pos[keep])
            out_s.append(sims[keep])
            todo, k = todo[full], 2 * k
        return np.concatenate(out_q), np.concatenate(out_p), np.concatenate(out_s)


class EmbeddingIndex(SignalIndex):
    """One :class:`VectorIndex` per (model version, dimension)."""

    def __init__(self, values: pa.ChunkedArray, rows: np.ndarray, settings: Optional[MatchSettings] = None):
        settings = settings or MatchSettings()
        groups: dict[tuple, tuple[list, list]] = {}
        for row, value in zip(rows, values.to_pylist()):
            version, vector = split_embedding(value)
            rows_, vecs = groups.setdefault((version, len(vector)), ([], []))
            rows_.append(row)
            vecs.append(vector)
        self.groups: dict[tuple, tuple[VectorIndex, np.ndarray]] = {}
        for (version, dim), (rows_, vecs) in groups.items():
            mat = _unit_rows(np.ascontiguousarray(np.stack(vecs), dtype=np.float32))
            self.groups[(version, dim)] = (VectorIndex(mat, settings), np.asarray(rows_, dtype=np.int32))

    @property
    def nbytes(self) -> int:
        return sum(ix.nbytes + rows.nbytes for ix, rows in self.groups.values())

    def nearest(self, vectors, version: Optional[str]) -> float:
        """The largest similarity of any of ``vectors`` (made by model ``version``) to any row it is
        compared with (rows of that version or of none; active or not), -1.0 without such rows."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or not len(vectors):
            return -1.0
        vectors = np.ascontiguousarray(_unit_rows(vectors))
        return max((index.nearest(vectors) for (row_version, dim), (index, _) in self.groups.items()
                    if dim == vectors.shape[1] and (row_version is None or row_version == version)), default=-1.0)

    def query(self, probe) -> list[Hit]:
        """``probe``: (query vectors ``(k, dim)``, the model version that made them, the threshold:
        one number, or one per vector as :func:`view_thresholds` gives)."""
        vectors, version, threshold = probe
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or not len(vectors):
            return []
        per_vector = np.asarray(threshold, dtype=np.float64)
        if per_vector.ndim and per_vector.shape != (len(vectors),):
            raise ValueError(f"{per_vector.shape[0]} thresholds for {len(vectors)} query vectors")
        threshold = float(per_vector.min()) if per_vector.ndim else float(per_vector)
        vectors = np.ascontiguousarray(_unit_rows(vectors))
        rows_out, sims_out = [], []
        for (row_version, dim), (index, rows) in self.groups.items():
            if dim != vectors.shape[1] or (row_version is not None and row_version != version):
                continue
            q, pos, sims = index.search(vectors, threshold)
            if per_vector.ndim:  # the lowest threshold was searched; each vector keeps its own
                keep = sims >= per_vector[q]
                pos, sims = pos[keep], sims[keep]
            rows_out.append(rows[pos])
            sims_out.append(sims)
        if not rows_out:
            return []
        rows, sims = np.concatenate(rows_out), np.concatenate(sims_out)
        order = np.lexsort((-sims, rows))
        rows, sims = rows[order], sims[order]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        return [Hit(int(r), round(1.0 - float(s), 6), round(float(s), 6)) for r, s in zip(rows[first], sims[first])]


class EmbeddingSignal(SignalType):
    """An image embedding: distance ``1 - cosine similarity``; the threshold is the model's
    calibrated one (``embedding.threshold`` overrides it), so there is no default here."""

    name = "embedding"
    content = ("image",)
    unit = "1 − cosine similarity"
    detector = "known-embedding"
    default_threshold = None
    evidence = 5
    recognisable = False  # hex digits are base64 too: a hash list is never read as embeddings

    def normalise(self, value: str) -> str:
        version, vector = split_embedding(value)
        return embedding_value(vector, version)

    def distance(self, a: str, b: str) -> float:
        va, vb = split_embedding(a)[1], split_embedding(b)[1]
        if len(va) != len(vb):
            raise SignalError("embeddings of different dimensions cannot be compared")
        return round(1.0 - float(_unit_rows(np.stack([va, vb])).prod(axis=0).sum()), 6)

    def examples(self) -> list[str]:
        return [embedding_value([0.6, 0.8], "example-1"), embedding_value([0.8, 0.6], None)]

    def build_index(self, values: pa.ChunkedArray, rows: np.ndarray, settings: MatchSettings,
                    packed: Optional[np.ndarray] = None) -> EmbeddingIndex:
        return EmbeddingIndex(values, rows, settings)

    def indicator_values(self, media: Media, settings: MatchSettings) -> list[tuple[str, str]]:
        """With an embedding model: the image and each of its :func:`embedding_views`."""
        if media.embedder is None or media.picture is None:
            return []
        views = embedding_views(media.picture, regions=index_regions(settings), boxes=index_boxes(settings),
                                 turns=index_turns(settings))
        vectors = media.embedder.embed([img for _, img in views])
        return [(suffix, embedding_value(vector, media.embedder.version)) for (suffix, _), vector in zip(views, vectors)]

    def auto_confirms(self, match, settings: MatchSettings, auto_confirm_similarity: Optional[float],
                      content: Optional[str] = None) -> bool:
        return (auto_confirm_similarity is not None and match.similarity is not None
                and match.similarity >= auto_confirm_similarity)

    def explain(self, hashes, value: str, settings: MatchSettings, views=None) -> dict:
        """The embedding input of the picture nearest to ``value`` (``view``: ``image``, a
        preprocessed view, or ``image:flip`` for the mirrored picture). The indicator's own view
        is in its id (``...-embedding-crop5``, see :func:`embedding_views`)."""
        if views is None:
            return {}
        names, vectors = views
        _, vector = split_embedding(value)
        vectors = np.asarray(vectors, dtype=np.float32)
        if not len(names) or vectors.ndim != 2 or vectors.shape[1] != len(vector):
            return {}
        similarity = _unit_rows(vectors) @ _unit_rows(vector[None, :])[0]
        return {"view": names[int(np.argmax(similarity))]}
