"""Turned-and-cropped and keystone embedding rows (issue 17, ``match.embedding_turn_rows``,
``match.embedding_keystone_rows``). A copy turned by a few degrees and cut back to an upright rectangle
("straighten" in a photo editor) leaves no fill colour for the tilt view and loses 8-30% of the picture all
round, so the index stores the known picture turned by ``EMBEDDING_TURNS`` degrees and cut back the same
way (:func:`turned_crop`); a copy leaning back (one edge narrowed, the picture stretched to its canvas again)
meets the ``EMBEDDING_KEYSTONES`` rows (:func:`keystone`). Real reference model and real FAISS on a generated
scene that is none of the robustness benchmark's."""
from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest
from PIL import Image

from csadetect.config.settings import ConfigError, MatchSettings, load_settings
from csadetect.indicators.index import IndicatorIndex
from csadetect.indicators.rows import media_rows
from csadetect.indicators.snapshot import Snapshot, _pdq_codes, _sorted, rows_to_table
from csadetect.media.hashing import hash_image_with_views
from csadetect.media.regions import preprocessor
from csadetect.models.embedding import EmbeddingModel, model_inputs
from csadetect.signals.embedding import (EMBEDDING_KEYSTONES, EMBEDDING_TURNS, embedding_views, index_keystones,
                                         index_turns, keystone, query_regions, turned_crop, view_thresholds)
from training import robustness_scenes as scenes

ON = MatchSettings()
NO_TURN_ROWS = MatchSettings(embedding_turn_rows=False)
NO_KEYSTONE_ROWS = MatchSettings(embedding_keystone_rows=False)


@pytest.fixture(scope="module")
def model():
    return EmbeddingModel.load()


@pytest.fixture(scope="module")
def known():
    return scenes.render(scenes.make_scene(np.random.default_rng(4)), noise_seed=1)


def _index(known: Image.Image, settings, model, tmp_path):
    path = os.path.join(tmp_path, "known.png")
    known.save(path)
    rows, _ = media_rows(path, settings, embedder=model)
    table = _sorted(rows_to_table(rows))
    return rows, IndicatorIndex.from_snapshot(Snapshot(1, {"version": 1}, (), table, _pdq_codes(table)), settings)


def _matches(index, img: Image.Image, settings, model) -> list:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    hashes, pictures = hash_image_with_views(buf.getvalue(), preprocess=preprocessor(settings))
    names, batch = model_inputs(pictures, model.input_size, flip=True, regions=query_regions(settings))
    return index.match_image(hashes, model.embed_arrays(batch), model.version, view_thresholds(names, model.threshold))


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


@pytest.mark.parametrize("share, edge", [(0.08, "t"), (0.09, "l"), (0.06, "b"), (0.1, "r")])
def test_a_copy_leaning_back_matches_through_a_keystone_row_and_not_without_them(model, known, tmp_path, share,
                                                                                   edge):
    """One edge narrowed by 6-10% (around the 7% rows), re-encoded as JPEG: it matches through a keystone row
    with them, and nothing matches without them (everything else on)."""
    rows_on, on = _index(known, ON, model, tmp_path)
    rows_off, off = _index(known, NO_KEYSTONE_ROWS, model, tmp_path)
    assert len(rows_on) - len(rows_off) == sum(len(edges) for _, edges in EMBEDDING_KEYSTONES)
    copy = keystone(known, share, edge, Image.Resampling.BICUBIC)
    found = _matches(on, copy, ON, model)
    assert any(m.indicator_id.endswith(f"-embedding-k{edge}07") for m in found), found
    assert not _matches(off, copy, NO_KEYSTONE_ROWS, model)


def test_the_rows_and_their_names(known):
    """One row per angle, ``-tc+4`` ... ``-tc-10``, then one per narrowed edge, ``-kt07`` ... ``-kr07``, after the
    region rows; none with their setting off."""
    names = [suffix for suffix, _ in embedding_views(known)]
    assert names[-10:] == ["-tc+4", "-tc-4", "-tc+7", "-tc-7", "-tc+10", "-tc-10", "-kt07", "-kb07", "-kl07", "-kr07"]
    assert not any(n.startswith("-tc") for n, _ in embedding_views(known, turns=index_turns(NO_TURN_ROWS)))
    assert not any(n.startswith("-k") for n, _ in embedding_views(known, keystones=index_keystones(NO_KEYSTONE_ROWS)))
    assert index_turns(ON) == EMBEDDING_TURNS and index_keystones(ON) == EMBEDDING_KEYSTONES
    assert load_settings().match.embedding_turn_rows and load_settings().match.embedding_keystone_rows


@pytest.mark.parametrize("edge", ["t", "b", "l", "r"])
def test_keystone_narrows_the_named_edge_and_fills_the_canvas(edge):
    """The named edge's two ends take the fill of a white picture on black (the source quad reaches outside
    nowhere, so the corners are the picture's own: the narrowed edge is stretched, not padded) and the
    canvas keeps its size; a picture that is a horizontal ramp keeps its left and right ends' values on the
    edges that were not narrowed."""
    img = Image.fromarray(np.tile(np.linspace(0, 255, 200).astype(np.uint8), (100, 1)), "L").convert("RGB")
    out = keystone(img, 0.1, edge)
    assert out.size == img.size
    a = np.asarray(out)[..., 0].astype(int)
    if edge == "t":  # the top row samples the middle 80% of the source's top row: no pure ends there
        assert a[0, 0] > 15 and a[0, -1] < 240 and a[-1, 0] < 5 and a[-1, -1] > 250
    elif edge == "b":
        assert a[-1, 0] > 15 and a[-1, -1] < 240 and a[0, 0] < 5 and a[0, -1] > 250
    else:  # a vertical narrowing leaves a horizontal ramp's ends where they were
        assert a[50, 0] < 5 and a[50, -1] > 250


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


@pytest.mark.parametrize("name", ["embedding_turn_rows", "embedding_keystone_rows"])
@pytest.mark.parametrize("bad", [[1], 2, None, "sometimes"])
def test_the_settings_take_a_boolean_only(name, bad):
    with pytest.raises((ConfigError, ValueError)) as err:
        MatchSettings(**{name: bad})
    assert name in str(err.value)
