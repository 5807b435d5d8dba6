"""Tests of csadetect.media.preprocess: framing found and removed, ordinary pictures left alone."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from csadetect.media import preprocess
from csadetect.media.hashing import hamming, hash_image
from csadetect.media.preprocess import Params, find_boxes, views

skdata = pytest.importorskip("skimage.data")

THRESHOLD = 31


def _photo(name: str = "astronaut", size: tuple[int, int] = (384, 288)) -> Image.Image:
    """A benign natural photo bundled with scikit-image, resized (RGB)."""
    arr = getattr(skdata, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return Image.fromarray(arr[..., :3]).convert("RGB").resize(size, Image.Resampling.LANCZOS)


def _jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def _pad(img: Image.Image, left: int, top: int, right: int, bottom: int, colour) -> Image.Image:
    out = Image.new("RGB", (img.width + left + right, img.height + top + bottom), colour)
    out.paste(img, (left, top))
    return out


def _box_close(box, expected, tol: int = 3) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(box, expected))


def _best_distance(hashes, reference: bytes, variants_only: bool = False) -> int:
    """Smallest distance of any dihedral hash (main and/or variants, quality >= 50) to reference."""
    cands = [] if variants_only else list(hashes.dihedral)
    for _, v in hashes.variants:
        if v.quality >= 50:
            cands += list(v.dihedral)
    return min((hamming(h, reference) for h in cands), default=257)


def _font(size: int):
    return ImageFont.load_default(size=size)


def _screenshot(photo: Image.Image) -> Image.Image:
    """Phone-app style screenshot: status bar, header with avatar and name, the photo at full
    width, action icons, caption lines and a navigation bar."""
    W, H = 540, 1170
    out = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    draw.text((24, 14), "12:34", fill=(20, 20, 20), font=_font(22))
    for i in range(3):
        draw.rectangle([W - 120 + 34 * i, 20, W - 104 + 34 * i, 36], outline=(20, 20, 20), width=2)
    draw.ellipse([16, 70, 64, 118], fill=(200, 120, 60))
    draw.text((76, 80), "garden friends", fill=(20, 20, 20), font=_font(22))
    ph = round(photo.height * W / photo.width)
    out.paste(photo.resize((W, ph), Image.Resampling.LANCZOS), (0, 132))
    y = 132 + ph + 16
    for i in range(4):
        draw.ellipse([16 + 50 * i, y, 40 + 50 * i, y + 24], outline=(20, 20, 20), width=2)
    y += 50
    for line in ("lovely weather at the market today", "with friends and music", "see you next weekend"):
        draw.text((16, y), line, fill=(20, 20, 20), font=_font(20))
        y += 30
    draw.rectangle([0, H - 80, W, H], fill=(245, 245, 245))
    for i in range(5):
        cx = 54 + 108 * i
        draw.rectangle([cx - 12, H - 52, cx + 12, H - 28], outline=(20, 20, 20), width=2)
    return out


# --------------------------------------------------------------------------- borders


@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 0, 0), (200, 40, 70), (90, 160, 90)])
def test_uniform_border_is_trimmed_to_within_a_few_pixels(colour):
    photo = _photo("astronaut")
    framed = _decode(_jpeg(_pad(photo, 40, 40, 40, 40, colour), quality=75))
    boxes = dict(find_boxes(framed))
    assert "trim" in boxes, boxes
    assert _box_close(boxes["trim"], (40, 40, 40 + photo.width, 40 + photo.height)), boxes["trim"]


def test_uneven_border_each_side_its_own_width():
    photo = _photo("coffee")
    framed = _decode(_jpeg(_pad(photo, 12, 50, 30, 90, (250, 250, 245))))
    boxes = dict(find_boxes(framed))
    assert _box_close(boxes["trim"], (12, 50, 12 + photo.width, 50 + photo.height)), boxes


def test_nested_frames_come_off_together():
    # a black letterbox inside a white border: both layers must go
    photo = _photo("chelsea", (360, 240))
    inner = _pad(photo, 0, 60, 0, 60, (0, 0, 0))
    framed = _decode(_jpeg(_pad(inner, 30, 30, 30, 30, (255, 255, 255))))
    boxes = dict(find_boxes(framed))
    assert _box_close(boxes["trim"], (30, 90, 30 + 360, 90 + 240)), boxes


def test_letterbox_bars_removed():
    photo = _photo("rocket", (400, 266))
    canvas_h = round(400 * 16 / 9)  # phone-portrait 9:16 frame
    top = (canvas_h - 266) // 2
    boxed = _decode(_jpeg(_pad(photo, 0, top, 0, canvas_h - 266 - top, (0, 0, 0))))
    boxes = dict(find_boxes(boxed))
    assert _box_close(boxes["trim"], (0, top, 400, top + 266)), boxes


def test_pillarbox_bars_removed():
    photo = _photo("camera", (300, 300))
    boxed = _decode(_jpeg(_pad(photo, 233, 0, 233, 0, (0, 0, 0))))
    boxes = dict(find_boxes(boxed))
    assert _box_close(boxes["trim"], (233, 0, 533, 300)), boxes


def test_bordered_copy_matches_with_views_but_not_plain():
    photo = _photo("astronaut")
    original = hash_image(_png(photo))
    framed = _jpeg(_pad(photo, 48, 48, 48, 48, (255, 255, 255)))
    plain = hash_image(framed)
    with_views = hash_image(framed, preprocess=views)
    assert _best_distance(plain, original.pdq) > THRESHOLD
    assert [name for name, _ in with_views.variants] == ["trim"]
    assert _best_distance(with_views, original.pdq, variants_only=True) <= THRESHOLD


# --------------------------------------------------------------------------- screenshots


def test_screenshot_framed_photo_recovered_and_matches():
    photo = _photo("coffee", (480, 320))
    shot = _screenshot(photo)
    original = hash_image(_png(photo))
    data = _png(shot)

    plain = hash_image(data)
    assert _best_distance(plain, original.pdq) > THRESHOLD  # plain PDQ misses the screenshot

    # load_image scales the 540x1170 screenshot to <= 512 px; the photo, scaled to 540x360,
    # sits at rows 132..492 of 1170
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img = img.resize((round(540 * 512 / 1170), 512), Image.Resampling.BOX)
    s = 512 / 1170
    boxes = dict(find_boxes(img))
    assert "content" in boxes, boxes
    assert _box_close(boxes["content"], (0, round(132 * s), img.width, round(492 * s))), boxes

    hashed = hash_image(data, preprocess=views)
    assert _best_distance(hashed, original.pdq, variants_only=True) <= THRESHOLD


def test_caption_bar_above_photo_is_removed():
    photo = _photo("chelsea", (400, 266))
    out = _pad(photo, 0, 90, 0, 0, (255, 255, 255))
    draw = ImageDraw.Draw(out)
    draw.text((12, 12), "when the weekend", fill=(0, 0, 0), font=_font(28))
    draw.text((12, 48), "finally arrives", fill=(0, 0, 0), font=_font(28))
    boxes = find_boxes(_decode(_jpeg(out)))
    assert any(_box_close(b, (0, 90, 400, 356)) for _, b in boxes), boxes


# --------------------------------------------------------------------------- left alone


@pytest.mark.parametrize(
    "name", ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "immunohistochemistry"]
)
def test_plain_photo_yields_no_views(name):
    photo = _photo(name, (448, 336))
    assert views(_decode(_jpeg(photo))) == []


@pytest.mark.parametrize(
    "arr",
    [
        np.full((200, 300, 3), 128, np.uint8),  # flat grey
        np.full((200, 300, 3), (250, 20, 20), np.uint8),  # flat colour
        np.broadcast_to(np.linspace(0, 255, 300, dtype=np.uint8)[None, :, None], (200, 300, 3)).copy(),
        np.broadcast_to(np.linspace(0, 255, 200, dtype=np.uint8)[:, None, None], (200, 300, 3)).copy(),
    ],
    ids=["grey", "red", "h-gradient", "v-gradient"],
)
def test_flat_or_gradient_image_gives_no_view(arr):
    assert views(Image.fromarray(arr, "RGB")) == []


def test_smooth_sky_is_not_taken_for_a_border():
    # a smooth sky fading over the top third, then a textured scene: no sharp edge, so no bar
    rng = np.random.default_rng(0)
    h, w = 300, 400
    sky = np.linspace(0, 1, 100)[:, None, None] * np.array([60.0, 40.0, 20.0]) + np.array([100.0, 150.0, 220.0])
    arr = np.empty((h, w, 3))
    arr[:100] = sky
    arr[100:] = rng.uniform(40, 200, (h - 100, w, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    assert [n for n, _ in find_boxes(img) if n == "trim"] == []


def test_small_region_is_not_returned():
    # a photo covering ~8% of a white page: too small a view to hash safely
    page = Image.new("RGB", (800, 800), (255, 255, 255))
    page.paste(_photo("astronaut", (220, 230)), (300, 300))
    for _, (left, top, right, bottom) in find_boxes(page):
        assert (right - left) * (bottom - top) >= 0.2 * 800 * 800
    # and with a lower floor the same page does give the photo, so the guard is what stopped it
    boxes = find_boxes(page, Params(min_area=0.05))
    assert any(_box_close(b, (300, 300, 520, 530)) for _, b in boxes), boxes


def test_every_view_respects_the_guards():
    rng = np.random.default_rng(1)
    p = preprocess.DEFAULT
    for _ in range(10):
        w, h = (int(x) for x in rng.integers(40, 600, 2))
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        arr[: h // 3] = rng.integers(0, 256, 3)  # a flat band of random height and colour
        img = Image.fromarray(arr, "RGB")
        for name, (left, top, right, bottom) in find_boxes(img):
            assert name in ("trim", "content", "smooth")
            assert 0 <= left < right <= w and 0 <= top < bottom <= h
            assert (right - left) * (bottom - top) >= p.min_area * w * h
        assert len(views(img)) <= 3


# --------------------------------------------------------------------------- odd inputs


@pytest.mark.parametrize("size", [(1, 1), (3, 1000), (1000, 3), (2, 2), (25, 25), (24, 700)])
def test_odd_sizes_do_not_crash(size):
    rng = np.random.default_rng(2)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    assert isinstance(views(Image.fromarray(arr, "RGB")), list)
    assert isinstance(views(Image.new("RGB", size, (255, 255, 255))), list)


def test_other_modes_and_large_images():
    photo = _photo("coffee", (500, 330))
    framed = _pad(photo, 60, 60, 60, 60, (0, 0, 0))
    for img in (framed.convert("L"), framed.convert("RGBA"), framed.convert("P")):
        boxes = dict(find_boxes(img))
        assert _box_close(boxes["trim"], (60, 60, 560, 390)), (img.mode, boxes)
    # larger than the analysis size: boxes come back in the caller's pixel coordinates
    big = framed.resize((framed.width * 3, framed.height * 3), Image.Resampling.NEAREST)
    boxes = dict(find_boxes(big))
    assert _box_close(boxes["trim"], (180, 180, 1680, 1170), tol=6), boxes
    (name, view), = views(big)
    assert view.size == (boxes["trim"][2] - boxes["trim"][0], boxes["trim"][3] - boxes["trim"][1])


def test_matches_preprocessor_signature():
    img = _decode(_jpeg(_pad(_photo(), 30, 30, 30, 30, (255, 255, 255))))
    out = views(img)
    assert isinstance(out, list) and out
    for name, view in out:
        assert isinstance(name, str) and isinstance(view, Image.Image) and view.mode == "RGB"
