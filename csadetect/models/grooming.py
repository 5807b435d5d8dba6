"""Grooming-risk scoring API (DESIGN.md §5, §6).

A conversation is replayed in ``sent_at`` order; at every message the model scores the bounded
window of the last ``window`` messages (speaker turns marked by order of first appearance in
the window). The conversation score is the maximum window score so far; ``flagged_at_message``
is the first message (0-based, in ``sent_at`` order) whose window score reached the threshold.
Evidence names risk patterns and message indices, never message text.

Conversations without a minor participant are not scanned (Art. 7(7) of the proposal): they
come back with ``"scanned": false``, no score and ``flagged: false``.

The model file is a Keras 3 ``.keras`` archive holding the text vectorisation, so
``keras.models.load_model(path / "model.keras")`` is all that is needed to use it; this module
calls its two parts directly: ``message_encoder`` (text -> vector, once per message) and
``window_model`` (vectors of a window -> calibrated risk and per-message pattern
probabilities), so each message is encoded once however many windows it falls in. Finding,
copying and loading it (and its ``metadata.json``: ``window``, ``patterns``, ``threshold``) is
:data:`KIND`'s job, in :mod:`csadetect.models.loader`.

The window model is small (two causal convolutions and a few dense layers over 20 x 96 numbers),
so for a handful of windows — the streaming case, one window per arriving message — a
TensorFlow call costs far more in fixed overhead than the arithmetic. :class:`NumpyWindowModel`
evaluates the same layers in numpy from the weights of the loaded Keras model (checked against
the Keras forward pass on load; any other architecture falls back to TensorFlow), and
:meth:`GroomingModel.score_encoded_windows` uses it for small batches.

Scores are calibrated (Platt scaling on a held-out calibration split, baked into the model's
last layer, then refined per language): a conversation score of 0.8 means about 80% of such
conversations in the calibration data were grooming conversations. The synthetic prevalence
(~35%) is far above any real one, so real-world precision at a threshold is lower than measured
here.

Languages (``metadata.json`` ``languages``: code -> ``{"threshold", "platt": [a, b]}``): the
conversation's language is detected from its first messages (:mod:`csadetect.models.language`,
re-decided at every message until the tenth, then kept). A supported language selects its own
calibration ``sigmoid(a * logit(risk) + b)`` and threshold. A conversation in a language the model
does not support is, by default (``unsupported="skip"``), **not scored**: it comes back with
``language: xx, language_supported: false``, no score, ``flagged: false``; with
``unsupported="score"`` it is scored with the global calibration and threshold and carries the
same marker. Never silently as English. A model without ``languages`` (earlier versions) supports
English only, with the global threshold.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from csadetect.core.timeutil import parse_time
from csadetect.models import ModelError
from csadetect.models import language as langid
from csadetect.models.loader import ModelKind

MAX_EVIDENCE = 50
_CHUNK = 4096
NUMPY_MAX_WINDOWS = 64  # engine="auto": up to this many windows per call in numpy, more in TensorFlow
NUMPY_TOLERANCE = 1e-5  # max |numpy - Keras| on the load-time check, else TensorFlow is used


UNSUPPORTED_POLICIES = ("skip", "score")


def unsupported_policy(value: str) -> str:
    """``value`` when it is one of :data:`UNSUPPORTED_POLICIES` (what to do with a conversation in
    a language the model does not support), else ValueError in one line."""
    if value not in UNSUPPORTED_POLICIES:
        raise ValueError(f"unsupported languages: {value!r} is not one of {', '.join(UNSUPPORTED_POLICIES)}")
    return value


def _check_metadata(metadata: dict) -> None:
    int(metadata["window"]), float(metadata["threshold"]), list(metadata["patterns"])
    for code, entry in (metadata.get("languages") or {}).items():
        str(code), float(entry["threshold"]), [float(x) for x in entry.get("platt", (1.0, 0.0))][:2]


KIND = ModelKind("grooming", required=("window", "patterns", "threshold"), check=_check_metadata)


def set_threads(threads: Optional[int]) -> None:
    """Limit TensorFlow's CPU threads (before its first use; later calls change nothing)."""
    if not threads or threads < 1:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised: keep its settings
        pass


def _text(message) -> str:
    if isinstance(message, str):
        return message
    return str(message.get("text") or "")


def _sender(message) -> str:
    if isinstance(message, str):
        return ""
    return str(message.get("sender", ""))


def speaker_ids(senders: Sequence[str]) -> list[int]:
    """1 for the first sender of the window, 2 for the second, 3 for anyone else."""
    order: dict[str, int] = {}
    out = []
    for s in senders:
        if s not in order:
            order[s] = min(len(order) + 1, 3)
        out.append(order[s])
    return out


def chronological(messages: Sequence[Mapping]) -> list[Mapping]:
    """Messages sorted by ``sent_at`` (stable for ties; messages without it keep their place)."""
    if not messages or not all(isinstance(m, Mapping) and m.get("sent_at") for m in messages):
        return list(messages)
    keyed = [(parse_time(m["sent_at"], field="sent_at"), i, m) for i, m in enumerate(messages)]
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [m for _, _, m in keyed]


def involves_minor(messages: Sequence[Mapping]) -> bool:
    """True when any message says a minor takes part (``participants_minor`` is true)."""
    return any(isinstance(m, Mapping) and m.get("participants_minor") is True for m in messages)


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


class GroomingModel:
    """A loaded grooming model. Thread-compatible for scoring; load once per worker process."""

    def __init__(self, keras_model, metadata: dict, path: Optional[Path] = None):
        import tensorflow as tf

        self.path = path
        self.metadata = metadata
        self.keras_model = keras_model
        self.window = int(metadata["window"])
        self.pattern_names = tuple(metadata["patterns"])
        self.threshold = float(metadata["threshold"])
        self.evidence_threshold = float(metadata.get("evidence_threshold", 0.5))
        self.version = str(metadata.get("version", "unknown"))
        langs = metadata.get("languages") or {"en": {"threshold": self.threshold, "platt": [1.0, 0.0]}}
        self.languages = {str(code): (float(e["threshold"]), *(float(x) for x in e.get("platt", (1.0, 0.0))))
                          for code, e in langs.items()}  # code -> (threshold, a, b)
        self.supported_languages = tuple(self.languages)
        try:
            encoder = keras_model.get_layer("message_encoder")
            window_model = keras_model.get_layer("window_model")
        except ValueError:
            raise ModelError(f"model at {path} lacks the message_encoder/window_model parts") from None
        self._dim = int(encoder.output.shape[-1])
        self._encode = tf.function(lambda t: encoder(t, training=False),
                                   input_signature=[tf.TensorSpec([None], tf.string)])
        W = self.window
        self._window = tf.function(
            lambda v, s, m: window_model({"vectors": v, "speakers": s, "mask": m}, training=False),
            input_signature=[tf.TensorSpec([None, W, self._dim], tf.float32), tf.TensorSpec([None, W], tf.int32),
                             tf.TensorSpec([None, W], tf.float32)])
        self._np_window: Optional[NumpyWindowModel] = NumpyWindowModel.from_keras(window_model, W, self._tf_window)

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path=None) -> "GroomingModel":
        """From a model spec (:class:`csadetect.models.loader.ModelKind`: a directory holding
        ``model.keras`` + ``metadata.json``, the .keras file itself, a URL; None: the reference
        model). Raises :class:`ModelError` with a one-line reason."""
        return cls(*KIND.load(path))

    # ---------------------------------------------------------------- languages
    def language_of(self, texts: Sequence[str]) -> langid.Language:
        """The language of a conversation from the texts of its first messages (oldest first)."""
        return langid.detect(texts, self.supported_languages)

    def languages_per_message(self, texts: Sequence[str]) -> list[langid.Language]:
        """The language decision in force at each message (re-decided until the
        ``langid.DECIDE_AFTER``-th message, then kept), as the streaming stage makes it."""
        out: list[langid.Language] = []
        for k in range(len(texts)):
            out.append(self.language_of(texts[:k + 1]) if k < langid.DECIDE_AFTER else out[-1])
        return out

    def calibrate(self, risk, language: Optional[str]) -> np.ndarray:
        """Per-language calibration of the model's (globally calibrated) risk; unchanged for a
        language without its own (an unsupported one scored under ``unsupported="score"``)."""
        risk = np.asarray(risk, np.float64)
        entry = self.languages.get(language) if language else None
        if entry is None or (entry[1] == 1.0 and entry[2] == 0.0):
            return risk.astype(np.float32)
        _, a, b = entry
        r = np.clip(risk, 1e-7, 1 - 1e-7)
        return (1.0 / (1.0 + np.exp(-(a * np.log(r / (1 - r)) + b)))).astype(np.float32)

    def threshold_for(self, language: Optional[str], override: Optional[float] = None) -> float:
        """``override`` when given, else the language's own threshold (the global one for a
        language without its own)."""
        if override is not None:
            return float(override)
        entry = self.languages.get(language) if language else None
        return self.threshold if entry is None else entry[0]

    # ---------------------------------------------------------------- low level
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Message vectors, shape (n, dim). Each message is encoded once."""
        import tensorflow as tf

        if len(texts) == 0:
            return np.zeros((0, self._dim), np.float32)
        parts = [self._encode(tf.constant(list(texts[i:i + _CHUNK]), dtype=tf.string)).numpy()
                 for i in range(0, len(texts), _CHUNK)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _pack(self, windows: Sequence[tuple]):
        """(vectors, senders) windows -> left-padded arrays (vectors, speakers, mask)."""
        W = self.window
        v = np.zeros((len(windows), W, self._dim), np.float32)
        s = np.zeros((len(windows), W), np.int32)
        m = np.zeros((len(windows), W), np.float32)
        for row, (vecs, senders) in enumerate(windows):
            vecs, senders = np.asarray(vecs, np.float32)[-W:], list(senders)[-W:]
            if len(vecs) != len(senders):
                raise ValueError("vectors and senders differ in length")
            k = len(vecs)
            if k:
                v[row, W - k:] = vecs
                s[row, W - k:] = speaker_ids(senders)
                m[row, W - k:] = 1.0
        return v, s, m

    def _windows(self, vectors: np.ndarray, senders: Sequence[str], ends: Iterable[int]):
        """Left-padded windows ending at each index in ``ends`` (over one conversation)."""
        W = self.window
        return self._pack([(vectors[max(0, e - W + 1):e + 1], senders[max(0, e - W + 1):e + 1]) for e in ends])

    def _tf_window(self, vectors: np.ndarray, speakers: np.ndarray, mask: np.ndarray):
        """The Keras window model (compiled, fixed input signature) on one prepared batch."""
        import tensorflow as tf

        out = self._window(tf.constant(vectors), tf.constant(speakers), tf.constant(mask))
        return out["risk"].numpy().reshape(-1), out["patterns"].numpy()

    def score_encoded(self, vectors: np.ndarray, speakers: np.ndarray, mask: np.ndarray, engine: str = "tf"):
        """Window model on prepared windows: (risk (n,), patterns (n, window, K)).

        ``engine``: ``"tf"`` (the Keras model; the batched replay path), ``"numpy"`` (the same
        layers in numpy, see :class:`NumpyWindowModel`) or ``"auto"`` (numpy for up to
        ``NUMPY_MAX_WINDOWS`` windows when available, else TensorFlow)."""
        if engine not in ("tf", "numpy", "auto"):
            raise ValueError(f"unknown engine {engine!r}")
        if engine != "tf" and self._np_window is not None and (engine == "numpy" or len(vectors) <= NUMPY_MAX_WINDOWS):
            if len(vectors) == 0:
                return np.zeros((0,), np.float32), np.zeros((0, self.window, len(self.pattern_names)), np.float32)
            return self._np_window(vectors, speakers, mask)
        if engine == "numpy":
            raise ModelError("this model's window model has no numpy implementation")
        risks, pats = [], []
        for i in range(0, len(vectors), _CHUNK):
            r, p = self._tf_window(vectors[i:i + _CHUNK], speakers[i:i + _CHUNK], mask[i:i + _CHUNK])
            risks.append(r)
            pats.append(p)
        if not risks:
            return np.zeros((0,), np.float32), np.zeros((0, self.window, len(self.pattern_names)), np.float32)
        return np.concatenate(risks), np.concatenate(pats)

    def score_encoded_windows(self, windows: Sequence[tuple], engine: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """Streaming use: ``windows`` of ``(vectors, senders)`` (the last messages of each
        conversation, oldest first, vectors from :meth:`encode`) -> (risk (n,), pattern
        probabilities of each window's last message (n, K)). Lets per-conversation state keep
        message vectors and sender ids instead of message text. ``engine``: see
        :meth:`score_encoded` (``"auto"``: numpy for a few windows, no TensorFlow call)."""
        risk, pats = self.score_encoded(*self._pack(windows), engine=engine)
        return risk, pats[:, -1, :]

    @property
    def numpy_window(self) -> bool:
        """True when the window model runs in numpy for small batches (see NumpyWindowModel)."""
        return self._np_window is not None

    def _replay(self, messages: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """Risk after each message and pattern probabilities of each message (given order)."""
        texts = [_text(m) for m in messages]
        senders = [_sender(m) for m in messages]
        vecs = self.encode(texts)
        risk, pats = self.score_encoded(*self._windows(vecs, senders, range(len(messages))))
        return risk, pats[:, -1, :] if len(pats) else np.zeros((0, len(self.pattern_names)), np.float32)

    # ---------------------------------------------------------------- public scoring
    def score_window(self, messages: Sequence) -> float:
        """Calibrated risk of the last ``window`` messages (given order; dicts with text/sender)."""
        return float(self.score_windows([messages])[0])

    def score_windows(self, windows: Sequence[Sequence]) -> np.ndarray:
        """:meth:`score_window` of many windows in one batch."""
        windows = [list(w)[-self.window:] for w in windows]
        vecs = self.encode([_text(m) for w in windows for m in w])
        prepared, offset = [], 0
        for w in windows:
            prepared.append((vecs[offset:offset + len(w)], [_sender(m) for m in w]))
            offset += len(w)
        return self.score_encoded_windows(prepared)[0]

    def patterns(self, messages: Sequence) -> list[dict]:
        """Per message (given order): {pattern: probability}, each read from the window ending at
        that message (the model is causal: a message's patterns depend on it and earlier ones)."""
        _, pats = self._replay(list(messages))
        return [{name: float(p) for name, p in zip(self.pattern_names, row)} for row in pats]

    def score_conversation(self, messages: Sequence[Mapping], threshold: Optional[float] = None,
                           unsupported: str = "skip") -> dict:
        """Replay one conversation; see the module docstring for the result."""
        return self.score_conversations([messages], threshold, unsupported)[0]

    def score_conversations(self, conversations: Sequence[Sequence[Mapping]],
                            threshold: Optional[float] = None, unsupported: str = "skip") -> list[dict]:
        """Batched :meth:`score_conversation`: all messages encoded in one pass, all windows scored
        in one pass; results equal one-by-one scoring. ``threshold``: one for every language
        (default: each language's own). ``unsupported``: see the module docstring."""
        unsupported_policy(unsupported)
        results: list[Optional[dict]] = [None] * len(conversations)
        todo = []
        for ci, msgs in enumerate(conversations):
            msgs = list(msgs)
            cid = next((m.get("conversation_id") for m in msgs if isinstance(m, Mapping)), None)
            if not involves_minor(msgs):
                results[ci] = {"conversation_id": cid, "scanned": False, "score": None, "flagged": False,
                               "flagged_at_message": None, "evidence": [], "language": None,
                               "language_supported": None}
                continue
            todo.append((ci, cid, chronological(msgs)))
        texts = [_text(m) for _, _, msgs in todo for m in msgs]
        vecs = self.encode(texts)
        parts, offset = [], 0
        for _, _, msgs in todo:
            n = len(msgs)
            parts.append(self._windows(vecs[offset:offset + n], [_sender(m) for m in msgs], range(n)))
            offset += n
        if parts:
            risk, pats = self.score_encoded(*(np.concatenate(x) for x in zip(*parts)))
        offset = 0
        for ci, cid, msgs in todo:
            n = len(msgs)
            r, p = risk[offset:offset + n], pats[offset:offset + n, -1, :]
            offset += n
            langs = self.languages_per_message([_text(m) for m in msgs])
            results[ci] = self._result(cid, r, p, langs, threshold, unsupported)
        return results  # type: ignore[return-value]

    def _result(self, cid, risk: np.ndarray, pats: np.ndarray, langs: Sequence[langid.Language],
                threshold: Optional[float], unsupported: str) -> dict:
        if len(risk) == 0:
            return {"conversation_id": cid, "scanned": True, "score": 0.0, "flagged": False,
                    "flagged_at_message": None, "evidence": [], "language": None, "language_supported": None}
        scored = np.asarray([lg.supported or unsupported == "score" for lg in langs])
        cal = np.zeros(len(risk), np.float32)
        thr = np.ones(len(risk), np.float64)
        for code in {lg.code for lg in langs}:
            sel = np.asarray([lg.code == code for lg in langs])
            cal[sel] = self.calibrate(risk[sel], code)
            thr[sel] = self.threshold_for(code, threshold)
        crossed = np.nonzero(scored & (cal >= thr))[0]
        flagged = bool(len(crossed))
        final = langs[int(crossed[0])] if flagged else langs[-1]
        score = float(cal[scored].max()) if scored.any() else None
        evidence = []
        if flagged:  # non-hits keep nothing (DESIGN §6)
            idx, k = np.nonzero(pats >= self.evidence_threshold)
            evidence = [{"pattern": self.pattern_names[j], "message_index": int(i), "score": float(pats[i, j])}
                        for i, j in zip(idx, k)]
            evidence.sort(key=lambda e: (-e["score"], e["message_index"]))
            evidence = sorted(evidence[:MAX_EVIDENCE], key=lambda e: (e["message_index"], -e["score"]))
        return {"conversation_id": cid, "scanned": True, "score": score, "flagged": flagged,
                "flagged_at_message": int(crossed[0]) if flagged else None, "evidence": evidence,
                "language": final.code, "language_supported": bool(final.supported)}


# -------------------------------------------------------------------- evaluation
def f_beta(precision: float, recall: float, beta: float = 0.5) -> float:
    if precision <= 0 and recall <= 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * precision * recall / (b2 * precision + recall)


def expected_calibration_error(scores: Sequence[float], labels: Sequence[int], bins: int = 10) -> float:
    """Equal-width-bin ECE: sum over bins of |mean score - positive rate| weighted by bin size."""
    if len(scores) == 0:
        return float("nan")
    n = len(scores)
    return float(sum(b["n"] / n * abs(b["mean_score"] - b["positive_rate"])
                     for b in reliability(scores, labels, bins) if b["n"]))


def _pct(values: Sequence[float], q: float) -> Optional[float]:
    return float(np.percentile(np.asarray(values, np.float64), q)) if len(values) else None


def latency_penalty(k, p: float) -> np.ndarray:
    """Vogt et al. (ACL 2021), after Losada & Crestani's F_latency (eRisk): the penalty of a
    warning after ``k`` messages (1-based), ``-1 + 2 / (1 + exp(-p (k - 1)))``; 0 at the first
    message, rising towards 1."""
    k = np.asarray(k, np.float64)
    return -1.0 + 2.0 / (1.0 + np.exp(-p * (k - 1.0)))


def latency_p(positive_lengths: Sequence[int]) -> float:
    """``p = ln 3 / (median - 1)``, so that the penalty is 0.5 at the median number of messages
    of the positive conversations (Vogt et al. 2021)."""
    median = float(np.median(positive_lengths)) if len(positive_lengths) else 2.0
    return float(np.log(3.0) / max(median - 1.0, 1.0))


def latency_weighted_f1(f1: float, messages_until_flag: Sequence[int], p: float) -> tuple[float, float]:
    """(latency-weighted F1, speed): ``speed = 1 - median(penalty(k))`` over the true positives'
    messages until the warning ``k``; latency-weighted F1 = F1 x speed (0 without a true positive)."""
    if not len(messages_until_flag):
        return 0.0, 0.0
    speed = 1.0 - float(np.median(latency_penalty(messages_until_flag, p)))
    return f1 * speed, speed


def reliability(scores: Sequence[float], labels: Sequence[int], bins: int = 10) -> list[dict]:
    """Equal-width bins: ``{"lo", "hi", "n", "mean_score", "positive_rate"}`` (the reliability plot)."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, np.float64)
    b = np.minimum((s * bins).astype(int), bins - 1) if len(s) else np.zeros(0, int)
    out = []
    for k in range(bins):
        sel = b == k
        out.append({"lo": k / bins, "hi": (k + 1) / bins, "n": int(sel.sum()),
                    "mean_score": float(s[sel].mean()) if sel.any() else None,
                    "positive_rate": float(y[sel].mean()) if sel.any() else None})
    return out


def evaluate(model: GroomingModel, items: Iterable[tuple], threshold: Optional[float] = None,
             batch: int = 256, hard_negative_families: Optional[Iterable[str]] = None,
             unsupported: str = "skip") -> dict:
    """Conversation-level metrics, overall and per language (``by_language``, keyed by the
    conversation's true language when the items give one, else the detected one).

    ``items``: ``(messages, is_grooming, family[, language])`` with messages as dicts
    (``pattern`` on a message, when present, is the true risk pattern and is used for the latency
    after the first risk message and for message-level evidence precision/recall).
    ``hard_negative_families``: the benign families whose precision is reported as
    ``precision_hard_negatives`` (grooming conversations against these benign ones only; default:
    every benign family but ``chitchat``)."""
    items = list(items)
    rows = []
    for i in range(0, len(items), batch):
        chunk = items[i:i + batch]
        results = model.score_conversations([c[0] for c in chunk], threshold, unsupported)
        for item, res in zip(chunk, results):
            msgs, is_grooming, family = item[0], bool(item[1]), item[2]
            true_lang = item[3] if len(item) > 3 else None
            ordered = chronological(msgs)
            row = {"grooming": is_grooming, "family": family, "res": res, "n": len(ordered),
                   "language": true_lang or res.get("language") or "und", "detected": res.get("language")}
            if is_grooming and res["flagged"]:
                first = next((k for k, m in enumerate(ordered) if m.get("pattern")), None)
                row["after_first"] = None if first is None else res["flagged_at_message"] - first
                truth = {(k, m["pattern"]) for k, m in enumerate(ordered) if m.get("pattern")}
                found = {(e["message_index"], e["pattern"]) for e in res["evidence"]}
                row["ev"] = (len(truth & found), len(found - truth), len(truth - found))
            rows.append(row)
    hard = None if hard_negative_families is None else set(hard_negative_families)
    metrics = _aggregate(rows, hard)
    metrics["threshold"] = model.threshold if threshold is None else float(threshold)
    metrics["thresholds_by_language"] = {code: model.threshold_for(code, threshold) for code in model.supported_languages}
    langs = sorted({r["language"] for r in rows})
    metrics["by_language"] = {code: _aggregate([r for r in rows if r["language"] == code], hard) for code in langs}
    for code in langs:
        metrics["by_language"][code]["supported"] = code in model.languages
        metrics["by_language"][code]["threshold"] = model.threshold_for(code, threshold)
    return metrics


def _aggregate(rows: list[dict], hard: Optional[set]) -> dict:
    tp = fp = fn = tn = 0
    fp_hard = 0
    not_scanned = unsupported = 0
    unsupported_by: dict[str, int] = {}
    scores, labels, until, after_first, pos_lengths = [], [], [], [], []
    fams: dict[str, list[int]] = {}
    ev_tp = ev_fp = ev_fn = 0
    detected_right = detected_n = 0
    for row in rows:
        res, is_grooming, family = row["res"], row["grooming"], row["family"]
        flagged = res["flagged"]
        fam = fams.setdefault(family, [0, 0])
        fam[0] += 1
        fam[1] += int(flagged)
        if is_grooming:
            pos_lengths.append(row["n"])
        if not res["scanned"]:
            not_scanned += 1
        else:
            if res.get("language") is not None:
                detected_n += 1
                detected_right += int(res["language"] == row["language"])
            if res.get("language_supported") is False:
                unsupported += 1
                unsupported_by[res["language"]] = unsupported_by.get(res["language"], 0) + 1
            if res["score"] is not None:
                scores.append(res["score"])
                labels.append(int(is_grooming))
        if is_grooming and flagged:
            tp += 1
            until.append(res["flagged_at_message"] + 1)
            if row.get("after_first") is not None:
                after_first.append(row["after_first"])
            a, b, c = row["ev"]
            ev_tp, ev_fp, ev_fn = ev_tp + a, ev_fp + b, ev_fn + c
        elif is_grooming:
            fn += 1
        elif flagged:
            fp += 1
            if (family != "chitchat") if hard is None else (family in hard):
                fp_hard += 1
        elif res["scanned"]:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = f_beta(precision, recall, 1.0)
    p = latency_p(pos_lengths)
    lw_f1, speed = latency_weighted_f1(f1, until, p)
    ev_p = ev_tp / (ev_tp + ev_fp) if ev_tp + ev_fp else 0.0
    ev_r = ev_tp / (ev_tp + ev_fn) if ev_tp + ev_fn else 0.0
    hard_n = sum(v[0] for k, v in fams.items() if ((k != "chitchat") if hard is None else (k in hard)))
    return {
        "conversations": len(rows), "not_scanned": not_scanned,
        "unsupported_language": unsupported, "unsupported_by_language": dict(sorted(unsupported_by.items())),
        "language_detection_accuracy": detected_right / detected_n if detected_n else None,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": precision, "recall": recall, "f1": f1, "f0_5": f_beta(precision, recall, 0.5),
        "latency_weighted_f1": lw_f1, "speed": speed, "latency_p": p,
        "median_positive_length": float(np.median(pos_lengths)) if pos_lengths else None,
        "precision_hard_negatives": tp / (tp + fp_hard) if tp + fp_hard else 0.0,
        "hard_negative_conversations": hard_n, "hard_negative_false_positives": fp_hard,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
        "ece": expected_calibration_error(scores, labels),
        "reliability": reliability(scores, labels),
        "latency_messages_until_flag": {"median": _pct(until, 50), "p90": _pct(until, 90), "n": len(until)},
        "latency_messages_after_first_pattern": {"median": _pct(after_first, 50), "p90": _pct(after_first, 90)},
        "evidence_message_level": {"precision": ev_p, "recall": ev_r},
        "flag_rate_by_family": {k: {"conversations": v[0], "flagged": v[1]} for k, v in sorted(fams.items())},
    }
