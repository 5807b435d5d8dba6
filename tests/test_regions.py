"""Heavy crops and composites (issue 17): the sub-image detector (``csadetect.media.regions``: collage
cells, picture-in-picture and messenger or feed insets, boundary refinement), the query-view switches
and the index-side region rows' ids and boxes (``csadetect.signals.embedding.region_crops``). The
matcher with the real model and FAISS is in ``tests/test_region_views.py``."""
from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from PIL import Image, ImageDraw

from csadetect.config.settings import ConfigError, Limits, MatchSettings, load_settings
from csadetect.media.hashing import hash_image_with_views
from csadetect.media.preprocess import views
from csadetect.media import regions
from csadetect.media.regions import preprocessor, refine_box, sub_image_boxes, sub_images, views_and_sub_images
from csadetect.media.synth import synthetic_image
from csadetect.signals.embedding import EMBEDDING_REGIONS, embedding_views, index_regions, region_crops
from csadetect.transforms.hash import HashMediaFn
from training import robustness_set as rs


def _near(box, want, tol=6):
    return all(abs(a - b) <= tol for a, b in zip(box, want))


def _collage() -> tuple[Image.Image, tuple]:
    """Two generated pictures side by side with a white gutter; the left one's box."""
    a, b = synthetic_image(11, (300, 360)), synthetic_image(12, (200, 360))
    canvas = Image.new("RGB", (508, 360), (255, 255, 255))
    canvas.paste(a, (0, 0))
    canvas.paste(b, (308, 0))
    return canvas, (0, 0, 300, 360)


def test_a_collage_cell_is_found():
    canvas, left = _collage()
    boxes = sub_image_boxes(canvas)
    assert any(_near(box, left) for box in boxes), boxes
    assert len(boxes) <= 4


def test_a_picture_in_picture_inset_is_found():
    back = rs._filler(np.random.default_rng(5), (640, 480))
    inset = synthetic_image(13, (400, 300))
    back.paste(inset, (150, 120))
    boxes = sub_image_boxes(back)
    assert any(_near(box, (150, 120, 550, 420)) for box in boxes), boxes


@pytest.mark.parametrize("box", [(150, 90, 1050, 770), (0, 93, 643, 781), (333, 155, 1011, 700)])
def test_a_sub_image_box_lands_on_the_boundary_pixel(box):
    """The analysis copy (256 px, here ~4.7 full px a line) places a boundary to about two of its
    lines; the box is then moved to the full picture's boundary: exact to a pixel after JPEG."""
    back = rs._filler(np.random.default_rng(7), (1200, 900))
    inset = synthetic_image(17, (box[2] - box[0], box[3] - box[1]))
    back.paste(inset, box[:2])
    buf = io.BytesIO()
    back.save(buf, "JPEG", quality=85)
    found = sub_image_boxes(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert any(_near(b, box, tol=1) for b in found), found


def test_refine_box_moves_each_inner_side_to_the_strongest_line():
    canvas = np.full((200, 300, 3), 90, np.uint8)
    canvas[40:160, 60:250] = np.asarray(synthetic_image(3, (190, 120)))
    assert refine_box(canvas, (57, 43, 252, 158), reach=4) == (60, 40, 250, 160)
    near = refine_box(canvas, (57, 43, 252, 158), reach=1)
    assert all(abs(a - b) <= 1 for a, b in zip(near, (57, 43, 252, 158)))  # no further than reach
    assert refine_box(canvas, (0, 43, 252, 200), reach=4) == (0, 40, 250, 200)  # canvas edges stay
    assert refine_box(canvas, (57, 43, 252, 158), reach=0) == (57, 43, 252, 158)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_ordinary_picture_gets_no_sub_image(seed):
    img = rs.GENERATORS["landscape"](np.random.default_rng(seed))
    assert sub_image_boxes(img) == []
    assert sub_images(img) == []


def test_views_and_sub_images_skip_a_cell_the_size_of_a_view():
    canvas, _ = _collage()
    names = [name for name, _ in views_and_sub_images(canvas)]
    assert names[: len(views(canvas))] == [name for name, _ in views(canvas)]
    assert "cell" in names
    framed = Image.new("RGB", (500, 400), (255, 255, 255))
    framed.paste(synthetic_image(14, (400, 300)), (50, 50))  # a border: trim finds it, the cell would repeat it
    sizes = [v.size for _, v in views_and_sub_images(framed)]
    assert len(sizes) == len(set(sizes))


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_refine_box_keeps_any_box_valid_and_near(data):
    """On any picture and any box: a box inside the picture, each side within ``reach`` of where
    it was, a side on the canvas edge left there."""
    h, w = data.draw(st.integers(1, 90), label="h"), data.draw(st.integers(1, 90), label="w")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    kind = data.draw(st.sampled_from(["noise", "flat", "steps"]), label="kind")
    rng = np.random.default_rng(seed)
    if kind == "noise":
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == "flat":
        rgb = np.full((h, w, 3), int(rng.integers(0, 256)), np.uint8)
    else:
        rgb = np.repeat(np.repeat(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8), -(-h // 3), 0), -(-w // 3), 1)[:h, :w]
    left = data.draw(st.integers(0, w - 1), label="left")
    right = data.draw(st.integers(left + 1, w), label="right")
    top = data.draw(st.integers(0, h - 1), label="top")
    bottom = data.draw(st.integers(top + 1, h), label="bottom")
    reach = data.draw(st.integers(0, 8), label="reach")
    box = (left, top, right, bottom)
    out = refine_box(rgb, box, reach)
    assert 0 <= out[0] < out[2] <= w and 0 <= out[1] < out[3] <= h
    assert all(abs(a - b) <= reach for a, b in zip(out, box))
    for i, edge in ((0, 0), (1, 0), (2, w), (3, h)):
        if box[i] == edge:
            assert out[i] == edge


@pytest.mark.parametrize("seed", [23, 36, 37])
def test_a_cell_cut_more_exactly_than_a_view_of_its_size_is_kept(seed):
    """A messenger screenshot: the content view keeps a strip of the bubble round the photo; the
    sub-image, the same size within 2%, is cut on the photo's edge. Both are hashed (it used to be
    dropped for its size), and the cell is the nearer."""
    img = synthetic_image(seed, (512, 512))
    data = rs.encode(rs.t_chat(img, np.random.default_rng(seed)), "jpeg")
    own = hash_image_with_views(rs.encode(img, "png"))[0].dihedral
    hashed, _ = hash_image_with_views(data, preprocess=views_and_sub_images)

    def bits(v) -> int:
        return min(bin(int.from_bytes(v.pdq, "big") ^ int.from_bytes(h, "big")).count("1") for h in own)

    cells = [bits(v) for name, v in hashed.variants if name == "cell"]
    content = [bits(v) for name, v in hashed.variants if name == "content"]
    assert cells and content
    assert min(cells) <= 16 and min(cells) < min(content)


def test_the_switches_choose_the_query_views():
    assert preprocessor(MatchSettings()) is views_and_sub_images
    assert preprocessor(MatchSettings(sub_images=False)) is views
    assert preprocessor(MatchSettings(preprocess=False)) is sub_images
    assert preprocessor(MatchSettings(preprocess=False, sub_images=False)) is None


def test_the_pipeline_hashes_with_the_switched_views():
    for match, want in ((MatchSettings(), views_and_sub_images), (MatchSettings(sub_images=False), views)):
        fn = HashMediaFn(Limits(), match)
        fn.setup()
        assert fn._preprocess is want


def _blurred_fill_upload() -> bytes:
    """A generated picture centred in front of a blurred, zoomed copy of itself, as JPEG bytes."""
    out = rs.t_blurred_fill(synthetic_image(23, (480, 360)), None)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def test_the_fill_view_switch():
    data = _blurred_fill_upload()
    names = lambda match: [n for n, _ in hash_image_with_views(data, preprocess=preprocessor(match))[1]]  # noqa: E731
    assert "fill" in names(MatchSettings())
    assert "fill" in names(MatchSettings(sub_images=False))
    assert "fill" not in names(MatchSettings(fill_view=False))
    assert "fill" not in names(MatchSettings(fill_view=False, sub_images=False))
    # the other views are still looked for without it
    assert preprocessor(MatchSettings(fill_view=False)).func is views_and_sub_images
    fn = HashMediaFn(Limits(), MatchSettings(fill_view=False))
    fn.setup()
    assert fn._preprocess.keywords["p"].fill_share == 0
    with pytest.raises(ConfigError, match="fill_view"):
        load_settings(overrides={"match": {"fill_view": "often"}})


def test_bad_switch_values_fail_in_one_line():
    with pytest.raises(Exception) as err:
        MatchSettings(sub_images="sometimes")
    assert "sub_images" in str(err.value)
    with pytest.raises(Exception) as err:
        MatchSettings(embedding_region_rows=[1])
    assert "embedding_region_rows" in str(err.value)


def test_region_rows_ids_and_boxes():
    img = synthetic_image(15, (400, 300))
    rows = region_crops(img)
    want = [f"-a{round(a * 100):02d}{anchor}" for a, anchors in EMBEDDING_REGIONS for anchor in anchors]
    assert [suffix for suffix, _ in rows] == want
    by = dict(rows)
    assert by["-a60tl"].size == (310, 232)  # sqrt(0.6) of each side
    assert np.array_equal(np.asarray(by["-a60tl"]), np.asarray(img.crop((0, 0, 310, 232))))
    assert np.array_equal(np.asarray(by["-a60br"]), np.asarray(img.crop((90, 68, 400, 300))))
    # strips: that share of one dimension, the other whole, along the side
    assert np.array_equal(np.asarray(by["-a60t"]), np.asarray(img.crop((0, 0, 400, 180))))
    assert np.array_equal(np.asarray(by["-a70b"]), np.asarray(img.crop((0, 90, 400, 300))))
    assert np.array_equal(np.asarray(by["-a80l"]), np.asarray(img.crop((0, 0, 320, 300))))
    assert np.array_equal(np.asarray(by["-a90r"]), np.asarray(img.crop((40, 0, 400, 300))))
    assert len(want) == 9 + 16
    assert len(embedding_views(img)) == len(embedding_views(img, regions=())) + len(want)  # regions by default
    assert index_regions(MatchSettings()) == EMBEDDING_REGIONS
    assert index_regions(MatchSettings(embedding_region_rows=False)) == ()
    assert load_settings().match.sub_images and load_settings().match.embedding_region_rows  # the defaults



def _feed_screenshot(seed: int, size: tuple, at: tuple) -> tuple[Image.Image, tuple]:
    """A phone feed post (a layout the sub-image thresholds were not chosen on): header bar, avatar,
    name and text above a picture filling under a quarter of the screenshot, reactions and text
    below, a navigation bar; saved as JPEG q85. The picture's box."""
    rng = np.random.default_rng(seed)
    out = Image.new("RGB", (720, 1280), (250, 250, 250))
    draw = ImageDraw.Draw(out)
    draw.rectangle([0, 0, 720, 110], fill=(40, 60, 120))
    draw.ellipse([30, 130, 90, 190], fill=(200, 120, 90))
    draw.text((110, 140), rs._sentence(rng, 2).title(), fill=(20, 20, 20), font=rs._font(26))
    draw.text((40, 210), rs._sentence(rng, 6), fill=(40, 40, 40), font=rs._font(22))
    out.paste(synthetic_image(seed, size), at)
    y = at[1] + size[1] + 20
    for i in range(3):
        draw.text((40 + 200 * i, y), rs._sentence(rng, 1), fill=(90, 90, 90), font=rs._font(20))
    draw.text((40, y + 60), rs._sentence(rng, 7), fill=(40, 40, 40), font=rs._font(22))
    draw.rectangle([0, 1180, 720, 1280], fill=(235, 235, 235))
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=85)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), (at[0], at[1], at[0] + size[0], at[1] + size[1])


@pytest.mark.parametrize("seed,size,at", [(1, (480, 320), (120, 270)), (2, (400, 400), (40, 280)),
                                          (5, (560, 300), (80, 300))])
def test_an_inset_under_a_quarter_of_a_screenshot_is_found(seed, size, at):
    """17-24% of the screenshot, its short sides under the 30% span of a candidate line: only the
    inset step (closed on all four sides) finds it, and exactly."""
    shot, box = _feed_screenshot(seed, size, at)
    assert any(_near(b, box, tol=2) for b in sub_image_boxes(shot)), sub_image_boxes(shot)
    no_insets = dataclasses.replace(regions.DEFAULT, inset_views=0)
    assert not any(_near(b, box, tol=2) for b in sub_image_boxes(shot, no_insets))


def test_a_messenger_bubble_photo_is_found_beside_the_box_with_its_bubble():
    """The robustness set's messenger screenshot with a landscape photo (19% of it): the inset may
    lie inside a larger box of step 4 (photo and bubble) and is still kept."""
    img = synthetic_image(21, (640, 420))
    shot = rs.t_chat(img, np.random.default_rng(3))
    ph = round(img.height * 420 / img.width)
    pw = round(img.width * ph / img.height)
    box = (600 - 36 - pw, 250, 600 - 36, 250 + ph)
    found = sub_image_boxes(shot)
    assert any(_near(b, box, tol=2) for b in found), found
    assert len(found) == len(set(found))
