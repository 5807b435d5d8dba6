"""Query-side region views through the pipeline's stages (issue 17): HashMedia hands EmbedImages the
region source, MatchIndicators embeds the region views behind the region gate and cuts them from the
upload, its mirror or a turn of it (``IndicatorIndex.region_orientations``, ``match_image_gated``). Real
reference model and real FAISS on generated pictures; the known picture's index and the fixtures are
those of ``tests/test_region_views.py``."""
from __future__ import annotations

import dataclasses
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from csadetect.config.settings import Limits, MatchSettings, load_settings
from csadetect.indicators.snapshot import Snapshot
from csadetect.media.hashing import hash_image_with_views
from csadetect.media.regions import preprocessor
from csadetect.media.synth import jpeg_bytes, synthetic_image
from csadetect.models.embedding import model_inputs, region_source
from csadetect.signals.embedding import query_regions
from csadetect.transforms.hash import HashMediaFn
from tests.test_region_views import ON, _index, _matches, _same_matches, model, scene  # noqa: F401  (fixtures)
from training import robustness_scenes as scenes
from training import robustness_set as rs


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_hash_media_hands_embed_images_the_region_source_not_the_cut_views(model, mode):
    """HashMedia keeps one picture of at most 256 px for the 96 region views and EmbedImages cuts
    them from it: the model sees exactly the inputs ``model_inputs`` makes in one go, and the
    item carries a third of the bytes or less between the two stages."""
    import json

    from csadetect.events.event import make_event, parse_event
    from csadetect.models.embedding import region_view_inputs, staged_model_inputs
    from csadetect.transforms.embed import ImageEmbeddingHandler

    img = synthetic_image(31, (1200, 800)).convert(mode)
    if mode == "RGBA":  # a transparent band, flattened on white the same way on both paths
        img.putalpha(Image.linear_gradient("L").resize(img.size))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    data = buf.getvalue()
    match = MatchSettings()
    _, pictures = hash_image_with_views(data, preprocess=preprocessor(match))
    names, batch = model_inputs(pictures, model.input_size, flip=True, regions=query_regions(match))
    staged_names, pixels, source = staged_model_inputs(pictures, model.input_size, flip=True,
                                                       regions=query_regions(match))
    w, h = region_source(pictures[0][1]).size
    assert staged_names == names and source.shape == (h, w, 3) and max(w, h) == 256 and source.dtype == np.uint8
    assert np.array_equal(np.concatenate([pixels, region_view_inputs(source, names[len(pixels):], model.input_size)]), batch)

    fn = HashMediaFn(Limits(), match, embed_size=model.input_size, embed_flip=True)
    fn.setup()
    (item,) = list(fn.process(parse_event(json.dumps(make_event("e", data)))))
    assert item.views == names and len(item.pixels) == len(names) - 96
    assert np.array_equal(item.region_source, source)
    carried = item.pixels.nbytes + item.region_source.nbytes
    assert carried * 3 <= batch.nbytes, (carried, batch.nbytes)
    handler = ImageEmbeddingHandler(None)
    assert handler.get_num_bytes([item]) == carried
    (out,) = handler.run_inference([item], model)
    assert out.pixels is None and out.region_source is None and out.embeddings.shape == (len(names), model.dim)
    assert np.allclose(out.embeddings, model.embed_arrays(batch), atol=1e-5)
    # an item whose names do not name region views fails alone, as a dead letter, not the batch
    bad = dataclasses.replace(item, views=item.views[:-1] + ("image-x",))
    outs = handler.run_inference([bad, item], model)
    assert outs[1].embeddings is not None and outs[0].__class__.__name__ == "DeadLetter"



class _IndexHolder:
    """What MatchIndicatorsFn reads from its LiveIndex: the current index and the polling counts."""

    def __init__(self, index):
        self.index = index

    def current(self):
        return self.index

    def take_counts(self):
        return {}



def _match_fn(index, settings):
    from apache_beam.metrics import Metrics

    from csadetect.config.settings import IndicatorSettings
    from csadetect.models.embedding import EmbeddingSpec
    from csadetect.transforms.match import MatchIndicatorsFn

    spec = EmbeddingSpec.resolve(load_settings().embedding)
    fn = MatchIndicatorsFn(IndicatorSettings(), settings, None, spec)
    fn._live = _IndexHolder(index)  # the real index, made by the test instead of loaded from disk
    fn._version_gauge = Metrics.gauge("csadetect", "indicator_version")
    return fn



def _through_the_stages(img: Image.Image, settings, model, index, defer: bool):
    """``img`` (as a JPEG upload) through HashMedia, EmbedImages and MatchIndicators' DoFns."""
    from csadetect.events.event import make_event, parse_event
    from csadetect.transforms.embed import ImageEmbeddingHandler

    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    hash_fn = HashMediaFn(Limits(), settings, embed_size=model.input_size, embed_flip=True)
    hash_fn.setup()
    (item,) = list(hash_fn.process(parse_event(json.dumps(make_event("e", buf.getvalue())))))
    (embedded,) = ImageEmbeddingHandler(None, defer_regions=defer).run_inference([item], model)
    if defer:
        assert embedded.region_source is not None and len(embedded.embeddings) == len(item.pixels)
    (matched,) = list(_match_fn(index, settings).process(embedded))
    assert matched.item.region_source is None and matched.item.embeddings.shape == (1, model.dim)
    return matched



def test_the_region_views_are_embedded_only_for_an_unmatched_image_near_some_row(model, scene, tmp_path, monkeypatch):
    """``match.embedding_query_region_gate``: EmbedImages hands the region views' source on, and
    MatchIndicators embeds the region views only for an image that nothing matched and one of whose
    own vectors lies within the gate of a row. A 75%-area crop (found only through a region view)
    is still found, by the same row as without the gate; the original itself (matched by its own
    vectors) and an unrelated picture (far from every row) get no region views; a gate of 1 (only
    vectors that match already) loses the crop."""
    from csadetect.transforms import match

    known = scenes.render(scene, noise_seed=1)
    _, index = _index(known, ON, model, tmp_path)
    calls = []
    real = match.region_vectors
    monkeypatch.setattr(match, "region_vectors", lambda item, m, mirror: calls.append(item) or real(item, m, mirror))
    gated = MatchSettings(embedding_query_region_gate=16.0)
    crop = rs._crop_area(0.75, "br")(known, None)
    undeferred = _through_the_stages(crop, ON, model, index, defer=False)  # the default: no gate
    assert calls == [] and any(m.indicator_id.endswith("-embedding-a60br") for m in undeferred.matches)
    found = _through_the_stages(crop, gated, model, index, defer=True)
    assert len(calls) == 1 and [m.indicator_id for m in found.matches] == [m.indicator_id for m in undeferred.matches]
    assert _through_the_stages(known, gated, model, index, defer=True).matches and len(calls) == 1
    other = synthetic_image(77, (640, 480))
    assert not _through_the_stages(other, gated, model, index, defer=True).matches and len(calls) == 1
    assert not _through_the_stages(crop, MatchSettings(embedding_query_region_gate=1.0), model, index, defer=True).matches
    assert len(calls) == 1



def test_without_a_gate_the_gated_lookup_is_the_one_lookup_of_every_view(model, scene, tmp_path):
    """``IndicatorIndex.match_image_gated`` with no gate (what ``csadetect match`` runs by default)
    looks every view up at once, match for match like the pipeline when EmbedImages embeds them all
    (the known picture and a 75%-area crop that only a region view finds); with a gate, a picture
    that its own vectors match gets no region views, so it lists only what they found."""
    from csadetect.models.embedding import region_view_inputs, staged_model_inputs

    known = scenes.render(scene, noise_seed=1)
    _, index = _index(known, ON, model, tmp_path)
    for img, region_only in ((known, False), (rs._crop_area(0.75, "tl")(known, None), True)):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        hashes, pictures = hash_image_with_views(buf.getvalue(), preprocess=preprocessor(ON))
        names, pixels, source = staged_model_inputs(pictures, model.input_size, flip=True, regions=query_regions(ON))
        own, rest = names[:len(pixels)], names[len(pixels):]
        regions = lambda mirror: (rest, model.embed_arrays(region_view_inputs(source, rest, model.input_size)))  # noqa: E731
        vectors = model.embed_arrays(pixels)
        every, embedded = index.match_image_gated(hashes, vectors, own, model.version, model.threshold, None, regions)
        assert embedded is not None and every and _same_matches(every, _matches(index, img, ON, model))
        # the crop through a region view; the picture through its image row, and its own 60% and
        # 78% views meet the region rows too (cut exactly like them)
        assert any(re.search(r"-embedding-a\d\d", m.indicator_id) for m in every)
        assert any(m.indicator_id.endswith("-embedding") for m in every) != region_only
        gated, embedded = index.match_image_gated(hashes, vectors, own, model.version, model.threshold, 0.9, regions)
        assert (embedded is not None) == region_only and gated
        # the crop: the same matches; the picture itself: those of its own vectors, without the
        # rows only its region views would add (the gate spares them once something matched)
        if region_only:
            assert _same_matches(gated, every)
        else:
            assert {m.indicator_id for m in gated} < {m.indicator_id for m in every}



def test_a_mirrored_crop_matches_through_region_views_cut_from_the_mirror(model, scene, tmp_path, monkeypatch):
    """A copy mirrored and then cropped to 75% of its area at a corner: its region views are cut
    from the mirrored upload (its mirror lies clearly nearer the rows than the upload itself), where
    one is cut like the original's 60% row at the opposite corner. Cut from the upload as it is,
    none lands near enough a row; the unmirrored crop keeps its region views unmirrored."""
    from csadetect.indicators.index import IndicatorIndex

    known = scenes.render(scene, noise_seed=1)
    _, index = _index(known, ON, model, tmp_path)
    mirrored = rs._crop_area(0.75, "br")(known.transpose(Image.Transpose.FLIP_LEFT_RIGHT), None)
    found = _through_the_stages(mirrored, ON, model, index, defer=True)
    assert any(m.indicator_id.endswith("-embedding-a60bl") for m in found.matches), found.matches
    plain = _through_the_stages(rs._crop_area(0.75, "br")(known, None), ON, model, index, defer=True)
    assert any(m.indicator_id.endswith("-embedding-a60br") for m in plain.matches), plain.matches
    orientations = []
    real = IndicatorIndex.region_orientations
    monkeypatch.setattr(IndicatorIndex, "region_orientations", lambda self, *a: orientations.append(real(self, *a)) or ("",))
    assert not _through_the_stages(mirrored, ON, model, index, defer=True).matches  # cut as it is
    assert orientations == [(":flip",)]



def test_a_turned_crop_matches_through_region_views_cut_upright(model, scene, tmp_path, monkeypatch):
    """A copy turned a quarter (either way) or transposed (mirrored and turned), and then cropped to 75% of
    its area at a corner: its own vector turned back lies nearest the rows, so its region views are cut from that turn, where one is
    cut like a 60% row of the original. With ``match.embedding_query_turns`` off, none is found. An
    uncropped turned copy is found by the embedding too (its region views cut upright)."""
    from csadetect.transforms import match

    known = scenes.render(scene, noise_seed=1)
    _, index = _index(known, ON, model, tmp_path)
    off = ON.model_copy(update={"embedding_query_turns": False})
    counted = []
    real = match.counter
    monkeypatch.setattr(match, "counter", lambda name: counted.append(name) or real(name))
    for turn in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270, Image.Transpose.TRANSPOSE):
        copy = rs._crop_area(0.75, "tl")(known.transpose(turn), None)
        found = _through_the_stages(copy, ON, model, index, defer=True)
        assert any("-embedding-a60" in m.indicator_id for m in found.matches), found.matches
        assert "region_views_turned" in counted
        counted.clear()
        assert not [m for m in _through_the_stages(copy, off, model, index, defer=True).matches if m.kind == "embedding"]
        assert "region_views_turned" not in counted
    def whole(settings) -> list:  # the uncropped turned copy, by the embedding (PDQ finds it either way)
        found = _through_the_stages(known.transpose(Image.Transpose.ROTATE_90), settings, model, index, defer=True)
        return [m for m in found.matches if m.kind == "embedding"]

    assert whole(ON) and not whole(off)  # its region views cut upright meet the rows at their strict threshold



def test_the_turned_vectors_choose_the_way_and_are_not_looked_up(model, scene, tmp_path):
    """``match_image_gated``'s ``turned_views``: a turned vector that lies nearest a row (here the
    original's own vector itself) makes the region views be cut from that turn, and matches nothing itself."""
    known = scenes.render(scene, noise_seed=1)
    _, index = _index(known, ON, model, tmp_path)
    unrelated = synthetic_image(8, (200, 150))
    own, other = model.embed([known, unrelated])
    asked = []

    def region_views(orientation):
        asked.append(orientation)
        return (), None

    matches, _ = index.match_image_gated(hash_image_with_views(jpeg_bytes(unrelated))[0],
                                         other[None, :], ("image",), model.version, model.threshold, None, region_views,
                                         lambda: (("image:r90", "image:r180", "image:r270"), np.stack([other, own, other])))
    assert asked == ["", ":r180"] and not matches  # the upload as it is, and the turn nearer than it



def test_region_orientations_follow_the_nearer_vector_and_take_both_when_too_close(model, scene, tmp_path, monkeypatch):
    """``IndicatorIndex.region_orientations``: the image's own orientation when its vector is nearer
    a row, the mirror's when the mirror's is, both when they differ by no more than the tolerance,
    and the image's alone without a mirror vector."""
    from csadetect.indicators.index import IndicatorIndex

    known = scenes.render(scene, noise_seed=1)
    _, index = _index(known, ON, model, tmp_path)
    a, b = model.embed([known, known.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    names = ("image", "image:flip")
    assert index.region_orientations(np.stack([a, b]), names, model.version, 0.0037) == ("",)
    assert index.region_orientations(np.stack([b, a]), names, model.version, 0.0037) == (":flip",)
    assert index.region_orientations(np.stack([a, a]), names, model.version, 0.0037) == ("", ":flip")
    assert index.region_orientations(np.stack([a, b]), ("image", "trim"), model.version, 0.0037) == ("",)
    near = {"a": 0.99, "b": 0.988}  # 0.002 apart: within a tolerance of 0.0037, outside one of 0.001
    monkeypatch.setattr(IndicatorIndex, "nearest_embedding",
                        lambda self, v, version: near["a"] if np.allclose(v[0], a) else near["b"])
    assert index.region_orientations(np.stack([a, b]), names, model.version, 0.0037) == ("", ":flip")
    assert index.region_orientations(np.stack([a, b]), names, model.version, 0.001) == ("",)



def test_without_embedding_rows_the_region_views_are_cut_one_way(model):
    """An index without embedding rows of the model's version (nearest similarity -1 both ways)
    gives no reason to cut the region views twice."""
    from csadetect.indicators.index import IndicatorIndex

    empty = IndicatorIndex.from_snapshot(Snapshot.in_memory([]), ON)
    a, b = model.embed([synthetic_image(3, (200, 150)), synthetic_image(4, (200, 150))])
    assert empty.region_orientations(np.stack([a, b]), ("image", "image:flip"), model.version, 0.0037) == ("",)
    turned = (("image:r90", "image:r180", "image:r270"), np.stack([a, b, a]))
    asked = []
    assert empty.region_orientations(np.stack([a, b]), ("image", "image:flip"), model.version, 0.0037,
                                     lambda: asked.append(1) or turned) == ("",)
    assert not asked  # no rows to be near: the turns are not embedded



def test_the_region_view_orientation_is_counted(model, scene, tmp_path, monkeypatch):
    """``region_views_mirrored`` for an upload whose region views were cut from its mirror alone,
    ``region_views_both_ways`` when they were cut both ways, neither when cut as it is."""
    from csadetect.indicators.index import IndicatorIndex
    from csadetect.transforms import match

    known = scenes.render(scene, noise_seed=1)
    _, index = _index(known, ON, model, tmp_path)
    counted = []
    real = match.counter
    monkeypatch.setattr(match, "counter", lambda name: counted.append(name) or real(name))
    mirrored = rs._crop_area(0.75, "br")(known.transpose(Image.Transpose.FLIP_LEFT_RIGHT), None)
    _through_the_stages(mirrored, ON, model, index, defer=True)
    assert "region_views_mirrored" in counted and "region_views_both_ways" not in counted
    counted.clear()
    _through_the_stages(rs._crop_area(0.75, "br")(known, None), ON, model, index, defer=True)
    assert "region_views_embedded" in counted and not {"region_views_mirrored", "region_views_both_ways"} & set(counted)
    monkeypatch.setattr(IndicatorIndex, "region_orientations", lambda self, *a: ("", ":flip"))
    counted.clear()
    _through_the_stages(mirrored, ON, model, index, defer=True)
    assert "region_views_both_ways" in counted



def test_the_turn_gate_is_the_configured_one_in_the_pipeline(model, scene, tmp_path, monkeypatch):
    """MatchIndicators hands ``match.embedding_query_turn_gate`` to the index: an unrelated upload whose
    quarter turn lies clearly nearer the rows than the upload, but far from all of them (0.80), is not cut
    again from that turn by default, and is with the gate off."""
    from csadetect.indicators.index import IndicatorIndex
    from csadetect.transforms import match

    known = scenes.render(scene, noise_seed=1)
    _, index = _index(known, ON, model, tmp_path)
    sims = []  # the nearest-row similarity of each own vector asked, in region_ways' order
    monkeypatch.setattr(IndicatorIndex, "nearest_embedding",
                        lambda self, v, version: sims.pop(0) if sims else 0.5)
    counted = []
    real = match.counter
    monkeypatch.setattr(match, "counter", lambda name: counted.append(name) or real(name))
    unrelated = synthetic_image(8, (200, 150))
    for settings, turned in ((ON, False), (ON.model_copy(update={"embedding_query_turn_gate": None}), True)):
        sims[:] = [0.70, 0.71, 0.80, 0.60, 0.65, 0.62, 0.61, 0.63]  # image, mirror, r90, r180, r270, flip:r90 ...
        counted.clear()
        _through_the_stages(unrelated, settings, model, index, defer=True)
        assert not sims and "region_views_embedded" in counted
        assert ("region_views_turned" in counted) is turned

