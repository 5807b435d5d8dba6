"""Turned-and-cropped embedding rows (issue 17, ``match.embedding_turn_rows``): a copy turned by a few
degrees and cut back to an upright rectangle ("straighten" in a photo editor) leaves no fill colour for
the tilt view and loses 8-30% of the picture all round, so the index stores the known picture turned by
``EMBEDDING_TURNS`` degrees and cut back the same way (:func:`turned_crop`). Real reference model and
real FAISS on a generated scene that is none of the robustness benchmark's."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from csadetect.config.settings import ConfigError, MatchSettings, load_settings
from csadetect.models.embedding import EmbeddingModel
from csadetect.media.crops import turned_crop
from csadetect.signals.embedding import EMBEDDING_TURNS, embedding_views, index_turns, turn_suffix
from tests.test_region_views import _index, _matches  # a known picture's index; an edited copy's matches
from training import robustness_scenes as scenes

ON = MatchSettings()
NO_TURN_ROWS = MatchSettings(embedding_turn_rows=False)


@pytest.fixture(scope="module")
def model():
    return EmbeddingModel.load()


@pytest.fixture(scope="module")
def known():
    return scenes.render(scenes.make_scene(np.random.default_rng(4)), noise_seed=1)


@pytest.mark.parametrize("degrees", [5.0, -6.0, 8.5, -9.5])
def test_a_straightened_copy_matches_through_a_turned_row_and_not_without_them(model, known, tmp_path, degrees):
    """Turned by 5-9.5 degrees (between and beside the rows) and cropped back, re-encoded as JPEG: with the
    turned rows it matches, through one of them; without them (everything else on: region rows and views,
    the tilt view, sub-images) nothing matches."""
    rows_on, on = _index(known, ON, model, tmp_path)
    rows_off, off = _index(known, NO_TURN_ROWS, model, tmp_path)
    assert len(rows_on) - len(rows_off) == len(EMBEDDING_TURNS)
    copy = turned_crop(known, degrees, Image.Resampling.BICUBIC)
    found = _matches(on, copy, ON, model)
    assert any("-embedding-tc" in m.indicator_id for m in found), found
    assert not _matches(off, copy, NO_TURN_ROWS, model)


def test_the_rows_and_their_names(known):
    """One row per angle, named ``-tc+4`` ... ``-tc-10`` after the region rows; none with the setting off."""
    names = [suffix for suffix, _ in embedding_views(known)]
    assert names[-len(EMBEDDING_TURNS):] == [turn_suffix(d) for d in EMBEDDING_TURNS]
    assert names[-len(EMBEDDING_TURNS):] == ["-tc+4", "-tc-4", "-tc+7", "-tc-7", "-tc+10", "-tc-10"]
    assert not any(n.startswith("-tc") for n, _ in embedding_views(known, turns=index_turns(NO_TURN_ROWS)))
    assert index_turns(ON) == EMBEDDING_TURNS and load_settings().match.embedding_turn_rows


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (500, 500), (900, 300)])
@pytest.mark.parametrize("degrees", [4, -7, 10, 0.5])
def test_turned_crop_keeps_the_aspect_and_leaves_no_fill(size, degrees):
    """The cut-back rectangle has the picture's aspect (within a pixel's rounding), shrinks as the turn
    grows, and holds no fill: a white picture turned on black comes back white but for a 1-2 pixel
    resampled rim."""
    w, h = size
    out = turned_crop(Image.new("RGB", size, (255, 255, 255)), degrees)
    cw, ch = out.size
    assert abs(cw / ch - w / h) < 2.5 / min(cw, ch)
    a = math.radians(abs(degrees))
    assert cw == int(w / (math.cos(a) + math.sin(a) * max(w / h, h / w)))
    inner = np.asarray(out)[2:-2, 2:-2]
    assert inner.min() >= 250, inner.min()


@pytest.mark.parametrize("bad", [[1], 2, None, "sometimes"])
def test_the_setting_takes_a_boolean_only(bad):
    with pytest.raises((ConfigError, ValueError)) as err:
        MatchSettings(embedding_turn_rows=bad)
    assert "embedding_turn_rows" in str(err.value)
