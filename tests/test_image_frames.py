"""Animated images: a known picture shown as a later frame of a GIF, WebP or PNG animation, or on
a later page of a TIFF, is found (``match.image_frames``; ``csadetect.media.frames``), with the
real reference model and FAISS on generated pictures; with the setting at 0 only the first frame
is seen, as before."""
from __future__ import annotations

import functools
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from PIL import Image

from csadetect.config.settings import ConfigError, Limits, MatchSettings, load_settings
from csadetect.events.event import make_event, parse_event
from csadetect.media.frames import LOOK_FACTOR, later_frames
from csadetect.media.hashing import MediaError, hash_image_with_views
from csadetect.media.regions import preprocessor
from csadetect.media.synth import synthetic_image
from csadetect.models.embedding import EmbeddingModel, model_inputs
from csadetect.signals.embedding import query_regions, view_thresholds
from csadetect.transforms.hash import HashMediaFn
from tests.test_region_views import _index  # a known picture's index, as from-media makes it

ON = MatchSettings()
OFF = MatchSettings(image_frames=0)
SIZE = (320, 240)


@pytest.fixture(scope="module")
def model():
    return EmbeddingModel.load()


@pytest.fixture(scope="module")
def known():
    return synthetic_image(501, SIZE).convert("RGB")


@pytest.fixture(scope="module")
def index(known, model, tmp_path_factory):
    return _index(known, ON, model, tmp_path_factory.mktemp("frames"))[1]


def _others(n: int, seed: int = 600) -> list[Image.Image]:
    return [synthetic_image(seed + i, SIZE).convert("RGB") for i in range(n)]


def _animation(frames: list[Image.Image], fmt: str) -> bytes:
    buf = io.BytesIO()
    extra = {"TIFF": {}, "WEBP": {"lossless": False, "quality": 85, "duration": 200}}.get(fmt, {"duration": 200, "loop": 0})
    frames = [Image.fromarray(np.asarray(f)) for f in frames]  # pixels only: no info for the writer to turn into tags
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], **extra)
    return buf.getvalue()


def _matches(index, data: bytes, settings, model) -> set[str]:
    hashes, pictures = hash_image_with_views(data, preprocess=preprocessor(settings), frames=settings.image_frames)
    names, batch = model_inputs(pictures, model.input_size, flip=True, regions=query_regions(settings))
    return {m.kind for m in index.match_image(hashes, model.embed_arrays(batch), model.version,
                                               view_thresholds(names, model.threshold))}


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_a_known_picture_as_a_later_frame_is_found(index, known, model, fmt):
    others = _others(3)
    data = _animation([others[0], known, others[1], others[2]], fmt)
    assert _matches(index, data, ON, model) & {"pdq", "embedding"}
    assert _matches(index, data, OFF, model) == set()  # the first frame alone, as before


def test_an_animation_of_other_pictures_matches_nothing(index, model):
    assert _matches(index, _animation(_others(6, seed=700), "GIF"), ON, model) == set()


def test_a_later_tiff_page_is_found(index, known, model):
    first, = _others(1, seed=800)
    data = _animation([first, known], "TIFF")
    assert _matches(index, data, ON, model) & {"pdq", "embedding"}
    assert _matches(index, data, OFF, model) == set()


def test_repeated_frames_count_once_and_a_still_image_has_none():
    a, b = _others(2, seed=900)
    frames = later_frames(_animation([a, b, a, b, a, b], "GIF"), 8, 10**8)
    assert [name for name, _ in frames] == ["frame-1"]  # b once; a is the first frame
    buf = io.BytesIO()
    a.save(buf, "PNG")
    assert later_frames(buf.getvalue(), 8, 10**8) == []
    assert later_frames(_animation([a, b], "GIF"), 0, 10**8) == []


def test_every_distinct_frame_is_kept_up_to_the_setting():
    names = [name for name, _ in later_frames(_animation(_others(16, seed=1050), "GIF"), 32, 10**8)]
    assert names == [f"frame-{i}" for i in range(1, 16)]


def test_many_distinct_frames_are_kept_evenly_within_the_bound():
    pictures = _others(40, seed=1000)
    names = [name for name, _ in later_frames(_animation(pictures, "GIF"), 4, 10**8)]
    assert len(names) == 4
    indices = [int(n.split("-")[1]) for n in names]
    assert indices == sorted(indices) and indices[0] <= 3 and indices[-1] >= 1 + LOOK_FACTOR * 4 - 8
    assert max(indices) <= LOOK_FACTOR * 4  # frames beyond the bound are not looked at


def test_frames_are_shrunk_and_an_oversized_page_ends_the_search():
    big = [synthetic_image(s, (1200, 900)).convert("RGB") for s in (1100, 1101, 1102)]
    frames = later_frames(_animation(big, "GIF"), 8, 10**8)
    assert [n for n, _ in frames] == ["frame-1", "frame-2"] and all(max(f.size) == 512 for _, f in frames)
    small, huge = _others(1, seed=1200)[0], Image.new("RGB", (3000, 3000), "white")
    data = _animation([small, huge.resize((3000, 3000))], "TIFF")
    assert later_frames(data, 8, max_pixels=1_000_000) == []


def test_the_hash_stage_passes_the_setting(known):
    data = _animation([_others(1, seed=1300)[0], known], "GIF")

    def names(settings):
        fn = HashMediaFn(Limits(), settings, embed_size=64)
        fn.setup()
        (item,) = list(fn.process(parse_event(json.dumps(make_event("g", data, kind="image", mime="image/gif")))))
        return [v[0] for v in item.image.variants], item.views

    variants, views = names(ON)
    assert "frame-1" in variants and "frame-1" in views
    variants, views = names(OFF)
    assert "frame-1" not in variants and "frame-1" not in views


def test_the_setting_defaults_to_32_and_refuses_bad_values():
    assert load_settings().match.image_frames == 32
    for bad in (-1, 65):
        with pytest.raises((ConfigError, ValueError)) as err:
            MatchSettings(image_frames=bad)
        assert "image_frames" in str(err.value)


@functools.lru_cache(maxsize=1)
def _damaged_source() -> bytes:
    return _animation(_others(6, seed=1400), "GIF")


@hsettings(max_examples=60, deadline=None)
@given(st.data())
def test_a_damaged_animation_is_hashed_by_what_decodes_or_refused_in_one_line(data):
    """Cut short or with bytes overwritten after the first frame: never anything but MediaError."""
    gif = bytearray(_damaged_source())
    cut = data.draw(st.integers(min_value=1, max_value=len(gif)))
    for _ in range(data.draw(st.integers(min_value=0, max_value=4))):
        at = data.draw(st.integers(min_value=len(gif) // 6, max_value=len(gif) - 1))
        gif[at] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        hashes, pictures = hash_image_with_views(bytes(gif[:cut]), frames=32)
    except MediaError:
        return
    assert pictures[0][0] == "image" and all(name.startswith("frame-") for name, _ in pictures[1:])


@pytest.mark.parametrize("into", [9, 18])
def test_an_animation_cut_off_after_its_first_frame_is_hashed_by_it(into):
    """Found by the test above: counting a GIF's frames read past the first one into the cut and
    raised IndexError or struct.error out of ``load_image``. The first frame decoded; it is hashed.
    The cut falls ``into`` bytes after the second frame's graphic control extension: inside its
    image descriptor (9) or right after it (18)."""
    gif = _damaged_source()
    second = gif.index(b"\x21\xf9\x04", gif.index(b"\x21\xf9\x04") + 1)
    first = io.BytesIO()
    Image.open(io.BytesIO(gif)).convert("RGB").save(first, "PNG")
    expected = hash_image_with_views(first.getvalue(), dihedral=False)[0].pdq
    for frames in (0, 32):
        hashes, pictures = hash_image_with_views(gif[:second + into], frames=frames, dihedral=False)
        assert [name for name, _ in pictures] == ["image"] and hashes.pdq == expected
