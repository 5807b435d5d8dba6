"""benchmarks/bench_colour.py's edits do what its report says: the hue turns, the channel orders and the
saturation change keep each pixel's largest channel (what the value hash hashes); the CSS hue-rotate
keeps luminance instead; every edit is drawn per copy (the same copy for the same seed)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks import bench_colour as bc
from csadetect.media.synth import synthetic_image


@pytest.mark.parametrize("edit", [bc.hue_far, bc.hue_exact, bc.channels, bc.saturation])
def test_the_value_keeping_edits_keep_the_largest_channel(edit):
    img = synthetic_image(3, (160, 120))
    out = edit(img, np.random.default_rng(1))
    a, b = np.asarray(img, dtype=np.int16).max(axis=2), np.asarray(out, dtype=np.int16).max(axis=2)
    assert out.size == img.size and np.abs(a - b).max() <= 3  # 8-bit rounding of HSV's conversions
    assert not np.array_equal(np.asarray(img), np.asarray(out))  # and the picture did change
    again = edit(img, np.random.default_rng(1))
    assert np.array_equal(np.asarray(out), np.asarray(again))


def test_the_css_control_keeps_luminance_not_the_value():
    img = synthetic_image(3, (160, 120))
    out = bc.css_hue(img, np.random.default_rng(2))
    lum = lambda im: np.asarray(im, dtype=np.float64) @ [0.213, 0.715, 0.072]  # noqa: E731 - the filter's weights
    value = lambda im: np.asarray(im, dtype=np.float64).max(axis=2)  # noqa: E731
    assert np.abs(lum(img) - lum(out)).mean() < 2 < 10 < np.abs(value(img) - value(out)).mean()


def test_the_benchmarks_tally_a_copy_and_an_upload_per_setting():
    from benchmarks.bench_slideshow import tally_copy, tally_upload

    cells = {"before": {"edit": [0, 0, 0], "ordinary": [0, 0]}, "now": {"edit": [0, 0, 0], "ordinary": [0, 0]}}
    tally_copy(cells, ("before", "now"), "edit", 3, {"before": set(), "now": {3, 5}})
    tally_copy(cells, ("before", "now"), "edit", 4, {"before": {4}, "now": {4}})
    tally_upload(cells, ("before", "now"), "ordinary", {"before": {1}, "now": set()})
    assert cells == {"before": {"edit": [1, 2, 0], "ordinary": [1, 1]}, "now": {"edit": [2, 2, 1], "ordinary": [0, 1]}}


def test_the_benchmarks_index_their_originals_and_know_whose_row_matched():
    from benchmarks.bench_slideshow import index_originals
    from csadetect.config.settings import MatchSettings
    from csadetect.media.hashing import hash_image_with_views
    from csadetect.media.synth import jpeg_bytes, synthetic_image

    originals = [("a", synthetic_image(1, (160, 120))), ("b", synthetic_image(2, (160, 120)))]
    rows, owner, index = index_originals(originals, MatchSettings())
    assert set(owner.values()) == {0, 1} and {r.indicator_id for r in rows} == set(owner)
    for i, (_, img) in enumerate(originals):
        assert {owner[m.indicator_id] for m in index.match_image(hash_image_with_views(jpeg_bytes(img))[0])} == {i}
