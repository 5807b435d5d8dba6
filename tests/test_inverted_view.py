"""Photo negatives of known pictures (``match.inverted_view``, csadetect/media/hashing.py ``INVERTED``): an
upload's PDQ hashes with every bit flipped are looked up too, since a negative hashes to its original's
complement; indicators are unchanged. Every picture here is generated."""
from __future__ import annotations

import json

import pytest
from PIL import Image, ImageOps

from csadetect.config.settings import Limits, MatchSettings, load_settings
from csadetect.events.event import make_event, parse_event
from csadetect.indicators.index import IndicatorIndex
from csadetect.indicators.rows import media_rows
from csadetect.indicators.snapshot import Snapshot
from csadetect.media.hashing import INVERTED, hamming, hash_image_with_views
from csadetect.media.synth import jpeg_bytes, synthetic_image
from csadetect.signals.pdq import PdqSignal
from csadetect.transforms.hash import HashMediaFn

ON, OFF = MatchSettings(), MatchSettings(inverted_view=False)


@pytest.fixture(scope="module")
def known() -> Image.Image:
    return synthetic_image(6, (320, 240))


def _index(img: Image.Image, settings: MatchSettings, tmp_path):
    path = tmp_path / "known.jpg"
    path.write_bytes(jpeg_bytes(img))
    rows, _ = media_rows(str(path), settings)
    return rows, IndicatorIndex.from_snapshot(Snapshot.in_memory(rows), settings)


@pytest.mark.parametrize("grey", [False, True])
def test_a_negative_matches_its_original_through_the_flipped_hashes(known, grey, tmp_path):
    rows, index = _index(known, ON, tmp_path)
    own = next(r for r in rows if r.indicator_id.endswith("-pdq"))
    assert not any(INVERTED in r.indicator_id for r in rows)  # the indicator side is unchanged
    negative = ImageOps.invert(known.convert("L" if grey else "RGB")).convert("RGB")
    hashes = hash_image_with_views(jpeg_bytes(negative), inverted=True)[0]
    assert hamming(hashes.pdq, bytes.fromhex(own.value)) > 200  # the premise: the negative's own hash is far
    flipped = dict(hashes.variants)[INVERTED]
    assert flipped.quality == hashes.quality and len(flipped.dihedral) == 8
    found = {m.indicator_id: m for m in index.match_image(hashes)}
    assert own.indicator_id in found and found[own.indicator_id].distance <= 8
    assert PdqSignal().explain(hashes, own.value, ON)["view"] == INVERTED
    as_before = hash_image_with_views(jpeg_bytes(negative))[0]
    assert INVERTED not in dict(as_before.variants)
    assert not [m for m in index.match_image(as_before) if m.kind == "pdq"]


def _framed(img: Image.Image, colour) -> Image.Image:
    out = Image.new("RGB", (img.width + 96, img.height + 96), colour)
    out.paste(img, (48, 48))
    return out


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (40, 120, 200)])
def test_a_negative_in_a_border_matches_through_its_views_flipped_hashes(known, colour, tmp_path):
    """A negative that is also framed: the whole upload's flipped hashes are far (the border), the trimmed
    view's flipped ones (``<view>-inverted``) meet the original; without them it is missed."""
    from csadetect.media.hashing import inverted_name
    from csadetect.media.regions import preprocessor

    rows, index = _index(known, ON, tmp_path)
    own = next(r for r in rows if r.indicator_id.endswith("-pdq"))
    data = jpeg_bytes(_framed(ImageOps.invert(known.convert("RGB")), colour))
    hashes = hash_image_with_views(data, preprocess=preprocessor(ON), inverted=True)[0]
    names = [name for name, _ in hashes.variants]
    views = [n for n in names if n != INVERTED and not n.endswith(f"-{INVERTED}")]
    assert views and [inverted_name(v) for v in views] == [n for n in names if n.endswith(f"-{INVERTED}")]
    found = {m.indicator_id: m for m in index.match_image(hashes)}
    assert own.indicator_id in found  # within the PDQ threshold (8-20 bits here)
    assert PdqSignal().explain(hashes, own.value, ON)["view"].endswith(f"-{INVERTED}")
    whole_only = type(hashes)(**{**hashes.__dict__, "variants": tuple(
        v for v in hashes.variants if not v[0].endswith(f"-{INVERTED}"))})
    assert not [m for m in index.match_image(whole_only) if m.kind == "pdq"]


def test_an_unrelated_picture_and_its_negative_meet_nothing(known, tmp_path):
    from csadetect.media.regions import preprocessor

    _, index = _index(known, ON, tmp_path)
    for seed in (1, 2, 3, 9):
        other = synthetic_image(seed, (320, 240))
        for picture in (other, ImageOps.invert(other), _framed(ImageOps.invert(other), (0, 0, 0))):
            assert not index.match_image(hash_image_with_views(jpeg_bytes(picture), preprocess=preprocessor(ON),
                                                               inverted=True)[0])


def test_the_hash_stage_passes_the_setting(known):
    def variants(settings):
        fn = HashMediaFn(Limits(), settings)
        fn.setup()
        (item,) = list(fn.process(parse_event(json.dumps(make_event("n", jpeg_bytes(known), kind="image")))))
        return [name for name, _ in item.image.variants]

    assert INVERTED in variants(ON) and INVERTED not in variants(OFF)
    assert load_settings().match.inverted_view is True


def test_an_animations_later_frames_are_not_flipped(known):
    """Only the image and its preprocessed views get flipped hashes, not an animation's later frames (each would
    be 8 more lookups, up to ``match.image_frames`` of them, for a rare trick)."""
    import io

    frames = [known, synthetic_image(2, (320, 240)), synthetic_image(3, (320, 240))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    hashes = hash_image_with_views(buffer.getvalue(), frames=4, inverted=True)[0]
    names = [name for name, _ in hashes.variants]
    assert any(n.startswith("frame-") for n in names) and INVERTED in names
    assert not any(n.startswith("frame-") and n.endswith(INVERTED) for n in names)
