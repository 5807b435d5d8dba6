"""The grooming model's message encoder in numpy (:class:`csadetect.models.grooming_numpy.NumpyMessageEncoder`):
the Keras encoder's vectors (TextVectorization's standardisation, splitting, n-grams and lookup, the
projections, layer norm) for held-out messages in every language and for arbitrary text, used for the
few messages of a streaming call, TensorFlow for large batches and for any other encoder."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from training import grooming_corpus as corpus
from csadetect.models import ModelError
from csadetect.models import grooming
from csadetect.models.grooming import KIND, GroomingModel
from csadetect.models.grooming_numpy import NumpyMessageEncoder

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def model():
    return GroomingModel.load(KIND.reference)


def test_held_out_messages_in_every_language_encode_as_keras_does(model):
    assert model.numpy_encoder, "the reference model's encoder must run in numpy"
    texts = [m["text"] for code in ("en", "nl", "de", "fr")
             for c in corpus.generate(40, seed=5, split="eval", language_code=code) for m in c.messages]
    assert len(texts) > 2000 and len({t for t in texts if any(ord(ch) > 127 for ch in t)}) > 50
    np.testing.assert_allclose(model.encode(texts, engine="numpy"), model.encode(texts, engine="tf"),
                               atol=TOLERANCE, rtol=0)


# Every character class the standardisation and the splits treat apart: ASCII letters of both cases
# (only they are lowered), accented and other scripts' capitals (kept), ASCII punctuation (removed),
# other punctuation (kept), ASCII and other whitespace (only ASCII splits words), combining marks,
# emoji beyond the BMP, digits, and words the vocabulary holds.
ALPHABET = st.sampled_from(list("aAzZeEoOiIkKjJ0159 \t\n\r\x0b\x0c") + list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'")
                           + list("éÉàÀçÇßÄäöÖüÜñÑœŒıİǅ“”’«»…¿¡–—\u00a0\u2003\u200b\u0301\x1c") + ["😀", "🎮", "д", "Ж"])
WORDS = st.sampled_from(["hoi", "hallo", "je", "bist", "tu", "es", "seule", "alone", "secret", "school", "ça", "qu'on",
                         "pas", "geheim", "niemand", "the", "you", "don't"])
TEXT = st.lists(st.one_of(ALPHABET, WORDS, st.tuples(WORDS, ALPHABET, WORDS).map("".join)), max_size=30).map("".join)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXT, min_size=1, max_size=5))
@example(texts=["are\u00a0you alone\u2003at\x1chome", "ÉCOLE Ça", "don't-tell", "hi", "é"])
def test_any_text_encodes_as_keras_does(model, texts):
    np.testing.assert_allclose(model.encode(texts, engine="numpy"), model.encode(texts, engine="tf"),
                               atol=TOLERANCE, rtol=0)


def test_auto_takes_numpy_for_a_few_messages_and_tensorflow_for_many(model, monkeypatch):
    calls = []
    real = model._np_encoder

    def spy(texts):
        calls.append(len(texts))
        return real(texts)

    monkeypatch.setattr(model, "_np_encoder", spy)
    few, many = ["hoi"] * grooming.NUMPY_MAX_MESSAGES, ["hoi"] * (grooming.NUMPY_MAX_MESSAGES + 1)
    assert model.encode(few).shape == (len(few), model._dim) and calls == [len(few)]
    assert model.encode(many).shape == (len(many), model._dim) and calls == [len(few)]  # TensorFlow
    assert model.encode([]).shape == (0, model._dim) and calls == [len(few)]


def test_the_encoder_reads_the_loaded_weights(model):
    """Changing a weight of the loaded Keras encoder changes the numpy encoder built from it."""
    encoder = model.keras_model.get_layer("message_encoder")
    layer = encoder.get_layer("word_embed")
    saved = layer.get_weights()
    texts = ["are you alone at home", "ben je alleen thuis"]
    try:
        layer.set_weights([saved[0] * 0.5, saved[1] + 0.3])
        changed = NumpyMessageEncoder.from_keras(encoder, reference=None)
        want = np.asarray(encoder(np.array(texts), training=False))
        np.testing.assert_allclose(changed(texts), want, atol=TOLERANCE, rtol=0)
        assert np.abs(changed(texts) - model._np_encoder(texts)).max() > 1e-3
    finally:
        layer.set_weights(saved)


def test_any_other_encoder_or_a_disagreement_keeps_tensorflow(model):
    window_model = model.keras_model.get_layer("window_model")
    assert NumpyMessageEncoder.from_keras(window_model) is None  # another architecture
    encoder = model.keras_model.get_layer("message_encoder")
    keras = lambda texts: model._encode_as_written(texts, engine="tf")  # noqa: E731  (the encoder's own input)
    assert NumpyMessageEncoder.from_keras(encoder, reference=keras) is not None
    assert NumpyMessageEncoder.from_keras(encoder, reference=lambda texts: keras(texts) + 1e-3) is None
    saved = model._np_encoder
    try:
        model._np_encoder = None
        assert not model.numpy_encoder
        np.testing.assert_array_equal(model.encode(["hoi"]), model.encode(["hoi"], engine="tf"))
        with pytest.raises(ModelError):
            model.encode(["hoi"], engine="numpy")
    finally:
        model._np_encoder = saved
    with pytest.raises(ValueError):
        model.encode(["hoi"], engine="torch")
