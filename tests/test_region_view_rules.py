"""The query-side region views' names, cuts and rules (issue 17), without the model or an index: views
named after the image and the way they are cut (``image:flip-a80tl`` ...), region suffixes, the places of
the grid, the orientation rule and its turn gate, the region gate's similarity, and the model inputs cut
from a mirrored or turned source. The matcher with the real model is in ``tests/test_region_views.py``."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from csadetect.config.settings import ConfigError, MatchSettings, load_settings
from csadetect.media.synth import synthetic_image
from csadetect.models.embedding import model_inputs, region_source
from csadetect.signals.embedding import EMBEDDING_REGIONS, QUERY_REGIONS, REGION_SOURCE_SIDE, query_regions


def test_query_region_views_are_named_after_the_image_and_not_mirrored():
    img = Image.new("RGB", (1200, 800), (10, 20, 30))
    names, batch = model_inputs([("image", img)], 32, flip=True, regions=QUERY_REGIONS)
    expected = tuple(f"image-a{round(q * 100):02d}{x}" for q, anchors in QUERY_REGIONS for x in anchors)
    assert names == ("image", "image:flip") + expected and len(set(expected)) == len(expected) == 60 + 36
    assert sum(bool(re.fullmatch(r"image-a(60|78|8[0-9]|9[0-8])(tl|tr|bl|br|c)", n)) for n in expected) == 60
    assert sum(bool(re.fullmatch(r"image-a(60|70|80|8[8-9]|9[0-8])[tblr]", n)) for n in expected) == 36  # the strips
    assert batch.shape == (2 + 96, 32, 32, 3)
    # cut from the picture reduced to REGION_SOURCE_SIDE a side, aspect kept; small pictures as they are
    assert region_source(img).size == (REGION_SOURCE_SIDE, round(800 * REGION_SOURCE_SIDE / 1200))
    small = Image.new("RGB", (200, 90))
    assert region_source(small) is small
    assert model_inputs([("image", img)], 32, flip=True, regions=())[0] == ("image", "image:flip")
    assert model_inputs([], 32, flip=True, regions=QUERY_REGIONS)[0] == ()



def test_region_suffixes_round_trip():
    from csadetect.signals.embedding import parse_region_suffix, region_suffix

    for area, places in QUERY_REGIONS + EMBEDDING_REGIONS:
        for place in places:
            assert parse_region_suffix("image" + region_suffix(area, place)) == (area, place)
    for name in ("image", "image:flip", "trim", "image-a80", "image-a80xx"):
        with pytest.raises(ValueError):
            parse_region_suffix(name)



def test_the_region_gate_setting():
    """The gate is off by default (null: every image's region views), else a multiple of the
    threshold's distance, at least 1; a bad value fails in one line."""
    from csadetect.signals.embedding import gate_similarity, region_gate_similarity

    assert load_settings().match.embedding_query_region_gate is MatchSettings().embedding_query_region_gate is None
    assert region_gate_similarity(0.9963, 16.0) == pytest.approx(1 - 16 * 0.0037)
    assert region_gate_similarity(0.9963, None) is None
    assert gate_similarity(0.0037, 15.0) == 1.0 - 15.0 * 0.0037 and gate_similarity(0.0037, None) is None
    assert load_settings(overrides={"match": {"embedding_query_region_gate": 30}}).match.embedding_query_region_gate == 30.0
    for bad in (0.5, "x", float("nan")):
        with pytest.raises(ConfigError) as err:
            load_settings(overrides={"match": {"embedding_query_region_gate": bad}})
        assert "match.embedding_query_region_gate" in str(err.value) and "\n" not in str(err.value)



def test_mirrored_region_view_names():
    from csadetect.signals.embedding import mirror_index, oriented_region_names, region_orientation, turned_names

    assert oriented_region_names(("image-a80tl", "image-a60c"), ":r90") == ("image:r90-a80tl", "image:r90-a60c")
    assert oriented_region_names(("image-a80tl",), "") == ("image-a80tl",)
    assert [region_orientation(n) for n in ("image-a80tl", "image:flip-a80tl", "image:r90-a80tl", "image:r180-a60c",
                                            "image:r270-a90t", "image:flip:r90-a80tl", "image:flip:r180-a60c",
                                            "cell-1:flip:r270-a90t")] == ["", ":flip", ":r90", ":r180", ":r270",
                                                                          ":flip:r90", ":flip:r180", ":flip:r270"]
    for own in ("image:r90", "image:flip"):  # an own vector's name is no region view
        with pytest.raises(ValueError):
            region_orientation(own)
    assert turned_names("image") == ("image:r90", "image:r180", "image:r270",
                                     "image:flip:r90", "image:flip:r180", "image:flip:r270")
    assert oriented_region_names(("image-a80tl",), ":flip:r90") == ("image:flip:r90-a80tl",)
    with pytest.raises(ValueError):
        oriented_region_names(("image-a80tl",), ":r45")

    assert oriented_region_names(("image-a80tl", "image-a60c"), ":flip") == ("image:flip-a80tl", "image:flip-a60c")
    assert mirror_index(("image", "trim", "image:flip")) == 2 and mirror_index(("image", "trim")) is None
    assert mirror_index(()) is None
    with pytest.raises(ValueError):
        oriented_region_names(("image:flip",), ":flip")



def test_a_mirrored_region_view_is_cut_from_the_mirrored_source():
    from csadetect.models.embedding import region_view_inputs

    source = np.asarray(synthetic_image(5, (256, 192)))
    mirrored = region_view_inputs(source, ("image:flip-a80tl", "image:flip-a60c"))
    plain = region_view_inputs(np.ascontiguousarray(source[:, ::-1]), ("image-a80tl", "image-a60c"))
    assert np.array_equal(mirrored, plain)
    assert not np.array_equal(mirrored, region_view_inputs(source, ("image-a80tl", "image-a60c")))



def test_a_turned_region_view_is_cut_from_the_turned_source():
    from csadetect.models.embedding import preprocess, region_view_inputs, turned_view_inputs

    source = np.asarray(synthetic_image(5, (256, 192)))
    for quarter, way in enumerate((":r90", ":r180", ":r270"), start=1):
        for mirror, seen in (("", source), (":flip", source[:, ::-1])):
            turned = np.ascontiguousarray(np.rot90(seen, quarter))
            assert np.array_equal(region_view_inputs(source, (f"image{mirror}{way}-a80tl", f"image{mirror}{way}-a70b")),
                                  region_view_inputs(turned, ("image-a80tl", "image-a70b")))
    names, batch = turned_view_inputs(source)
    assert names == ("image:r90", "image:r180", "image:r270", "image:flip:r90", "image:flip:r180", "image:flip:r270")
    assert batch.shape == (6, 64, 64, 3)
    picture = Image.fromarray(source)
    upright = picture.transpose(Image.Transpose.ROTATE_90)  # Pillow turns counter-clockwise too
    assert np.array_equal(batch[0], preprocess(upright))
    assert np.array_equal(batch[3], preprocess(picture.transpose(Image.Transpose.TRANSPOSE)))  # mirrored, turned a quarter
    assert np.array_equal(batch[4], preprocess(picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM)))



def test_the_orientation_rule_shared_by_the_index_and_the_benchmark():
    """``signals.embedding.orientations``: nearer by more than the tolerance wins, within it both the
    image and its mirror, no rows (-1 every way) the image alone; a turn too when it is nearer than
    both by more than the tolerance (added to them, never in their place)."""
    from csadetect.signals.embedding import orientations

    assert orientations({"": 0.99, ":flip": 0.98}, 0.0037) == ("",)
    assert orientations({"": 0.98, ":flip": 0.99}, 0.0037) == (":flip",)
    assert orientations({"": 0.99, ":flip": 0.988}, 0.0037) == ("", ":flip")
    assert orientations({"": -1.0, ":flip": -1.0}, 0.0037) == ("",)
    assert orientations({"": -1.0, ":flip": -1.0, ":r90": -1.0}, 0.0037) == ("",)
    turned = {"": 0.90, ":flip": 0.91, ":r90": 0.99, ":r180": 0.80, ":r270": 0.95}
    assert orientations(turned, 0.0037) == (":flip", ":r90")
    assert orientations({**turned, ":flip": 0.9}, 0.0037) == ("", ":flip", ":r90")  # three at the most
    assert orientations({**turned, ":r270": 0.989, ":flip": 0.988}, 0.0037) == (":flip",)  # not clearly nearer
    assert orientations({**turned, "": 0.99}, 0.0037) == ("",)  # a tie keeps the image
    assert orientations({"": 0.90, ":r180": 0.95}, 0.0037) == ("", ":r180")  # no mirror vector



def test_a_turn_far_from_every_row_adds_no_way():
    """``match.embedding_query_turn_gate``: a turn nearer than the image and its mirror, but not within
    the gate's multiple of the tolerance of any row, adds no way (an upload far from every row); at the
    floor it does; without a gate (None) any clearly nearer turn does, as in the release before."""
    from csadetect.signals.embedding import TURN_GATE, orientations

    assert TURN_GATE == MatchSettings().embedding_query_turn_gate == 15.0
    far = {"": 0.70, ":flip": 0.71, ":r90": 0.80, ":r180": 0.60, ":r270": 0.65}
    assert orientations(far, 0.0037) == (":flip",)
    assert orientations(far, 0.0037, turn_gate=None) == (":flip", ":r90")
    assert orientations(far, 0.0037, turn_gate=100.0) == (":flip", ":r90")  # floor 0.63
    floor = 1.0 - 15.0 * 0.0037
    assert orientations({**far, ":r90": floor}, 0.0037) == (":flip", ":r90")
    assert orientations({**far, ":r90": floor - 0.001}, 0.0037) == (":flip",)
    with pytest.raises(ValueError):
        MatchSettings(embedding_query_turn_gate=0.5)  # within less than the threshold's own distance



def test_query_grid_places_and_names():
    """``match.embedding_query_grid_shares`` (issue 17, random-place crops): a grid share's views are cut at the
    corners and the centre first, then at the other points of a grid whose places lie at most
    ``QUERY_GRID_STEP`` of the side apart over the free space; their names parse as region views and count as
    region views (the same strictness); a grid share that is not a region share fails in one line."""
    from csadetect.media.crops import anchor, box_crop, grid_places
    from csadetect.signals.embedding import (QUERY_GRID_STEP, QUERY_REGION_PLACES, parse_region_suffix, query_grid,
                                             view_weights)

    assert grid_places(3) == ("tl", "g310", "tr", "g301", "c", "g321", "bl", "g312", "br")
    assert anchor("g512") == (0.25, 0.5) and anchor("g423") == (2 / 3, 1.0) and anchor("tr") == (1.0, 0.0)
    for bad in ("g533x", "g550", "g1", "x"):
        with pytest.raises(KeyError):
            anchor(bad)
    xy = np.indices((201, 101)).astype(np.uint8)  # pixel (x, y) holds (x, y, 0)
    img = Image.fromarray(np.stack([xy[1], xy[0], np.zeros_like(xy[0])], axis=-1), "RGB")
    cut = box_crop(img, 0.8, 0.8, "g512")  # a quarter of the free 20 px across, half of the free 40 px down
    assert cut.size == (81, 161) and cut.getpixel((0, 0)) == (5, 20, 0)
    assert len(query_grid(0.80)) == 25 and len(query_grid(0.86)) == 17 and len(query_grid(0.94)) == 9
    assert len(query_grid(0.60)) == 81  # at most 9 x 9 places (there 2.8% apart)
    for share in (0.78, 0.80, 0.86, 0.94, 0.98):
        places = query_grid(share)
        assert places[:5] == QUERY_REGION_PLACES and len(set(places)) == len(places)
        xs = sorted({anchor(p)[0] for p in places})
        assert max(b - a for a, b in zip(xs, xs[1:])) * (1 - share ** 0.5) <= QUERY_GRID_STEP + 1e-9
    assert parse_region_suffix("image:flip-a80g512") == (0.8, "g512")
    assert view_weights(["image-a80g512"])[0] == view_weights(["image-a80tl"])[0] > 1.0

    assert query_regions(MatchSettings(embedding_query_region_shares=(0.9, 0.8), embedding_query_grid_shares=(0.8,),
                                       embedding_query_strip_shares=())) == ((0.8, query_grid(0.8)),
                                                                             (0.9, QUERY_REGION_PLACES))
    assert MatchSettings().embedding_query_grid_shares == () == load_settings().match.embedding_query_grid_shares
    for bad in ([0.99], [0.835], [0.8, 0.8]):
        with pytest.raises(ConfigError) as err:
            load_settings(overrides={"match": {"embedding_query_grid_shares": bad}})
        assert "embedding_query_grid_shares" in str(err.value) and "\n" not in str(err.value)

