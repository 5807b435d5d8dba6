"""HEIC/HEIF (an iPhone camera's default) and AVIF uploads are decoded and matched like JPEGs
(``csadetect.media.decoders``): hashed, oriented, read as frames, accepted by the event schema, found
by the pipeline and shown by the console. The HEIC copies are made here with pillow-heif's encoder (a
dev dependency); the runtime decodes them with pi-heif. Every picture here is generated."""
from __future__ import annotations

import io
import json
import os

import apache_beam as beam
import numpy as np
import pillow_heif
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from csadetect.config.profiles import FN_API_RUNNER
from csadetect.config.settings import Limits
from csadetect.console import evidence
from csadetect.events.event import EventError, make_event, parse_event
from csadetect.media import synth
from csadetect.media.decoders import IMAGE_EXTENSIONS
from csadetect.media.frames import later_frames
from csadetect.media.hashing import MediaError, hamming, hash_image, hash_image_with_views, load_image
from csadetect.pipelines.detect import Source, build_pipeline, outcome_counts
from csadetect.pipelines.sources import media_file_event
from tests.test_pipeline import world  # noqa: F401 - the signed snapshot of three known pictures

SIZE = (640, 480)
ORIENTATION = 0x0112


def heic(img: Image.Image, quality: int = 70, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    pillow_heif.from_pillow(img).save(buf, quality=quality, **({"exif": exif} if exif else {}))
    return buf.getvalue()


def avif(img: Image.Image, quality: int = 60, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "AVIF", quality=quality, **({"exif": exif} if exif else {}))
    return buf.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif.tobytes()


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return synth.synthetic_image(31, SIZE).convert("RGB")


@pytest.mark.parametrize("encode", [heic, avif])
@pytest.mark.parametrize("quality", [30, 80])
def test_a_heic_or_avif_copy_hashes_like_the_jpeg(picture, encode, quality):
    data = encode(picture, quality)
    assert data[4:12] in (b"ftypheic", b"ftypavif")  # the premise: a real HEIF container, not a JPEG
    img = load_image(data)
    assert img.mode == "RGB" and img.size == (512, 384)
    jpeg = hash_image(synth.jpeg_bytes(picture, 90))
    copy = hash_image(data)
    assert copy.quality >= 50 and hamming(copy.pdq, jpeg.pdq) <= 16


@pytest.mark.parametrize("encode", [heic, avif])
@pytest.mark.parametrize("orientation, turn", [(6, Image.Transpose.ROTATE_270), (3, Image.Transpose.ROTATE_180),
                                               (8, Image.Transpose.ROTATE_90)])
def test_a_phone_photo_is_upright_exactly_once(picture, encode, orientation, turn):
    """Stored as the sensor saw it, with its turn in the container (HEIF's irot, EXIF's orientation):
    decoded upright, as the JPEG with the same EXIF would be, never turned twice."""
    data = encode(picture, 80, _exif(orientation))
    upright = picture.transpose(turn)
    assert load_image(data).size == (512, 384) if orientation == 3 else (384, 512)
    as_jpeg = hash_image(synth.jpeg_bytes(upright, 90))
    assert hamming(hash_image(data).pdq, as_jpeg.pdq) <= 16
    assert hamming(hash_image(encode(upright, 80)).pdq, as_jpeg.pdq) <= 16


def test_the_bytes_decide_not_the_declared_mime(picture):
    """A HEIC sent as image/jpeg (a client's guess from the extension it renamed) is still decoded."""
    data = heic(picture)
    event = parse_event(json.dumps(make_event("renamed", data, mime="image/jpeg")))
    assert hamming(hash_image(event.content).pdq, hash_image(synth.jpeg_bytes(picture, 90)).pdq) <= 16


@pytest.mark.parametrize("mime", ["image/heic", "image/heif", "image/avif"])
def test_the_event_schema_accepts_them_by_default_and_the_setting_can_refuse(picture, mime):
    data = heic(picture) if "avif" not in mime else avif(picture)
    assert parse_event(json.dumps(make_event("e", data, mime=mime))).mime == mime
    narrow = Limits(allowed_image_mimes=("image/jpeg", "image/png"))
    with pytest.raises(EventError, match="unsupported mime"):
        parse_event(json.dumps(make_event("e", data, mime=mime)), limits=narrow)


@pytest.mark.parametrize("encode", [heic, avif])
def test_damaged_or_oversized_files_are_one_line_errors(picture, encode):
    data = encode(picture)
    for cut in (40, 400, len(data) // 2, len(data) - 64):
        with pytest.raises(MediaError) as err:
            load_image(data[:cut])
        assert "\n" not in str(err.value) and len(str(err.value)) < 140
    junk = data[:32] + bytes(np.random.default_rng(5).integers(0, 256, 4000, dtype=np.uint8))
    with pytest.raises(MediaError):
        load_image(junk)
    with pytest.raises(MediaError, match="pixel limit"):
        load_image(data, max_pixels=SIZE[0] * SIZE[1] - 1)


def test_a_known_picture_as_the_second_image_of_a_heif_collection_is_a_frame(picture):
    """HEIF holds several top-level images (a burst, an edit beside the original): the first is the
    upload's picture, the others are read as its later frames (match.image_frames)."""
    cover = synth.synthetic_image(77, SIZE).convert("RGB")
    collection = pillow_heif.from_pillow(cover)
    collection.add_from_pillow(picture)
    buf = io.BytesIO()
    collection.save(buf, quality=80)
    data = buf.getvalue()
    frames = later_frames(data, keep=4, max_pixels=50_000_000)
    assert [name for name, _ in frames] == ["frame-1"]
    hashes, _ = hash_image_with_views(data, frames=4)
    jpeg = hash_image(synth.jpeg_bytes(picture, 90))
    assert hamming(hashes.pdq, jpeg.pdq) > 64  # the first image is the cover
    frame = dict(hashes.variants)["frame-1"]
    assert hamming(frame.pdq, jpeg.pdq) <= 16


def test_a_known_picture_as_a_later_frame_of_an_avif_animation_is_found(picture):
    others = [synth.synthetic_image(600 + i, SIZE).convert("RGB") for i in range(3)]
    frames = [others[0], others[1], picture, others[2]]
    buf = io.BytesIO()
    frames[0].save(buf, "AVIF", save_all=True, append_images=frames[1:], duration=200, quality=70)
    hashes, _ = hash_image_with_views(buf.getvalue(), frames=32)
    jpeg = hash_image(synth.jpeg_bytes(picture, 90))
    near = {name for name, variant in hashes.variants if hamming(variant.pdq, jpeg.pdq) <= 16}
    assert near == {"frame-2"}


def test_a_heic_with_alpha_is_flattened_as_a_png_is(picture):
    rgba = np.asarray(picture.convert("RGBA")).copy()
    rgba[..., 3] = 200
    img = Image.fromarray(rgba, "RGBA")
    buf = io.BytesIO()
    pillow_heif.from_pillow(img).save(buf, quality=80)
    assert Image.open(io.BytesIO(buf.getvalue())).mode == "RGBA"  # the premise: the alpha is in the file
    assert load_image(buf.getvalue()).mode == "RGB"
    assert hamming(hash_image(buf.getvalue()).pdq, hash_image(synth.png_bytes(img)).pdq) <= 8


def test_indicator_folders_and_file_sources_take_them(tmp_path, picture):
    assert {".heic", ".heif", ".avif"} <= IMAGE_EXTENSIONS
    from csadetect.cli.indicators import media_files

    (tmp_path / "IMG_0001.HEIC").write_bytes(heic(picture))
    (tmp_path / "b.avif").write_bytes(avif(picture))
    (tmp_path / "notes.txt").write_text("not a picture")
    assert [os.path.basename(p) for p in media_files([str(tmp_path)])] == ["IMG_0001.HEIC", "b.avif"]
    event = json.loads(media_file_event(str(tmp_path / "IMG_0001.HEIC")))
    assert event["kind"] == "image" and event["mime"] == "image/heic"


def test_the_console_shows_heic_evidence(picture):
    data = heic(picture)
    clear = Image.open(io.BytesIO(evidence.clear_image(data, 50_000_000)))
    assert clear.format == "PNG" and clear.size == SIZE
    blurred = Image.open(io.BytesIO(evidence.blurred_image(data, 50_000_000)))
    assert blurred.format == "PNG"


def test_the_pipeline_reports_heic_and_avif_copies_of_known_pictures(world, tmp_path):  # noqa: F811
    """Known pictures uploaded as HEIC and AVIF are reported; an unrelated HEIC is not. Before
    csadetect.media.decoders, both were refused by the schema ("unsupported mime"), and HEIC sent under
    another mime type was dead-lettered as undecodable."""
    known = [Image.open(world["work"] / f"known-{i}.jpg").convert("RGB") for i in range(3)]
    events = tmp_path / "events.jsonl"
    lines = [
        make_event("heic-hit", heic(known[0]), mime="image/heic"),
        make_event("avif-hit", avif(known[1]), mime="image/avif"),
        make_event("heic-miss", heic(synth.synthetic_image(4343).convert("RGB")), mime="image/heic",
                   account="acct-miss"),
    ]
    events.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    settings = world["settings"].model_copy(update={"sinks": world["settings"].sinks.model_copy(
        update={"report_dir": str(tmp_path / "reports"), "dead_letter_dir": None})})
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    outs = build_pipeline(p, settings, Source(glob=str(events)))
    assert_that(outs["reports"] | beam.Map(lambda r: r["event_id"]), equal_to(["heic-hit", "avif-hit"]))
    assert_that(outs["dead_letters"] | beam.Map(lambda d: d.event_id), equal_to([]), label="NoDeadLetters")
    result = p.run()
    result.wait_until_finish()
    counts = outcome_counts(result)
    assert counts["hit"] == 2 and counts["non_hit"] == 1 and counts.get("dead_lettered", 0) == 0
