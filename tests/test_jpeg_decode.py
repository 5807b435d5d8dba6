"""JPEG decoding through simplejpeg (csadetect.media.hashing._decode_jpeg) gives exactly PIL's pixels,
at every DCT scale load_image uses, and hands anything it will not decode to PIL, which names the
problem (truncated, CMYK, not a JPEG)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from csadetect.media import hashing, synth

pytest.importorskip("simplejpeg", reason="simplejpeg is in requirements.txt; make install puts it there")


def _pil(data: bytes, box) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    if box != img.size:
        img.draft("RGB", box)
    return np.asarray(img.convert("RGB"))


def _jpeg(size, **save) -> bytes:
    buf = io.BytesIO()
    synth.synthetic_image(sum(size), size).save(buf, "JPEG", **save)
    return buf.getvalue()


@pytest.mark.parametrize("size,save", [
    ((2048, 1536), {"quality": 90}),                      # 3 MP: decoded at 1/4
    ((4096, 2048), {"quality": 85}),                      # 1/8
    ((1152, 864), {"quality": 90}),                       # 1/2
    ((2046, 1022), {"quality": 90, "subsampling": 0}),    # 4:4:4, sides not multiples of the scale
    ((1600, 1004), {"quality": 75, "progressive": True}),
    ((640, 480), {"quality": 90}),                        # full size
    ((333, 517), {"quality": 60, "subsampling": 1}),
])
def test_same_pixels_as_pil(size, save):
    data = _jpeg(size, **save)
    box = hashing._draft_box(size, hashing.DECODE_SIDE) if max(size) > hashing.DECODE_SIDE else size
    fast = hashing._decode_jpeg(data, box)
    assert fast is not None and fast.mode == "RGB"
    assert np.array_equal(np.asarray(fast), _pil(data, box))


def test_grey_jpeg_decodes_to_the_same_rgb():
    buf = io.BytesIO()
    synth.synthetic_image(3, (900, 700)).convert("L").save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    fast = hashing._decode_jpeg(data, (450, 350))
    assert fast is not None and np.array_equal(np.asarray(fast), _pil(data, (450, 350)))


def test_what_it_refuses_goes_to_pil():
    data = _jpeg((1024, 768), quality=90)
    assert hashing._decode_jpeg(data[: len(data) // 2], (512, 384)) is None  # truncated
    with pytest.raises(hashing.MediaError, match="truncated"):
        hashing.load_image(data[: len(data) // 2])
    buf = io.BytesIO()
    synth.synthetic_image(4, (800, 600)).convert("CMYK").save(buf, "JPEG", quality=90)
    cmyk = buf.getvalue()
    img = hashing.load_image(cmyk)  # PIL decodes CMYK (its RGB conversion is not libjpeg-turbo's)
    assert img.mode == "RGB" and img.size == (512, 384)
    assert np.array_equal(np.asarray(img), np.asarray(Image.open(io.BytesIO(cmyk)).convert("RGB").resize(
        (512, 384), Image.Resampling.BOX)))
    assert hashing._decode_jpeg(synth.png_bytes(synth.synthetic_image(5)), (640, 480)) is None


def test_load_image_takes_the_fast_path_with_the_same_result(monkeypatch):
    data = _jpeg((2048, 1536), quality=90)
    calls = []
    decode = hashing.simplejpeg.decode_jpeg
    monkeypatch.setattr(hashing.simplejpeg, "decode_jpeg", lambda *a, **k: calls.append(k) or decode(*a, **k))
    fast = hashing.load_image(data)
    assert calls and (calls[0]["min_width"], calls[0]["min_height"]) == (512, 384)
    monkeypatch.setattr(hashing, "simplejpeg", None)
    slow = hashing.load_image(data)
    assert np.array_equal(np.asarray(fast), np.asarray(slow))
    assert fast.info[hashing.SCALE_INFO] == slow.info[hashing.SCALE_INFO] == (4.0, 4.0)
