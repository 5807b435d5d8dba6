"""The index-side rows of an embedding indicator: the views of a known image stored beside it.

A known image gives one ``embedding`` row for itself and one per view of :func:`embedding_views` (ids
``{sha256[:16]}-embedding``, then ``-embedding-c05``, ``-embedding-a60tl`` ...): centre crops and small
rotations, area crops at a corner or the centre and strips along a side (:data:`EMBEDDING_REGIONS`,
``match.embedding_region_rows``), corner crops of another aspect (:data:`EMBEDDING_BOXES`,
``match.embedding_box_rows``) and turned-and-cropped pictures (:data:`EMBEDDING_TURNS`,
``match.embedding_turn_rows``), so that a cropped or turned copy meets a row that looks like it. The crops'
geometry is :mod:`csadetect.media.crops`; the rows are embedded and matched by
:mod:`csadetect.signals.embedding`, which re-exports these names.
"""
from __future__ import annotations

from PIL import Image

from csadetect.config.settings import MatchSettings
from csadetect.media.crops import CORNERS, STRIP_SIDES, box_crop, region_crop, turned_crop

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


def index_regions(settings: MatchSettings) -> tuple:
    """The region rows ``settings.embedding_region_rows`` asks for: :data:`EMBEDDING_REGIONS` or none."""
    return EMBEDDING_REGIONS if settings.embedding_region_rows else ()


def index_boxes(settings: MatchSettings) -> tuple:
    """The box rows ``settings.embedding_box_rows`` asks for: :data:`EMBEDDING_BOXES` or none."""
    return EMBEDDING_BOXES if settings.embedding_box_rows else ()


def index_turns(settings: MatchSettings) -> tuple:
    """The turned-and-cropped rows ``settings.embedding_turn_rows`` asks for: :data:`EMBEDDING_TURNS` or none."""
    return EMBEDDING_TURNS if settings.embedding_turn_rows else ()
