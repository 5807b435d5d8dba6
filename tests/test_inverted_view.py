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


def test_an_unrelated_picture_and_its_negative_meet_nothing(known, tmp_path):
    _, index = _index(known, ON, tmp_path)
    for seed in (1, 2, 3, 9):
        other = synthetic_image(seed, (320, 240))
        for picture in (other, ImageOps.invert(other)):
            assert not index.match_image(hash_image_with_views(jpeg_bytes(picture), inverted=True)[0])


def test_the_hash_stage_passes_the_setting(known):
    def variants(settings):
        fn = HashMediaFn(Limits(), settings)
        fn.setup()
        (item,) = list(fn.process(parse_event(json.dumps(make_event("n", jpeg_bytes(known), kind="image")))))
        return [name for name, _ in item.image.variants]

    assert INVERTED in variants(ON) and INVERTED not in variants(OFF)
    assert load_settings().match.inverted_view is True
