"""Reference image embedding: loading, shape/normalisation, batching, copy vs distractor."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from csadetect.media.synth import synthetic_image  # noqa: E402
from csadetect.models import ModelError  # noqa: E402
from csadetect.models.embedding import KIND, EmbeddingModel  # noqa: E402
from training.embedding_data import SYNTH_SIZE, crop  # noqa: E402

DEFAULT_MODEL_DIR = KIND.reference

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "model.keras").is_file(), reason="reference embedding model not built"
)


@pytest.fixture(scope="module")
def model():
    return EmbeddingModel.load(DEFAULT_MODEL_DIR)


def _held(i):  # held-out generated seeds (never trained on)
    return synthetic_image(100000 + i, SYNTH_SIZE)


def test_load_default_and_metadata(model):
    m = EmbeddingModel.load()
    assert m.dim == model.dim == 128
    assert 0.0 < m.threshold < 1.0
    assert m.input_size == model.input_size


def test_missing_model_raises(tmp_path):
    with pytest.raises(ModelError) as e:
        EmbeddingModel.load(tmp_path / "nope")
    assert "\n" not in str(e.value)


def test_corrupt_model_raises(tmp_path):
    d = tmp_path / "emb"
    shutil.copytree(DEFAULT_MODEL_DIR, d)
    (d / "model.keras").write_bytes(b"not a zip file")
    with pytest.raises(ModelError) as e:
        EmbeddingModel.load(d)
    assert "\n" not in str(e.value)
    d2 = tmp_path / "emb2"
    shutil.copytree(DEFAULT_MODEL_DIR, d2)
    (d2 / "metadata.json").write_text("{broken")
    with pytest.raises(ModelError):
        EmbeddingModel.load(d2)


def test_shape_and_l2_norm(model):
    imgs = [_held(i) for i in range(5)] + [synthetic_image(7, (50, 200)).convert("L")]
    v = model.embed(imgs)
    assert v.shape == (6, model.dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert model.embed([]).shape == (0, model.dim)
    assert model.preprocess(imgs[0]).shape == (model.input_size, model.input_size, 3)


def test_batched_equals_one_by_one(model):
    imgs = [_held(i) for i in range(6)]
    batched = model.embed(imgs)
    single = np.concatenate([model.embed([im]) for im in imgs])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_crop_more_similar_than_distractor(model):
    for i in range(5):
        img = _held(i)
        cropped = crop(img, 0.2, np.random.default_rng(i))
        distractor = synthetic_image(300000 + i, SYNTH_SIZE)
        v = model.embed([img, cropped, distractor])
        assert float(v[0] @ v[1]) > float(v[0] @ v[2])


def test_deterministic_across_loads(model):
    imgs = [_held(i) for i in range(3)]
    a = model.embed(imgs)
    b = EmbeddingModel.load(DEFAULT_MODEL_DIR).embed(imgs)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_standardised_network_does_not_see_brightness_or_contrast(tmp_path):
    """``training.train_embedding --standardise EPS`` (tried, not the shipped recipe): the network
    standardises each input picture itself, so a copy with its brightness and contrast changed gives
    the same vector; it saves and loads through the model loader like the shipped one. The shipped
    recipe (no option) has no such layer."""
    import keras

    from training.train_embedding import build_model

    keras.utils.set_random_seed(3)  # the untrained weights: the same every run
    plain = build_model()
    assert "standardise" not in [layer.name for layer in plain.layers]
    net = build_model(standardise=1e-6)
    pic = np.asarray(_held(1).resize((64, 64)), np.float32)
    edited = np.clip(0.7 * pic + 40.0, 0, 255)  # less contrast, brighter; nothing clipped
    assert edited.max() < 255
    a, b = (net(x[None], training=False).numpy()[0] for x in (pic, edited))
    assert float(a @ b) > 0.9999
    # the shipped model (no such layer) sees the change: well below its threshold (an untrained
    # network without the layer may not, so it is no witness: 0.99991 on one draw of its weights)
    shipped = EmbeddingModel.load(DEFAULT_MODEL_DIR)
    plain_a, plain_b = shipped.embed_arrays(np.stack([pic, edited]).round().astype(np.uint8))
    assert float(plain_a @ plain_b) < shipped.threshold
    net.save(tmp_path / "model.keras")
    (tmp_path / "metadata.json").write_text('{"threshold": 0.99, "version": "test"}')
    loaded = EmbeddingModel.load(tmp_path)
    np.testing.assert_allclose(loaded.embed_arrays(pic[None].astype(np.uint8))[0], a, atol=1e-4)
