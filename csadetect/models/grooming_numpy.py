"""The grooming window model's forward pass and its message encoder in numpy (:mod:`csadetect.models.grooming`).

The window model is small, so for a handful of windows (the streaming case, one window per
arriving message) a TensorFlow call costs far more in fixed overhead than the arithmetic.
:class:`NumpyWindowModel` evaluates the reference architecture's layers in numpy from the weights
of the loaded Keras model; :class:`csadetect.models.grooming.GroomingModel` builds it on load,
checked against the Keras forward pass (within :data:`NUMPY_TOLERANCE`), and keeps TensorFlow for
any other architecture. :class:`NumpyMessageEncoder` does the same for the message encoder (its two
``TextVectorization`` layers as Keras 3 runs them under TensorFlow, the projections and the layer
norm), checked on load against the Keras encoder on :data:`CHECK_TEXTS`. numpy only: nothing here
imports TensorFlow.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

NUMPY_TOLERANCE = 1e-5  # max |numpy - Keras| on the load-time check, else TensorFlow is used


class NumpyWindowModel:
    """The reference window model's forward pass in numpy, from the loaded Keras model's weights.

    Layers (``training/grooming_model.py`` ``build_model``): vectors * mask + speaker embedding;
    pattern head ``sigmoid(dense(relu(dense(h)))) * mask``; risk head two causal ``Conv1D``
    (kernel 3, relu), * mask, global max pooling of it and of the patterns, relu dense, logit,
    Platt sigmoid. Dropout is inactive at inference. :meth:`from_keras` returns None (the caller
    keeps TensorFlow) for any window model whose layers or settings differ, or whose output on a
    check batch differs from the Keras model's by more than ``NUMPY_TOLERANCE``."""

    _LAYERS = ("speaker_embed", "pattern_hidden", "patterns_raw", "conv1", "conv2", "window_dense",
               "risk_logit", "risk")
    _EXPECTED = {  # layer -> (class name, activation)
        "speaker_embed": ("Embedding", None), "pattern_hidden": ("Dense", "relu"),
        "patterns_raw": ("Dense", "sigmoid"), "conv1": ("Conv1D", "relu"), "conv2": ("Conv1D", "relu"),
        "window_dense": ("Dense", "relu"), "risk_logit": ("Dense", "linear"), "risk": ("Dense", "sigmoid"),
    }
    _STRUCTURE = {  # every layer of the window model, by name -> class name
        "vectors": "InputLayer", "speakers": "InputLayer", "mask": "InputLayer", "mask3": "Reshape",
        "mask_vectors": "Multiply", "add_speaker": "Add", "dropout_in": "Dropout", "patterns": "Multiply",
        "mask_features": "Multiply", "pool_features": "GlobalMaxPooling1D", "pool_patterns": "GlobalMaxPooling1D",
        "window_concat": "Concatenate", "dropout_window": "Dropout",
        **{name: cls for name, (cls, _) in _EXPECTED.items()},
    }

    def __init__(self, weights: Mapping[str, Sequence[np.ndarray]]):
        f32 = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
        (self.speaker,) = (f32(w) for w in weights["speaker_embed"])
        ph_w, self.ph_b = (f32(w) for w in weights["pattern_hidden"])
        self.pr_w, self.pr_b = (f32(w) for w in weights["patterns_raw"])
        k1, self.c1_b = (f32(w) for w in weights["conv1"])
        k2, self.c2_b = (f32(w) for w in weights["conv2"])
        self.k = k1.shape[0]
        if k2.shape[0] != self.k or ph_w.shape[0] != k1.shape[1]:
            raise ValueError("unexpected layer shapes")
        self.c1, self.c2 = k1.shape[-1], k2.shape[-1]
        # One matmul per layer over all positions: the k taps of a causal Conv1D side by side
        # (their outputs are summed with shifts in _causal); the pattern head's first dense layer
        # reads the same input as conv1, so it shares conv1's matmul.
        self.first_w = f32(np.concatenate([k1[j] for j in range(self.k)] + [ph_w], axis=1))
        self.c2_w = f32(np.concatenate([k2[j] for j in range(self.k)], axis=1))
        self.d_w, self.d_b = (f32(w) for w in weights["window_dense"])
        self.l_w, self.l_b = (f32(w) for w in weights["risk_logit"])
        self.r_w, self.r_b = (f32(w) for w in weights["risk"])

    @classmethod
    def from_keras(cls, window_model, window: int, reference=None,
                   tolerance: float = NUMPY_TOLERANCE) -> Optional["NumpyWindowModel"]:
        """Weights from the loaded Keras ``window_model`` (``window`` messages long); None if its
        architecture is not the reference one. ``reference(vectors, speakers, mask) -> (risk,
        patterns)`` (the Keras path) is compared on a check batch; None if they differ by more
        than ``tolerance``."""
        try:
            layers = {layer.name: layer for layer in window_model.layers}
            if {n: type(l).__name__ for n, l in layers.items()} != cls._STRUCTURE:
                return None
            for name, (kind, act) in cls._EXPECTED.items():
                layer = layers[name]
                cfg = layer.get_config()
                if act is not None and getattr(layer.activation, "__name__", None) != act:
                    return None
                if kind == "Dense" and not cfg.get("use_bias", True):
                    return None
                if kind == "Embedding" and cfg.get("mask_zero"):  # a Keras mask would change the pooling
                    return None
                if kind == "Conv1D" and (cfg.get("padding") != "causal" or tuple(cfg.get("strides", (1,))) != (1,)
                                         or tuple(cfg.get("dilation_rate", (1,))) != (1,) or cfg.get("groups", 1) != 1
                                         or not cfg.get("use_bias", True)):
                    return None
            for name in ("pool_features", "pool_patterns"):
                cfg = layers[name].get_config()
                if cfg.get("keepdims") or cfg.get("data_format", "channels_last") != "channels_last":
                    return None
            impl = cls({name: layers[name].get_weights() for name in cls._LAYERS})
        except (AttributeError, KeyError, ValueError, TypeError):
            return None
        if reference is not None and not impl.agrees_with(reference, window, tolerance):
            return None
        return impl

    def agrees_with(self, reference, window: int, tolerance: float = NUMPY_TOLERANCE) -> bool:
        """Max |numpy - reference| over risk and patterns of a fixed pseudo-random check batch
        (every padding length, every speaker id) <= ``tolerance``."""
        W, D = int(window), self.speaker.shape[1]
        rng = np.random.default_rng(0)
        n = W + 1
        v = rng.normal(0, 1, (n, W, D)).astype(np.float32)
        s = rng.integers(1, 4, (n, W)).astype(np.int32)
        m = np.ones((n, W), np.float32)
        for i in range(n):  # row i: i padded positions (the last row: nothing but padding)
            m[i, :i] = 0.0
            s[i, :i] = 0
            v[i, :i] = 0.0
        risk_ref, pats_ref = reference(v, s, m)
        risk, pats = self(v, s, m)
        return (risk.shape == np.shape(risk_ref) and pats.shape == np.shape(pats_ref)
                and float(np.max(np.abs(risk - risk_ref))) <= tolerance
                and float(np.max(np.abs(pats - pats_ref))) <= tolerance)

    @staticmethod
    def _sigmoid(x: np.ndarray) -> np.ndarray:
        return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32, copy=False)

    def _causal(self, taps: np.ndarray, n: int, W: int, out: int, bias: np.ndarray) -> np.ndarray:
        """relu(causal Conv1D) from the per-position products with each kernel tap:
        ``y[t] = sum_j x[t - (k-1-j)] @ K[j]`` (zero before the first position)."""
        taps = taps.reshape(n, W, self.k, out)
        y = taps[:, :, self.k - 1] + bias
        for j in range(self.k - 1):
            shift = self.k - 1 - j
            y[:, shift:] += taps[:, :W - shift, j]
        return np.maximum(y, 0.0, out=y)

    def __call__(self, vectors: np.ndarray, speakers: np.ndarray, mask: np.ndarray):
        """(n, W, D) float32, (n, W) int, (n, W) float32 -> (risk (n,), patterns (n, W, K))."""
        vectors = np.asarray(vectors, np.float32)
        n, W, D = vectors.shape
        m3 = np.asarray(mask, np.float32)[..., None]
        h = (vectors * m3 + self.speaker[np.asarray(speakers)]).reshape(n * W, D)
        y = h @ self.first_w  # conv1 taps | pattern_hidden
        kc = self.k * self.c1
        conv1 = self._causal(y[:, :kc], n, W, self.c1, self.c1_b)
        hidden = np.maximum(y[:, kc:] + self.ph_b, 0.0)
        pats = self._sigmoid(hidden @ self.pr_w + self.pr_b).reshape(n, W, -1) * m3
        feats = self._causal(conv1.reshape(n * W, self.c1) @ self.c2_w, n, W, self.c2, self.c2_b) * m3
        z = np.concatenate([feats.max(axis=1), pats.max(axis=1)], axis=-1)
        z = np.maximum(z @ self.d_w + self.d_b, 0.0)
        risk = self._sigmoid((z @ self.l_w + self.l_b) @ self.r_w + self.r_b)
        return risk.reshape(-1), pats


# Keras 3's TextVectorization under TensorFlow: tf.strings.lower (ASCII letters only), this very
# pattern removed (ASCII punctuation; `,-\.` is the range , - .), tf.strings.split (runs of ASCII
# whitespace), tf.strings.unicode_split (code points), tf.strings.ngrams joined by one space.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")
_ENCODER_STRUCTURE = {"text": "InputLayer", "word_ngrams": "TextVectorization", "char_ngrams": "TextVectorization",
                      "word_embed": "Dense", "char_embed": "Dense", "message_concat": "Concatenate",
                      "message_norm": "LayerNormalization"}
CHECK_TEXTS = (  # the load-time check: cases, accents, punctuation, whitespace, scripts, emoji, OOV
    "", " ", "a", "Hi", "HELLO there, how ARE you?", "École à Paris: ça va? Ça VA!", "straße ÄÖÜ äöü ß",
    "ik ben 13 jaar... echt waar!!", "\tare \n you\r\nalone\u00a0at\u2003home\x1cnow",
    "don't-tell anyone (ok?) #secret",
    "😀 emoji 🎮 game", "zzqxj vvkkw", "e\u0301 combining", "Привет как дела", "a" * 300,
)


def _ngrams(tokens: list, widths: Sequence[int]) -> Iterable[str]:
    """The n-grams of ``tokens`` of each width, joined by one space (tf.strings.ngrams)."""
    for width in widths:
        if width == 1:
            yield from tokens
        else:
            for i in range(len(tokens) - width + 1):
                yield " ".join(tokens[i:i + width])


def _char_ngrams(text: str, widths: Sequence[int]) -> Iterable[str]:
    """The character n-grams of ``text``, as :func:`_ngrams` of its code points gives them: cut from
    the code points joined by one space, where the n-gram of width w at i is [2i, 2i + 2w - 1)."""
    spaced = " ".join(text)
    for width in widths:
        span = 2 * width - 1
        for i in range(0, 2 * (len(text) - width) + 1, 2):
            yield spaced[i:i + span]


class NumpyMessageEncoder:
    """The reference message encoder in numpy, from the loaded Keras encoder's vocabularies and
    weights: each text standardised, split and cut into n-grams as its two ``TextVectorization``
    layers do (words, characters), each n-gram looked up in its vocabulary (the out-of-vocabulary
    slot, 0, for the rest), the rows of the n-grams present summed (a multi-hot row times the
    kernel) plus the bias for each projection, the two joined and layer-normalised. A TensorFlow
    call costs ~0.9 ms however few messages it encodes; this costs tens of microseconds a message.
    :meth:`from_keras` returns None (the caller keeps TensorFlow) for any other encoder, or one whose
    vectors on :data:`CHECK_TEXTS` differ from the Keras encoder's by more than the tolerance."""

    def __init__(self, word_vocab: Sequence[str], word_widths: Sequence[int], char_vocab: Sequence[str],
                 char_widths: Sequence[int], word_dense: Sequence[np.ndarray], char_dense: Sequence[np.ndarray],
                 gamma: np.ndarray, beta: np.ndarray, epsilon: float):
        self.word_index = {str(token): i for i, token in enumerate(word_vocab)}
        self.char_index = {str(token): i for i, token in enumerate(char_vocab)}
        self.word_widths, self.char_widths = tuple(word_widths), tuple(char_widths)
        f32 = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
        (self.word_w, self.word_b), (self.char_w, self.char_b) = [(f32(w), f32(b)) for w, b in (word_dense, char_dense)]
        if self.word_w.shape[0] != len(self.word_index) or self.char_w.shape[0] != len(self.char_index):
            raise ValueError("vocabulary and kernel sizes differ")
        self.gamma, self.beta, self.epsilon = f32(gamma), f32(beta), float(epsilon)
        self.dim = self.word_w.shape[1] + self.char_w.shape[1]

    @classmethod
    def from_keras(cls, encoder, reference=None, tolerance: float = NUMPY_TOLERANCE) -> Optional["NumpyMessageEncoder"]:
        """From the loaded Keras ``encoder`` (``training/grooming_model.py``'s ``message_encoder``);
        ``reference(texts) -> vectors`` (the Keras path) is compared on :data:`CHECK_TEXTS`."""
        try:
            layers = {layer.name: layer for layer in encoder.layers}
            if {n: type(l).__name__ for n, l in layers.items()} != _ENCODER_STRUCTURE:
                return None
            word, char = layers["word_ngrams"].get_config(), layers["char_ngrams"].get_config()
            for cfg, split in ((word, "whitespace"), (char, "character")):
                if (cfg.get("standardize") != "lower_and_strip_punctuation" or cfg.get("split") != split
                        or cfg.get("output_mode") != "multi_hot" or not cfg.get("ngrams")):
                    return None
            for name in ("word_embed", "char_embed"):
                cfg = layers[name].get_config()
                if not cfg.get("use_bias", True) or cfg.get("activation") != "linear":
                    return None
            norm = layers["message_norm"].get_config()
            if (norm.get("axis") not in (-1, [-1]) or not (norm.get("center") and norm.get("scale"))
                    or norm.get("rms_scaling")):
                return None
            widths = [tuple(int(w) for w in ((c["ngrams"],) if isinstance(c["ngrams"], int) else c["ngrams"]))
                      for c in (word, char)]
            gamma, beta = layers["message_norm"].get_weights()
            impl = cls(layers["word_ngrams"].get_vocabulary(), widths[0], layers["char_ngrams"].get_vocabulary(),
                       widths[1], layers["word_embed"].get_weights(), layers["char_embed"].get_weights(), gamma, beta,
                       norm.get("epsilon", 1e-3))
        except (AttributeError, KeyError, ValueError, TypeError):
            return None
        if reference is not None and not impl.agrees_with(reference, tolerance):
            return None
        return impl

    def agrees_with(self, reference, tolerance: float = NUMPY_TOLERANCE) -> bool:
        """Max |numpy - reference| over the vectors of :data:`CHECK_TEXTS` <= ``tolerance``."""
        want = np.asarray(reference(list(CHECK_TEXTS)), np.float32)
        got = self(CHECK_TEXTS)
        return got.shape == want.shape and float(np.max(np.abs(got - want))) <= tolerance

    @staticmethod
    def _standard(text: str) -> str:
        return _PUNCTUATION.sub("", text.translate(_ASCII_LOWER))

    def _rows(self, text: str) -> tuple[list, list]:
        """The vocabulary rows present in ``text``: (word rows, character rows), each once."""
        text = self._standard(text)
        words = [w for w in _WHITESPACE.split(text) if w]
        word = {self.word_index.get(g, 0) for g in _ngrams(words, self.word_widths)}
        char = {self.char_index.get(g, 0) for g in _char_ngrams(text, self.char_widths)}
        return list(word), list(char)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Message vectors, shape (len(texts), dim), float32."""
        out = np.empty((len(texts), self.dim), np.float32)
        split = self.word_w.shape[1]
        for i, text in enumerate(texts):
            word, char = self._rows(text)
            out[i, :split] = self.word_w[word].sum(axis=0) + self.word_b if word else self.word_b
            out[i, split:] = self.char_w[char].sum(axis=0) + self.char_b if char else self.char_b
        out -= out.sum(axis=1, keepdims=True) / self.dim  # layer norm, without np.mean/np.var's overhead
        var = np.einsum("ij,ij->i", out, out)[:, None] / self.dim
        out *= 1.0 / np.sqrt(var + self.epsilon)
        return (out * self.gamma + self.beta).astype(np.float32, copy=False)
