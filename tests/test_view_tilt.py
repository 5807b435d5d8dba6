"""Tests of the ``tilt`` view (csadetect.media.view_tilt): a picture turned by a few degrees on a
one-colour canvas comes back upright and hashes near its original; straight pictures, borders,
ordinary photos and a turned copy cropped back to a rectangle get no tilt view; the switch."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from csadetect.config.settings import MatchSettings
from csadetect.media import synth
from csadetect.media.hashing import hamming, hash_image, hash_image_with_views
from csadetect.media.preprocess import Params, views
from csadetect.media.regions import preprocessor, view_params
from csadetect.media.view_common import _analysis_arrays
from csadetect.media.view_tilt import tilt_quad
from tests.pictures import jpeg as _jpeg, photo

skdata = pytest.importorskip("skimage.data")


def _photo(name: str = "astronaut", size: tuple[int, int] = (480, 360)) -> Image.Image:
    return photo(name, size)


def _decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def _turned(img: Image.Image, degrees: float, fill=(0, 0, 0)) -> Image.Image:
    return img.rotate(degrees, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=fill)


def _tilt(img: Image.Image, p: Params = Params()):
    return dict(views(img, p)).get("tilt")


def _best(data: bytes, original: bytes) -> int:
    """Smallest distance of any hash the matcher looks up (image and views, 8 dihedral each)."""
    hashes, _ = hash_image_with_views(data, preprocess=views)
    return min(hamming(h, original) for r in [hashes] + [v for _, v in hashes.variants] for h in r.dihedral)


@pytest.mark.parametrize("degrees", [-20, -12, -7, -3, 2, 5, 9, 15])
@pytest.mark.parametrize("fill", [(0, 0, 0), (255, 255, 255), (40, 120, 200)])
def test_a_turned_photo_comes_back_upright(degrees, fill):
    photo = _photo()
    original = hash_image(_jpeg(photo, 95)).pdq
    copy = _jpeg(_turned(photo, degrees, fill))
    upright = _tilt(_decode(copy))
    assert upright is not None
    # the picture's own size at the analysis resolution (the canvas at most 512 px), within a few px
    scale = max(1.0, max(_decode(copy).size) / 512)
    assert abs(upright.width - photo.width / scale) <= 6 and abs(upright.height - photo.height / scale) <= 6
    assert hamming(hash_image(_jpeg(upright, 95)).pdq, original) <= 20
    # plain PDQ of the turned copy is far off; the matcher's lookups now include the upright view
    assert hamming(hash_image(copy).pdq, original) > 31
    assert _best(copy, original) <= 20


@pytest.mark.parametrize("seed", range(6))
def test_turned_generated_pictures_and_a_mirror(seed):
    picture = synth.synthetic_image(seed, (640, 480))
    original = hash_image(_jpeg(picture, 95)).pdq
    for copy in (_turned(picture, 7), _turned(ImageOps.mirror(picture), -6, (255, 255, 255))):
        data = _jpeg(copy)
        assert _tilt(_decode(data)) is not None
        assert _best(data, original) <= 31  # the mirror through the view's dihedral hashes


def test_a_large_turned_picture_is_analysed_small():
    photo = _photo(size=(1600, 1200))
    upright = _tilt(_turned(photo, 8))
    assert upright is not None and max(upright.size) <= 512  # the analysis resolution
    assert hamming(hash_image(_jpeg(upright, 95)).pdq, hash_image(_jpeg(photo, 95)).pdq) <= 20


@pytest.mark.parametrize("make", [
    lambda p: p,  # an ordinary photo
    lambda p: ImageOps.expand(p, 40, (255, 255, 255)),  # a straight picture on a border (the trim view's)
    lambda p: ImageOps.expand(p, 60, (0, 0, 0)),
    lambda p: _turned(p, 0.4),  # a turn too small to matter
    lambda p: _turned(p, 40),  # beyond tilt_max_deg
], ids=["ordinary", "white-border", "black-border", "half-degree", "forty-degrees"])
def test_no_tilt_view_where_there_is_no_tilt(make):
    assert _tilt(_decode(_jpeg(make(_photo())))) is None


def test_a_turned_copy_cropped_back_to_a_rectangle_has_no_fill_to_go_by():
    turned = _turned(_photo(), 6)
    w, h = turned.size
    cropped = turned.crop((int(0.15 * w), int(0.15 * h), int(0.85 * w), int(0.85 * h)))
    assert _tilt(_decode(_jpeg(cropped))) is None


def test_corners_of_other_colours_or_a_picture_that_reaches_them():
    # only one corner is fill: no fill colour to go by
    turned = _turned(_photo(), 7)
    arr = np.asarray(turned).copy()
    arr[:40, :40] = (200, 30, 30)
    arr[:40, -40:] = (30, 200, 30)
    arr[-40:, :40] = (30, 30, 200)
    assert _tilt(Image.fromarray(arr)) is None
    # fill corners but a busy canvas outside the picture (a shape on a patterned page): refused
    noisy = np.asarray(turned).copy()
    rng = np.random.default_rng(0)
    outside = (noisy.sum(axis=2) == 0)
    outside[:8, :8] = outside[:8, -8:] = outside[-8:, :8] = outside[-8:, -8:] = False
    noisy[outside] = rng.integers(0, 256, (int(outside.sum()), 3))
    assert _tilt(Image.fromarray(noisy)) is None


def test_quad_corners_are_where_the_picture_is():
    photo = _photo(size=(400, 300))
    turned = _turned(photo, 10)
    rgb, _, scale = _analysis_arrays(turned, 512)
    quad = tilt_quad(rgb, Params())
    assert quad is not None and scale == 1.0
    # Pillow turns counter-clockwise about the centre: the picture's corners, on the expanded canvas
    w, h = photo.size
    W, H = turned.size
    t = np.radians(10)
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    corners = np.array([[-w / 2, -h / 2], [-w / 2, h / 2], [w / 2, h / 2], [w / 2, -h / 2]]) @ rot.T + [W / 2, H / 2]
    assert np.abs(quad - corners).max() <= 2.5


def test_the_switch():
    data = _jpeg(_turned(_photo(), 8))
    names = lambda match: [n for n, _ in hash_image_with_views(data, preprocess=preprocessor(match))[1]]  # noqa: E731
    assert "tilt" in names(MatchSettings())
    assert "tilt" in names(MatchSettings(sub_images=False))
    assert "tilt" not in names(MatchSettings(tilt_view=False))
    assert "tilt" not in names(MatchSettings(tilt_view=False, sub_images=False))
    assert view_params(True, False).tilt_min_deg == 0 and view_params(True, False).fill_share > 0
    assert view_params(False, True).fill_share == 0 and view_params(False, True).tilt_min_deg > 0
    assert view_params() is view_params(True, True)
    assert _tilt(_decode(data), Params(tilt_min_deg=0)) is None


def test_the_index_matches_a_turned_copy_through_the_view(tmp_path):
    """A known picture's PDQ row (``indicators from-media``) matches a copy turned by 9 degrees on
    white through the ``tilt`` view; with ``match.tilt_view: false`` it does not."""
    from csadetect.indicators.index import IndicatorIndex
    from csadetect.indicators.rows import media_rows
    from csadetect.indicators.snapshot import Snapshot

    settings = MatchSettings()
    path = tmp_path / "known.png"
    _photo("coffee").save(path)
    rows, _ = media_rows(str(path), settings)
    index = IndicatorIndex.from_snapshot(Snapshot.in_memory(rows), settings)
    copy = _jpeg(_turned(_photo("coffee"), -9, (255, 255, 255)))
    on, _ = hash_image_with_views(copy, preprocess=preprocessor(settings))
    off, _ = hash_image_with_views(copy, preprocess=preprocessor(MatchSettings(tilt_view=False)))
    found = index.match_image(on)
    assert [m.kind for m in found] == ["pdq"] and found[0].distance <= 31
    assert index.match_image(off) == []


@pytest.mark.parametrize("seed", range(40))
def test_random_shapes_on_a_fill_never_break_the_view(seed):
    """Random polygons, noise and degenerate outlines on a one-colour canvas: views() returns, and a
    tilt view, when there is one, is a picture no larger than the analysed canvas."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    w, h = (int(v) for v in rng.integers(24, 700, 2))
    fill = tuple(int(c) for c in rng.integers(0, 256, 3))
    img = Image.new("RGB", (w, h), fill)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 4))):
        pts = [(float(rng.uniform(-0.2, 1.2) * w), float(rng.uniform(-0.2, 1.2) * h)) for _ in range(int(rng.integers(2, 7)))]
        d.polygon(pts, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    if rng.random() < 0.3:
        arr = np.asarray(img).copy()
        arr[rng.random((h, w)) < rng.uniform(0, 0.5)] = 0
        img = Image.fromarray(arr)
    upright = dict(views(img)).get("tilt")
    if upright is not None:
        side = max(1.0, max(w, h) / 512)
        assert upright.width * upright.height <= (w / side + 2) * (h / side + 2)
