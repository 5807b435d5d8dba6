"""Box rows (issue 17, ``match.embedding_box_rows``): a copy cut at a corner to another aspect than the
original's keeps none of the region rows' aspect, and its own region views keep its aspect, so the index
also stores corner crops keeping 70% x 86% and 86% x 70% of the width and height (``EMBEDDING_BOXES``,
:func:`csadetect.media.crops.box_crop`). Real reference model and real FAISS on a generated scene that is
none of the robustness benchmark's."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from csadetect.config.settings import ConfigError, MatchSettings, load_settings
from csadetect.media.crops import CORNERS, box_crop, region_crop
from csadetect.signals.embedding import EMBEDDING_BOXES, box_suffix, embedding_views, index_boxes
from tests.test_region_views import _index, _matches  # a known picture's index; an edited copy's matches
from tests.test_turn_rows import known, model  # noqa: F401  (fixtures: the reference model, a generated scene)
from training import robustness_scenes as scenes

ON = MatchSettings()
NO_BOX_ROWS = MatchSettings(embedding_box_rows=False)


@pytest.mark.parametrize("width,height,corner", [(0.72, 0.88, "tl"), (0.88, 0.72, "br"), (0.70, 0.90, "tr"),
                                                 (0.90, 0.70, "bl")])
def test_a_corner_crop_of_another_aspect_matches_through_a_box_row_and_not_without_them(
        model, known, tmp_path, width, height, corner):
    """Cut at a corner to 61-63% of the area and an aspect 3-6% off a box row's (JPEG q85): with the box rows
    it matches, through the box row at its corner; without them (everything else on: region rows and views,
    strips, turned rows, sub-images) nothing matches."""
    rows_on, on = _index(known, ON, model, tmp_path)
    rows_off, off = _index(known, NO_BOX_ROWS, model, tmp_path)
    assert len(rows_on) - len(rows_off) == sum(len(corners) for _, corners in EMBEDDING_BOXES)
    copy = box_crop(known, width, height, corner)
    found = {m.indicator_id.split("-embedding", 1)[1] for m in _matches(on, copy, ON, model) if m.kind == "embedding"}
    assert any(s.startswith("-w") and s.endswith(corner) for s in found), found
    assert not _matches(off, copy, NO_BOX_ROWS, model)


def test_another_pictures_corner_crop_at_a_box_rows_shape_matches_nothing(model, known, tmp_path):
    """The same cut of another scene (same generator, another seed) does not meet the known picture's box rows."""
    _, on = _index(known, ON, model, tmp_path)
    other = scenes.render(scenes.make_scene(np.random.default_rng(5)), noise_seed=1)
    for (width, height), corners in EMBEDDING_BOXES:
        for corner in corners:
            assert not _matches(on, box_crop(other, width, height, corner), ON, model), (width, height, corner)


def test_the_rows_and_their_names(known):
    """Eight rows, named ``-w70h86tl`` ... ``-w86h70br``, between the region rows and the turned rows; none with
    the setting off."""
    names = [suffix for suffix, _ in embedding_views(known)]
    boxes = [box_suffix(w, h, c) for (w, h), corners in EMBEDDING_BOXES for c in corners]
    assert boxes == [f"-w{w}h{h}{c}" for w, h in ((70, 86), (86, 70)) for c in ("tl", "tr", "bl", "br")]
    start = names.index(boxes[0])
    assert names[start:start + len(boxes)] == boxes
    assert names[start - 1].startswith("-a") and names[start + len(boxes)].startswith("-tc")
    assert not any(n.startswith("-w") for n, _ in embedding_views(known, boxes=index_boxes(NO_BOX_ROWS)))
    assert index_boxes(ON) == EMBEDDING_BOXES and load_settings().match.embedding_box_rows


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (500, 500), (901, 299)])
def test_box_crop_keeps_its_shares_at_its_corner(size):
    """Each corner's crop keeps the shares of the width and height, rounded to a pixel, and touches that
    corner: a picture whose four quadrants differ keeps its own corner's colour at the crop's corner."""
    w, h = size
    img = Image.new("RGB", size)
    colours = {"tl": (255, 0, 0), "tr": (0, 255, 0), "bl": (0, 0, 255), "br": (255, 255, 0)}
    for (corner, colour), (x, y) in zip(colours.items(), ((0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2))):
        img.paste(colour, (x, y, x + w - w // 2, y + h - h // 2))
    for corner in CORNERS:
        out = box_crop(img, 0.70, 0.86, corner)
        assert out.size == (round(w * 0.70), round(h * 0.86))
        px = (0 if corner[1] == "l" else out.width - 1, 0 if corner[0] == "t" else out.height - 1)
        assert out.getpixel(px) == colours[corner]


def test_region_crop_is_a_box_crop_of_its_area():
    """A region row keeps sqrt(area) of each side at a corner or the centre, and a strip the area's share of
    one side with the other whole."""
    img = Image.new("RGB", (640, 480))
    assert region_crop(img, 0.60, "tl").size == (round(640 * 0.6 ** 0.5), round(480 * 0.6 ** 0.5))
    assert region_crop(img, 0.60, "c").size == (496, 372)
    assert region_crop(img, 0.70, "t").size == (640, 336) and region_crop(img, 0.70, "r").size == (448, 480)
    assert np.array_equal(np.asarray(region_crop(img, 0.78, "br")), np.asarray(box_crop(img, 0.78 ** 0.5,
                                                                                        0.78 ** 0.5, "br")))


@pytest.mark.parametrize("bad", [[1], 2, None, "sometimes"])
def test_the_setting_takes_a_boolean_only(bad):
    with pytest.raises((ConfigError, ValueError)) as err:
        MatchSettings(embedding_box_rows=bad)
    assert "embedding_box_rows" in str(err.value)
