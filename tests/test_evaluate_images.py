"""training/evaluate_images.py on a small subset: structure, the combined >= either rule, what PDQ
and the embedding each find, the false-match counter, and that its query path is the CLI's."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from csadetect.cli.matching import _hash_and_match
from csadetect.config.settings import load_settings
from csadetect.indicators.rows import from_media
from csadetect.models.embedding import EmbeddingModel, EmbeddingSpec
from csadetect.signals.embedding import (EMBEDDING_CROPS, EMBEDDING_ROTATIONS, EMBEDDING_TURNS, box_crops,
                                         embedding_views, region_crops, split_embedding, turn_suffix)
from training.embedding_data import DISTRACTOR_SKIMAGE, synth
from training.evaluate_images import ALL_TRANSFORMS, build_index, evaluate_known, markdown, query, transform

TRANSFORMS = ["jpeg25", "colour", "crop10"]
N_SYNTH, SKIMAGE = 4, ["coffee", "hubble_deep_field"]  # 6 originals
N_DISTRACT = 2


@pytest.fixture(scope="module")
def model():
    return EmbeddingModel.load()


@pytest.fixture(scope="module")
def result(model):
    # a distractor that IS a copy (JPEG re-encode) of original 1: the counter must see it
    return evaluate_known(model, n_heldout=N_SYNTH, n_distract=N_DISTRACT, log=lambda _: None,
                          transforms=TRANSFORMS, heldout_skimage=SKIMAGE, extra_distractors=[synth(100001)],
                          progress=False)


def test_structure(result):
    n = N_SYNTH + len(SKIMAGE)
    assert result["n_originals"] == n
    per = len(embedding_views(synth(0)))  # embedding rows: the image + its index-side views
    # pdq, the value channel's pdq (every original here is a colour picture), md5, sha256 + embedding rows per original
    assert result["n_indicator_rows"] == (4 + per) * n
    assert result["embedding_rows_per_original"] == per
    assert result["transforms"] == TRANSFORMS and list(result["recall"]) == TRANSFORMS
    assert result["model"]["version"] and 0 < result["model"]["threshold"] <= 1
    assert result["settings"]["flip"] in (True, False)
    for r in result["recall"].values():
        assert r["n"] == n
        assert set(r["found"]) == {"pdq", "embedding", "combined", "pdq_only", "embedding_only", "wrong"}
        assert r["pdq"] == round(r["found"]["pdq"] / n, 3)
        assert r["found"]["combined"] == r["found"]["pdq"] + r["found"]["embedding_only"]
        assert len(r["missed"]) == n - r["found"]["combined"]
    assert result["recall_all"]["n"] == n * len(TRANSFORMS)
    fm = result["false_matches"]
    n_plain = N_DISTRACT + len(DISTRACTOR_SKIMAGE) + 1
    assert fm["n_distractors"] == 2 * n_plain  # plain + augmented
    assert fm["pairs_compared"] == fm["n_distractors"] * n
    assert set(result["seconds"]) >= {"total", "model_load", "index_build", "queries_per_s"}
    table = markdown(result)
    assert all(f"| {t} |" in table for t in TRANSFORMS)


def test_combined_is_at_least_either(result):
    for t, r in result["recall"].items():
        assert r["combined"] >= max(r["pdq"], r["embedding"]), t
        assert r["combined"] <= min(1.0, r["pdq"] + r["embedding"]), t


def test_pdq_finds_reencoded_and_recoloured_copies(result):
    assert result["recall"]["jpeg25"]["pdq"] == 1.0
    assert result["recall"]["colour"]["pdq"] >= 5 / 6


def test_embedding_finds_crops_pdq_misses(result):
    r = result["recall"]["crop10"]
    assert r["embedding"] > r["pdq"]
    assert r["combined"] > r["pdq"]


def test_distractor_that_is_a_copy_is_counted(result):
    fm = result["false_matches"]
    assert fm["distractors_matched"] >= 1 and fm["pairs_total"] >= 1
    assert fm["pairs_total"] == sum(fm["pairs"].values())
    assert fm["pairs"]["pdq"] >= 1 and fm["pairs"]["embedding"] >= 1
    assert fm["max_similarity"] >= result["model"]["threshold"] and fm["threshold_margin"] < 0
    assert fm["closest_pdq_distance"] <= 31
    # the planted copy matched its original (1) by both kinds; the genuine distractors may
    # also produce a false match (the threshold margin is thin), so they are not asserted on
    planted = [o for o in fm["offenders"] if o.startswith("extra:0 ")]
    assert planted == ["extra:0 -> synth:100001 (embedding), synth:100001 (pdq)"]


def test_query_path_is_the_clis(model, tmp_path):
    settings = load_settings()
    spec = EmbeddingSpec.resolve(settings.embedding)
    originals = [synth(100000), synth(100001)]
    workdir = tmp_path / "orig"
    workdir.mkdir()
    index, rows, owner, emb, pdq = build_index(originals, str(workdir), settings, model)
    per = len(embedding_views(synth(0)))
    assert sorted(r.kind for r in rows) == sorted(["pdq", "pdq", "md5", "sha256"] * 2 + ["embedding"] * per * 2)
    # crop10 and flip_crop10 mostly fall under the calibrated threshold (0.9907): they check that both
    # paths agree; flip (the mirror) and border (the views) must also match their own original
    for name in ("crop10", "flip_crop10", "flip", "border"):
        copy = transform(name, originals[1], 1001)
        path = tmp_path / f"{name}.jpg"
        copy.save(path, "JPEG", quality=90)
        ours, vectors, codes = query(path.read_bytes(), index, settings, model, spec)
        cli = _hash_and_match(str(path), index, settings, model, spec)
        assert [m.to_json() for m in ours] == [m.to_json() for m in cli], name
        assert vectors.shape[0] >= 2 and codes.shape[1] == 32  # image + its mirror (+ views)
        if name in ("flip", "border"):
            assert any(owner[m.indicator_id] == 1 for m in ours), name


def test_transform_names():
    img = synth(100000)
    for name in ALL_TRANSFORMS:
        out = transform(name, img, 1000)
        assert out.mode == "RGB" and min(out.size) > 0, name
    with pytest.raises(ValueError):
        transform("nope", img, 0)


def test_index_side_rows_match_a_centre_crop_and_a_rotation(model, tmp_path):
    """from_media writes the image's embedding row plus one per index-side view (centre crops,
    small rotations); a centre-cropped / rotated copy meets its view row above the threshold."""
    settings = load_settings()
    spec = EmbeddingSpec.resolve(settings.embedding)
    img = synth(100002)
    path = tmp_path / "known.jpg"
    img.save(path, "JPEG", quality=95)
    rows = [r for r in from_media([str(path)], settings.match, embedder=model) if r.kind == "embedding"]
    base = rows[0].indicator_id
    assert base.endswith("-embedding")
    suffixes = [f"-c{round(f * 100):02d}" for f in EMBEDDING_CROPS] + [f"-r{d:+g}" for d in EMBEDDING_ROTATIONS]
    suffixes += [suffix for suffix, _ in region_crops(img)]  # match.embedding_region_rows (default on)
    suffixes += [suffix for suffix, _ in box_crops(img)]  # match.embedding_box_rows (default on)
    suffixes += [turn_suffix(d) for d in EMBEDDING_TURNS]  # match.embedding_turn_rows (default on)
    assert [r.indicator_id for r in rows] == [base] + [base + s for s in suffixes]
    assert all(r.note == "known.jpg" and r.category == rows[0].category for r in rows)
    vec = {r.indicator_id: split_embedding(r.value)[1] for r in rows}

    f = EMBEDDING_CROPS[0]
    w, h = img.size
    dx, dy = round(w * f), round(h * f)
    copies = {base + suffixes[0]: img.crop((dx, dy, w - dx, h - dy)),
              base + suffixes[len(EMBEDDING_CROPS)]: img.rotate(EMBEDDING_ROTATIONS[0],
                                                                 resample=Image.Resampling.BILINEAR, expand=True)}
    for row_id, copy in copies.items():
        q = model.embed([copy])[0]
        sims = {k: float(q @ (v / np.linalg.norm(v))) for k, v in vec.items()}
        assert sims[row_id] >= spec.threshold, (row_id, sims)
        assert sims[row_id] == max(sims.values())  # its own view row is the closest
