"""PDQ / vPDQ conformance against Meta's reference hashes, and decoding edge cases."""
from __future__ import annotations

import csv
import io
import os

import numpy as np
import pytest
from PIL import Image

from csadetect.media import synth
from csadetect.media.hashing import MediaError, hamming, hash_image, hash_video_file, load_image
from tests.conftest import need_shared

PDQ_TOLERANCE = 10  # DESIGN §12: within 10 bits of the C++ reference (different JPEG decoders)


def _reference_rows():
    base = need_shared("pdq")
    rows = []
    with open(base / "expected" / "PDQMD5TestData.csv") as fh:
        for r in csv.DictReader(fh):
            path = base / r["FilePath"].replace("../../../../data/", "")
            if len(r["Hash"]) == 64 and path.exists():  # the CSV also lists files not shipped, and MD5s of videos
                rows.append((path, r["Hash"]))
    with open(base / "expected" / "pdq-cpp-dih.csv") as fh:
        for r in csv.DictReader(fh):
            rows.append((base / r["path"], r["hash"]))
    return rows


def test_pdq_conformance_with_reference():
    rows = _reference_rows()
    assert len(rows) >= 20
    for path, expected in rows:
        h = hash_image(path.read_bytes())
        d = hamming(h.pdq, bytes.fromhex(expected))
        assert d <= PDQ_TOLERANCE, f"{path.name}: {d} bits from the reference"


def test_dihedral_hashes_cover_the_eight_transforms():
    base = need_shared("pdq")
    with open(base / "expected" / "pdq-cpp-dih.csv") as fh:
        rows = list(csv.DictReader(fh))
    original = hash_image((base / rows[0]["path"]).read_bytes())
    for r in rows:
        ref = bytes.fromhex(r["hash"])
        # each rotated/flipped file's reference hash is one of the original's 8 dihedral hashes
        assert min(hamming(d, ref) for d in original.dihedral) <= PDQ_TOLERANCE, r["path"]


def test_every_pil_mode_hashes_the_same_picture():
    modes = need_shared("pdq", "misc-images", "modes")
    rgb = hash_image((modes / "RGB.jpg").read_bytes())
    for path in sorted(modes.iterdir()):
        h = hash_image(path.read_bytes())
        limit = 40 if path.name == "1.png" else 16  # 1-bit dithering changes the picture itself
        assert hamming(h.pdq, rgb.pdq) <= limit, path.name


def test_crypto_hashes_of_bytes():
    data = synth.jpeg_bytes(synth.synthetic_image(1))
    import hashlib

    h = hash_image(data)
    assert h.md5 == hashlib.md5(data).hexdigest()
    assert h.sha256 == hashlib.sha256(data).hexdigest()
    assert h.digests == {name: hashlib.new(name, data).hexdigest() for name in ("md5", "sha1", "sha256")}
    assert hash_image(data, digests=("sha512",)).digests == {"sha512": hashlib.sha512(data).hexdigest()}
    assert len(h.dihedral) == 8 and h.dihedral[0] == h.pdq
    assert 0 <= h.quality <= 100


def test_exif_orientation_is_applied():
    img = synth.synthetic_image(3, (400, 300))
    upright = hash_image(synth.jpeg_bytes(img, 95))
    rotated = img.transpose(Image.Transpose.ROTATE_90)  # stored sideways ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with "rotate 90 CW to display"
    buf = io.BytesIO()
    rotated.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    h = hash_image(buf.getvalue())
    assert (h.width, h.height) == (400, 300)
    assert hamming(h.pdq, upright.pdq) <= 16


def test_alpha_is_flattened_on_white():
    img = synth.synthetic_image(4, (300, 200)).convert("RGBA")
    arr = np.asarray(img).copy()
    arr[:, :150, 3] = 0  # left half transparent
    arr[:, :150, :3] = 0  # with black underneath
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, "PNG")
    flat = load_image(buf.getvalue())
    assert np.asarray(flat)[:, :10].mean() > 250  # transparent area shows white


def _png(arr, mode) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG")
    return buf.getvalue()


def test_a_picture_that_shows_only_on_black_or_under_near_full_transparency_is_hashed_as_it_shows():
    """Dark-mode-only (white, the picture in the alpha channel) and near-transparent PNGs show
    nothing on white; they are read on black, or without their alpha, and match the picture."""
    from csadetect.media.rgb import shows_nothing

    picture = synth.synthetic_image(7, (320, 240))
    grey = np.asarray(picture.convert("L"))
    want = hash_image(_png(np.asarray(picture), "RGB"))
    dark_only = np.dstack([np.full_like(grey, 255)] * 3 + [grey])  # on black: the picture; on white: nothing
    faint = np.dstack([np.asarray(picture), np.full_like(grey, 2)])  # the picture under 99% transparency
    for arr in (dark_only, faint):
        img = Image.fromarray(arr, "RGBA")
        on_white = Image.new("RGB", img.size, (255, 255, 255))
        on_white.paste(img, mask=img.getchannel("A"))
        assert shows_nothing(on_white)  # what the white flattening alone gave: a blank page
        got = hash_image(_png(arr, "RGBA"))
        assert not shows_nothing(load_image(_png(arr, "RGBA")))
        assert hamming(got.pdq, want.pdq) <= 16 and got.quality >= 50
    light_only = np.dstack([np.zeros_like(grey)] * 3 + [255 - grey])  # shows on white: read on white, as before
    flat = np.asarray(load_image(_png(light_only, "RGBA")))
    assert np.abs(flat[..., 0].astype(int) - grey).max() <= 1
    blank = np.zeros((50, 60, 4), np.uint8)  # nothing anywhere: stays a white page
    assert np.asarray(load_image(_png(blank, "RGBA"))).min() == 255


def test_large_images_are_downscaled_before_hashing():
    img = synth.synthetic_image(5, (2400, 1600))
    h = hash_image(synth.jpeg_bytes(img))
    assert max(h.width, h.height) <= 512
    small = hash_image(synth.jpeg_bytes(img.resize((600, 400))))
    assert hamming(h.pdq, small.pdq) <= 16


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "undecodable"),
        (b"definitely not an image", "undecodable"),
        (synth.jpeg_bytes(synth.synthetic_image(6))[:500], "truncated"),
    ],
)
def test_bad_images_raise_media_error(data, reason):
    with pytest.raises(MediaError, match=reason):
        hash_image(data)


def test_pixel_limit_guards_against_decompression_bombs():
    buf = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buf, "PNG")  # small file, 25 Mpx
    with pytest.raises(MediaError, match="pixel limit"):
        hash_image(buf.getvalue(), max_pixels=10_000_000)


def test_vpdq_matches_reference_sample_videos():
    videos = need_shared("vpdq", "videos")
    expected_dir = need_shared("vpdq", "expected")
    # Tolerance, measured and explained: on frames of quality >= 80 (the PDQ conformance level of
    # DESIGN §12) this FFmpeg build reproduces Meta's hashes within 6 bits (DESIGN §10). Darker
    # fade frames (quality 50-79) drift more with the decoder (up to 22 bits seen on doorknob),
    # still inside the match threshold of 31, so matching is unaffected; frames below the quality
    # gate of 50 are never matched and are pure decoder noise (up to 76 bits), so they are skipped.
    checked = 0
    for name in ("pattern-sd-grey-bar", "doorknob-hd-no-bar", "chair-19-sd-bar"):
        frames = hash_video_file(str(videos / f"{name}.mp4"), seconds_per_hash=0, bars=False)  # whole frames, as Meta's
        expected = [line.strip().split(",") for line in open(expected_dir / f"{name}.txt") if line.strip()]
        assert len(frames) == len(expected)
        for f, (num, quality, hexhash, ts) in zip(frames, expected):
            assert f.frame == int(num)
            assert abs(f.timestamp - float(ts)) < 0.01
            assert abs(f.quality - int(quality)) <= 5
            d = hamming(f.pdq, bytes.fromhex(hexhash))
            if int(quality) >= 80:
                assert d <= 6, f"{name} frame {num}: {d} bits"
                checked += 1
            elif int(quality) >= 50:
                assert d <= 31, f"{name} frame {num}: {d} bits"
    assert checked > 100


def test_unreadable_video_raises_media_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    with pytest.raises(MediaError, match="video"):
        hash_video_file(str(bad))
