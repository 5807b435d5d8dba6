"""training/calibrate_embedding.py: the threshold clears every false pair of a (tiny) calibration set,
the provenance lands in a copied model dir, the calibration set is disjoint from the evaluation
sets, and the shipped metadata carries its provenance."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from csadetect.media.hashing import hash_image_with_views, load_image
from csadetect.media.regions import views_and_sub_images
from csadetect.models.embedding import KIND, EmbeddingModel, model_inputs, preprocess
from csadetect.signals.embedding import embedding_views
from training.calibrate_embedding import MARGIN, calibrate, calibration_set, check_disjoint, write_provenance

DEFAULT_MODEL_DIR = KIND.reference


@pytest.fixture(scope="module")
def model():
    return EmbeddingModel.load()


@pytest.fixture(scope="module")
def tiny():
    return calibration_set(n_synth=4, n_distract=3, bench=False, synth_transforms=["crop10", "flip", "border"])


def _all_false_pair_sims(model, cal):
    """Every false-pair similarity, computed independently of calibrate()."""
    # every indicator row of each original: the image and its index-side views
    rows = [[model.embed_arrays(preprocess(v, model.input_size)[None])[0] for _, v in embedding_views(load_image(d))]
            for _, d in cal["originals"]]
    n = len(rows)
    emb3 = np.array(rows)  # (n, m, dim)
    sims = []
    for i in range(n):
        for j in range(i + 1, n):
            sims.append(float((emb3[i] @ emb3[j].T).max()))
    emb = emb3
    queries = [(own, d) for _, own, d in cal["copies"]] + [(-1, d) for _, d in cal["distractors"]]
    for own, data in queries:
        _, pictures = hash_image_with_views(data, preprocess=views_and_sub_images)
        q = model.embed_arrays(model_inputs(pictures, model.input_size, flip=True)[1])
        row = [float((q @ emb[j].T).max()) for j in range(n)]
        sims += [float(x) for j, x in enumerate(row) if j != own]
    return sims


def test_threshold_clears_every_false_pair(model, tiny, tmp_path):
    assert len(tiny["originals"]) == 4 and len(tiny["copies"]) == 12 and len(tiny["distractors"]) == 6
    res = calibrate(model, tiny)
    sims = _all_false_pair_sims(model, tiny)
    worst = max(sims)
    assert res["max_false_pair_similarity"] == pytest.approx(worst, abs=1e-4)
    assert res["threshold"] > worst
    assert res["threshold"] >= min(0.999, worst + MARGIN) - 1e-9
    assert res["margin"] == MARGIN
    assert res["pairs_compared"]["copy -> wrong original"] == 12 * 3
    assert res["pairs_compared"]["distractor -> original"] == 6 * 4
    assert res["max_false_pair"]["kind"] in res["largest_by_kind"]

    # provenance goes into a COPY of the model dir; the shipped one is left alone
    shipped = (DEFAULT_MODEL_DIR / "metadata.json").read_text()
    d = tmp_path / "embedding"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    before = json.loads((d / "metadata.json").read_text())
    write_provenance(d, res)
    meta = KIND.metadata(d)
    assert meta["threshold"] == res["threshold"]
    assert meta["version"] == before["version"]  # the weights did not change
    prov = meta["threshold_provenance"]
    assert prov["max_false_pair_similarity"] == res["max_false_pair_similarity"]
    assert prov["margin"] == MARGIN and prov["date"]
    assert [s["name"] for s in prov["calibration_sets"]] == [s["name"] for s in tiny["sets"]]
    assert prov["calibration_sets"][0]["seeds"].startswith("400000")
    assert (DEFAULT_MODEL_DIR / "metadata.json").read_text() == shipped
    assert EmbeddingModel.load(d).threshold == res["threshold"]


def test_calibration_set_is_disjoint_from_evaluation(tiny):
    check_disjoint(tiny)
    bad = {"originals": [("synth:100003", b"")], "copies": [], "distractors": []}
    with pytest.raises(ValueError):
        check_disjoint(bad)
    for name in ("synth:300010+augmented", "bench-test:gen:clouds:1", "bench-dev:sk:colorwheel:q1+polaroid",
                 "skimage:coffee"):
        with pytest.raises(ValueError):
            check_disjoint({"originals": [], "copies": [], "distractors": [(name, b"")]})


def test_shipped_metadata_has_provenance():
    meta = KIND.metadata()
    prov = meta["threshold_provenance"]
    assert meta["version"] == "embedding-ref-0.2"
    assert float(meta["threshold"]) > prov["max_false_pair_similarity"]
    assert float(meta["threshold"]) >= prov["max_false_pair_similarity"] + prov["margin"] - 1e-9
    sets = prov["calibration_sets"]
    assert any("200000" in s.get("seeds", "") for s in sets)  # the card's calibration distractors
    assert any("dev split" in s["name"] for s in sets)  # the benchmark's development split
    assert sum(s.get("copies", 0) for s in sets) >= 1000 and sum(s.get("distractors", 0) for s in sets) >= 400
    assert prov["max_false_pair"]["kind"] in ("copy -> wrong original", "distractor -> original",
                                              "original -> original")
