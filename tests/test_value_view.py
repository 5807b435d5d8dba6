"""The value hash (csadetect/media/view_value.py, ``match.value_view``): PDQ of a picture's value channel
(the largest of R, G, B), on the upload's side a ``value`` variant, on the indicator's side a ``-value``
pdq row, so a copy whose hue was turned (HSV or HSL) or whose colour channels were swapped still meets its
original; a grey picture gets neither; off -> as before."""
from __future__ import annotations

import colorsys
import json

import numpy as np
import pytest
from PIL import Image

from csadetect.config.settings import Limits, MatchSettings, load_settings
from csadetect.events.event import make_event, parse_event
from csadetect.indicators.index import IndicatorIndex
from csadetect.indicators.rows import media_rows
from csadetect.indicators.snapshot import Snapshot
from csadetect.media.hashing import SCALE_INFO, hamming, hash_image_with_views, load_image, pdq_from_image
from csadetect.media.synth import jpeg_bytes, synthetic_image
from csadetect.media.regions import preprocessor
from csadetect.media.view_value import VALUE, is_value_name, value_name, value_picture
from csadetect.signals.pdq import PdqSignal
from csadetect.transforms.hash import HashMediaFn
from training.robustness_set import TRANSFORMS
from training.robustness_unseen import turn_hue

ON, OFF = MatchSettings(), MatchSettings(value_view=False)


def hsl_turn(img: Image.Image, degrees: float) -> Image.Image:
    """The hue turned in HSL (GIMP's and Photoshop's Hue/Saturation), pixel by pixel (a small picture)."""
    a = np.asarray(img.convert("RGB"), dtype=np.float64).reshape(-1, 3) / 255
    turn = degrees / 360
    out = [colorsys.hls_to_rgb((h + turn) % 1.0, lum, s) for h, lum, s in (colorsys.rgb_to_hls(*p) for p in a)]
    return Image.fromarray((np.asarray(out).reshape(img.size[1], img.size[0], 3) * 255 + 0.5).astype(np.uint8))


def swapped(img: Image.Image) -> Image.Image:
    """RGB saved as BGR."""
    return Image.merge("RGB", img.convert("RGB").split()[::-1])


@pytest.fixture(scope="module")
def known() -> Image.Image:
    return synthetic_image(4, (320, 240))


def _index(img: Image.Image, settings: MatchSettings, tmp_path):
    path = tmp_path / f"known-{settings.value_view}.jpg"
    path.write_bytes(jpeg_bytes(img))
    rows, _ = media_rows(str(path), settings)
    return rows, IndicatorIndex.from_snapshot(Snapshot.in_memory(rows), settings)


def _query(img: Image.Image, settings: MatchSettings):
    return hash_image_with_views(jpeg_bytes(img), value=settings.value_view)[0]


def test_the_value_picture_is_the_largest_channel_and_none_for_grey():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, np.arange(6) * 40, 90
    img = Image.fromarray(rgb)
    img.info[SCALE_INFO] = (2.0, 2.0)
    value = value_picture(img, SCALE_INFO)
    out = np.asarray(value)
    assert value.mode == "RGB" and (out == rgb.max(axis=2)[..., None]).all()
    assert value.info[SCALE_INFO] == (2.0, 2.0)  # PDQ blurs it as the picture it was decoded from
    assert value_picture(img.convert("L").convert("RGB")) is None
    assert value_picture(img.convert("L")) is None


def test_value_names():
    assert value_name("image") == VALUE and value_name("trim") == f"trim-{VALUE}" and value_name("cell") == "cell-value"
    assert all(is_value_name(n) for n in (VALUE, "trim-value", "frame-2-value"))
    assert not any(is_value_name(n) for n in ("image", "trim", "cell", "values", "frame-2"))


@pytest.mark.parametrize("edit", [lambda im: turn_hue(im, 40), lambda im: turn_hue(im, -30), swapped,
                                  lambda im: hsl_turn(im, 35)], ids=["hsv+40", "hsv-30", "bgr", "hsl+35"])
def test_a_recoloured_copy_matches_through_the_value_row(known, edit, tmp_path):
    copy = edit(known)
    rows, index = _index(known, ON, tmp_path)
    value_row = next(r for r in rows if r.indicator_id.endswith(f"-pdq-{VALUE}"))
    own_row = next(r for r in rows if r.indicator_id.endswith("-pdq"))
    hashes = _query(copy, ON)
    assert hamming(hashes.pdq, bytes.fromhex(own_row.value)) > ON.pdq_threshold  # the premise: PDQ alone misses it
    found = {m.indicator_id: m for m in index.match_image(hashes)}
    assert value_row.indicator_id in found and found[value_row.indicator_id].distance <= 8  # the value is kept
    assert PdqSignal().explain(hashes, value_row.value, ON)["view"] == VALUE

    _, plain = _index(known, OFF, tmp_path)
    assert not [m for m in plain.match_image(_query(copy, OFF)) if m.kind == "pdq"]


@pytest.mark.parametrize("framing", ["border_colour_20", "screenshot_phone", "pip_40"])
def test_a_recoloured_copy_in_a_frame_matches_through_its_view_s_value(known, framing, tmp_path):
    """The hue turned, then framed or pasted into another picture: the value hash of the whole upload holds
    the frame too, the value hash of the view (or sub-image) that cuts the frame off meets the value row."""
    frame, _ = TRANSFORMS[framing]
    copy = jpeg_bytes(frame(turn_hue(known, 40), np.random.default_rng(3)))
    rows, index = _index(known, ON, tmp_path)
    value_row = next(r for r in rows if r.indicator_id.endswith(f"-pdq-{VALUE}"))
    hashes, pictures = hash_image_with_views(copy, preprocess=preprocessor(ON), value=True)
    assert [n for n, _ in hashes.variants] == [n for n, _ in pictures[1:]] + [value_name(n) for n, _ in pictures]
    found = {m.indicator_id for m in index.match_image(hashes)}
    assert value_row.indicator_id in found
    view = PdqSignal().explain(hashes, value_row.value, ON)["view"]
    assert view.endswith(f"-{VALUE}") and view != VALUE and view[: -len(VALUE) - 1] in dict(pictures)

    whole_only = hash_image_with_views(copy, value=True)[0]  # the premise: the whole upload's value misses it
    assert [n for n, _ in whole_only.variants] == [VALUE] and not index.match_image(whole_only)
    _, plain = _index(known, OFF, tmp_path)
    assert not plain.match_image(hash_image_with_views(copy, preprocess=preprocessor(OFF))[0])


def test_an_unrelated_picture_does_not_meet_the_value_row(known, tmp_path):
    _, index = _index(known, ON, tmp_path)
    for seed in (5, 6, 7):
        assert index.match_image(_query(turn_hue(synthetic_image(seed, (320, 240)), 30), ON)) == []


def test_rows_and_variants_only_for_a_colour_picture_and_only_when_on(known, tmp_path):
    rows, _ = _index(known, ON, tmp_path)
    assert sorted(r.indicator_id.split("-", 1)[1] for r in rows) == ["md5", "pdq", f"pdq-{VALUE}", "sha256"]
    rows, _ = _index(known, OFF, tmp_path)
    assert sorted(r.indicator_id.split("-", 1)[1] for r in rows) == ["md5", "pdq", "sha256"]
    grey = known.convert("L").convert("RGB")
    rows, _ = _index(grey, ON, tmp_path)
    assert sorted(r.indicator_id.split("-", 1)[1] for r in rows) == ["md5", "pdq", "sha256"]

    hashes, pictures = hash_image_with_views(jpeg_bytes(known), value=True)
    plain, plain_pictures = hash_image_with_views(jpeg_bytes(known))
    assert [n for n, _ in hashes.variants] == [VALUE] and plain.variants == ()
    assert [n for n, _ in pictures] == [n for n, _ in plain_pictures] == ["image"]  # never an embedding input
    expected = pdq_from_image(value_picture(load_image(jpeg_bytes(known)), SCALE_INFO))
    assert dict(hashes.variants)[VALUE].pdq == expected.pdq and dict(hashes.variants)[VALUE].dihedral == expected.dihedral


def test_the_hash_stage_passes_the_setting(known):
    def variants(settings):
        fn = HashMediaFn(Limits(), settings)
        fn.setup()
        (item,) = list(fn.process(parse_event(json.dumps(make_event("v", jpeg_bytes(known), kind="image")))))
        return [name for name, _ in item.image.variants]

    assert VALUE in variants(ON) and VALUE not in variants(OFF)
    assert load_settings().match.value_view is True
