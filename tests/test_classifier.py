"""Reference "new-material" classifier: loading, errors, batching, calibrated scores on held-out
proxy images, the proxy corpus (determinism, disjoint splits), evaluation and scores files."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from csadetect import demo  # noqa: E402
from csadetect.models import ModelError  # noqa: E402
from training import classifier_corpus as cc  # noqa: E402
from csadetect.models.classifier import KIND, NewMaterialClassifier, evaluate, roc_auc, write_scores  # noqa: E402
from csadetect.models.embedding import EmbeddingModel  # noqa: E402
from csadetect.tuning.tune import choose_threshold, read_examples  # noqa: E402

DEFAULT_MODEL_DIR = KIND.reference

needs_model = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "model.keras").is_file(), reason="reference classifier not built"
)
# Held-out (eval-range) seeds for the rate checks: not selected by score, never trained on.
RATE_SEEDS = range(1_150_000, 1_150_024)


@pytest.fixture(scope="module")
def clf():
    return NewMaterialClassifier.load()


@pytest.fixture(scope="module")
def emb():
    return EmbeddingModel.load()


def _unit(n, dim=128, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# ---------------------------------------------------------------- loading

@needs_model
def test_load_default_and_metadata(clf, emb):
    assert clf.version.startswith("newmat-ref")
    assert clf.dim == 128 == emb.dim
    assert clf.embedding_version == emb.version
    assert 0.0 < clf.review_threshold < clf.report_threshold <= 1.0
    th = clf.metadata["thresholds"]
    assert "precision >= 0.9" in th["review"]["rule"] and "precision >= 0.99" in th["report"]["rule"]
    assert clf.metadata["calibration"]["method"] == "platt"
    clf.check_embedding(emb)


@needs_model
def test_load_from_copied_path_and_keras_file(clf, tmp_path):
    d = tmp_path / "clf"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    x = _unit(5)
    for other in (NewMaterialClassifier.load(d), NewMaterialClassifier.load(d / "model.keras"),
                  NewMaterialClassifier.load(str(d))):
        assert other.version == clf.version
        np.testing.assert_allclose(other.score(x), clf.score(x), atol=1e-7)


def _assert_one_line_error(path, *needles):
    with pytest.raises(ModelError) as e:
        NewMaterialClassifier.load(path)
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg
    return msg


def test_missing_model_raises(tmp_path):
    _assert_one_line_error(tmp_path / "nope", "not found", str(tmp_path / "nope"))


@needs_model
def test_missing_or_corrupt_files_raise(tmp_path):
    d = tmp_path / "no_meta"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    (d / "metadata.json").unlink()
    _assert_one_line_error(d, "metadata not found", "metadata.json")

    d = tmp_path / "bad_model"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    (d / "model.keras").write_bytes(b"not a zip file")
    _assert_one_line_error(d, "cannot load classifier model", "model.keras")

    d = tmp_path / "bad_meta"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    (d / "metadata.json").write_text("{broken")
    _assert_one_line_error(d, "bad classifier model metadata", "metadata.json")

    d = tmp_path / "no_threshold"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    meta = json.loads((d / "metadata.json").read_text())
    del meta["report_threshold"]
    (d / "metadata.json").write_text(json.dumps(meta))
    _assert_one_line_error(d, "missing report_threshold")

    d = tmp_path / "wrong_dim"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    meta = json.loads((d / "metadata.json").read_text())
    meta["dim"] = 64
    (d / "metadata.json").write_text(json.dumps(meta))
    _assert_one_line_error(d, "dim 64")


@needs_model
def test_check_embedding_rejects_other_version(clf):
    class Other:
        version, dim = "embedding-other-9", 128

    with pytest.raises(ModelError, match="needs embedding"):
        clf.check_embedding(Other())


# ---------------------------------------------------------------- scoring

@needs_model
def test_batched_equals_one_by_one_and_keras(clf):
    x = np.concatenate([_unit(40, seed=1), 3.0 * _unit(8, seed=2)])
    batched = clf.score(x)
    single = np.array([clf.score(x[i:i + 1])[0] for i in range(len(x))])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(clf.score(x, batch_size=7), batched, atol=1e-5)
    # the fast path is the loaded Keras model's own weights
    keras_out = np.asarray(clf.keras_model(x, training=False)).reshape(-1)
    np.testing.assert_allclose(batched, keras_out, atol=1e-5)


@needs_model
def test_scores_are_probabilities_and_shapes_checked(clf):
    x = np.concatenate([_unit(100, seed=3), 50.0 * _unit(10, seed=4), np.zeros((1, 128), np.float32)])
    s = clf.score(x)
    assert s.shape == (111,) and np.all((s >= 0) & (s <= 1))
    assert clf.score(np.zeros((0, 128), np.float32)).shape == (0,)
    with pytest.raises(ValueError):
        clf.score(np.zeros((3, 64), np.float32))
    with pytest.raises(ValueError):
        clf.score(np.zeros(128, np.float32))
    with pytest.raises(ValueError):
        clf.score(np.full((1, 128), np.nan, np.float32))
    assert clf.level(1.0) == "report"
    assert clf.level(clf.review_threshold) == "review"
    assert clf.level(0.0) == "none"


@needs_model
def test_heldout_positives_flagged_and_hard_negatives_not(clf, emb):
    """Rates on unselected held-out seeds. On the held-out eval split, recall at the review
    threshold is ~0.87 and hard negatives are flagged at review ~0.2 of the time (worst kind, a
    target in the emblem's colours, ~0.45); easy negatives ~0.09. With 24 images each, the bounds
    below fail by chance with probability < 1e-3 for a model that good (binomial tails)."""
    pos = clf.score(emb.embed([cc.positive_example(s) for s in RATE_SEEDS]))
    hard = clf.score(emb.embed([cc.negative_example(s, hard=True) for s in RATE_SEEDS]))
    easy = clf.score(emb.embed([cc.negative_example(s) for s in RATE_SEEDS]))
    assert np.mean(pos >= clf.review_threshold) >= 0.6
    assert np.mean(hard >= clf.review_threshold) <= 0.5
    assert np.mean(easy >= clf.review_threshold) <= 0.35
    assert np.mean(pos >= clf.report_threshold) > np.mean(hard >= clf.report_threshold)
    assert pos.mean() > hard.mean() + 0.2 and pos.mean() > easy.mean() + 0.3


@needs_model
def test_demo_seeds(clf, emb):
    """The seeds listed for demos (chosen by score, held-out range) do what they promise."""
    pos = clf.score(emb.embed([cc.positive_example(s) for s in cc.DEMO_POSITIVE_SEEDS]))
    hard = clf.score(emb.embed([cc.negative_example(s, hard=True) for s in cc.DEMO_NEGATIVE_SEEDS]))
    easy = clf.score(emb.embed([cc.negative_example(s) for s in cc.DEMO_NEGATIVE_SEEDS]))
    assert np.all(pos >= clf.report_threshold)
    assert np.all(hard < clf.review_threshold) and np.all(easy < clf.review_threshold)
    assert all(cc.split_of(s) == "eval" for s in cc.DEMO_POSITIVE_SEEDS + cc.DEMO_NEGATIVE_SEEDS)


def test_shipped_demo_pictures_are_the_corpus_pictures(tmp_path):
    """`csadetect demo` reads its proxy-class pictures from csadetect/models/reference/demo/ (it
    cannot import training/): they are what training.classifier_corpus draws for its seeds."""
    assert cc.DEMO_PICTURE_SEEDS == {"new": demo.NEW_MATERIAL_SEEDS, "other-parts": demo.HARD_NEGATIVE_SEEDS}
    written = cc.write_demo_pictures(tmp_path)
    assert len(written) == 3
    for path in written:
        assert (demo.DEMO_PICTURES / path.name).read_bytes() == path.read_bytes(), path.name


@needs_model
def test_evaluate_on_images(clf, emb):
    items = [(cc.positive_example(s), 1, "pos") for s in range(1_160_000, 1_160_006)] + \
            [(cc.negative_example(s), 0, "easy") for s in range(1_160_000, 1_160_006)]
    m = evaluate(clf, emb, items)
    assert m["n"] == 12 and m["positives"] == 6
    assert 0.0 <= m["roc_auc"] <= 1.0 and 0.0 <= m["ece"] <= 1.0
    assert set(m["groups"]) == {"easy", "pos"}


# ---------------------------------------------------------------- corpus

def test_corpus_deterministic():
    for seed, kind in [(5, "positive"), (400_123, "hard"), (900_001, "easy"), (1_000_007, "hard")]:
        a, la, ia = cc.example(seed, kind)
        b, lb, ib = cc.example(seed, kind)
        assert a.tobytes() == b.tobytes() and la == lb and ia == ib
    assert cc.positive_example(42).tobytes() == cc.positive_example(42).tobytes()
    assert cc.negative_example(42, hard=True).tobytes() != cc.negative_example(42).tobytes()
    assert cc.positive_example(42, size=(200, 150)).size == (200, 150)
    d1 = cc.dataset("calibration", 8, seed=1)
    d2 = cc.dataset("calibration", 8, seed=1)
    assert [y for _, y in d1] == [y for _, y in d2] == [1, 1, 0, 0] * 2
    assert all(a.tobytes() == b.tobytes() for (a, _), (b, _) in zip(d1, d2))


def test_splits_disjoint_and_held_out():
    seen = {}
    for split in cc.SPLITS:
        seeds = [s for s, _ in cc.dataset_seeds(split, 500, seed=0)]
        assert len(set(seeds)) == 500 and all(cc.split_of(s) == split for s in seeds)
        seen[split] = set(seeds)
    assert not (seen["train"] & seen["calibration"]) and not (seen["train"] & seen["eval"])
    assert not (seen["calibration"] & seen["eval"])
    for bad in (-1, 1_200_000):
        with pytest.raises(ValueError):
            cc.split_of(bad)
    with pytest.raises(ValueError):
        cc.dataset_seeds("test", 3)
    assert not set(cc.TRAIN_SKIMAGE) & set(cc.EVAL_SKIMAGE)
    assert not set(cc.TRAIN_SKIMAGE) & set(cc.CALIB_SKIMAGE)
    assert not set(cc.CALIB_SKIMAGE) & set(cc.EVAL_SKIMAGE)
    # eval-only kinds, backgrounds and emblem parameters never appear in training examples
    infos = [cc.example(s, k)[2] for s, k in cc.dataset_seeds("train", 120, seed=5)]
    assert {i["hard_kind"] for i in infos if i["kind"] == "hard"} <= set(cc.HARD_KINDS)
    assert {i["background"] for i in infos} <= set(cc.BACKGROUNDS)
    for i in infos:
        if i["kind"] == "positive":
            e = i["emblem"]
            assert e["heldout"] is None and e["petal_shape"] in cc.PETAL_SHAPES
            assert cc.PETALS_SEEN[0] <= e["petals"] <= cc.PETALS_SEEN[1]
            assert cc.SIZE_SEEN[0] <= e["size"] <= cc.SIZE_SEEN[1]


# ---------------------------------------------------------------- evaluation helpers

class _Stub:
    """A classifier whose score is the first (only) embedding component."""
    dim, review_threshold, report_threshold = 1, 0.5, 0.8

    def score(self, x):
        return np.asarray(x, np.float64).reshape(-1)


# scores away from the 10-bin edges (they pass through float32)
_ITEMS = [([0.95], 1, "a"), ([0.75], 1, "a"), ([0.35], 1, "b"), ([0.65], 0, "b"), ([0.25], 0, "b"), ([0.15], 0, "b")]


def test_evaluate_known_numbers():
    m = evaluate(_Stub(), None, _ITEMS, threshold=0.3)
    assert (m["n"], m["positives"], m["negatives"]) == (6, 3, 3)
    r = m["at_review"]
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (2, 1, 1, 2)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["f0_5"] == pytest.approx(2 / 3)
    q = m["at_report"]
    assert (q["tp"], q["fp"], q["fn"], q["tn"]) == (1, 0, 2, 3)
    assert q["precision"] == 1.0 and q["recall"] == pytest.approx(1 / 3)
    assert q["f0_5"] == pytest.approx(1.25 * (1 / 3) / (0.25 + 1 / 3))
    t = m["at_threshold"]
    assert (t["tp"], t["fp"]) == (3, 1) and t["recall"] == 1.0
    assert m["roc_auc"] == pytest.approx(8 / 9)
    assert m["ece"] == pytest.approx(2.0 / 6)
    assert m["brier"] == pytest.approx(0.995 / 6)
    assert m["groups"]["a"] == {"n": 2, "positives": 2, "flagged_review": 2, "flagged_report": 1,
                                "mean_score": 0.85, "rate_review": 1.0, "rate_report": 0.5}
    assert sum(b["n"] for b in m["reliability"]) == 6
    assert roc_auc([0.5, 0.5], [1, 0]) == 0.5  # ties count half


@pytest.mark.parametrize("ext", [".jsonl", ".parquet"])
def test_write_scores_readable_by_tune(tmp_path, ext):
    path = tmp_path / f"scores{ext}"
    assert write_scores(_Stub(), None, _ITEMS, path, ids=[f"img{i}" for i in range(6)]) == 6
    s, y = read_examples(path)
    np.testing.assert_allclose(s, [0.95, 0.75, 0.35, 0.65, 0.25, 0.15], atol=1e-6)
    assert list(y) == [True, True, True, False, False, False]
    assert choose_threshold(s, y, target_precision=1.0)["threshold"] == pytest.approx(0.75)
    with pytest.raises(ValueError):
        write_scores(_Stub(), None, _ITEMS, tmp_path / "scores.csv")
