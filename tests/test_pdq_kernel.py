"""The compiled PDQ kernel (csadetect/media/_pdq.c) against Meta's C++ through the `pdqhash` binding.

Same picture in, same hashes and quality out: the kernel blurs only at the 64x64 sample points
instead of over every pixel, so its values differ from the reference's by float rounding only.
Pictures: generated ones, noise (every coefficient near the median is a chance to differ),
Meta's test images, sizes from PDQ's 5 px minimum to above the 512 px hashing size, odd shapes.
"""
from __future__ import annotations

import io

import numpy as np
import pdqhash
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from csadetect.media import hashing, synth
from tests.conftest import need_shared

_pdq = pytest.importorskip("csadetect.media._pdq", reason="the PDQ kernel is not built (make install compiles it)")


def _reference(rgb: np.ndarray, dihedral: bool = True) -> tuple[list[bytes], int]:
    if dihedral:
        hashes, quality = pdqhash.compute_dihedral(rgb)
    else:
        bits, quality = pdqhash.compute(rgb)
        hashes = [bits]
    return [hashing.bits_to_bytes(h) for h in hashes], int(quality)


def _kernel(rgb: np.ndarray, dihedral: bool = True) -> tuple[list[bytes], int]:
    packed, quality = _pdq.hashes(np.ascontiguousarray(rgb), rgb.shape[0], rgb.shape[1], 3, dihedral)
    return [packed[i:i + 32] for i in range(0, len(packed), 32)], quality


def _distance(a: list[bytes], b: list[bytes]) -> int:
    assert len(a) == len(b)
    return max(hashing.hamming(x, y) for x, y in zip(a, b))


def _pictures():
    rng = np.random.default_rng(7)
    for seed, size in ((1, (640, 480)), (2, (512, 384)), (3, (300, 700)), (4, (64, 64)), (5, (1000, 333))):
        yield f"synth-{size}", np.asarray(synth.synthetic_image(seed, size).convert("RGB"))
    for shape in ((5, 5), (9, 7), (64, 65), (129, 257), (384, 512)):
        yield f"noise-{shape}", rng.integers(0, 256, size=shape + (3,), dtype=np.uint8)
        smooth = np.cumsum(rng.normal(0, 4, size=shape + (3,)), axis=0) + 128
        yield f"smooth-{shape}", np.clip(smooth, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name,rgb", list(_pictures()), ids=lambda v: v if isinstance(v, str) else "")
def test_same_hashes_and_quality_as_the_reference(name, rgb):
    for dihedral in (True, False):
        mine, quality = _kernel(rgb, dihedral)
        ref, ref_quality = _reference(rgb, dihedral)
        assert len(mine) == (8 if dihedral else 1)
        assert _distance(mine, ref) <= 2, name  # float rounding at the median, nothing more
        assert abs(quality - ref_quality) <= 1, name


def test_meta_test_images_hash_as_the_reference():
    base = need_shared("pdq")
    paths = sorted(p for p in base.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert len(paths) >= 20
    exact = 0
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        mine, quality = _kernel(rgb)
        ref, ref_quality = _reference(rgb)
        assert _distance(mine, ref) <= 2, path.name
        assert abs(quality - ref_quality) <= 1, path.name
        exact += mine == ref and quality == ref_quality
    assert exact >= 0.9 * len(paths)  # rounding differences are rare, not the rule


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 160), cols=st.integers(1, 160), seed=st.integers(0, 2**32 - 1))
def test_any_size_matches_the_reference(rows, cols, seed):
    rgb = np.random.default_rng(seed).integers(0, 256, size=(rows, cols, 3), dtype=np.uint8)
    mine, quality = _kernel(rgb)
    ref, ref_quality = _reference(rgb)
    if min(rows, cols) < 5:  # below PDQ's minimum: zero hashes of quality 0, as the reference
        assert mine == [bytes(32)] * 8 and quality == 0
    assert abs(quality - ref_quality) <= 1
    if min(rows, cols) >= 32:
        # below that the 64x64 grid repeats pixels, so many coefficients are zero up to rounding
        # and which of them land above the median is float noise in the reference too
        assert _distance(mine, ref) <= 2


def test_dihedral_hashes_are_the_hashes_of_the_turned_picture():
    rgb = np.asarray(synth.synthetic_image(11, (320, 240)).convert("RGB"))
    mine, _ = _kernel(rgb)
    turned = {
        "rotate-90": np.rot90(rgb, 1), "rotate-180": np.rot90(rgb, 2), "rotate-270": np.rot90(rgb, 3),
        "flip-x": rgb[::-1], "flip-y": rgb[:, ::-1],
        "flip-plus-1": rgb.transpose(1, 0, 2), "flip-minus-1": np.rot90(rgb, 2).transpose(1, 0, 2),
    }
    for number, (name, picture) in enumerate(turned.items(), start=1):
        own, _ = _kernel(np.ascontiguousarray(picture), dihedral=False)
        # the turned picture's own hash is nearest to the dihedral hash of that name, within the
        # few bits PDQ's off-centre blur windows and sample points move under a turn
        distances = [hashing.hamming(own[0], h) for h in mine]
        assert int(np.argmin(distances)) == number and distances[number] <= 24, (name, distances)


def test_grey_input_is_the_luma_as_is():
    grey = np.asarray(synth.synthetic_image(12, (200, 150)).convert("L"))
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    one, q1 = _pdq.hashes(np.ascontiguousarray(grey), grey.shape[0], grey.shape[1], 1, True)
    three, q3 = _pdq.hashes(np.ascontiguousarray(rgb), rgb.shape[0], rgb.shape[1], 3, True)
    assert q1 == q3 and max(hashing.hamming(one[i:i + 32], three[i:i + 32]) for i in range(0, 256, 32)) <= 2


def test_bad_arguments_are_refused():
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="rows x cols"):
        _pdq.hashes(rgb, 10, 11, 3, True)
    with pytest.raises(ValueError, match="channels"):
        _pdq.hashes(rgb, 10, 10, 2, True)


def test_hashing_uses_the_kernel():
    assert hashing._pdq is _pdq
    rgb = np.asarray(synth.synthetic_image(13).convert("RGB"))
    result = hashing.pdq_from_array(rgb)
    mine, quality = _kernel(rgb)
    assert list(result.dihedral) == mine and result.pdq == mine[0] and result.quality == quality


def _full_size_hash(data: bytes) -> bytes:
    full = np.ascontiguousarray(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return _reference(full, dihedral=False)[0][0]


def test_a_jpeg_decoded_at_reduced_scale_hashes_as_its_full_size():
    """2048x1536 decodes at 1/4 scale; blurred as the full picture, its hash is near the full-size
    hash (what Meta's C++ computes from the full picture), nearer than the reduced picture's own."""
    scaled, plain = [], []
    for seed in range(6):
        data = synth.jpeg_bytes(synth.synthetic_image(seed + 20, (2048, 1536)))
        img = hashing.load_image(data)
        assert img.size == (512, 384) and img.info[hashing.SCALE_INFO] == (4.0, 4.0)
        full = _full_size_hash(data)
        scaled.append(hashing.hamming(hashing.hash_image(data).pdq, full))
        plain.append(hashing.hamming(hashing.pdq_from_array(np.asarray(img)).pdq, full))
    assert max(scaled) <= 6 and np.mean(scaled) < np.mean(plain), (scaled, plain)


def test_views_and_turned_pictures_keep_the_scale():
    data = synth.jpeg_bytes(synth.synthetic_image(31, (2046, 1022)))  # 1/4 scale: 512 x 256, rounded up
    img = hashing.load_image(data)
    scale = (2046 / 512, 1022 / 256)
    assert img.size == (512, 256) and img.info[hashing.SCALE_INFO] == scale
    assert img.crop((10, 10, 200, 100)).info[hashing.SCALE_INFO] == scale  # a view is a crop
    # EXIF orientation 6 (a quarter turn): the axes of the scale swap with the picture's
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, "JPEG", quality=90, exif=exif.tobytes())
    turned = hashing.load_image(buf.getvalue())
    assert turned.size == (256, 512) and turned.info[hashing.SCALE_INFO] == scale[::-1]
    wide = synth.jpeg_bytes(synth.synthetic_image(32, (2048, 1536)).resize((2048, 1024)))
    assert hashing.load_image(wide).info[hashing.SCALE_INFO] == (4.0, 4.0)


def test_a_box_resized_picture_is_hashed_as_it_is():
    png = synth.png_bytes(synth.synthetic_image(33, (1400, 900)))
    img = hashing.load_image(png)
    assert max(img.size) == 512 and img.info[hashing.SCALE_INFO] == (1.0, 1.0)
    assert hashing.hash_image(png).pdq == hashing.pdq_from_array(np.asarray(img)).pdq


def test_pillow_memory_hashes_as_the_copied_array():
    """pdq_from_image reads Pillow's own RGBX memory (csadetect.media.pixels.rgbx, no copy); the
    hashes are those of the copied RGB array, for a decoded picture, a crop (a view) and a picture
    Pillow keeps in several blocks (copied instead)."""
    from csadetect.media import pixels

    img = hashing.load_image(synth.jpeg_bytes(synth.synthetic_image(40, (2048, 1536))))
    crop = img.crop((30, 20, 400, 300))
    big = synth.synthetic_image(41, (640, 480)).resize((5000, 4000))
    assert pixels.rgbx(img) is not None and pixels.rgbx(big) is None
    for picture in (img, crop, big):
        shared = hashing.pdq_from_image(picture)
        copied = hashing.pdq_from_array(np.asarray(picture), scale=picture.info.get(hashing.SCALE_INFO, (1.0, 1.0)))
        assert shared == copied
    rgb = np.asarray(img)
    four = np.ascontiguousarray(np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 77, np.uint8)], axis=2))
    assert _pdq.hashes(four, *rgb.shape[:2], 4, True) == _pdq.hashes(np.ascontiguousarray(rgb), *rgb.shape[:2], 3, True)
